import Foundation
import Testing
import TestSupport

/// `/metrics` of a live CA: read by Debian's Prometheus (scraping it for real, queried over its HTTP
/// API) and checked by `promtool check metrics`; the counts must match what the test did.
@Suite(.serialized) struct MetricsEndToEndTests {
    static let havePrometheus = ["/usr/bin/prometheus", "/usr/bin/promtool"].allSatisfy { FileManager.default.isExecutableFile(atPath: $0) }

    /// The value of the one sample of `name` whose labels include all of `labels` (0 when none).
    static func sample(_ exposition: String, _ name: String, _ labels: [String: String] = [:]) -> Double {
        var total = 0.0
        for line in exposition.split(separator: "\n") where !line.hasPrefix("#") {
            guard line.hasPrefix(name + "{") || line.hasPrefix(name + " ") else { continue }
            let wanted = labels.map { "\($0.key)=\"\($0.value)\"" }
            guard wanted.allSatisfy({ line.contains($0) }), let value = line.split(separator: " ").last.flatMap({ Double($0) }) else { continue }
            total += value
        }
        return total
    }

    /// Debian's Prometheus scraping `target` every second, with its web API on a free port.
    final class Prometheus: @unchecked Sendable {
        let port = freeLoopbackPort()
        let process = Process()
        let directory: String

        init(directory: String, target: String) throws {
            self.directory = directory
            try FileManager.default.createDirectory(atPath: directory + "/data", withIntermediateDirectories: true)
            try """
                global:
                  scrape_interval: 1s
                  evaluation_interval: 1s
                scrape_configs:
                  - job_name: auto-ssl
                    static_configs:
                      - targets: ["\(target)"]
                """.write(toFile: directory + "/prometheus.yml", atomically: true, encoding: .utf8)
            let log = directory + "/prometheus.log"
            FileManager.default.createFile(atPath: log, contents: nil)
            process.executableURL = URL(fileURLWithPath: "/usr/bin/prometheus")
            process.arguments = [
                "--config.file=\(directory)/prometheus.yml", "--storage.tsdb.path=\(directory)/data",
                "--web.listen-address=127.0.0.1:\(port)", "--log.level=warn",
            ]
            process.standardInput = FileHandle.nullDevice
            process.standardOutput = FileHandle(forWritingAtPath: log)
            process.standardError = FileHandle(forWritingAtPath: log)
            try process.run()
        }

        /// The sum of the instant query's values, nil while it has no result.
        func query(_ expression: String) throws -> Double? {
            let result = try runProcess("curl", [
                "-s", "--get", "--data-urlencode", "query=\(expression)", "http://127.0.0.1:\(port)/api/v1/query",
            ])
            guard let object = try? JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any],
                  let data = object["data"] as? [String: Any], let samples = data["result"] as? [[String: Any]], !samples.isEmpty
            else { return nil }
            return samples.compactMap { ($0["value"] as? [Any])?.last as? String }.compactMap(Double.init).reduce(0, +)
        }

        /// Waits until `expression` equals `expected` (Prometheus scrapes every second).
        func waitFor(_ expression: String, toBe expected: Double, within seconds: Double = 30) throws -> Double? {
            let deadline = Date().addingTimeInterval(seconds)
            var last: Double?
            while Date() < deadline {
                last = try query(expression)
                if last == expected { return last }
                usleep(500_000)
            }
            return last
        }

        var log: String { (try? readFile(directory + "/prometheus.log")) ?? "" }

