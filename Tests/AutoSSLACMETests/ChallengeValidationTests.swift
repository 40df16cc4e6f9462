@testable import AutoSSLACME
import AutoSSLCore
import AutoSSLWire
import Crypto
import Foundation
import SwiftASN1
import Testing
import X509

/// The rule of each challenge over a fake network: what counts as proof, what is refused, and
/// that the address policy and the deadline hold whatever the network does.
@Suite struct ChallengeValidationTests {
    static let token = "tok"
    static let keyAuthorization = "tok.thumb"

    func validator(_ network: FakeNetwork, policy: ValidationAddressPolicy = ValidationAddressPolicy(), timeout: TimeInterval = 10) -> ChallengeValidator {
        ChallengeValidator(addressPolicy: policy, network: network, timeout: timeout)
    }

    func http01(_ network: FakeNetwork, _ name: String = "web.example.test", policy: ValidationAddressPolicy = ValidationAddressPolicy()) async -> ACMEProblem? {
        await validator(network, policy: policy).validate(
            type: "http-01", identifier: .dns(name), token: Self.token, keyAuthorization: Self.keyAuthorization)
    }

    // MARK: - http-01

    @Test func http01AcceptsTheKeyAuthorizationAndNothingElse() async throws {
        let network = FakeNetwork()
        network.serve(token: Self.token, content: Self.keyAuthorization + "\n")
        #expect(await http01(network) == nil)
        let request = try #require(network.requests.first)
        #expect(request.host == "web.example.test" && request.port == 80 && !request.tls)
        #expect(request.path == "/.well-known/acme-challenge/tok" && request.address == IPAddress("203.0.113.10"))

        let wrong = FakeNetwork()
        wrong.serve(token: Self.token, content: "tok.other-thumbprint")
        let problem = await http01(wrong)
        #expect(problem?.kind == .incorrectResponse && problem?.detail.contains("wrong content") == true, "\(String(describing: problem))")

        let missing = await http01(FakeNetwork())
        #expect(missing?.kind == .unauthorized && missing?.detail.contains("answered HTTP 404") == true)
    }

    @Test func http01FollowsRedirectsButNeverToARefusedAddress() async throws {
        let network = FakeNetwork()
        network.answers["/.well-known/acme-challenge/tok"] = HTTPAnswer(status: 302, headers: ["location": "http://127.0.0.1/steal"], body: [])
        let problem = await http01(network)
        #expect(problem?.kind == .rejectedIdentifier && problem?.detail.contains("loopback") == true, "\(String(describing: problem))")
        #expect(network.requests.map(\.address) == [IPAddress("203.0.113.10")], "nothing was sent to the loopback address")

        // The same through a name that resolves to loopback.
        let byName = FakeNetwork()
        byName.names["inside.example.test"] = [IPAddress("127.0.0.1")].compactMap { $0 }
        byName.answers["/.well-known/acme-challenge/tok"] = HTTPAnswer(status: 301, headers: ["location": "http://inside.example.test/x"], body: [])
        let refused = await http01(byName)
        #expect(refused?.kind == .rejectedIdentifier, "\(String(describing: refused))")
        #expect(byName.requests.count == 1)

        // Allowed by the operator, the redirect is followed to the path it names.
        let allowed = try ValidationAddressPolicy(allowed: [IPRange(parsing: "127.0.0.0/8")])
        byName.answers["/x"] = HTTPAnswer(status: 200, headers: [:], body: Array(Self.keyAuthorization.utf8))
        #expect(await http01(byName, policy: allowed) == nil)
        #expect(byName.requests.last?.address == IPAddress("127.0.0.1") && byName.requests.last?.host == "inside.example.test")

        // Other ports, other schemes and endless redirects are refused.
        let port = FakeNetwork()
        port.answers["/.well-known/acme-challenge/tok"] = HTTPAnswer(status: 302, headers: ["location": "http://web.example.test:8080/"], body: [])
        #expect(await http01(port)?.detail.contains("follows redirects only to port") == true)
        let loop = FakeNetwork()
        loop.answers["/.well-known/acme-challenge/tok"] = HTTPAnswer(status: 302, headers: ["location": "/.well-known/acme-challenge/tok"], body: [])
        #expect(await http01(loop)?.detail.contains("more than 10 redirects") == true)
        #expect(loop.requests.count == 11)
    }

