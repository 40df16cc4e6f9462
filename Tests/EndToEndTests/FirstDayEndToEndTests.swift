import Foundation
import Testing
import TestSupport

/// What a first-time operator runs into (#22): the CA's URL checked against its certificate,
/// subcommand typos, `--help`, `-q/--quiet`, 405 for the wrong method, and the small ones.
@Suite struct FirstDayEndToEndTests {
    /// A serial as the CLI prints it: hexadecimal (colons between bytes allowed), one word.
    static func isHexSerial(_ text: some StringProtocol) -> Bool {
        let digits = text.filter { $0 != ":" }
        return digits.count >= 8 && digits.allSatisfy(\.isHexDigit)
    }

    /// `https://localhost:PORT` reaches a CA whose certificate names only 127.0.0.1: refused before
    /// any secret is used or file written (exit 6), naming the URLs the CA does answer to.
    @Test func aURLTheCAsCertificateDoesNotNameIsRefusedWithTheCAsURLs() throws {
        let ca = try RunningCA()
        let fingerprint = try ca.fingerprint
        let password = ca.sandbox.configDir + "/provisioner-password"
        let server = Sandbox()
        let wrongURL = "https://localhost:\(ca.port)"
        let enroll = try server.run([
            "server", "enroll", "--ca-url", wrongURL, "--fingerprint", fingerprint, "--password-file", password,
            "--non-interactive", "--san", "web.internal", "--no-renewal",
        ])
        #expect(enroll.status == 6, "\(enroll)")
        #expect(enroll.stderr.contains("does not name localhost"), "\(enroll)")
        #expect(enroll.stderr.contains("https://127.0.0.1:\(ca.port)"), "\(enroll)")
        // No answer from the CA's API (a 401 for the token's audience): the port number, which may
        // hold the digits 401, is left out of the comparison.
        let withoutPort = enroll.stderr.replacingOccurrences(of: String(ca.port), with: "PORT")
        #expect(!withoutPort.contains("401") && !withoutPort.contains("audience"), "\(enroll)")
        #expect(!FileManager.default.fileExists(atPath: server.certDir + "/server.crt"))

        let out = server.root
        let issue = try server.run([
            "cert", "issue", "--ca-url", wrongURL, "--fingerprint", fingerprint, "--san", "a.internal",
            "--out-cert", out.file("a.crt"), "--out-key", out.file("a.key"), "--password-file", password,
        ])
        #expect(issue.status == 6 && issue.stderr.contains("use one of the CA's URLs: https://127.0.0.1:\(ca.port)"), "\(issue)")
        #expect(!FileManager.default.fileExists(atPath: out.file("a.crt")))

        // The right URL works; -q prints the serial alone.
        let quiet = try server.run([
            "cert", "issue", "--ca-url", ca.url, "--fingerprint", fingerprint, "--san", "a.internal",
            "--out-cert", out.file("a.crt"), "--out-key", out.file("a.key"), "--password-file", password, "-q",
        ])
        #expect(quiet.status == 0, "\(quiet)")
        let serial = quiet.stdout.trimmingCharacters(in: .newlines)
        #expect(Self.isHexSerial(serial) && quiet.stderr.isEmpty, "\(quiet)")

        // `ca revoke` says what it did in words, without the audit log's JSON line.
        let revoked = try ca.sandbox.run(["ca", "revoke", serial])
        #expect(revoked.status == 0 && revoked.stdout.hasPrefix("Revoked"), "\(revoked)")
        #expect(!revoked.stderr.contains("{") && !revoked.stdout.contains("{"), "\(revoked)")

        // server enroll and server renew with -q: the serial alone.
        let enrolled = try server.run([
            "server", "enroll", "--ca-url", ca.url, "--fingerprint", fingerprint, "--password-file", password,
            "--non-interactive", "--san", "web.internal", "--no-renewal", "--quiet",
        ])
        #expect(enrolled.status == 0, "\(enrolled)")
        #expect(Self.isHexSerial(enrolled.stdout.trimmingCharacters(in: .newlines)), "\(enrolled)")
        let renewed = try server.run(["server", "renew", "--force", "-q"])
        #expect(renewed.status == 0, "\(renewed)")
        let lines = renewed.stdout.split(separator: "\n")
        #expect(lines.count == 1 && Self.isHexSerial(lines[0]), "\(renewed)")
        let notDue = try server.run(["server", "renew", "-q"])
        #expect(notDue.status == 0 && notDue.stdout.isEmpty, "\(notDue)")
    }

