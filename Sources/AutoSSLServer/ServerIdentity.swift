import AutoSSLCA
import AutoSSLCore
import Foundation
import Logging
import NIOCore
import NIOSSL
import Synchronization
import X509

/// The CA listener's own key and certificate. Issued from the intermediate at start and replaced
/// in-process once two thirds of its lifetime have passed; every new TLS handshake picks up the
/// current pair through NIOSSL's context callback, so renewal needs no restart.
final class ServerIdentity: Sendable {
    struct Current: Sendable {
        var chain: [NIOSSLCertificate]
        var key: NIOSSLPrivateKey
        var notBefore: Date
        var notAfter: Date
    }

    static let lifetime: TimeInterval = 7 * 86_400

    private let state: Mutex<Current>
    private let authority: Authority
    private let logger: Logger

    init(authority: Authority, logger: Logger) async throws {
        self.authority = authority
        self.logger = logger
        state = Mutex(try await Self.issue(authority))
    }

    static func issue(_ authority: Authority) async throws -> Current {
        let (key, chain) = try await authority.issueServerCertificate(lifetime: lifetime)
        let nioChain = try chain.map { try NIOSSLCertificate(bytes: try $0.derBytes(), format: .der) }
        let nioKey = try NIOSSLPrivateKey(bytes: key.pkcs8DERRepresentation, format: .der)
        return Current(chain: nioChain, key: nioKey, notBefore: chain[0].notValidBefore, notAfter: chain[0].notValidAfter)
    }

    var current: Current { state.withLock { $0 } }

    func renewIfDue(now: Date = Date()) async throws {
        let current = self.current
        let renewAt = current.notBefore.addingTimeInterval(current.notAfter.timeIntervalSince(current.notBefore) * 2 / 3)
        guard now >= renewAt else { return }
        let fresh = try await Self.issue(authority)
        state.withLock { $0 = fresh }
        logger.notice("renewed the CA server's TLS certificate (valid until \(fresh.notAfter))")
    }

    /// TLS 1.2 and 1.3 only; for TLS 1.2 only ECDHE with AEAD ciphers (TLS 1.3 suites are all AEAD).
    func tlsConfiguration() throws -> TLSConfiguration {
        let initial = current
        var configuration = TLSConfiguration.makeServerConfiguration(
            certificateChain: initial.chain.map { .certificate($0) }, privateKey: .privateKey(initial.key))
        configuration.minimumTLSVersion = .tlsv12
        configuration.maximumTLSVersion = .tlsv13
        configuration.cipherSuiteValues = [
            .TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
            .TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
            .TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
            .TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
            .TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
            .TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
        ]
        // Renewal and revocation accept the current certificate over mutual TLS on the same port;
        // clients without a certificate connect as before. Intermediates are trust anchors too, so a
        // client that sends only its leaf is accepted.
        configuration.certificateVerification = .optionalVerification
        configuration.trustRoots = .certificates(
            try ([authority.root, authority.intermediate] + authority.previousIntermediates).map {
                try NIOSSLCertificate(bytes: try $0.derBytes(), format: .der)
            })
        configuration.sslContextCallback = { [self] _, promise in
            let now = self.current
            var override = NIOSSLContextConfigurationOverride()
            override.certificateChain = now.chain.map { .certificate($0) }
            override.privateKey = .privateKey(now.key)
            promise.succeed(override)
        }
        return configuration
    }
}
