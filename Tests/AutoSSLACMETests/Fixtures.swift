@testable import AutoSSLACME
import AutoSSLConfig
import AutoSSLCA
import AutoSSLCore
import AutoSSLIO
import AutoSSLStore
import AutoSSLWire
import Crypto
import Foundation
import NIOCore
import SwiftASN1
import Testing
import TestSupport
import X509

/// A CA initialised in a temporary directory, its database, and an ACME authority over them with
/// a fake network.
final class ACMEFixture: @unchecked Sendable {
    let dir = TemporaryDirectory()
    let directories: Directories
    let authority: Authority
    let database: CADatabase
    let acme: ACMEAuthority
    let network: FakeNetwork
    let provisioner: ACMEProvisionerSettings
    static let host = "127.0.0.1:9443"

    init(
        network: FakeNetwork = FakeNetwork(), attemptDelays: [TimeInterval] = [0, 0, 0],
        challenges: [String] = ACMEProvisionerSettings.allChallenges, challengeAnswerWait: TimeInterval = ACMEAuthority.challengeAnswerWait
    ) async throws {
        directories = Directories(
            configDir: dir.file("etc"), dataDir: dir.file("data"), certDir: dir.file("certs"), systemdDir: dir.file("sd"))
        var options = CAInitOptions()
        options.name = "ACME Test"
        options.addresses = [ListenAddress(host: "127.0.0.1", port: 9443)]
        options.caPassword = .given("ca-password-for-tests-123")
        options.provisionerPassword = .given("provisioner-password-for-tests")
        _ = try CAInitializer(directories: directories).initialise(options)
        provisioner = ACMEProvisionerSettings(name: "acme", challenges: challenges)
        var configuration = try AutoSSLConfiguration.load(from: directories.configFile)
        configuration.ca?.acmeProvisioners = [provisioner]
        try configuration.save(to: directories.configFile)
        let passwordFile = try dir.write("ca.pw", "ca-password-for-tests-123\n")
        (authority, database) = try await AuthorityLoader(directories: directories).open(passwordFile: passwordFile)
        self.network = network
        acme = try await ACMEAuthority(
            authority: authority, database: database.acme, network: network, ownMachineAddresses: [],
            attemptDelays: attemptDelays, attemptTimeout: 2, challengeAnswerWait: challengeAnswerWait)
    }

    func endpoint(_ path: String, id: String? = nil) -> ACMEEndpoint {
        acme.endpoint(provisioner: "acme", host: Self.host, path: "/acme/acme/" + path, id: id, remote: "test")!
    }

    var base: String { "https://\(Self.host)/acme/acme" }
}

/// An ACME client key that signs JWS requests (ES256).
struct TestAccount {
    let key: P256.Signing.PrivateKey
    var kid: String?

    init(key: P256.Signing.PrivateKey = P256.Signing.PrivateKey(), kid: String? = nil) {
        self.key = key
        self.kid = kid
    }

    var jwk: [String: String] {
        let raw = Array(key.publicKey.rawRepresentation)
        return ["kty": "EC", "crv": "P-256", "x": Base64URL.encode(Array(raw.prefix(32))), "y": Base64URL.encode(Array(raw.suffix(32)))]
    }

    var thumbprint: String {
        (try? ACMEAccountKey(jwk: ACMEAccountKey.Fields(kty: "EC", crv: "P-256", x: jwk["x"], y: jwk["y"])).thumbprint) ?? ""
    }

    /// The flattened JWS body of a request; `payload` nil is POST-as-GET.
    func body(url: String, nonce: String, payload: Data?, useJWK: Bool = false) throws -> Data {
        var header: [String: Any] = ["alg": "ES256", "nonce": nonce, "url": url]
        if useJWK || kid == nil { header["jwk"] = jwk } else { header["kid"] = kid }
        let protected = Base64URL.encode(Array(try JSONSerialization.data(withJSONObject: header, options: [.sortedKeys])))
        let payloadB64 = payload.map { Base64URL.encode(Array($0)) } ?? ""
        let signature = try key.signature(for: Data((protected + "." + payloadB64).utf8))
        return try JSONSerialization.data(withJSONObject: [
            "protected": protected, "payload": payloadB64, "signature": Base64URL.encode(Array(signature.rawRepresentation)),
        ])
    }
}

extension ACMEFixture {
    /// Sends one authenticated request through `authenticate` and the operation, as the HTTP layer does.
    func post(
        _ account: TestAccount, _ path: String, id: String? = nil, json: Any?, useJWK: Bool = false,
        _ operation: (ACMEAuthority) -> (ACMERequest) async throws -> ACMEReply
    ) async throws -> ACMEReply {
        let endpoint = endpoint(path, id: id)
        let payload = try json.map { try JSONSerialization.data(withJSONObject: $0) }
        let body = try account.body(url: endpoint.url, nonce: acme.makeNonce(), payload: payload, useJWK: useJWK)
        let request = try await acme.authenticate(endpoint, body: body, contentType: "application/jose+json")
        return try await operation(acme)(request)
    }

