import ArgumentParser
import AutoSSLClient
import AutoSSLCore
import AutoSSLHost
import AutoSSLIO
import Foundation
import SwiftASN1
import X509

struct ClientCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "client", abstract: "Trust the CA's root on this machine.",
        subcommands: [ClientTrustCommand.self, ClientStatusCommand.self, ClientUntrustCommand.self])
}

/// Options shared by the client commands: which trust store, and where the filesystem is (tests).
struct TrustStoreOptions: ParsableArguments {
    @Option(help: "OS family instead of the detected one: debian, rhel, suse, arch, alpine.")
    var os: String?

    func store() throws -> SystemTrustStore {
        try Self.store(os: os)
    }

    static func store(os: String?) throws -> SystemTrustStore {
        let family: OSFamily
        if let os {
            guard let chosen = OSFamily(rawValue: os.lowercased()), chosen != .unknown, chosen != .macos else {
                throw AutoSSLError.invalidArgument("--os must be debian, rhel, suse, arch or alpine")
            }
            family = chosen
        } else {
            let rootFS = Self.rootFS
            family = OSFamily.current(osReleasePath: rootFS + "/etc/os-release").family
        }
        return SystemTrustStore(layout: try TrustStoreLayout.forFamily(family), rootFS: Self.rootFS)
    }

    /// AUTO_SSL_ROOT_FS: a prefix for system paths, so tests can install into a fake filesystem.
    static var rootFS: String {
        let value = ProcessInfo.processInfo.environment["AUTO_SSL_ROOT_FS"] ?? ""
        return value.isEmpty ? "" : Directories.absolute(value)
    }
}

struct ClientTrustCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "trust",
        abstract: "Install the CA's root into the system trust store, verified by its fingerprint.",
        discussion: """
            Either download the root (--ca-url and --fingerprint; a mismatch exits 6 and installs nothing) or \
            take it from --cert-file (with --fingerprint it is checked too). Trusting twice changes nothing. \
            --print-script macos|windows writes a self-contained script for those systems instead. Several \
            --ca-url are tried in order: the next one when a URL does not answer, never after a mismatch.
            """)

    @Option(help: CAURLHelp.optional) var caUrl: [String] = []
    @Option(help: "SHA-256 fingerprint of the root (colons allowed).") var fingerprint: String?
    @Option(help: ArgumentHelp("A root certificate file (PEM or DER) instead of downloading it.", valueName: "file"))
    var certFile: String?
    @Flag(help: "Also add it to the NSS database browsers use (needs certutil from libnss3-tools).") var nss = false
    @Flag(help: "Also add it to the Java cacerts keystore (needs keytool).") var java = false
    @Option(help: "Print a trust script for macos or windows instead of installing here.") var printScript: String?
    @OptionGroup var storeOptions: TrustStoreOptions

    func run() async throws {
        let root = try await obtainRoot()
        try TrustAnchorCheck.validate(root)
        let name = root.commonName ?? "auto-ssl CA"
        if let printScript {
            switch printScript.lowercased() {
            case "macos": print(try TrustScripts.macOS(root: root, caName: name), terminator: "")
            case "windows": print(try TrustScripts.windows(root: root, caName: name), terminator: "")
            default: throw AutoSSLError.invalidArgument("--print-script must be macos or windows")
            }
            return
        }
        let store = try storeOptions.store()
        try Self.installInSystemStore(root, store: store)
        let entry = (try store.fileName(for: root) as NSString).deletingPathExtension
        let anchor = store.directory + "/" + (try store.fileName(for: root))
        for kind in [nss ? ExtraTrustStores.Kind.nss : nil, java ? .java : nil].compactMap({ $0 }) {
            try ExtraTrustStores().install(kind, name: entry, file: anchor)
            print("Trusted in the \(kind == .nss ? "NSS (browser)" : "Java cacerts") store as \(entry).")
        }
    }

    /// Installs `root` into the system store and says what happened (also used by `server enroll --trust`).
    static func installInSystemStore(_ root: Certificate, store: SystemTrustStore) throws {
        try TrustAnchorCheck.validate(root)
        let name = root.commonName ?? "auto-ssl CA"
        let outcome = try store.install(root) { pem, path in
            try FileOperations.makeDirectory((path as NSString).deletingLastPathComponent, mode: 0o755)
            try FileOperations.writeAtomically(pem, to: path, mode: 0o644)
        }
        let fingerprintText = try Fingerprint.sha256(of: root)
        switch outcome {
        case .installed(let path): print("Trusted \(name) (\(fingerprintText)) in the system store: \(path)")
        case .alreadyTrusted(let path): print("\(name) is already trusted (\(path)); nothing changed.")
        }
    }

    func obtainRoot() async throws -> Certificate {
        if let certFile {
            let root = try Self.readCertificate(certFile)
            if let fingerprint {
                let expected = try Fingerprint.normalise(fingerprint)
                let actual = try Fingerprint.sha256(of: root)
                guard actual == expected else {
                    throw AutoSSLError(.trustFailure, "\(certFile) has fingerprint \(actual), expected \(expected); nothing was installed")
                }
            }
            return root
        }
        guard !caUrl.isEmpty, let fingerprint else {
            throw AutoSSLError.invalidArgument("give --ca-url and --fingerprint, or --cert-file")
        }
        let answer = try await CAClient.withConnection(to: try CAEndpoints(caUrl), fingerprint: fingerprint) { $0.root }
        // On stderr: a printed script (--print-script) is the only thing on stdout.
        Output.skippedURLs(answer.contact)
        if answer.contact.choices > 1 { Output.standardError("Root downloaded from the CA at \(answer.contact.url).\n") }
        return answer.value
    }

    static func readCertificate(_ path: String) throws -> Certificate {
        guard let data = FileManager.default.contents(atPath: Directories.absolute(path)) else {
            throw AutoSSLError.invalidArgument("\(path) cannot be read")
        }
        if let text = String(data: data, encoding: .utf8), text.contains("-----BEGIN CERTIFICATE-----") {
            let documents = ((try? PEMDocument.parseMultiple(pemString: text)) ?? []).filter { $0.discriminator == "CERTIFICATE" }
            let certificates = documents.compactMap { try? Certificate(derEncoded: $0.derBytes) }
            guard !certificates.isEmpty, certificates.count == documents.count else {
                throw AutoSSLError.invalidArgument("\(path) holds a PEM certificate that cannot be read")
            }
            return try anchor(in: certificates, path: path)
        }
        guard let certificate = try? Certificate(derEncoded: Array(data)) else {
            throw AutoSSLError.invalidArgument("\(path) is not a PEM or DER certificate")
        }
        return certificate
    }

    /// The root of a file with several certificates (a chain): the last self-signed one. A chain
    /// without one (a server's leaf and intermediate) is refused: neither is a trust anchor.
    static func anchor(in certificates: [Certificate], path: String) throws -> Certificate {
        guard certificates.count > 1 else { return certificates[0] }
        guard let root = certificates.last(where: TrustAnchorCheck.isSelfSigned) else {
            throw AutoSSLError(
                .trustFailure,
                "\(path) holds \(certificates.count) certificates and none of them is a root (self-signed): it looks like a server's chain; nothing was installed",
                hint: "trust the CA's root instead (root_ca.crt on the CA, ca.crt on an enrolled server, or --ca-url with --fingerprint)")
        }
        Output.standardError("note: \(path) holds \(certificates.count) certificates; using the root among them, \(root.subject)\n")
        return root
    }
}

