import Foundation
import Testing
import TestSupport

/// The ACME server against real clients from Debian (lego, certbot, Caddy), with
/// pebble-challtestsrv as the DNS server validation uses, and an independent Python client for the
/// requests real clients never make (bad nonces, foreign keys, wrong answers) and for concurrency.
@Suite(.serialized) struct ACMEEndToEndTests {
    static let resources = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Resources").path

    static var haveClients: Bool {
        ["/usr/bin/lego", "/usr/bin/certbot", "/usr/bin/caddy", "/usr/bin/pebble-challtestsrv"].allSatisfy {
            FileManager.default.isExecutableFile(atPath: $0)
        }
    }

    /// A program running in the background for one test, its output in a file (never a pipe).
    final class Background: @unchecked Sendable {
        let process = Process()
        let log: String

        init(_ executable: String, _ arguments: [String], log: String, environment: [String: String]? = nil) throws {
            self.log = log
            _ = FileManager.default.createFile(atPath: log, contents: nil)
            process.executableURL = URL(fileURLWithPath: executable)
            process.arguments = arguments
            if let environment { process.environment = environment }
            process.standardInput = FileHandle.nullDevice
            process.standardOutput = FileHandle(forWritingAtPath: log)
            process.standardError = FileHandle(forWritingAtPath: log)
            try process.run()
        }

        var output: String { (try? readFile(log)) ?? "" }

        func stop() {
            if process.isRunning {
                process.terminate()
                process.waitUntilExit()
            }
        }

        deinit { stop() }
    }

    /// A CA whose ACME provisioner validates on test ports and resolves through pebble-challtestsrv,
    /// which answers every A query with 127.0.0.1 and serves the TXT records the tests set.
    final class Setup: @unchecked Sendable {
        let http01Port = freeLoopbackPort()
        let tlsALPNPort = freeLoopbackPort()
        let dnsPort = freeLoopbackPort()
        let managementPort = freeLoopbackPort()
        let ca: RunningCA
        let dns: Background
        var root: String { ca.rootPath }
        var directory: String { ca.url + "/acme/acme/directory" }
        func file(_ name: String) -> String { ca.sandbox.root.file(name) }

        init() throws {
            let (http, tls, resolverPort) = (http01Port, tlsALPNPort, dnsPort)
            ca = try RunningCA { sandbox in
                let updated = try sandbox.run([
                    "ca", "provisioner", "update", "acme", "--http01-port", "\(http)", "--tlsalpn01-port", "\(tls)",
                    "--resolver", "127.0.0.1:\(resolverPort)", "--validation-allow", "127.0.0.0/8",
                ])
                guard updated.status == 0 else { throw TestFailure("provisioner update: \(updated)") }
            }
            dns = try Background(
                "/usr/bin/pebble-challtestsrv",
                ["-dns01", "127.0.0.1:\(dnsPort)", "-http01", "", "-https01", "", "-tlsalpn01", "", "-management", "127.0.0.1:\(managementPort)"],
                log: ca.sandbox.root.file("challtestsrv.log"))
            for _ in 0..<50 {
                if try runProcess("curl", ["-s", "-o", "/dev/null", "-X", "POST", "-d", "{}", "http://127.0.0.1:\(managementPort)/clear-txt"]).status == 0 { break }
                usleep(100_000)
            }
        }

        /// A hook that sets or clears `_acme-challenge` TXT records in the test DNS server, for lego's
        /// exec provider (present|cleanup FQDN VALUE) and certbot's manual hooks (CERTBOT_* variables).
        func dnsHook() throws -> String {
            try ca.sandbox.root.write("dns-hook.sh", """
                #!/bin/sh
                api=http://127.0.0.1:\(managementPort)
                if [ -n "$CERTBOT_DOMAIN" ]; then
                  if [ -n "$CERTBOT_AUTH_OUTPUT" ]; then set -- cleanup "_acme-challenge.$CERTBOT_DOMAIN."; else set -- present "_acme-challenge.$CERTBOT_DOMAIN." "$CERTBOT_VALIDATION"; fi
                fi
                case "$1" in
                  present) curl -sf -X POST -d "{\\"host\\":\\"$2\\",\\"value\\":\\"$3\\"}" $api/set-txt ;;
                  cleanup) curl -sf -X POST -d "{\\"host\\":\\"$2\\"}" $api/clear-txt ;;
                esac
                """, mode: 0o755)
        }

