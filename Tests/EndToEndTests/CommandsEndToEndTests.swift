import Foundation
import Testing
import TestSupport

@Suite struct CommandsEndToEndTests {
    func initialised() throws -> Sandbox {
        let sandbox = Sandbox()
        let result = try sandbox.run(["ca", "init", "--non-interactive", "--address", "127.0.0.1:9443", "--name", "Status CA"])
        #expect(result.status == 0, "\(result)")
        return sandbox
    }

    @Test func versionAndHelp() throws {
        let sandbox = Sandbox()
        for arguments in [["version"], ["-v"], ["--version"]] {
            let result = try sandbox.run(arguments)
            #expect(result.status == 0, "\(result)")
            #expect(result.stdout.hasPrefix("auto-ssl 0."), "\(arguments): \(result)")
        }
        let help = try sandbox.run(["--help"])
        #expect(help.status == 0)
        #expect(help.stdout.contains("ca") && help.stdout.contains("info") && help.stdout.contains("Exit codes"))
        let initHelp = try sandbox.run(["ca", "init", "--help"])
        #expect(initHelp.status == 0)
        for option in ["--name", "--address", "--dns", "--key-type", "--cert-duration", "--max-duration", "--provisioner",
                       "--password-file", "--provisioner-password-file", "--non-interactive", "--force"] {
            #expect(initHelp.stdout.contains(option), "ca init --help lacks \(option)")
        }
        #expect(try sandbox.run(["ca", "reset", "--help"]).stdout.contains("--yes"))
        // A negative value ("-5h" would otherwise be read as short flags, -h among them: the help and exit 0).
        for arguments in [["ca", "token", "create", "--san", "a.internal", "--ttl", "-5h"], ["cert", "issue", "--duration", "-5m"]] {
            let negative = try sandbox.run(arguments)
            #expect(negative.status == 2 && negative.stderr.contains("negative values are not accepted"), "\(arguments): \(negative)")
            #expect(!negative.stdout.contains("USAGE"), "\(negative)")
        }
        // Free text that merely starts with "-" and a digit is a value like any other.
        let freeText = try sandbox.run(["cert", "revoke", "--ca-url", "https://127.0.0.1:1", "--fingerprint", String(repeating: "0", count: 64),
                                        "--serial", "1", "--reason", "-2 weeks early", "--password-file", "/nonexistent/password"])
        // (Parsed, so it went on to ask the CA, which is not there; CAServerEndToEndTests sees the text arrive.)
        #expect(freeText.status == 5 && freeText.stderr.contains("could not reach the CA") && !freeText.stderr.contains("negative values"), "\(freeText)")
    }

    /// The benchmark's own load generator and bookkeeping (the figures themselves are in docs/benchmarks.md).
    @Test func benchSignIssuesEveryRequestThroughTheAPIAndStoresIt() throws {
        // The load generators are not in the shipped binary.
        let shipped = try Sandbox().run(["bench", "sign"])
        #expect(shipped.status == 2 && shipped.stderr.contains("bench"), "\(shipped)")
        struct Report: Decodable {
            struct Run: Decodable {
                let requests: Int
                let succeeded: Int
                let failed: Int
                let certificates_per_second: Double
                let p50_ms: Double
                let p99_ms: Double
            }
            let result: Run
            let stored_certificates: Int
            let server_peak_rss_kb: Int?
            let server_cpu_us_per_certificate: Double?
            let load_generator_cpu_us_per_certificate: Double?
        }
        let result = try Sandbox().bench(["sign", "--concurrency", "4", "--requests", "120", "--warmup", "10", "--json"])
        #expect(result.status == 0, "\(result)")
        let report = try JSONDecoder().decode(Report.self, from: Data(result.stdout.utf8))
        #expect(report.result.requests == 120 && report.result.succeeded == 120 && report.result.failed == 0)
        // The server's own TLS certificate, the warm-up and the measured run: all durable rows.
        #expect(report.stored_certificates == 131)
        #expect(report.result.certificates_per_second > 0 && report.result.p50_ms > 0 && report.result.p99_ms >= report.result.p50_ms)
        #expect((report.server_peak_rss_kb ?? 0) > 0)
        // Both sides did work for the measured certificates (at least the signatures and the TLS).
        #expect((report.server_cpu_us_per_certificate ?? 0) > 10)
        #expect((report.load_generator_cpu_us_per_certificate ?? 0) > 0)

        let stages = try Sandbox().bench(["stages", "--iterations", "20"])
        #expect(stages.status == 0, "\(stages)")
        for line in ["ES256 verify (token)", "CSR read + verify (as /sign does)", "leaf encode + sign (as /sign does)", "store: durable issuance rows", "authority.sign, 16 task(s)"] {
            #expect(stages.stdout.contains(line), "\(line) missing from \(stages.stdout)")
        }
    }

