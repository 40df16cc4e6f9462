@testable import AutoSSLCore
import Crypto
import Foundation
import SwiftASN1
import Testing
import X509

/// The shortcuts on the issuance path (PEM body, base64url, key identifier from the CSR's bytes,
/// the audit line's JSON) must agree with the general code wherever they answer.
@Suite struct IssuanceFastPathTests {
    /// What the token path did before: translate to the standard alphabet, pad, let Foundation decode.
    static func referenceBase64URL(_ text: String) -> Data? {
        var bytes = Array(text.utf8)
        for index in bytes.indices {
            switch bytes[index] {
            case 0x2D: bytes[index] = 0x2B
            case 0x5F: bytes[index] = 0x2F
            case 0x2B, 0x2F, 0x3D: return nil
            default: break
            }
        }
        switch bytes.count % 4 {
        case 0: break
        case 2: bytes += [0x3D, 0x3D]
        case 3: bytes.append(0x3D)
        default: return nil
        }
        return Data(base64Encoded: Data(bytes))
    }

    @Test func base64URLDecodingAgreesWithFoundationOnRandomInput() {
        var random = SeededGenerator(seed: 42)
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8)
        let noise = Array("+/= .\n\u{7f}é".utf8)
        for round in 0..<5_000 {
            let length = Int.random(in: 0...90, using: &random)
            var bytes = (0..<length).map { _ in alphabet.randomElement(using: &random)! }
            if round % 3 == 0, !bytes.isEmpty {
                bytes[Int.random(in: 0..<bytes.count, using: &random)] = noise.randomElement(using: &random)!
            }
            let text = String(decoding: bytes, as: UTF8.self)
            #expect(Base64URL.decode(text) == Self.referenceBase64URL(text), "\(text)")
            // Substrings (how JWT.parse hands the parts over) take the same path.
            let padded = "x|" + text + "|y"
            let part = padded.split(separator: "|", omittingEmptySubsequences: false)[1]
            #expect(Base64URL.decode(part.utf8) == Self.referenceBase64URL(text), "\(text)")
        }
    }

    static func csrPEMs() throws -> [String] {
        var pems: [String] = []
        for algorithm in [KeyAlgorithm.p256, .p384, .rsa2048] {
            for count in [1, 3, 12] {
                let names = try (0..<count).map { try SubjectName(parsing: "host-\($0).fast.test") }
                pems.append(try VerifiedCSR.make(names: names, key: try SigningKey.generate(algorithm)))
            }
        }
        return pems
    }

    @Test func fastPEMGivesTheLibrarysBytesOrStepsAside() throws {
        var random = SeededGenerator(seed: 7)
        for pem in try Self.csrPEMs() {
            let library = try PEMDocument(pemString: pem).derBytes
            #expect(FastPEM.body(of: pem, label: "CERTIFICATE REQUEST") == library)
            // Without the final newline, too.
            #expect(FastPEM.body(of: String(pem.dropLast()), label: "CERTIFICATE REQUEST") == library)
            // Other shapes fall back to the library (nil), never decode to something else.
            let variants = [
                pem.replacingOccurrences(of: "\n", with: "\r\n"),
                " " + pem,
                pem + "trailing",
                pem.replacingOccurrences(of: "CERTIFICATE REQUEST", with: "NEW CERTIFICATE REQUEST"),
            ]
            for variant in variants {
                #expect(FastPEM.body(of: variant, label: "CERTIFICATE REQUEST") == nil)
            }
            // Random single-byte damage: the fast reader either refuses or agrees with the library.
            let bytes = Array(pem.utf8)
            for _ in 0..<300 {
                var damaged = bytes
                let index = Int.random(in: 0..<damaged.count, using: &random)
                damaged[index] = Array("AZaz09+/=\n-. ".utf8).randomElement(using: &random)!
                let text = String(decoding: damaged, as: UTF8.self)
                if let fast = FastPEM.body(of: text, label: "CERTIFICATE REQUEST") {
                    let document = try? PEMDocument(pemString: text)
                    #expect(document?.discriminator == "CERTIFICATE REQUEST")
                    #expect(document?.derBytes == fast, "byte \(index)")
                }
            }
        }
    }

    @Test func keyIdentifierFromTheCSRsBytesEqualsTheOneFromTheKey() throws {
        for pem in try Self.csrPEMs() {
            let csr = try VerifiedCSR(pem: pem)
            let general = CertificateProfiles.keyIdentifier(for: csr.publicKey)
            switch csr.keyAlgorithm {
            case .p256, .p384:
                #expect(csr.subjectKeyIdentifier == general)
            default:
                #expect(csr.subjectKeyIdentifier == nil)  // RSA: computed from the key
            }
            // And the SPKI found in the CSR is the key's own encoding.
            let der = try PEMDocument(pemString: pem).derBytes
            let spki = try #require(VerifiedCSR.subjectPublicKeyInfo(inCSR: der))
            var serializer = DER.Serializer()
            try serializer.serialize(csr.publicKey)
            #expect(Array(spki) == serializer.serializedBytes)
        }
        // A non-canonical encoding (here: a compressed point) is not used.
        let key = P256.Signing.PrivateKey()
        let compressed = [UInt8](CertificateProfiles.canonicalECPrefixes[0].prefix.dropLast(4)) + [0x03, 0x22, 0x00]
            + key.publicKey.compressedRepresentation
        #expect(CertificateProfiles.keyIdentifier(forCanonicalSPKI: compressed[...]) == nil)
    }

    @Test func jsonQuotedPEMIsTheQuotedPEM() {
        var random = SeededGenerator(seed: 3)
        for length in Array(0..<130) + [700, 1_500] {
            let der = (0..<length).map { _ in UInt8.random(in: 0...255, using: &random) }
            let direct = String(decoding: PEM.jsonQuoted(der, label: "CERTIFICATE"), as: UTF8.self)
            #expect(direct == JSONText.quote(PEM.encode(der, label: "CERTIFICATE")), "\(length)")
        }
    }

    @Test func auditLineBytesAreTheJSONFoundationReads() throws {
        let writerCases: [(String, [String])] = [
            ("plain", ["a.example"]),
            ("quote \" backslash \\ newline \n tab \t \u{01}", ["é.test", "✓"]),
            ("", []),
        ]
        for (text, list) in writerCases {
            var writer = JSONWriter()
            writer.raw("{\"a\":")
            writer.string(text)
            writer.raw(",\"b\":")
            writer.array(list)
            writer.raw(",\"t\":")
            writer.timestamp(Date(timeIntervalSince1970: 1_796_000_000.25), milliseconds: true)
            writer.raw("}")
            let object = try #require(try JSONSerialization.jsonObject(with: Data(writer.bytes)) as? [String: Any])
            #expect(object["a"] as? String == text)
            #expect(object["b"] as? [String] == list)
            #expect(object["t"] as? String == Timestamp.rfc3339(Date(timeIntervalSince1970: 1_796_000_000.25), milliseconds: true))
        }
        // Timestamps keep their width at the edges.
        #expect(Timestamp.rfc3339(Date(timeIntervalSince1970: 0), milliseconds: true) == "1970-01-01T00:00:00.000Z")
        #expect(Timestamp.rfc3339(Date(timeIntervalSince1970: 253_402_300_799.999)) == "9999-12-31T23:59:59Z")
    }
}