    /// A browser's GET /sign (or any other method on a POST endpoint) is 405 with Allow: POST and
    /// the JSON error shape.
    @Test func theWrongMethodOnAPostEndpointIs405() throws {
        let ca = try RunningCA()
        for (method, path) in [("GET", "/sign"), ("GET", "/1.0/sign"), ("PUT", "/renew"), ("DELETE", "/1.0/revoke"), ("HEAD", "/sign")] {
            var arguments = ["-s", "-i", "--cacert", ca.rootPath, "-X", method, ca.url + path]
            if method == "HEAD" { arguments = ["-s", "-I", "--cacert", ca.rootPath, ca.url + path] }
            let response = try runProcess("curl", arguments)
            let text = response.stdout.lowercased()
            #expect(text.hasPrefix("http/1.1 405"), "\(method) \(path): \(response)")
            #expect(text.contains("allow: post"), "\(method) \(path): \(response)")
            if method != "HEAD" {
                #expect(response.stdout.contains(#"{"status":405,"message":"#), "\(method) \(path): \(response)")
            }
        }
        let unknown = try runProcess("curl", ["-s", "-o", "/dev/null", "-w", "%{http_code}", "--cacert", ca.rootPath, ca.url + "/nothing"])
        #expect(unknown.stdout == "404")
    }

    @Test func subcommandTyposGetASuggestion() throws {
        let sandbox = Sandbox()
        for (arguments, suggestion) in [(["ca", "stauts"], "'status'"), (["server", "enrol"], "'enroll'"),
                                        (["ca", "provisioner", "ad", "x"], "'add'"), (["ca", "backup", "verfy", "f"], "'verify'"),
                                        (["clinet", "trust"], "'client'")] {
            let result = try sandbox.run(arguments)
            #expect(result.status == 2, "\(arguments): \(result)")
            #expect(result.stderr.contains("Did you mean \(suggestion)?"), "\(arguments): \(result)")
        }
        let far = try sandbox.run(["cert", "xyzzy"])
        #expect(far.status == 2 && far.stderr.contains("Unknown subcommand 'xyzzy'") && far.stderr.contains("issue, renew, revoke"), "\(far)")
        #expect(!far.stderr.contains("Did you mean"))
        // Option typos keep ArgumentParser's own suggestion.
        let option = try sandbox.run(["ca", "status", "--jsn"])
        #expect(option.status == 2 && option.stderr.contains("Did you mean '--json'?"), "\(option)")
        // Where it has none (a prefix of a longer option), ours: the command's nearest options.
        let cut = try sandbox.run(["client", "status", "--ca-ur", "https://ca.internal:9000"])
        #expect(cut.status == 2 && cut.stderr.contains("Unknown option '--ca-ur'") && cut.stderr.contains("Did you mean '--ca-url'?"), "\(cut)")
        #expect(cut.stderr.components(separatedBy: "Did you mean").count == 2, "one suggestion: \(cut)")
    }

