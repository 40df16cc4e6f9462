import ArgumentParser
import AutoSSLCA
import AutoSSLClient
import AutoSSLConfig
import AutoSSLCore
import AutoSSLIO
import Foundation

struct CertCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cert", abstract: "One-off certificates for scripts and apps.", subcommands: [CertIssueCommand.self, CertRenewCommand.self, CertRevokeCommand.self])
}

struct CertIssueCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "issue",
        abstract: "Get one certificate from a CA: the key is made here and never leaves this machine.",
        discussion: """
            The CA is trusted through its root fingerprint (exit 6 on mismatch, nothing written). \
            Writes the chain (leaf + intermediate, 0644) and the key (0600) atomically. With several --ca-url, \
            the URLs are tried in order: the next one when a URL does not answer, never after the CA refused.
            """)

    @Option(help: CAURLHelp.required)
    var caUrl: [String]

    @Option(help: "SHA-256 fingerprint of the CA's root (colons allowed).")
    var fingerprint: String

    @Option(help: "Name for the certificate (required, repeatable; DNS or IP; the first is the subject CN).")
    var san: [String]

    @Option(help: ArgumentHelp("Where to write the certificate chain.", valueName: "file"))
    var outCert: String

    @Option(help: ArgumentHelp("Where to write the private key.", valueName: "file"))
    var outKey: String

    @Option(help: "Provisioner to authenticate with.")
    var provisioner = "admin"

    @Option(help: ArgumentHelp("File holding the provisioner password (may be /dev/stdin).", valueName: "file"))
    var passwordFile: String?

    @Option(help: "Lifetime (e.g. 24h, 7d); default: the CA's.")
    var duration: String?

    @Option(help: ArgumentHelp(
        "Start of validity, an RFC 3339 time (at most 24 h in the past); default: now, backdated a minute. --duration then counts from now.",
        valueName: "time"))
    var notBefore: String?

    @Option(help: "ec (P-256) or rsa (2048).")
    var keyType = "ec"

    @Flag(help: "Never prompt.")
    var nonInteractive = false

    @OptionGroup var output: QuietOption

    func run() async throws {
        Output.quiet = output.quiet
        guard !san.isEmpty else { throw AutoSSLError.invalidArgument("at least one --san is required") }
        let names = try san.map(SubjectName.init(parsing:))
        let endpoints = try CAEndpoints(caUrl)
        if let duration, try CertificateDuration(parsing: duration).seconds <= 0 {
            throw AutoSSLError.invalidArgument("--duration must be longer than zero (e.g. 24h)")
        }
        if let notBefore, Timestamp.parse(notBefore) == nil {
            throw AutoSSLError.invalidArgument("--not-before \"\(notBefore)\" is not an RFC 3339 time", hint: "e.g. 2026-01-02T03:04:05Z")
        }
        let algorithm = try KeyAlgorithm.leaf(keyType: keyType)
        for path in [outCert, outKey] {
            let directory = (Directories.absolute(path) as NSString).deletingLastPathComponent
            guard FileManager.default.fileExists(atPath: directory) else {
                throw AutoSSLError.invalidArgument("the directory \(directory) does not exist")
            }
        }
        // Before the CA is asked: a certificate it signs must not be lost to a path that cannot be written.
        try FileOperations.checkReplaceable(
            [Directories.absolute(outCert), Directories.absolute(outKey)], options: ["--out-cert", "--out-key"],
            reserved: AutoSSLConfiguration.reservedPaths(Directories.fromEnvironment()))
        let password: String
        if let passwordFile {
            password = try SecretFiles.read(passwordFile, option: "--password-file")
        } else if nonInteractive || !Terminal.standardInputIsTerminal {
            throw AutoSSLError.invalidArgument(
                "the provisioner password is needed", hint: "pass --password-file (it may be /dev/stdin)")
        } else {
            password = try Terminal.readSecret(prompt: "Password for provisioner \(provisioner): ")
        }

        let key = try SigningKey.generate(algorithm)
        // A fresh token for each URL tried (its audience is that URL).
        let answer = try await CAClient.withConnection(to: endpoints, fingerprint: fingerprint) { client in
            let jwk = try await client.provisionerKey(name: provisioner, password: password)
            let token = try client.signToken(provisioner: provisioner, key: jwk, names: names)
            return try await client.sign(csrPEM: try VerifiedCSR.make(names: names, key: key), token: token, notAfter: duration, notBefore: notBefore)
        }
        let signed = answer.value
        try FileOperations.replaceTogether([
            (Array(key.pkcs8PEMRepresentation.utf8), Directories.absolute(outKey), 0o600),
            (Array(signed.pemChain.utf8), Directories.absolute(outCert), 0o644),
        ])
        let serial = signed.leaf.serialNumber.hexString
        if Output.quiet { print(serial) }
        Output.progress("Issued \(serial) for \(names.map(\.description).joined(separator: ", "))")
        Output.progress("  valid until \(Output.date(signed.leaf.notValidAfter))")
        Output.progress("  certificate chain: \(outCert)")
        Output.progress("  private key:       \(outKey) (mode 0600)")
        Output.contact(answer.contact)
    }
}