        func verify(_ certificate: String) throws -> ProcessResult {
            try runProcess("openssl", ["verify", "-x509_strict", "-CAfile", root, "-untrusted", certificate, certificate])
        }

        func sans(_ certificate: String) throws -> String {
            try runProcess("openssl", ["x509", "-in", certificate, "-noout", "-ext", "subjectAltName"]).stdout
        }

        func serial(_ certificate: String) throws -> String {
            let out = try runProcess("openssl", ["x509", "-in", certificate, "-noout", "-serial"]).stdout
            return String(out.split(separator: "=").last ?? "").trimmingCharacters(in: .whitespacesAndNewlines).lowercased()
        }

        func crlText() throws -> String {
            try runProcess("sh", ["-c", "curl -sf --cacert \(root) '\(ca.url)/crl?pem' | openssl crl -noout -text"]).stdout.lowercased()
        }
    }

    func lego(_ setup: Setup, _ arguments: [String], path: String, environment extra: [String: String] = [:]) throws -> ProcessResult {
        var environment = ProcessInfo.processInfo.environment
        environment["LEGO_CA_CERTIFICATES"] = setup.root
        environment.merge(extra) { _, new in new }
        return try runProcess(
            "/usr/bin/lego",
            ["--server", setup.directory, "--email", "ops@example.com", "--accept-tos", "--path", path] + arguments + ["run"],
            environment: environment)
    }

    @Test(.enabled(if: haveClients, "needs lego, certbot, caddy and pebble (CI installs them)"))
    func legoWithHTTP01TLSALPN01DNS01AndAnIPAddress() throws {
        let setup = try Setup()
        let path = setup.file("lego")
        let http = try lego(setup, ["--domains", "web.test.internal", "--http", "--http.port", "127.0.0.1:\(setup.http01Port)"], path: path)
        #expect(http.status == 0, "\(http)")
        let httpCert = path + "/certificates/web.test.internal.crt"
        #expect(try setup.verify(httpCert).status == 0)
        #expect(try setup.sans(httpCert).contains("DNS:web.test.internal"))

        let ip = try lego(setup, ["--domains", "127.0.0.1", "--tls", "--tls.port", "127.0.0.1:\(setup.tlsALPNPort)"], path: path)
        #expect(ip.status == 0, "\(ip)")
        let ipCert = path + "/certificates/127.0.0.1.crt"
        #expect(try setup.verify(ipCert).status == 0)
        let ipNames = try setup.sans(ipCert)
        #expect(ipNames.contains("IP Address:127.0.0.1") && !ipNames.contains("DNS:"), "an IP identifier is issued as an iPAddress SAN: \(ipNames)")

        let dns = try lego(
            setup,
            ["--domains", "app.test.internal", "--dns", "exec", "--dns.resolvers", "127.0.0.1:\(setup.dnsPort)", "--dns.disable-cp"],
            path: path, environment: ["EXEC_PATH": try setup.dnsHook()])
        #expect(dns.status == 0, "\(dns)")
        #expect(try setup.verify(path + "/certificates/app.test.internal.crt").status == 0)

        let listed = try setup.ca.sandbox.run(["ca", "certs", "list"])
        #expect(listed.stdout.components(separatedBy: "acme/acme").count - 1 == 3, "\(listed)")
        #expect(listed.stdout.components(separatedBy: "(ACME account ").count - 1 == 3, "the list names the ordering account: \(listed)")
        let audit = try setup.ca.auditEvents()
        #expect(audit.filter { $0["event"] as? String == "acme.challenge.valid" }.count == 3)
        #expect(audit.contains { ($0["detail"] as? String)?.contains("acme-account:") == true && $0["event"] as? String == "certificate.issued" })
    }

