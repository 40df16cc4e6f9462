import AutoSSLConfig
import AutoSSLCore
import AutoSSLIO
import AutoSSLMetrics
import Foundation
import Testing
import TestSupport
import X509

@testable import AutoSSLAgent

/// The textfile `server renew` writes for node exporter: its rendering, and the numbers the agent
/// puts in it.
struct ServerMetricsTests {
    static let promtool = ["/usr/bin/promtool", "/usr/local/bin/promtool"].first { FileManager.default.isExecutableFile(atPath: $0) }

    /// The samples of an exposition: `name{labels}` → value. Fails the test on a line it cannot read.
    static func samples(_ text: String) throws -> [String: Double] {
        var samples: [String: Double] = [:]
        for line in text.split(separator: "\n") where !line.hasPrefix("#") {
            let parts = line.split(separator: " ")
            #expect(parts.count == 2, "not a sample line: \(line)")
            let value = try #require(Double(String(parts.last ?? "")), "no value in: \(line)")
            samples[String(parts[0])] = value
        }
        return samples
    }

    static let families = [
        "auto_ssl_server_certificate_expiry_timestamp_seconds", "auto_ssl_server_renewal_due_timestamp_seconds",
        "auto_ssl_server_renewal_last_run_timestamp_seconds", "auto_ssl_server_renewal_last_attempt_timestamp_seconds",
        "auto_ssl_server_renewal_last_success_timestamp_seconds", "auto_ssl_server_renewal_failures_in_a_row",
        "auto_ssl_server_renewal_suspended", "auto_ssl_server_certificate_revoked", "auto_ssl_server_certificate_healthy",
    ]

