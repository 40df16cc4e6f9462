@testable import AutoSSLCA
import AutoSSLCore
import Crypto
import Foundation
import Testing
import TestSupport
import X509

/// Tokens an attacker on the network can send: out-of-range times, foreign certificates. Each must
/// be refused with an error (never a trap), and nothing may be stored.
@Suite struct HostileTokenTests {
    /// A compact JWS over `payload` exactly as given (so numbers can be anything JSON allows).
    static func rawToken(header: String, payload: String, sign: ([UInt8]) throws -> [UInt8]) throws -> String {
        let input = Base64URL.encode(Data(header.utf8)) + "." + Base64URL.encode(Data(payload.utf8))
        return input + "." + Base64URL.encode(try sign(Array(input.utf8)))
    }

    /// A self-signed certificate (not from the CA under test) and its key.
    static func selfSigned(_ name: String) throws -> (Certificate, SigningKey) {
        let key = try SigningKey.generate(.p256)
        let subject = try DistinguishedName { CommonName(name) }
        let now = Date()
        let certificate = try Certificate(
            version: .v3, serialNumber: .init(), publicKey: key.publicKey,
            notValidBefore: now.addingTimeInterval(-60), notValidAfter: now.addingTimeInterval(86_400),
            issuer: subject, subject: subject, signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions { SubjectAlternativeNames([.dnsName(name)]) },
            issuerPrivateKey: key.certificateKey)
        return (certificate, key)
    }

    static func x5cToken(chain: [Certificate], key: SigningKey, claims: String) throws -> String {
        let header = #"{"alg":"ES256","typ":"JWT","x5c":["\#(try chain.map { Data(try $0.derBytes()).base64EncodedString() }.joined(separator: #"",""#))"]}"#
        return try rawToken(header: header, payload: claims) { try key.signJOSE($0) }
    }

    static let hostileTimes: [(nbf: String, exp: String)] = [
        ("1700000000", "1e19"), ("-9e18", "9e18"), ("-1e300", "1e300"), ("0", "9223372036854775807"),
        ("-9223372036854775808", "9223372036854775807"), ("1e-320", "18446744073709551616"), ("NaN", "1"),
    ]

    @Test func x5cTokensOfAForeignCertificateAreRefusedBeforeTheirClaimsAreRead() async throws {
        let f = try await AuthorityTests.Fixture()
        let (foreign, key) = try Self.selfSigned("foreign.internal")
        for (nbf, exp) in Self.hostileTimes {
            let claims = #"{"aud":"\#(f.url)/1.0/renew","sub":"foreign.internal","nbf":\#(nbf),"exp":\#(exp),"jti":"j-\#(nbf)"}"#
            let token = try Self.x5cToken(chain: [foreign], key: key, claims: claims)
            do {
                _ = try await f.authority.renew(.x5cToken(token), remote: "192.0.2.1")
                Issue.record("renewed a foreign certificate")
            } catch let error as AuthorityError {
                #expect(error.kind == .unauthorized && error.message.contains("not issued by this CA"), "\(error.message)")
            }
            do {
                try await f.authority.revoke(.init(
                    serial: foreign.serialNumber.hexString, reasonCode: 0, reason: "", token: token, presented: nil, remote: "192.0.2.1"))
                Issue.record("a foreign certificate revoked something")
            } catch let error as AuthorityError {
                #expect(error.kind == .unauthorized && error.message.contains("not issued by this CA"), "\(error.message)")
            }
        }
        #expect(try await f.authority.store.certificates(.init(), now: Date()).isEmpty)
        let failures = try f.auditLines().filter { $0["event"] as? String == "auth.failure" }
        #expect(failures.count == Self.hostileTimes.count * 2)
    }

    @Test func x5cTokensOfOurOwnCertificateWithOutOfRangeTimesAreRefused() async throws {
        let f = try await AuthorityTests.Fixture()
        let key = try SigningKey.generate(.p256)
        let csr = try VerifiedCSR.make(names: [try SubjectName(parsing: "own.internal")], key: key)
        let issued = try await f.authority.sign(.init(csrPEM: csr, token: try f.token(sans: ["own.internal"])))
        let leaf = try issued.leaf
        for (nbf, exp) in Self.hostileTimes {
            let claims = #"{"aud":"\#(f.url)/1.0/renew","sub":"own.internal","nbf":\#(nbf),"exp":\#(exp),"jti":"j-\#(nbf)"}"#
            let token = try Self.x5cToken(chain: [leaf], key: key, claims: claims)
            do {
                _ = try await f.authority.renew(.x5cToken(token), remote: nil)
                Issue.record("renewed with nbf \(nbf), exp \(exp)")
            } catch let error as AuthorityError {
                #expect(error.kind == .unauthorized, "\(error.message)")
            }
        }
        #expect(try await f.authority.store.certificates(.init(), now: Date()).count == 1)
    }

    @Test func provisionerTokensWithOutOfRangeTimesAreRefused() async throws {
        let f = try await AuthorityTests.Fixture()
        let signingKey = try f.key.privateKey()
        for (nbf, exp) in Self.hostileTimes {
            let claims = #"{"iss":"admin","aud":"\#(f.url)/1.0/sign","sub":"a.internal","sans":["a.internal"],"nbf":\#(nbf),"exp":\#(exp),"jti":"j\#(exp)","sha":"\#(f.authority.rootFingerprint)"}"#
            let token = try Self.rawToken(header: #"{"alg":"ES256","kid":"\#(f.key.kid ?? f.key.thumbprint)"}"#, payload: claims) {
                Array(try signingKey.signature(for: $0).rawRepresentation)
            }
            do {
                _ = try await f.authority.sign(.init(csrPEM: try f.csr(["a.internal"]), token: token))
                Issue.record("issued with nbf \(nbf), exp \(exp)")
            } catch let error as AuthorityError {
                #expect(error.kind == .unauthorized, "\(error.message)")
            }
        }
        #expect(try await f.authority.store.certificates(.init(), now: Date()).isEmpty)
    }
}