    func newAccount() async throws -> (TestAccount, String) {
        var account = TestAccount()
        let reply = try await post(account, "new-account", json: ["contact": ["mailto:a@example.com"]]) { $0.newAccount }
        #expect(reply.status == 201)
        let location = try #require(reply.location)
        account.kid = location
        return (account, String(location.split(separator: "/").last ?? ""))
    }

    func newOrder(_ account: TestAccount, names: [String]) async throws -> ACMEOrderObject {
        let identifiers = names.map { ["type": "dns", "value": $0] }
        let reply = try await post(account, "new-order", json: ["identifiers": identifiers]) { acme in { try await acme.newOrder($0) } }
        #expect(reply.status == 201)
        return try JSONDecoder().decode(ACMEOrderObject.self, from: Data(reply.body))
    }

    func order(_ account: TestAccount, id: String) async throws -> ACMEOrderObject {
        let reply = try await post(account, "order/" + id, id: id, json: nil) { acme in { try await acme.order($0) } }
        return try JSONDecoder().decode(ACMEOrderObject.self, from: Data(reply.body))
    }

    func authorization(_ account: TestAccount, url: String) async throws -> ACMEAuthorizationObject {
        let id = String(url.split(separator: "/").last ?? "")
        let reply = try await post(account, "authz/" + id, id: id, json: nil) { acme in { try await acme.authorization($0) } }
        return try JSONDecoder().decode(ACMEAuthorizationObject.self, from: Data(reply.body))
    }

    /// Answers the http-01 challenge of each authorization (the fake network serves `content`, or
    /// the right key authorization) and waits until the order leaves pending.
    func validate(_ account: TestAccount, order: ACMEOrderObject, orderID: String, content: String? = nil) async throws -> ACMEOrderObject {
        for url in order.authorizations {
            let authorization = try await authorization(account, url: url)
            let challenge = try #require(authorization.challenges.first { $0.type == "http-01" })
            network.serve(token: challenge.token, content: content ?? challenge.token + "." + account.thumbprint)
            let id = String(challenge.url.split(separator: "/").last ?? "")
            _ = try await post(account, "chall/" + id, id: id, json: [String: String]()) { acme in { try await acme.challenge($0) } }
        }
        for _ in 0..<200 {
            let current = try await self.order(account, id: orderID)
            if current.status != .pending { return current }
            try await Task.sleep(nanoseconds: 20_000_000)
        }
        throw TestFailure("the order stayed pending")
    }

    func csr(_ names: [String], key: SigningKey? = nil) throws -> String {
        let pem = try VerifiedCSR.make(names: names.map(SubjectName.init(parsing:)), key: key ?? SigningKey.generate(.p256))
        let csr = try CertificateSigningRequest(pemEncoded: pem)
        var serializer = DER.Serializer()
        try serializer.serialize(csr)
        return Base64URL.encode(serializer.serializedBytes)
    }
}

/// A network that serves what a test tells it and records what validation asked for.
final class FakeNetwork: ValidationNetwork, @unchecked Sendable {
    private let lock = NSLock()
    private var files: [String: String] = [:]
    private var _requests: [HTTPGet] = []
    /// name → addresses; names not here resolve to 203.0.113.10 (TEST-NET-3).
    var names: [String: [IPAddress]] = [:]
    var txt: [String: [String]] = [:]
    var alpn: Certificate?
    /// Answers by URL path, before the served files (redirects and the like).
    var answers: [String: HTTPAnswer] = [:]
    /// Each operation waits this long first (deadline tests).
    var delay: TimeInterval = 0

    var requests: [HTTPGet] { lock.withLock { _requests } }

    func serve(token: String, content: String) {
        lock.withLock { files["/.well-known/acme-challenge/" + token] = content }
    }

    func get(_ request: HTTPGet, deadline: ValidationDeadline) async throws -> HTTPAnswer {
        lock.withLock { _requests.append(request) }
        if delay > 0 { try await Task.sleep(nanoseconds: UInt64(delay * 1e9)) }
        if let answer = lock.withLock({ answers[request.path] }) { return answer }
        guard let content = lock.withLock({ files[request.path] }) else { return HTTPAnswer(status: 404, headers: [:], body: []) }
        return HTTPAnswer(status: 200, headers: [:], body: Array(content.utf8))
    }

    func txtRecords(_ name: String, resolver: String?, deadline: ValidationDeadline) async throws -> [String] {
        if delay > 0 { try await Task.sleep(nanoseconds: UInt64(delay * 1e9)) }
        return txt[name] ?? []
    }

    func addresses(of name: String, resolver: String?, deadline: ValidationDeadline) async throws -> [IPAddress] {
        names[name] ?? [IPAddress("203.0.113.10")].compactMap { $0 }
    }

    func alpnCertificate(address: IPAddress, port: Int, serverName: String, deadline: ValidationDeadline) async throws -> Certificate {
        if delay > 0 { try await Task.sleep(nanoseconds: UInt64(delay * 1e9)) }
        guard let alpn else { throw ACMEProblem(.tls, "the server did not negotiate ALPN acme-tls/1") }
        return alpn
    }
}
