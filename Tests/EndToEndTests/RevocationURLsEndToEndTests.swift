import Foundation
import Testing
import TestSupport

/// Revocation that clients find by themselves: leaves carry a CRL distribution point and an OCSP
/// URL (`ca init --revocation-address`), the CA answers OCSP (RFC 6960) on its plain-HTTP
/// revocation listener and on HTTPS, and the independent clients that check revocation (openssl
/// ocsp, openssl verify -crl_download, nginx's OCSP stapling) follow those URLs.
@Suite(.serialized) struct RevocationURLsEndToEndTests {
    final class Setup: @unchecked Sendable {
        let ca: RunningCA
        let revocationPort: Int
        let fingerprint: String
        var provisionerPassword: String { ca.sandbox.configDir + "/provisioner-password" }
        var intermediateFile: String { ca.sandbox.caDir + "/certs/intermediate_ca.crt" }
        var ocspURL: String { "http://127.0.0.1:\(revocationPort)/ocsp" }

        init() throws {
            let port = freeLoopbackPort()
            revocationPort = port
            ca = try RunningCA(initArguments: ["--revocation-address", "127.0.0.1:\(port)"])
            fingerprint = try ca.fingerprint
            // Both listeners are up before the test starts.
            for _ in 0..<100 {
                if (try? runProcess("curl", ["-sf", "-o", "/dev/null", "http://127.0.0.1:\(port)/crl"]))?.status == 0 { return }
                usleep(100_000)
            }
            throw TestFailure("the revocation listener did not answer: \(ca.log)")
        }

        func file(_ name: String) -> String { ca.sandbox.root.file(name) }

        /// Issues a certificate for `san`; returns the leaf's file (chain in NAME.crt, leaf alone in NAME.leaf.pem).
        func issue(_ name: String, san: String = "localhost") throws -> (leaf: String, serial: String) {
            let result = try ca.sandbox.run([
                "cert", "issue", "--ca-url", ca.url, "--fingerprint", fingerprint, "--san", san,
                "--out-cert", file(name + ".crt"), "--out-key", file(name + ".key"), "--password-file", provisionerPassword,
            ])
            guard result.status == 0 else { throw TestFailure("cert issue: \(result)") }
            let leafOnly = try readFile(file(name + ".crt")).components(separatedBy: "-----END CERTIFICATE-----\n")[0] + "-----END CERTIFICATE-----\n"
            try leafOnly.write(toFile: file(name + ".leaf.pem"), atomically: true, encoding: .utf8)
            let serial = try runProcess("openssl", ["x509", "-in", file(name + ".leaf.pem"), "-noout", "-serial"]).stdout
            return (file(name + ".leaf.pem"), String(serial.split(separator: "=").last ?? "").trimmingCharacters(in: .whitespacesAndNewlines))
        }

        /// `openssl ocsp` against `url`, verifying the answer under the root.
        func ocsp(_ leaf: String, url: String? = nil, extra: [String] = []) throws -> String {
            let result = try runProcess("openssl", [
                "ocsp", "-issuer", intermediateFile, "-cert", leaf, "-url", url ?? ocspURL, "-CAfile", ca.rootPath, "-resp_text",
                "-timeout", "10",
            ] + extra)
            return result.stdout + result.stderr
        }

        /// Runs `check` until it is true or `seconds` pass (`ca revoke` runs in another process; the
        /// server notices its revocation within seconds).
        func eventually(_ seconds: Double = 15, _ check: () throws -> Bool) rethrows -> Bool {
            let deadline = Date().addingTimeInterval(seconds)
            while Date() < deadline {
                if try check() { return true }
                usleep(250_000)
            }
            return try check()
        }
    }

    @Test func leavesCarryBothURLsAndPassPkilint() throws {
        let setup = try Setup()
        let (leaf, _) = try setup.issue("app", san: "app.internal")
        let text = try runProcess("openssl", ["x509", "-in", leaf, "-noout", "-ext", "crlDistributionPoints,authorityInfoAccess"]).stdout
        #expect(text.contains("URI:http://127.0.0.1:\(setup.revocationPort)/crl"), "\(text)")
        #expect(text.contains("OCSP - URI:http://127.0.0.1:\(setup.revocationPort)/ocsp"), "\(text)")
        let lint = try runProcess("lint_pkix_cert", ["lint", "-s", "ERROR", leaf])
        #expect(lint.status == 0 && lint.stdout.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty, "\(lint)")
        // The plain-HTTP listener serves revocation only: nothing that issues or authenticates.
        for path in ["/sign", "/roots", "/provisioners", "/health", "/acme/acme/directory"] {
            let status = try runProcess("curl", ["-s", "-o", "/dev/null", "-w", "%{http_code}", "http://127.0.0.1:\(setup.revocationPort)\(path)"])
            #expect(status.stdout == "404", "\(path): \(status)")
        }
    }

