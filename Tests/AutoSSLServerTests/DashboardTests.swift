@testable import AutoSSLCA
@testable import AutoSSLServer
import AutoSSLStore
import Foundation
import Testing

/// `/dashboard`'s HTML (escaping whatever the database and the audit log hold) and who may see it.
@Suite struct DashboardTests {
    let now = Date(timeIntervalSince1970: 2_000_000_000)
    static let hostile = #"<script>alert(1)</script>"><img src=x onerror=alert(2)>'&"#

    func entry(_ names: [String], state: FleetState, requester: String? = "192.0.2.1", provisioner: String = "admin") -> FleetEntry {
        FleetEntry(
            names: names, state: state, serial: "0a1b", notBefore: now.addingTimeInterval(-86_400), notAfter: now.addingTimeInterval(6 * 86_400),
            secondsLeft: 6 * 86_400, overdueAfter: now.addingTimeInterval(4 * 86_400), issuedAt: now.addingTimeInterval(-86_400),
            lastRenewal: nil, provisioner: provisioner, requester: requester, revokedAt: nil)
    }

    func snapshot(fleet: [FleetEntry], activity: [AuditEntry] = []) -> DashboardSnapshot {
        DashboardSnapshot(
            generatedAt: now, caName: "Example <Corp>", fingerprint: "ab12", database: .ok, fleet: fleet, fleetError: nil, replicas: nil,
            backup: nil, activity: RecentActivity(activity))
    }

    /// Only `<`, `>`, `"` and `'` of the page's own markup: none of the hostile text's.
    func assertNoHostileMarkup(_ html: String) {
        #expect(!html.lowercased().contains("<script"), "\(html)")
        #expect(!html.contains("<img"), "\(html)")
        #expect(!html.contains("onerror=alert(2)>"), "\(html)")
    }

    @Test func hostileNamesRequestersAndAuditValuesAreEscapedInTheFleetAndActivityTables() {
        let audit = AuditTail.parse(Array("""
            {"event":"certificate.issued","sans":["\(Self.hostile.replacingOccurrences(of: "\"", with: "\\\""))"],"serial":"01","remote":"<b>x</b>","time":"2033-05-18T03:33:20.000Z"}
            {"event":"auth.failure","remote":"10.0.0.1","reason":"</td></tr></table><script>alert(3)</script>","time":"2033-05-18T03:33:20Z"}
            {"event":"certificate.revoked","serial":"<svg onload=alert(4)>","detail":"\\u003cscript\\u003e"}

            """.utf8), startsMidLine: false)
        #expect(audit.count == 3)
        let html = DashboardPage.html(snapshot(
            fleet: [entry([Self.hostile, "10.0.0.5"], state: .healthy, requester: Self.hostile, provisioner: Self.hostile)], activity: audit),
            filter: FleetFilter())
        assertNoHostileMarkup(html)
        #expect(!html.contains("<svg") && !html.contains("<b>x</b>") && !html.contains("</table><script>"))
        #expect(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;&quot;&gt;&lt;img src=x onerror=alert(2)&gt;&#39;&amp;"))
        #expect(html.contains("Example &lt;Corp&gt;"))
        #expect(html.contains(#"<table id="auth-failures">"#) && html.contains("10.0.0.1"))
        #expect(html.contains("&lt;svg onload=alert(4)&gt;"))
    }

    @Test func theFilterIsAppliedAndEchoedEscapedInTheForm() throws {
        let fleet = [entry(["web1.internal"], state: .healthy), entry(["db.internal"], state: .expired), entry(["web2.internal"], state: .expired)]
        let html = DashboardPage.html(snapshot(fleet: fleet), filter: try FleetFilter(state: "expired", name: "web"))
        #expect(html.components(separatedBy: "<tr data-state=").count == 2, "\(html)")
        #expect(html.contains("web2.internal</td>") && !html.contains("db.internal</td>") && !html.contains("web1.internal</td>"))
        #expect(html.contains(#"<option value="expired" selected>"#))
        #expect(html.contains(#"value="web""#))
        #expect(html.contains("1 of 3 name sets"))
        #expect(html.contains(#"<meta http-equiv="refresh" content="30">"#))
    }

    @Test func aDatabaseThatDoesNotAnswerIsShownWithItsReasonEscaped() {
        var broken = snapshot(fleet: [])
        broken.database = .unavailable(since: now, reason: "<i>connection refused</i>")
        broken.fleet = nil
        broken.fleetError = "the certificate records could not be read: <timeout>"
        let html = DashboardPage.html(broken, filter: FleetFilter())
        #expect(html.contains(#"<span class="bad" id="database">unavailable</span>"#))
        #expect(html.contains("&lt;i&gt;connection refused&lt;/i&gt;") && html.contains("&lt;timeout&gt;"))
        #expect(!html.contains(#"<table id="fleet">"#))
    }

    @Test func replicasAreShownAliveOrDownByTheirLastHeartbeatAndBackupsByTheirLastRun() {
        var shared = snapshot(fleet: [])
        shared.replicas = [
            ReplicaHeartbeat(name: "ca1", addresses: ["10.0.0.5:9000"], version: "1", startedAt: now, lastSeen: now.addingTimeInterval(-4)),
            ReplicaHeartbeat(name: "<ca2>", addresses: ["10.0.0.6:9000"], version: "1", startedAt: now, lastSeen: now.addingTimeInterval(-300)),
        ]
        shared.backup = BackupObservation(lastRun: now, lastRunSucceeded: false, lastSuccess: now.addingTimeInterval(-86_400))
        let html = DashboardPage.html(shared, filter: FleetFilter())
        #expect(html.contains("1 of 2 alive"))
        #expect(html.contains(#"<span class="ok">up</span> ca1 (10.0.0.5:9000"#))
        #expect(html.contains(#"<span class="bad">down</span> &lt;ca2&gt; (10.0.0.6:9000"#))
        #expect(html.contains("last success 2033-05-17 03:33:20 UTC") && html.contains("last run failed"), "\(html)")
        #expect(DashboardPage.html(snapshot(fleet: []), filter: FleetFilter()).contains("none (one CA on SQLite)"))
    }

    @Test func accessIsLoopbackOnlyByDefaultAndFollowsDashboardAllow() throws {
        let loopback = try DashboardAccess(allow: nil)
        #expect(loopback.allows("127.0.0.1") && loopback.allows("::1") && loopback.allows("::ffff:127.0.0.1"))
        #expect(!loopback.allows("10.0.0.1") && !loopback.allows(nil) && !loopback.allows("garbage") && !loopback.allows(""))
        let office = try DashboardAccess(allow: ["10.99.0.0/16", "fd00::/8"])
        #expect(office.allows("10.99.3.4") && office.allows("fd00::1") && office.allows("::ffff:10.99.0.1"))
        #expect(!office.allows("127.0.0.1") && !office.allows("10.98.0.1"))
        #expect(try DashboardAccess(allow: []).allows("127.0.0.1") == false, "an empty list lets nobody in")
        #expect(throws: (any Error).self) { try DashboardAccess(allow: ["10.0.0.0/33"]) }
        #expect(throws: (any Error).self) { try DashboardAccess(allow: ["not-an-address"]) }
    }
}
