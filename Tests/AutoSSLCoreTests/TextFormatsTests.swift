import AutoSSLCore
import Foundation
import SwiftASN1
import Testing
import X509

@Suite struct TextFormatsTests {
    @Test func jsonQuotingRoundTripsThroughFoundation() throws {
        for text in ["plain", "-----BEGIN X-----\nAB/+==\n-----END X-----\n", "quote \" backslash \\ tab \t cr \r", "\u{01}\u{1f}", "é ✓ 🔐", ""] {
            let json = "[" + JSONText.quote(text) + "]"
            let decoded = try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String]
            #expect(decoded == [text], "\(text)")
        }
        let object = JSONText.object([("a", JSONText.quote("x")), ("b", JSONText.array(["1", "2"]))])
        #expect(object == #"{"a":"x","b":[1,2]}"#)
    }

    @Test func timestampsMatchISO8601DateFormatter() {
        let formatter = ISO8601DateFormatter()
        for seconds in [0.0, 1_000_000_000.0, 1_796_000_000.25, 4_102_444_800.999] {
            let date = Date(timeIntervalSince1970: seconds)
            #expect(Timestamp.rfc3339(date) == formatter.string(from: date))
        }
        #expect(Timestamp.rfc3339(Date(timeIntervalSince1970: 1_796_000_000.25), milliseconds: true).hasSuffix(":20.250Z"))
    }

    @Test func base64URLRoundTripsAndRefusesStandardAlphabet() {
        for length in 0..<40 {
            let bytes = (0..<length).map { UInt8(($0 * 37 + 250) % 256) }
            let encoded = Base64URL.encode(bytes)
            #expect(!encoded.contains("=") && !encoded.contains("+") && !encoded.contains("/"))
            #expect(Base64URL.decode(encoded) == Data(bytes))
        }
        #expect(Base64URL.decode("ab+c") == nil)
        #expect(Base64URL.decode("abc=") == nil)
        #expect(Base64URL.decode("a") == nil)
    }
}

struct PEMEncodingTests {
    @Test func fastPEMEqualsSwiftASN1sPEM() throws {
        let key = try SigningKey.generate(.p256)
        let certificate = try CertificateProfiles.root(
            caName: "PEM Test", key: key, notBefore: Date(), notAfter: Date().addingTimeInterval(3_600))
        #expect(try certificate.pemString() == certificate.serializeAsPEM().pemString + "\n")
        for length in [0, 1, 47, 48, 49, 95, 96, 500] {
            let bytes = [UInt8](repeating: 0xA5, count: length)
            #expect(PEM.encode(bytes, label: "X") == PEMDocument(type: "X", derBytes: bytes).pemString + "\n", "length \(length)")
        }
    }
}
