import Foundation
import Testing
import TestSupport

/// `client trust` on this Debian machine's real trust store (root only), and on fake filesystems
/// for the other families.
@Suite(.serialized) struct ClientTrustEndToEndTests {
    static let systemBundle = "/etc/ssl/certs/ca-certificates.crt"

    func plainCurl(_ url: String) throws -> ProcessResult {
        try runProcess("curl", ["-sS", "-o", "/dev/null", "-w", "%{http_code}", url + "/health"])
    }

    func storeSnapshot() throws -> [String: String] {
        var snapshot = try snapshotTree("/usr/local/share/ca-certificates")
        snapshot["bundle"] = try readFile(Self.systemBundle)
        return snapshot
    }

    @Test(.enabled(if: geteuid() == 0, "changes the system trust store; needs root"))
    func trustMakesPlainCurlWorkAndUntrustPutsEverythingBack() throws {
        let ca = try RunningCA()
        let before = try storeSnapshot()
        defer {
            // Whatever happens, leave the machine's trust store as it was.
            _ = try? ca.sandbox.run(["client", "untrust", "--fingerprint", (try? ca.fingerprint) ?? ""])
        }
        #expect(try plainCurl(ca.url).status != 0)  // not trusted yet

        let wrong = try ca.sandbox.run(["client", "trust", "--ca-url", ca.url, "--fingerprint", String(repeating: "cd", count: 32)])
        #expect(wrong.status == 6, "\(wrong)")
        #expect(try storeSnapshot() == before)

        let trusted = try ca.sandbox.run(["client", "trust", "--ca-url", ca.url, "--fingerprint", try ca.fingerprint])
        #expect(trusted.status == 0, "\(trusted)")
        let curl = try plainCurl(ca.url)
        #expect(curl.status == 0 && curl.stdout == "200", "\(curl)")
        let again = try ca.sandbox.run(["client", "trust", "--ca-url", ca.url, "--fingerprint", try ca.fingerprint])
        #expect(again.status == 0 && again.stdout.contains("already trusted"), "\(again)")

        let status = try ca.sandbox.run(["client", "status", "--json", "--ca-url", ca.url])
        #expect(status.status == 0, "\(status)")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(status.stdout.utf8)) as? [String: Any])
        let roots = try #require(object["roots"] as? [[String: Any]])
        #expect(roots.contains { $0["fingerprint"] as? String == (try? ca.fingerprint) })
        #expect(object["verifies_with_system_trust"] as? Bool == true)

        let untrusted = try ca.sandbox.run(["client", "untrust"])
        #expect(untrusted.status == 0, "\(untrusted)")
        #expect(try plainCurl(ca.url).status != 0)
        #expect(try storeSnapshot() == before)
        let after = try ca.sandbox.run(["client", "status", "--ca-url", ca.url])
        #expect(after.status == 6 && after.stdout.contains("does NOT verify"), "\(after)")
        // A CA that does not answer is a network failure (5), not a verdict on the trust store.
        let down = try ca.sandbox.run(["client", "status", "--ca-url", "https://127.0.0.1:\(freeLoopbackPort())"])
        #expect(down.status == 5 && down.stdout.contains("could not be checked") && down.stdout.contains("connection refused"), "\(down)")
    }

