import ArgumentParser
import AutoSSLAgent
import AutoSSLCA
import AutoSSLClient
import AutoSSLConfig
import AutoSSLCore
import AutoSSLIO
import Foundation
import SwiftASN1
import X509

struct CertRenewCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "renew",
        abstract: "Renew a certificate, authenticated by the certificate itself (same names, same key).",
        discussion: "Writes the new chain atomically; on failure the existing files stay as they were. Several --ca-url are tried in order.")

    @Option(help: CAURLHelp.required) var caUrl: [String]
    @Option(help: "SHA-256 fingerprint of the CA's root.") var fingerprint: String
    @Option(help: ArgumentHelp("The current certificate chain.", valueName: "file")) var cert: String
    @Option(help: ArgumentHelp("Its private key.", valueName: "file")) var key: String
    @Option(help: ArgumentHelp("Where to write the new chain (default: replace --cert).", valueName: "file")) var outCert: String?
    @Option(help: "mtls (the certificate on the TLS connection) or token (an x5c bearer token, for proxies).")
    var method = "mtls"

    func run() async throws {
        guard let authentication = CAClient.HolderAuthentication(rawValue: method) else {
            throw AutoSSLError.invalidArgument("--method must be mtls or token")
        }
        let endpoints = try CAEndpoints(caUrl)
        let chain = try HolderFiles.chain(cert)
        let signingKey = try HolderFiles.key(key, matching: chain[0])
        // Before the CA is asked: a renewed certificate must not be lost to a path that cannot be written.
        let target = Directories.absolute(outCert ?? cert)
        let directory = (target as NSString).deletingLastPathComponent
        guard FileManager.default.fileExists(atPath: directory) else {
            throw AutoSSLError.invalidArgument("the directory \(directory) does not exist")
        }
        try FileOperations.checkReplaceable(
            [target, Directories.absolute(key)], options: [outCert == nil ? "--cert" : "--out-cert", "--key"],
            reserved: AutoSSLConfiguration.reservedPaths(Directories.fromEnvironment()))
        let answer = try await CAClient.withConnection(to: endpoints, fingerprint: fingerprint) { client in
            try await client.renew(chain: chain, key: signingKey, method: authentication)
        }
        let renewed = answer.value
        try FileOperations.writeAtomically(renewed.pemChain, to: target, mode: 0o644)
        print("Renewed: new serial \(renewed.leaf.serialNumber.hexString), valid until \(Output.date(renewed.leaf.notValidAfter)) (written to \(outCert ?? cert))")
        Output.contact(answer.contact)
    }
}

struct RevocationReason: ParsableArguments {
    @Option(help: "RFC 5280 reason code: 0 unspecified, 1 keyCompromise, 3 affiliationChanged, 4 superseded, 5 cessationOfOperation, ...")
    var reasonCode = 0

    @Option(help: "Free-text reason, recorded in the audit log.")
    var reason = ""
}

struct CertRevokeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "revoke",
        abstract: "Revoke a certificate at the CA: with the certificate itself, or any serial with a provisioner password.",
        discussion: "Several --ca-url are tried in order: the next one when a URL does not answer, never after the CA refused.")

    @Option(help: CAURLHelp.required) var caUrl: [String]
    @Option(help: "SHA-256 fingerprint of the CA's root.") var fingerprint: String
    @Option(help: ArgumentHelp("The certificate to revoke (with --key).", valueName: "file")) var cert: String?
    @Option(help: ArgumentHelp("Its private key.", valueName: "file")) var key: String?
    @Option(help: "mtls or token (with --cert/--key).") var method = "mtls"
    @Option(help: "Serial to revoke with a provisioner token (decimal or hex).") var serial: String?
    @Option(help: "Provisioner for --serial.") var provisioner = "admin"
    @Option(help: ArgumentHelp("Provisioner password file for --serial.", valueName: "file")) var passwordFile: String?
    @OptionGroup var reason: RevocationReason

    func run() async throws {
        try Authority.validateReasonCode(reason.reasonCode)
        // Revocation is permanent: two ways of naming the certificate at once is refused, not guessed.
        if serial != nil, cert != nil || key != nil {
            throw AutoSSLError.invalidArgument(
                "give either --serial (with a provisioner password) or --cert and --key, not both; nothing was revoked")
        }
        if (cert == nil) != (key == nil) {
            throw AutoSSLError.invalidArgument("--cert and --key go together (the certificate and its private key); nothing was revoked")
        }
        let endpoints = try CAEndpoints(caUrl)
        let answer = try await CAClient.withConnection(to: endpoints, fingerprint: fingerprint) { client -> String in
            if let cert, let key {
                guard let authentication = CAClient.HolderAuthentication(rawValue: method) else {
                    throw AutoSSLError.invalidArgument("--method must be mtls or token")
                }
                let chain = try HolderFiles.chain(cert)
                let answer = try await client.revoke(
                    chain: chain, key: try HolderFiles.key(key, matching: chain[0]), method: authentication,
                    reasonCode: reason.reasonCode, reason: reason.reason)
                return Self.report(answer, named: "Certificate \(chain[0].serialNumber.hexString)", revoked: "Revoked \(chain[0].serialNumber.hexString).")
            } else if let serial {
                guard let passwordFile else {
                    throw AutoSSLError.invalidArgument("--serial needs the provisioner password", hint: "pass --password-file")
                }
                let candidates = try SerialText.candidates(serial)
                let decimal = serial.allSatisfy(\.isNumber) ? serial : SerialText.decimal(fromHex: candidates[0])
                let jwk = try await client.provisionerKey(
                    name: provisioner, password: try SecretFiles.read(passwordFile, option: "--password-file"))
                let answer = try await client.revoke(
                    serialDecimal: decimal, provisioner: provisioner, key: jwk, reasonCode: reason.reasonCode, reason: reason.reason)
                return Self.report(answer, named: "Serial \(serial)", revoked: "Revoked serial \(serial).")
            } else {
                throw AutoSSLError.invalidArgument("name the certificate (--cert and --key) or a --serial")
            }
        }
        print(answer.value)
        Output.contact(answer.contact)
    }

    /// What the CA said it did, in words.
    static func report(_ answer: CAClient.RevokeAnswer, named: String, revoked: String) -> String {
        guard answer.alreadyRevoked else { return revoked + sameKey(answer.alsoRevoked) }
        if answer.changedNothing { return "\(named) was already revoked; it is unchanged." }
        return "\(named) was already revoked (it keeps its first reason)"
            + (answer.keyRevoked ? "; its key is revoked now: no certificate is issued or renewed with it again." : ".")
            + sameKey(answer.alsoRevoked)
    }

    /// The certificates the CA revoked with it, for having its key.
    static func sameKey(_ serials: [String]) -> String {
        serials.isEmpty ? "" : "\nAlso revoked, for having the same key: \(serials.joined(separator: ", "))."
    }
}

