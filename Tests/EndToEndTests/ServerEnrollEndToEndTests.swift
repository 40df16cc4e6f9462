import Foundation
import Testing
import TestSupport

/// `server enroll/renew/status/suspend/resume/revoke/remove` through the real binary, with a real
/// nginx serving the enrolled certificate and curl verifying it against the installed root.
@Suite(.serialized) struct ServerEnrollEndToEndTests {
    /// A CA on loopback, and an application server with its own directories (as on another machine).
    final class Setup: @unchecked Sendable {
        let ca: RunningCA
        let fingerprint: String
        let server = Sandbox()
        var provisionerPassword: String { ca.sandbox.configDir + "/provisioner-password" }
        var certFile: String { server.certDir + "/server.crt" }
        var keyFile: String { server.certDir + "/server.key" }
        var rootFile: String { server.certDir + "/ca.crt" }

        init(caSetup: (Sandbox) throws -> Void = { _ in }) throws {
            ca = try RunningCA(setup: caSetup)
            fingerprint = try ca.fingerprint
        }

        @discardableResult
        func enroll(_ extra: [String] = [], names: [String] = ["localhost", "127.0.0.1"]) throws -> ProcessResult {
            try server.run(
                ["server", "enroll", "--ca-url", ca.url, "--fingerprint", fingerprint, "--password-file", provisionerPassword,
                 "--non-interactive"] + names.flatMap { ["--san", $0] } + extra)
        }

        func serial(_ path: String? = nil) throws -> String {
            let out = try runProcess("openssl", ["x509", "-in", path ?? certFile, "-noout", "-serial"]).stdout
            return String(out.split(separator: "=").last ?? "").trimmingCharacters(in: .whitespacesAndNewlines).lowercased()
        }

        func status() throws -> (ProcessResult, [String: Any]) {
            let result = try server.run(["server", "status", "--json"])
            let object = try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any] ?? [:]
            return (result, object)
        }

