@testable import AutoSSLCA
import Foundation
import Testing

/// What a client can make the audit log hold: lines about refused requests are throttled per
/// source, and no text member of a line is longer than `maximumTextBytes`.
@Suite struct AuditThrottleTests {
    @Test func aSourceGetsTenLinesAMinuteAndTheNextMinuteSaysHowManyWereLeftOut() {
        let throttle = AuditThrottle(perWindow: 10, window: 60)
        let start = Date(timeIntervalSince1970: 1_800_000_000)
        let first = (0..<25).map { throttle.admit("192.0.2.1", now: start.addingTimeInterval(Double($0))) }
        #expect(first.prefix(10).allSatisfy { $0 == 0 })
        #expect(first.suffix(15).allSatisfy { $0 == nil })
        #expect(throttle.admit("192.0.2.2", now: start.addingTimeInterval(30)) == 0, "another source has its own share")
        #expect(throttle.admit("192.0.2.1", now: start.addingTimeInterval(61)) == 15)
        #expect(throttle.admit("192.0.2.1", now: start.addingTimeInterval(62)) == 0)
    }

    @Test func theSourcesRememberedAreBounded() {
        let throttle = AuditThrottle(perWindow: 1, window: 60, maximumSources: 100)
        let start = Date(timeIntervalSince1970: 1_800_000_000)
        var most = 0
        for index in 0..<1_000 {
            _ = throttle.admit("198.51.100.\(index)", now: start.addingTimeInterval(Double(index) / 100))
            most = max(most, throttle.rememberedSources)
        }
        #expect(most <= 100)
        // All of them are within their minute, so the table kept those seen last: the last source
        // has had its line this minute, while the first was forgotten and is new again.
        #expect(throttle.admit("198.51.100.999", now: start.addingTimeInterval(10)) == nil)
        #expect(throttle.admit("198.51.100.0", now: start.addingTimeInterval(10)) == 0)
    }

    @Test func aLongTextIsCutAtACharacterBoundaryAndSaysSo() throws {
        let long = String(repeating: "é", count: 1_000)
        let line = AuditLog.Event("request.refused", remote: "192.0.2.1", reason: "unsupported token algorithm " + long, detail: long).jsonLine
        #expect(line.utf8.count < 2 * AuditLog.Event.maximumTextBytes + 300, "\(line.utf8.count) bytes")
        #expect(line.contains("bytes, cut)"))
        let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        let reason = try #require(object["reason"] as? String)
        #expect(reason.hasPrefix("unsupported token algorithm é") && reason.hasSuffix("(2028 bytes, cut)"), "\(reason.suffix(40))")
        let short = AuditLog.Event("request.refused", reason: "short").jsonLine
        #expect(short.contains("\"reason\":\"short\""))
    }
}
