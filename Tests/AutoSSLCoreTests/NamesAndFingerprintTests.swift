import AutoSSLCore
import Foundation
import Testing

@Suite struct NamesAndFingerprintTests {
    @Test func fingerprintIsLowerCaseHexSHA256() {
        // SHA-256("abc"), FIPS 180-2 test vector.
        #expect(Fingerprint.sha256(der: Array("abc".utf8))
            == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    }

    @Test func normalisesUserInput() throws {
        let colons = "BA:78:16:BF:8F:01:CF:EA:41:41:40:DE:5D:AE:22:23:B0:03:61:A3:96:17:7A:9C:B4:10:FF:61:F2:00:15:AD"
        #expect(try Fingerprint.normalise(colons) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        #expect(throws: AutoSSLError.self) { try Fingerprint.normalise("abc") }
        #expect(throws: AutoSSLError.self) { try Fingerprint.normalise(String(repeating: "g", count: 64)) }
    }

    @Test func classifiesNames() throws {
        #expect(try SubjectName(parsing: "Web01.Internal") == .dns("web01.internal"))
        #expect(try SubjectName(parsing: "*.apps.internal") == .dns("*.apps.internal"))
        guard case .ip(let v4) = try SubjectName(parsing: "10.0.0.5") else { Issue.record("not IP"); return }
        #expect(v4.bytes == [10, 0, 0, 5])
        #expect(v4.description == "10.0.0.5")
        guard case .ip(let v6) = try SubjectName(parsing: "fd00::5") else { Issue.record("not IP"); return }
        #expect(v6.bytes.count == 16)
        #expect(v6.description == "fd00::5")
        for bad in ["", "-bad.internal", "a..b", "under_score.internal", "sp ace", "x.*.internal", String(repeating: "a", count: 64)] {
            #expect(throws: AutoSSLError.self, "\(bad)") { try SubjectName(parsing: bad) }
        }
    }

    /// The byte-level fast path must classify exactly as the general rules (trim, IP literal,
    /// lower-case, label checks) do; this is those rules written the plain way.
    static func reference(_ text: String) -> String? {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        if let ip = IPAddress(trimmed) { return "ip:" + ip.description }
        let lower = trimmed.lowercased()
        guard !lower.isEmpty, lower.utf8.count <= 253 else { return nil }
        var labels = lower.split(separator: ".", omittingEmptySubsequences: false)
        if labels.first == "*" { labels.removeFirst() }
        guard !labels.isEmpty else { return nil }
        for label in labels {
            guard (1...63).contains(label.utf8.count),
                  label.utf8.allSatisfy({ ($0 >= 0x61 && $0 <= 0x7A) || ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x2D }),
                  !label.hasPrefix("-"), !label.hasSuffix("-") else { return nil }
        }
        // The last label is never all digits: 10.0.0.256 or 1.2.3 is a mistyped address, not a name.
        if let last = labels.last, last.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) { return nil }
        return "dns:" + lower
    }

    @Test func fastNameParsingAgreesWithTheGeneralRules() {
        let names = [
            "web01.internal", "Web01.Internal", " web01.internal", "web01.internal\t", "a", "a-b.c", "a-.b", "-a.b", "a.-b",
            "a..b", "a.b.", ".a.b", "*.a.b", "*", "*.", "a.*.b", "10.0.0.1", "10.0.0.256", "1.2.3", "01.2.3.4", "fd00::5",
            "[::1]", "deadbeef", "1e100", "x" + String(repeating: "a", count: 62), "x" + String(repeating: "a", count: 63),
            String(repeating: "abcdefghi.", count: 25) + "abc", String(repeating: "abcdefghi.", count: 26), "é.internal", "",
        ]
        for name in names {
            let actual: String?
            switch try? SubjectName(parsing: name) {
            case .dns(let dns)?: actual = "dns:" + dns
            case .ip(let ip)?: actual = "ip:" + ip.description
            case nil: actual = nil
            }
            #expect(actual == Self.reference(name), "\(name)")
        }
    }

    @Test func parsesListenAddresses() throws {
        #expect(try ListenAddress(parsing: "10.0.0.5:9000") == ListenAddress(host: "10.0.0.5", port: 9000))
        #expect(try ListenAddress(parsing: "CA.internal:443").host == "ca.internal")
        #expect(try ListenAddress(parsing: "[fd00::5]:9000") == ListenAddress(host: "fd00::5", port: 9000))
        #expect(try ListenAddress(parsing: ":9000") == ListenAddress(host: "", port: 9000))
        #expect(try ListenAddress(parsing: "[fd00::5]:9000").description == "[fd00::5]:9000")
        #expect(try ListenAddress(parsing: "127.0.0.1:9443").urlString == "https://127.0.0.1:9443")
        for bad in ["10.0.0.5", "10.0.0.5:0", "10.0.0.5:70000", "fd00::5:9000", "bad_host:9000", "host:port"] {
            #expect(throws: AutoSSLError.self, "\(bad)") { try ListenAddress(parsing: bad) }
        }
    }

    @Test func passwordsHaveAMinimumLengthAndGeneratedOnesAreStrong() throws {
        #expect(throws: AutoSSLError.self) { try Passwords.validate("short", purpose: "test") }
        #expect(throws: AutoSSLError.self) { try Passwords.validate(String(repeating: "x", count: 15), purpose: "test") }
        try Passwords.validate(String(repeating: "x", count: 16), purpose: "test")
        let a = Passwords.generate()
        let b = Passwords.generate()
        #expect(a.count == 32)
        #expect(a != b)
        #expect(a.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber) })
        #expect(Passwords.fromFileContents("secret-line\nsecond\n") == "secret-line")
        #expect(Passwords.fromFileContents("crlf-secret\r\n") == "crlf-secret")
    }
}

/// `TimeLimit`: the value when the work ends in time; nil, and the work cancelled, when not.
@Suite struct TimeLimitTests {
    @Test func givesTheValueInTimeAndNilAfterTheLimit() async throws {
        #expect(try await TimeLimit.run(within: .seconds(5)) { 42 } == 42)
        let started = ContinuousClock.now
        let late = try await TimeLimit.run(within: .milliseconds(100)) { () async throws -> Int in
            try await Task.sleep(for: .seconds(30))
            return 1
        }
        #expect(late == nil && ContinuousClock.now - started < .seconds(10))
        await #expect(throws: CancellationError.self) {
            _ = try await TimeLimit.run(within: .seconds(5)) { () async throws -> Int in throw CancellationError() }
        }
    }
}
