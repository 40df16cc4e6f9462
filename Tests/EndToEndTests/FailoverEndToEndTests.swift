import Foundation
import Testing
import TestSupport

/// Several `--ca-url` through the real binary: the commands try them in order, move on from a URL
/// that does not answer within a second, never from a CA that refuses, and say which one answered.
@Suite(.serialized) struct FailoverEndToEndTests {
    final class Setup: @unchecked Sendable {
        let ca: RunningCA
        let fingerprint: String
        let server = Sandbox()
        /// A loopback port nothing listens on: connections are refused.
        let dead = "https://127.0.0.1:\(freeLoopbackPort())"
        var live: String { ca.url }
        var provisionerPassword: String { ca.sandbox.configDir + "/provisioner-password" }
        var certFile: String { server.certDir + "/server.crt" }

        init() throws {
            ca = try RunningCA()
            fingerprint = try ca.fingerprint
        }

        func enroll(_ urls: [String], _ extra: [String] = []) throws -> ProcessResult {
            try server.run(
                ["server", "enroll"] + urls.flatMap { ["--ca-url", $0] }
                    + ["--fingerprint", fingerprint, "--password-file", provisionerPassword, "--non-interactive",
                       "--san", "localhost", "--san", "127.0.0.1"] + extra)
        }

        func status() throws -> [String: Any] {
            let result = try server.run(["server", "status", "--json"])
            return try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any] ?? [:]
        }

