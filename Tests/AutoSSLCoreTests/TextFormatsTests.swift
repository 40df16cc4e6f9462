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

    /// Dates read from database rows or files can be any Double; formatting one never traps.
    @Test func timestampsOfImpossibleDatesAreHeldToTheRepresentableYears() {
        #expect(Timestamp.rfc3339(Date(timeIntervalSince1970: .nan)) == "1970-01-01T00:00:00Z")
        #expect(Timestamp.rfc3339(Date(timeIntervalSince1970: .infinity), milliseconds: true) == "1970-01-01T00:00:00.000Z")
        #expect(Timestamp.rfc3339(Date(timeIntervalSince1970: 1e300)) == "9999-12-31T23:59:59Z")
        #expect(Timestamp.rfc3339(Date(timeIntervalSince1970: -1e300)) == "0001-01-01T00:00:00Z")
        #expect(Timestamp.compact(Date(timeIntervalSince1970: 9.3e18)) == "99991231T235959Z")
    }

    @Test func parsingReadsWhatISO8601DateFormatterReadsAndRefusesTrailingText() {
        let plain = ISO8601DateFormatter()
        let fractional = ISO8601DateFormatter()
        fractional.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        for text in ["2026-11-30T17:10:51Z", "2026-11-30T17:10:51+01:00", "1970-01-01T00:00:00Z", "2026-11-30T17:10:51.5Z", "2099-12-31T23:59:59.123-05:30"] {
            let expected = plain.date(from: text) ?? fractional.date(from: text)
            let parsed = Timestamp.parse(text)
            #expect(parsed != nil && expected != nil, "\(text)")
            if let parsed, let expected { #expect(abs(parsed.timeIntervalSince(expected)) < 0.001, "\(text)") }
        }
        // Found by TimestampFuzz: Foundation alone read "20261-1-30..." as the year 20261 and rolled
        // hour 26 over into the next day.
        for text in ["", "garbage", "2026-11-30", "2026-11-30T17:10:51", "2026-11-30T17:10:51ZX", "2026-13-30T17:10:51Z",
                     "20261-1-30T17:10:51Z", "2026-1-30T17:10:51Z", "2026-11-30t17:10:51Z", "2026-11-30T17:10:51.Z",
                     "2026-11-30T17:10:51.1234567890Z", "2026-11-30T17:10:51+0100", "2026-11-30T17:10:51+01:00:00",
                     "9999-12-31T26:59:59Z", "2026-02-29T00:00:00Z", "2026-04-31T00:00:00Z", "2026-11-30T17:60:00Z",
                     "2026-11-30T17:10:51+24:00", "0000-01-01T00:00:00Z", "1013-11-30T17:10:51Z", "1583-01-01T00:30:00+01:00",
                     "2026-11-30T17:10:51Z" + String(repeating: "0", count: 60)] {
            #expect(Timestamp.parse(text) == nil, "\(text)")
        }
        #expect(Timestamp.parse("2024-02-29T00:00:00Z") != nil && Timestamp.parse("9999-12-31T23:59:59Z") != nil)
        // What rfc3339 writes, parse reads back.
        for seconds in [0.0, 1_796_000_000.0, 4_102_444_799.0] {
            let date = Date(timeIntervalSince1970: seconds)
            #expect(Timestamp.parse(Timestamp.rfc3339(date)) == date)
            #expect(Timestamp.parse(Timestamp.rfc3339(date, milliseconds: true)) == date)
        }
    }

    @Test func compactTimestampsMatchDateFormatter() {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.dateFormat = "yyyyMMdd'T'HHmmss'Z'"
        for seconds in [0.0, 1_796_000_000.75, 4_102_444_799.0] {
            let date = Date(timeIntervalSince1970: seconds)
            #expect(Timestamp.compact(date) == formatter.string(from: date))
        }
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

    @Test func base64URLEncodingIsFoundationsBase64WithTheURLAlphabetAndNoPadding() {
        var generator = SystemRandomNumberGenerator()
        for length in Array(0..<70) + [255, 256, 257, 4_096] {
            let bytes = (0..<length).map { _ in UInt8.random(in: 0...255, using: &generator) }
            let foundation = Data(bytes).base64EncodedString()
                .replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
            #expect(Base64URL.encode(bytes) == foundation, "\(length) bytes")
            #expect(Base64URL.encode(Data(bytes)) == foundation)
        }
        // A collection with no contiguous storage takes the other path.
        let repeated = repeatElement(UInt8(0xFB), count: 31)
        #expect(Base64URL.encode(repeated) == Base64URL.encode(Array(repeated)))
        #expect(Base64URL.encode(repeated).hasPrefix("-_v7"))
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
