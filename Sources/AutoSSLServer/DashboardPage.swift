import AutoSSLCore
import AutoSSLCA
import AutoSSLStore
import Foundation

/// The HTML of `/dashboard`: one page, inline CSS, no script, a meta refresh every 30 s. Every value
/// that comes from the database, the audit log, the request or the configuration goes through
/// `TrustPage.escape` (text and attribute values alike).
enum DashboardPage {
    /// At most this many fleet rows are shown; the filters narrow the rest.
    static let maximumRows = 1_000

    static func esc(_ text: String) -> String { TrustPage.escape(text) }

    static func time(_ date: Date?) -> String {
        guard let date else { return "-" }
        // 2026-11-29 01:22:33 UTC
        return String(Timestamp.rfc3339(date).dropLast().map { $0 == "T" ? " " : $0 }) + " UTC"
    }

    static let style = """
        body{font-family:system-ui,sans-serif;margin:1.5rem;color:#1d2329;background:#f6f7f9}
        h1{font-size:1.4rem;margin:0 0 .2rem}h2{font-size:1.1rem;margin:1.6rem 0 .5rem}
        .sub{color:#58636e;font-size:.85rem}.cards{display:flex;flex-wrap:wrap;gap:.8rem;margin-top:1rem}
        .card{background:#fff;border:1px solid #d8dde3;border-radius:6px;padding:.6rem .9rem;min-width:11rem}
        .card b{display:block;font-size:.75rem;color:#58636e;text-transform:uppercase;letter-spacing:.03em}
        table{border-collapse:collapse;width:100%;background:#fff;font-size:.85rem}
        th,td{border-bottom:1px solid #e3e7eb;padding:.35rem .5rem;text-align:left;vertical-align:top}
        th{background:#eef1f4}td.mono{font-family:ui-monospace,monospace;font-size:.8rem;word-break:break-all}
        .state{display:inline-block;padding:.05rem .45rem;border-radius:3px;font-weight:600;white-space:nowrap}
        .s-healthy{background:#dcf3e2;color:#17622e}.s-renewal_overdue{background:#fff0c2;color:#7a5300}
        .s-expiring{background:#ffd9b8;color:#8a3b00}.s-expired{background:#f8cfcf;color:#8f1414}
        .s-revoked{background:#e2e4e8;color:#3d4650}.bad{color:#8f1414;font-weight:600}.ok{color:#17622e;font-weight:600}
        form{margin:.6rem 0}input,select,button{font-size:.9rem;padding:.2rem .4rem}
        .counts a{margin-right:.8rem}
        """

    static func message(title: String, text: String) -> String {
        """
        <!DOCTYPE html>
        <html lang="en"><head><meta charset="utf-8"><title>\(esc(title))</title><style>\(style)</style></head>
        <body><h1>\(esc(title))</h1><p>\(esc(text))</p></body></html>
        """
    }

    static func html(_ snapshot: DashboardSnapshot, filter: FleetFilter) -> String {
        var page = """
            <!DOCTYPE html>
            <html lang="en"><head><meta charset="utf-8"><meta http-equiv="refresh" content="30">
            <meta name="viewport" content="width=device-width, initial-scale=1">
            <title>\(esc(snapshot.caName)) - auto-ssl dashboard</title><style>\(style)</style></head>
            <body>
            <h1>\(esc(snapshot.caName))</h1>
            <div class="sub">auto-ssl CA, root <span class="mono">\(esc(snapshot.fingerprint))</span>; as of \(time(snapshot.generatedAt)) (refreshes every 30 s)</div>

            """
        page += health(snapshot)
        page += fleet(snapshot, filter: filter)
        page += activity(snapshot.activity)
        page += "</body></html>\n"
        return page
    }

    static func health(_ snapshot: DashboardSnapshot) -> String {
        var cards: [(String, String)] = []
        switch snapshot.database {
        case .ok where snapshot.fleetError == nil:
            cards.append(("Database", "<span class=\"ok\" id=\"database\">up</span>"))
        case .ok:
            cards.append(("Database", "<span class=\"bad\" id=\"database\">not readable</span>"))
        case .unavailable(let since, let reason):
            cards.append(("Database", "<span class=\"bad\" id=\"database\">unavailable</span> since \(time(since)): \(esc(reason))"))
        }
        if let replicas = snapshot.replicas {
            let alive = replicas.filter { snapshot.generatedAt.timeIntervalSince($0.lastSeen) < CAStatusReport.DatabaseReport.aliveWithin }
            var text = "\(alive.count) of \(replicas.count) alive"
            for replica in replicas.prefix(20) {
                let up = alive.contains(replica)
                text += "<br><span class=\"\(up ? "ok" : "bad")\">\(up ? "up" : "down")</span> \(esc(replica.name)) "
                    + "(\(esc(replica.addresses.joined(separator: ", "))), seen \(time(replica.lastSeen)))"
            }
            cards.append(("Replicas", text))
        } else {
            cards.append(("Replicas", "none (one CA on SQLite)"))
        }
        if let backup = snapshot.backup {
            var text = backup.lastSuccess.map { "last success \(time($0))" } ?? "<span class=\"bad\">never succeeded</span>"
            if backup.lastRunSucceeded == false {
                text += "<br><span class=\"bad\">last run failed</span> \(time(backup.lastRun))"
            }
            cards.append(("Backups", text))
        } else {
            cards.append(("Backups", "<span class=\"bad\">no backup has run</span>"))
        }
        if let entries = snapshot.fleet {
            var counts = ""
            for state in FleetState.allCases {
                let count = entries.filter { $0.state == state }.count
                counts += "<a class=\"state s-\(state.rawValue)\" href=\"/dashboard?state=\(state.rawValue)\" id=\"count-\(state.rawValue)\">\(count) \(state.label)</a> "
            }
            cards.append(("Name sets (\(entries.count))", "<span class=\"counts\">\(counts)</span>"))
        }
        return "<div class=\"cards\">"
            + cards.map { "<div class=\"card\"><b>\(esc($0.0))</b>\($0.1)</div>" }.joined() + "</div>\n"
    }

