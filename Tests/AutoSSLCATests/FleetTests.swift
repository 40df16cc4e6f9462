import AutoSSLCA
import AutoSSLCore
import AutoSSLStore
import Foundation
import Testing

/// The fleet view: one entry per name set, the state by `CAOverview`'s rule, most urgent first.
@Suite struct FleetTests {
    let now = Date(timeIntervalSince1970: 2_000_000_000)
    let day: TimeInterval = 86_400

    /// A certificate for `names`, `age` seconds old, lasting `lifetime`.
    func certificate(
        _ serial: String, _ names: [String], age: TimeInterval, lifetime: TimeInterval = 7 * 86_400, revoked: Bool = false,
        renewedFrom: String? = nil, requester: String? = "192.0.2.1"
    ) -> FleetCertificate {
        let notBefore = now.addingTimeInterval(-age)
        return FleetCertificate(
            serial: serial,
            lifetime: CertificateLifetime(names: names, notBefore: notBefore, notAfter: notBefore.addingTimeInterval(lifetime), revoked: revoked),
            provisioner: "admin", requester: requester, renewedFrom: renewedFrom, createdAt: notBefore.addingTimeInterval(60),
            revokedAt: revoked ? now : nil)
    }

    @Test func eachStateFollowsTheRenewalPointTheDayBeforeExpiryAndRevocation() {
        func state(age: TimeInterval, lifetime: TimeInterval = 7 * 86_400, revoked: Bool = false) -> FleetState {
            CAOverview.state(
                of: CertificateLifetime(names: ["a"], notBefore: now.addingTimeInterval(-age), notAfter: now.addingTimeInterval(lifetime - age), revoked: revoked),
                now: now)
        }
        #expect(state(age: 5 * day) == .healthy, "past 2/3, not yet 3/4")
        #expect(state(age: 5.3 * day) == .renewalOverdue, "past 3/4 (5.25 d), 1.7 d left")
        #expect(state(age: 6.5 * day) == .expiring, "past 3/4, 12 h left")
        #expect(state(age: 7.5 * day) == .expired)
        #expect(state(age: 7.5 * day, revoked: true) == .revoked, "revoked wins over expired")
        #expect(state(age: 6.5 * day, revoked: true) == .revoked)
        // A 10-minute certificate: healthy until 7.5 minutes, then expiring (less than a day left).
        #expect(state(age: 420, lifetime: 600) == .healthy)
        #expect(state(age: 460, lifetime: 600) == .expiring)
    }

    @Test func aNameSetShowsItsNewestCertificateAndItsLastRenewal() {
        let entries = Fleet.entries([
            certificate("01", ["web1.internal", "10.0.0.5"], age: 6 * day),
            certificate("02", ["10.0.0.5", "web1.internal"], age: 1 * day, renewedFrom: "01", requester: "10.0.0.5"),
            certificate("03", ["db.internal"], age: 5.5 * day),
        ], now: now)
        #expect(entries.count == 2, "the order of the names does not make another name set")
        let web = try? #require(entries.first { $0.names.contains("web1.internal") })
        #expect(web?.serial == "02" && web?.state == .healthy && web?.requester == "10.0.0.5")
        #expect(web?.lastRenewal == now.addingTimeInterval(-day + 60))
        #expect(web?.secondsLeft == Int(6 * day))
        let db = entries.first { $0.names == ["db.internal"] }
        #expect(db?.state == .renewalOverdue && db?.lastRenewal == nil)
    }

    @Test func entriesAreSortedMostUrgentFirst() {
        let entries = Fleet.entries([
            certificate("01", ["healthy.internal"], age: day),
            certificate("02", ["revoked.internal"], age: day, revoked: true),
            certificate("03", ["overdue.internal"], age: 5.5 * day),
            certificate("04", ["expiring-later.internal"], age: 6.2 * day),
            certificate("05", ["expiring.internal"], age: 6.5 * day),
            certificate("06", ["expired.internal"], age: 8 * day),
        ], now: now)
        #expect(entries.map(\.serial) == ["06", "05", "04", "03", "02", "01"])
        #expect(entries.map(\.state) == [.expired, .expiring, .expiring, .renewalOverdue, .revoked, .healthy])
    }

    @Test func aNameSetReissuedUnderOtherNamesIsLeftOutAsTheGaugesLeaveItOut() {
        let lifetimes = [
            certificate("01", ["web1.internal", "10.0.0.5"], age: 6 * day),
            certificate("02", ["web1.internal"], age: day),
            certificate("03", ["10.0.0.5", "web1-alt.internal"], age: day),
            certificate("04", ["api.internal", "10.0.0.7"], age: 6 * day),
            certificate("05", ["api.internal"], age: day),
        ]
        let entries = Fleet.entries(lifetimes, now: now)
        #expect(!entries.contains { $0.serial == "01" }, "every name has a newer certificate")
        let api = entries.first { $0.serial == "04" }
        #expect(api?.state == .renewalOverdue, "10.0.0.7 has no newer certificate")
        let overview = CAOverview.compute(lifetimes.map(\.lifetime), now: now)
        #expect(overview.overdue.map(\.name) == ["10.0.0.7"], "the gauges agree")
    }

