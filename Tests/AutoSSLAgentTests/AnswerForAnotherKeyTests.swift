import AutoSSLConfig
import AutoSSLCore
import AutoSSLIO
import Foundation
import Testing
import TestSupport
import X509

@testable import AutoSSLAgent
@testable import AutoSSLClient

/// A CA's answer with a certificate for another key than the one asked for is refused by the
/// client (`CAClient.parseChain`) with its own advice: the CA did not refuse, nothing was written,
/// check the CA URL and the CA's audit log. `server renew` and `server enroll --adopt` pass that
/// advice on instead of their "enroll again" for a refusal.
struct AnswerForAnotherKeyTests {
    /// A root, an intermediate under it and a leaf under that, as a CA hands them out (as in
    /// CAClientTests), and the `/renew` answer that carries them.
    struct Chain {
        let root: Certificate
        let leaf: Certificate
        let json: Data

        init(leafExpiresIn lifetime: TimeInterval = 3_600) throws {
            let now = Date()
            let rootKey = try SigningKey.generate(.p256)
            root = try CertificateProfiles.root(caName: "Agent Test", key: rootKey, notBefore: now - 7_200, notAfter: now + 86_400)
            let intermediateKey = try SigningKey.generate(.p256)
            let intermediate = try CertificateProfiles.intermediate(
                caName: "Agent Test", publicKey: intermediateKey.publicKey, root: root, rootKey: rootKey, notBefore: now - 7_200,
                notAfter: now + 86_400)
            leaf = try CertificateProfiles.leaf(
                names: [.dns("web01.internal")], publicKey: try SigningKey.generate(.p256).publicKey,
                serial: CertificateProfiles.randomSerial(), issuer: intermediate, issuerKey: intermediateKey, notBefore: now - 3_600,
                notAfter: now + lifetime)
            let pems = try [leaf.pemString(), intermediate.pemString()]
            json = try JSONSerialization.data(withJSONObject: ["crt": pems[0], "ca": pems[1], "certChain": pems])
        }
    }

    static let caURL = "https://ca.internal:9443"

    /// What `CAClient.renew` throws when the answer's certificate is not for the holder's key.
    func refusal(_ chain: Chain) throws -> AutoSSLError {
        let client = try CAClient(baseURL: Self.caURL, root: chain.root)
        defer { Task { await client.shutdown() } }
        do {
            _ = try client.parseChain(chain.json, for: try SigningKey.generate(.p256).publicKey)
        } catch let error as AutoSSLError {
            return error
        }
        Issue.record("a certificate for another key was accepted")
        return AutoSSLError.general("accepted")
    }

    func enrollment() -> ServerEnrollment {
        ServerEnrollment(
            caURL: Self.caURL, fingerprint: String(repeating: "a", count: 64), names: ["web01.internal"],
            certPath: "/etc/ssl/auto-ssl/server.crt", keyPath: "/etc/ssl/auto-ssl/server.key", rootPath: "/etc/ssl/auto-ssl/ca.crt",
            combinedPath: nil, keyType: "ec", provisioner: "admin", duration: nil, reload: "nginx",
            reloadCommand: "systemctl reload nginx", renewalTimer: true, enrolledAt: Date(timeIntervalSince1970: 1_800_000_000))
    }

    func makeAgent(_ temp: TemporaryDirectory) -> ServerAgent {
        ServerAgent(directories: Directories(
            configDir: temp.file("etc"), dataDir: temp.file("data"), certDir: temp.file("certs"), systemdDir: temp.file("systemd")))
    }

    @Test func theClientsRefusalSaysWhatHappenedAndWhatToCheck() throws {
        let refused = try refusal(try Chain())
        #expect(refused.kind == .trustFailure && refused.message.contains("different key"), "\(refused)")
        #expect(refused.hintIsFinal)
        let hint = refused.hint ?? ""
        for words in [Self.caURL, "proxy", "another key", "no certificate or key file was changed", "audit log", "try again"] {
            #expect(hint.contains(words), "\(words): \(hint)")
        }
        #expect(!hint.lowercased().contains("enroll again") && !hint.contains("auto-ssl server enroll"), "\(hint)")
    }