    @Test func opensslOCSPReportsGoodThenRevokedWithTheReasonAndTheNonceRoundTrips() throws {
        let setup = try Setup()
        let (leaf, serial) = try setup.issue("app")
        let good = try setup.ocsp(leaf)
        #expect(good.contains("Response verify OK"), "\(good)")
        #expect(good.contains("\(leaf): good"), "\(good)")
        // openssl sends a nonce by default and warns when the answer does not echo it.
        #expect(good.contains("OCSP Nonce") && !good.contains("WARNING"), "\(good)")
        #expect(good.contains("Next Update:"), "\(good)")
        // The HTTPS listener answers the same.
        let https = try setup.ocsp(leaf, url: setup.ca.url + "/ocsp", extra: ["-verify_other", setup.intermediateFile])
        #expect(https.contains("\(leaf): good") && https.contains("Response verify OK"), "\(https)")

        let revoked = try setup.ca.sandbox.run(["ca", "revoke", serial, "--reason-code", "1", "--reason", "key compromise"])
        #expect(revoked.status == 0, "\(revoked)")
        var last = ""
        let sawRevoked = try setup.eventually {
            last = try setup.ocsp(leaf)
            return last.contains("\(leaf): revoked")
        }
        #expect(sawRevoked, "\(last)")
        #expect(last.contains("Reason: keyCompromise") && last.contains("Revocation Time:") && last.contains("Response verify OK"), "\(last)")
        // A serial this CA never issued is unknown.
        let stranger = try RunningCA()
        let other = try stranger.sandbox.run([
            "cert", "issue", "--ca-url", stranger.url, "--fingerprint", try stranger.fingerprint, "--san", "x.test",
            "--out-cert", setup.file("other.crt"), "--out-key", setup.file("other.key"), "--password-file",
            stranger.sandbox.configDir + "/provisioner-password",
        ])
        #expect(other.status == 0, "\(other)")
        let unknown = try runProcess("openssl", [
            "ocsp", "-issuer", setup.intermediateFile, "-cert", setup.file("other.crt"), "-url", setup.ocspURL, "-CAfile",
            setup.ca.rootPath,
        ])
        #expect((unknown.stdout + unknown.stderr).contains(": unknown"), "\(unknown)")
    }

    @Test func garbageGetsMalformedRequestAndTheCAKeepsServing() throws {
        let setup = try Setup()
        let (leaf, _) = try setup.issue("app")
        let garbage = try setup.ca.sandbox.root.writeData("garbage.bin", Array("not an OCSP request \u{0}\u{1}\u{2}".utf8) + [0x30, 0x84, 0xFF, 0xFF, 0xFF, 0xFF])
        let big = try setup.ca.sandbox.root.writeData("big.bin", [0x30, 0x83, 0x10, 0x00, 0x00] + [UInt8](repeating: 0x41, count: 1 << 20))
        for (body, url) in [(garbage, setup.ocspURL), (big, setup.ocspURL), (garbage, setup.ca.url + "/ocsp")] {
            let out = setup.file("answer.der")
            let posted = try runProcess("curl", [
                "-s", "--cacert", setup.ca.rootPath, "-o", out, "-w", "%{http_code} %{content_type}", "-H",
                "Content-Type: application/ocsp-request", "--data-binary", "@" + body, url,
            ])
            #expect(posted.stdout == "200 application/ocsp-response", "\(posted)")
            let text = try runProcess("openssl", ["ocsp", "-respin", out, "-resp_text", "-noverify"])
            #expect((text.stdout + text.stderr).contains("malformedrequest"), "\(text)")
        }
        // An error answer is about the request, not a certificate: no cache may keep it.
        let malformedGet = try runProcess(
            "curl", ["-s", "-D", setup.file("get.headers"), "-o", setup.file("get.der"), "http://127.0.0.1:\(setup.revocationPort)/ocsp/!!!notbase64"])
        #expect(malformedGet.status == 0)
        let errorHeaders = try readFile(setup.file("get.headers")).lowercased()
        #expect(errorHeaders.contains("cache-control: no-store") && !errorHeaders.contains("max-age"), "\(errorHeaders)")
        #expect(try runProcess("openssl", ["ocsp", "-respin", setup.file("get.der"), "-resp_text", "-noverify"]).stdout.contains("malformedrequest"))
        let good = try setup.ocsp(leaf)
        #expect(good.contains("\(leaf): good"), "still serving: \(good)")
        let health = try runProcess("curl", ["-sf", "--cacert", setup.ca.rootPath, setup.ca.url + "/health"])
        #expect(health.stdout == #"{"status":"ok"}"#, "\(health)")
    }

