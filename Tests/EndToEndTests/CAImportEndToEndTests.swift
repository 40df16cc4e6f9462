import Foundation
import Testing
import TestSupport

/// `ca import` through the real binary, from a step-ca directory built by independent tools
/// (Resources/make_step_ca.py: openssl keys and certificates, a jwcrypto JWE, step-ca's ca.json
/// schema) and from a backup made exactly as the original bash auto-ssl made it.
@Suite(.serialized) struct CAImportEndToEndTests {
    static let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Resources/make_step_ca.py").path
    static let caPassword = "step-ca-password-0123456789"
    static let provisionerPassword = "provisioner-password-0123456789"

    struct Fixture {
        let directory: String
        let passwordFile: String
        let provisionerPasswordFile: String
        let rootFingerprint: String
        let leafCert: String?
        let leafKey: String?
    }

    static func makeStepCA(in sandbox: Sandbox, name: String = "step", keyFormat: String = "legacy", maxDuration: String = "720h0m0s", leaf: Bool = false, samePasswords: Bool = false) throws -> Fixture {
        let passwordFile = try sandbox.root.write(name + "-pw", caPassword + "\n")
        let provisionerPasswordFile = samePasswords ? passwordFile : try sandbox.root.write(name + "-ppw", provisionerPassword + "\n")
        let directory = sandbox.root.file(name)
        var arguments = [script, directory, "--password-file", passwordFile, "--provisioner-password-file", provisionerPasswordFile,
                         "--key-format", keyFormat, "--max-duration", maxDuration]
        if leaf { arguments += ["--leaf-dir", sandbox.root.file(name + "-leaf")] }
        let made = try runProcess("python3", arguments)
        guard made.status == 0, let object = try JSONSerialization.jsonObject(with: Data(made.stdout.utf8)) as? [String: Any],
              let fingerprint = object["root_fingerprint"] as? String else {
            throw TestFailure("make_step_ca.py failed: \(made)")
        }
        return Fixture(
            directory: directory, passwordFile: passwordFile, provisionerPasswordFile: provisionerPasswordFile,
            rootFingerprint: fingerprint, leafCert: object["leaf_cert"] as? String, leafKey: object["leaf_key"] as? String)
    }

