import Foundation
import Testing
import TestSupport

/// `server enroll --adopt` through the real binary: a server as the original bash auto-ssl left it
/// (the step CLI's leaf + intermediate in server.crt, its EC PRIVATE KEY in server.key, its awk-written
/// config.yaml, its `step ca renew` units named auto-ssl-renew.{service,timer}) taken over by a CA
/// that `ca import` made from the step-ca that issued the certificate (Resources/make_step_ca.py).
@Suite(.serialized) struct AdoptEndToEndTests {
    static let originalService = """
        [Unit]
        Description=Renew auto-ssl certificate
        After=network-online.target
        Wants=network-online.target

        [Service]
        Type=oneshot
        ExecStart=/usr/bin/step ca renew --force /etc/ssl/auto-ssl/server.crt /etc/ssl/auto-ssl/server.key
        # Uncomment and modify to reload your web server:
        # ExecStartPost=/usr/bin/systemctl reload nginx

        """
    static let originalTimer = """
        [Unit]
        Description=Renew auto-ssl certificate periodically

        [Timer]
        OnCalendar=*-*-01,06,11,16,21,26 00:00:00
        RandomizedDelaySec=3600
        Persistent=true

        [Install]
        WantedBy=timers.target

        """

    /// The imported CA running, and a server sandbox holding the original tool's layout.
    final class Setup: @unchecked Sendable {
        let caSandbox = Sandbox()
        let server = Sandbox()
        let step: CAImportEndToEndTests.Fixture
        var ca: RunningCA
        let port = freeLoopbackPort()
        var certFile: String { server.certDir + "/server.crt" }
        var keyFile: String { server.certDir + "/server.key" }

        init() throws {
            step = try CAImportEndToEndTests.makeStepCA(in: caSandbox, leaf: true)
            let imported = try caSandbox.run([
                "ca", "import", "--step-ca", step.directory, "--password-file", step.passwordFile,
                "--provisioner-password-file", step.provisionerPasswordFile, "--address", "127.0.0.1:\(port)",
            ])
            guard imported.status == 0 else { throw TestFailure("ca import failed: \(imported)") }
            ca = try RunningCA(serving: caSandbox, port: port, arguments: ["--password-file", step.passwordFile])
            try placeOriginalLayout(leaf: try #require(step.leafCert), leafKey: try #require(step.leafKey), intermediate: step.directory + "/certs/intermediate_ca.crt")
        }

        /// What `step ca certificate` and the original `server enroll` wrote: the bundle, the key
        /// in SEC1 PEM (mode 0600), config.yaml (0600) and the renewal units.
        func placeOriginalLayout(leaf: String, leafKey: String, intermediate: String) throws {
            try FileManager.default.createDirectory(atPath: server.certDir, withIntermediateDirectories: true)
            try FileManager.default.createDirectory(atPath: server.configDir, withIntermediateDirectories: true)
            try FileManager.default.createDirectory(atPath: server.systemdDir, withIntermediateDirectories: true)
            try (try readFile(leaf) + readFile(intermediate)).write(toFile: certFile, atomically: true, encoding: .utf8)
            let sec1 = try runProcess("openssl", ["ec", "-in", leafKey, "-out", keyFile])
            guard sec1.status == 0 else { throw TestFailure("openssl ec: \(sec1)") }
            chmod(keyFile, 0o600)
            let config = server.configDir + "/config.yaml"
            try """
                ca:
                  url: \(ca.url)
                  fingerprint: \(step.rootFingerprint)
                server:
                  cert_path: \(certFile)
                  key_path: \(keyFile)
                  sans: old.step.internal

                """.write(toFile: config, atomically: true, encoding: .utf8)
            chmod(config, 0o600)
            try AdoptEndToEndTests.originalService.write(toFile: server.systemdDir + "/auto-ssl-renew.service", atomically: true, encoding: .utf8)
            try AdoptEndToEndTests.originalTimer.write(toFile: server.systemdDir + "/auto-ssl-renew.timer", atomically: true, encoding: .utf8)
        }

        func adopt(_ extra: [String] = []) throws -> ProcessResult {
            try server.run(["server", "enroll", "--adopt", "--ca-url", ca.url, "--fingerprint", step.rootFingerprint] + extra)
        }

        func serial(_ path: String) throws -> String {
            let out = try runProcess("openssl", ["x509", "-in", path, "-noout", "-serial"]).stdout
            return String(out.split(separator: "=").last ?? "").trimmingCharacters(in: .whitespacesAndNewlines).lowercased()
        }

        func verifies(_ path: String) throws -> Bool {
            try runProcess("openssl", ["verify", "-CAfile", step.directory + "/certs/root_ca.crt", "-untrusted", path, path]).status == 0
        }
    }