struct CARevokeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "revoke",
        abstract: "Revoke a certificate on the CA host, or everything one provisioner issued since a time (works whether or not the server runs).",
        discussion: """
            Every other unexpired certificate with the same key is revoked with it (renewal keeps the key), \
            unless the reason code is 4 (superseded). A running server notices within seconds and publishes the serials in its CRL. \
            After a provisioner password leaked: change it (ca provisioner password NAME), then revoke what was issued with it \
            since the leak: ca revoke --provisioner NAME --issued-after 2026-11-30T08:00:00Z (--dry-run lists them first). \
            Renewals keep the provisioner of the certificate they renew, so they are included.
            """)

    @Argument(help: "Serial: decimal, or hex with or without colons.")
    var serial: String?

    @Option(help: "Revoke every certificate this provisioner issued in the window that can still be used or renewed (instead of one serial).")
    var provisioner: String?

    @Option(help: ArgumentHelp("With --provisioner: the start of the window, an RFC 3339 time (e.g. 2026-11-30T08:00:00Z).", valueName: "time"))
    var issuedAfter: String?

    @Option(help: ArgumentHelp("With --provisioner: the end of the window (default: now).", valueName: "time"))
    var issuedBefore: String?

    @Flag(help: "With --provisioner: list what would be revoked, revoke nothing.")
    var dryRun = false

    @OptionGroup var reason: RevocationReason

    static func time(_ text: String, option: String) throws -> Date {
        guard let date = Timestamp.parse(text) else {
            throw AutoSSLError.invalidArgument(
                "\(option) must be an RFC 3339 time", hint: "e.g. 2026-11-30T08:00:00Z, or 2026-11-30T09:00:00+01:00")
        }
        return date
    }

    func run() async throws {
        let revocation = AdminRevocation(directories: Directories.fromEnvironment())
        switch (serial, provisioner) {
        case (let serial?, nil):
            guard issuedAfter == nil, issuedBefore == nil, !dryRun else {
                throw AutoSSLError.invalidArgument("--issued-after, --issued-before and --dry-run go with --provisioner, not a serial")
            }
            let result = try await revocation.revoke(serial: serial, reasonCode: reason.reasonCode, reason: reason.reason)
            print(CertRevokeCommand.report(
                CAClient.RevokeAnswer(alreadyRevoked: result.alreadyRevoked, alsoRevoked: result.sameKey, keyRevoked: result.keyRevoked),
                named: "Certificate \(result.record.serial)",
                revoked: "Revoked \(result.record.serial) (\(result.record.names.joined(separator: ", "))), reason code \(reason.reasonCode)."))
        case (nil, let provisioner?):
            guard let issuedAfter else {
                throw AutoSSLError.invalidArgument(
                    "--provisioner needs --issued-after: the time from which its certificates are to be revoked",
                    hint: "the time the password may have leaked, e.g. --issued-after 2026-11-30T08:00:00Z (--dry-run lists them first)")
            }
            let after = try Self.time(issuedAfter, option: "--issued-after")
            let before = try issuedBefore.map { try Self.time($0, option: "--issued-before") }
            let result = try await revocation.revokeIssued(
                by: provisioner, after: after, before: before, reasonCode: reason.reasonCode, reason: reason.reason, dryRun: dryRun)
            let window = "from \(Timestamp.rfc3339(after))" + (before.map { " to \(Timestamp.rfc3339($0))" } ?? "")
            guard !result.matched.isEmpty else {
                print("No certificate that could still be used or renewed was issued by provisioner \"\(provisioner)\" \(window); nothing was revoked.")
                if !result.isConfigured {
                    Output.standardError("warning: no provisioner \"\(provisioner)\" is configured (see auto-ssl ca provisioner list)\n")
                }
                return
            }
            for record in result.matched {
                print("\(record.serial)  \(Timestamp.rfc3339(record.createdAt))  \(record.names.joined(separator: ", "))")
            }
            if dryRun {
                print("\(result.matched.count) certificate(s) issued by \"\(provisioner)\" \(window) would be revoked (dry run: nothing changed).")
            } else {
                print("Revoked \(result.matched.count) certificate(s) issued by \"\(provisioner)\" \(window), reason code \(reason.reasonCode).")
                if !result.sameKey.isEmpty {
                    print("Also revoked, for having the same key: \(result.sameKey.joined(separator: ", ")).")
                }
            }
        default:
            throw AutoSSLError.invalidArgument(
                "name one certificate by its serial, or a --provisioner with --issued-after", hint: "auto-ssl ca revoke --help")
        }
    }
}