        deinit {
            if process.isRunning {
                process.terminate()
                process.waitUntilExit()
            }
        }
    }

    @Test(.enabled(if: havePrometheus, "needs Debian's prometheus package (CI installs it)"))
    func prometheusScrapesIssuancesFailuresAndFirstIssuancesAsTheyHappened() throws {
        let metricsPort = freeLoopbackPort()
        let ca = try RunningCA(initArguments: ["--metrics-address", "127.0.0.1:\(metricsPort)"])
        #expect(ca.waitForLog("http://127.0.0.1:\(metricsPort)/metrics"), "\(ca.log)")
        let fingerprint = try ca.fingerprint
        let password = ca.sandbox.configDir + "/provisioner-password"
        func issue(_ name: String, san: String) throws {
            let result = try ca.sandbox.run([
                "cert", "issue", "--ca-url", ca.url, "--fingerprint", fingerprint, "--san", san,
                "--out-cert", ca.sandbox.root.file(name + ".crt"), "--out-key", ca.sandbox.root.file(name + ".key"),
                "--password-file", password,
            ])
            try #require(result.status == 0, "\(result)")
        }
        // Two names never issued before, then one of them again.
        try issue("a", san: "a.metrics.test")
        try issue("b", san: "b.metrics.test")
        try issue("a2", san: "a.metrics.test")
        // Three authentication failures: a token that is not a JWT, twice, and one signed by an unknown key.
        for body in [#"{"csr":"x","ott":"not-a-token"}"#, #"{"csr":"x","ott":"a.b.c"}"#] {
            let refused = try runProcess("curl", ["-s", "-o", "/dev/null", "-w", "%{http_code}", "--cacert", ca.rootPath, "-d", body, ca.url + "/sign"])
            #expect(refused.stdout == "401", "\(refused)")
        }
        let header = Data(#"{"alg":"ES256","kid":"nobody","typ":"JWT"}"#.utf8).base64EncodedString()
            .replacingOccurrences(of: "=", with: "").replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
        let unknown = try runProcess("curl", [
            "-s", "-o", "/dev/null", "-w", "%{http_code}", "--cacert", ca.rootPath, "-d", #"{"csr":"x","ott":"\#(header).e30.c2ln"}"#, ca.url + "/sign",
        ])
        #expect(unknown.stdout == "401", "\(unknown)")

        // The exposition itself: promtool accepts it and the counts are what happened.
        let scraped = try runProcess("curl", ["-s", "-D", ca.sandbox.root.file("headers"), "http://127.0.0.1:\(metricsPort)/metrics"])
        try #require(scraped.status == 0, "\(scraped)")
        let text = scraped.stdout
        #expect(try readFile(ca.sandbox.root.file("headers")).lowercased().contains("content-type: text/plain; version=0.0.4"))
        let checked = try runProcess("/usr/bin/promtool", ["check", "metrics"], stdin: text)
        #expect(checked.status == 0, "promtool: \(checked)\n\(text)")
        #expect(Self.sample(text, "auto_ssl_certificate_operations_total", ["operation": "issue", "outcome": "ok", "provisioner": "admin"]) == 3, "\(text)")
        #expect(Self.sample(text, "auto_ssl_certificate_operations_total", ["operation": "issue", "outcome": "refused"]) == 3, "\(text)")
        #expect(Self.sample(text, "auto_ssl_authentication_failures_total", ["reason": "malformed_token"]) == 2, "\(text)")
        #expect(Self.sample(text, "auto_ssl_authentication_failures_total", ["reason": "unknown_key"]) == 1, "\(text)")
        #expect(Self.sample(text, "auto_ssl_first_issuances_total") == 2, "\(text)")
        #expect(Self.sample(text, "auto_ssl_certificates_valid") == 4, "three issued and the CA's own TLS certificate: \(text)")
        #expect(Self.sample(text, "auto_ssl_names_renewal_overdue") == 0, "\(text)")
        #expect(Self.sample(text, "auto_ssl_database_up") == 1, "\(text)")
        #expect(Self.sample(text, "auto_ssl_build_info") == 1, "\(text)")
        #expect(Self.sample(text, "auto_ssl_commit_batch_size_count") >= 3, "every issuance was committed: \(text)")
        #expect(Self.sample(text, "auto_ssl_request_duration_seconds_count", ["route": "sign"]) == 6, "\(text)")
        let intermediateExpiry = Self.sample(text, "auto_ssl_ca_certificate_expiry_timestamp_seconds", ["certificate": "intermediate"])
        #expect(intermediateExpiry > Date().timeIntervalSince1970, "\(text)")
        #expect(Self.sample(text, "auto_ssl_crl_age_seconds") >= 0)

        // Every CA metric the shipped alert rules use is one the CA exposes (the backup gauges once
        // a backup has run, none has here; a name's overdue series while it is overdue, none is).
        let rules = try readFile(URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("contrib/prometheus/auto-ssl.rules.yml").path)
        let used = Set(rules.split(whereSeparator: { !($0.isLetter || $0.isNumber || $0 == "_") }).map(String.init)
            .filter { $0.hasPrefix("auto_ssl_") && !$0.hasPrefix("auto_ssl_server_") && !$0.hasPrefix("auto_ssl_backup_")
                && $0 != "auto_ssl_renewal_overdue_expiry_timestamp_seconds" })
        let exposed = Set(text.split(separator: "\n").filter { !$0.hasPrefix("#") }.compactMap { $0.split(whereSeparator: { $0 == "{" || $0 == " " }).first.map(String.init) })
        #expect(!used.isEmpty && used.isSubset(of: exposed), "used by the rules, not exposed: \(used.subtracting(exposed).sorted())")

        // The audit log names each first issuance, once.
        let firsts = try ca.auditEvents().filter { $0["event"] as? String == "certificate.first-issuance" }.compactMap { ($0["sans"] as? [String])?.first }
        #expect(firsts.sorted() == ["a.metrics.test", "b.metrics.test"], "\(firsts)")

        // Prometheus scraping the live CA sees the same counts.
        let prometheus = try Prometheus(directory: ca.sandbox.root.file("prometheus"), target: "127.0.0.1:\(metricsPort)")
        #expect(try prometheus.waitFor(#"up{job="auto-ssl"}"#, toBe: 1) == 1, "\(prometheus.log)")
        #expect(try prometheus.waitFor(#"sum(auto_ssl_certificate_operations_total{operation="issue",outcome="ok"})"#, toBe: 3) == 3)
        #expect(try prometheus.waitFor("sum(auto_ssl_authentication_failures_total)", toBe: 3) == 3)
        #expect(try prometheus.waitFor("auto_ssl_first_issuances_total", toBe: 2) == 2)
        // One more issuance shows up in the next scrapes.
        try issue("c", san: "c.metrics.test")
        #expect(try prometheus.waitFor(#"sum(auto_ssl_certificate_operations_total{operation="issue",outcome="ok"})"#, toBe: 4) == 4)
        #expect(try prometheus.waitFor("auto_ssl_first_issuances_total", toBe: 3) == 3)
        #expect(ca.stop() == 0)
        #expect(try prometheus.waitFor(#"up{job="auto-ssl"}"#, toBe: 0) == 0, "a stopped CA is seen as down")
    }

    /// With `--metrics-tls` the listener speaks HTTPS with the CA's own certificate (verified
    /// against the root) and nothing but /metrics is served there.
    @Test func metricsOverHTTPSVerifyAgainstTheRootAndServeNothingElse() throws {
        let metricsPort = freeLoopbackPort()
        let ca = try RunningCA(initArguments: ["--metrics-address", "127.0.0.1:\(metricsPort)", "--metrics-tls"])
        try #require(ca.waitForLog("https://127.0.0.1:\(metricsPort)/metrics"), "\(ca.log)")
        let url = "https://127.0.0.1:\(metricsPort)"
        let scraped = try runProcess("curl", ["-sf", "--cacert", ca.rootPath, url + "/metrics"])
        #expect(scraped.status == 0 && scraped.stdout.contains("auto_ssl_build_info"), "\(scraped)")
        #expect(try runProcess("curl", ["-sf", "-o", "/dev/null", "http://127.0.0.1:\(metricsPort)/metrics"]).status != 0, "no plain HTTP")
        let other = try runProcess("curl", ["-s", "-o", "/dev/null", "-w", "%{http_code}", "--cacert", ca.rootPath, url + "/sign"])
        #expect(other.stdout == "404", "\(other)")
        #expect(ca.stop() == 0)
    }

    @Test func metricsTLSWithoutAnAddressIsRefused() throws {
        let sandbox = Sandbox()
        let refused = try sandbox.run(["ca", "init", "--non-interactive", "--name", "M", "--address", "127.0.0.1:9000", "--metrics-tls"])
        #expect(refused.status == 2 && refused.stderr.contains("--metrics-tls goes with --metrics-address"), "\(refused)")
        #expect(!FileManager.default.fileExists(atPath: sandbox.configDir + "/config.yaml"))
    }
}
