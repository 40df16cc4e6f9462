import AutoSSLCore
import Foundation
import Synchronization
import Testing
import TestSupport

/// `ca serve` on a loopback port, exercised through our own client (`cert issue`) and through an
/// independent one (Python cryptography + jwcrypto), then checked with openssl, pkilint and sslscan.
@Suite(.serialized) struct CAServerEndToEndTests {
    static let resources = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Resources").path
    static let restrictedPassword = "restricted-provisioner-password"

    func startWithRestrictedProvisioner() throws -> RunningCA {
        try RunningCA { sandbox in
            let added = try sandbox.run(
                ["ca", "provisioner", "add", "restricted", "--password-file", "/dev/stdin",
                 "--allow-dns", ".internal", "--allow-ip", "10.0.0.0/8"],
                stdin: Self.restrictedPassword + "\n")
            guard added.status == 0 else { throw TestFailure("provisioner add failed: \(added)") }
        }
    }

    @Test func independentClientExercisesEveryEndpoint() throws {
        let ca = try startWithRestrictedProvisioner()
        let adminPassword = try readFile(ca.sandbox.configDir + "/provisioner-password").trimmingCharacters(in: .newlines)
        let result = try runProcess("python3", [
            Self.resources + "/independent_client.py", ca.url, ca.rootPath, adminPassword, Self.restrictedPassword,
            ca.sandbox.root.path,
        ])
        #expect(result.status == 0, "\(result)\nserver log:\n\(ca.log)")
        let results = try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: [String: Any]])
        func status(_ name: String) -> Int? { results[name]?["status"] as? Int }
        func message(_ name: String) -> String { results[name]?["message"] as? String ?? "" }

        #expect(status("issue") == 201, "\(results["issue"] ?? [:])")
        #expect(results["issue"]?["sans"] as? [String] == ["py.internal", "10.20.30.40"])
        #expect(results["issue"]?["ca_matches"] as? Bool == true)
        #expect(status("replay") == 401 && message("replay").contains("already used"))
        #expect(status("wrong_audience") == 401 && message("wrong_audience").contains("audience"))
        #expect(status("unknown_key") == 401 && message("unknown_key").contains("unknown key"))
        #expect(status("names_not_in_token") == 403 && message("names_not_in_token").contains("do not match"))
        #expect(status("too_long") == 403 && message("too_long").contains("maximum 720h"))
        #expect(status("outside_policy") == 403 && message("outside_policy").contains("not allowed by policy"))
        #expect(status("inside_policy") == 201)
        #expect(status("rsa1024") == 400 && message("rsa1024").contains("RSA key of 1024 bits"))
        #expect(status("garbage_csr") == 400 && message("garbage_csr").contains("CSR"))
        #expect(status("malformed_json") == 400)
        #expect(status("huge_body") == 413)
        #expect(status("root_by_fingerprint") == 200 && results["root_by_fingerprint"]?["same_root"] as? Bool == true)
        #expect(status("root_unknown") == 404)
        #expect(status("root_bad_form") == 400)
        #expect(status("health") == 200 && status("health_v1") == 200 && status("roots") == 200)
        #expect(results["roots_pem"]?["is_root"] as? Bool == true)

        // The certificate verifies strictly and lints clean.
        let chain = ca.sandbox.root.file("python-chain.pem")
        let verify = try runProcess("openssl", ["verify", "-x509_strict", "-CAfile", ca.rootPath, "-untrusted", chain, chain])
        #expect(verify.status == 0, "\(verify)")
        let lint = try runProcess("lint_pkix_cert", ["lint", "-s", "ERROR", ca.sandbox.root.file("python-leaf.pem")])
        #expect(lint.status == 0 && lint.stdout.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty, "\(lint)")

        // The server is still up after all that, and every event is in the audit log.
        #expect(try runProcess("curl", ["-sf", "--cacert", ca.rootPath, ca.url + "/health"]).status == 0)
        #expect(ca.stop() == 0)
        let events = try ca.auditEvents()
        let issued = events.filter { $0["event"] as? String == "certificate.issued" }
        #expect(issued.count == 2)
        // Python prints the serial without leading zeros; ours keeps whole bytes.
        func trimmed(_ serial: Any?) -> String { String((serial as? String ?? "").drop { $0 == "0" }) }
        #expect(issued.contains { trimmed($0["serial"]) == trimmed(results["issue"]?["serial"]) && $0["remote"] as? String == "127.0.0.1" })
        let failures = events.filter { $0["event"] as? String == "auth.failure" }.compactMap { $0["reason"] as? String }
        #expect(failures.contains { $0.contains("already used") })
        #expect(failures.contains { $0.contains("audience") })
        #expect(failures.contains { $0.contains("unknown key") })
        let refused = events.filter { $0["event"] as? String == "request.refused" }.compactMap { $0["reason"] as? String }
        for text in ["do not match", "maximum 720h", "not allowed by policy", "RSA key of 1024 bits", "CSR",
                     "larger than 1048576 bytes", "the body must be JSON"] {
            #expect(refused.contains { $0.contains(text) }, "no audit line for \(text): \(refused)")
        }
        #expect(events.first { $0["event"] as? String == "service.start" } != nil)
        #expect(events.last?["event"] as? String == "service.stop")
        // The same events reach the service's own log (stderr, the journal under systemd).
        #expect(ca.log.contains("audit {") && ca.log.contains("certificate.issued"))
        #expect(fileMode(ca.sandbox.dataDir + "/audit.log") == 0o600)
    }

    /// /sign is answered in the connection's pipeline, everything else by the router: pipelined
    /// requests on one connection still get one response each, in order, with the same shapes.
    @Test func pipelinedRequestsAreAnsweredInOrder() throws {
        let ca = try RunningCA()
        let adminPassword = try readFile(ca.sandbox.configDir + "/provisioner-password").trimmingCharacters(in: .newlines)
        let result = try runProcess("python3", [Self.resources + "/pipelined_client.py", ca.url, ca.rootPath, adminPassword])
        #expect(result.status == 0, "\(result)\nserver log:\n\(ca.log)")
        let output = try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
        let responses = try #require(output["responses"] as? [[String: Any]])
        let statuses = responses.map { $0["status"] as? Int ?? 0 }
        #expect(statuses == [200, 201, 200, 401, 401, 400, 413, 201, 200], "\(responses)")
        func body(_ index: Int) -> [String: Any] { responses[index]["body"] as? [String: Any] ?? [:] }
        func headers(_ index: Int) -> [String: String] { responses[index]["headers"] as? [String: String] ?? [:] }
        #expect((body(1)["crt"] as? String)?.hasPrefix("-----BEGIN CERTIFICATE-----\n") == true)
        #expect((body(1)["certChain"] as? [String])?.count == 2)
        #expect((body(3)["message"] as? String)?.contains("already used") == true)
        #expect((body(4)["message"] as? String)?.contains("malformed token") == true)
        #expect((body(5)["message"] as? String)?.contains("the body must be JSON") == true)
        #expect(body(6)["status"] as? Int == 413)
        for index in [1, 3, 5, 6, 7] {
            #expect(headers(index)["content-type"] == "application/json")
            #expect(headers(index)["date"]?.hasSuffix(" GMT") == true, "\(headers(index))")
        }
        #expect(output["closed"] as? Bool == true)  // the last request asked for Connection: close
        // Both issuances are durable and audited; the leaf verifies against the root.
        let leaf = try ca.sandbox.root.write("pipelined.pem", (body(1)["crt"] as? String ?? "") + (body(1)["ca"] as? String ?? ""))
        #expect(try runProcess("openssl", ["verify", "-CAfile", ca.rootPath, "-untrusted", leaf, leaf]).status == 0)
        let listed = try ca.sandbox.run(["ca", "certs", "list", "--json"])
        #expect(listed.stdout.contains("pipelined.internal") && listed.stdout.contains("second.internal"), "\(listed)")
        // A /sign the fast path leaves to the router (it asks for 100-continue) gets the same answer shape.
        let expecting = try runProcess("curl", [
            "-s", "-w", "\n%{http_code}", "--cacert", ca.rootPath, "-H", "Content-Type: application/json", "-H", "Expect: 100-continue",
            "--data", #"{"csr":"x","ott":"a.b.c"}"#, ca.url + "/sign",
        ])
        #expect(expecting.stdout.hasSuffix("\n401") && expecting.stdout.contains("malformed token"), "\(expecting)")
        #expect(ca.stop() == 0)
        let issued = try ca.auditEvents().filter { $0["event"] as? String == "certificate.issued" }
        #expect(issued.count == 2)
    }

    @Test func ourClientIssuesAndAdminCommandsSeeIt() throws {
        let ca = try RunningCA()
        let fingerprint = try ca.fingerprint
        let out = ca.sandbox.root
        // The database writer thread exists while there are writes (and a second after); watch for
        // it during the issuance: `ca serve` runs it at nice -10 (see WriterOptions).
        let writerNice = Mutex<Int?>(nil)
        let watching = Atomic<Bool>(true)
        let watcher = Thread {
            while watching.load(ordering: .relaxed) {
                if let nice = ca.threadNice(named: "auto-ssl-writer") { writerNice.withLock { $0 = nice } }
                usleep(5_000)
            }
        }
        watcher.start()
        let issued = try ca.sandbox.run([
            "cert", "issue", "--ca-url", ca.url, "--fingerprint", fingerprint.uppercased(), "--san", "app.internal",
            "--san", "10.1.1.1", "--out-cert", out.file("app.crt"), "--out-key", out.file("app.key"),
            "--password-file", ca.sandbox.configDir + "/provisioner-password", "--duration", "48h",
        ])
        #expect(issued.status == 0, "\(issued)\n\(ca.log)")
        // The writer stays a second after its last commit: on a loaded machine the watcher may
        // only get to look in that second.
        for _ in 0..<20 where writerNice.withLock({ $0 }) == nil { usleep(50_000) }
        watching.store(false, ordering: .relaxed)
        #expect(writerNice.withLock { $0 } == -10, "the database writer's priority")
        #expect(fileMode(out.file("app.key")) == 0o600)
        let verify = try runProcess("openssl", ["verify", "-x509_strict", "-CAfile", ca.rootPath, "-untrusted", out.file("app.crt"), out.file("app.crt")])
        #expect(verify.status == 0, "\(verify)")
        let keyMatches = try runProcess("openssl", ["x509", "-in", out.file("app.crt"), "-noout", "-pubkey"]).stdout
            == (try runProcess("openssl", ["pkey", "-in", out.file("app.key"), "-pubout"]).stdout)
        #expect(keyMatches)
        let leafOnly = try readFile(out.file("app.crt")).components(separatedBy: "-----END CERTIFICATE-----\n")[0] + "-----END CERTIFICATE-----\n"
        let lint = try runProcess("lint_pkix_cert", ["lint", "-s", "ERROR", try out.write("leaf.pem", leafOnly)])
        #expect(lint.status == 0 && lint.stdout.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty, "\(lint)")
        let end = try runProcess("openssl", ["x509", "-in", out.file("app.crt"), "-noout", "-enddate"]).stdout
        #expect(!end.isEmpty)

        let list = try ca.sandbox.run(["ca", "certs", "list", "--json"])
        let certs = try #require(try JSONSerialization.jsonObject(with: Data(list.stdout.utf8)) as? [[String: Any]])
        let app = try #require(certs.first { ($0["names"] as? [String]) == ["app.internal", "10.1.1.1"] })
        #expect(app["provisioner"] as? String == "admin" && app["status"] as? String == "valid")
        let serial = try #require(app["serial"] as? String)
        let expiring = try ca.sandbox.run(["ca", "certs", "list", "--expiring", "72h", "--json"])
        #expect(expiring.stdout.contains(serial))
        let notExpiring = try ca.sandbox.run(["ca", "certs", "list", "--expiring", "24h", "--json"])
        #expect(!notExpiring.stdout.contains(serial))
        let decimal = try #require(app["serial_decimal"] as? String)
        let shown = try ca.sandbox.run(["ca", "certs", "show", decimal])
        #expect(shown.status == 0 && shown.stdout.contains(serial) && shown.stdout.contains("app.internal"), "\(shown)")
        let pem = try ca.sandbox.run(["ca", "certs", "show", serial, "--pem"])
        #expect(pem.stdout == (try readFile(out.file("app.crt"))).components(separatedBy: "-----END CERTIFICATE-----\n")[0] + "-----END CERTIFICATE-----\n")
        #expect(try ca.sandbox.run(["ca", "certs", "show", "00ff"]).status == 1)

        let status = try ca.sandbox.run(["ca", "status", "--json"])
        #expect(status.stdout.contains("\"server\" : \"running (\(ca.url))\""), "\(status)")
        #expect(ca.stop() == 0)
        #expect(try ca.sandbox.run(["ca", "status", "--json"]).stdout.contains("\"not running\""))
        // Admin commands work with the server stopped too.
        #expect(try ca.sandbox.run(["ca", "certs", "list"]).stdout.contains(serial))
    }

    @Test func ourClientStopsOnAWrongFingerprintAndWritesNothing() throws {
        let ca = try RunningCA()
        let out = ca.sandbox.root
        let result = try ca.sandbox.run([
            "cert", "issue", "--ca-url", ca.url, "--fingerprint", String(repeating: "ab", count: 32), "--san", "x.internal",
            "--out-cert", out.file("x.crt"), "--out-key", out.file("x.key"),
            "--password-file", ca.sandbox.configDir + "/provisioner-password",
        ])
        #expect(result.status == 6, "\(result)")
        #expect(result.stderr.contains(try ca.fingerprint) && result.stderr.contains(String(repeating: "ab", count: 32)))
        #expect(!FileManager.default.fileExists(atPath: out.file("x.crt")) && !FileManager.default.fileExists(atPath: out.file("x.key")))
        let wrongPassword = try out.write("wrong.pw", "not-the-provisioner-password\n")
        let refused = try ca.sandbox.run([
            "cert", "issue", "--ca-url", ca.url, "--fingerprint", try ca.fingerprint, "--san", "x.internal",
            "--out-cert", out.file("x.crt"), "--out-key", out.file("x.key"), "--password-file", wrongPassword,
        ])
        #expect(refused.status == 6 && refused.stderr.contains("wrong provisioner password"), "\(refused)")
        let unreachable = try ca.sandbox.run([
            "cert", "issue", "--ca-url", "https://127.0.0.1:\(freeLoopbackPort())", "--fingerprint", try ca.fingerprint,
            "--san", "x.internal", "--out-cert", out.file("x.crt"), "--out-key", out.file("x.key"), "--password-file", wrongPassword,
        ])
        #expect(unreachable.status == 5, "\(unreachable)")
    }

    /// Output paths that cannot be written (a directory, one file for both) and two ways of naming
    /// the certificate to revoke are refused with exit 2 before the CA is asked: nothing is issued,
    /// renewed, revoked or written.
    @Test func ourClientRefusesUnwritableOutputsAndAmbiguousRevocationsBeforeAskingTheCA() throws {
        let ca = try RunningCA()
        let out = ca.sandbox.root
        let fingerprint = try ca.fingerprint
        let password = ca.sandbox.configDir + "/provisioner-password"
        try FileManager.default.createDirectory(atPath: out.file("dir"), withIntermediateDirectories: false)
        func issue(cert: String, key: String) throws -> ProcessResult {
            try ca.sandbox.run([
                "cert", "issue", "--ca-url", ca.url, "--fingerprint", fingerprint, "--san", "p.internal",
                "--out-cert", cert, "--out-key", key, "--password-file", password,
            ])
        }
        func issuedCount() throws -> Int {
            let listed = try ca.sandbox.run(["ca", "certs", "list", "--json"])
            return (try JSONSerialization.jsonObject(with: Data(listed.stdout.utf8)) as? [Any])?.count ?? -1
        }
        let before = try issuedCount()
        let intoDirectory = try issue(cert: out.file("dir"), key: out.file("p.key"))
        #expect(intoDirectory.status == 2 && intoDirectory.stderr.contains("--out-cert \(out.file("dir")) is a directory"), "\(intoDirectory)")
        let keyIntoDirectory = try issue(cert: out.file("p.crt"), key: out.file("dir"))
        #expect(keyIntoDirectory.status == 2 && keyIntoDirectory.stderr.contains("--out-key"), "\(keyIntoDirectory)")
        let sameFile = try issue(cert: out.file("same.pem"), key: out.file("same.pem"))
        #expect(sameFile.status == 2 && sameFile.stderr.contains("name the same file"), "\(sameFile)")
        for path in ["p.key", "p.crt", "same.pem"] { #expect(!FileManager.default.fileExists(atPath: out.file(path)), "\(path) written") }
        #expect(try issuedCount() == before, "the CA issued a certificate nobody has")

        #expect(try issue(cert: out.file("p.crt"), key: out.file("p.key")).status == 0)
        let renewed = try ca.sandbox.run([
            "cert", "renew", "--ca-url", ca.url, "--fingerprint", fingerprint, "--cert", out.file("p.crt"), "--key", out.file("p.key"),
            "--out-cert", out.file("dir"),
        ])
        #expect(renewed.status == 2 && renewed.stderr.contains("--out-cert \(out.file("dir")) is a directory"), "\(renewed)")
        #expect(try issuedCount() == before + 1, "the CA renewed into a file that cannot be written")

        let serial = try #require(try runProcess("openssl", ["x509", "-in", out.file("p.crt"), "-noout", "-serial"]).stdout
            .split(separator: "=").last.map { String($0).trimmingCharacters(in: .whitespacesAndNewlines) })
        let ambiguous = try ca.sandbox.run([
            "cert", "revoke", "--ca-url", ca.url, "--fingerprint", fingerprint, "--serial", "01", "--password-file", password,
            "--cert", out.file("p.crt"), "--key", out.file("p.key"),
        ])
        #expect(ambiguous.status == 2 && ambiguous.stderr.contains("not both"), "\(ambiguous)")
        let half = try ca.sandbox.run(["cert", "revoke", "--ca-url", ca.url, "--fingerprint", fingerprint, "--cert", out.file("p.crt")])
        #expect(half.status == 2 && half.stderr.contains("--cert and --key go together"), "\(half)")
        func shown() throws -> [String: Any] {
            let result = try ca.sandbox.run(["ca", "certs", "show", serial, "--json"])
            return try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any] ?? ["failed": "\(result)"]
        }
        #expect(try shown()["status"] as? String == "valid")
        // Revoked by its holder: the JSON names the revocation in snake_case like everything else.
        let revoked = try ca.sandbox.run([
            "cert", "revoke", "--ca-url", ca.url, "--fingerprint", fingerprint, "--cert", out.file("p.crt"), "--key", out.file("p.key"),
            "--reason-code", "4", "--reason", "-2 weeks early",
        ])
        #expect(revoked.status == 0 && revoked.stdout.hasPrefix("Revoked "), "\(revoked)")
        // Revoked again, now for key compromise: the certificate keeps its first reason, but its
        // key (left in force by "superseded") is cut off now, and the command says so.
        let compromised = try ca.sandbox.run([
            "cert", "revoke", "--ca-url", ca.url, "--fingerprint", fingerprint, "--cert", out.file("p.crt"), "--key", out.file("p.key"),
            "--reason-code", "1",
        ])
        #expect(compromised.status == 0 && compromised.stdout.contains("was already revoked (it keeps its first reason); its key is revoked now"),
                "\(compromised)")
        // Asked again: nothing changes, and the command says so rather than "Revoked".
        let again = try ca.sandbox.run([
            "cert", "revoke", "--ca-url", ca.url, "--fingerprint", fingerprint, "--cert", out.file("p.crt"), "--key", out.file("p.key"),
            "--reason-code", "1",
        ])
        #expect(again.status == 0 && again.stdout.contains("was already revoked; it is unchanged"), "\(again)")
        let audit = try String(contentsOfFile: ca.sandbox.dataDir + "/audit.log", encoding: .utf8)
        #expect(audit.contains(#""event":"key.revoked""#), "the key's revocation is audited")
        #expect(audit.contains(#""reason":"-2 weeks early""#), "free text that starts with a minus is taken as written")
        let revocation = try #require(try shown()["revocation"] as? [String: Any])
        #expect(revocation["reason_code"] as? Int == 4 && revocation["revoked_at"] != nil && revocation["revoked_by"] != nil, "\(revocation)")
    }

    /// A CA URL with a path the CA does not serve is a wrong argument (exit 2) that names the URL
    /// to use, not a CA that is down (exit 5).
    @Test func aCAURLWithAPathTheCADoesNotServeIsAWrongArgument() throws {
        let ca = try RunningCA()
        let out = TemporaryDirectory()
        let wrong = try ca.sandbox.run([
            "cert", "issue", "--ca-url", ca.url + "/ca", "--fingerprint", try ca.fingerprint, "--san", "a.internal",
            "--password-file", ca.sandbox.configDir + "/provisioner-password", "--out-cert", out.file("a.crt"), "--out-key", out.file("a.key"),
        ])
        #expect(wrong.status == 2 && wrong.stderr.contains("HTTP 404 for /ca/roots") && wrong.stderr.contains("try \(ca.url)"), "\(wrong)")
        #expect(!FileManager.default.fileExists(atPath: out.file("a.key")))
    }

    @Test func repeatedAuthenticationFailuresAreSlowedDown() throws {
        let ca = try RunningCA()
        var statuses: [Int] = []
        for _ in 0..<12 {
            let response = try runProcess("curl", [
                "-s", "-o", "/dev/null", "-w", "%{http_code}", "--cacert", ca.rootPath, "-H", "Content-Type: application/json",
                "--data", #"{"csr":"x","ott":"a.b.c"}"#, ca.url + "/1.0/sign",
            ])
            statuses.append(Int(response.stdout) ?? 0)
        }
        #expect(Array(statuses.prefix(10)) == Array(repeating: 401, count: 10), "\(statuses)")
        #expect(statuses.suffix(2) == [429, 429], "\(statuses)")
        let headers = try runProcess("curl", [
            "-s", "-D", "-", "-o", "/dev/null", "--cacert", ca.rootPath, "--data", "{}", ca.url + "/sign",
        ])
        #expect(headers.stdout.lowercased().contains("retry-after:"))
        #expect(try ca.auditEvents().contains { $0["event"] as? String == "auth.rate-limited" })
    }

    @Test func onlyModernTLS() throws {
        let ca = try RunningCA()
        for version in ["-tls1", "-tls1_1"] {
            let result = try runProcess("sh", ["-c", "echo | openssl s_client -connect 127.0.0.1:\(ca.port) \(version) 2>&1"])
            #expect(result.stdout.contains("alert protocol version") || result.stdout.contains("no protocols available"),
                    "\(version): \(result.stdout)")
        }
        for version in ["-tls1_2", "-tls1_3"] {
            let result = try runProcess("sh", ["-c", "echo | openssl s_client -connect 127.0.0.1:\(ca.port) \(version) -CAfile \(ca.rootPath) -verify_return_error 2>&1"])
            #expect(result.stdout.contains("Verify return code: 0 (ok)"), "\(version): \(result.stdout)")
        }
        let scan = try runProcess("sslscan", ["--no-colour", "--no-heartbleed", "127.0.0.1:\(ca.port)"])
        #expect(scan.status == 0, "\(scan)")
        for weak in ["SSLv2", "SSLv3", "TLSv1.0", "TLSv1.1"] {
            #expect(scan.stdout.range(of: "\(weak)\\s+disabled", options: .regularExpression) != nil, "\(weak) not disabled:\n\(scan.stdout)")
        }
        let accepted = scan.stdout.split(separator: "\n").filter { $0.contains("Accepted") || $0.contains("Preferred") }
        #expect(!accepted.isEmpty, "\(scan.stdout)")
        for line in accepted {
            #expect(line.contains("GCM") || line.contains("CHACHA20"), "non-AEAD cipher accepted: \(line)")
        }
    }

    @Test func refusesToServeWithReadableKeys() throws {
        let sandbox = Sandbox()
        #expect(try sandbox.run(["ca", "init", "--non-interactive", "--address", "127.0.0.1:\(freeLoopbackPort())"]).status == 0)
        chmod(sandbox.caDir + "/secrets/intermediate_ca_key", 0o640)
        let result = try sandbox.run(["ca", "serve"])
        #expect(result.status == 4, "\(result)")
        #expect(result.stderr.contains("intermediate_ca_key") && result.stderr.contains("chmod 600"), "\(result)")

        // A password file the CA recorded is a secret too: the provisioner's lets anyone who reads
        // it issue certificates. ca serve refuses it, ca status warns about it.
        chmod(sandbox.caDir + "/secrets/intermediate_ca_key", 0o600)
        let provisionerPassword = sandbox.configDir + "/provisioner-password"
        #expect(fileMode(provisionerPassword) == 0o600)
        chmod(provisionerPassword, 0o644)
        let readablePassword = try sandbox.run(["ca", "serve"])
        #expect(readablePassword.status == 4, "\(readablePassword)")
        #expect(readablePassword.stderr.contains("\(provisionerPassword) has mode 644 (run: chmod 600"), "\(readablePassword)")
        let status = try sandbox.run(["ca", "status"])
        #expect((status.stdout + status.stderr).contains("\(provisionerPassword) is readable by group or others"), "\(status)")
    }

    /// After a provisioner password leaked: `ca revoke --provisioner NAME --issued-after T` revokes
    /// what was issued with it since T (and the renewals of those), keeps a certificate issued
    /// before T even when it was renewed since, and `--dry-run` only lists.
    @Test func revokingWhatAProvisionerIssuedSinceALeakKeepsWhatCameBefore() throws {
        let ca = try RunningCA()
        let fingerprint = try ca.fingerprint
        let password = ca.sandbox.configDir + "/provisioner-password"
        let out = ca.sandbox.root
        func issue(_ name: String) throws {
            let result = try ca.sandbox.run([
                "cert", "issue", "--ca-url", ca.url, "--fingerprint", fingerprint, "--san", name, "--out-cert", out.file("\(name).crt"),
                "--out-key", out.file("\(name).key"), "--provisioner", "admin", "--password-file", password,
            ])
            #expect(result.status == 0, "\(result)")
        }
        // Renewal keeps the key: the key file is the one first issued under `key`.
        func renew(_ name: String, key: String, to renewed: String) throws -> ProcessResult {
            try ca.sandbox.run([
                "cert", "renew", "--ca-url", ca.url, "--fingerprint", fingerprint, "--cert", out.file("\(name).crt"),
                "--key", out.file("\(key).key"), "--out-cert", out.file("\(renewed).crt"),
            ])
        }
        try issue("before.internal")
        let leak = Date(timeIntervalSince1970: (Date().timeIntervalSince1970).rounded(.down) + 1)
        while Date() < leak.addingTimeInterval(0.2) { usleep(100_000) }
        let renewedBefore = try renew("before.internal", key: "before.internal", to: "before-renewed.internal")
        #expect(renewedBefore.status == 0, "\(renewedBefore)")
        try issue("after.internal")
        let leakText = Timestamp.rfc3339(leak)

        let refused = try ca.sandbox.run(["ca", "revoke", "--provisioner", "admin"])
        #expect(refused.status == 2 && refused.stderr.contains("--issued-after"), "\(refused)")
        let badTime = try ca.sandbox.run(["ca", "revoke", "--provisioner", "admin", "--issued-after", "yesterday"])
        #expect(badTime.status == 2 && badTime.stderr.contains("RFC 3339"), "\(badTime)")

        let dry = try ca.sandbox.run(["ca", "revoke", "--provisioner", "admin", "--issued-after", leakText, "--dry-run"])
        #expect(dry.status == 0 && dry.stdout.contains("after.internal") && !dry.stdout.contains("before.internal"), "\(dry)")
        #expect(dry.stdout.contains("1 certificate(s)") && dry.stdout.contains("would be revoked"), "\(dry)")
        #expect(try renew("after.internal", key: "after.internal", to: "after-still.internal").status == 0, "a dry run revoked something")

        let revoked = try ca.sandbox.run([
            "ca", "revoke", "--provisioner", "admin", "--issued-after", leakText, "--reason-code", "1", "--reason", "password leaked",
        ])
        // after.internal and its renewal (same key: revoked with it).
        #expect(revoked.status == 0 && revoked.stdout.contains("Revoked") && revoked.stdout.contains("after.internal"), "\(revoked)")
        #expect(!revoked.stdout.contains("before.internal"), "\(revoked)")
        let afterRenewal = try renew("after.internal", key: "after.internal", to: "after-again.internal")
        #expect(afterRenewal.status != 0 && afterRenewal.stderr.contains("revoked"), "\(afterRenewal)")
        let stillRenews = try renew("before-renewed.internal", key: "before.internal", to: "before-again.internal")
        #expect(stillRenews.status == 0, "\(stillRenews)")
        let nothing = try ca.sandbox.run(["ca", "revoke", "--provisioner", "nobody", "--issued-after", leakText])
        #expect(nothing.status == 0 && nothing.stdout.contains("nothing was revoked") && nothing.stderr.contains("no provisioner \"nobody\""), "\(nothing)")
        let audit = try readFile(ca.sandbox.dataDir + "/audit.log")
        #expect(audit.contains("password leaked"), "no revocation in the audit log")
    }

    @Test func provisionerManagementTakesEffectWhileServing() throws {
        let ca = try RunningCA()
        let fingerprint = try ca.fingerprint
        let added = try ca.sandbox.run(["ca", "provisioner", "add", "ops", "--non-interactive", "--max-duration", "24h"])
        #expect(added.status == 0, "\(added)")
        let opsPassword = ca.sandbox.configDir + "/provisioner-ops-password"
        #expect(fileMode(opsPassword) == 0o600)
        let list = try ca.sandbox.run(["ca", "provisioner", "list", "--json"])
        #expect(list.stdout.contains("\"ops\"") && list.stdout.contains("24h"))
        func issue(_ provisioner: String, _ passwordFile: String, duration: String? = nil) throws -> ProcessResult {
            try ca.sandbox.run([
                "cert", "issue", "--ca-url", ca.url, "--fingerprint", fingerprint, "--san", "ops.internal",
                "--out-cert", ca.sandbox.root.file("o.crt"), "--out-key", ca.sandbox.root.file("o.key"),
                "--provisioner", provisioner, "--password-file", passwordFile,
            ] + (duration.map { ["--duration", $0] } ?? []))
        }
        // The running server picks the new provisioner up within seconds.
        var result = try issue("ops", opsPassword, duration: "12h")
        for _ in 0..<20 where result.status != 0 {
            usleep(500_000)
            result = try issue("ops", opsPassword, duration: "12h")
        }
        #expect(result.status == 0, "\(result)\n\(ca.log)")
        #expect(try issue("ops", opsPassword, duration: "48h").stderr.contains("maximum 24h"))

        let oldPassword = try readFile(opsPassword)
        // What someone who stole the password keeps: it and the public /provisioners document.
        let saved = try runProcess("curl", ["-sf", "--cacert", ca.rootPath, "-o", ca.sandbox.root.file("provisioners.json"), ca.url + "/provisioners"])
        #expect(saved.status == 0, "\(saved)")
        let stale = try ca.sandbox.root.write("old.pw", oldPassword)
        func signWithSavedKey() throws -> [String: Any] {
            let result = try runProcess("python3", [
                URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Resources/provisioner_sign.py").path,
                ca.url, ca.rootPath, ca.sandbox.root.file("provisioners.json"), "ops", stale, "stolen.internal",
            ])
            return try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any] ?? ["failed": "\(result)"]
        }
        #expect(try signWithSavedKey()["status"] as? Int == 201, "the saved key works before the change")
        let changed = try ca.sandbox.run(["ca", "provisioner", "password", "ops", "--non-interactive"])
        #expect(changed.status == 0, "\(changed)")
        #expect(changed.stdout.contains("new key") && changed.stdout.contains("refused from now on"), "\(changed)")
        #expect(try readFile(opsPassword) != oldPassword)
        // The password opened the key itself; the change gives the provisioner a new key, so the
        // old one signs nothing any more.
        var attempt = try signWithSavedKey()
        for _ in 0..<20 where attempt["status"] as? Int == 201 {
            usleep(500_000)
            attempt = try signWithSavedKey()
        }
        #expect(attempt["status"] as? Int == 401, "\(attempt)")
        var staleResult = try issue("ops", stale)
        for _ in 0..<20 where staleResult.status != 6 {
            usleep(500_000)
            staleResult = try issue("ops", stale)
        }
        #expect(staleResult.status == 6, "\(staleResult)")
        #expect(try issue("ops", opsPassword).status == 0)

        #expect(try ca.sandbox.run(["ca", "provisioner", "remove", "ops"]).status == 2)  // needs --yes off a terminal
        let removed = try ca.sandbox.run(["ca", "provisioner", "remove", "ops", "--yes"])
        #expect(removed.status == 0, "\(removed)")
        // It said what stops renewing: the certificates ops issued above (and what the stolen key signed).
        #expect(removed.stdout.contains("certificates it issued will not be renewed; the last expires"), "\(removed)")
        #expect(removed.stdout.contains("  ops.internal\n"), "\(removed)")
        // The records keep the removed provisioner's name, and the list filters by it.
        let listed = try ca.sandbox.run(["ca", "certs", "list", "--provisioner", "ops", "--json"])
        let rows = try JSONSerialization.jsonObject(with: Data(listed.stdout.utf8)) as? [[String: Any]] ?? []
        #expect(!rows.isEmpty && rows.allSatisfy { $0["provisioner"] as? String == "ops" }, "\(listed)")
        #expect(rows.contains { ($0["names"] as? [String]) == ["ops.internal"] }, "\(listed)")
        let none = try ca.sandbox.run(["ca", "certs", "list", "--provisioner", "nobody"])
        #expect(none.status == 0 && none.stdout.contains("No certificates match."), "\(none)")
        #expect(!FileManager.default.fileExists(atPath: opsPassword))
        var gone = try issue("ops", opsPassword)
        for _ in 0..<20 where gone.status == 0 || !gone.stderr.contains("no provisioner named") {
            usleep(500_000)
            gone = try issue("ops", opsPassword)
        }
        #expect(gone.status != 0, "\(gone)")
        // The certificate ops issued last is valid but no longer renews.
        let renewal = try ca.sandbox.run([
            "cert", "renew", "--ca-url", ca.url, "--fingerprint", fingerprint, "--cert", ca.sandbox.root.file("o.crt"),
            "--key", ca.sandbox.root.file("o.key"), "--out-cert", ca.sandbox.root.file("o-renewed.crt"),
        ])
        #expect(renewal.status != 0 && renewal.stderr.contains("provisioner \"ops\", which this CA no longer has"), "\(renewal)")
        #expect(!FileManager.default.fileExists(atPath: ca.sandbox.root.file("o-renewed.crt")))
        let events = try ca.auditEvents().compactMap { $0["provisioner"] as? String == "ops" ? $0["event"] as? String : nil }
        for event in ["provisioner.added", "provisioner.key-rotated", "provisioner.removed"] {
            #expect(events.contains(event), "\(events)")
        }
    }

    @Test func installServiceWritesAVerifiedHardenedUnit() throws {
        let sandbox = Sandbox()
        #expect(try sandbox.run(["ca", "init", "--non-interactive", "--address", "127.0.0.1:9443"]).status == 0)
        let result = try sandbox.run(["ca", "install-service"])
        #expect(result.status == 0, "\(result)")
        let unit = try readFile(sandbox.systemdDir + "/auto-ssl-ca.service")
        for line in ["NoNewPrivileges=yes", "ProtectSystem=strict", "ProtectHome=yes", "PrivateTmp=yes",
                     "ReadWritePaths=\(sandbox.dataDir)", "Restart=on-failure", "ExecStart=\(autoSSLBinaryPath()) ca serve",
                     "LoadCredential=ca-password:\(sandbox.configDir)/ca-password", "LimitNICE=-10", "LimitNOFILE=65536"] {
            #expect(unit.contains(line + "\n"), "missing \(line)")
        }
        if FileManager.default.isExecutableFile(atPath: "/usr/bin/systemd-analyze") {
            #expect(result.stdout.contains("systemd-analyze verify: ok"), "\(result)")
        }
    }
}
