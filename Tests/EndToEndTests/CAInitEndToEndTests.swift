import AutoSSLCore
import Foundation
import Synchronization
import Testing
import TestSupport

/// Runs the real binary with every directory in a temporary folder, and checks the result with
/// independent tools: openssl, pkilint and jwcrypto.
@Suite(.serialized) struct CAInitEndToEndTests {
    static let ecInit = ["ca", "init", "--non-interactive", "--name", "E2E CA", "--address", "127.0.0.1:9443", "--dns", "ca.e2e.internal"]

    func initialised() throws -> (Sandbox, ProcessResult) {
        let sandbox = Sandbox()
        let result = try sandbox.run(Self.ecInit)
        #expect(result.status == 0, "\(result)")
        return (sandbox, result)
    }

    @Test func certificatesVerifyStrictlyAndFingerprintMatchesOpenSSL() throws {
        let (sandbox, result) = try initialised()
        let root = sandbox.caDir + "/certs/root_ca.crt"
        let intermediate = sandbox.caDir + "/certs/intermediate_ca.crt"
        for cert in [root, intermediate] {
            let verify = try runProcess("openssl", ["verify", "-x509_strict", "-CAfile", root, cert])
            #expect(verify.status == 0, "\(verify)")
        }
        let fingerprint = try runProcess("openssl", ["x509", "-in", root, "-noout", "-fingerprint", "-sha256"])
        let expected = fingerprint.stdout.split(separator: "=").last!.trimmingCharacters(in: .whitespacesAndNewlines)
            .replacingOccurrences(of: ":", with: "").lowercased()
        #expect(expected.count == 64)
        #expect(result.stdout.contains("    \(expected)\n"), "fingerprint not printed: \(result.stdout)")
        #expect(result.stdout.contains("server enroll --ca-url https://127.0.0.1:9443 --fingerprint \(expected)"))
        #expect(result.stdout.contains("client trust --ca-url https://127.0.0.1:9443 --fingerprint \(expected)"))

        let text = try runProcess("openssl", ["x509", "-in", intermediate, "-noout", "-text"]).stdout
        #expect(text.contains("Subject: O = E2E CA, CN = E2E CA Intermediate CA"))
        #expect(text.contains("CA:TRUE, pathlen:0"))
        #expect(!text.lowercased().contains("sha1"))
        let rootText = try runProcess("openssl", ["x509", "-in", root, "-noout", "-text"]).stdout
        #expect(rootText.contains("NIST CURVE: P-384") && rootText.contains("ecdsa-with-SHA384"))
        #expect(rootText.contains("Subject: O = E2E CA, CN = E2E CA Root CA"))
    }

    @Test func keysOpenWithThePasswordOnlyAndModesAreTight() throws {
        let (sandbox, result) = try initialised()
        let passwordFile = sandbox.configDir + "/ca-password"
        #expect(result.stdout.contains(passwordFile))
        for key in ["root_ca_key", "intermediate_ca_key"] {
            let path = sandbox.caDir + "/secrets/" + key
            #expect(fileMode(path) == 0o600)
            let opened = try runProcess("openssl", ["pkey", "-in", path, "-passin", "file:" + passwordFile, "-noout"])
            #expect(opened.status == 0, "\(opened)")
            let wrong = try runProcess("openssl", ["pkey", "-in", path, "-passin", "pass:this-is-not-the-password", "-noout"])
            #expect(wrong.status != 0)
            let none = try runProcess("openssl", ["pkey", "-in", path, "-passin", "pass:", "-noout"])
            #expect(none.status != 0)
            #expect(try readFile(path).hasPrefix("-----BEGIN ENCRYPTED PRIVATE KEY-----"))
        }
        #expect(fileMode(sandbox.caDir + "/secrets") == 0o700)
        #expect(fileMode(passwordFile) == 0o600)
        #expect(fileMode(sandbox.configDir + "/provisioner-password") == 0o600)
        #expect(fileMode(sandbox.caDir + "/secrets/provisioner_admin.jwe") == 0o600)
        #expect(try readFile(passwordFile).trimmingCharacters(in: .newlines).count >= 16)
        // The CA key password and the enrollment password are separate secrets.
        #expect(try readFile(passwordFile) != (try readFile(sandbox.configDir + "/provisioner-password")))
    }

    @Test func caCertificatesPassPkilint() throws {
        let (sandbox, _) = try initialised()
        for cert in ["root_ca.crt", "intermediate_ca.crt"] {
            let lint = try runProcess("lint_pkix_cert", ["lint", "-s", "ERROR", sandbox.caDir + "/certs/" + cert])
            #expect(lint.status == 0, "pkilint on \(cert): \(lint)")
            #expect(!lint.stdout.contains("(ERROR)") && !lint.stdout.contains("(FATAL)"), "\(lint)")
            #expect(lint.stdout.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty, "\(lint)")
        }
    }

