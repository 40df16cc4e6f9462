import Foundation
import Testing
import TestSupport

/// `ca fleet` and `/dashboard` of a live CA whose certificates age during the test: short lifetimes
/// that start in the past (`cert issue --not-before`), so one crosses its renewal point and one
/// expires within seconds; one renewed, one revoked.
@Suite(.serialized) struct FleetEndToEndTests {
    static let browserScript = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Resources/dashboard_browser.py").path
    static let haveBrowser = ["/usr/bin/chromium", "/usr/bin/chromedriver"].allSatisfy { FileManager.default.isExecutableFile(atPath: $0) }
        && ((try? runProcess("python3", ["-c", "import selenium"]).status) == 0)

    /// A CA with certificates issued through `cert issue` (and renewed and revoked the usual ways).
    struct Fleet {
        let ca: RunningCA
        let fingerprint: String

        init(caSetup: @escaping (Sandbox) throws -> Void = { _ in }) throws {
            ca = try RunningCA(setup: caSetup)
            fingerprint = try ca.fingerprint
        }

        /// Issues for `sans`; `startedAgo` seconds before now when given. Returns the serial.
        @discardableResult
        func issue(_ file: String, _ sans: [String], startedAgo: TimeInterval? = nil, duration: String? = nil) throws -> String {
            var arguments = [
                "cert", "issue", "--ca-url", ca.url, "--fingerprint", fingerprint, "--out-cert", ca.sandbox.root.file(file + ".crt"),
                "--out-key", ca.sandbox.root.file(file + ".key"), "--password-file", ca.sandbox.configDir + "/provisioner-password", "-q",
            ] + sans.flatMap { ["--san", $0] }
            if let startedAgo { arguments += ["--not-before", ISO8601DateFormatter().string(from: Date().addingTimeInterval(-startedAgo))] }
            if let duration { arguments += ["--duration", duration] }
            let result = try ca.sandbox.run(arguments)
            try #require(result.status == 0, "\(result)")
            return result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        }

        func renew(_ file: String) throws {
            let result = try ca.sandbox.run([
                "cert", "renew", "--ca-url", ca.url, "--fingerprint", fingerprint, "--cert", ca.sandbox.root.file(file + ".crt"),
                "--key", ca.sandbox.root.file(file + ".key"),
            ])
            try #require(result.status == 0, "\(result)")
        }

        func revoke(serial: String) throws {
            let result = try ca.sandbox.run(["ca", "revoke", serial, "--reason-code", "4"])
            try #require(result.status == 0, "\(result)")
        }

