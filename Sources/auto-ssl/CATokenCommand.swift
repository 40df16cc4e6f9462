import ArgumentParser
import AutoSSLCA
import AutoSSLCore
import AutoSSLIO
import Foundation

struct CATokenCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "token",
        abstract: "One-time enrollment tokens made on the CA host.",
        subcommands: [CATokenCreateCommand.self])
}

struct CATokenCreateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "create",
        abstract: "Make a single-use enrollment token for one host's names (for `server enroll --token-file`).",
        discussion: """
            Signed here with a password provisioner's key (its password is read from the file this CA stored \
            it in, or --password-file), so the host never needs the provisioner password. The token works \
            once, for exactly these names, until it expires (1 hour by default, at most 24 hours); the names \
            are checked against the provisioner's policy now. Prints the token (or, with --json, the token, \
            names, expiry, the CA's URLs and root fingerprint). Each token made is in the audit log.
            """)

    @Option(help: "A name the certificate will carry (repeatable; DNS or IP; the first is the subject CN).")
    var san: [String] = []

    @Option(help: "How long the token may be used (e.g. 30m, 1h, 24h).")
    var ttl = "1h"

    @Option(help: "The password provisioner to sign with (default: the first).")
    var provisioner: String?

    @Option(help: ArgumentHelp("File holding the provisioner password, when this CA does not store it (may be /dev/stdin).", valueName: "file"))
    var passwordFile: String?

    @Flag(help: "Print JSON.")
    var json = false

    func run() async throws {
        let lifetime: Int64
        do {
            lifetime = try CertificateDuration(parsing: ttl).seconds
        } catch {
            throw AutoSSLError.invalidArgument("--ttl \(ttl) is not a duration (e.g. 30m, 1h, 24h)")
        }
        let password = try passwordFile.map { try SecretFiles.read($0, option: "--password-file") }
        let token = try EnrollmentTokens(directories: Directories.fromEnvironment()).create(
            names: san, lifetime: lifetime, provisioner: provisioner, password: password)
        if json {
            try Output.json(token)
        } else {
            print(token.token)
            Output.standardError(
                "one-time token of provisioner \(token.provisioner) for \(token.sans.joined(separator: ", ")), valid until \(Output.date(token.expiresAt))\n")
        }
    }
}
