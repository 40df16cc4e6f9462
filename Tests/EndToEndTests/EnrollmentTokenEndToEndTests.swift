import Foundation
import Testing
import TestSupport

/// `ca token create` on the CA and `server enroll --token-file` on a server: enrollment without the
/// provisioner password, a token that works once and for its names only.
@Suite(.serialized) struct EnrollmentTokenEndToEndTests {
    func create(_ ca: RunningCA, _ arguments: [String]) throws -> ProcessResult {
        try ca.sandbox.run(["ca", "token", "create"] + arguments)
    }

    @Test func aTokenEnrollsItsHostOnceWithoutThePassword() throws {
        let ca = try RunningCA()
        let fingerprint = try ca.fingerprint
        let made = try create(ca, ["--san", "web.tokens.test", "--san", "127.0.0.1", "--json"])
        try #require(made.status == 0, "\(made)")
        let object = try JSONSerialization.jsonObject(with: Data(made.stdout.utf8)) as? [String: Any] ?? [:]
        let token = try #require(object["token"] as? String)
        #expect(object["sans"] as? [String] == ["web.tokens.test", "127.0.0.1"])
        #expect(object["provisioner"] as? String == "admin")
        #expect(object["fingerprint"] as? String == fingerprint)
        #expect((object["ca_urls"] as? [String])?.contains(ca.url) == true, "\(object)")
        let expires = ISO8601DateFormatter().date(from: object["expires_at"] as? String ?? "")
        #expect(expires.map { abs($0.timeIntervalSinceNow - 3600) < 120 } == true, "one hour by default: \(object)")
        // The token's lifetime is what it says (the CA accepts up to a day).
        let payload = try #require(token.split(separator: ".").dropFirst().first)
        var base64 = payload.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while base64.count % 4 != 0 { base64 += "=" }
        let claims = try JSONSerialization.jsonObject(with: Data(base64Encoded: base64) ?? Data()) as? [String: Any] ?? [:]
        #expect(((claims["exp"] as? Int) ?? 0) - ((claims["nbf"] as? Int) ?? 0) == 3600, "\(claims)")

        // The host has the token and no password: it enrolls, with the token's names.
        let host = Sandbox()
        let tokenFile = host.root.file("token")
        try token.write(toFile: tokenFile, atomically: true, encoding: .utf8)
        let enrolled = try host.run([
            "server", "enroll", "--ca-url", ca.url, "--fingerprint", fingerprint, "--token-file", tokenFile, "--non-interactive", "--no-renewal",
        ])
        try #require(enrolled.status == 0, "\(enrolled)")
        let names = try runProcess("openssl", ["x509", "-in", host.certDir + "/server.crt", "-noout", "-ext", "subjectAltName"]).stdout
        #expect(names.contains("DNS:web.tokens.test") && names.contains("IP Address:127.0.0.1"), "\(names)")
        let config = try readFile(host.configDir + "/config.yaml")
        #expect(!config.contains(token) && !config.contains(String(token.suffix(40))), "the token is not recorded")
        // Renewal afterwards needs no token (mutual TLS).
        let renewed = try host.run(["server", "renew", "--force", "--exec", "true"])
        #expect(renewed.status == 0, "\(renewed)")

        // The same token a second time (a stolen copy) is refused by the CA, and writes nothing.
        let thief = Sandbox()
        try token.write(toFile: thief.root.file("token"), atomically: true, encoding: .utf8)
        let replayed = try thief.run([
            "server", "enroll", "--ca-url", ca.url, "--fingerprint", fingerprint, "--token-file", thief.root.file("token"), "--non-interactive",
            "--no-renewal",
        ])
        #expect(replayed.status != 0 && replayed.stderr.contains("already used"), "\(replayed)")
        #expect(!FileManager.default.fileExists(atPath: thief.certDir + "/server.crt"))

        // Other names than the token's are refused before anything is sent.
        let other = try create(ca, ["--san", "db.tokens.test"])
        try #require(other.status == 0, "\(other)")
        try other.stdout.write(toFile: thief.root.file("token2"), atomically: true, encoding: .utf8)
        let wrongNames = try thief.run([
            "server", "enroll", "--ca-url", ca.url, "--fingerprint", fingerprint, "--token-file", thief.root.file("token2"),
            "--san", "web.tokens.test", "--non-interactive", "--no-renewal",
        ])
        #expect(wrongNames.status == 2 && wrongNames.stderr.contains("the token is for db.tokens.test"), "\(wrongNames)")
        // A token and a password together make no sense.
        let both = try thief.run([
            "server", "enroll", "--ca-url", ca.url, "--fingerprint", fingerprint, "--token-file", thief.root.file("token2"),
            "--password-file", ca.sandbox.configDir + "/provisioner-password", "--non-interactive",
        ])
        #expect(both.status == 2, "\(both)")

        // Each token made is in the audit log, with its names.
        let made2 = try ca.auditEvents().filter { $0["event"] as? String == "token.created" }.compactMap { $0["sans"] as? [String] }
        #expect(made2 == [["web.tokens.test", "127.0.0.1"], ["db.tokens.test"]], "\(made2)")
        #expect(ca.stop() == 0)
    }

    @Test func tokensAreRefusedForBadNamesLifetimesProvisionersAndPasswords() throws {
        let ca = try RunningCA()
        let typo = try create(ca, ["--san", "10.0.0.256"])
        #expect(typo.status == 2 && typo.stdout.isEmpty, "\(typo)")
        let none = try create(ca, [])
        #expect(none.status == 2 && none.stderr.contains("--san"), "\(none)")
        for ttl in ["10s", "25h", "soon"] {
            let refused = try create(ca, ["--san", "a.tokens.test", "--ttl", ttl])
            #expect(refused.status == 2 && refused.stdout.isEmpty, "--ttl \(ttl): \(refused)")
        }
        let unknown = try create(ca, ["--san", "a.tokens.test", "--provisioner", "nobody"])
        #expect(unknown.status == 2 && unknown.stderr.contains("admin"), "names the provisioners there are: \(unknown)")
        let wrong = try ca.sandbox.run(
            ["ca", "token", "create", "--san", "a.tokens.test", "--password-file", "/dev/stdin"], stdin: "not the password at all\n")
        #expect(wrong.status == 6 && wrong.stdout.isEmpty && !wrong.stderr.contains("not the password"), "\(wrong)")
        let day = try create(ca, ["--san", "a.tokens.test", "--ttl", "24h"])
        #expect(day.status == 0, "\(day)")
        #expect(ca.stop() == 0)
    }
}