    @Test func theFilterMatchesAStateAndANameSubstringAndRefusesHostileText() throws {
        let entries = Fleet.entries([
            certificate("01", ["web1.internal"], age: day),
            certificate("02", ["web2.internal"], age: 5.5 * day),
            certificate("03", ["db.internal"], age: 5.5 * day),
        ], now: now)
        #expect(entries.filter(try FleetFilter(state: "renewal_overdue", name: nil).matches).map(\.serial).sorted() == ["02", "03"])
        #expect(entries.filter(try FleetFilter(state: "overdue", name: "WEB").matches).map(\.serial) == ["02"])
        #expect(entries.filter(try FleetFilter(state: "", name: "").matches).count == 3)
        #expect(throws: AutoSSLError.self) { try FleetFilter(state: "broken", name: nil) }
        #expect(throws: AutoSSLError.self) { try FleetFilter(state: nil, name: "<script>") }
        #expect(throws: AutoSSLError.self) { try FleetFilter(state: nil, name: "a b") }
        #expect(throws: AutoSSLError.self) { try FleetFilter(state: nil, name: String(repeating: "a", count: 254)) }
        #expect(throws: AutoSSLError.self) { try FleetFilter(state: nil, name: "wéb") }
    }

    @Test func timeLeftReadsInTheLargestUnits() {
        #expect(Fleet.timeLeft(seconds: 3 * 86_400 + 4 * 3_600 + 59) == "3d 4h")
        #expect(Fleet.timeLeft(seconds: 5 * 3_600 + 12 * 60) == "5h 12m")
        #expect(Fleet.timeLeft(seconds: 42 * 60 + 5) == "42m")
        #expect(Fleet.timeLeft(seconds: 40) == "40s")
        #expect(Fleet.timeLeft(seconds: -7_200) == "expired 2h 0m ago")
        #expect(Fleet.timeLeft(seconds: Int.min) .hasPrefix("expired"))
    }
}

/// The end of the audit log as the dashboard reads it: hostile content is skipped or kept as text.
@Suite struct AuditTailTests {
    @Test func onlyWholeJSONObjectLinesWithAnEventAreReadAndLongFieldsAreCut() {
        let long = String(repeating: "x", count: 5_000)
        let newline: [UInt8] = [0x0A]
        var bytes: [UInt8] = Array(#"tail of a line cut by the read","event":"x"}"#.utf8) + newline
        bytes += Array(#"{"event":"certificate.issued","sans":["a.internal",7,{"x":1}],"serial":"01","time":"2033-05-18T03:33:20.123Z"}"#.utf8)
        bytes += newline
        bytes += [0xFF, 0xFE, 0x7B, 0x0A]  // not UTF-8
        bytes += Array(#"[1,2,3]"#.utf8) + newline
        bytes += Array(#"{"event":12}"#.utf8) + newline
        bytes += Array(#"{"event":"auth.failure","remote":"\#(long)","reason":5}"#.utf8) + newline
        bytes += Array(String(repeating: "[", count: 10_000).utf8) + newline
        let entries = AuditTail.parse(bytes, startsMidLine: true)
        #expect(entries.map { $0.event } == ["certificate.issued", "auth.failure"])
        #expect(entries.first?.sans == ["a.internal"] && abs((entries.first?.time?.timeIntervalSince1970 ?? 0) - 2_000_000_000.123) < 0.000_5)
        #expect(entries.last?.remote?.count == AuditTail.maximumFieldLength + 1 && entries.last?.reason == nil)
    }

    @Test func onlyTheLastBytesOfALargeLogAreReadAndEachKindKeepsItsNewestFifteen() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("audit-tail-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("audit.log").path
        var text = ""
        for index in 0..<20_000 { text += #"{"event":"certificate.issued","serial":"\#(index)"}"# + "\n" }
        for index in 0..<3 { text += #"{"event":"certificate.revoked","serial":"r\#(index)"}"# + "\n" }
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        let entries = try AuditTail.read(path: path, maximumBytes: 4_096)
        #expect(entries.count < 100 && entries.last?.serial == "r2")
        let activity = RecentActivity(entries)
        #expect(activity.issuances.count == RecentActivity.perKind && activity.issuances.first?.serial == "19999")
        #expect(activity.revocations.map(\.serial) == ["r2", "r1", "r0"])
        #expect(try AuditTail.read(path: directory.appendingPathComponent("missing").path).isEmpty)
    }
}