    /// `auto-ssl-bench acme`: whole ACME issuances with the CA validating http-01 for real; every
    /// downloaded certificate is a row of the CA's database, and the server's CPU is reported.
    @Test func benchACMEIssuesThroughRealHTTP01AndEveryCertificateIsStored() throws {
        struct Report: Decodable {
            struct Run: Decodable {
                let clients: Int
                let issued: Int
                let failed: Int
                let requests: Int
                let certificates_per_second: Double
                let issuance_p50_ms: Double
                let issuance_p99_ms: Double
            }
            let result: Run
            let stored_certificates: Int
            let server_cpu_ms_per_certificate: Double?
            let load_generator_cpu_ms_per_certificate: Double?
        }
        let result = try Sandbox().bench(["acme", "--clients", "2", "--seconds", "2", "--warmup", "1", "--json"])
        #expect(result.status == 0, "\(result)")
        let report = try JSONDecoder().decode(Report.self, from: Data(result.stdout.utf8))
        #expect(report.result.clients == 2 && report.result.issued > 0 && report.result.failed == 0, "\(result.stdout)")
        // At least new-order, authorization, challenge, a poll, finalize, a poll and the download each.
        #expect(report.result.requests >= 7 * report.result.issued, "\(result.stdout)")
        // The measured certificates and the server's own TLS certificate (the warm-up's are left out).
        #expect(report.stored_certificates == report.result.issued + 1, "\(result.stdout)")
        #expect(report.result.issuance_p99_ms >= report.result.issuance_p50_ms && report.result.issuance_p50_ms > 0)
        #expect((report.server_cpu_ms_per_certificate ?? 0) > 0.1 && (report.load_generator_cpu_ms_per_certificate ?? 0) > 0)
    }

    @Test func statusReportsTheCAInTextAndJSON() throws {
        let sandbox = try initialised()
        let text = try sandbox.run(["ca", "status"])
        #expect(text.status == 0, "\(text)")
        #expect(text.stdout.contains("Status CA Root CA") && text.stdout.contains("ECDSA P-384"))
        #expect(text.stdout.contains("not running"))
        let json = try sandbox.run(["ca", "status", "--json"])
        #expect(json.status == 0)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any])
        #expect(object["name"] as? String == "Status CA")
        let fingerprint = try #require(object["fingerprint"] as? String)
        let openssl = try runProcess("openssl", ["x509", "-in", sandbox.caDir + "/certs/root_ca.crt", "-noout", "-fingerprint", "-sha256"])
        #expect(openssl.stdout.replacingOccurrences(of: ":", with: "").lowercased().contains(fingerprint))
        let intermediate = try #require(object["intermediate"] as? [String: Any])
        #expect(intermediate["key_type"] as? String == "ECDSA P-256")
        #expect((intermediate["days_left"] as? Int ?? 0) > 1800)
        #expect(object["default_duration"] as? String == "168h")
        #expect(object["max_duration"] as? String == "720h")
        #expect(object["addresses"] as? [String] == ["127.0.0.1:9443"])
        #expect(object["server"] as? String == "not running")
    }