    @Test func provisionerKeyDecryptsWithJwcryptoAndMatchesConfig() throws {
        let (sandbox, _) = try initialised()
        let script = """
            import json, sys, yaml
            from jwcrypto import jwa, jwe, jwk
            jwa.default_max_pbkdf2_iterations = 2000000
            token = jwe.JWE()
            password = open(sys.argv[2]).read().splitlines()[0]
            token.deserialize(open(sys.argv[1]).read().strip(), key=jwk.JWK.from_password(password))
            private = jwk.JWK.from_json(token.payload)
            config = yaml.safe_load(open(sys.argv[3]))
            public = json.loads(config["ca"]["provisioners"][0]["public_key"])
            assert token.jose_header["alg"] == "PBES2-HS256+A128KW", token.jose_header
            assert token.jose_header["enc"] == "A256GCM", token.jose_header
            assert token.jose_header["p2c"] >= 600000, token.jose_header
            assert private.has_private
            assert json.loads(private.export_public())["x"] == public["x"]
            assert public["kid"] == private.thumbprint(), (public["kid"], private.thumbprint())
            assert "d" not in public
            print("ok")
            """
        let result = try runPython(script, arguments: [
            sandbox.caDir + "/secrets/provisioner_admin.jwe", sandbox.configDir + "/provisioner-password",
            sandbox.configDir + "/config.yaml",
        ])
        #expect(result.status == 0 && result.stdout == "ok\n", "\(result)")
    }

    /// Admin commands run at the same time take turns on config.yaml: four `ca provisioner add` at
    /// once all land, and a key change run next to an add keeps its new key in force (before, the
    /// add could write its older copy over the change, leaving the old key accepted).
    @Test func concurrentProvisionerChangesAllTakeEffect() throws {
        let (sandbox, _) = try initialised()
        let names = ["par1", "par2", "par3", "par4"]
        let results = Mutex<[String: ProcessResult]>([:])
        DispatchQueue.concurrentPerform(iterations: names.count) { index in
            let result = try? sandbox.run(["ca", "provisioner", "add", names[index], "--non-interactive"])
            results.withLock { $0[names[index]] = result }
        }
        let listed = try sandbox.run(["ca", "provisioner", "list", "--json"])
        let provisioners = try JSONSerialization.jsonObject(with: Data(listed.stdout.utf8)) as? [[String: Any]] ?? []
        let present = Set(provisioners.compactMap { $0["name"] as? String })
        for name in names {
            #expect(results.withLock { $0[name]?.status } == 0, "\(name): \(String(describing: results.withLock { $0[name] }))")
            #expect(present.contains(name), "\(name) was lost: \(listed.stdout)")
            let token = try sandbox.run(["ca", "token", "create", "--san", "t.internal", "--provisioner", name])
            #expect(token.status == 0, "\(name): \(token)")
        }

        let keyID = { () throws -> String? in
            let listed = try sandbox.run(["ca", "provisioner", "list", "--json"])
            let all = try JSONSerialization.jsonObject(with: Data(listed.stdout.utf8)) as? [[String: Any]] ?? []
            return all.first { $0["name"] as? String == "par1" }?["kid"] as? String
        }
        let before = try keyID()
        let both = Mutex<[ProcessResult?]>([nil, nil])
        DispatchQueue.concurrentPerform(iterations: 2) { index in
            let result = try? sandbox.run(
                index == 0 ? ["ca", "provisioner", "password", "par1", "--non-interactive"] : ["ca", "provisioner", "add", "par5", "--non-interactive"])
            both.withLock { $0[index] = result }
        }
        #expect(both.withLock { $0.allSatisfy { $0?.status == 0 } }, "\(both.withLock { $0 })")
        let after = try keyID()
        #expect(after != nil && after != before, "the key change was lost: \(String(describing: before)) → \(String(describing: after))")
        #expect(try sandbox.run(["ca", "token", "create", "--san", "t.internal", "--provisioner", "par1"]).status == 0)
        #expect(try sandbox.run(["ca", "token", "create", "--san", "t.internal", "--provisioner", "par5"]).status == 0)
    }

    @Test func aSecondInitLeavesTheCAByteForByteUnchanged() throws {
        let (sandbox, _) = try initialised()
        let before = try snapshotTree(sandbox.root.path)
        let again = try sandbox.run(Self.ecInit)
        #expect(again.status == 1, "\(again)")
        #expect(again.stderr.contains("already exists") && again.stderr.contains("--force"), "\(again)")
        #expect(try snapshotTree(sandbox.root.path) == before)
    }