struct ClientStatusCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status", abstract: "Show which trust stores hold auto-ssl roots.")

    @Option(help: "Also check that a TLS connection to this CA verifies with the system trust alone.") var caUrl: String?
    @Flag(help: "Print JSON.") var json = false
    @OptionGroup var storeOptions: TrustStoreOptions

    struct Report: Encodable {
        var roots: [TrustedRoot]
        var nss: [String]
        var java: [String]
        var caURL: String?
        var verifiesWithSystemTrust: Bool?
        var detail: String?

        enum CodingKeys: String, CodingKey {
            case roots, nss, java
            case caURL = "ca_url"
            case verifiesWithSystemTrust = "verifies_with_system_trust"
            case detail
        }
    }

    func run() async throws {
        let store = try storeOptions.store()
        let extra = ExtraTrustStores()
        var report = Report(roots: try store.list(), nss: extra.names(in: .nss), java: extra.names(in: .java))
        var failure: FailureKind?
        if let caUrl {
            let check = await CAClient.verifiesWithSystemTrust(url: caUrl)
            report.caURL = caUrl
            report.verifiesWithSystemTrust = check.ok
            report.detail = check.detail
            failure = check.failure
        }
        if json {
            try Output.json(report)
        } else {
            if report.roots.isEmpty { print("No auto-ssl root in the system trust store (\(store.directory)).") }
            for root in report.roots {
                print("\(root.name)  \(root.fingerprint)  expires \(Output.date(root.notAfter))  \(root.path)")
            }
            if !report.nss.isEmpty { print("NSS (browsers): \(report.nss.joined(separator: ", "))") }
            if !report.java.isEmpty { print("Java cacerts:   \(report.java.joined(separator: ", "))") }
            if let ok = report.verifiesWithSystemTrust {
                let words = failure == .network || failure == .general ? "could not be checked" : "does NOT verify with the system trust store"
                print("\(caUrl ?? ""): \(ok ? "verifies with the system trust store" : "\(words) (\(report.detail ?? ""))")")
            }
        }
        // Not trusted: 6; no answer: 5 (the trust store may be fine); another answer: 1.
        if report.verifiesWithSystemTrust == false { throw ExitCode((failure ?? .trustFailure).exitCode) }
    }
}

struct ClientUntrustCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "untrust", abstract: "Remove what `client trust` installed (all auto-ssl roots, or one), and nothing else.")

    @Option(help: "Only the root with this fingerprint.") var fingerprint: String?
    @OptionGroup var storeOptions: TrustStoreOptions

    func run() async throws {
        let wanted = try fingerprint.map(Fingerprint.normalise)
        let store = try storeOptions.store()
        let removed = try store.remove(fingerprint: wanted)
        let extra = ExtraTrustStores()
        var extraRemoved: [String] = []
        for kind in ExtraTrustStores.Kind.allCases {
            for name in extra.names(in: kind) where wanted == nil || name.hasSuffix("-" + wanted!.prefix(8)) {
                extra.remove(kind, name: name)
                extraRemoved.append("\(kind.rawValue): \(name)")
            }
        }
        if removed.isEmpty && extraRemoved.isEmpty {
            print(wanted.map { "No auto-ssl root with fingerprint \($0) was trusted here; nothing changed." }
                ?? "No auto-ssl root was trusted here; nothing changed.")
            return
        }
        for root in removed { print("Removed \(root.name) (\(root.fingerprint)) from the system store.") }
        for entry in extraRemoved { print("Removed \(entry).") }
    }
}