    @Test func statusListsProvisionersOfEveryTypeAsJSONObjectsAndSerialsInOneForm() throws {
        let sandbox = try initialised()
        let json = try sandbox.run(["ca", "status", "--json"])
        let object = try #require(try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any])
        let provisioners = try #require(object["provisioners"] as? [[String: Any]], "\(json)")
        #expect(provisioners.map { $0["name"] as? String ?? "" } == ["admin", "acme"])
        #expect(provisioners.map { $0["type"] as? String ?? "" } == ["JWK", "ACME"])
        #expect(provisioners[1]["directory"] as? String == "https://127.0.0.1:9443/acme/acme/directory")
        #expect(provisioners[1]["require_eab"] as? Bool == false && (provisioners[1]["challenges"] as? [String])?.isEmpty == false)
        let backups = try #require(object["backups"] as? [String: Any])
        #expect(backups["schedule"] is NSNull && backups["last_backup"] is NSNull, "\(backups)")
        // One key style: snake_case everywhere.
        let list = try sandbox.run(["ca", "provisioner", "list", "--json"])
        #expect(list.stdout.contains("\"require_eab\"") && !list.stdout.contains("requireEAB"), "\(list)")
        for output in [json.stdout, list.stdout] {
            let keys = try #require(try? NSRegularExpression(pattern: "\"([A-Za-z0-9_]+)\" :"))
            let camel = keys.matches(in: output, range: NSRange(output.startIndex..., in: output)).compactMap { match in
                Range(match.range(at: 1), in: output).map { String(output[$0]) }
            }.filter { $0.contains { $0.isUppercase } }
            #expect(camel.isEmpty, "camelCase keys: \(camel)")
        }
        // Serials: lower-case hex without colons, as `ca certs` and the CA's messages write them.
        let text = try sandbox.run(["ca", "status"]).stdout
        #expect(text.contains("admin (JWK), acme (ACME, https://127.0.0.1:9443/acme/acme/directory)"), "\(text)")
        let root = try #require(object["root"] as? [String: Any])
        let serial = try #require(root["serial"] as? String)
        #expect(!serial.contains(":") && serial == serial.lowercased() && text.contains("Serial:    \(serial)"), "\(text)")
        let openssl = try runProcess("openssl", ["x509", "-in", sandbox.caDir + "/certs/root_ca.crt", "-noout", "-serial"]).stdout
        #expect(normalisedSerial(String(openssl.split(separator: "=").last ?? "")) == normalisedSerial(serial))
    }

    @Test func provisionerUpdateChangesPasswordProvisionersToo() throws {
        let sandbox = try initialised()
        let added = try sandbox.run(["ca", "provisioner", "add", "ops", "--non-interactive", "--allow-dns", ".internal"])
        #expect(added.status == 0, "\(added)")
        func policy(_ name: String) throws -> [String: Any] {
            let list = try sandbox.run(["ca", "provisioner", "list", "--json"])
            let entries = try JSONSerialization.jsonObject(with: Data(list.stdout.utf8)) as? [[String: Any]] ?? []
            return entries.first { $0["name"] as? String == name }?["policy"] as? [String: Any] ?? [:]
        }
        let updated = try sandbox.run(["ca", "provisioner", "update", "ops", "--max-duration", "24h"])
        #expect(updated.status == 0 && updated.stdout.contains("Updated provisioner ops (JWK)"), "\(updated)")
        let changed = try policy("ops")
        #expect(changed["allowed_dns"] as? [String] == [".internal"], "what is not given stays: \(changed)")
        #expect(changed["max_duration"] as? String == "24h" && changed["default_duration"] as? String == "24h", "\(changed)")
        let config = try readFile(sandbox.configDir + "/config.yaml")
        let keyTypes = try sandbox.run(["ca", "provisioner", "update", "ops", "--key-types", "P-256", "--allow-ip", "10.0.0.0/8"])
        let narrowed = try policy("ops")
        #expect(keyTypes.status == 0 && narrowed["key_types"] as? [String] == ["P-256"], "\(keyTypes)")
        // Refusals change nothing and exit 2.
        let before = try readFile(sandbox.configDir + "/config.yaml")
        #expect(before != config)
        for arguments in [["--challenges", "http-01"], [], ["--max-duration", "9999h"], ["--key-types", "DSA"]] {
            let refused = try sandbox.run(["ca", "provisioner", "update", "ops"] + arguments)
            #expect(refused.status == 2, "\(arguments): \(refused)")
        }
        #expect(try readFile(sandbox.configDir + "/config.yaml") == before)
        #expect(try sandbox.run(["ca", "provisioner", "update", "nobody", "--max-duration", "24h"]).status == 1)
        // ACME provisioners keep their other settings when the policy changes.
        let acme = try sandbox.run(["ca", "provisioner", "update", "acme", "--max-duration", "48h"])
        #expect(acme.status == 0 && acme.stdout.contains("maximum duration: 48h"), "\(acme)")
        let acmePolicy = try policy("acme")
        #expect(acmePolicy["max_duration"] as? String == "48h")
    }

