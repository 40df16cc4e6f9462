import Foundation
import Testing
import TestSupport

/// `server enroll --metrics-file` and `server renew` through the real binary: every run rewrites a
/// textfile for node exporter's textfile collector that Prometheus' own checker accepts, with values
/// that match the certificate (read by openssl) and what the run did.
@Suite(.serialized) struct ServerMetricsEndToEndTests {
    typealias Setup = ServerEnrollEndToEndTests.Setup
    static let promtool = ["/usr/bin/promtool", "/usr/local/bin/promtool"].first { FileManager.default.isExecutableFile(atPath: $0) }

    /// The samples of the file by metric name, each checked to carry `certificate="localhost"` (the first --san).
    static func values(_ path: String) throws -> [String: Double] {
        var values: [String: Double] = [:]
        for line in try readFile(path).split(separator: "\n") where !line.hasPrefix("#") {
            let parts = line.split(separator: " ")
            let series = String(parts.first ?? "")
            #expect(parts.count == 2 && series.hasSuffix(#"{certificate="localhost"}"#), "unexpected line: \(line)")
            values[String(series.prefix { $0 != "{" })] = Double(String(parts.last ?? ""))
        }
        return values
    }

    static func promtoolAccepts(_ path: String) throws {
        let text = try readFile(path)
        let check = try runProcess(try #require(promtool), ["check", "metrics"], stdin: text)
        #expect(check.status == 0, "promtool check metrics: \(check)\n\(text)")
    }

    /// notBefore and notAfter of the installed certificate, as openssl reads them (seconds since 1970).
    static func validity(_ certificate: String) throws -> (notBefore: Double, notAfter: Double) {
        func seconds(_ option: String) throws -> Double {
            let line = try runProcess("openssl", ["x509", "-in", certificate, "-noout", option]).stdout
            let text = String(line.split(separator: "=", maxSplits: 1).last ?? "").trimmingCharacters(in: .whitespacesAndNewlines)
            let epoch = try runProcess("date", ["-u", "-d", text, "+%s"]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
            return try #require(Double(epoch), "openssl said \(line)")
        }
        return (try seconds("-startdate"), try seconds("-enddate"))
    }

    @Test(.enabled(if: promtool != nil, "needs promtool (Debian's prometheus package; CI installs it)"))
    func everyRenewRunRewritesATextfileThatPromtoolAccepts() throws {
        let setup = try Setup()
        let collector = setup.server.root.file("textfile")
        try FileManager.default.createDirectory(atPath: collector, withIntermediateDirectories: true)
        let metricsFile = collector + "/auto-ssl.prom"
        let enrolled = try setup.enroll(["--metrics-file", metricsFile, "--no-renewal"])
        #expect(enrolled.status == 0, "\(enrolled)")
        #expect(try readFile(setup.server.configDir + "/config.yaml").contains("metrics_file: \(metricsFile)"))
        #expect(fileMode(metricsFile) == 0o644)
        try Self.promtoolAccepts(metricsFile)

        // A renewal that works.
        let before = Date().timeIntervalSince1970.rounded(.down)
        let renewed = try setup.server.run(["server", "renew", "--force"])
        #expect(renewed.status == 0, "\(renewed)")
        try Self.promtoolAccepts(metricsFile)
        #expect(fileMode(metricsFile) == 0o644)
        var values = try Self.values(metricsFile)
        let validity = try Self.validity(setup.certFile)
        #expect(values["auto_ssl_server_certificate_expiry_timestamp_seconds"] == validity.notAfter, "\(values)")
        let due = try #require(values["auto_ssl_server_renewal_due_timestamp_seconds"])
        #expect(abs(due - (validity.notBefore + (validity.notAfter - validity.notBefore) * 2 / 3)) < 1, "\(values)")
        let success = try #require(values["auto_ssl_server_renewal_last_success_timestamp_seconds"])
        #expect(success >= before && success <= Date().timeIntervalSince1970, "\(values)")
        #expect(values["auto_ssl_server_renewal_last_attempt_timestamp_seconds"] == success)
        #expect(values["auto_ssl_server_renewal_failures_in_a_row"] == 0)
        #expect(values["auto_ssl_server_renewal_suspended"] == 0)
        #expect(values["auto_ssl_server_certificate_revoked"] == 0)
        #expect(values["auto_ssl_server_certificate_healthy"] == 1)

        // The CA stops: the run fails (exit 5) and the file says so.
        setup.ca.stop()
        sleep(1)  // whole seconds in the recorded attempts
        let failed = try setup.server.run(["server", "renew", "--force"])
        #expect(failed.status == 5, "\(failed)")
        try Self.promtoolAccepts(metricsFile)
        values = try Self.values(metricsFile)
        #expect(values["auto_ssl_server_renewal_failures_in_a_row"] == 1, "\(values)")
        #expect(values["auto_ssl_server_renewal_last_success_timestamp_seconds"] == success, "the last success stays")
        #expect((values["auto_ssl_server_renewal_last_attempt_timestamp_seconds"] ?? 0) > success, "\(values)")
        #expect(values["auto_ssl_server_certificate_expiry_timestamp_seconds"] == validity.notAfter)
        let failedRun = try #require(values["auto_ssl_server_renewal_last_run_timestamp_seconds"])

        // Not due (the timer's usual run): no attempt is recorded, but the run is.
        let notDue = try setup.server.run(["server", "renew"])
        #expect(notDue.status == 0 && notDue.stdout.contains("Not due"), "\(notDue)")
        values = try Self.values(metricsFile)
        #expect((values["auto_ssl_server_renewal_last_run_timestamp_seconds"] ?? 0) > failedRun, "\(values)")
        #expect(values["auto_ssl_server_renewal_failures_in_a_row"] == 1)

        // Suspended: skipped, and the file says suspended.
        #expect(try setup.server.run(["server", "suspend", "--reason", "maintenance"]).status == 0)
        let skipped = try setup.server.run(["server", "renew"])
        #expect(skipped.status == 0 && skipped.stdout.contains("suspended"), "\(skipped)")
        #expect(try Self.values(metricsFile)["auto_ssl_server_renewal_suspended"] == 1)
        try Self.promtoolAccepts(metricsFile)

        // --metrics-file on renew writes there instead for this run; the recorded file is left alone.
        let recorded = try readFile(metricsFile)
        let other = collector + "/other.prom"
        #expect(try setup.server.run(["server", "renew", "--metrics-file", other]).status == 0)
        #expect(try Self.values(other)["auto_ssl_server_renewal_suspended"] == 1)
        #expect(try readFile(metricsFile) == recorded)

        // A file that cannot be written is a warning; the run's own result stands.
        try FileManager.default.removeItem(atPath: collector)
        let unwritable = try setup.server.run(["server", "renew"])
        #expect(unwritable.status == 0 && unwritable.stdout.contains("suspended"), "\(unwritable)")
        #expect(unwritable.stderr.contains("warning: the metrics file \(metricsFile) could not be written"), "\(unwritable)")
        // And a --metrics-file that is not a .prom file in an existing directory is refused up front.
        let refused = try setup.server.run(["server", "renew", "--metrics-file", setup.server.root.file("auto-ssl.txt")])
        #expect(refused.status == 2 && refused.stderr.contains(".prom"), "\(refused)")
    }

    @Test(.enabled(if: promtool != nil, "needs promtool (Debian's prometheus package; CI installs it)"))
    func aRevokedCertificateShowsInTheFileAndEnrollingAgainKeepsTheMetricsFile() throws {
        let setup = try Setup()
        let metricsFile = setup.server.root.file("auto-ssl.prom")
        #expect(try setup.enroll(["--metrics-file", metricsFile, "--no-renewal"]).status == 0)
        // Revoked at the CA: the refused renewal marks it revoked in the file.
        let atCA = try setup.ca.sandbox.run(["ca", "revoke", try setup.serial(), "--reason", "compromised"])
        #expect(atCA.status == 0, "\(atCA)")
        let refused = try setup.server.run(["server", "renew", "--force"])
        #expect(refused.status == 6, "\(refused)")
        var values = try Self.values(metricsFile)
        #expect(values["auto_ssl_server_certificate_revoked"] == 1 && values["auto_ssl_server_certificate_healthy"] == 0, "\(values)")
        #expect(values["auto_ssl_server_renewal_failures_in_a_row"] == 1)
        try Self.promtoolAccepts(metricsFile)

        // The suggested enroll command carries --metrics-file; following it keeps the file recorded.
        let suggested = try #require(refused.stderr.split(separator: "\n").map(String.init).first { $0.contains("server enroll") })
        #expect(suggested.contains("--metrics-file \(metricsFile)"), "\(suggested)")
        let words = try runProcess("sh", ["-c", "for w in \(suggested.trimmingCharacters(in: .whitespaces)); do echo \"$w\"; done"])
            .stdout.split(separator: "\n").map(String.init)
        let again = try setup.server.run(Array(words.dropFirst()) + ["--password-file", setup.provisionerPassword, "--non-interactive"])
        #expect(again.status == 0, "\(again)")
        #expect(try readFile(setup.server.configDir + "/config.yaml").contains("metrics_file: \(metricsFile)"))
        values = try Self.values(metricsFile)
        #expect(values["auto_ssl_server_certificate_revoked"] == 0 && values["auto_ssl_server_certificate_healthy"] == 1, "\(values)")
        #expect(values["auto_ssl_server_renewal_failures_in_a_row"] == 0)
    }

    @Test(.enabled(if: promtool != nil, "needs promtool (Debian's prometheus package; CI installs it)"))
    func theDaemonRewritesTheFileAtEveryCheck() throws {
        let setup = try Setup()
        let metricsFile = setup.server.root.file("auto-ssl.prom")
        #expect(try setup.enroll(["--no-renewal"]).status == 0)
        #expect(!FileManager.default.fileExists(atPath: metricsFile), "off unless set")
        let log = setup.server.root.file("daemon.log")
        _ = FileManager.default.createFile(atPath: log, contents: nil)
        let daemon = Process()
        daemon.executableURL = URL(fileURLWithPath: autoSSLBinaryPath())
        daemon.arguments = ["server", "renew", "--daemon", "--check-interval", "1", "--metrics-file", metricsFile]
        daemon.environment = setup.server.environment
        daemon.standardInput = FileHandle.nullDevice
        daemon.standardOutput = FileHandle(forWritingAtPath: log)
        daemon.standardError = FileHandle(forWritingAtPath: log)
        try daemon.run()
        defer {
            if daemon.isRunning { daemon.terminate() }
            daemon.waitUntilExit()
        }
        // Two checks, each rewriting the file with its own run time.
        var runs: Set<Double> = []
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline, runs.count < 2 {
            if let run = try? Self.values(metricsFile)["auto_ssl_server_renewal_last_run_timestamp_seconds"] { runs.insert(run) }
            usleep(200_000)
        }
        #expect(runs.count >= 2, "the daemon rewrote the file at each check: \((try? readFile(log)) ?? "")")
        try Self.promtoolAccepts(metricsFile)
        #expect(try Self.values(metricsFile)["auto_ssl_server_certificate_healthy"] == 1)
        kill(daemon.processIdentifier, SIGTERM)
    }
}
