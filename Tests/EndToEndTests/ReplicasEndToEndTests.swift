import Foundation
import Testing
import TestSupport

/// Two `ca serve` replicas of one CA sharing a PostgreSQL database started by the test: set up with
/// `ca init --database`, `ca replica add` and `ca restore --as-replica`, then checked for what a
/// replica promises (one token use across replicas, provisioners and revocations everywhere within
/// seconds, heartbeats in `ca status`).
@Suite(.serialized, .enabled(if: TemporaryPostgres.isAvailable)) struct ReplicasEndToEndTests {
    static let resources = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Resources").path
    static let passphrase = "replica-bundle-passphrase-0123"

    struct Replicas {
        let a: RunningCA
        let b: RunningCA
        let postgres: TemporaryPostgres
        let database: String
        var adminPassword: String { (try? readFile(a.sandbox.configDir + "/provisioner-password").trimmingCharacters(in: .newlines)) ?? "" }
    }

    static func startReplicas(on server: TemporaryPostgres? = nil) throws -> Replicas {
        let postgres = try server ?? TemporaryPostgres.shared.get()
        let database = try postgres.makeDatabase("replicas")
        let a = try RunningCA(initArguments: [
            "--database", postgres.url(database: database), "--database-password-file", postgres.passwordFile,
        ])
        let portB = freeLoopbackPort()
        let passphraseFile = try a.sandbox.root.write("bundle-passphrase", passphrase + "\n")
        let bundle = a.sandbox.root.file("replica.bundle")
        // A bare file name, as docs/ha.md writes it: the bundle goes to the current directory
        // (the sandbox's root), not to a temporary file in "/".
        let made = try a.sandbox.run([
            "ca", "replica", "add", "--output", "replica.bundle", "--address", "127.0.0.1:\(portB)", "--passphrase-file", passphraseFile,
        ])
        guard made.status == 0 else { throw TestFailure("ca replica add failed: \(made)") }
        #expect(fileMode(bundle) == 0o600)
        #expect(made.stdout.contains("ca restore --as-replica"))
        // The bundle carries the URL, not the roots file it names: the command says to copy it.
        if let roots = postgres.rootCertificateFile {
            #expect(made.stdout.contains("first copy \(roots)"), "\(made)")
        } else {
            #expect(!made.stdout.contains("first copy"), "\(made)")
        }

        let sandboxB = Sandbox()
        let restored = try sandboxB.run([
            "ca", "restore", "--as-replica", "--input", bundle, "--new-address", "127.0.0.1:\(portB)", "--passphrase-file", passphraseFile,
        ])
        guard restored.status == 0 else { throw TestFailure("ca restore --as-replica failed: \(restored)") }
        #expect(restored.stdout.contains("belongs to this CA") && !restored.stderr.contains("warning"), "\(restored)")
        let b = try RunningCA(serving: sandboxB, port: portB)
        return Replicas(a: a, b: b, postgres: postgres, database: database)
    }

    /// Polls `condition` every 200 ms for up to `seconds`.
    static func eventually(within seconds: Double, _ condition: () throws -> Bool) rethrows -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        repeat {
            if try condition() { return true }
            usleep(200_000)
        } while Date() < deadline
        return try condition()
    }

    func issue(on ca: RunningCA, name: String, provisioner: String = "admin", password: String, in sandbox: Sandbox) throws -> ProcessResult {
        try sandbox.run(
            ["cert", "issue", "--ca-url", ca.url, "--fingerprint", try ca.fingerprint, "--san", name,
             "--out-cert", sandbox.root.file(name + ".crt"), "--out-key", sandbox.root.file(name + ".key"),
             "--provisioner", provisioner, "--password-file", "/dev/stdin"],
            stdin: password + "\n")
    }

    @Test func replicasShareTokensProvisionersRevocationsAndHeartbeats() throws {
        let replicas = try Self.startReplicas()
        let (a, b) = (replicas.a, replicas.b)

        // Both replicas serve the same root, each with a TLS certificate for its own address.
        #expect(try a.fingerprint == b.fingerprint)
        for ca in [a, b] {
            let health = try runProcess("curl", ["-sf", "--cacert", ca.rootPath, ca.url + "/health"])
            #expect(health.status == 0 && health.stdout.contains("\"ok\""), "\(health)")
        }

        // ca status on either machine lists both replicas, alive.
        let bothAlive = try Self.eventually(within: 15) {
            let status = try a.sandbox.run(["ca", "status", "--json"])
            let object = try JSONSerialization.jsonObject(with: Data(status.stdout.utf8)) as? [String: Any]
            let database = object?["database"] as? [String: Any]
            let listed = database?["replicas"] as? [[String: Any]] ?? []
            return database?["kind"] as? String == "postgresql" && listed.count == 2 && listed.allSatisfy { $0["alive"] as? Bool == true }
        }
        let statusText = try a.sandbox.run(["ca", "status"])
        #expect(bothAlive, "\(statusText)")
        let text = try b.sandbox.run(["ca", "status"])
        #expect(text.stdout.contains("Replicas:       2 of 2 alive"), "\(text)")

        // A token used on A is refused on B (an independent client, Python's jwcrypto).
        let replay = try runProcess("python3", [
            Self.resources + "/replay_across_replicas.py", a.url, b.url, a.rootPath, replicas.adminPassword,
        ])
        #expect(replay.status == 0, "\(replay)")
        let outcome = try JSONSerialization.jsonObject(with: Data(replay.stdout.utf8)) as? [String: Any]
        #expect(outcome?["first"] as? Int == 201, "\(replay)")
        #expect(outcome?["replay"] as? Int == 401 && (outcome?["replay_message"] as? String ?? "").contains("already used"), "\(replay)")

        // A provisioner added on A is in force on B within seconds.
        let added = try a.sandbox.run(
            ["ca", "provisioner", "add", "fleet", "--password-file", "/dev/stdin"], stdin: "fleet-provisioner-password-1\n")
        #expect(added.status == 0, "\(added)")
        let client = Sandbox()
        let onB = try Self.eventually(within: 20) {
            try issue(on: b, name: "fleet-1.internal", provisioner: "fleet", password: "fleet-provisioner-password-1", in: client).status == 0
        }
        if !onB {
            let last = try issue(on: b, name: "fleet-2.internal", provisioner: "fleet", password: "fleet-provisioner-password-1", in: client)
            Issue.record("the provisioner added on A was not in force on B: \(last)\n\(b.log)")
        }

        // A revocation on A appears in B's CRL within seconds.
        let serial = try runProcess("openssl", ["x509", "-noout", "-serial", "-in", client.root.file("fleet-1.internal.crt")])
            .stdout.replacingOccurrences(of: "serial=", with: "").trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(!serial.isEmpty)
        // B's OCSP answer for it, asked before the revocation so B holds a cached "good".
        func ocspOnB() throws -> String {
            try runProcess("openssl", [
                "ocsp", "-issuer", b.sandbox.caDir + "/certs/intermediate_ca.crt", "-cert", client.root.file("fleet-1.internal.crt"),
                "-url", b.url + "/ocsp", "-CAfile", b.rootPath,
            ]).stdout
        }
        #expect(try ocspOnB().contains(": good"))
        let revoked = try a.sandbox.run(["ca", "revoke", serial, "--reason-code", "1", "--reason", "replica test"])
        #expect(revoked.status == 0, "\(revoked)")
        let listedOnB = try Self.eventually(within: 20) {
            let crl = client.root.file("b.crl")
            guard try runProcess("curl", ["-sf", "--cacert", b.rootPath, "-o", crl, b.url + "/crl"]).status == 0 else { return false }
            let parsed = try runProcess("openssl", ["crl", "-inform", "DER", "-in", crl, "-noout", "-text"])
            return parsed.stdout.uppercased().contains(serial.uppercased())
        }
        #expect(listedOnB)
        // B's OCSP says revoked within seconds too (its cached answer was dropped).
        let revokedOnB = try Self.eventually(within: 20) { try ocspOnB().contains(": revoked") }
        let lastAnswer = try ocspOnB()
        #expect(revokedOnB, "\(lastAnswer)")
        // Both replicas then serve the same, newest CRL (one shared CRL number sequence).
        let sameCRL = try Self.eventually(within: 15) {
            func number(_ ca: RunningCA) throws -> String {
                let file = client.root.file("n.crl")
                _ = try runProcess("curl", ["-sf", "--cacert", ca.rootPath, "-o", file, ca.url + "/crl"])
                return try runProcess("openssl", ["crl", "-inform", "DER", "-in", file, "-noout", "-crlnumber"]).stdout
            }
            let (onA, onB) = (try number(a), try number(b))
            return onA.contains("crlNumber=") && onA == onB
        }
        #expect(sameCRL)

        // Both changes are in the shared log of administrative changes, read on B.
        let listed = try b.sandbox.run(["ca", "replica", "list", "--json"])
        let report = try JSONSerialization.jsonObject(with: Data(listed.stdout.utf8)) as? [String: Any]
        let events = (report?["admin_events"] as? [[String: Any]] ?? []).map { "\($0["event"] ?? "") \($0["detail"] ?? "")" }
        #expect(events.contains { $0.hasPrefix("settings.changed provisioner add fleet") }, "\(listed)")
        #expect(events.contains { $0.hasPrefix("certificate.revoked") && $0.lowercased().contains(serial.lowercased().drop { $0 == "0" }) }, "\(listed)")

        // Removed on B, refused on A within seconds. (A certificate of it that stays usable first.)
        #expect(try issue(on: a, name: "fleet-kept.internal", provisioner: "fleet", password: "fleet-provisioner-password-1", in: client).status == 0)
        let staleConfig = a.sandbox.root.file("config.yaml.stale")
        #expect(try runProcess("cp", [a.sandbox.configDir + "/config.yaml", staleConfig]).status == 0)
        let removed = try b.sandbox.run(["ca", "provisioner", "remove", "fleet", "--yes"])
        #expect(removed.status == 0, "\(removed)")
        let refusedOnA = try Self.eventually(within: 20) {
            try issue(on: a, name: "fleet-3.internal", provisioner: "fleet", password: "fleet-provisioner-password-1", in: client).status != 0
        }
        #expect(refusedOnA)
        // A replica whose config.yaml is stale (it still lists "fleet") does not give the removed
        // name out again while fleet's certificates can be used: the check runs on the settings in force.
        #expect(try runProcess("cp", [staleConfig, a.sandbox.configDir + "/config.yaml"]).status == 0)
        let reused = try a.sandbox.run(
            ["ca", "provisioner", "add", "fleet", "--password-file", "/dev/stdin"], stdin: "fleet-provisioner-password-2\n")
        #expect(reused.status == 1 && reused.stderr.contains("of a removed provisioner named \"fleet\""), "\(reused)")
        #expect(try issue(on: b, name: "fleet-4.internal", provisioner: "fleet", password: "fleet-provisioner-password-2", in: client).status != 0)

        // Moving the records back to SQLite is refused while another replica runs, then works once
        // every replica stopped (a replica that stops says so in the database).
        #expect(a.stop() == 0)
        let refusedMove = try a.sandbox.run(["ca", "database", "migrate", "--to", "sqlite"])
        #expect(refusedMove.status == 7 && refusedMove.stderr.contains("replicas of this CA are running"), "\(refusedMove)")
        #expect(b.stop() == 0)
        let moved = try a.sandbox.run(["ca", "database", "migrate", "--to", "sqlite"])
        #expect(moved.status == 0, "\(moved)")
        // B, still configured for PostgreSQL, now refuses to start: the CA's records are in A's SQLite.
        let lateStart = Process()
        lateStart.executableURL = URL(fileURLWithPath: autoSSLBinaryPath())
        lateStart.arguments = ["ca", "serve"]
        lateStart.environment = b.sandbox.environment
        let errors = Pipe()
        lateStart.standardError = errors
        lateStart.standardOutput = FileHandle.nullDevice
        try lateStart.run()
        let refusal = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        lateStart.waitUntilExit()
        #expect(lateStart.terminationStatus != 0 && refusal.contains("was marked as left by this CA"), "\(refusal)")
        // Restoring B again from its bundle says so too, instead of calling the database this CA's.
        let again = try b.sandbox.run([
            "ca", "restore", "--as-replica", "--input", a.sandbox.root.file("replica.bundle"), "--new-address", "127.0.0.1:\(b.port)",
            "--passphrase-file", a.sandbox.root.file("bundle-passphrase"), "--force",
        ])
        #expect(again.status == 0 && !again.stdout.contains("belongs to this CA") && again.stderr.contains("marked as left by this CA"), "\(again)")
    }

    @Test func aDatabaseOfAnotherCAIsRefused() throws {
        let postgres = try TemporaryPostgres.shared.get()
        let database = try postgres.makeDatabase("bound")
        let first = try RunningCA(initArguments: [
            "--database", postgres.url(database: database), "--database-password-file", postgres.passwordFile,
        ])
        #expect(first.stop() == 0)
        // A second, different CA cannot be created on it...
        let other = Sandbox()
        let refused = try other.run([
            "ca", "init", "--non-interactive", "--address", "127.0.0.1:\(freeLoopbackPort())",
            "--database", postgres.url(database: database), "--database-password-file", postgres.passwordFile,
        ])
        #expect(refused.status != 0 && refused.stderr.contains("already belongs to a CA"), "\(refused)")
        #expect(!FileManager.default.fileExists(atPath: other.caDir))
        // ... and a password in the URL is refused without being echoed.
        let leaky = try other.run([
            "ca", "init", "--non-interactive", "--database", "postgres://autossl:s3cret-in-url@127.0.0.1:\(postgres.port)/\(database)",
        ])
        #expect(leaky.status == 2 && leaky.stderr.contains("carries a password") && !leaky.stderr.contains("s3cret-in-url"), "\(leaky)")
    }

    /// Two replicas on a PostgreSQL server that admits only TLS, with `sslmode=verify-full` and the
    /// server's root in `sslrootcert`: set up, both issue, and the server counts their TLS sessions. The
    /// same URL with another root is refused by `ca init` (exit 6, no CA folder left behind).
    @Test func replicasTalkToPostgreSQLOverVerifiedTLS() throws {
        let server = try TemporaryPostgres.sharedTLS.get()
        let root = try #require(server.rootCertificateFile), other = try #require(server.otherRootCertificateFile)
        let replicas = try Self.startReplicas(on: server)
        let (a, b) = (replicas.a, replicas.b)
        for ca in [a, b] {
            let config = try readFile(ca.sandbox.configDir + "/config.yaml")
            #expect(config.contains("sslrootcert=\(root)"), "\(config)")
        }
        let client = Sandbox()
        for (ca, name) in [(a, "tls-a.internal"), (b, "tls-b.internal")] {
            let issued = try issue(on: ca, name: name, password: replicas.adminPassword, in: client)
            #expect(issued.status == 0, "\(issued)\n\(ca.log)")
        }
        // Seen from the server: both replicas' pools hold TCP sessions, each one TLS (pg_hba.conf
        // would refuse a plain one, so the count is the proof that they connected at all).
        let sessions = try server.query(
            "SELECT count(*) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid)"
                + " WHERE a.datname = '\(replicas.database)' AND a.client_port IS NOT NULL AND s.ssl",
            database: replicas.database)
        #expect((Int(sessions) ?? 0) >= 2, "TLS sessions: \(sessions)")
        let stored = try server.query("SELECT count(*) FROM certificates", database: replicas.database)
        #expect((Int(stored) ?? 0) >= 2, "\(stored)")

        let database = try server.makeDatabase("tls_refused")
        let sandbox = Sandbox()
        let refused = try sandbox.run([
            "ca", "init", "--non-interactive", "--address", "127.0.0.1:\(freeLoopbackPort())",
            "--database", "postgres://\(server.user)@127.0.0.1:\(server.port)/\(database)?sslmode=verify-full&sslrootcert=\(other)",
            "--database-password-file", server.passwordFile,
        ])
        #expect(refused.status == 6 && refused.stderr.contains("not signed by a root in \(other)"), "\(refused)")
        #expect(!FileManager.default.fileExists(atPath: sandbox.caDir))
    }
}