    @Test func statusWithoutACAExitsWith1() throws {
        let result = try Sandbox().run(["ca", "status"])
        #expect(result.status == 1)
        #expect(result.stderr.contains("ca init"))
    }

    @Test func statusWarnsAboutAKeyReadableByOthers() throws {
        let sandbox = try initialised()
        chmod(sandbox.caDir + "/secrets/root_ca_key", 0o644)
        let result = try sandbox.run(["ca", "status"])
        #expect(result.stderr.contains("warning:") && result.stderr.contains("chmod 600"), "\(result)")
    }

    @Test func resetRefusesWithoutConfirmationOnANonTerminal() throws {
        let sandbox = try initialised()
        let before = try snapshotTree(sandbox.root.path)
        let refused = try sandbox.run(["ca", "reset"])
        #expect(refused.status == 2, "\(refused)")
        #expect(refused.stderr.contains("--yes"))
        #expect(try snapshotTree(sandbox.root.path) == before)
    }

    @Test func resetKeepsASafetyCopyThenInitWorksAgain() throws {
        let sandbox = try initialised()
        let root = try readFile(sandbox.caDir + "/certs/root_ca.crt")
        let reset = try sandbox.run(["ca", "reset", "--yes"])
        #expect(reset.status == 0, "\(reset)")
        let copies = try FileManager.default.contentsOfDirectory(atPath: sandbox.dataDir).filter { $0.hasPrefix("ca.reset-") }
        #expect(copies.count == 1)
        #expect(reset.stdout.contains(copies[0]))
        #expect(try readFile(sandbox.dataDir + "/" + copies[0] + "/certs/root_ca.crt") == root)
        #expect(try sandbox.run(["ca", "status"]).status == 1)
        #expect(try sandbox.run(["ca", "init", "--non-interactive", "--address", "127.0.0.1:9443"]).status == 0)
        let gone = try sandbox.run(["ca", "reset", "--yes", "--no-backup"])
        #expect(gone.status == 0, "\(gone)")
        #expect(!FileManager.default.fileExists(atPath: sandbox.caDir))
        #expect(try FileManager.default.contentsOfDirectory(atPath: sandbox.dataDir).filter { $0.hasPrefix("ca.reset-") }.count == 1)
        #expect(try sandbox.run(["ca", "reset", "--yes"]).status == 1)
    }

    @Test func infoShowsDirectoriesRoleAndTools() throws {
        let sandbox = try initialised()
        let result = try sandbox.run(["info", "--json"])
        #expect(result.status == 0, "\(result)")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
        let directories = try #require(object["directories"] as? [String: Any])
        #expect(directories["configDir"] as? String == sandbox.configDir)
        #expect(directories["dataDir"] as? String == sandbox.dataDir)
        #expect((object["roles"] as? [String])?.contains("CA") == true)
        #expect(object["os"] as? String == "debian")
        let tools = try #require(object["tools"] as? [[String: Any]])
        let openssl = try #require(tools.first { $0["name"] as? String == "openssl" })
        #expect((openssl["version"] as? String)?.hasPrefix("OpenSSL") == true)
        let text = try sandbox.run(["info"])
        #expect(text.stdout.contains("AUTO_SSL_DATA_DIR") && text.stdout.contains("Role:          CA"))
    }

    @Test func debugLoggingGoesToStandardError() throws {
        let sandbox = Sandbox()
        sandbox.extraEnvironment["AUTO_SSL_DEBUG"] = "1"
        let result = try sandbox.run(["ca", "init", "--non-interactive", "--address", "127.0.0.1:9443"])
        #expect(result.status == 0)
        #expect(result.stderr.contains("debug") && result.stderr.contains("generating CA keys"), "\(result)")
        let quiet = Sandbox()
        #expect(try quiet.run(["ca", "init", "--non-interactive", "--address", "127.0.0.1:9443"]).stderr.isEmpty)
    }

