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
            With --compromised SERIAL (the current intermediate's key leaked), the root revokes it and every \
            archived intermediate that has not expired in its CRL (served at /crl/root), and their keys are \
            not kept: certificates they signed no longer renew or authenticate to the CA, and their servers \
            must enroll again.
            """)

    @Option(help: ArgumentHelp("File holding the CA key password.", valueName: "file"))
    var passwordFile: String?

    @Option(
        help: ArgumentHelp(
            "The current intermediate's key leaked: its serial (hex, from `ca status`). The root revokes it and every archived intermediate; what they signed stops renewing.",
            valueName: "serial"))
    var compromised: String?

    @Flag(help: "Do not ask for confirmation.")
    var yes = false

    func run() throws {
        let directories = Directories.fromEnvironment()
        let loader = AuthorityLoader(directories: directories)
        let settings = try loader.settings()
        try Terminal.requireConfirmation(
            yes: yes, action: "rotating the intermediate", question: compromised.map { "Revoke intermediate \($0) and every archived one, and create a new intermediate for \(settings.name)?" }
                ?? "Create a new intermediate for \(settings.name)?")
        let password = try loader.caPassword(explicitFile: passwordFile, settings: settings)
        let result = try IntermediateRotation(directories: directories).rotate(caPassword: password, compromised: compromised)
        print("New intermediate \(result.current.serialNumber.hexString), valid until \(Output.date(result.current.notValidAfter)).")
        if compromised != nil {
            print("The previous one (\(result.previous.serialNumber.hexString)) and every archived intermediate are revoked by the root: \(result.archivedCertificate), served at /crl/root.")
            print("Certificates they signed no longer renew; enroll their servers again (auto-ssl ca token create, auto-ssl server enroll).")
        } else {
            print("The previous one (valid until \(Output.date(result.previous.notValidAfter))) is archived in \(result.archivedCertificate).")
        }
        print("Restart `auto-ssl ca serve` (e.g. systemctl restart auto-ssl-ca) to sign with the new intermediate.")
    }
}
