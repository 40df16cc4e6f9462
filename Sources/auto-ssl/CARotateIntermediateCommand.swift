import ArgumentParser
import AutoSSLCA
import AutoSSLCore
import AutoSSLIO
import Foundation

struct CARotateIntermediateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rotate-intermediate",
        abstract: "Create a new intermediate CA under the root; the old one is archived.",
        discussion: """
            Certificates issued by the old intermediate stay valid (the root did not change, so clients \
            need nothing). Restart `auto-ssl ca serve` afterwards so it signs with the new intermediate.
            With --compromised (the old intermediate's key leaked), the root revokes the old intermediate \
            in its CRL (served at /crl/root) and its key is not kept: certificates it signed no longer \
            renew or authenticate to the CA, and their servers must enroll again.
            """)

    @Option(help: ArgumentHelp("File holding the CA key password.", valueName: "file"))
    var passwordFile: String?

    @Flag(help: "The old intermediate's key leaked: the root revokes it, and what it signed stops renewing.")
    var compromised = false

    @Flag(help: "Do not ask for confirmation.")
    var yes = false

    func run() throws {
        let directories = Directories.fromEnvironment()
        let loader = AuthorityLoader(directories: directories)
        let settings = try loader.settings()
        try Terminal.requireConfirmation(
            yes: yes, action: "rotating the intermediate", question: "Create a new intermediate for \(settings.name)?")
        let password = try loader.caPassword(explicitFile: passwordFile, settings: settings)
        let result = try IntermediateRotation(directories: directories).rotate(caPassword: password, compromised: compromised)
        print("New intermediate \(result.current.serialNumber.hexString), valid until \(Output.date(result.current.notValidAfter)).")
        if compromised {
            print("The previous one (\(result.previous.serialNumber.hexString)) is revoked by the root: \(result.archivedCertificate), served at /crl/root.")
            print("Certificates it signed no longer renew; enroll their servers again (auto-ssl ca token create, auto-ssl server enroll).")
        } else {
            print("The previous one (valid until \(Output.date(result.previous.notValidAfter))) is archived in \(result.archivedCertificate).")
        }
        print("Restart `auto-ssl ca serve` (e.g. systemctl restart auto-ssl-ca) to sign with the new intermediate.")
    }
}
