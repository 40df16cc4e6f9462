import AutoSSLCA
import AutoSSLConfig
import AutoSSLCore
import AutoSSLHost
import AutoSSLIO
import Foundation
import Testing
import TestSupport
import X509

@testable import AutoSSLAgent

struct AgentTests {
    func directories(_ temp: TemporaryDirectory) -> Directories {
        Directories(configDir: temp.file("etc"), dataDir: temp.file("data"), certDir: temp.file("certs"), systemdDir: temp.file("systemd"))
    }

    func enrollment(fraction: Double? = nil) -> ServerEnrollment {
        var enrollment = ServerEnrollment(
            caURL: "https://ca.internal:9000", fingerprint: String(repeating: "a", count: 64), names: ["web01.internal", "10.0.0.7"],
            certPath: "/etc/ssl/auto-ssl/server.crt", keyPath: "/etc/ssl/auto-ssl/server.key", rootPath: "/etc/ssl/auto-ssl/ca.crt",
            combinedPath: nil, keyType: "ec", provisioner: "admin", duration: "7d", reload: "nginx",
            reloadCommand: "systemctl reload nginx", renewalTimer: true, enrolledAt: Date(timeIntervalSince1970: 1_800_000_000))
        enrollment.renewAtFraction = fraction
        return enrollment
    }

    func certificate(notBefore: Date, notAfter: Date) throws -> Certificate {
        let key = try SigningKey.generate(.p256)
        return try CertificateProfiles.root(caName: "Test", key: key, notBefore: notBefore, notAfter: notAfter)
    }

    @Test func theRenewalPointIsTwoThirdsOfTheLifetimeUnlessConfigured() throws {
        let start = Date(timeIntervalSince1970: 1_800_000_000)
        let leaf = try certificate(notBefore: start, notAfter: start.addingTimeInterval(9_000))
        let agent = ServerAgent(directories: .defaults)
        #expect(abs(agent.renewalPoint(of: leaf, enrollment: enrollment()).timeIntervalSince(start) - 6_000) < 1)
        #expect(abs(agent.renewalPoint(of: leaf, enrollment: enrollment(fraction: 0.5)).timeIntervalSince(start) - 4_500) < 1)
        // Out-of-range fractions are clamped, never past the expiry.
        #expect(abs(agent.renewalPoint(of: leaf, enrollment: enrollment(fraction: 3)).timeIntervalSince(start) - 9_000) < 1)
        // A hand-edited .nan or .inf is ignored: the default point, not one no time compares with.
        for unusable in [Double.nan, .infinity, -.infinity] {
            #expect(abs(agent.renewalPoint(of: leaf, enrollment: enrollment(fraction: unusable)).timeIntervalSince(start) - 6_000) < 1)
        }
    }

