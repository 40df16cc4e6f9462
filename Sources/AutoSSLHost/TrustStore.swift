import AutoSSLCore
import Foundation
import X509

/// The system trust store of one OS family: where anchors go and which command refreshes it.
public struct TrustStoreLayout: Sendable, Equatable {
    public var family: OSFamily
    public var anchorDirectory: String
    public var fileExtension: String
    public var refreshCommand: [String]

    public static func forFamily(_ family: OSFamily) throws -> TrustStoreLayout {
        switch family {
        case .debian, .alpine:
            return .init(family: family, anchorDirectory: "/usr/local/share/ca-certificates", fileExtension: "crt",
                         refreshCommand: ["update-ca-certificates"])
        case .rhel:
            return .init(family: family, anchorDirectory: "/etc/pki/ca-trust/source/anchors", fileExtension: "pem",
                         refreshCommand: ["update-ca-trust", "extract"])
        case .suse:
            return .init(family: family, anchorDirectory: "/etc/pki/trust/anchors", fileExtension: "pem",
                         refreshCommand: ["update-ca-certificates"])
        case .arch:
            // What `trust anchor --store` does: an anchor file in p11-kit's source directory, then re-extract.
            return .init(family: family, anchorDirectory: "/etc/ca-certificates/trust-source/anchors", fileExtension: "crt",
                         refreshCommand: ["trust", "extract-compat"])
        case .macos, .unknown:
            throw AutoSSLError(
                .missingDependency, "no known system trust store for this OS (\(family.rawValue))",
                hint: "pass --os debian|rhel|suse|arch|alpine, or use --print-script macos|windows")
        }
    }
}

/// One auto-ssl root found in a trust store.
public struct TrustedRoot: Sendable, Codable, Equatable {
    public var name: String
    public var fingerprint: String
    public var notAfter: Date
    public var path: String
    public var store: String

    enum CodingKeys: String, CodingKey {
        case name, fingerprint
        case notAfter = "not_after"
        case path, store
    }
}

/// Installs, lists and removes auto-ssl roots in the system trust store. Only files named
/// `auto-ssl-*` are ever touched; `rootFS` lets tests point everything at a fake filesystem.
public struct SystemTrustStore: Sendable {
    public let layout: TrustStoreLayout
    public let rootFS: String
    let runner: CommandRunning

    public init(layout: TrustStoreLayout, rootFS: String = "", runner: CommandRunning = SystemCommandRunner()) {
        self.layout = layout
        self.rootFS = rootFS
        self.runner = runner
    }

    public var directory: String { rootFS + layout.anchorDirectory }

    /// `auto-ssl-<ca name>-<first 8 of fingerprint>.<ext>`: several CAs coexist, and the fingerprint
    /// identifies the file for `untrust`.
    public func fileName(for root: Certificate) throws -> String {
        let name = (root.subject.flatMap { $0 }.first { $0.type == .RDNAttributeType.organizationName })
            .map { String(describing: $0.value) } ?? root.commonName ?? "ca"
        let slug = String(name.lowercased().map { $0.isLetter || $0.isNumber ? $0 : "-" })
            .split(separator: "-").joined(separator: "-")
        let fingerprint = try Fingerprint.sha256(of: root)
        return "auto-ssl-\(slug.isEmpty ? "ca" : String(slug.prefix(40)))-\(fingerprint.prefix(8)).\(layout.fileExtension)"
    }

    public enum InstallOutcome: Equatable, Sendable {
        case installed(path: String)
        case alreadyTrusted(path: String)
    }

    /// Writes the anchor (0644) and refreshes the store; a second call with the same root changes nothing.
    public func install(_ root: Certificate, write: (String, String) throws -> Void) throws -> InstallOutcome {
        let path = directory + "/" + (try fileName(for: root))
        let pem = try root.pemString()
        if let existing = try? String(contentsOfFile: path, encoding: .utf8), existing == pem {
            return .alreadyTrusted(path: path)
        }
        try write(pem, path)
        try refresh()
        return .installed(path: path)
    }

    /// Removes our anchors (all, or the one with `fingerprint`) and refreshes the store.
    public func remove(fingerprint: String?) throws -> [TrustedRoot] {
        let removed = try list().filter { fingerprint == nil || $0.fingerprint == fingerprint }
        for root in removed {
            do {
                try FileManager.default.removeItem(atPath: root.path)
            } catch {
                throw AutoSSLError(.permissionDenied, "could not remove \(root.path)", hint: "rerun with sudo")
            }
        }
        if !removed.isEmpty { try refresh() }
        return removed
    }

    /// Every auto-ssl root in this store.
    public func list() throws -> [TrustedRoot] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        return names.filter { $0.hasPrefix("auto-ssl-") }.sorted().compactMap { name in
            let path = directory + "/" + name
            guard let text = try? String(contentsOfFile: path, encoding: .utf8),
                  let certificate = try? Certificate(pemEncoded: text),
                  let fingerprint = try? Fingerprint.sha256(of: certificate) else { return nil }
            return TrustedRoot(
                name: certificate.commonName ?? name, fingerprint: fingerprint, notAfter: certificate.notValidAfter,
                path: path, store: "system (\(layout.family.rawValue))")
        }
    }

    func refresh() throws {
        // With a fake root filesystem there is no system to refresh.
        guard rootFS.isEmpty else { return }
        guard runner.which(layout.refreshCommand[0]) != nil else {
            throw AutoSSLError(
                .missingDependency, "\(layout.refreshCommand[0]) is not installed",
                hint: layout.family == .debian ? "install the ca-certificates package" : "install your distribution's CA certificates package")
        }
        guard let result = runner.run(layout.refreshCommand[0], Array(layout.refreshCommand.dropFirst()), timeout: 120),
              result.status == 0 else {
            throw AutoSSLError.general("`\(layout.refreshCommand.joined(separator: " "))` failed")
        }
    }
}

/// Checks that a certificate can serve as a trust anchor.
public enum TrustAnchorCheck {
    public static func validate(_ certificate: Certificate) throws {
        guard let constraints = try? certificate.extensions.basicConstraints,
              case .isCertificateAuthority = constraints else {
            throw AutoSSLError(.trustFailure, "the certificate is not a CA certificate (basicConstraints CA:TRUE is missing)")
        }
        guard isSelfSigned(certificate) else {
            throw AutoSSLError(
                .trustFailure,
                "the certificate \(certificate.subject) is not a root: it was issued by \(certificate.issuer), and only a root (self-signed) certificate is a trust anchor",
                hint: "trust the root it chains to (root_ca.crt on the CA, ca.crt on an enrolled server, or --ca-url with --fingerprint)")
        }
        guard certificate.notValidAfter > Date() else {
            throw AutoSSLError(.trustFailure, "the CA certificate expired on \(certificate.notValidAfter)")
        }
    }

    /// Issued by itself: same subject and issuer, and its signature verifies with its own key.
    public static func isSelfSigned(_ certificate: Certificate) -> Bool {
        certificate.subject == certificate.issuer && certificate.publicKey.isValidSignature(certificate.signature, for: certificate)
    }
}