    static func fleet(_ snapshot: DashboardSnapshot, filter: FleetFilter) -> String {
        var html = "<h2>Fleet</h2>\n<form method=\"get\" action=\"/dashboard\" id=\"filter\">"
            + "<label>State <select name=\"state\" id=\"filter-state\"><option value=\"\">any</option>"
        for state in FleetState.allCases {
            html += "<option value=\"\(state.rawValue)\"\(filter.state == state ? " selected" : "")>\(state.label)</option>"
        }
        html += "</select></label> <label>Name contains <input type=\"text\" name=\"name\" id=\"filter-name\" maxlength=\"\(FleetFilter.maximumNameLength)\""
            + " value=\"\(esc(filter.name ?? ""))\"></label> <button type=\"submit\" id=\"filter-apply\">Filter</button>"
            + " <a href=\"/dashboard\">clear</a></form>\n"
        guard let entries = snapshot.fleet else {
            return html + "<p class=\"bad\">\(esc(snapshot.fleetError ?? "the certificate records could not be read"))</p>\n"
        }
        let shown = entries.filter(filter.matches)
        html += "<p class=\"sub\" id=\"fleet-summary\">\(shown.count) of \(entries.count) name sets"
            + (shown.count > maximumRows ? "; the first \(maximumRows) are shown, narrow with the filters" : "") + "</p>\n"
        html += """
            <table id="fleet"><thead><tr><th>State</th><th>Names</th><th>Time left</th><th>Expires</th><th>Last renewal</th>\
            <th>Provisioner</th><th>From</th><th>Serial</th></tr></thead><tbody>

            """
        for entry in shown.prefix(maximumRows) {
            html += "<tr data-state=\"\(entry.state.rawValue)\"><td><span class=\"state s-\(entry.state.rawValue)\">\(entry.state.label)</span></td>"
                + "<td class=\"names\">\(esc(entry.names.joined(separator: ", ")))</td>"
                + "<td>\(esc(Fleet.timeLeft(seconds: entry.secondsLeft)))</td><td>\(time(entry.notAfter))</td>"
                + "<td>\(entry.lastRenewal.map { time($0) } ?? "never")</td><td>\(esc(entry.provisioner))</td>"
                + "<td>\(esc(entry.requester ?? "-"))</td><td class=\"mono\">\(esc(entry.serial))</td></tr>\n"
        }
        if shown.isEmpty { html += "<tr><td colspan=\"8\">No name set matches.</td></tr>\n" }
        return html + "</tbody></table>\n"
    }

    static func activity(_ activity: RecentActivity) -> String {
        func table(_ id: String, _ title: String, _ entries: [AuditEntry], empty: String) -> String {
            var html = "<h2>\(esc(title))</h2>\n<table id=\"\(id)\"><thead><tr><th>Time</th><th>Event</th><th>Names</th><th>Serial</th>"
                + "<th>Provisioner</th><th>From</th><th>Reason</th></tr></thead><tbody>\n"
            for entry in entries {
                html += "<tr><td>\(time(entry.time))</td><td>\(esc(entry.event))</td><td>\(esc(entry.sans.joined(separator: ", ")))</td>"
                    + "<td class=\"mono\">\(esc(entry.serial ?? ""))</td><td>\(esc(entry.provisioner ?? ""))</td>"
                    + "<td>\(esc(entry.remote ?? ""))</td><td>\(esc([entry.reason, entry.detail].compactMap { $0 }.joined(separator: ": ")))</td></tr>\n"
            }
            if entries.isEmpty { html += "<tr><td colspan=\"7\">\(esc(empty))</td></tr>\n" }
            return html + "</tbody></table>\n"
        }
        return table("issuances", "Recent issuances", activity.issuances, empty: "None in the recent audit log.")
            + table("revocations", "Recent revocations", activity.revocations, empty: "None in the recent audit log.")
            + table("auth-failures", "Authentication failures", activity.authenticationFailures, empty: "None in the recent audit log.")
    }
}