    @Test func permissionDeniedExitsWith4AndSuggestsSudo() throws {
        let sandbox = Sandbox()
        // A data directory this user cannot write. As root, run the binary as `nobody` instead.
        let locked = sandbox.root.file("locked")
        try FileManager.default.createDirectory(atPath: locked, withIntermediateDirectories: true)
        chmod(locked, 0o555)
        chmod(sandbox.root.path, 0o755)
        var arguments = ["ca", "init", "--non-interactive", "--address", "127.0.0.1:9443"]
        var executable = autoSSLBinaryPath()
        if geteuid() == 0 {
            arguments = ["--reuid=65534", "--regid=65534", "--clear-groups", executable] + arguments
            executable = "/usr/bin/setpriv"
        }
        var environment = sandbox.environment
        environment["AUTO_SSL_CONFIG_DIR"] = locked + "/etc"
        environment["AUTO_SSL_DATA_DIR"] = locked + "/data"
        let result = try runProcess(executable, arguments, environment: environment, currentDirectory: "/")
        #expect(result.status == 4, "\(result)")
        #expect(result.stderr.contains("sudo"), "\(result)")
    }

    @Test func interactiveInitPromptsTwiceWithoutEchoAndSaysHowToStartTheCA() throws {
        let sandbox = Sandbox()
        let port = freeLoopbackPort()
        let script = """
            import os, sys, pexpect
            env = dict(os.environ)
            child = pexpect.spawn(sys.argv[1], ["ca", "init", "--address", sys.argv[2]], env=env, encoding="utf-8", timeout=60)
            child.expect("CA key password")
            child.sendline("interactive-ca-password-1")
            child.expect("Repeat")
            child.sendline("interactive-ca-password-1")
            child.expect("rovisioner password")
            child.sendline("too-short")
            child.expect("too short")
            child.expect("rovisioner password")
            child.sendline("interactive-enroll-password-2")
            child.expect("Repeat")
            child.sendline("interactive-enroll-password-2")
            child.expect(pexpect.EOF)
            child.close()
            output = child.before or ""
            assert "interactive-ca-password-1" not in output, "password echoed"
            print(output)
            print("exit", child.exitstatus)
            """
        var environment = sandbox.environment
        environment["PYTHONUNBUFFERED"] = "1"
        let result = try runProcess("python3", ["-c", script, autoSSLBinaryPath(), "127.0.0.1:\(port)"], environment: environment)
        #expect(result.status == 0 && result.stdout.contains("exit 0"), "\(result)")
        // The typed password is not stored, so the next steps say how to give it to the CA.
        #expect(result.stdout.contains("auto-ssl ca serve --password-file FILE"), "\(result)")
        #expect(result.stdout.contains("auto-ssl ca install-service --password-file FILE --now"), "\(result)")
        #expect(result.stdout.contains("acme (ACME, https://127.0.0.1:\(port)/acme/acme/directory)"), "ACME provisioners are listed too: \(result)")
        let opened = try runProcess("openssl", [
            "pkey", "-in", sandbox.caDir + "/secrets/root_ca_key", "-passin", "pass:interactive-ca-password-1", "-noout",
        ])
        #expect(opened.status == 0, "\(opened)")
        #expect(!FileManager.default.fileExists(atPath: sandbox.configDir + "/ca-password"))

        // install-service --password-file: a wrong password writes nothing (exit 2) ...
        let stored = sandbox.configDir + "/ca-password"
        let unit = sandbox.systemdDir + "/auto-ssl-ca.service"
        let wrong = try sandbox.run(["ca", "install-service", "--password-file", "/dev/stdin"], stdin: "not-the-ca-password-9\n")
        #expect(wrong.status == 2 && wrong.stderr.contains("does not open"), "\(wrong)")
        #expect(!FileManager.default.fileExists(atPath: stored) && !FileManager.default.fileExists(atPath: unit))
        #expect(!wrong.stderr.contains("not-the-ca-password-9") && !wrong.stdout.contains("not-the-ca-password-9"))
        // ... the right one is stored 0600 and named by LoadCredential=, with no hand edit.
        let file = try sandbox.root.write("typed-password", "interactive-ca-password-1\n")
        let installed = try sandbox.run(["ca", "install-service", "--password-file", file])
        #expect(installed.status == 0, "\(installed)")
        #expect(try readFile(stored) == "interactive-ca-password-1\n" && fileMode(stored) == 0o600)
        let unitText = try readFile(unit)
        #expect(unitText.contains("LoadCredential=ca-password:\(stored)"), "\(unitText)")
        // As systemd would run it: the credential directory holds the password, no --password-file.
        let credentials = sandbox.root.file("credentials")
        try FileManager.default.createDirectory(atPath: credentials, withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: stored, toPath: credentials + "/ca-password")
        try FileManager.default.removeItem(atPath: stored)
        var serveEnvironment = sandbox.environment
        serveEnvironment["CREDENTIALS_DIRECTORY"] = credentials
        let serve = Process()
        serve.executableURL = URL(fileURLWithPath: autoSSLBinaryPath())
        serve.arguments = ["ca", "serve"]
        serve.environment = serveEnvironment
        let log = sandbox.root.file("serve.log")
        FileManager.default.createFile(atPath: log, contents: nil)
        serve.standardError = FileHandle(forWritingAtPath: log)
        serve.standardOutput = FileHandle.nullDevice
        try serve.run()
        defer { if serve.isRunning { kill(serve.processIdentifier, SIGTERM); serve.waitUntilExit() } }
        for _ in 0..<100 where !((try? readFile(log))?.contains("listening on") ?? false) { usleep(100_000) }
        #expect((try? readFile(log))?.contains("listening on") == true, "\((try? readFile(log)) ?? "")")
    }
}