    /// Every command's --help: EXAMPLES, nothing wider than 80 columns (but the USAGE line),
    /// required options shown as required, no option the command does not have.
    @Test func everyCommandsHelpHasExamplesAndWrapsCleanly() throws {
        let sandbox = Sandbox()
        var pending: [[String]] = [[]]
        var leaves = 0
        while let path = pending.popLast() {
            let help = try sandbox.run(path + ["--help"])
            #expect(help.status == 0, "\(path): \(help)")
            #expect(help.stdout.contains("\nEXAMPLES:\n  auto-ssl"), "\(path) has no examples:\n\(help.stdout)")
            for line in help.stdout.split(separator: "\n") where !line.hasPrefix("USAGE:") {
                #expect(line.count <= 80, "\(path): a line wider than 80 columns: \(line)")
            }
            let subcommands = Self.subcommands(in: help.stdout)
            if subcommands.isEmpty { leaves += 1 }
            pending += subcommands.map { path + [$0] }
        }
        #expect(leaves >= 35, "only \(leaves) commands found")

        let issue = try sandbox.run(["cert", "issue", "--help"]).stdout
        #expect(issue.contains(" --san <san> ...") && !issue.contains("[--san"), "\(issue)")
        let missing = try sandbox.run(["cert", "issue", "--ca-url", "https://x:1", "--fingerprint", "ab", "--out-cert", "a", "--out-key", "b"])
        #expect(missing.status == 2 && missing.stderr.contains("--san"), "\(missing)")
        let restore = try sandbox.run(["ca", "restore", "--help"]).stdout
        #expect(!restore.contains("--dest-type") && !restore.contains("--s3-bucket") && restore.contains("--s3-region"), "\(restore)")

        // Shell completion, documented in docs/operations.md.
        let completion = try sandbox.run(["--generate-completion-script", "bash"])
        #expect(completion.status == 0 && completion.stdout.contains("auto-ssl") && !completion.stdout.contains("EXAMPLES"))
    }

    /// The names under SUBCOMMANDS: in a help text.
    static func subcommands(in help: String) -> [String] {
        guard let start = help.range(of: "\nSUBCOMMANDS:\n") else { return [] }
        var names: [String] = []
        for line in help[start.upperBound...].split(separator: "\n", omittingEmptySubsequences: false) {
            guard line.hasPrefix("  ") else { break }
            if line.hasPrefix("   ") { continue }  // a wrapped abstract
            if let name = line.split(separator: " ").first { names.append(String(name)) }
        }
        return names
    }

    /// `ca init -q` prints the fingerprint alone; `ca backup -q` the backup's path; `ca restore -q`
    /// nothing on success.
    @Test func quietInitBackupAndRestore() throws {
        let sandbox = Sandbox()
        let created = try sandbox.run(["ca", "init", "--non-interactive", "--address", "127.0.0.1:9443", "-q"])
        #expect(created.status == 0, "\(created)")
        let fingerprint = created.stdout.trimmingCharacters(in: .newlines)
        #expect(fingerprint.count == 64 && fingerprint.allSatisfy(\.isHexDigit), "\(created)")
        let passphrase = try sandbox.root.write("backup.pass", "a-long-enough-backup-passphrase\n")
        let backup = try sandbox.run(["ca", "backup", "--output", sandbox.root.file("backups") + "/", "--passphrase-file", passphrase, "-q"])
        #expect(backup.status == 0, "\(backup)")
        let path = backup.stdout.trimmingCharacters(in: .newlines)
        #expect(!path.contains("\n") && FileManager.default.fileExists(atPath: path), "\(backup)")

        let elsewhere = Sandbox()
        let restored = try elsewhere.run(["ca", "restore", "--input", path, "--passphrase-file", passphrase, "--quiet"])
        #expect(restored.status == 0 && restored.stdout.isEmpty, "\(restored)")
        #expect(FileManager.default.fileExists(atPath: elsewhere.caDir + "/certs/root_ca.crt"))
    }