    @Test func forceMovesTheOldCAAsideAndSaysWhere() throws {
        let (sandbox, first) = try initialised()
        let oldRoot = try readFile(sandbox.caDir + "/certs/root_ca.crt")
        let second = try sandbox.run(Self.ecInit + ["--force"])
        #expect(second.status == 0, "\(second)")
        let asides = try FileManager.default.contentsOfDirectory(atPath: sandbox.dataDir).filter { $0.hasPrefix("ca.replaced-") }
        #expect(asides.count == 1)
        let aside = sandbox.dataDir + "/" + asides[0]
        #expect(second.stdout.contains(aside))
        #expect(try readFile(aside + "/certs/root_ca.crt") == oldRoot)
        #expect(try readFile(aside + "/secrets/root_ca_key").hasPrefix("-----BEGIN ENCRYPTED PRIVATE KEY-----"))
        // The old key still opens with the old password, which was kept next to it.
        let opened = try runProcess("openssl", [
            "pkey", "-in", aside + "/secrets/root_ca_key", "-passin", "file:" + aside + "/previous-config/ca-password", "-noout",
        ])
        #expect(opened.status == 0, "\(opened)")
        #expect(first.stdout != second.stdout)
    }

    @Test func weakAndMissingPasswordsAreRefused() throws {
        let sandbox = Sandbox()
        let weak = try sandbox.run(
            ["ca", "init", "--address", "127.0.0.1:9443", "--password-file", "/dev/stdin", "--non-interactive"],
            stdin: "short-secret\n")
        #expect(weak.status == 2, "\(weak)")
        #expect(weak.stderr.contains("too short") && weak.stderr.contains("16"), "\(weak)")
        #expect(!weak.stderr.contains("short-secret"))
        #expect(!FileOperationsProbe.exists(sandbox.caDir))
        #expect(!FileOperationsProbe.exists(sandbox.configDir + "/provisioner-password"))

        let bothStdin = try sandbox.run([
            "ca", "init", "--address", "127.0.0.1:9443", "--password-file", "/dev/stdin",
            "--provisioner-password-file", "/dev/stdin",
        ], stdin: "a-long-enough-password\n")
        #expect(bothStdin.status == 2, "\(bothStdin)")

        let noTerminal = try sandbox.run(["ca", "init", "--address", "127.0.0.1:9443"])
        #expect(noTerminal.status == 2, "\(noTerminal)")
        #expect(noTerminal.stderr.contains("--non-interactive"), "\(noTerminal)")

        let missingFile = try sandbox.run(["ca", "init", "--address", "127.0.0.1:9443", "--password-file", "/nonexistent/pw"])
        #expect(missingFile.status == 2, "\(missingFile)")
        #expect(!FileOperationsProbe.exists(sandbox.caDir))

        // A directory or a file too big to be a password is a wrong argument too (exit 2), like a missing file.
        let directory = try sandbox.run(["ca", "init", "--address", "127.0.0.1:9443", "--non-interactive", "--password-file", sandbox.root.path])
        #expect(directory.status == 2 && directory.stderr.contains("is a directory"), "\(directory)")
        let big = sandbox.root.file("big.pw")
        try String(repeating: "a-long-enough-password\n", count: 4_000).write(toFile: big, atomically: true, encoding: .utf8)
        let tooBig = try sandbox.run(["ca", "init", "--address", "127.0.0.1:9443", "--non-interactive", "--password-file", big])
        #expect(tooBig.status == 2 && tooBig.stderr.contains("larger than"), "\(tooBig)")
        let endless = try sandbox.run(["ca", "init", "--address", "127.0.0.1:9443", "--non-interactive", "--password-file", "/dev/zero"])
        #expect(endless.status == 2 && endless.stderr.contains("too much to be a password file"), "\(endless)")
        #expect(!FileOperationsProbe.exists(sandbox.caDir))
    }

    @Test func givenPasswordsAreUsedAndNotStored() throws {
        let sandbox = Sandbox()
        let caPassword = try sandbox.root.write("ca.pw", "my-own-ca-password-1234\n")
        let result = try sandbox.run([
            "ca", "init", "--address", "127.0.0.1:9443", "--password-file", caPassword,
            "--provisioner-password-file", "/dev/stdin",
        ], stdin: "enrollment-password-5678\n")
        #expect(result.status == 0, "\(result)")
        #expect(!FileOperationsProbe.exists(sandbox.configDir + "/ca-password"))
        #expect(!FileOperationsProbe.exists(sandbox.configDir + "/provisioner-password"))
        #expect(!result.stdout.contains("my-own-ca-password") && !result.stdout.contains("enrollment-password"))
        let opened = try runProcess("openssl", [
            "pkey", "-in", sandbox.caDir + "/secrets/intermediate_ca_key", "-passin", "file:" + caPassword, "-noout",
        ])
        #expect(opened.status == 0, "\(opened)")
        let same = try sandbox.run([
            "ca", "init", "--force", "--address", "127.0.0.1:9443", "--password-file", caPassword,
            "--provisioner-password-file", caPassword,
        ])
        #expect(same.status == 2, "\(same)")
        #expect(same.stderr.contains("must differ"), "\(same)")
    }