@Suite struct RotateIntermediateEndToEndTests {
    @Test func rotationKeepsTheRootAndArchivesTheOldIntermediate() throws {
        let sandbox = Sandbox()
        #expect(try sandbox.run(["ca", "init", "--non-interactive", "--address", "127.0.0.1:9443"]).status == 0)
        let before = try readFile(sandbox.caDir + "/certs/intermediate_ca.crt")
        let fingerprint = try sandbox.run(["ca", "status", "--json"]).stdout
        #expect(try sandbox.run(["ca", "rotate-intermediate"]).status == 2)  // confirmation needed off a terminal
        let rotated = try sandbox.run(["ca", "rotate-intermediate", "--yes"])
        #expect(rotated.status == 0, "\(rotated)")
        let after = try readFile(sandbox.caDir + "/certs/intermediate_ca.crt")
        #expect(after != before)
        let root = sandbox.caDir + "/certs/root_ca.crt"
        #expect(try runProcess("openssl", ["verify", "-x509_strict", "-CAfile", root, sandbox.caDir + "/certs/intermediate_ca.crt"]).status == 0)
        let archived = try FileManager.default.contentsOfDirectory(atPath: sandbox.caDir + "/certs/intermediates")
        #expect(archived.count == 1)
        #expect(try readFile(sandbox.caDir + "/certs/intermediates/" + archived[0]) == before)
        #expect(fileMode(sandbox.caDir + "/secrets/intermediates") == 0o700)
        let key = try runProcess("openssl", [
            "pkey", "-in", sandbox.caDir + "/secrets/intermediate_ca_key", "-passin", "file:" + sandbox.configDir + "/ca-password", "-pubout",
        ])
        let certificateKey = try runProcess("openssl", ["x509", "-in", sandbox.caDir + "/certs/intermediate_ca.crt", "-noout", "-pubkey"])
        #expect(key.status == 0 && key.stdout == certificateKey.stdout)
        // The root, and so its fingerprint, is unchanged.
        let status = try sandbox.run(["ca", "status", "--json"]).stdout
        func fingerprintOf(_ json: String) throws -> String? {
            (try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])?["fingerprint"] as? String
        }
        #expect(try fingerprintOf(status) == fingerprintOf(fingerprint))
    }

    @Test func aDottedQuadThatIsNotAnAddressIsRefusedAsATypo() throws {
        let ca = try RunningCA()
        for typo in ["10.0.0.256", "300.1.1.1", "1.2.3.4.5"] {
            let result = try ca.sandbox.run([
                "cert", "issue", "--ca-url", ca.url, "--fingerprint", try ca.fingerprint, "--san", typo,
                "--out-cert", ca.sandbox.root.file("t.crt"), "--out-key", ca.sandbox.root.file("t.key"),
                "--password-file", ca.sandbox.configDir + "/provisioner-password",
            ])
            #expect(result.status == 2 && result.stderr.contains("looks like an IPv4 address"), "\(typo): \(result)")
            #expect(!FileManager.default.fileExists(atPath: ca.sandbox.root.file("t.crt")))
        }
    }

    /// Network failures in plain words, with the address: no errno dump, no type names.
    @Test func unreachableCAsAreDescribedInPlainWords() throws {
        let sandbox = Sandbox()
        let port = freeLoopbackPort()  // nothing listens there
        let fingerprint = String(repeating: "0", count: 64)
        let password = try sandbox.root.write("pw", "some-provisioner-password\n")
        let refused = try sandbox.run(["cert", "issue", "--ca-url", "https://127.0.0.1:\(port)", "--fingerprint", fingerprint,
                                       "--san", "a.internal", "--out-cert", sandbox.root.file("a.crt"), "--out-key", sandbox.root.file("a.key"),
                                       "--password-file", password])
        #expect(refused.status == 5 && refused.stderr.contains("connection refused by 127.0.0.1:\(port)"), "\(refused)")
        #expect(!refused.stderr.contains("errno") && !refused.stderr.contains("error set"), "\(refused)")
        let unknown = try sandbox.run(["cert", "issue", "--ca-url", "https://no-such-host.invalid:9443", "--fingerprint", fingerprint,
                                       "--san", "a.internal", "--out-cert", sandbox.root.file("a.crt"), "--out-key", sandbox.root.file("a.key"),
                                       "--password-file", password])
        #expect(unknown.status == 5 && unknown.stderr.contains("no such host no-such-host.invalid"), "\(unknown)")
        #expect(!unknown.stderr.contains("SocketAddressError"), "\(unknown)")
    }

    /// A "CA" that answers at once but then sends its body a byte a second (before any trust, while
    /// the root is fetched): the command gives up within its timeout (exit 5) instead of hanging.
    @Test func aCAThatSendsItsAnswerByteByByteIsGivenUpOn() throws {
        let sandbox = Sandbox()
        let port = freeLoopbackPort()
        let script = """
            import socket, ssl, subprocess, sys, threading, time
            subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                            "-keyout", "k.pem", "-out", "c.pem", "-days", "1", "-subj", "/CN=127.0.0.1"], check=True, capture_output=True)
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain("c.pem", "k.pem")
            server = socket.socket()
            server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            server.bind(("127.0.0.1", \(port)))
            server.listen(8)
            print("ready", flush=True)
            def drip(connection):
                try:
                    connection = context.wrap_socket(connection, server_side=True)
                    connection.recv(65536)
                    connection.sendall(b"HTTP/1.1 200 OK\\r\\nContent-Length: 100000\\r\\n\\r\\n")
                    while True:
                        connection.sendall(b"a")
                        time.sleep(1)
                except Exception:
                    pass
            server.settimeout(90)
            while True:
                connection, _ = server.accept()
                threading.Thread(target=drip, args=(connection,), daemon=True).start()
            """
        let server = Process()
        server.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        server.arguments = ["python3", "-c", script]
        server.currentDirectoryURL = URL(fileURLWithPath: sandbox.root.path)
        let ready = Pipe()
        server.standardOutput = ready
        try server.run()
        defer { server.terminate() }
        _ = ready.fileHandleForReading.availableData  // "ready"
        let started = Date()
        let enroll = try sandbox.run([
            "server", "enroll", "--ca-url", "https://127.0.0.1:\(port)", "--fingerprint", String(repeating: "a", count: 64),
            "--san", "slow.internal", "--password-file", "/dev/stdin", "--no-renewal",
        ], stdin: "some-provisioner-password\n")
        #expect(enroll.status == 5 && enroll.stderr.contains("did not finish sending its answer"), "\(enroll)")
        #expect(Date().timeIntervalSince(started) < 60, "gave up after \(Date().timeIntervalSince(started)) s")
        #expect(!FileManager.default.fileExists(atPath: sandbox.certDir + "/server.key"))
    }
}