    @Test func everyFamilyHasHelpTypeAndOneGaugeLabelledWithTheCertificate() throws {
        let metrics = ServerMetrics(
            certificate: "web01.internal", run: 1_800_000_300, expiry: 1_800_604_800, renewalDue: 1_800_403_200,
            lastAttempt: 1_800_000_200, lastSuccess: 1_800_000_100, failuresInARow: 2, suspended: true, revoked: false, healthy: true)
        let text = String(decoding: metrics.exposition(), as: UTF8.self)
        for family in Self.families {
            #expect(text.contains("# HELP \(family) "), "\(family) has no HELP line:\n\(text)")
            #expect(text.contains("# TYPE \(family) gauge\n"), "\(family) has no TYPE line:\n\(text)")
        }
        let samples = try Self.samples(text)
        let label = #"{certificate="web01.internal"}"#
        #expect(samples == [
            "auto_ssl_server_certificate_expiry_timestamp_seconds" + label: 1_800_604_800,
            "auto_ssl_server_renewal_due_timestamp_seconds" + label: 1_800_403_200,
            "auto_ssl_server_renewal_last_run_timestamp_seconds" + label: 1_800_000_300,
            "auto_ssl_server_renewal_last_attempt_timestamp_seconds" + label: 1_800_000_200,
            "auto_ssl_server_renewal_last_success_timestamp_seconds" + label: 1_800_000_100,
            "auto_ssl_server_renewal_failures_in_a_row" + label: 2,
            "auto_ssl_server_renewal_suspended" + label: 1,
            "auto_ssl_server_certificate_revoked" + label: 0,
            "auto_ssl_server_certificate_healthy" + label: 1,
        ], "\(text)")
    }

    @Test func unknownTimesAreLeftOutRatherThanWrittenAsZero() throws {
        let metrics = ServerMetrics(
            certificate: "web01.internal", run: 1_800_000_300, expiry: nil, renewalDue: nil, lastAttempt: nil, lastSuccess: nil,
            failuresInARow: 0, suspended: false, revoked: false, healthy: false)
        let text = String(decoding: metrics.exposition(), as: UTF8.self)
        let names = Set(try Self.samples(text).keys.map { String($0.prefix { $0 != "{" }) })
        #expect(names == [
            "auto_ssl_server_renewal_last_run_timestamp_seconds", "auto_ssl_server_renewal_failures_in_a_row",
            "auto_ssl_server_renewal_suspended", "auto_ssl_server_certificate_revoked", "auto_ssl_server_certificate_healthy",
        ], "\(text)")
    }

    @Test(.enabled(if: promtool != nil, "needs promtool (Debian's prometheus package; CI installs it)"))
    func aNameWithQuotesBackslashesAndNewlinesStillMakesAValidExposition() throws {
        let metrics = ServerMetrics(
            certificate: "we\"b\\01\n.internal", run: 1_800_000_300, expiry: 1_800_604_800, renewalDue: 1_800_403_200,
            lastAttempt: nil, lastSuccess: 1_800_000_100, failuresInARow: 0, suspended: false, revoked: true, healthy: false)
        let text = String(decoding: metrics.exposition(), as: UTF8.self)
        #expect(text.contains(#"certificate="we\"b\\01\n.internal""#), "\(text)")
        let check = try runProcess(try #require(Self.promtool), ["check", "metrics"], stdin: text)
        #expect(check.status == 0, "\(check)\n\(text)")
    }

    // MARK: - From the agent's state

    struct Enrolled {
        let temp = TemporaryDirectory()
        let agent: ServerAgent
        let enrollment: ServerEnrollment
        let leaf: Certificate

        /// An enrollment whose "chain" is a self-signed certificate that is also the pinned root:
        /// all the agent needs to read expiry and renewal point from local files.
        init(notBefore: Date, notAfter: Date) throws {
            agent = ServerAgent(directories: Directories(
                configDir: temp.file("etc"), dataDir: temp.file("data"), certDir: temp.file("certs"), systemdDir: temp.file("systemd")))
            let key = try SigningKey.generate(.p256)
            leaf = try CertificateProfiles.root(caName: "Metrics", key: key, notBefore: notBefore, notAfter: notAfter)
            try FileManager.default.createDirectory(atPath: temp.file("certs"), withIntermediateDirectories: true)
            let certPath = try temp.write("certs/server.crt", try leaf.pemString(), mode: 0o644)
            let keyPath = try temp.write("certs/server.key", key.pkcs8PEMRepresentation)
            var enrollment = ServerEnrollment(
                caURL: "https://127.0.0.1:1", fingerprint: try Fingerprint.sha256(of: leaf), names: ["web01.internal", "10.0.0.7"],
                certPath: certPath, keyPath: keyPath, rootPath: certPath, combinedPath: nil, keyType: "ec", provisioner: "admin",
                duration: nil, reload: nil, reloadCommand: nil, renewalTimer: false, enrolledAt: notBefore)
            enrollment.metricsFile = temp.file("auto-ssl.prom")
            try agent.saveEnrollment(enrollment)
            self.enrollment = enrollment
        }
    }

    @Test func theAgentReportsTheInstalledCertificateAndTheRecordedAttempts() throws {
        let start = Date(timeIntervalSince1970: 1_800_000_000)
        let enrolled = try Enrolled(notBefore: start, notAfter: start.addingTimeInterval(9_000))
        let agent = enrolled.agent
        _ = agent.recordAttempt("enrolled", "issued", success: true, now: start)
        _ = agent.recordAttempt("failed", "CA unreachable", success: false, now: start.addingTimeInterval(6_100))
        _ = agent.recordAttempt("failed", "CA unreachable", success: false, now: start.addingTimeInterval(7_000))
        let now = start.addingTimeInterval(7_100)
        let metrics = agent.metrics(enrolled.enrollment, now: now)
        #expect(metrics == ServerMetrics(
            certificate: "web01.internal", run: now.timeIntervalSince1970, expiry: start.timeIntervalSince1970 + 9_000,
            renewalDue: start.timeIntervalSince1970 + 6_000, lastAttempt: start.timeIntervalSince1970 + 7_000,
            lastSuccess: start.timeIntervalSince1970, failuresInARow: 2, suspended: false, revoked: false, healthy: true))

        try agent.suspend(reason: "maintenance", now: now)
        agent.recordRevocation(serial: ServerAgent.serialText(enrolled.leaf), note: "revoked by test", now: now)
        let after = agent.metrics(try agent.enrollment(), now: start.addingTimeInterval(9_500))
        #expect(after.suspended && after.revoked && !after.healthy, "\(after)")
    }

    @Test func unreadableCertificateFilesLeaveTheTimesOutAndMarkItUnhealthy() throws {
        let start = Date(timeIntervalSince1970: 1_800_000_000)
        let enrolled = try Enrolled(notBefore: start, notAfter: start.addingTimeInterval(9_000))
        try "garbage".write(toFile: enrolled.enrollment.certPath, atomically: true, encoding: .utf8)
        let metrics = enrolled.agent.metrics(enrolled.enrollment, now: start)
        #expect(metrics.expiry == nil && metrics.renewalDue == nil && !metrics.healthy, "\(metrics)")
    }

    @Test func theFileIsWrittenWithMode0644AndAWriteFailureIsReportedNotThrown() throws {
        let start = Date(timeIntervalSince1970: 1_800_000_000)
        let enrolled = try Enrolled(notBefore: start, notAfter: start.addingTimeInterval(9_000))
        let path = try #require(enrolled.enrollment.metricsFile)
        #expect(enrolled.agent.writeMetrics(now: start) == nil)
        #expect(fileMode(path) == 0o644)
        #expect(try Self.samples(readFile(path))[#"auto_ssl_server_renewal_last_run_timestamp_seconds{certificate="web01.internal"}"#]
            == start.timeIntervalSince1970)
        // No temporary file is left next to it for the collector to trip over.
        #expect(try FileManager.default.contentsOfDirectory(atPath: enrolled.temp.path).filter { $0.contains(".tmp-") } == [])

        let problem = enrolled.agent.writeMetrics(override: enrolled.temp.file("gone/auto-ssl.prom"), now: start)
        #expect(problem?.contains(enrolled.temp.file("gone/auto-ssl.prom")) == true, "\(problem ?? "no problem reported")")
    }

    @Test func aRenewalThatFailsStillRewritesTheFile() async throws {
        let start = Date(timeIntervalSince1970: Date().timeIntervalSince1970.rounded(.down))  // the state file keeps whole seconds
        let enrolled = try Enrolled(notBefore: start.addingTimeInterval(-9_000), notAfter: start.addingTimeInterval(1_000))
        // A certificate known to be revoked: the run fails before any network use.
        enrolled.agent.recordRevocation(serial: ServerAgent.serialText(enrolled.leaf), note: "revoked by test", now: start)
        let warnings = WarningLog()
        do {
            _ = try await enrolled.agent.renew(force: false, now: start, metricsWarning: warnings.append)
            Issue.record("a revoked certificate was renewed")
        } catch let error as AutoSSLError {
            #expect(error.kind == .trustFailure, "\(error)")
        }
        #expect(warnings.lines == [])
        let samples = try Self.samples(readFile(try #require(enrolled.enrollment.metricsFile)))
        let label = #"{certificate="web01.internal"}"#
        #expect(samples["auto_ssl_server_renewal_failures_in_a_row" + label] == 1, "\(samples)")
        #expect(samples["auto_ssl_server_certificate_revoked" + label] == 1, "\(samples)")
        #expect(samples["auto_ssl_server_renewal_last_attempt_timestamp_seconds" + label] == start.timeIntervalSince1970)
    }

    @Test func aMetricsFileThatCannotBeWrittenIsAWarningAndTheRunGoesOn() async throws {
        let start = Date(timeIntervalSince1970: Date().timeIntervalSince1970.rounded(.down))  // the state file keeps whole seconds
        let enrolled = try Enrolled(notBefore: start.addingTimeInterval(-100), notAfter: start.addingTimeInterval(9_000))
        let warnings = WarningLog()
        let outcome = try await enrolled.agent.renew(
            force: false, metricsFile: enrolled.temp.file("gone/auto-ssl.prom"), now: start, metricsWarning: warnings.append)
        guard case .notDue = outcome else {
            Issue.record("expected not due, got \(outcome)")
            return
        }
        #expect(warnings.lines.count == 1 && warnings.lines.first?.contains("gone/auto-ssl.prom") == true, "\(warnings.lines)")
        // The override replaced the recorded file for this run.
        #expect(!FileManager.default.fileExists(atPath: try #require(enrolled.enrollment.metricsFile)))
    }

    final class WarningLog: @unchecked Sendable {
        private(set) var lines: [String] = []
        func append(_ line: String) { lines.append(line) }
    }

    @Test func theMetricsPathMustBeAPromFileInAnExistingDirectory() throws {
        let temp = TemporaryDirectory()
        #expect(try ServerAgent.checkMetricsFile(temp.file("auto-ssl.prom")) == temp.file("auto-ssl.prom"))
        for bad in [temp.file("auto-ssl.txt"), temp.file(".prom"), temp.file("missing/auto-ssl.prom")] {
            #expect(throws: AutoSSLError.self, "\(bad)") { try ServerAgent.checkMetricsFile(bad) }
        }
    }
}
