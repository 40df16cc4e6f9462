import AutoSSLCore
import Crypto
import Foundation
import NIOCore
import NIOPosix
import NIOSSL
import Testing
import X509

@testable import AutoSSLClient

/// The client's rules without a CA: URLs, tokens, the chain check, how refusals and network
/// failures become errors with exit-code kinds.
@Suite struct CAClientTests {
    /// A root, an intermediate under it and a leaf under that, as a CA would hand them out.
    struct Chain {
        let root: Certificate
        let intermediate: Certificate
        let leaf: Certificate

        init(caName: String = "Client Test") throws {
            let now = Date()
            let rootKey = try SigningKey.generate(.p256)
            root = try CertificateProfiles.root(caName: caName, key: rootKey, notBefore: now - 60, notAfter: now + 86_400)
            let intermediateKey = try SigningKey.generate(.p256)
            intermediate = try CertificateProfiles.intermediate(
                caName: caName, publicKey: intermediateKey.publicKey, root: root, rootKey: rootKey, notBefore: now - 60,
                notAfter: now + 86_400)
            let leafKey = try SigningKey.generate(.p256)
            leaf = try CertificateProfiles.leaf(
                names: [.dns("client.internal")], publicKey: leafKey.publicKey, serial: CertificateProfiles.randomSerial(),
                issuer: intermediate, issuerKey: intermediateKey, notBefore: now - 60, notAfter: now + 3_600)
        }

        var json: Data {
            get throws {
                let pems = try [leaf.pemString(), intermediate.pemString()]
                return try JSONSerialization.data(withJSONObject: ["crt": pems[0], "ca": pems[1], "certChain": pems])
            }
        }
    }

    @Test func urlsAreHTTPSWithoutTrailingSlashes() throws {
        #expect(try CAClient.normalise(url: " https://ca.internal:9000// ") == "https://ca.internal:9000")
        for bad in ["http://ca.internal:9000", "ca.internal:9000", "https://", ""] {
            #expect(throws: AutoSSLError.self, "\(bad)") { try CAClient.normalise(url: bad) }
        }
        #expect(CAClient.target(of: "https://ca.internal") == "ca.internal:443")
        #expect(CAClient.target(of: "https://10.0.0.1:9443/1.0/sign") == "10.0.0.1:9443")
    }

    @Test func signTokensCarryWhatTheCAChecks() throws {
        let chain = try Chain()
        let client = try CAClient(baseURL: "https://ca.internal:9443", root: chain.root)
        defer { Task { await client.shutdown() } }
        let key = ECJWK(privateKey: P256.Signing.PrivateKey())
        let now = Date(timeIntervalSince1970: 1_900_000_000)
        let token = try client.signToken(provisioner: "admin", key: key, names: [.dns("a.internal"), try SubjectName(parsing: "10.0.0.7")], now: now)
        let parsed = try JWT.parse(token)
        #expect(parsed.header.alg == "ES256" && parsed.header.kid == key.thumbprint)
        #expect(JWT.verifyES256(parsed, key: try key.publicKey()))
        let claims = try ProvisionerTokenClaims.decode(parsed.payload)
        #expect(claims.iss == "admin" && claims.aud == ["https://ca.internal:9443/1.0/sign"])
        #expect(claims.sans == ["a.internal", "10.0.0.7"] && claims.sub == "a.internal")
        #expect(claims.nbf == 1_900_000_000 && claims.exp == 1_900_000_300)
        #expect(claims.sha == (try Fingerprint.sha256(of: chain.root)))
        #expect(claims.jti.count == 32)
        // Two tokens never share an id.
        let again = try ProvisionerTokenClaims.decode(try JWT.parse(try client.signToken(provisioner: "admin", key: key, names: [.dns("a.internal")], now: now)).payload)
        #expect(again.jti != claims.jti)
    }

    @Test func aChainMustLeadToThePinnedRoot() throws {
        let chain = try Chain()
        let client = try CAClient(baseURL: "https://ca.internal:9443", root: chain.root)
        defer { Task { await client.shutdown() } }
        let signed = try client.parseChain(try chain.json, for: chain.leaf.publicKey)
        #expect(signed.leaf == chain.leaf && signed.chain.count == 2)
        // A chain for another key than the one asked for is refused: its certificate and the
        // caller's key would not go together.
        do {
            _ = try client.parseChain(try chain.json, for: Certificate.PublicKey(P256.Signing.PrivateKey().publicKey))
            Issue.record("a certificate for another key was accepted")
        } catch let error as AutoSSLError {
            #expect(error.kind == .trustFailure && error.message.contains("different key"))
            // Its own advice (check the URL, the CA's audit log), which callers pass on as it is.
            #expect(error.hintIsFinal && error.hint?.contains("https://ca.internal:9443") == true, "\(error)")
        }
        #expect(signed.pemChain == (try chain.leaf.pemString() + chain.intermediate.pemString()))

        // The same answer from another CA does not verify against this root.
        let other = try Chain(caName: "Somebody Else")
        do {
            _ = try client.parseChain(try other.json, for: other.leaf.publicKey)
            Issue.record("a foreign chain was accepted")
        } catch let error as AutoSSLError {
            #expect(error.kind == .trustFailure && error.message.contains("pinned root"))
            // Not "enroll again" with the same fingerprint, which would fail the same way.
            #expect(error.hintIsFinal && error.hint?.contains(client.rootFingerprint) == true, "\(error)")
        }
        #expect(throws: AutoSSLError.self) { try client.verify(chain: [chain.leaf]) }
        #expect(throws: AutoSSLError.self) { try client.parseChain(Data(#"{"certChain": []}"#.utf8), for: chain.leaf.publicKey) }
        #expect(throws: AutoSSLError.self) { try client.parseChain(Data("not json".utf8), for: chain.leaf.publicKey) }
    }