    @Test func originalToolServerIsRenewedInPlaceRecordedAndItsTimerReplacedWithoutAPassword() throws {
        let setup = try Setup()
        defer { _ = setup.ca.stop() }
        let server = setup.server
        let originalKey = try readFile(setup.keyFile)
        let originalConfig = try readFile(server.configDir + "/config.yaml")
        let originalSerial = try setup.serial(setup.certFile)
        #expect(originalSerial == "5e3a11c0ffee")

        // The original `server renew` kept its last pairs as cert-backups/server-<time>.{crt,key}.
        let oldBackups = server.dataDir + "/cert-backups"
        try FileManager.default.createDirectory(atPath: oldBackups, withIntermediateDirectories: true)
        for index in 1...6 {
            for suffix in ["crt", "key"] {
                try "old \(index)\n".write(toFile: oldBackups + "/server-20250101-00000\(index).\(suffix)", atomically: true, encoding: .utf8)
            }
        }

        let adopted = try setup.adopt(["--exec", "true"])
        #expect(adopted.status == 0, "\(adopted)\n\(setup.ca.log)")
        // Renewed by the CA (new serial, same key, chain to step-ca's root), served from the same paths.
        let renewedSerial = try setup.serial(setup.certFile)
        #expect(renewedSerial != originalSerial)
        #expect(try setup.verifies(setup.certFile))
        #expect(try readFile(setup.keyFile) == originalKey)
        #expect(fileMode(setup.keyFile) == 0o600 && fileMode(setup.certFile) == 0o644)
        #expect(try readFile(server.certDir + "/ca.crt") == readFile(setup.step.directory + "/certs/root_ca.crt"))
        let modulusOf = { (args: [String]) in try runProcess("openssl", args).stdout }
        #expect(try modulusOf(["x509", "-in", setup.certFile, "-noout", "-pubkey"]) == modulusOf(["pkey", "-in", setup.keyFile, "-pubout"]))
        #expect(adopted.stdout.contains("renewed by mutual TLS") && adopted.stdout.contains(renewedSerial), "\(adopted)")
        #expect(!adopted.stdout.contains("PRIVATE KEY") && !adopted.stderr.contains("PRIVATE KEY"))
        // The original files are kept unchanged; our config and units replace them.
        #expect(try readFile(server.dataDir + "/adopted/original-config.yaml") == originalConfig)
        #expect(fileMode(server.dataDir + "/adopted/original-config.yaml") == 0o600)
        #expect(try readFile(server.dataDir + "/adopted/original-units/auto-ssl-renew.service") == Self.originalService)
        #expect(try readFile(server.dataDir + "/adopted/original-units/auto-ssl-renew.timer") == Self.originalTimer)
        #expect(adopted.stdout.contains("the original tool's config.yaml kept unchanged"), "\(adopted)")
        #expect(adopted.stdout.contains("original tool's renewal units (auto-ssl-renew.timer, auto-ssl-renew.service)"), "\(adopted)")
        let service = try readFile(server.systemdDir + "/auto-ssl-renew.service")
        #expect(service.hasPrefix("# Written by auto-ssl") && service.contains("server renew") && !service.contains("step ca renew"))
        #expect(try readFile(server.systemdDir + "/auto-ssl-renew.timer").hasPrefix("# Written by auto-ssl"))
        let config = try readFile(server.configDir + "/config.yaml")
        #expect(config.contains("cert_path: \(setup.certFile)") && config.contains("old.step.internal"), "\(config)")
        #expect(config.contains("original_serial: 5e3a11c0ffee") && config.contains("reload_command:"), "\(config)")

        // Our agent owns it now: status is healthy, and renewal by mutual TLS works again.
        let status = try server.run(["server", "status", "--json"])
        #expect(status.status == 0, "\(status)")
        let report = try JSONSerialization.jsonObject(with: Data(status.stdout.utf8)) as? [String: Any] ?? [:]
        #expect(report["serial"] as? String == renewedSerial, "\(status)")
        #expect((report["adopted"] as? [String: Any])?["original_serial"] as? String == originalSerial, "\(status)")
        let text = try server.run(["server", "status"])
        #expect(text.status == 0 && text.stdout.contains("Taken over:") && text.stdout.contains(originalSerial), "\(text)")
        let forced = try server.run(["server", "renew", "--force"])
        #expect(forced.status == 0, "\(forced)\n\(setup.ca.log)")
        let third = try setup.serial(setup.certFile)
        #expect(third != renewedSerial && third != originalSerial)
        #expect(try setup.verifies(setup.certFile))

        // Again: harmless. It renews once more; the kept originals are not overwritten by our files.
        // With --reload haproxy this time: HAProxy's chain + key file appears next to the certificate.
        let again = try setup.adopt(["--reload", "haproxy"])
        #expect(again.status == 0, "\(again)")
        let combined = server.certDir + "/server.pem"
        #expect(fileMode(combined) == 0o600)
        #expect(try runProcess("openssl", ["x509", "-in", combined, "-noout", "-pubkey"]).stdout
            == runProcess("openssl", ["pkey", "-in", combined, "-pubout"]).stdout)
        #expect(try readFile(combined).hasPrefix(readFile(setup.certFile)))
        #expect(try readFile(server.configDir + "/config.yaml").contains("reload: haproxy"))
        #expect(try readFile(server.dataDir + "/adopted/original-config.yaml") == originalConfig)
        #expect(try readFile(server.dataDir + "/adopted/original-units/auto-ssl-renew.service") == Self.originalService)
        #expect(try readFile(server.configDir + "/config.yaml").contains("original_serial: 5e3a11c0ffee"))
        #expect(try readFile(setup.keyFile) == originalKey)
        #expect(try server.run(["server", "status"]).status == 0)
        // The original tool's backups are left alone; ours (one per replaced certificate) sit beside them.
        let backups = try FileManager.default.contentsOfDirectory(atPath: oldBackups)
        #expect(backups.filter { $0.hasPrefix("server-2025") }.count == 12, "\(backups)")
        #expect(backups.filter { $0.first?.isNumber == true }.count == 3, "\(backups)")
    }