    @Test(.enabled(if: haveClients, "needs lego, certbot, caddy and pebble (CI installs them)"))
    func wildcardsAreValidatedOverDNS01Only() throws {
        let setup = try Setup()
        let path = setup.file("lego")
        // http-01 cannot prove a wildcard: the CA offers it no challenge lego can solve that way.
        let overHTTP = try lego(setup, ["--domains", "*.web.test.internal", "--http", "--http.port", "127.0.0.1:\(setup.http01Port)"], path: path)
        #expect(overHTTP.status != 0 && (overHTTP.stdout + overHTTP.stderr).contains("solver"), "\(overHTTP)")
        let wildcard = try lego(
            setup,
            ["--domains", "*.apps.test.internal", "--dns", "exec", "--dns.resolvers", "127.0.0.1:\(setup.dnsPort)", "--dns.disable-cp"],
            path: path, environment: ["EXEC_PATH": try setup.dnsHook()])
        #expect(wildcard.status == 0, "\(wildcard)")
        let certificate = path + "/certificates/_.apps.test.internal.crt"
        #expect(try setup.verify(certificate).status == 0)
        #expect(try setup.sans(certificate).contains("DNS:*.apps.test.internal"))
        // The validation looked up the TXT record under the domain itself, as RFC 8555 §8.4 asks.
        let valid = try setup.ca.auditEvents().filter { $0["event"] as? String == "acme.challenge.valid" }
        #expect(valid.count == 1 && (valid.first?["sans"] as? [String]) == ["apps.test.internal"], "\(valid)")
    }

    @Test(.enabled(if: haveClients, "needs lego, certbot, caddy and pebble (CI installs them)"))
    func http01FollowsARedirectToHTTPS() throws {
        let setup = try Setup()
        let webroot = setup.file("webroot")
        try FileManager.default.createDirectory(atPath: webroot, withIntermediateDirectories: true)
        let (cert, key) = (setup.file("web.crt"), setup.file("web.key"))
        let made = try runProcess("openssl", [
            "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out", cert,
            "-subj", "/CN=redirect.test.internal", "-days", "1",
        ])
        #expect(made.status == 0, "\(made)")
        func server(_ extra: [String]) throws -> Background {
            let background = try Background(
                "/usr/bin/python3",
                [Self.resources + "/redirecting_webroot.py", webroot, "\(setup.http01Port)", "\(setup.tlsALPNPort)", cert, key] + extra,
                log: setup.file("webroot-\(extra.count).log"))
            for _ in 0..<50 where !((try? readFile(background.log))?.contains("ready") ?? false) { usleep(100_000) }
            return background
        }
        // Like an nginx that sends all plain HTTP to HTTPS: the key authorization is found behind the redirect.
        var web = try server([])
        let path = setup.file("lego")
        let obtained = try lego(
            setup, ["--domains", "redirect.test.internal", "--http", "--http.webroot", webroot], path: path)
        #expect(obtained.status == 0, "\(obtained)")
        #expect(try setup.verify(path + "/certificates/redirect.test.internal.crt").status == 0)
        let served = (try? readFile(web.log)) ?? ""
        #expect(served.contains("https: \"GET /.well-known/acme-challenge/"), "\(served)")
        web.stop()

        // A redirect to a port validation does not go to is refused, and the client is told why.
        web = try server(["https://redirect.test.internal:1/elsewhere"])
        defer { web.stop() }
        let refused = try lego(
            setup, ["--domains", "other.test.internal", "--http", "--http.webroot", webroot], path: setup.file("lego2"))
        #expect(refused.status != 0 && (refused.stdout + refused.stderr).contains("follows redirects only to port"), "\(refused)")
    }