    @Test func refusalsBecomeErrorsOfTheRightKind() {
        let unauthorized = CAClient.apiError(status: 401, body: Data(#"{"status":401,"message":"the token was already used"}"#.utf8), action: "sign the certificate")
        #expect(unauthorized.kind == .trustFailure)
        #expect(unauthorized.message == "the CA refused to sign the certificate (HTTP 401): the token was already used")
        #expect(CAClient.apiError(status: 403, body: Data(), action: "x").kind == .trustFailure)
        #expect(CAClient.apiError(status: 503, body: Data(), action: "x").kind == .network)
        #expect(CAClient.apiError(status: 400, body: Data(), action: "x").kind == .general)
        // A body that is not the API's JSON is quoted, at most 300 bytes of it.
        let long = CAClient.apiError(status: 502, body: Data(String(repeating: "y", count: 5_000).utf8), action: "x")
        #expect(long.message.count < 400)
    }

    @Test func networkFailuresAreReportedInPlainWords() {
        let url = "https://127.0.0.1:9443"
        // A connection-level failure (failover moves on after it) carries the error a single URL reports.
        let refused = CAClient.map(IOError(errnoCode: ECONNREFUSED, reason: "connect"), url: url)
        let error = (refused as? CAConnectionFailure)?.error
        #expect(error?.kind == .network)
        #expect(error?.message == "could not reach the CA at https://127.0.0.1:9443: connection refused by 127.0.0.1:9443 (is the server running there?)", "\(refused)")
        let tls = CAClient.map(NIOSSLError.handshakeFailed(.sslError([])), url: url) as? AutoSSLError
        #expect(tls?.kind == .trustFailure && tls?.message.hasPrefix("TLS with https://127.0.0.1:9443 failed: the TLS handshake failed") == true, "\(String(describing: tls))")
        // An operator's error passes through as it is.
        let own = AutoSSLError.invalidArgument("already explained")
        #expect((CAClient.map(own, url: url) as? AutoSSLError)?.message == "already explained")
        // Anything unknown still names the CA and says what to check.
        struct Odd: Error {}
        let odd = CAClient.map(Odd(), url: url) as? AutoSSLError
        #expect(odd?.message == "could not reach the CA at https://127.0.0.1:9443: no usable answer from 127.0.0.1:9443")
        #expect(odd?.hint?.contains("auto-ssl ca serve") == true)
    }

    /// The URL's host must be a name of the CA's certificate: DNS names case-insensitively (one
    /// wildcard label), IP literals as addresses; loopback reachability is not enough.
    @Test func theURLsHostMustBeANameOfTheCAsCertificate() throws {
        let chain = try Chain()
        let key = try SigningKey.generate(.p256)
        let leaf = try CertificateProfiles.leaf(
            names: [.dns("ca.internal"), .dns("*.pki.internal"), try SubjectName(parsing: "127.0.0.1"), try SubjectName(parsing: "::1")],
            publicKey: key.publicKey, serial: CertificateProfiles.randomSerial(), issuer: chain.intermediate,
            issuerKey: try SigningKey.generate(.p256), notBefore: Date() - 60, notAfter: Date() + 3_600)
        for host in ["ca.internal", "CA.Internal", "ca.internal.", "127.0.0.1", "::1", "[::1]", "a.pki.internal"] {
            #expect(CAClient.certificate(leaf, names: host), "\(host)")
        }
        for host in ["localhost", "other.internal", "10.0.0.1", "a.b.pki.internal", "pki.internal", "internal"] {
            #expect(!CAClient.certificate(leaf, names: host), "\(host)")
        }
        #expect(CAClient.url(for: .dns("ca.internal"), port: 9000) == "https://ca.internal:9000")
        #expect(CAClient.url(for: try SubjectName(parsing: "::1"), port: 9443) == "https://[::1]:9443")
        #expect(CAClient.url(for: try SubjectName(parsing: "10.0.0.5"), port: nil) == "https://10.0.0.5")
    }
}