    /// A leaf of `hours` lifetime signed by the imported intermediate (Python cryptography, dates in
    /// the past allowed), written as the step CLI writes it: leaf + intermediate, SEC1 key.
    static let lateLeafScript = """
        import sys, datetime
        from cryptography import x509
        from cryptography.x509.oid import NameOID, ExtendedKeyUsageOID
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        int_crt, int_key, out_crt, out_key, serial, start, end = sys.argv[1:8]
        ca = x509.load_pem_x509_certificate(open(int_crt, "rb").read())
        ca_key = serialization.load_pem_private_key(open(int_key, "rb").read(), None)
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.timezone.utc)
        usage = x509.KeyUsage(True, False, False, False, False, False, False, False, False)
        cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "late.step.internal")]))
            .issuer_name(ca.subject).public_key(key.public_key()).serial_number(int(serial, 16))
            .not_valid_before(now + datetime.timedelta(hours=float(start)))
            .not_valid_after(now + datetime.timedelta(hours=float(end)))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("late.step.internal")]), False)
            .add_extension(usage, True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]), False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), True)
            .sign(ca_key, hashes.SHA256()))
        open(out_crt, "wb").write(cert.public_bytes(serialization.Encoding.PEM) + open(int_crt, "rb").read())
        open(out_key, "wb").write(key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()))
        """

