import ArgumentParser
import AutoSSLCA
import AutoSSLCore
import AutoSSLIO
import Foundation

struct CAResetCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "reset",
        abstract: "Remove the CA from this machine (a safety copy is kept unless --no-backup).",
        discussion: """
            Every server and client that trusts this CA must be re-enrolled or re-trusted afterwards. \
            The safety copy is the whole CA directory, keys still encrypted, moved to \
            $AUTO_SSL_DATA_DIR/ca.reset-<time>, with copies of config.yaml and the password files.
            """)

    @Flag(help: "Do not ask for confirmation.")
    var yes = false

    @Flag(help: "Delete the CA for good instead of moving it aside.")
    var noBackup = false

    func run() throws {
        let directories = Directories.fromEnvironment()
        guard try CAInitializer(directories: directories).existingCA() != nil else {
            throw AutoSSLError.general("there is no CA on this machine to reset; nothing was changed")
        }
        let what = noBackup ? "PERMANENTLY DELETE the CA and its keys" : "remove the CA (a safety copy is kept)"
        try Terminal.requireConfirmation(
            yes: yes, action: "ca reset", question: "This will \(what) in \(directories.caDir). Continue?")
        let result = try CAReset(directories: directories).reset(keepCopy: !noBackup)
        if let copy = result.safetyCopy {
            print("The CA was removed. A safety copy (keys still encrypted) is in \(copy)")
        } else {
            print("The CA was deleted (no safety copy was kept).")
        }
    }
}