    @Test func theGetFormAnswersLikePost() throws {
        let setup = try Setup()
        let (leaf, _) = try setup.issue("app")
        let request = setup.file("request.der")
        let made = try runProcess("openssl", ["ocsp", "-issuer", setup.intermediateFile, "-cert", leaf, "-no_nonce", "-reqout", request])
        #expect(made.status == 0, "\(made)")
        let base64 = try #require(FileManager.default.contents(atPath: request)).base64EncodedString()
        let encoded = try #require(base64.addingPercentEncoding(withAllowedCharacters: .alphanumerics))
        for url in ["http://127.0.0.1:\(setup.revocationPort)/ocsp/" + encoded, setup.ca.url + "/ocsp/" + encoded] {
            let out = setup.file("get.der")
            let fetched = try runProcess("curl", ["-sf", "--cacert", setup.ca.rootPath, "-o", out, "-w", "%{content_type}", url])
            #expect(fetched.stdout == "application/ocsp-response", "\(fetched)")
            let checked = try runProcess("openssl", [
                "ocsp", "-respin", out, "-issuer", setup.intermediateFile, "-cert", leaf, "-CAfile", setup.ca.rootPath, "-no_nonce",
            ])
            #expect((checked.stdout + checked.stderr).contains("\(leaf): good"), "\(url): \(checked)")
        }
    }

    @Test func opensslVerifyDownloadsTheCRLFromTheDistributionPointAndRefusesARevokedCertificate() throws {
        let setup = try Setup()
        let (leaf, serial) = try setup.issue("app")
        func verify() throws -> ProcessResult {
            try runProcess("openssl", [
                "verify", "-crl_check", "-crl_download", "-CAfile", setup.ca.rootPath, "-untrusted", setup.intermediateFile, leaf,
            ])
        }
        let before = try verify()
        #expect(before.status == 0 && before.stdout.contains(": OK"), "\(before)")
        #expect(try setup.ca.sandbox.run(["ca", "revoke", serial, "--reason-code", "4"]).status == 0)
        var last = before
        let refused = try setup.eventually {
            last = try verify()
            return last.status != 0
        }
        #expect(refused && (last.stdout + last.stderr).contains("certificate revoked"), "\(last)")
    }

    @Test func nginxStaplesTheCAsOCSPResponse() throws {
        let setup = try Setup()
        _ = try setup.issue("web")
        let directory = setup.file("nginx")
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let trusted = try setup.ca.sandbox.root.write(
            "trusted.pem", try readFile(setup.ca.rootPath) + readFile(setup.intermediateFile), mode: 0o644)
        let port = freeLoopbackPort()
        let config = """
            daemon off;
            pid \(directory)/nginx.pid;
            error_log \(directory)/error.log info;
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
                    ssl_certificate \(setup.file("web.crt"));
                    ssl_certificate_key \(setup.file("web.key"));
                    ssl_stapling on;
                    ssl_stapling_verify on;
                    ssl_trusted_certificate \(trusted);
                    location / { return 200 "stapled\\n"; }
                }
            }
            """
        try config.write(toFile: directory + "/nginx.conf", atomically: true, encoding: .utf8)
        let nginx = Process()
        nginx.executableURL = URL(fileURLWithPath: "/usr/sbin/nginx")
        nginx.arguments = ["-c", directory + "/nginx.conf", "-e", directory + "/error.log"]
        nginx.standardInput = FileHandle.nullDevice
        nginx.standardOutput = FileHandle.nullDevice
        nginx.standardError = FileHandle.nullDevice
        try nginx.run()
        defer {
            if nginx.isRunning {
                kill(nginx.processIdentifier, SIGQUIT)
                nginx.waitUntilExit()
            }
        }
        // nginx fetches the response on the first handshakes and staples it once it has it.
        var last = ""
        let stapled = try setup.eventually(30) {
            let result = try runProcess("sh", [
                "-c", "openssl s_client -connect 127.0.0.1:\(port) -servername localhost -status -CAfile \(setup.ca.rootPath) </dev/null 2>&1",
            ])
            last = result.stdout
            return last.contains("OCSP Response Status: successful")
        }
        #expect(stapled, "\(last)\n\((try? readFile(directory + "/error.log")) ?? "")")
        #expect(last.contains("Cert Status: good") && last.contains("Verify return code: 0 (ok)"), "\(last)")
    }
}