    @Test(.enabled(if: haveClients, "needs lego, certbot, caddy and pebble (CI installs them)"))
    func certbotObtainsRenewsAndRevokes() throws {
        let setup = try Setup()
        var environment = ProcessInfo.processInfo.environment
        environment["REQUESTS_CA_BUNDLE"] = setup.root
        let directories = ["--config-dir", setup.file("certbot/etc"), "--work-dir", setup.file("certbot/work"), "--logs-dir", setup.file("certbot/logs")]
        let common = ["--non-interactive", "--agree-tos", "--email", "ops@example.com", "--server", setup.directory] + directories
        let obtained = try runProcess(
            "/usr/bin/certbot",
            ["certonly", "--standalone", "--http-01-address", "127.0.0.1", "--http-01-port", "\(setup.http01Port)", "-d", "www.test.internal"] + common,
            environment: environment)
        #expect(obtained.status == 0, "\(obtained)")
        let live = setup.file("certbot/etc/live/www.test.internal")
        #expect(try setup.verify(live + "/fullchain.pem").status == 0)
        let first = try setup.serial(live + "/cert.pem")

        let renewed = try runProcess(
            "/usr/bin/certbot",
            // Without a terminal certbot sleeps up to 8 minutes before renewing (spreading load on
            // public CAs); the test has no use for that wait.
            ["renew", "--force-renewal", "--no-random-sleep-on-renew", "--cert-name", "www.test.internal",
             "--http-01-port", "\(setup.http01Port)"] + common,
            environment: environment)
        #expect(renewed.status == 0, "\(renewed)")
        let second = try setup.serial(live + "/cert.pem")
        #expect(second != first, "renewal gives a new certificate")

        let revoked = try runProcess(
            "/usr/bin/certbot",
            ["revoke", "--cert-path", live + "/cert.pem", "--reason", "keycompromise", "--no-delete-after-revoke"] + common,
            environment: environment)
        #expect(revoked.status == 0, "\(revoked)")
        #expect(try setup.crlText().contains(second.drop { $0 == "0" }), "the CRL lists the revoked certificate")
        let again = try runProcess(
            "/usr/bin/certbot",
            ["revoke", "--cert-path", live + "/cert.pem", "--reason", "keycompromise", "--no-delete-after-revoke"] + common,
            environment: environment)
        #expect(again.status != 0, "revoking twice is refused: \(again)")

        let hook = try setup.dnsHook()
        let dns = try runProcess(
            "/usr/bin/certbot",
            ["certonly", "--manual", "--preferred-challenges", "dns", "--manual-auth-hook", hook, "--manual-cleanup-hook", hook,
             "-d", "dns.test.internal"] + common,
            environment: environment)
        #expect(dns.status == 0, "\(dns)")
        #expect(try setup.verify(setup.file("certbot/etc/live/dns.test.internal/fullchain.pem")).status == 0)
    }

    @Test(.enabled(if: haveClients, "needs lego, certbot, caddy and pebble (CI installs them)"))
    func caddyObtainsACertificateAndServesIt() throws {
        let setup = try Setup()
        let home = setup.file("caddy")
        try FileManager.default.createDirectory(atPath: home, withIntermediateDirectories: true)
        let config = try setup.ca.sandbox.root.write("Caddyfile", """
            {
                http_port \(setup.http01Port)
                https_port \(setup.tlsALPNPort)
                storage file_system \(home)/data
                admin off
                skip_install_trust
            }
            localhost:\(setup.tlsALPNPort) {
                bind 127.0.0.1
                tls {
                    issuer acme {
                        dir \(setup.directory)
                        trusted_roots \(setup.root)
                    }
                }
                respond "hello from caddy"
            }
            """)
        var environment = ProcessInfo.processInfo.environment
        environment["HOME"] = home
        environment["XDG_DATA_HOME"] = home
        environment["XDG_CONFIG_HOME"] = home
        let caddy = try Background("/usr/bin/caddy", ["run", "--config", config, "--adapter", "caddyfile"], log: home + "/caddy.log", environment: environment)
        defer { caddy.stop() }
        var response = try runProcess("curl", ["-sS", "--cacert", setup.root, "https://localhost:\(setup.tlsALPNPort)/"])
        for _ in 0..<60 where response.stdout != "hello from caddy" {
            usleep(500_000)
            response = try runProcess("curl", ["-sS", "--cacert", setup.root, "https://localhost:\(setup.tlsALPNPort)/"])
        }
        #expect(response.stdout == "hello from caddy", "\(response)\n\(caddy.output)")
        let served = try runProcess("sh", [
            "-c", "openssl s_client -connect 127.0.0.1:\(setup.tlsALPNPort) -servername localhost </dev/null 2>/dev/null | openssl x509 -noout -issuer",
        ]).stdout
        #expect(served.contains("Serve CA Intermediate CA"), "Caddy serves a certificate from our CA: \(served)")
    }