        func files() throws -> [String: String] {
            var contents: [String: String] = [:]
            for path in [certFile, keyFile, rootFile] where FileManager.default.fileExists(atPath: path) {
                contents[path] = try readFile(path)
            }
            return contents
        }
    }

    /// nginx on a loopback port serving the enrolled pair, reloadable with `nginx -s reload`.
    final class Nginx: @unchecked Sendable {
        let directory: String
        let port = freeLoopbackPort()
        let process = Process()
        var config: String { directory + "/nginx.conf" }
        var reloadCommand: String { "nginx -c \(config) -e \(directory)/error.log -s reload" }

        init(directory: String) {
            self.directory = directory
        }

        func start(cert: String, key: String) throws {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            let text = """
                daemon off;
                pid \(directory)/nginx.pid;
                error_log \(directory)/error.log;
                worker_processes 1;
                events { worker_connections 64; }
                http {
                    access_log off;
                    client_body_temp_path \(directory)/body;
                    proxy_temp_path \(directory)/proxy;
                    fastcgi_temp_path \(directory)/fastcgi;
                    uwsgi_temp_path \(directory)/uwsgi;
                    scgi_temp_path \(directory)/scgi;
                    server {
                        listen 127.0.0.1:\(port) ssl;
                        server_name localhost;
                        ssl_certificate \(cert);
                        ssl_certificate_key \(key);
                        location / { return 200 "hello from nginx\\n"; }
                    }
                }
                """
            try text.write(toFile: config, atomically: true, encoding: .utf8)
            let log = directory + "/stdout.log"
            _ = FileManager.default.createFile(atPath: log, contents: nil)
            process.executableURL = URL(fileURLWithPath: "/usr/sbin/nginx")
            process.arguments = ["-c", config, "-e", directory + "/error.log"]
            process.standardInput = FileHandle.nullDevice
            process.standardOutput = FileHandle(forWritingAtPath: log)
            process.standardError = FileHandle(forWritingAtPath: log)
            try process.run()
            for _ in 0..<100 {
                if FileManager.default.fileExists(atPath: directory + "/nginx.pid"),
                   (try? runProcess("curl", ["-sk", "-o", "/dev/null", "https://127.0.0.1:\(port)/"]))?.status == 0 {
                    return
                }
                usleep(100_000)
            }
            throw TestFailure("nginx did not start: \((try? readFile(directory + "/error.log")) ?? "")")
        }

        /// The serial of the certificate nginx presents right now.
        func servedSerial() throws -> String {
            let result = try runProcess("sh", [
                "-c",
                "openssl s_client -connect 127.0.0.1:\(port) -servername localhost </dev/null 2>/dev/null | openssl x509 -noout -serial",
            ])
            return String(result.stdout.split(separator: "=").last ?? "").trimmingCharacters(in: .whitespacesAndNewlines).lowercased()
        }

        deinit {
            if process.isRunning {
                kill(process.processIdentifier, SIGQUIT)
                process.waitUntilExit()
            }
        }
    }

    @Test func enrolledNginxServesAVerifiedCertificateAndRenewsWithoutDowntime() throws {
        let setup = try Setup()
        let nginx = Nginx(directory: setup.server.root.file("nginx"))
        let enrolled = try setup.enroll(["--exec", nginx.reloadCommand])
        #expect(enrolled.status == 0, "\(enrolled)")
        #expect(enrolled.stdout.contains("Certificate names: localhost, 127.0.0.1"), "\(enrolled)")
        #expect(fileMode(setup.keyFile) == 0o600)
        #expect(fileMode(setup.certFile) == 0o644)
        #expect(try readFile(setup.rootFile) == (try readFile(setup.ca.rootPath)))
        let chain = try readFile(setup.certFile)
        #expect(chain.components(separatedBy: "BEGIN CERTIFICATE").count == 3, "leaf + intermediate")
        let verify = try runProcess("openssl", [
            "verify", "-x509_strict", "-CAfile", setup.rootFile, "-untrusted", setup.certFile, setup.certFile,
        ])
        #expect(verify.status == 0, "\(verify)")
        let config = try readFile(setup.server.configDir + "/config.yaml")
        #expect(config.contains("server:") && config.contains("ca_url: \(setup.ca.url)") && config.contains("reload_command:"))

        try nginx.start(cert: setup.certFile, key: setup.keyFile)
        let url = "https://localhost:\(nginx.port)/"
        let curl = try runProcess("curl", ["-sS", "--cacert", setup.rootFile, "--resolve", "localhost:\(nginx.port):127.0.0.1", url])
        #expect(curl.status == 0 && curl.stdout == "hello from nginx\n", "\(curl)")
        let plain = try runProcess("curl", ["-sS", "--resolve", "localhost:\(nginx.port):127.0.0.1", url])
        #expect(plain.status != 0, "without the root, curl must not trust the certificate")
        let first = try setup.serial()
        #expect(try nginx.servedSerial() == first)

        // Requests keep succeeding while the certificate is renewed and nginx reloads.
        let probeLog = setup.server.root.file("probe.log")
        let probe = Process()
        probe.executableURL = URL(fileURLWithPath: "/bin/sh")
        probe.arguments = ["-c", """
            ok=0; bad=0; end=$(($(date +%s) + 6))
            while [ $(date +%s) -lt $end ]; do
              if curl -sf --cacert \(setup.rootFile) --resolve localhost:\(nginx.port):127.0.0.1 \(url) >/dev/null; then ok=$((ok+1)); else bad=$((bad+1)); fi
            done
            echo "$ok $bad" > \(probeLog)
            """]
        probe.standardInput = FileHandle.nullDevice
        probe.standardOutput = FileHandle.nullDevice
        probe.standardError = FileHandle.nullDevice
        try probe.run()
        usleep(1_500_000)
        let renewed = try setup.server.run(["server", "renew", "--force"])
        #expect(renewed.status == 0, "\(renewed)")
        #expect(renewed.stdout.contains("Ran `\(nginx.reloadCommand)`"), "\(renewed)")
        probe.waitUntilExit()
        let counts = try readFile(probeLog).split(separator: " ").map { Int($0.trimmingCharacters(in: .whitespacesAndNewlines)) ?? -1 }
        #expect(counts.count == 2 && counts[0] > 10 && counts[1] == 0, "requests during the renewal (ok, failed): \(counts)")
        let second = try setup.serial()
        #expect(second != first)
        var served = ""
        for _ in 0..<50 {
            served = try nginx.servedSerial()
            if served == second { break }
            usleep(100_000)
        }
        #expect(served == second, "nginx serves the renewed certificate after the reload")
        let again = try runProcess("curl", ["-sS", "--cacert", setup.rootFile, "--resolve", "localhost:\(nginx.port):127.0.0.1", url])
        #expect(again.status == 0, "\(again)")
        let backups = try FileManager.default.contentsOfDirectory(atPath: setup.server.dataDir + "/cert-backups")
        #expect(backups.count == 1, "the replaced pair is kept: \(backups)")
        #expect(try readFile(setup.server.dataDir + "/cert-backups/" + backups[0] + "/server.crt") == chain)
        #expect(fileMode(setup.server.dataDir + "/cert-backups/" + backups[0] + "/server.key") == 0o600)

        // Not due yet: a scheduled run changes nothing.
        let scheduled = try setup.server.run(["server", "renew"])
        #expect(scheduled.status == 0 && scheduled.stdout.contains("Not due"), "\(scheduled)")
        #expect(try setup.serial() == second)

        let (statusRun, status) = try setup.status()
        #expect(statusRun.status == 0, "\(statusRun)")
        #expect(normalisedSerial(status["serial"] as? String ?? "") == normalisedSerial(second))
        #expect(status["names"] as? [String] == ["localhost", "127.0.0.1"])
        #expect((status["seconds_left"] as? Int ?? 0) > 6 * 86_400)
        #expect(status["renewal_point"] is String && status["renewal_due"] as? Bool == false)
        #expect((status["last_attempt"] as? [String: Any])?["result"] as? String == "renewed")
        #expect(status["suspended"] as? Bool == false)
    }

    @Test func aWrongFingerprintWritesNothingAndExits6() throws {
        let setup = try Setup()
        let wrong = String(repeating: "ab", count: 32)
        let result = try setup.server.run([
            "server", "enroll", "--ca-url", setup.ca.url, "--fingerprint", wrong, "--san", "localhost",
            "--password-file", setup.provisionerPassword, "--non-interactive",
        ])
        #expect(result.status == 6, "\(result)")
        #expect(result.stderr.contains(wrong) && result.stderr.contains(setup.fingerprint), "both fingerprints are named: \(result)")
        #expect(try snapshotTree(setup.server.root.path).isEmpty, "nothing may be written")

        // A wrong password and a refused name also leave nothing behind.
        let badPassword = try setup.server.root.write("bad-password", "not-the-provisioner-password")
        let refused = try setup.server.run([
            "server", "enroll", "--ca-url", setup.ca.url, "--fingerprint", setup.fingerprint, "--san", "localhost",
            "--password-file", badPassword, "--non-interactive",
        ])
        #expect(refused.status == 6 && refused.stderr.contains("wrong provisioner password"), "\(refused)")
        #expect(!FileManager.default.fileExists(atPath: setup.certFile) && !FileManager.default.fileExists(atPath: setup.server.configDir))
        let usage = try setup.server.run(["server", "enroll", "--ca-url", setup.ca.url, "--fingerprint", setup.fingerprint, "--non-interactive"])
        #expect(usage.status == 2 && usage.stderr.contains("--password-file"), "\(usage)")
        let unreachable = try setup.server.run([
            "server", "enroll", "--ca-url", "https://127.0.0.1:\(freeLoopbackPort())", "--fingerprint", setup.fingerprint,
            "--san", "localhost", "--password-file", setup.provisionerPassword, "--non-interactive",
        ])
        #expect(unreachable.status == 5, "\(unreachable)")
    }

    @Test func aNameRefusedByPolicyChangesNothing() throws {
        let setup = try Setup()
        #expect(try setup.enroll().status == 0)
        let before = try setup.files()
        let password = try setup.ca.sandbox.root.write("restricted-password", "restricted-provisioner-password-1")
        let added = try setup.ca.sandbox.run([
            "ca", "provisioner", "add", "restricted", "--allow-dns", ".internal", "--password-file", password,
        ])
        #expect(added.status == 0, "\(added)")
        // The server picks up new provisioners within seconds.
        var refused = try setup.server.run(["server", "status"])
        for _ in 0..<30 {
            refused = try setup.server.run([
                "server", "enroll", "--ca-url", setup.ca.url, "--fingerprint", setup.fingerprint, "--san", "localhost",
                "--provisioner", "restricted", "--password-file", password, "--non-interactive",
            ])
            if !refused.stderr.contains("no provisioner named") { break }
            usleep(500_000)
        }
        #expect(refused.status != 0 && refused.stderr.contains("localhost"), "\(refused)")
        #expect(try setup.files() == before, "the enrolled key and certificate stay as they were")
    }

    @Test func unitsVerifyAndHAProxyGetsOneFile() throws {
        let setup = try Setup()
        let fakeRoot = setup.server.root.file("fs")
        try FileManager.default.createDirectory(atPath: fakeRoot + "/etc", withIntermediateDirectories: true)
        try "ID=debian\n".write(toFile: fakeRoot + "/etc/os-release", atomically: true, encoding: .utf8)
        setup.server.extraEnvironment["AUTO_SSL_ROOT_FS"] = fakeRoot
        let result = try setup.enroll(["--reload", "haproxy", "--trust", "--key-type", "rsa"])
        #expect(result.status == 0, "\(result)")
        let combined = setup.server.certDir + "/server.pem"
        #expect(fileMode(combined) == 0o600)
        let pem = try readFile(combined)
        #expect(pem.contains("BEGIN CERTIFICATE") && pem.contains("BEGIN PRIVATE KEY"))
        #expect(result.stdout.contains("bind :443 ssl crt \(combined)"), "\(result)")
        #expect(result.stdout.contains("Trusted"), "\(result)")
        let anchors = try FileManager.default.contentsOfDirectory(atPath: fakeRoot + "/usr/local/share/ca-certificates")
        #expect(anchors.count == 1, "\(anchors)")
        let keyText = try runProcess("openssl", ["pkey", "-in", setup.keyFile, "-noout", "-text"]).stdout
        #expect(keyText.contains("2048 bit"), "--key-type rsa gives RSA 2048")

        let service = setup.server.systemdDir + "/auto-ssl-renew.service"
        let timer = setup.server.systemdDir + "/auto-ssl-renew.timer"
        let timerText = try readFile(timer)
        #expect(timerText.contains("OnCalendar=*:0/15") && timerText.contains("RandomizedDelaySec=") && timerText.contains("Persistent=true"))
        #expect(try readFile(service).contains("server renew"))
        if FileManager.default.isExecutableFile(atPath: "/usr/bin/systemd-analyze") {
            let verified = try runProcess("systemd-analyze", ["verify", service, timer])
            let relevant = (verified.stdout + verified.stderr).split(separator: "\n").filter { $0.contains("auto-ssl-renew") }
            #expect(verified.status == 0 && relevant.isEmpty, "\(verified)")
        }

        // Renewal rewrites the combined file with the new chain.
        let renewed = try setup.server.run(["server", "renew", "--force", "--exec", "true"])
        #expect(renewed.status == 0, "\(renewed)")
        #expect(try readFile(combined).hasPrefix(try readFile(setup.certFile)))
        #expect(try readFile(combined) != pem)

        // HAProxy's own layout: the certificate path is server.pem itself. The combined file takes
        // its place (chain + key), and renewal reads the chain from it.
        let haproxy = Sandbox()
        let own = haproxy.root.file("server.pem")
        let sameFile = try haproxy.run([
            "server", "enroll", "--ca-url", setup.ca.url, "--fingerprint", setup.fingerprint, "--san", "localhost",
            "--password-file", setup.provisionerPassword, "--non-interactive", "--no-renewal", "--reload", "haproxy",
            "--cert-path", own, "--key-path", haproxy.root.file("server.key"),
        ])
        #expect(sameFile.status == 0, "\(sameFile)")
        let first = try readFile(own)
        #expect(first.contains("BEGIN CERTIFICATE") && first.contains("BEGIN PRIVATE KEY"), "\(first)")
        let renewedInPlace = try haproxy.run(["server", "renew", "--force", "--exec", "true"])
        #expect(renewedInPlace.status == 0, "\(renewedInPlace)")
        #expect(try readFile(own) != first && readFile(own).contains("BEGIN PRIVATE KEY"))

        let noRenewal = Sandbox()
        let plain = try noRenewal.run([
            "server", "enroll", "--ca-url", setup.ca.url, "--fingerprint", setup.fingerprint, "--san", "localhost",
            "--password-file", setup.provisionerPassword, "--non-interactive", "--no-renewal",
        ])
        #expect(plain.status == 0, "\(plain)")
        #expect(!FileManager.default.fileExists(atPath: noRenewal.systemdDir + "/auto-ssl-renew.timer"))
    }

    @Test func suspensionSkipsRenewalsAndRevocationMakesThemFail() throws {
        let setup = try Setup()
        #expect(try setup.enroll().status == 0)
        let first = try setup.serial()
        let suspended = try setup.server.run(["server", "suspend", "--reason", "database migration"])
        #expect(suspended.status == 0, "\(suspended)")
        let skipped = try setup.server.run(["server", "renew"])
        #expect(skipped.status == 0 && skipped.stdout.contains("suspended (database migration)"), "\(skipped)")
        #expect(try setup.serial() == first)
        let (_, status) = try setup.status()
        #expect(status["suspended"] as? Bool == true && status["suspension_reason"] as? String == "database migration")
        #expect((status["last_attempt"] as? [String: Any])?["result"] as? String == "skipped")
        let forced = try setup.server.run(["server", "renew", "--force", "--exec", "true"])
        #expect(forced.status == 0, "--force works while suspended: \(forced)")
        let second = try setup.serial()
        #expect(second != first)
        #expect(try setup.server.run(["server", "resume"]).stdout.contains("resumed"))
        #expect(try setup.status().1["suspended"] as? Bool == false)

        let revoked = try setup.server.run(["server", "revoke", "--reason", "decommissioned"])
        #expect(revoked.status == 0, "\(revoked)")
        let afterRevocation = try setup.status().1
        #expect(afterRevocation["suspended"] as? Bool == true, "scheduled renewals stop after revocation")
        let before = try setup.files()
        let refused = try setup.server.run(["server", "renew", "--force"])
        #expect(refused.status == 6 && refused.stderr.contains("revoked") && refused.stderr.lowercased().contains("enroll again"), "\(refused)")
        #expect(try setup.files() == before, "a failed renewal leaves the files untouched")
        let crl = try runProcess("sh", ["-c", "curl -sf --cacert \(setup.rootFile) '\(setup.ca.url)/crl?pem' | openssl crl -noout -text"])
        #expect(crl.stdout.lowercased().contains(second.drop { $0 == "0" }), "\(crl)")
        // The renewal kept the key, so the certificate before it is revoked with it.
        #expect(crl.stdout.lowercased().contains(first.drop { $0 == "0" }), "\(crl)")
        let audit = try setup.ca.auditEvents().filter { $0["event"] as? String == "certificate.revoked" }
        #expect(audit.count == 2 && audit.contains { ($0["detail"] as? String ?? "").contains("same key as") }, "\(audit)")

        // The CA stops: a renewal fails with exit 5 and nothing changes.
        setup.ca.stop()
        #expect(try setup.server.run(["server", "resume"]).status == 0)
        let unreachable = try setup.server.run(["server", "renew", "--force"])
        #expect(unreachable.status == 5, "\(unreachable)")
        #expect(try setup.files() == before)
        // After three failures in a row the message says how long the certificate has left.
        _ = try setup.server.run(["server", "renew", "--force"])
        let third = try setup.server.run(["server", "renew", "--force"])
        #expect(third.status == 5 && third.stderr.contains("times in a row") && third.stderr.contains("expires in"), "\(third)")
        #expect(try setup.status().1["consecutive_failures"] as? Int == 4, "revoked, then three times unreachable")
    }

    @Test func aRevokedCertificateIsReportedAndReEnrollingKeepsEveryOption() throws {
        let setup = try Setup()
        let options = ["--reload", "nginx", "--duration", "2h", "--no-renewal"]
        #expect(try setup.enroll(options).status == 0)
        let healthy = try setup.status()
        #expect(healthy.0.status == 0 && healthy.1["revoked"] as? Bool == false, "\(healthy.0)")

        let revoked = try setup.server.run(["server", "revoke", "--reason", "key on a lost disk"])
        #expect(revoked.status == 0, "\(revoked)")
        // The suggestion carries the recorded options, not just the URL, fingerprint and names.
        let suggested = try #require(revoked.stdout.split(separator: "\n").map(String.init).first { $0.contains("server enroll") })
        for option in ["--reload nginx", "--duration 2h", "--no-renewal", "--san localhost", "--san 127.0.0.1"] {
            #expect(suggested.contains(option), "\(option) missing from: \(suggested)")
        }

        // status: exit 1 (as for an expired certificate), "revoked" in JSON and text.
        let (statusRun, status) = try setup.status()
        #expect(statusRun.status == 1, "\(statusRun)")
        #expect(status["revoked"] as? Bool == true && status["expired"] as? Bool == false)
        let revocation = try #require(status["revocation"] as? [String: Any])
        #expect(normalisedSerial(revocation["serial"] as? String ?? "") == normalisedSerial(try setup.serial()))
        #expect((revocation["detail"] as? String ?? "").contains("key on a lost disk") && revocation["since"] is String)
        #expect((status["enroll_command"] as? String ?? "").contains("--reload nginx"))
        let text = try setup.server.run(["server", "status"])
        #expect(text.status == 1 && text.stdout.contains("REVOKED") && text.stdout.contains("--reload nginx"), "\(text)")

        // renew (as the timer would run it) says revoked, not "suspended", and how to enroll again.
        let renewal = try setup.server.run(["server", "renew"])
        #expect(renewal.status == 6 && renewal.stderr.contains("is revoked") && renewal.stderr.contains("--reload nginx"), "\(renewal)")
        #expect(!renewal.stdout.contains("suspended"), "\(renewal)")

        // Following the suggestion gets a new certificate with the same options.
        let words = try runProcess("sh", ["-c", "for w in \(suggested.trimmingCharacters(in: .whitespaces)); do echo \"$w\"; done"])
            .stdout.split(separator: "\n").map(String.init)
        #expect(words.first == "auto-ssl" && words.count > 3)
        let again = try setup.server.run(Array(words.dropFirst()) + ["--password-file", setup.provisionerPassword, "--non-interactive"])
        #expect(again.status == 0, "\(again)")
        let config = try readFile(setup.server.configDir + "/config.yaml")
        #expect(config.contains("reload: nginx") && config.contains("duration: 2h") && config.contains("renewal_timer: false"), "\(config)")
        let (afterRun, after) = try setup.status()
        #expect(afterRun.status == 0 && after["revoked"] as? Bool == false && after["revocation"] == nil, "\(afterRun)")

        // Revoked at the CA instead: the refused renewal is remembered, and status reports it.
        let serial = try setup.serial()
        let atCA = try setup.ca.sandbox.run(["ca", "revoke", serial, "--reason", "compromised"])
        #expect(atCA.status == 0, "\(atCA)")
        #expect(try setup.status().0.status == 0, "nothing on this machine knows yet")
        let refused = try setup.server.run(["server", "renew", "--force", "--exec", "true"])
        #expect(refused.status == 6 && refused.stderr.contains("--reload nginx"), "\(refused)")
        let (knownRun, known) = try setup.status()
        #expect(knownRun.status == 1 && known["revoked"] as? Bool == true, "\(knownRun)")
        #expect(((known["revocation"] as? [String: Any])?["detail"] as? String ?? "").contains("revoked"), "\(known)")
    }

    @Test func aCertificateExpiredBeyondTheGraceWindowMustBeEnrolledAgain() throws {
        let setup = try Setup()
        #expect(try setup.enroll().status == 0)
        // Signed by the CA's intermediate, expired three days ago (5 % of its lifetime is far less).
        let forged = try runProcess("python3", [
            RenewRevokeEndToEndTests.resources + "/forge_certificate.py", "expired", setup.certFile, setup.keyFile,
            setup.ca.sandbox.caDir + "/certs/intermediate_ca.crt", setup.ca.sandbox.caDir + "/secrets/intermediate_ca_key",
            setup.ca.sandbox.configDir + "/ca-password",
        ])
        #expect(forged.status == 0, "\(forged)")
        let before = try setup.files()
        let status = try setup.status()
        #expect(status.0.status == 1 && status.1["expired"] as? Bool == true, "status exits 1 for an expired certificate")
        let renewal = try setup.server.run(["server", "renew"])
        #expect(renewal.status == 6, "\(renewal)")
        #expect(renewal.stderr.contains("grace window") && renewal.stderr.contains("enroll again") && renewal.stderr.contains("auto-ssl server enroll --ca-url \(setup.ca.url)"), "\(renewal)")
        #expect(try setup.files() == before)
    }

    @Test func removeRevokesAndCleansUpButLeavesTheCA() throws {
        // The CA and the server share one machine (the same directories).
        let ca = try RunningCA()
        let fingerprint = try ca.fingerprint
        let before = try snapshotTree(ca.sandbox.caDir)
        let enrolled = try ca.sandbox.run([
            "server", "enroll", "--ca-url", ca.url, "--fingerprint", fingerprint, "--san", "localhost",
            "--password-file", ca.sandbox.configDir + "/provisioner-password", "--non-interactive",
        ])
        #expect(enrolled.status == 0, "\(enrolled)")
        let serial = try runProcess("openssl", ["x509", "-in", ca.sandbox.certDir + "/server.crt", "-noout", "-serial"]).stdout
        let confirmation = try ca.sandbox.run(["server", "remove"])
        #expect(confirmation.status == 2 && confirmation.stderr.contains("--yes"), "\(confirmation)")
        let removed = try ca.sandbox.run(["server", "remove", "--yes", "--reason", "retired"])
        #expect(removed.status == 0, "\(removed)")
        for name in ["server.crt", "server.key", "ca.crt"] {
            #expect(!FileManager.default.fileExists(atPath: ca.sandbox.certDir + "/" + name))
        }
        #expect(!FileManager.default.fileExists(atPath: ca.sandbox.systemdDir + "/auto-ssl-renew.timer"))
        let config = try readFile(ca.sandbox.configDir + "/config.yaml")
        #expect(config.contains("ca:") && !config.contains("server:"))
        let status = try ca.sandbox.run(["ca", "status", "--json"])
        #expect(status.status == 0)
        let listed = try ca.sandbox.run(["ca", "certs", "list", "--revoked"])
        let hex = normalisedSerial(String(serial.split(separator: "=").last ?? ""))
        #expect(listed.stdout.lowercased().replacingOccurrences(of: ":", with: "").contains(hex.suffix(12)), "\(listed)")
        // The CA's own files changed only where the database and logs live.
        let after = try snapshotTree(ca.sandbox.caDir)
        for (path, content) in before where !path.contains("db") {
            #expect(after[path] == content, "\(path) must be untouched")
        }
        let serverStatus = try ca.sandbox.run(["server", "status"])
        #expect(serverStatus.status == 1 && serverStatus.stdout.contains("Not enrolled"))
    }

    @Test func theDaemonRenewsAtTheRenewalPointAndStopsOnSIGTERM() throws {
        let setup = try Setup()
        #expect(try setup.enroll(["--duration", "5m", "--no-renewal"]).status == 0)
        let first = try setup.serial()
        // Renew after 18 % of the 6-minute lifetime (it is backdated by a minute): about 5 s from now.
        let configPath = setup.server.configDir + "/config.yaml"
        try (try readFile(configPath) + "  renew_at_fraction: 0.18\n").write(toFile: configPath, atomically: true, encoding: .utf8)
        let log = setup.server.root.file("daemon.log")
        _ = FileManager.default.createFile(atPath: log, contents: nil)
        let daemon = Process()
        daemon.executableURL = URL(fileURLWithPath: autoSSLBinaryPath())
        daemon.arguments = ["server", "renew", "--daemon", "--check-interval", "2", "--exec", "echo reloaded >> \(setup.server.root.file("reloads"))"]
        daemon.environment = setup.server.environment
        daemon.standardInput = FileHandle.nullDevice
        daemon.standardOutput = FileHandle(forWritingAtPath: log)
        daemon.standardError = FileHandle(forWritingAtPath: log)
        try daemon.run()
        let deadline = Date().addingTimeInterval(40)
        while Date() < deadline, (try? setup.serial()) == first {
            usleep(250_000)
        }
        #expect(try setup.serial() != first, "the daemon renewed: \((try? readFile(log)) ?? "")")
        #expect(FileManager.default.fileExists(atPath: setup.server.root.file("reloads")))
        kill(daemon.processIdentifier, SIGTERM)
        let stopDeadline = Date().addingTimeInterval(10)
        while daemon.isRunning, Date() < stopDeadline { usleep(100_000) }
        #expect(!daemon.isRunning, "SIGTERM stops the daemon")
        if daemon.isRunning { daemon.terminate() }
        daemon.waitUntilExit()
        #expect(daemon.terminationStatus == 0)
        let text = try readFile(log)
        #expect(text.contains("renewed:") && text.contains("renewal daemon stopped"), "\(text)")
    }

    /// A re-enrollment whose new certificate path is a directory (or names the key file) is refused
    /// before a key is made or the CA is asked: exit 2, and the working pair is untouched.
    @Test func aReEnrollmentToAPathThatCannotBeWrittenChangesNothing() throws {
        let setup = try Setup()
        #expect(try setup.enroll().status == 0)
        let before = try setup.files()
        let issuedBefore = try setup.ca.sandbox.run(["ca", "certs", "list", "--json"]).stdout
        let directory = setup.server.root.file("certs-dir")
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: false)
        let intoDirectory = try setup.enroll(["--no-renewal", "--cert-path", directory])
        #expect(intoDirectory.status == 2 && intoDirectory.stderr.contains("--cert-path \(directory) is a directory"), "\(intoDirectory)")
        let ontoKey = try setup.enroll(["--no-renewal", "--cert-path", setup.keyFile])
        #expect(ontoKey.status == 2 && ontoKey.stderr.contains("name the same file"), "\(ontoKey)")
        #expect(try setup.files() == before)
        #expect(try setup.ca.sandbox.run(["ca", "certs", "list", "--json"]).stdout == issuedBefore, "the CA issued nothing")
        #expect(try setup.server.run(["server", "renew", "--force"]).status == 0, "the pair still renews")
    }

    /// auto-ssl's own files are never a certificate, key or metrics path: config.yaml, anything in
    /// the CA directory, or two paths at one file are refused (exit 2) before the CA is asked, and
    /// so is a path whose directory is a file.
    @Test func auto_sslsOwnFilesAreNeverWrittenAsACertificateOrKey() throws {
        let setup = try Setup()
        #expect(try setup.enroll().status == 0)
        let before = try setup.files()
        let config = try readFile(setup.server.configDir + "/config.yaml")
        let issuedBefore = try setup.ca.sandbox.run(["ca", "certs", "list", "--json"]).stdout
        try FileManager.default.createDirectory(atPath: setup.server.dataDir + "/ca/certs", withIntermediateDirectories: true)
        let aFile = try setup.server.root.write("a-file", "x\n")
        for (extra, words) in [
            (["--key-path", setup.server.configDir + "/config.yaml"], "auto-ssl's own"),
            (["--cert-path", setup.server.dataDir + "/ca/certs/root_ca.crt"], "auto-ssl's own"),
            (["--key-path", setup.server.dataDir + "/.server.lock"], "auto-ssl's own"),
            (["--cert-path", setup.server.dataDir + "/server.crt"], "auto-ssl's own"),
            (["--cert-path", setup.server.root.file("m.prom"), "--metrics-file", setup.server.root.file("m.prom")], "name the same file"),
            (["--cert-path", aFile + "/server.crt"], "is a file, not a directory"),
        ] {
            let refused = try setup.enroll(["--no-renewal"] + extra)
            #expect(refused.status == 2 && refused.stderr.contains(words), "\(extra): \(refused)")
        }
        #expect(try readFile(setup.server.configDir + "/config.yaml") == config)
        #expect(try setup.files() == before)
        #expect(try setup.ca.sandbox.run(["ca", "certs", "list", "--json"]).stdout == issuedBefore, "the CA issued nothing")
    }

    /// A file recorded at enrollment that is damaged stays damaged whatever the next run does: the
    /// commands exit 1 and say how to repair it (the kept pairs, or enrolling again), never "the
    /// next scheduled run tries again"; a damaged copy of the root is exit 1 for revocation too.
    @Test func damagedRecordedFilesAreExit1WithHowToRepairThem() throws {
        let setup = try Setup()
        #expect(try setup.enroll(["--no-renewal"]).status == 0)
        let key = try readFile(setup.keyFile)
        try "not a key\n".write(toFile: setup.keyFile, atomically: true, encoding: .utf8)
        let renew = try setup.server.run(["server", "renew", "--force"])
        #expect(renew.status == 1 && renew.stderr.contains("is not a PEM private key") && renew.stderr.contains(setup.server.dataDir + "/cert-backups")
                && renew.stderr.contains("auto-ssl server enroll") && !renew.stderr.contains("next scheduled run"), "\(renew)")
        try key.write(toFile: setup.keyFile, atomically: true, encoding: .utf8)
        let root = try readFile(setup.rootFile)
        try "damaged\n".write(toFile: setup.rootFile, atomically: true, encoding: .utf8)
        let revoke = try setup.server.run(["server", "revoke"])
        #expect(revoke.status == 1 && revoke.stderr.contains("holds no PEM certificate") && revoke.stderr.contains("with the CA's fingerprint"), "\(revoke)")
        try root.write(toFile: setup.rootFile, atomically: true, encoding: .utf8)
        #expect(try setup.server.run(["server", "renew", "--force"]).status == 0, "repaired, it renews")
    }

    /// Enrolling again with --no-renewal takes away the timer the first enrollment installed (it
    /// would go on renewing a host that asked for no renewal).
    @Test func reEnrollingWithoutRenewalRemovesTheTimer() throws {
        let setup = try Setup()
        #expect(try setup.enroll().status == 0)
        let timer = setup.server.systemdDir + "/auto-ssl-renew.timer"
        #expect(FileManager.default.fileExists(atPath: timer))
        let again = try setup.enroll(["--no-renewal"])
        #expect(again.status == 0 && again.stdout.contains("renewal timer installed before was removed"), "\(again)")
        #expect(!FileManager.default.fileExists(atPath: timer) && !FileManager.default.fileExists(atPath: setup.server.systemdDir + "/auto-ssl-renew.service"))
        let shown = try setup.server.run(["server", "status"]).stdout
        #expect(shown.contains("Timer:") && shown.contains("not installed"), "\(shown)")
    }

    /// Revoking an earlier certificate of this host by its serial revokes the current one too at
    /// the CA (same key); the host learns it from the answer: it says so, stops renewing and
    /// reports the certificate revoked. With reason 4 (superseded) only the serial named goes.
    @Test func revokingAnEarlierSerialOfTheSameKeyIsKnownToRevokeTheCurrentCertificate() throws {
        let setup = try Setup()
        #expect(try setup.enroll(["--no-renewal"]).status == 0)
        let first = try setup.serial()
        #expect(try setup.server.run(["server", "renew", "--force"]).status == 0)
        let second = try setup.serial()
        #expect(try setup.server.run(["server", "renew", "--force"]).status == 0)
        let current = try setup.serial()
        let superseded = try setup.server.run(
            ["server", "revoke", "--serial", first, "--reason-code", "4", "--password-file", setup.provisionerPassword])
        #expect(superseded.status == 0 && !superseded.stdout.contains("current certificate is revoked"), "\(superseded)")
        #expect(try setup.server.run(["server", "status"]).status == 0, "superseded revokes only the serial named")
        let revoked = try setup.server.run(
            ["server", "revoke", "--serial", second, "--reason-code", "1", "--password-file", setup.provisionerPassword])
        #expect(revoked.status == 0 && revoked.stdout.contains("Also revoked, for having the same key"), "\(revoked)")
        #expect(revoked.stdout.contains(current.drop { $0 == "0" }) && revoked.stdout.contains("current certificate is revoked with it"), "\(revoked)")
        let status = try setup.server.run(["server", "status"])
        #expect(status.status == 1 && status.stdout.contains("Revoked"), "\(status)")
    }

    /// `server enroll` and `server renew` run at once take turns: the certificate installed always
    /// belongs to the key installed, and renewals go on working.
    @Test func enrollAndRenewRunAtOnceLeaveAMatchingPair() throws {
        let setup = try Setup()
        #expect(try setup.enroll(["--no-renewal"]).status == 0)
        let binary = autoSSLBinaryPath()
        let script = """
            (for i in 1 2 3 4 5 6; do '\(binary)' server renew --force -q || exit 1; done) &
            renewals=$!
            for i in 1 2 3; do
              '\(binary)' server enroll --ca-url '\(setup.ca.url)' --fingerprint \(setup.fingerprint) \\
                --password-file '\(setup.provisionerPassword)' --non-interactive --no-renewal --san localhost -q || exit 1
            done
            wait $renewals
            """
        let raced = try runProcess("sh", ["-c", script], environment: setup.server.environment)
        #expect(raced.status == 0, "\(raced)")
        let certificateKey = try runProcess("openssl", ["x509", "-in", setup.certFile, "-noout", "-pubkey"]).stdout
        let key = try runProcess("openssl", ["pkey", "-in", setup.keyFile, "-pubout"]).stdout
        #expect(!key.isEmpty && certificateKey == key, "the certificate belongs to the key")
        #expect(try setup.server.run(["server", "renew", "--force"]).status == 0)
    }

    /// Once the provisioner a host enrolled with is removed, its renewal is refused (exit 6), the
    /// files stay, and the hint gives an enroll command that picks another provisioner.
    @Test func aHostWhoseProvisionerWasRemovedIsToldToEnrollWithAnother() throws {
        let setup = try Setup()
        #expect(try setup.ca.sandbox.run(["ca", "provisioner", "add", "ops", "--non-interactive"]).status == 0)
        let opsPassword = setup.ca.sandbox.configDir + "/provisioner-ops-password"
        var enrolled = try setup.enroll(["--provisioner", "ops", "--password-file", opsPassword, "--no-renewal"])
        for _ in 0..<20 where enrolled.status != 0 {  // the running CA picks the new provisioner up within seconds
            usleep(500_000)
            enrolled = try setup.enroll(["--provisioner", "ops", "--password-file", opsPassword, "--no-renewal"])
        }
        #expect(enrolled.status == 0, "\(enrolled)")
        #expect(try setup.ca.sandbox.run(["ca", "provisioner", "remove", "ops", "--yes"]).status == 0)
        var renewal = try setup.server.run(["server", "renew", "--force"])
        for _ in 0..<20 where renewal.status == 0 {
            usleep(500_000)
            renewal = try setup.server.run(["server", "renew", "--force"])
        }
        #expect(renewal.status == 6, "\(renewal)")
        #expect(renewal.stderr.contains("(ops) was removed from the CA") && renewal.stderr.contains("--provisioner NAME"), "\(renewal)")
        #expect(!renewal.stderr.contains("--provisioner ops"), "\(renewal)")
        // (A renewal before the server picked the removal up succeeded; from the refusal on, the files stay.)
        let before = try setup.files()
        #expect(try setup.server.run(["server", "renew", "--force"]).status == 6)
        #expect(try setup.files() == before)
    }

    @Test func aReadOnlyCertificateDirectoryFailsWithExit4AndKeepsTheFiles() throws {
        let setup = try Setup()
        #expect(try setup.enroll().status == 0)
        let before = try setup.files()
        var executable = autoSSLBinaryPath()
        var arguments = ["server", "renew", "--force"]
        if geteuid() == 0 {
            // root writes anywhere: renew as `nobody`, who owns the files but not the write permission.
            #expect(try runProcess("chown", ["-R", "65534:65534", setup.server.root.path]).status == 0)
            arguments = ["--reuid=65534", "--regid=65534", "--clear-groups", executable] + arguments
            executable = "/usr/bin/setpriv"
        }
        chmod(setup.server.root.path, 0o755)
        chmod(setup.server.certDir, 0o555)
        defer { chmod(setup.server.certDir, 0o755) }
        let result = try runProcess(executable, arguments, environment: setup.server.environment, currentDirectory: "/")
        #expect(result.status == 4, "\(result)")
        #expect(try setup.files() == before)
    }

    @Test func interactiveEnrollShowsTheNamesBeforeAskingForThePassword() throws {
        let setup = try Setup()
        let script = """
            import os, sys, pexpect
            child = pexpect.spawn(sys.argv[1], ["server", "enroll", "--ca-url", sys.argv[2], "--fingerprint", sys.argv[3], "--no-renewal"],
                                  env=dict(os.environ), encoding="utf-8", timeout=60)
            child.expect("Certificate names: ([^\\r\\n]+)")
            names = child.match.group(1)
            child.expect("Password for provisioner admin: ")
            child.sendline(open(sys.argv[4]).read().strip())
            child.expect(pexpect.EOF)
            child.close()
            print(names)
            sys.exit(child.exitstatus)
            """
        let path = try setup.server.root.write("enroll.py", script)
        let result = try runProcess(
            "python3", [path, autoSSLBinaryPath(), setup.ca.url, setup.fingerprint, setup.provisionerPassword],
            environment: setup.server.environment)
        #expect(result.status == 0, "\(result)")
        // Without --san: the hostname (and the machine's addresses) name the certificate.
        let hostname = try runProcess("hostname", []).stdout.trimmingCharacters(in: .whitespacesAndNewlines).lowercased()
        let names = try runProcess("openssl", ["x509", "-in", setup.certFile, "-noout", "-ext", "subjectAltName"]).stdout.lowercased()
        if !hostname.isEmpty, hostname != "localhost" {
            #expect(result.stdout.lowercased().contains(hostname), "\(result)")
            #expect(names.contains("dns:" + hostname), "\(names)")
        }
    }
}

/// Serial text in any of the forms the tools print (colons, case, leading zeros) reduced to one.
func normalisedSerial(_ text: String) -> String {
    String(text.replacingOccurrences(of: ":", with: "").trimmingCharacters(in: .whitespacesAndNewlines).lowercased().drop { $0 == "0" })
}