    @Test func anIdentifierOnARefusedAddressIsNeverContacted() async throws {
        let network = FakeNetwork()
        let problem = await validator(network).validate(
            type: "http-01", identifier: .ip(try #require(IPAddress("127.0.0.1"))), token: Self.token, keyAuthorization: Self.keyAuthorization)
        #expect(problem?.kind == .rejectedIdentifier && problem?.detail.contains("--validation-allow") == true)
        #expect(network.requests.isEmpty)
        let own = try #require(IPAddress("198.51.100.7"))
        let ownAddress = await validator(network, policy: ValidationAddressPolicy(ownAddresses: [own])).validate(
            type: "http-01", identifier: .ip(own), token: Self.token, keyAuthorization: Self.keyAuthorization)
        #expect(ownAddress?.kind == .rejectedIdentifier && network.requests.isEmpty)
    }

    /// The fake network ignores the deadline: the validator's own backstop ends the attempt.
    @Test func aResponderThatNeverAnswersCostsOneDeadline() async throws {
        let network = FakeNetwork()
        network.delay = 400
        network.serve(token: Self.token, content: Self.keyAuthorization)
        let started = Date()
        let problem = await validator(network, timeout: 1).validate(
            type: "http-01", identifier: .dns("slow.example.test"), token: Self.token, keyAuthorization: Self.keyAuthorization)
        #expect(problem?.kind == .connection && problem?.detail.contains("timeout") == true, "\(String(describing: problem))")
        // The deadline (1 s) plus the backstop's grace (5 s), far from the responder's 400 s. The bound
        // is loose on purpose: with the whole suite running on two cores, the test process's task pool
        // can be busy for a minute before the backstop's timer task gets a thread.
        #expect(Date().timeIntervalSince(started) < 200)
        let dns = await validator(network, timeout: 1).validate(
            type: "dns-01", identifier: .dns("slow.example.test"), token: Self.token, keyAuthorization: Self.keyAuthorization)
        #expect(dns?.detail.contains("timeout") == true)
    }

    // MARK: - dns-01

    @Test func dns01WantsTheDigestInATXTRecord() async throws {
        let network = FakeNetwork()
        let expected = ACMEChallengeValues.dnsTXT(Self.keyAuthorization)
        network.txt["_acme-challenge.zone.example.test"] = ["unrelated", expected]
        func dns01(_ identifier: ACMEIdentifierValue) async -> ACMEProblem? {
            await validator(network).validate(type: "dns-01", identifier: identifier, token: Self.token, keyAuthorization: Self.keyAuthorization)
        }
        #expect(await dns01(.dns("zone.example.test")) == nil)
        network.txt["_acme-challenge.zone.example.test"] = ["something-else"]
        #expect(await dns01(.dns("zone.example.test"))?.kind == .incorrectResponse)
        network.txt = [:]
        #expect(await dns01(.dns("zone.example.test"))?.detail.contains("no TXT record") == true)
        #expect(await dns01(.ip(try #require(IPAddress("203.0.113.1"))))?.kind == .malformed)
    }

    // MARK: - tls-alpn-01

    static func alpnCertificate(names: [GeneralName], digest: [UInt8], critical: Bool = true) throws -> Certificate {
        let key = P256.Signing.PrivateKey()
        var serializer = DER.Serializer()
        try serializer.serialize(ASN1OctetString(contentBytes: ArraySlice(digest)))
        let extensions = try Certificate.Extensions {
            SubjectAlternativeNames(names)
            Certificate.Extension(oid: ChallengeValidator.acmeIdentifierOID, critical: critical, value: ArraySlice(serializer.serializedBytes))
        }
        let name = try DistinguishedName { CommonName("acme challenge") }
        return try Certificate(
            version: .v3, serialNumber: Certificate.SerialNumber(), publicKey: .init(key.publicKey),
            notValidBefore: Date().addingTimeInterval(-60), notValidAfter: Date().addingTimeInterval(3_600), issuer: name, subject: name,
            signatureAlgorithm: .ecdsaWithSHA256, extensions: extensions, issuerPrivateKey: .init(key))
    }

    @Test func tlsALPN01ChecksTheNameAndTheCriticalDigest() async throws {
        let digest = ACMEChallengeValues.tlsALPNDigest(Self.keyAuthorization)
        let network = FakeNetwork()
        func tlsALPN01(_ name: String = "tls.example.test") async -> ACMEProblem? {
            await validator(network).validate(type: "tls-alpn-01", identifier: .dns(name), token: Self.token, keyAuthorization: Self.keyAuthorization)
        }
        network.alpn = try Self.alpnCertificate(names: [.dnsName("tls.example.test")], digest: digest)
        #expect(await tlsALPN01() == nil)
        #expect(await tlsALPN01("other.example.test")?.detail.contains("must name exactly") == true)
        network.alpn = try Self.alpnCertificate(names: [.dnsName("tls.example.test")], digest: Array(repeating: 0, count: 32))
        #expect(await tlsALPN01()?.kind == .incorrectResponse)
        network.alpn = try Self.alpnCertificate(names: [.dnsName("tls.example.test")], digest: digest, critical: false)
        #expect(await tlsALPN01()?.detail.contains("must be critical") == true)
        network.alpn = try Self.alpnCertificate(names: [.dnsName("tls.example.test"), .dnsName("extra.example.test")], digest: digest)
        #expect(await tlsALPN01()?.kind == .unauthorized)
        network.alpn = nil
        #expect(await tlsALPN01()?.kind == .tls)
    }

    @Test func ipIdentifiersUseTheReverseNameForSNI() throws {
        #expect(ACMEIdentifierValue.ip(try #require(IPAddress("192.0.2.5"))).tlsServerName == "5.2.0.192.in-addr.arpa")
        #expect(ACMEIdentifierValue.ip(try #require(IPAddress("2001:db8::1"))).hostHeader == "[2001:db8::1]")
    }
}