    @Test(.enabled(if: haveClients, "needs lego, certbot, caddy and pebble (CI installs them)"))
    func refusedRequestsConcurrencyAndExternalAccountBinding() throws {
        let setup = try Setup()
        let client = Self.resources + "/acme_client.py"
        let negatives = try runProcess("python3", [client, setup.directory, setup.root, "\(setup.http01Port)", "negatives"])
        #expect(negatives.status == 0, "\(negatives)")
        let results = try JSONSerialization.jsonObject(with: Data(negatives.stdout.utf8)) as? [String: Any] ?? [:]
        let expected: [String: String] = [
            "bad_nonce": "badNonce", "replayed_nonce": "badNonce", "other_key": "unauthorized", "wrong_url": "unauthorized",
            "finalize_not_ready": "orderNotReady", "wrong_challenge_response": "incorrectResponse",
            "order_after_failed_challenge": "invalid", "csr_names_differ": "badCSR", "unsupported_identifier": "unsupportedIdentifier",
            "only_return_existing": "accountDoesNotExist", "good_content_type": "application/pem-certificate-chain",
        ]
        for (name, type) in expected {
            #expect(results[name] as? String == type, "\(name): \(results[name] ?? "missing")")
        }
        #expect(results["good_chain_certificates"] as? Int == 2)
        #expect(results["orders_listed"] as? Int == 4, "the account's orders list has every order it made")

        // Account update, revocation by the certificate's own key, key rollover, deactivation.
        let lifecycle = try runProcess("python3", [client, setup.directory, setup.root, "\(setup.http01Port)", "lifecycle"])
        #expect(lifecycle.status == 0, "\(lifecycle)")
        let steps = try JSONSerialization.jsonObject(with: Data(lifecycle.stdout.utf8)) as? [String: Any] ?? [:]
        #expect(steps["contact"] as? [String] == ["mailto:new@example.com"])
        for (name, outcome) in [
            ("revoked_by_certificate_key", "accepted"), ("revoked_twice", "alreadyRevoked"), ("key_change", "accepted"),
            ("old_key_after_change", "unauthorized"), ("new_key_after_change", "accepted"), ("deactivated", "deactivated"),
            ("after_deactivation", "unauthorized"),
        ] {
            #expect(steps[name] as? String == outcome, "\(name): \(steps[name] ?? "missing")")
        }
        #expect(try setup.crlText().contains((steps["serial"] as? String ?? "-").drop { $0 == "0" }), "revoked over ACME, listed in the CRL")

        // Many orders at once on one account, and many accounts at once: every one must succeed.
        let concurrent = try runProcess("python3", [client, setup.directory, setup.root, "\(setup.http01Port)", "concurrent", "32", "8"])
        #expect(concurrent.status == 0, "\(concurrent)")
        let outcome = try JSONSerialization.jsonObject(with: Data(concurrent.stdout.utf8)) as? [String: Any] ?? [:]
        #expect(outcome["ok"] as? Int == 40, "more validations at once than the 32 slots: \(concurrent.stdout)")

        // A provisioner that requires external account binding.
        let added = try setup.ca.sandbox.run([
            "ca", "provisioner", "add", "--type", "acme", "--name", "bound", "--require-eab", "--challenges", "http-01",
            "--http01-port", "\(setup.http01Port)", "--resolver", "127.0.0.1:\(setup.dnsPort)", "--validation-allow", "127.0.0.0/8",
        ])
        #expect(added.status == 0, "\(added)")
        let key = try setup.ca.sandbox.run(["ca", "provisioner", "eab", "add", "bound", "--json"])
        let eab = try JSONSerialization.jsonObject(with: Data(key.stdout.utf8)) as? [String: String] ?? [:]
        let directory = setup.ca.url + "/acme/bound/directory"
        var served = ""
        for _ in 0..<30 where !served.contains("externalAccountRequired\":true") {
            usleep(300_000)
            served = try runProcess("curl", ["-s", "--cacert", setup.root, directory]).stdout
        }
        // Another method than POST on a resource: 405 as a problem document, with Allow, a nonce and the directory link.
        let wrongMethod = try runProcess("curl", ["-s", "-i", "--cacert", setup.root, setup.ca.url + "/acme/bound/new-account"]).stdout.lowercased()
        #expect(wrongMethod.hasPrefix("http/1.1 405") && wrongMethod.contains("allow: post"), "\(wrongMethod)")
        #expect(wrongMethod.contains("application/problem+json") && wrongMethod.contains("replay-nonce:") && wrongMethod.contains("rel=\"index\""), "\(wrongMethod)")
        var environment = ProcessInfo.processInfo.environment
        environment["LEGO_CA_CERTIFICATES"] = setup.root
        let base = ["--server", directory, "--email", "ops@example.com", "--accept-tos", "--domains", "bound.test.internal",
                    "--http", "--http.port", "127.0.0.1:\(setup.http01Port)"]
        let refused = try runProcess("/usr/bin/lego", base + ["--path", setup.file("lego-noeab"), "run"], environment: environment)
        #expect(refused.status != 0 && (refused.stdout + refused.stderr).contains("External Account Binding"), "\(refused)")
        let bound = try runProcess(
            "/usr/bin/lego",
            base + ["--path", setup.file("lego-eab"), "--eab", "--kid", eab["kid"] ?? "", "--hmac", eab["hmac_key"] ?? "", "run"],
            environment: environment)
        #expect(bound.status == 0, "\(bound)")
        let keys = try setup.ca.sandbox.run(["ca", "provisioner", "eab", "list", "bound"])
        #expect(keys.stdout.contains("bound to account"), "\(keys)")
        let reuse = try runProcess(
            "/usr/bin/lego",
            base + ["--path", setup.file("lego-eab2"), "--email", "other@example.com", "--eab", "--kid", eab["kid"] ?? "",
                    "--hmac", eab["hmac_key"] ?? "", "run"],
            environment: environment)
        #expect(reuse.status != 0, "a binding key works for one account only: \(reuse)")

        // eab list --json; eab remove: refused for the bound key, done for an unused one.
        let unused = try JSONSerialization.jsonObject(
            with: Data(try setup.ca.sandbox.run(["ca", "provisioner", "eab", "add", "bound", "--json"]).stdout.utf8)) as? [String: String] ?? [:]
        let listed = try setup.ca.sandbox.run(["ca", "provisioner", "eab", "list", "bound", "--json"])
        let entries = try JSONSerialization.jsonObject(with: Data(listed.stdout.utf8)) as? [[String: Any]] ?? []
        #expect(entries.count == 2 && entries.allSatisfy { $0["created_at"] is String && $0["hmac_key"] == nil }, "\(listed)")
        #expect(entries.contains { $0["kid"] as? String == eab["kid"] && $0["bound_account"] is String }, "\(listed)")
        #expect(entries.contains { $0["kid"] as? String == unused["kid"] && $0["bound_account"] == nil }, "\(listed)")
        let keep = try setup.ca.sandbox.run(["ca", "provisioner", "eab", "remove", eab["kid"] ?? ""])
        #expect(keep.status == 1 && keep.stderr.contains("already bound ACME account") && keep.stderr.contains("nothing was removed"), "\(keep)")
        let removed = try setup.ca.sandbox.run(["ca", "provisioner", "eab", "remove", unused["kid"] ?? ""])
        // A failed removal makes every check below fail too: stop here, with its output.
        try #require(removed.status == 0, "\(removed)\nlisted before: \(listed)")
        #expect(try setup.ca.sandbox.run(["ca", "provisioner", "eab", "remove", unused["kid"] ?? ""]).status == 1, "gone")
        let after = try setup.ca.sandbox.run(["ca", "provisioner", "eab", "list", "bound"]).stdout
        #expect(after.contains(eab["kid"] ?? "-") && !after.contains(unused["kid"] ?? "-"), "\(after)")
        let unusedKey = try runProcess(
            "/usr/bin/lego",
            base + ["--path", setup.file("lego-eab3"), "--email", "third@example.com", "--eab", "--kid", unused["kid"] ?? "",
                    "--hmac", unused["hmac_key"] ?? "", "run"],
            environment: environment)
        #expect(unusedKey.status != 0, "a removed key binds no account: \(unusedKey)")
    }
}