        /// `ca fleet --json` (plus `arguments`): the entries keyed by their names joined with ", ".
        func fleet(_ arguments: [String] = []) throws -> (entries: [String: [String: Any]], order: [String], counts: [String: Int]) {
            let result = try ca.sandbox.run(["ca", "fleet", "--json"] + arguments)
            try #require(result.status == 0, "\(result)")
            let object = try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any], "\(result.stdout)")
            let list = try #require(object["entries"] as? [[String: Any]])
            var entries: [String: [String: Any]] = [:]
            var order: [String] = []
            for entry in list {
                let names = ((entry["names"] as? [String]) ?? []).joined(separator: ", ")
                entries[names] = entry
                order.append(names)
            }
            return (entries, order, (object["counts"] as? [String: Int]) ?? [:])
        }

        func states(_ arguments: [String] = []) throws -> [String: String] {
            try fleet(arguments).entries.mapValues { $0["state"] as? String ?? "?" }
        }

        /// Polls `ca fleet` until it shows `expected` (within `seconds`); the last states seen.
        func waitForStates(_ expected: [String: String], within seconds: TimeInterval) throws -> [String: String] {
            let deadline = Date().addingTimeInterval(seconds)
            var last = try states()
            while Date() < deadline {
                if expected.allSatisfy({ last[$0.key] == $0.value }) { return last }
                usleep(1_000_000)
                last = try states()
            }
            return last
        }

        /// GET `path` over HTTPS verified against the root: status, headers (lowercased) and body.
        func get(_ path: String) throws -> (status: String, headers: String, body: String) {
            let headers = ca.sandbox.root.file("headers-\(UUID().uuidString)")
            let result = try runProcess("curl", [
                "-s", "--cacert", ca.rootPath, "-D", headers, "-w", "\n%{http_code}", ca.url + path,
            ])
            try #require(result.status == 0, "\(result)")
            var lines = result.stdout.split(separator: "\n", omittingEmptySubsequences: false)
            let status = String(lines.popLast() ?? "")
            return (status, try readFile(headers).lowercased(), lines.joined(separator: "\n"))
        }
    }

    @Test func fleetShowsEachNameSetsStateAsItCrossesItsRenewalPointExpiresIsRenewedOrRevoked() throws {
        let fleet = try Fleet()
        // Renewed (so it has a last renewal), a week ahead: healthy.
        try fleet.issue("web1", ["web1.fleet.test", "10.0.0.5"])
        try fleet.renew("web1")
        // Revoked by the operator.
        let revoked = try fleet.issue("db", ["db.fleet.test"])
        try fleet.revoke(serial: revoked)
        // 305 s long, 285 s of it gone: past its renewal point at once, expired after 20 s.
        try fleet.issue("gone", ["gone.fleet.test"], startedAgo: 285, duration: "20s")
        // 330 s long, 210 s gone: healthy now, past 3/4 (247.5 s) within 37.5 s, less than a day left then.
        try fleet.issue("soon", ["soon.fleet.test"], startedAgo: 210, duration: "2m")
        let issuedSoonAt = Date()

        let first = try fleet.fleet()
        try #require(Date().timeIntervalSince(issuedSoonAt) < 30, "the first look came too late to see soon.fleet.test healthy")
        #expect(first.entries.count == 5, "the four and the CA's own TLS certificate: \(first.order)")
        #expect(first.entries["127.0.0.1"]?["state"] as? String == "healthy", "\(first.order)")
        #expect(first.entries["soon.fleet.test"]?["state"] as? String == "healthy")
        #expect(first.entries["gone.fleet.test"]?["state"] as? String == "expiring")
        #expect(first.entries["db.fleet.test"]?["state"] as? String == "revoked")
        #expect(first.entries["db.fleet.test"]?["revoked_at"] != nil)
        let web = try #require(first.entries["web1.fleet.test, 10.0.0.5"], "\(first.order)")
        #expect(web["state"] as? String == "healthy")
        #expect(web["last_renewal"] as? String != nil, "renewed once: \(web)")
        #expect(web["provisioner"] as? String != nil && web["requester"] as? String == "127.0.0.1", "\(web)")
        #expect((web["seconds_left"] as? Int ?? 0) > 6 * 86_400, "\(web)")
        #expect(first.entries["gone.fleet.test"]?["last_renewal"] is NSNull || first.entries["gone.fleet.test"]?["last_renewal"] == nil)

        // Within about 40 s: soon.fleet.test crossed its renewal point, gone.fleet.test expired.
        let aged = try fleet.waitForStates(["soon.fleet.test": "expiring", "gone.fleet.test": "expired"], within: 50)
        #expect(aged == [
            "soon.fleet.test": "expiring", "gone.fleet.test": "expired", "db.fleet.test": "revoked", "web1.fleet.test, 10.0.0.5": "healthy",
            "127.0.0.1": "healthy",
        ])
        let later = try fleet.fleet()
        #expect(
            later.order == ["gone.fleet.test", "soon.fleet.test", "db.fleet.test", "127.0.0.1", "web1.fleet.test, 10.0.0.5"],
            "most urgent first, then the soonest to expire")
        #expect(later.counts == ["expired": 1, "expiring": 1, "renewal_overdue": 0, "revoked": 1, "healthy": 2])
        #expect((later.entries["gone.fleet.test"]?["seconds_left"] as? Int ?? 0) < 0)

        // Filters, and the text table in the same order.
        #expect(try fleet.states(["--state", "expired"]) == ["gone.fleet.test": "expired"])
        #expect(try fleet.states(["--name", "WEB1"]) == ["web1.fleet.test, 10.0.0.5": "healthy"])
        #expect(try fleet.states(["--state", "healthy", "--name", "soon"]).isEmpty)
        let bad = try fleet.ca.sandbox.run(["ca", "fleet", "--state", "sideways"])
        #expect(bad.status == 2 && bad.stderr.contains("renewal_overdue"), "\(bad)")
        let text = try fleet.ca.sandbox.run(["ca", "fleet"])
        #expect(text.status == 0, "\(text)")
        let lines = text.stdout.split(separator: "\n")
        #expect(lines.first?.hasPrefix("STATE") == true, "\(text.stdout)")
        #expect(lines.dropFirst().prefix(4).map { String($0.prefix(8)) } == ["expired ", "expiring", "revoked ", "healthy "], "\(text.stdout)")

        // Hostile lines in the audit log (as if an attacker could write there): skipped or escaped.
        let audit = try #require(FileHandle(forWritingAtPath: fleet.ca.sandbox.dataDir + "/audit.log"))
        try audit.seekToEnd()
        try audit.write(contentsOf: Data(#"{"event":"auth.failure","remote":"<script>alert(1)</script>","reason":"\"><img src=x onerror=alert(2)>","time":"2026-01-01T00:00:00Z"}"#.utf8) + Data([0x0A, 0xFF, 0xFE, 0x7B, 0x7B, 0x0A]))
        try audit.close()

        // The dashboard says the same, with its security headers, and refuses a hostile filter.
        let page = try fleet.get("/dashboard")
        #expect(page.status == "200", "\(page)")
        for header in [
            "content-security-policy: default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
            "x-frame-options: deny", "cache-control: no-store",
            "content-type: text/html; charset=utf-8",
        ] {
            #expect(page.headers.contains(header), "\(header) in \(page.headers)")
        }
        #expect(page.body.contains(#"<meta http-equiv="refresh" content="30">"#))
        #expect(!page.body.lowercased().contains("<script") && !page.body.contains("<img"))
        #expect(page.body.contains("&lt;script&gt;alert(1)&lt;/script&gt;") && page.body.contains("&quot;&gt;&lt;img src=x onerror=alert(2)&gt;"))
        for (names, state) in aged {
            #expect(page.body.contains(#"<tr data-state="\#(state)"><td><span class="state s-\#(state)">"#), "\(state)")
            #expect(page.body.contains(#"<td class="names">\#(names)</td>"#), "\(names)")
        }
        #expect(page.body.contains(#"id="issuances""#) && page.body.contains("certificate.renewed"))
        #expect(page.body.contains(#"id="revocations""#) && page.body.contains("certificate.revoked"))
        let filtered = try fleet.get("/dashboard?state=expiring&name=soon")
        #expect(filtered.status == "200")
        #expect(filtered.body.components(separatedBy: "<tr data-state=").count == 2 && filtered.body.contains("soon.fleet.test</td>"))
        let hostile = try fleet.get("/dashboard?name=%3Cscript%3Ealert(1)%3C/script%3E")
        #expect(hostile.status == "400" && !hostile.body.contains("<script"), "\(hostile)")
        #expect(hostile.headers.contains("content-security-policy: default-src 'none'"))
        #expect(try fleet.get("/dashboard?name=" + String(repeating: "a", count: 1_100)).status == "400")
        #expect(fleet.ca.stop() == 0)
    }

    /// However often it is loaded, the page is computed at most every 5 s: a certificate issued
    /// just after a load appears only once that snapshot is 5 s old.
    @Test func theDashboardIsComputedAtMostEveryFiveSeconds() throws {
        let fleet = try Fleet()
        let before = try fleet.get("/dashboard")
        let loaded = Date()
        #expect(before.status == "200" && !before.body.contains("late.fleet.test"))
        try fleet.issue("late", ["late.fleet.test"])
        let again = try fleet.get("/dashboard")
        if Date().timeIntervalSince(loaded) < 4.5 {
            #expect(!again.body.contains("late.fleet.test"), "the snapshot of the first load is reused")
        }
        usleep(5_500_000)
        #expect(try fleet.get("/dashboard").body.contains("<td class=\"names\">late.fleet.test</td>"))
        #expect(fleet.ca.stop() == 0)
    }

    @Test func dashboardAllowRefusesAnAddressOutsideItsRangesAndDashboardFalseTurnsItOff() throws {
        let limited = try Fleet(caSetup: { sandbox in
            let path = sandbox.configDir + "/config.yaml"
            try readFile(path).replacingOccurrences(of: "\nca:\n", with: "\nca:\n  dashboard_allow:\n  - 10.99.0.0/16\n")
                .write(toFile: path, atomically: true, encoding: .utf8)
        })
        let refused = try limited.get("/dashboard")
        #expect(refused.status == "403" && refused.body.contains("dashboard_allow"), "\(refused)")
        #expect(try limited.get("/health").status == "200", "only the dashboard is limited")
        #expect(limited.ca.stop() == 0)

        let off = try Fleet(caSetup: { sandbox in
            let path = sandbox.configDir + "/config.yaml"
            try readFile(path).replacingOccurrences(of: "\nca:\n", with: "\nca:\n  dashboard: false\n")
                .write(toFile: path, atomically: true, encoding: .utf8)
        })
        #expect(try off.get("/dashboard").status == "404")
        #expect(off.ca.stop() == 0)

        let broken = Sandbox()
        let created = try broken.run(["ca", "init", "--non-interactive", "--name", "B", "--address", "127.0.0.1:\(freeLoopbackPort())"])
        try #require(created.status == 0, "\(created)")
        let path = broken.configDir + "/config.yaml"
        try readFile(path).replacingOccurrences(of: "\nca:\n", with: "\nca:\n  dashboard_allow:\n  - 10.0.0.0/99\n")
            .write(toFile: path, atomically: true, encoding: .utf8)
        let serve = try runProcess(autoSSLBinaryPath(), ["ca", "serve"], environment: broken.environment)
        #expect(serve.status != 0 && serve.stderr.contains("dashboard_allow"), "\(serve)")
    }

    /// Headless Chromium (selenium; the listener's chain accepted through the intermediate's pinned
    /// key) shows the fleet table with each state, the state filter of the page's form works, and the screenshot is a PNG (copied to `AUTO_SSL_DASHBOARD_SCREENSHOT`
    /// when set: that is how docs/dashboard.png is made).
    @Test(.enabled(if: haveBrowser, "needs Debian's chromium and chromium-driver and selenium from PyPI (scripts/test installs them)"))
    func theDashboardInChromiumShowsTheFleetAndItsStateFilterWorks() throws {
        let fleet = try Fleet()
        try fleet.issue("web1", ["web1.internal", "10.0.0.5"])
        try fleet.renew("web1")
        try fleet.issue("web2", ["web2.internal", "10.0.0.6"])
        try fleet.issue("api", ["api.internal"], startedAgo: 480, duration: "2m")
        try fleet.issue("db", ["db.internal"], startedAgo: 285, duration: "15s")
        let revoked = try fleet.issue("old", ["old-app.internal"])
        try fleet.revoke(serial: revoked)
        // An authentication failure for the dashboard's list.
        _ = try runProcess("curl", ["-s", "--cacert", fleet.ca.rootPath, "-d", #"{"csr":"x","ott":"not-a-token"}"#, fleet.ca.url + "/sign"])
        let expected = [
            "web1.internal, 10.0.0.5": "healthy", "web2.internal, 10.0.0.6": "healthy", "api.internal": "expiring", "db.internal": "expired",
            "old-app.internal": "revoked", "127.0.0.1": "healthy",
        ]
        #expect(try fleet.waitForStates(expected, within: 40) == expected)
        usleep(5_500_000)  // the dashboard's snapshot is at most 5 s old

        let screenshot = fleet.ca.sandbox.root.file("dashboard.png")
        let intermediate = fleet.ca.sandbox.caDir + "/certs/intermediate_ca.crt"
        let result = try runProcess("python3", [Self.browserScript, fleet.ca.url, "expiring", screenshot, intermediate])
        try #require(result.status == 0, "\(result)")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any], "\(result.stdout)")
        let all = (object["all"] as? [[String]]) ?? []
        #expect(Dictionary(all.map { ($0[0], $0[1]) }, uniquingKeysWith: { a, _ in a }) == expected, "\(all)")
        #expect(all.map { $0[1] } == ["expired", "expiring", "revoked", "healthy", "healthy", "healthy"], "most urgent first: \(all)")
        #expect(all.first { $0[0] == "db.internal" }?[2].hasPrefix("expired") == true, "\(all)")
        #expect(object["scripts"] as? Int == 0)
        #expect(object["refresh"] as? [String] == ["30"])
        #expect((object["counts"] as? [String: String])?["count-expired"] == "1 expired")
        let filtered = (object["filtered"] as? [[String]]) ?? []
        #expect(filtered.map { $0[0] } == ["api.internal"], "\(filtered)")
        #expect((object["filtered_url"] as? String)?.contains("state=expiring") == true)
        let png = try #require(FileManager.default.contents(atPath: screenshot))
        #expect(png.count > 10_000 && png.prefix(8) == Data([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]))
        // Chromium trusts the listener only through the intermediate's key: pinned to another key
        // (the root's), it shows no dashboard.
        let otherKey = try runProcess("python3", [Self.browserScript, fleet.ca.url, "expiring", screenshot + ".refused", fleet.ca.rootPath])
        #expect(otherKey.status != 0 && otherKey.stderr.contains("filter-state") && !otherKey.stdout.contains("db.internal"), "no page to filter: \(otherKey)")
        if let target = ProcessInfo.processInfo.environment["AUTO_SSL_DASHBOARD_SCREENSHOT"] {
            try? FileManager.default.removeItem(atPath: target)
            try FileManager.default.copyItem(atPath: screenshot, toPath: target)
        }
        #expect(fleet.ca.stop() == 0)
    }
}