    @Test func otherFamiliesOnAFakeFilesystem() throws {
        let sandbox = Sandbox()
        #expect(try sandbox.run(["ca", "init", "--non-interactive", "--name", "Fake FS", "--address", "127.0.0.1:9443"]).status == 0)
        let root = sandbox.caDir + "/certs/root_ca.crt"
        let fs = sandbox.root.file("rootfs")
        sandbox.extraEnvironment["AUTO_SSL_ROOT_FS"] = fs
        for (os, directory) in [("rhel", "/etc/pki/ca-trust/source/anchors"), ("suse", "/etc/pki/trust/anchors"),
                                ("arch", "/etc/ca-certificates/trust-source/anchors"), ("alpine", "/usr/local/share/ca-certificates")] {
            let trusted = try sandbox.run(["client", "trust", "--cert-file", root, "--os", os])
            #expect(trusted.status == 0, "\(os): \(trusted)")
            let files = try FileManager.default.contentsOfDirectory(atPath: fs + directory).filter { $0.hasPrefix("auto-ssl-fake-fs-") }
            #expect(files.count == 1, "\(os): \(files)")
            #expect(try readFile(fs + directory + "/" + files[0]) == (try readFile(root)))
            let listed = try sandbox.run(["client", "status", "--os", os, "--json"])
            #expect(listed.stdout.contains("Fake FS Root CA"), "\(listed)")
            #expect(try sandbox.run(["client", "untrust", "--os", os]).status == 0)
            #expect(try FileManager.default.contentsOfDirectory(atPath: fs + directory).filter { $0.hasPrefix("auto-ssl-") }.isEmpty)
        }
        // --nss writes $HOME's browser database (not the password database's home of this user),
        // and untrust takes the root out of the same one.
        if FileManager.default.fileExists(atPath: "/usr/bin/certutil") {
            let home = sandbox.root.file("home")
            try FileManager.default.createDirectory(atPath: home, withIntermediateDirectories: false)
            sandbox.extraEnvironment["HOME"] = home
            sandbox.extraEnvironment["SUDO_USER"] = ""
            let withNSS = try sandbox.run(["client", "trust", "--cert-file", root, "--os", "rhel", "--nss"])
            #expect(withNSS.status == 0 && withNSS.stdout.contains("NSS (browser)"), "\(withNSS)")
            let listed = try runProcess("certutil", ["-d", "sql:" + home + "/.pki/nssdb", "-L"])
            #expect(listed.stdout.contains("auto-ssl-fake-fs-"), "\(listed)")
            let other = try sandbox.run(["client", "untrust", "--os", "rhel", "--fingerprint", String(repeating: "0", count: 64)])
            #expect(other.status == 0 && other.stdout.contains("No auto-ssl root with fingerprint 0000"), "\(other)")
            #expect(try sandbox.run(["client", "untrust", "--os", "rhel"]).status == 0)
            #expect(!(try runProcess("certutil", ["-d", "sql:" + home + "/.pki/nssdb", "-L"]).stdout.contains("auto-ssl-")))
        }
        // A fingerprint given with --cert-file is checked too; a leaf is not a trust anchor.
        let mismatch = try sandbox.run(["client", "trust", "--cert-file", root, "--fingerprint", String(repeating: "0", count: 64), "--os", "rhel"])
        #expect(mismatch.status == 6, "\(mismatch)")
        #expect(try sandbox.run(["client", "trust", "--os", "rhel"]).status == 2)
    }