    @Test func aCertificateExpiredWithinTheGraceWindowIsTakenOverAndOneExpiredBeyondItChangesNothing() throws {
        let setup = try Setup()
        defer { _ = setup.ca.stop() }
        let server = setup.server
        let intermediateKey = setup.caSandbox.root.file("intermediate-plain.key")
        let decrypted = try runProcess("openssl", [
            "pkey", "-in", setup.step.directory + "/secrets/intermediate_ca_key", "-passin", "file:" + setup.step.passwordFile,
            "-out", intermediateKey,
        ])
        #expect(decrypted.status == 0, "\(decrypted)")
        func placeLeaf(serial: String, start: Double, end: Double) throws {
            let made = try runProcess("python3", [
                "-c", Self.lateLeafScript, setup.step.directory + "/certs/intermediate_ca.crt", intermediateKey, setup.certFile,
                setup.keyFile, serial, String(start), String(end),
            ])
            guard made.status == 0 else { throw TestFailure("making the leaf failed: \(made)") }
        }

        // 24 h lifetime, expired 2 h ago: beyond the CA's grace window (5 % = 72 min). Nothing changes.
        try placeLeaf(serial: "0bad", start: -26, end: -2)
        let before = try snapshotTree(server.root.path)
        let beyond = try setup.adopt()
        #expect(beyond.status == 6, "\(beyond)\n\(setup.ca.log)")
        #expect(beyond.stderr.contains("beyond the renewal grace window") && beyond.stderr.contains("nothing was changed"), "\(beyond)")
        #expect(try snapshotTree(server.root.path) == before)

        // Expired 30 minutes ago: within the window, renewed with an x5c token (TLS refuses an expired client certificate).
        try placeLeaf(serial: "0900d", start: -24.5, end: -0.5)
        let key = try readFile(setup.keyFile)
        let within = try setup.adopt()
        #expect(within.status == 0, "\(within)\n\(setup.ca.log)")
        #expect(try setup.serial(setup.certFile) != "0900d")
        #expect(try runProcess("openssl", ["x509", "-in", setup.certFile, "-noout", "-checkend", "3600"]).status == 0)
        #expect(try setup.verifies(setup.certFile))
        #expect(try readFile(setup.keyFile) == key)
        #expect(try server.run(["server", "status"]).status == 0)
    }

    @Test func anotherCAsCertificateAMismatchedKeyAndACANotImportedChangeNothing() throws {
        let setup = try Setup()
        defer { _ = setup.ca.stop() }
        let server = setup.server
        let before = try snapshotTree(server.root.path)

        // A certificate another CA issued (another step-ca's intermediate): exit 6.
        let other = try CAImportEndToEndTests.makeStepCA(in: setup.caSandbox, name: "other", leaf: true)
        let otherDir = server.root.file("other")
        try FileManager.default.createDirectory(atPath: otherDir, withIntermediateDirectories: true)
        try (try readFile(try #require(other.leafCert)) + readFile(other.directory + "/certs/intermediate_ca.crt"))
            .write(toFile: otherDir + "/server.crt", atomically: true, encoding: .utf8)
        #expect(try runProcess("openssl", ["ec", "-in", try #require(other.leafKey), "-out", otherDir + "/server.key"]).status == 0)
        let otherBefore = try snapshotTree(server.root.path)
        let foreign = try setup.adopt(["--from", otherDir])
        #expect(foreign.status == 6, "\(foreign)")
        #expect(foreign.stderr.contains("not issued by this CA"), "\(foreign)")
        #expect(try snapshotTree(server.root.path) == otherBefore)

        // A key that is not the certificate's: exit 2.
        let mismatched = try setup.adopt(["--cert-path", setup.certFile, "--key-path", otherDir + "/server.key"])
        #expect(mismatched.status == 2, "\(mismatched)")
        #expect(mismatched.stderr.contains("does not belong to the certificate"), "\(mismatched)")
        #expect(try snapshotTree(server.root.path) == otherBefore)
        try FileManager.default.removeItem(atPath: otherDir)
        #expect(try snapshotTree(server.root.path) == before)

        // The same intermediate, but a CA that was not imported (no `imported:`): the CA refuses, exit 6.
        #expect(setup.ca.stop() == 0)
        let caConfig = setup.caSandbox.configDir + "/config.yaml"
        var kept: [Substring] = []
        var skipping: Int?
        for line in try readFile(caConfig).split(separator: "\n", omittingEmptySubsequences: false) {
            let indent = line.prefix { $0 == " " }.count
            if let depth = skipping, indent > depth, !line.trimmingCharacters(in: .whitespaces).isEmpty { continue }
            skipping = nil
            if line.trimmingCharacters(in: .whitespaces) == "imported:" { skipping = indent; continue }
            kept.append(line)
        }
        try kept.joined(separator: "\n").write(toFile: caConfig, atomically: true, encoding: .utf8)
        #expect(try !readFile(caConfig).contains("imported"))
        setup.ca = try RunningCA(serving: setup.caSandbox, port: setup.port, arguments: ["--password-file", setup.step.passwordFile])
        let refused = try setup.adopt()
        #expect(refused.status == 6, "\(refused)\n\(setup.ca.log)")
        #expect(refused.stderr.contains("no record") && refused.stderr.contains("ca import") && refused.stderr.contains("nothing was changed"), "\(refused)")
        #expect(try snapshotTree(server.root.path) == before)
    }
}