    @Test func serverRenewKeepsTheClientsAdviceInsteadOfEnrollAgain() throws {
        let temp = TemporaryDirectory("agent-other-key")
        let agent = makeAgent(temp)
        let chain = try Chain()
        let refused = try refusal(chain)
        let now = Date()

        let failure = agent.failure(refused, enrollment: enrollment(), leaf: chain.leaf, now: now)
        #expect(failure.kind == .trustFailure && failure.message == refused.message)
        #expect(failure.hint == refused.hint, "\(failure)")
        #expect(failure.hint?.contains("auto-ssl server enroll") == false, "\(failure)")
        // Not a revocation: renewals go on.
        #expect(ServerState.load(from: agent.stateFile).revokedSerial == nil)
        #expect(ServerState.load(from: agent.stateFile).lastAttempt?.message == refused.message)

        // From the third failure in a row, the time left is added to the advice, not put in its place.
        _ = agent.failure(refused, enrollment: enrollment(), leaf: chain.leaf, now: now)
        let third = agent.failure(refused, enrollment: enrollment(), leaf: chain.leaf, now: now)
        let hint = third.hint ?? ""
        #expect(hint.hasPrefix(refused.hint ?? "?") && hint.contains("3 times in a row"), "\(hint)")
        #expect(!hint.contains("auto-ssl server enroll"), "\(hint)")

        // An expired certificate the CA still renews (its grace window) is not "no longer renewable".
        let expired = try Chain(leafExpiresIn: -60)
        let late = agent.failure(try refusal(expired), enrollment: enrollment(), leaf: expired.leaf, now: now)
        #expect(late.hint?.contains("can no longer be renewed") == false && late.hint?.contains(Self.caURL) == true, "\(late)")
        // Once failures pile up, the time left is said as a past expiry, not "expires in 0 days".
        _ = agent.failure(try refusal(expired), enrollment: enrollment(), leaf: expired.leaf, now: now)
        let lateThird = agent.failure(try refusal(expired), enrollment: enrollment(), leaf: expired.leaf, now: now)
        #expect(lateThird.hint?.contains("the certificate expired at") == true && lateThird.hint?.contains("expires in") == false, "\(lateThird)")

        // A refusal by the CA itself still gets "enroll again".
        let denied = CAClient.apiError(status: 403, body: Data(#"{"message":"not renewable"}"#.utf8), action: "renew the certificate")
        let refusedByCA = agent.failure(denied, enrollment: enrollment(), leaf: chain.leaf, now: now)
        #expect(refusedByCA.hint?.contains("auto-ssl server enroll") == true, "\(refusedByCA)")
    }

    @Test func adoptionKeepsTheClientsAdviceInsteadOfEnrollNormally() throws {
        let refused = try refusal(try Chain())
        let fingerprint = String(repeating: "b", count: 64)
        let failure = ServerAgent.adoptionFailure(refused, caURL: Self.caURL, fingerprint: fingerprint)
        #expect(failure.kind == .trustFailure && failure.message == refused.message)
        #expect(failure.hint == refused.hint, "\(failure)")
        #expect(failure.hint?.contains("ca import") == false, "\(failure)")

        // A refusal by the CA itself still says when a certificate can be taken over.
        let denied = CAClient.apiError(status: 403, body: Data(#"{"message":"not issued here"}"#.utf8), action: "renew the certificate")
        let refusedByCA = ServerAgent.adoptionFailure(denied, caURL: Self.caURL, fingerprint: fingerprint)
        #expect(refusedByCA.hint?.contains("nothing was changed") == true && refusedByCA.hint?.contains("ca import") == true)
    }
}