    @Test func theEnrollAgainCommandCarriesEveryRecordedOption() throws {
        let agent = ServerAgent(directories: Directories(
            configDir: "/etc/auto-ssl", dataDir: "/var/lib/auto-ssl", certDir: "/etc/ssl/auto-ssl", systemdDir: "/etc/systemd/system"))
        var recorded = enrollment()
        #expect(agent.enrollCommand(recorded) == "auto-ssl server enroll --ca-url https://ca.internal:9000 --fingerprint "
            + String(repeating: "a", count: 64) + " --san web01.internal --san 10.0.0.7 --duration 7d --reload nginx")
        recorded.reload = nil
        recorded.reloadCommand = "systemctl restart 'my app' && echo ok"
        recorded.keyType = "rsa"
        recorded.provisioner = "ops"
        recorded.certPath = "/srv/tls/site.crt"
        recorded.renewalTimer = false
        recorded.duration = nil
        let command = agent.enrollCommand(recorded)
        #expect(command.hasSuffix(
            "--san 10.0.0.7 --cert-path /srv/tls/site.crt --key-type rsa --provisioner ops --exec 'systemctl restart '\\''my app'\\'' && echo ok' --no-renewal"),
            "\(command)")
        // What the shell makes of it is the recorded command, word for word.
        let words = try runProcess("sh", ["-c", "for w in \(command.dropFirst("auto-ssl ".count)); do echo \"[$w]\"; done"]).stdout
        #expect(words.contains("[systemctl restart 'my app' && echo ok]"), "\(words)")
    }

    @Test func backoffDoublesAndIsCapped() {
        let daemon = RenewalDaemon(agent: ServerAgent(directories: .defaults))
        #expect((1...9).map { daemon.backoff(afterFailures: $0) } == [30, 60, 120, 240, 480, 960, 1_920, 3_600, 3_600])
        for _ in 0..<200 {
            let value = RenewalDaemon.jittered(900)
            #expect(value >= 840 && value <= 960)
            #expect(RenewalDaemon.jittered(0.5) >= 1)
        }
    }

    @Test func webServersReloadAndPointAtTheFiles() throws {
        #expect(WebServer.nginx.reloadCommand(systemd: true, family: .debian) == "systemctl reload nginx")
        #expect(WebServer.nginx.reloadCommand(systemd: false, family: .debian) == "nginx -s reload")
        #expect(WebServer.apache.reloadCommand(systemd: true, family: .debian) == "systemctl reload apache2")
        #expect(WebServer.apache.reloadCommand(systemd: true, family: .rhel) == "systemctl reload httpd")
        #expect(WebServer.caddy.reloadCommand(systemd: true, family: .debian) == "systemctl reload caddy")
        #expect(WebServer.haproxy.wantsCombinedFile && !WebServer.nginx.wantsCombinedFile)
        for server in WebServer.allCases {
            let snippet = server.snippet(certPath: "/c/server.crt", keyPath: "/c/server.key", combinedPath: "/c/server.pem")
            #expect(snippet.contains(server == .haproxy ? "/c/server.pem" : "/c/server.key"), "\(server)")
        }
        #expect(try WebServer(parsing: "NGINX") == .nginx)
        #expect(throws: AutoSSLError.self) { try WebServer(parsing: "iis") }
    }

    @Test func onlyTheNewestFivePairsAreKept() throws {
        let temp = TemporaryDirectory()
        let agent = ServerAgent(directories: directories(temp))
        let start = Date(timeIntervalSince1970: 1_800_000_000)
        for index in 0..<8 {
            let pair = ServerAgent.Pair(certificate: Array("cert \(index)".utf8), key: Array("key \(index)".utf8), serial: "0\(index)")
            _ = try agent.keepBackup(pair, now: start.addingTimeInterval(Double(index) * 60))
        }
        let kept = try FileManager.default.contentsOfDirectory(atPath: agent.backupsDir).sorted()
        #expect(kept.count == ServerAgent.keptBackups)
        #expect(try readFile(agent.backupsDir + "/" + kept.last! + "/server.crt") == "cert 7")
        #expect(try readFile(agent.backupsDir + "/" + kept.first! + "/server.crt") == "cert 3")
        #expect(fileMode(agent.backupsDir) == 0o700)
        #expect(fileMode(agent.backupsDir + "/" + kept.last! + "/server.key") == 0o600)
    }

    @Test func theEnrollmentRoundTripsAndRemovingItLeavesOtherSections() throws {
        let temp = TemporaryDirectory()
        let agent = ServerAgent(directories: directories(temp))
        #expect(throws: AutoSSLError.self) { try agent.enrollment() }
        var saved = enrollment(fraction: 0.5)
        saved.suspension = .init(reason: "maintenance", since: Date(timeIntervalSince1970: 1_800_000_100))
        try agent.saveEnrollment(saved)
        #expect(try agent.enrollment() == saved)
        let text = try readFile(agent.directories.configFile)
        #expect(text.contains("server:") && text.contains("renew_at_fraction:") && text.contains("reason: maintenance"), "\(text)")
        try agent.saveEnrollment(nil)
        #expect(!FileManager.default.fileExists(atPath: agent.directories.configFile), "an empty configuration is removed")
    }

    @Test func suspendAndResume() throws {
        let temp = TemporaryDirectory()
        let agent = ServerAgent(directories: directories(temp))
        try agent.saveEnrollment(enrollment())
        try agent.suspend(reason: "")
        #expect(try agent.enrollment().suspension?.reason == "suspended by an operator")
        #expect(try agent.resume())
        #expect(try !agent.resume())
        #expect(try agent.enrollment().suspension == nil)
    }

    @Test func statusOfAMissingCertificateIsUnhealthy() throws {
        let temp = TemporaryDirectory()
        let agent = ServerAgent(directories: directories(temp))
        #expect(try !agent.status().healthy && !agent.status().enrolled)
        var missing = enrollment()
        missing.certPath = temp.file("certs/server.crt")
        try agent.saveEnrollment(missing)
        let report = try agent.status()
        #expect(report.enrolled && !report.healthy && report.certificateProblem?.contains("does not exist") == true)
    }

    @Test func stateSurvivesGarbageAndCountsFailures() throws {
        let temp = TemporaryDirectory()
        let agent = ServerAgent(directories: directories(temp))
        try FileManager.default.createDirectory(atPath: agent.directories.dataDir, withIntermediateDirectories: true)
        try "not json".write(toFile: agent.stateFile, atomically: true, encoding: .utf8)
        #expect(ServerState.load(from: agent.stateFile) == ServerState())
        let now = Date(timeIntervalSince1970: 1_800_000_000)
        _ = agent.recordAttempt("failed", "one", success: false, now: now)
        let state = agent.recordAttempt("failed", "two", success: false, now: now)
        #expect(state.consecutiveFailures == 2 && state.lastAttempt?.message == "two")
        #expect(agent.recordAttempt("renewed", "ok", success: true, now: now).consecutiveFailures == 0)
        #expect(ServerState.load(from: agent.stateFile).lastSuccess == now)
        // The count is read back from the file, which could hold anything: it saturates.
        var full = ServerState.load(from: agent.stateFile)
        full.consecutiveFailures = Int.max
        try full.save(to: agent.stateFile)
        #expect(agent.recordAttempt("failed", "again", success: false, now: now).consecutiveFailures == Int.max)
    }

    @Test func shellCommandsDoNotHangOnDaemonsAndTimeOut() throws {
        // A command that leaves a background process holding stdout must still return at once.
        let started = Date()
        let daemon = try ShellCommand.run("sleep 20 & echo started", timeout: 10)
        #expect(daemon.status == 0 && daemon.output.contains("started"))
        #expect(Date().timeIntervalSince(started) < 5)
        let slow = try ShellCommand.run("sleep 20", timeout: 0.5)
        #expect(slow.timedOut && slow.status != 0)
        #expect(try ShellCommand.run("echo out; echo err >&2; exit 3").output == "out\nerr\n")
        #expect(try ShellCommand.run("exit 3").status == 3)
        // Output without end is stopped at the limit, and only its end is read back.
        let endless = try SpawnedProcess.run(["/bin/sh", "-c", "yes"], timeout: 30, outputLimit: 1 << 20)
        #expect(endless.overflowed && !endless.timedOut && endless.status != 0 && endless.output.utf8.count == 4_000)
    }

    @Test func defaultNamesHaveNoLoopbackAndNoDuplicates() {
        let names = NetworkAddresses.defaultServerNames()
        #expect(Set(names).count == names.count)
        for name in names {
            if case .ip(let ip) = name { #expect(!ip.isLoopback) }
            #expect(name.description != "localhost")
        }
    }
}