        func serial(_ path: String) throws -> String {
            let out = try runProcess("openssl", ["x509", "-in", path, "-noout", "-serial"]).stdout
            return String(out.split(separator: "=").last ?? "").trimmingCharacters(in: .whitespacesAndNewlines).lowercased()
        }
    }

    /// Runs `body` and says how long it took.
    func timed(_ body: () throws -> ProcessResult) rethrows -> (ProcessResult, Double) {
        let started = Date()
        let result = try body()
        return (result, Date().timeIntervalSince(started))
    }

    @Test func enrollWithADeadURLFirstRecordsBothAndRenewalSaysTheLiveOneAnswered() throws {
        let s = try Setup()
        let enrolled = try s.enroll([s.dead, s.live])
        #expect(enrolled.status == 0, "\(enrolled)")
        #expect(enrolled.stdout.contains("CA \(s.live): root fingerprint \(s.fingerprint) matches."), "\(enrolled)")
        #expect(enrolled.stdout.contains("Answered by the CA at \(s.live)."), "\(enrolled)")
        #expect(enrolled.stdout.contains("tried in this order at renewal: \(s.dead), \(s.live)"), "\(enrolled)")
        #expect(enrolled.stderr.contains("warning: \(s.dead): connection refused by 127.0.0.1"), "\(enrolled)")
        let config = try readFile(s.server.configDir + "/config.yaml")
        #expect(config.contains("ca_url: \(s.dead)\n") && config.contains("ca_urls:"), "\(config)")
        let listed = try #require(config.range(of: "ca_urls:")).upperBound
        let list = config[listed...].split(separator: "\n").prefix(2).map { $0.trimmingCharacters(in: .whitespaces) }
        #expect(list == ["- \(s.dead)", "- \(s.live)"], "both URLs, in order: \(config)")

        // The timer's job: the dead URL is skipped at once and the live one's answer is reported.
        let (renewed, seconds) = try timed { try s.server.run(["server", "renew", "--force", "--exec", "true"]) }
        #expect(renewed.status == 0, "\(renewed)")
        #expect(renewed.stdout.contains("Renewed: serial") && renewed.stdout.contains("Answered by the CA at \(s.live)."), "\(renewed)")
        #expect(renewed.stderr.contains("warning: \(s.dead): connection refused by 127.0.0.1"), "\(renewed)")
        #expect(seconds < 5, "renewal took \(seconds) s")

        let status = try s.status()
        #expect(status["ca_urls"] as? [String] == [s.dead, s.live], "\(status)")
        #expect(status["ca_url"] as? String == s.dead)
        let attempt = try #require(status["last_attempt"] as? [String: Any])
        #expect(attempt["result"] as? String == "renewed" && attempt["ca_url"] as? String == s.live, "\(attempt)")
        #expect((attempt["message"] as? String)?.contains("after no answer from \(s.dead) (connection refused") == true, "\(attempt)")
        let text = try s.server.run(["server", "status"])
        #expect(text.stdout.contains("CA:            \(s.dead), \(s.live)") && text.stdout.contains("(CA \(s.live) answered)"), "\(text)")

        // Revocation goes through the same URLs, and the suggested command carries every one of them.
        let revoked = try s.server.run(["server", "revoke", "--reason", "failover test"])
        #expect(revoked.status == 0, "\(revoked)")
        #expect(revoked.stdout.contains("auto-ssl server enroll --ca-url \(s.dead) --ca-url \(s.live) --fingerprint \(s.fingerprint)"), "\(revoked)")
    }

    /// A port that never answers a connection attempt (a blackholed address) and a peer that
    /// accepts but never completes TLS are each given at most a second.
    @Test func blackholedAndSilentURLsMoveOnWithinASecondEach() throws {
        let s = try Setup()
        let blackhole = try UnansweringPort()
        let silent = try SilentPeer()
        defer { silent.stop() }
        let (enrolled, enrollSeconds) = try timed { try s.enroll([blackhole.url, silent.url, s.live]) }
        #expect(enrolled.status == 0, "\(enrolled)")
        #expect(enrolled.stderr.contains("warning: \(blackhole.url): no answer from 127.0.0.1:\(blackhole.port) (timeout while connecting)"), "\(enrolled)")
        #expect(enrolled.stderr.contains("warning: \(silent.url): no answer from 127.0.0.1:\(silent.port) (timeout"), "\(enrolled)")
        #expect(enrollSeconds < 8, "enrollment took \(enrollSeconds) s")

        let (renewed, seconds) = try timed { try s.server.run(["server", "renew", "--force", "--exec", "true"]) }
        #expect(renewed.status == 0 && renewed.stdout.contains("Answered by the CA at \(s.live)."), "\(renewed)")
        // Two dead URLs at a second each, plus the renewal itself.
        #expect(seconds < 4.5, "renewal took \(seconds) s")
        #expect(silent.connections >= 2, "the silent peer was tried: \(silent.connections)")
    }

    @Test func certIssueRenewAndRevokeUseTheURLThatAnswers() throws {
        let s = try Setup()
        let out = s.ca.sandbox.root
        let urls = [s.dead, s.live].flatMap { ["--ca-url", $0] }
        let issued = try s.ca.sandbox.run(["cert", "issue"] + urls + [
            "--fingerprint", s.fingerprint, "--san", "app.internal", "--out-cert", out.file("app.crt"), "--out-key", out.file("app.key"),
            "--password-file", s.provisionerPassword,
        ])
        #expect(issued.status == 0, "\(issued)")
        #expect(issued.stdout.contains("Answered by the CA at \(s.live)."), "\(issued)")
        #expect(issued.stderr.contains("warning: \(s.dead): connection refused"), "\(issued)")
        let first = try s.serial(out.file("app.crt"))

        let renewed = try s.ca.sandbox.run(["cert", "renew"] + urls + [
            "--fingerprint", s.fingerprint, "--cert", out.file("app.crt"), "--key", out.file("app.key"),
        ])
        #expect(renewed.status == 0 && renewed.stdout.contains("Answered by the CA at \(s.live)."), "\(renewed)")
        #expect(try s.serial(out.file("app.crt")) != first)

        let revoked = try s.ca.sandbox.run(["cert", "revoke"] + urls + [
            "--fingerprint", s.fingerprint, "--cert", out.file("app.crt"), "--key", out.file("app.key"), "--method", "token",
        ])
        #expect(revoked.status == 0 && revoked.stdout.contains("Revoked"), "\(revoked)")
        let crl = try runProcess("sh", ["-c", "curl -sf --cacert \(s.ca.rootPath) '\(s.live)/crl?pem' | openssl crl -noout -text"])
        #expect(crl.stdout.lowercased().contains(try s.serial(out.file("app.crt")).drop { $0 == "0" }), "\(crl)")

        // No URL answers: one error names each of them, with the network's exit code.
        let other = "https://127.0.0.1:\(freeLoopbackPort())"
        let failed = try s.ca.sandbox.run(["cert", "issue", "--ca-url", s.dead, "--ca-url", other,
            "--fingerprint", s.fingerprint, "--san", "app.internal", "--out-cert", out.file("b.crt"), "--out-key", out.file("b.key"),
            "--password-file", s.provisionerPassword,
        ])
        #expect(failed.status == 5, "\(failed)")
        #expect(failed.stderr.contains("none of the CA's 2 URLs answered:\n    \(s.dead): connection refused by"), "\(failed)")
        #expect(failed.stderr.contains("\n    \(other): connection refused by"), "\(failed)")
        #expect(!FileManager.default.fileExists(atPath: out.file("b.crt")))
    }

    @Test func clientTrustWithADeadURLFirstInstallsTheRoot() throws {
        let s = try Setup()
        let fs = s.server.root.file("rootfs")
        s.server.extraEnvironment["AUTO_SSL_ROOT_FS"] = fs
        let trusted = try s.server.run([
            "client", "trust", "--ca-url", s.dead, "--ca-url", s.live, "--fingerprint", s.fingerprint, "--os", "rhel",
        ])
        #expect(trusted.status == 0, "\(trusted)")
        #expect(trusted.stderr.contains("Root downloaded from the CA at \(s.live).") && trusted.stderr.contains("warning: \(s.dead): connection refused"), "\(trusted)")
        let anchors = fs + "/etc/pki/ca-trust/source/anchors"
        let files = try FileManager.default.contentsOfDirectory(atPath: anchors)
        #expect(files.count == 1, "\(files)")
        #expect(try readFile(anchors + "/" + (files.first ?? "")) == (try readFile(s.ca.rootPath)))

        // A printed script is all that stdout carries, whichever URL answered.
        let script = try s.server.run([
            "client", "trust", "--ca-url", s.dead, "--ca-url", s.live, "--fingerprint", s.fingerprint, "--print-script", "macos",
        ])
        #expect(script.status == 0 && script.stdout.hasPrefix("#!") && !script.stdout.contains("Root downloaded"), "\(script)")
    }

    /// An answer from the CA that refuses, and a fingerprint mismatch, stop at the URL that gave
    /// them: the next URL is never asked.
    @Test func aCARefusalOrAFingerprintMismatchIsNotRetriedOnTheNextURL() throws {
        let s = try Setup()
        let silent = try SilentPeer()
        defer { silent.stop() }
        let out = s.ca.sandbox.root
        let wrongPassword = try out.write("wrong.pw", "not-the-provisioner-password\n")
        let (refused, seconds) = try timed {
            try s.ca.sandbox.run([
                "cert", "issue", "--ca-url", s.live, "--ca-url", silent.url, "--fingerprint", s.fingerprint, "--san", "x.internal",
                "--out-cert", out.file("x.crt"), "--out-key", out.file("x.key"), "--password-file", wrongPassword,
            ])
        }
        #expect(refused.status == 6 && refused.stderr.contains("wrong provisioner password"), "\(refused)")
        #expect(silent.connections == 0, "the next URL was tried after a refusal")
        #expect(seconds < 5)

        // Another CA at the first URL: a security stop (exit 6) even though the right CA is next.
        let impostor = try RunningCA()
        let mismatch = try s.server.run([
            "server", "enroll", "--ca-url", impostor.url, "--ca-url", s.live, "--fingerprint", s.fingerprint,
            "--password-file", s.provisionerPassword, "--non-interactive", "--san", "localhost",
        ])
        #expect(mismatch.status == 6, "\(mismatch)")
        #expect(mismatch.stderr.contains("is not the one you expect") && mismatch.stderr.contains(impostor.url), "\(mismatch)")
        let written = try snapshotTree(s.server.root.path)
        #expect(written.isEmpty, "nothing may be written: \(written.keys)")
        // The CA tried second issued nothing.
        let issued = try s.ca.auditEvents().filter { $0["event"] as? String == "certificate.issued" }
        #expect(issued.isEmpty, "\(issued)")
    }

    /// A CA that is down (its one URL refuses connections) is reported at once by `server renew`,
    /// `cert issue` and `ca status`, not after a connect timeout spent retrying.
    @Test func aCAThatIsDownIsReportedWithinASecond() throws {
        let s = try Setup()
        #expect(try s.enroll([s.live]).status == 0)
        #expect(s.ca.stop() == 0)
        func timed(_ run: () throws -> ProcessResult) rethrows -> (ProcessResult, Double) {
            let started = Date()
            let result = try run()
            return (result, Date().timeIntervalSince(started))
        }
        let (renewed, renewSeconds) = try timed { try s.server.run(["server", "renew", "--force", "--exec", "true"]) }
        #expect(renewed.status == 5 && renewed.stderr.contains("connection refused"), "\(renewed)")
        let (issued, issueSeconds) = try timed {
            try s.server.run([
                "cert", "issue", "--ca-url", s.live, "--fingerprint", s.fingerprint, "--san", "down.internal",
                "--out-cert", s.server.root.file("down.crt"), "--out-key", s.server.root.file("down.key"),
                "--password-file", s.provisionerPassword,
            ])
        }
        #expect(issued.status == 5 && issued.stderr.contains("connection refused"), "\(issued)")
        let (status, statusSeconds) = try timed { try s.ca.sandbox.run(["ca", "status"]) }
        #expect(status.stdout.contains("not running"), "\(status)")
        // Each is a process start plus one refused connection (it was 10 s of retries before).
        for (name, seconds) in [("server renew", renewSeconds), ("cert issue", issueSeconds), ("ca status", statusSeconds)] {
            #expect(seconds < 2.5, "\(name) took \(seconds) s with the CA down")
        }
    }

    /// A config.yaml written before there could be several URLs (only `ca_url`) still renews.
    @Test func anEnrollmentWithOnlyCAURLStillRenews() throws {
        let s = try Setup()
        #expect(try s.enroll([s.live]).status == 0)
        let path = s.server.configDir + "/config.yaml"
        let config = try readFile(path)
        #expect(config.contains("ca_url: \(s.live)") && !config.contains("ca_urls"), "one URL is written as before: \(config)")
        // As an older auto-ssl wrote it: the server section's keys of that version only.
        let old = config.split(separator: "\n", omittingEmptySubsequences: false)
            .filter { !$0.contains("ca_urls") }.joined(separator: "\n")
        try old.write(toFile: path, atomically: true, encoding: .utf8)
        let renewed = try s.server.run(["server", "renew", "--force", "--exec", "true"])
        #expect(renewed.status == 0 && renewed.stdout.contains("Renewed: serial"), "\(renewed)")
        #expect(!renewed.stdout.contains("Answered by"), "one URL: nothing to choose between")
        let status = try s.status()
        #expect(status["ca_urls"] as? [String] == [s.live], "\(status)")
        #expect((status["last_attempt"] as? [String: Any])?["ca_url"] as? String == s.live)
        #expect(!(try readFile(path)).contains("ca_urls"), "renewal leaves the file as it was")
    }
}