    /// The small ones: the ACME directory URL, the unit's Documentation=, `info`'s versions.
    @Test func acmeDirectoryUnitAndInfoSayTrueThings() throws {
        let sandbox = Sandbox()
        #expect(try sandbox.run(["ca", "init", "--non-interactive", "--address", "127.0.0.1:9443"]).status == 0)
        let added = try sandbox.run(["ca", "provisioner", "add", "acme-int", "--type", "acme"])
        #expect(added.status == 0, "\(added)")
        #expect(added.stdout.contains("Directory: https://127.0.0.1:9443/acme/acme-int/directory"), "\(added)")
        #expect(!added.stdout.contains("<CA address>"))

        #expect(try sandbox.run(["ca", "install-service"]).status == 0)
        let unit = try readFile(sandbox.systemdDir + "/auto-ssl-ca.service")
        #expect(!unit.contains("Documentation=https://github.com"), "\(unit)")

        let info = try sandbox.run(["info", "--json"])
        #expect(info.status == 0, "\(info)")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(info.stdout.utf8)) as? [String: Any])
        let tools = try #require(object["tools"] as? [[String: Any]])
        for tool in tools {
            let version = (tool["version"] as? String ?? "").lowercased()
            #expect(!version.hasPrefix("usage"), "\(tool)")
        }
    }

    /// `client trust --cert-file` with a chain takes its root; a chain without one, or an
    /// intermediate alone, is refused (exit 6) saying why.
    @Test func clientTrustTakesTheRootOfAChainAndRefusesAnIntermediate() throws {
        let sandbox = Sandbox()
        #expect(try sandbox.run(["ca", "init", "--non-interactive", "--name", "Chain", "--address", "127.0.0.1:9443"]).status == 0)
        let root = try readFile(sandbox.caDir + "/certs/root_ca.crt")
        let intermediate = try readFile(sandbox.caDir + "/certs/intermediate_ca.crt")
        sandbox.extraEnvironment["AUTO_SSL_ROOT_FS"] = sandbox.root.file("rootfs")

        let chain = try sandbox.root.write("chain.pem", intermediate + root, mode: 0o644)
        let trusted = try sandbox.run(["client", "trust", "--cert-file", chain, "--os", "rhel"])
        #expect(trusted.status == 0 && trusted.stdout.contains("Chain Root CA"), "\(trusted)")
        #expect(trusted.stderr.contains("holds 2 certificates"), "\(trusted)")

        let alone = try sandbox.root.write("intermediate.pem", intermediate, mode: 0o644)
        let refused = try sandbox.run(["client", "trust", "--cert-file", alone, "--os", "suse"])
        #expect(refused.status == 6 && refused.stderr.contains("is not a root"), "\(refused)")
        let noRoot = try sandbox.root.write("noroot.pem", intermediate + intermediate, mode: 0o644)
        let refusedChain = try sandbox.run(["client", "trust", "--cert-file", noRoot, "--os", "suse"])
        #expect(refusedChain.status == 6 && refusedChain.stderr.contains("none of them is a root"), "\(refusedChain)")
        #expect(!FileManager.default.fileExists(atPath: sandbox.root.file("rootfs") + "/etc/pki/trust/anchors"))
    }

    /// A password file this user may not read is a permission problem (exit 4), said as such.
    @Test(.enabled(if: geteuid() == 0, "runs the binary as nobody"))
    func anUnreadablePasswordFileIsAPermissionProblem() throws {
        let sandbox = Sandbox()
        chmod(sandbox.root.path, 0o755)
        let secret = try sandbox.root.write("enroll.pass", "some-provisioner-password\n", mode: 0o600)
        let out = sandbox.root.file("out")
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        chmod(out, 0o777)
        var environment = sandbox.environment
        environment["AUTO_SSL_CONFIG_DIR"] = sandbox.root.file("etc")
        let result = try runProcess(
            "/usr/bin/setpriv",
            ["--reuid=65534", "--regid=65534", "--clear-groups", autoSSLBinaryPath(), "cert", "issue", "--ca-url", "https://127.0.0.1:1",
             "--fingerprint", String(repeating: "ab", count: 32), "--san", "a.internal", "--out-cert", out + "/a.crt",
             "--out-key", out + "/a.key", "--password-file", secret],
            environment: environment, currentDirectory: "/")
        #expect(result.status == 4, "\(result)")
        #expect(result.stderr.contains("permission denied (owner root, mode 0600)"), "\(result)")
        #expect(!result.stderr.contains("AUTO_SSL_CONFIG_DIR") && result.stderr.contains("may not read it"), "\(result)")
    }
}