    @Test func stepCAWithLegacyKeysImportsServesIssuesAndRenewsWhatStepCAIssued() throws {
        let sandbox = Sandbox()
        let step = try Self.makeStepCA(in: sandbox, leaf: true)
        let before = try snapshotTree(step.directory)
        let port = freeLoopbackPort()
        let imported = try sandbox.run([
            "ca", "import", "--step-ca", step.directory, "--password-file", step.passwordFile,
            "--provisioner-password-file", step.provisionerPasswordFile, "--address", "127.0.0.1:\(port)",
        ])
        #expect(imported.status == 0, "\(imported)")
        let out = imported.stdout
        #expect(out.contains("root fingerprint \(step.rootFingerprint)"), "\(imported)")
        #expect(out.contains("JWK provisioner \"admin\"") && out.contains("the provisioner password opens it"), "\(imported)")
        #expect(out.contains("ACME provisioner \"acme\": http-01, dns-01, tls-alpn-01"), "\(imported)")
        #expect(out.contains("key re-encrypted (was traditional PEM (AES-256-CBC))"), "\(imported)")
        // step-ca's P-256 root is kept, and said to be weaker than the roots auto-ssl makes.
        #expect(out.contains("the root's key is P-256, weaker than the P-384 or RSA 4096"), "\(imported)")
        // What is not carried over is named, not dropped.
        for named in ["provisioner \"Google\" of type OIDC", "provisioner \"sshpop\" of type SSHPOP", "the badgerv2 database",
                      "templates/", "tls (cipher suites", "authority.backdate"] {
            #expect(out.contains(named), "\(named) not named:\n\(imported)")
        }
        // The OIDC client secret in ca.json is never repeated.
        #expect(!out.contains("udTrOT3gzrO7W9fDPgZQLfYJ") && !imported.stderr.contains("udTrOT3gzrO7W9fDPgZQLfYJ"))
        #expect(!out.contains(Self.caPassword) && !out.contains(Self.provisionerPassword))
        // step-ca's files are left exactly as they were.
        #expect(try snapshotTree(step.directory) == before)
        // Our key format, under the CA password; durations mapped (the provisioner's 12h default kept).
        let key = sandbox.caDir + "/secrets/intermediate_ca_key"
        #expect(try readFile(key).hasPrefix("-----BEGIN ENCRYPTED PRIVATE KEY-----"))
        #expect(fileMode(key) == 0o600)
        #expect(try runProcess("openssl", ["pkey", "-in", key, "-passin", "file:" + step.passwordFile, "-noout"]).status == 0)
        // The root's first CRL, as ca init writes it: number 1, empty, signed by the imported root.
        let rootCRL = try runProcess("openssl", [
            "crl", "-in", sandbox.caDir + "/certs/root_ca.crl", "-inform", "DER", "-CAfile", sandbox.caDir + "/certs/root_ca.crt", "-noout", "-crlnumber",
        ])
        #expect(rootCRL.status == 0 && rootCRL.stdout.contains("crlNumber=0x01") && rootCRL.stderr.contains("verify OK"), "\(rootCRL)")
        let config = try readFile(sandbox.configDir + "/config.yaml")
        #expect(config.contains("default_duration: 24h") && config.contains("max_duration: 720h") && config.contains("default_duration: 12h"), "\(config)")
        #expect(config.contains("max_duration: 48h"), "\(config)")

        let ca = try RunningCA(serving: sandbox, port: port, arguments: ["--password-file", step.passwordFile])
        defer { _ = ca.stop() }
        // The served root is step-ca's root.
        let roots = try runProcess("curl", ["-sf", "--cacert", step.directory + "/certs/root_ca.crt", ca.url + "/roots.pem"])
        #expect(roots.status == 0, "\(roots)")
        #expect(roots.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
            == (try readFile(step.directory + "/certs/root_ca.crt")).trimmingCharacters(in: .whitespacesAndNewlines))
        // A new certificate with step-ca's provisioner and its password.
        let out2 = sandbox.root
        let issued = try sandbox.run([
            "cert", "issue", "--ca-url", ca.url, "--fingerprint", step.rootFingerprint, "--san", "new.step.internal",
            "--provisioner", "admin", "--password-file", step.provisionerPasswordFile,
            "--out-cert", out2.file("new.crt"), "--out-key", out2.file("new.key"),
        ])
        #expect(issued.status == 0, "\(issued)\n\(ca.log)")
        let chain = ["-CAfile", step.directory + "/certs/root_ca.crt", "-untrusted", step.directory + "/certs/intermediate_ca.crt"]
        #expect(try runProcess("openssl", ["verify"] + chain + [out2.file("new.crt")]).status == 0)
        // A certificate step-ca issued (signed by the same intermediate) renews over mutual TLS.
        let leafCert = try #require(step.leafCert), leafKey = try #require(step.leafKey)
        let renewed = try sandbox.run([
            "cert", "renew", "--ca-url", ca.url, "--fingerprint", step.rootFingerprint, "--cert", leafCert, "--key", leafKey,
            "--out-cert", out2.file("renewed.crt"),
        ])
        #expect(renewed.status == 0, "\(renewed)\n\(ca.log)")
        #expect(try runProcess("openssl", ["verify"] + chain + [out2.file("renewed.crt")]).status == 0)
        let text = try runProcess("openssl", ["x509", "-in", out2.file("renewed.crt"), "-noout", "-ext", "subjectAltName"]).stdout
        #expect(text.contains("DNS:old.step.internal"), "\(text)")
        // The renewed certificate is recorded now.
        let list = try sandbox.run(["ca", "certs", "list", "--json"])
        #expect(list.stdout.contains("old.step.internal") && list.stdout.contains("new.step.internal"), "\(list)")
        // Its holder can revoke it too, though this CA never issued it: it is recorded from the
        // presented certificate, and its revocation (with the renewed one, which has its key) is on the CRL.
        let revoked = try sandbox.run([
            "cert", "revoke", "--ca-url", ca.url, "--fingerprint", step.rootFingerprint, "--cert", leafCert, "--key", leafKey,
            "--reason-code", "1", "--reason", "key compromise",
        ])
        #expect(revoked.status == 0, "\(revoked)\n\(ca.log)")
        let crl = try runProcess("sh", ["-c", "curl -sf --cacert '\(step.directory)/certs/root_ca.crt' '\(ca.url)/crl' | openssl crl -inform DER -noout -text"])
        for certificate in [leafCert, out2.file("renewed.crt")] {
            let serial = try runProcess("openssl", ["x509", "-in", certificate, "-noout", "-serial"]).stdout
                .split(separator: "=").last.map { String($0).trimmingCharacters(in: .whitespacesAndNewlines) } ?? "?"
            #expect(crl.stdout.contains(String(serial.drop { $0 == "0" })), "\(serial) not on the CRL: \(crl)")
        }
    }

    @Test func wrongPasswordsTooLongDurationsAndAnExistingCAChangeNothing() throws {
        let sandbox = Sandbox()
        let step = try Self.makeStepCA(in: sandbox, keyFormat: "pkcs8")
        #expect(try readFile(step.directory + "/secrets/intermediate_ca_key").hasPrefix("-----BEGIN ENCRYPTED PRIVATE KEY-----"))
        let wrong = try sandbox.root.write("wrong", "not-the-step-ca-password-at-all\n")
        let before = try snapshotTree(sandbox.root.path)

        let wrongCA = try sandbox.run([
            "ca", "import", "--step-ca", step.directory, "--password-file", wrong, "--address", "127.0.0.1:9446",
        ])
        #expect(wrongCA.status == 1 && wrongCA.stderr.contains("does not open step-ca's intermediate key"), "\(wrongCA)")
        let wrongProvisioner = try sandbox.run([
            "ca", "import", "--step-ca", step.directory, "--password-file", step.passwordFile,
            "--provisioner-password-file", wrong, "--address", "127.0.0.1:9446",
        ])
        #expect(wrongProvisioner.status == 1 && wrongProvisioner.stderr.contains("opens none of the JWK provisioners"), "\(wrongProvisioner)")
        #expect(!wrongProvisioner.stderr.contains("not-the-step-ca-password-at-all"))
        #expect(try snapshotTree(sandbox.root.path) == before)
        #expect(!FileManager.default.fileExists(atPath: sandbox.caDir) && !FileManager.default.fileExists(atPath: sandbox.configDir + "/config.yaml"))

        // step-ca allowed 90 days: refused unless --clamp-durations.
        let long = try Self.makeStepCA(in: sandbox, name: "long", maxDuration: "2160h0m0s")
        let snapshot = try snapshotTree(sandbox.root.path)
        let refused = try sandbox.run(["ca", "import", "--step-ca", long.directory, "--password-file", long.passwordFile, "--address", "127.0.0.1:9446"])
        #expect(refused.status == 1 && refused.stderr.contains("2160h") && refused.stderr.contains("--clamp-durations"), "\(refused)")
        #expect(try snapshotTree(sandbox.root.path) == snapshot)
        let clamped = try sandbox.run([
            "ca", "import", "--step-ca", long.directory, "--password-file", long.passwordFile, "--address", "127.0.0.1:9446", "--clamp-durations",
        ])
        #expect(clamped.status == 0 && clamped.stdout.contains("lowered to 720h"), "\(clamped)")
        #expect(try readFile(sandbox.configDir + "/config.yaml").contains("max_duration: 720h"))
        // The provisioner key was kept but not verified: the output says so.
        #expect(clamped.stdout.contains("not verified (no provisioner password was given)"), "\(clamped)")

        // A CA now exists: a second import is refused and changes nothing; --force moves it aside.
        let existing = try snapshotTree(sandbox.root.path)
        let again = try sandbox.run(["ca", "import", "--step-ca", step.directory, "--password-file", step.passwordFile, "--address", "127.0.0.1:9446"])
        #expect(again.status == 1 && again.stderr.contains("a CA already exists"), "\(again)")
        #expect(try snapshotTree(sandbox.root.path) == existing)
        let forced = try sandbox.run([
            "ca", "import", "--step-ca", step.directory, "--password-file", step.passwordFile, "--address", "127.0.0.1:9446", "--force",
        ])
        #expect(forced.status == 0 && forced.stdout.contains("The previous CA was moved to"), "\(forced)")
        #expect(forced.stdout.contains("key re-encrypted (was PKCS#8)"), "\(forced)")
        let status = try sandbox.run(["ca", "status", "--json"])
        #expect(status.stdout.contains(step.rootFingerprint), "\(status)")
    }

    @Test func backupOfTheOriginalToolImportsWithItsStoredPassword() throws {
        let sandbox = Sandbox()
        // The original `ca backup`: metadata.json, a copy of $STEPPATH and of /etc/auto-ssl (with
        // ca-password written by printf '%s', the provisioner password being the same), tar czf, openssl enc.
        let tree = TemporaryDirectory("auto-ssl-original")
        let step = try Self.makeStepCA(in: sandbox, name: "orig", samePasswords: true)
        let copied = try runProcess("cp", ["-a", step.directory, tree.file("step-ca")])
        #expect(copied.status == 0)
        try FileManager.default.createDirectory(atPath: tree.file("config"), withIntermediateDirectories: true)
        _ = try tree.write("config/ca-password", Self.caPassword)
        _ = try tree.write("config/config.yaml", "ca:\n  url: https://10.0.0.5:9000\n  fingerprint: \(step.rootFingerprint)\n  name: Internal CA\n  steppath: /etc/step-ca\n\ndefaults:\n  cert_duration: 168h\n  max_cert_duration: 720h\n")
        _ = try tree.write("metadata.json", "{\n    \"version\": \"1.2.0\",\n    \"timestamp\": \"2025-11-01T02:00:00Z\",\n    \"ca_url\": \"https://10.0.0.5:9000\",\n    \"ca_name\": \"Internal CA\",\n    \"hostname\": \"ca01\",\n    \"ip_address\": \"10.0.0.5\"\n}\n")
        let passphraseFile = try sandbox.root.write("backup-pass", "original tool backup passphrase\n")
        let archive = tree.file("backup.tar.gz")
        #expect(try runProcess("tar", ["-czf", archive, "-C", tree.path, "metadata.json", "step-ca", "config"]).status == 0)
        let backup = sandbox.root.file("ca-backup.enc")
        let encrypted = try runProcess("openssl", ["enc", "-aes-256-cbc", "-salt", "-pbkdf2", "-in", archive, "-out", backup, "-pass", "file:" + passphraseFile])
        #expect(encrypted.status == 0, "\(encrypted)")

        let before = try snapshotTree(sandbox.root.path)
        let wrong = try sandbox.root.write("wrong-pass", "this is not the passphrase\n")
        let refused = try sandbox.run(["ca", "import", "--auto-ssl-backup", backup, "--passphrase-file", wrong, "--address", "127.0.0.1:9447"])
        #expect(refused.status == 1, "\(refused)")
        var after = try snapshotTree(sandbox.root.path)
        after.removeValue(forKey: "wrong-pass")
        #expect(after == before)

        let port = freeLoopbackPort()
        let imported = try sandbox.run(["ca", "import", "--auto-ssl-backup", backup, "--passphrase-file", passphraseFile, "--address", "127.0.0.1:\(port)"])
        #expect(imported.status == 0, "\(imported)")
        #expect(imported.stdout.contains("CA password from the backup's config/ca-password"), "\(imported)")
        #expect(imported.stdout.contains("ca_name Internal CA") && imported.stdout.contains("the provisioner password opens it"), "\(imported)")
        #expect(imported.stdout.contains("the provisioner password is the CA key password"), "\(imported)")
        #expect(try readFile(sandbox.configDir + "/ca-password") == Self.caPassword + "\n")
        #expect(fileMode(sandbox.configDir + "/ca-password") == 0o600)
        // Nothing of the unpacked backup stays behind.
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: sandbox.dataDir).filter { $0.hasPrefix(".") }
        #expect(leftovers.isEmpty, "\(leftovers)")

        // The stored password starts the CA; the old provisioner password still issues.
        let ca = try RunningCA(serving: sandbox, port: port)
        defer { _ = ca.stop() }
        let issued = try sandbox.run([
            "cert", "issue", "--ca-url", ca.url, "--fingerprint", step.rootFingerprint, "--san", "web.internal",
            "--provisioner", "admin", "--password-file", step.passwordFile,
            "--out-cert", sandbox.root.file("web.crt"), "--out-key", sandbox.root.file("web.key"),
        ])
        #expect(issued.status == 0, "\(issued)\n\(ca.log)")
    }
}