    @Test func invalidArgumentsExitWith2() throws {
        let sandbox = Sandbox()
        for arguments in [
            ["ca", "init", "--non-interactive", "--key-type", "dsa"],
            ["ca", "init", "--non-interactive", "--cert-duration", "5x"],
            ["ca", "init", "--non-interactive", "--max-duration", "31d"],
            ["ca", "init", "--non-interactive", "--cert-duration", "1m"],
            ["ca", "init", "--non-interactive", "--address", "not-an-address"],
            ["ca", "init", "--non-interactive", "--dns", "bad_name"],
            ["ca", "init", "--non-interactive", "--provisioner", "a/b"],
            ["ca", "init", "--no-such-option"],
            ["no-such-command"],
        ] {
            let result = try sandbox.run(arguments)
            #expect(result.status == 2, "\(arguments): \(result)")
            #expect(!result.stderr.isEmpty)
        }
        #expect(!FileOperationsProbe.exists(sandbox.caDir))
    }

    @Test func rsaCA() throws {
        let sandbox = Sandbox()
        let result = try sandbox.run(["ca", "init", "--non-interactive", "--key-type", "rsa", "--address", "127.0.0.1:9443"])
        #expect(result.status == 0, "\(result)")
        let root = sandbox.caDir + "/certs/root_ca.crt"
        let rootText = try runProcess("openssl", ["x509", "-in", root, "-noout", "-text"]).stdout
        #expect(rootText.contains("Public-Key: (4096 bit)") && rootText.contains("sha256WithRSAEncryption"))
        let intermediate = sandbox.caDir + "/certs/intermediate_ca.crt"
        #expect(try runProcess("openssl", ["x509", "-in", intermediate, "-noout", "-text"]).stdout.contains("Public-Key: (2048 bit)"))
        #expect(try runProcess("openssl", ["verify", "-x509_strict", "-CAfile", root, intermediate]).status == 0)
        let key = try runProcess("openssl", [
            "pkey", "-in", sandbox.caDir + "/secrets/root_ca_key", "-passin", "file:" + sandbox.configDir + "/ca-password", "-noout",
        ])
        #expect(key.status == 0, "\(key)")
        for cert in [root, intermediate] {
            #expect(try runProcess("lint_pkix_cert", ["lint", "-s", "ERROR", cert]).status == 0)
        }
    }

    @Test func defaultAddressIsThisMachineOnPort9000() throws {
        let sandbox = Sandbox()
        let result = try sandbox.run(["ca", "init", "--non-interactive"])
        #expect(result.status == 0, "\(result)")
        let status = try sandbox.run(["ca", "status", "--json"])
        let json = try JSONSerialization.jsonObject(with: Data(status.stdout.utf8)) as? [String: Any]
        let addresses = json?["addresses"] as? [String] ?? []
        #expect(addresses.count == 1 && addresses[0].hasSuffix(":9000"), "\(addresses)")
        #expect(result.stdout.contains("Firewall:"))
    }

    /// The firewall is opened (or the rule printed) for the named networks only; an address outside
    /// them is called out; a range that is not one is refused before anything is created.
    @Test func firewallRulesAdmitOnlyTheNetworksNamed() throws {
        let sandbox = Sandbox()
        let bad = try sandbox.run(["ca", "init", "--non-interactive", "--address", "127.0.0.1:9443", "--firewall-allow-from", "10.0.0.0/33"])
        #expect(bad.status == 2 && bad.stderr.contains("10.0.0.0/33"), "\(bad)")
        #expect(!FileManager.default.fileExists(atPath: sandbox.caDir))

        let made = try sandbox.run([
            "ca", "init", "--non-interactive", "--address", "203.0.113.5:9443", "--firewall-allow-from", "10.1.0.0/16",
            "--firewall-allow-from", "fd00:1::/64",
        ])
        #expect(made.status == 0, "\(made)")
        let firewall = made.stdout.split(separator: "\n").filter { $0.contains("Firewall:") || $0.hasPrefix("    sudo") }.joined(separator: "\n")
        #expect(firewall.contains("warning: the CA listens on 203.0.113.5, outside 10.1.0.0/16, fd00:1::/64"), "\(made.stdout)")
        #expect(firewall.contains("10.1.0.0/16") && !firewall.contains("192.168.0.0/16"), "\(firewall)")
        #expect(!firewall.contains("ufw allow 9443/tcp") && !firewall.contains("--add-port"), "\(firewall)")
    }
}

/// Tiny helpers that do not go through the code under test.
enum FileOperationsProbe {
    static func exists(_ path: String) -> Bool { FileManager.default.fileExists(atPath: path) }
}