    @Test func printsScriptsAndServesATrustPage() throws {
        let ca = try RunningCA()
        let fingerprint = try ca.fingerprint
        let macos = try ca.sandbox.run(["client", "trust", "--ca-url", ca.url, "--fingerprint", fingerprint, "--print-script", "macos"])
        let rootPEM = try readFile(ca.rootPath)
        #expect(macos.status == 0 && macos.stdout.contains("EXPECTED=\"\(fingerprint)\"") && macos.stdout.contains(rootPEM))
        let windows = try ca.sandbox.run(["client", "trust", "--cert-file", ca.rootPath, "--print-script", "windows"])
        #expect(windows.status == 0 && windows.stdout.contains("$Expected = \"\(fingerprint)\""))
        for path in ["/", "/trust"] {
            let page = try runProcess("curl", ["-sf", "--cacert", ca.rootPath, ca.url + path])
            #expect(page.status == 0 && page.stdout.contains(fingerprint) && page.stdout.contains("Serve CA"), "\(page)")
            #expect(page.stdout.contains("/roots.pem") && page.stdout.contains("/roots.der") && page.stdout.contains("certutil -addstore Root"))
            #expect(page.stdout.contains("auto-ssl client trust --ca-url \(ca.url) --fingerprint \(fingerprint)"))
        }
        // The commands without auto-ssl: the root goes to a temporary file and its fingerprint is
        // printed; only the last line puts it where the system trusts it.
        let page = try runProcess("curl", ["-sf", "-D", "/dev/stderr", "--cacert", ca.rootPath, ca.url + "/trust"])
        let headers = page.stderr.lowercased()
        #expect(headers.contains("content-security-policy: default-src 'none'") && headers.contains("x-content-type-options: nosniff")
                && headers.contains("x-frame-options: deny"), "\(headers)")
        for store in ["/usr/local/share/ca-certificates/", "/etc/pki/ca-trust/source/anchors/", "/Library/Keychains/System.keychain"] {
            let block = try #require(page.stdout.components(separatedBy: "<pre>").first { $0.contains(store) }?
                .components(separatedBy: "</pre>").first?.replacingOccurrences(of: "&amp;", with: "&"), "\(store)")
            let lines = block.split(separator: "\n").map(String.init)
            #expect(lines.count == 3 && lines[2].contains(store) && !lines[0].contains(store) && !lines[1].contains(store), "\(block)")
            let fetched = try runProcess("sh", ["-c", lines[0] + "\n" + lines[1] + "\nrm -f \"$f\""])
            #expect(fetched.status == 0 && fetched.stdout.replacingOccurrences(of: ":", with: "").lowercased().contains(fingerprint), "\(store): \(fetched)")
        }
        let derHeaders = try runProcess("curl", ["-sf", "-D", "/dev/stdout", "-o", "/dev/null", "--cacert", ca.rootPath, ca.url + "/roots.der"])
        #expect(derHeaders.stdout.lowercased().contains("content-disposition: attachment; filename=\"root_ca.cer\""), "\(derHeaders)")
        let der = try runProcess("sh", ["-c", "curl -sf --cacert \(ca.rootPath) \(ca.url)/roots.der | openssl x509 -inform DER -noout -fingerprint -sha256"])
        #expect(der.stdout.replacingOccurrences(of: ":", with: "").lowercased().contains(fingerprint))
    }

    /// A CA name made of shell syntax reaches the printed scripts and the trust page as inert text.
    @Test func aHostileCANameRunsNothingFromTheScriptsOrThePage() throws {
        let hostile = "E $(touch P1) `touch P2` '\"\\ %PATH% <b>&x"
        let ca = try RunningCA(initArguments: ["--name", hostile])
        let fingerprint = try ca.fingerprint
        let work = ca.sandbox.root.file("script-run")
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)

        let macos = try ca.sandbox.run(["client", "trust", "--cert-file", ca.rootPath, "--print-script", "macos"])
        #expect(macos.status == 0, "\(macos)")
        let script = work + "/trust.sh"
        try macos.stdout.replacingOccurrences(of: "sudo security add-trusted-cert", with: "echo WOULD-INSTALL")
            .write(toFile: script, atomically: true, encoding: .utf8)
        let ran = try runProcess("sh", ["-c", "cd \(work) && bash trust.sh"])
        #expect(ran.status == 0 && ran.stdout.contains("WOULD-INSTALL"), "\(ran)")
        // The root's common name as auto-ssl shows subject names (RFC 4514 escapes for \ " < >).
        let shown = hostile.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
            .replacingOccurrences(of: "<", with: "\\<").replacingOccurrences(of: ">", with: "\\>") + " Root CA"
        #expect(ran.stdout.contains("Trusted \(shown) (\(fingerprint))."), "\(ran)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: work) == ["trust.sh"], "the name ran as code")

        let windows = try ca.sandbox.run(["client", "trust", "--cert-file", ca.rootPath, "--print-script", "windows"])
        #expect(windows.status == 0, "\(windows)")
        let quoted = "'" + shown.replacingOccurrences(of: "'", with: "''") + "'"
        #expect(windows.stdout.contains("$Name = \(quoted)\n"), "\(windows.stdout)")
        #expect(windows.stdout.components(separatedBy: "touch P1").count == 2)

        // The page escapes the name; a Host header made of shell syntax never reaches a command.
        let page = try runProcess("curl", ["-sf", "--cacert", ca.rootPath, ca.url + "/trust"])
        #expect(page.status == 0 && page.stdout.contains("E $(touch P1) `touch P2` &#39;&quot;\\ %PATH% &lt;b&gt;&amp;x"), "\(page)")
        #expect(!page.stdout.contains("<b>&x"))
        let spoofed = try runProcess("curl", ["-sf", "--cacert", ca.rootPath, "-H", "Host: x$(touch P3)", ca.url + "/trust"])
        #expect(spoofed.status == 0 && !spoofed.stdout.contains("touch P3"), "\(spoofed)")
        #expect(spoofed.stdout.contains("--ca-url https://CA-ADDRESS --fingerprint \(fingerprint)"))
    }
}
