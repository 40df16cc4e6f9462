import Foundation
import Testing
import TestSupport

/// Faults through the real binary: the process killed under load, a full disk, a damaged database,
/// and ACME work a crash interrupted. Nothing handed out may be lost, nothing may be accepted twice,
/// and the CA must come back by itself or stop with a clear error.
@Suite(.serialized) struct FaultsEndToEndTests {
    static let resources = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Resources").path
    static var isRoot: Bool { getuid() == 0 }

    func databasePath(_ ca: RunningCA) -> String { ca.sandbox.caDir + "/db/auto-ssl.sqlite" }

    /// Rows of a query on the CA's database, read with Python's sqlite3 (not our code).
    func query(_ ca: RunningCA, _ sql: String) throws -> [String] {
        let result = try runPython("""
            import sqlite3, sys
            connection = sqlite3.connect(sys.argv[1])
            for row in connection.execute(sys.argv[2]):
                print("|".join(str(value) for value in row))
            """, arguments: [databasePath(ca), sql])
        guard result.status == 0 else { throw TestFailure("sqlite3: \(result)") }
        return result.stdout.split(separator: "\n").map(String.init)
    }

    func issue(_ ca: RunningCA, _ name: String) throws -> ProcessResult {
        try ca.sandbox.run([
            "cert", "issue", "--ca-url", ca.url, "--fingerprint", try ca.fingerprint, "--san", name,
            "--out-cert", ca.sandbox.root.file(name + ".crt"), "--out-key", ca.sandbox.root.file(name + ".key"),
            "--password-file", ca.sandbox.configDir + "/provisioner-password",
        ])
    }

    @Test func killNineDuringSignLoadLosesNoCertificateAndAcceptsNoTokenTwice() throws {
        let ca = try RunningCA()
        let received = ca.sandbox.root.file("received.jsonl")
        FileManager.default.createFile(atPath: received, contents: nil)
        let load = Process()
        load.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        load.arguments = ["python3", Self.resources + "/sign_load.py", ca.url, ca.rootPath, try readFile(ca.sandbox.configDir + "/provisioner-password")
            .trimmingCharacters(in: .whitespacesAndNewlines), "load", "16", "60", received]
        let log = ca.sandbox.root.file("load.log")
        FileManager.default.createFile(atPath: log, contents: nil)
        load.standardOutput = FileHandle(forWritingAtPath: log)
        load.standardError = FileHandle(forWritingAtPath: log)
        try load.run()
        defer { if load.isRunning { load.terminate() } }
        let until = Date().addingTimeInterval(40)
        while Date() < until, ((try? readFile(received)) ?? "").split(separator: "\n").count < 150 { usleep(100_000) }
        kill(ca.processIdentifier, SIGKILL)
        ca.process.waitUntilExit()
        load.waitUntilExit()
        let records = try readFile(received).split(separator: "\n").compactMap {
            try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: String]
        }
        #expect(records.count >= 150, "\((try? readFile(log)) ?? "")")

        try ca.restart()
        let serials = records.compactMap { $0["serial"] }
        #expect(Set(serials).count == serials.count, "a serial was handed out twice")
        func normal(_ hex: String) -> String { String(hex.lowercased().drop { $0 == "0" }) }
        let stored = Set(try query(ca, "SELECT serial FROM certificates WHERE status = 'issued'").map(normal))
        let missing = serials.filter { !stored.contains(normal($0)) }
        #expect(missing.isEmpty, "certificates handed out but not in the database: \(missing)")
        let replay = try runProcess("python3", [
            Self.resources + "/sign_load.py", ca.url, ca.rootPath,
            try readFile(ca.sandbox.configDir + "/provisioner-password").trimmingCharacters(in: .whitespacesAndNewlines), "replay", received,
        ])
        let outcome = try JSONSerialization.jsonObject(with: Data(replay.stdout.utf8)) as? [String: Any] ?? [:]
        #expect(outcome["accepted"] as? Int == 0 && outcome["replayed"] as? Int == records.count, "\(replay)")
    }

    @Test(.enabled(if: FaultsEndToEndTests.isRoot, "mounts a tmpfs (CI runs as root)"))
    func aFullDiskGets503WithAReasonAndIssuanceResumesOnceSpaceIsFree() throws {
        var mounted: String?
        defer { if let mounted { _ = try? runProcess("umount", ["-l", mounted]) } }
        let ca = try RunningCA { sandbox in
            // The database's directory on a 3 MiB file system of its own (the first `ca serve` creates the file).
            let directory = sandbox.caDir + "/db"
            guard try runProcess("mount", ["-t", "tmpfs", "-o", "size=3m,mode=0700", "tmpfs", directory]).status == 0 else {
                throw TestFailure("could not mount a tmpfs")
            }
            mounted = directory
        }
        #expect(try issue(ca, "before.internal").status == 0)
        let before = try query(ca, "SELECT count(*) FROM certificates").first
        // Fill the file system to the last block.
        _ = try runProcess("sh", ["-c", "dd if=/dev/zero of='\(ca.sandbox.caDir)/db/filler' bs=4096 2>/dev/null; sync"])
        var refusal: ProcessResult?
        for attempt in 0..<20 {
            let result = try issue(ca, "full\(attempt).internal")
            if result.status != 0 { refusal = result; break }
        }
        #expect(refusal?.stderr.contains("full") == true && refusal?.stderr.contains("503") == true, "\(String(describing: refusal))")
        let name = refusal.map { _ in "full" } ?? ""
        #expect(!FileManager.default.fileExists(atPath: ca.sandbox.root.file(name + "0.crt")) || refusal == nil)
        #expect(ca.process.isRunning, "\(ca.log)")
        try FileManager.default.removeItem(atPath: ca.sandbox.caDir + "/db/filler")
        var resumed = false
        for attempt in 0..<20 where !resumed {
            resumed = try issue(ca, "after\(attempt).internal").status == 0
            if !resumed { usleep(250_000) }
        }
        #expect(resumed, "\(ca.log)")
        // Every certificate that was handed out has its row; the refused ones have none.
        let after = try query(ca, "SELECT count(*) FROM certificates").first
        #expect(before != nil && after != nil)
        let stored = Set(try query(ca, "SELECT common_name FROM certificates"))
        for file in try FileManager.default.contentsOfDirectory(atPath: ca.sandbox.root.path) where file.hasSuffix(".internal.crt") {
            #expect(stored.contains(String(file.dropLast(4))), "\(file) was handed out without its row")
        }
    }

    @Test func aDamagedDatabaseStopsTheCAWithAClearErrorAndIsLeftAsItWas() throws {
        let ca = try RunningCA()
        #expect(try issue(ca, "kept.internal").status == 0)
        ca.stop()
        let path = databasePath(ca)
        var bytes = Array(try Data(contentsOf: URL(fileURLWithPath: path)))
        for index in 0..<min(64, bytes.count) { bytes[index] = 0x5A }
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        let served = try ca.sandbox.run(["ca", "serve"])
        #expect(served.status == 1, "\(served)")
        #expect(served.stderr.contains("damaged") && served.stderr.contains("ca restore"), "\(served)")
        #expect(Array(try Data(contentsOf: URL(fileURLWithPath: path))) == bytes, "the damaged database was changed")
        let listed = try ca.sandbox.run(["ca", "certs", "list"])
        #expect(listed.status == 1 && listed.stderr.contains("damaged"), "\(listed)")
    }

    @Test func aCrashBetweenValidationAndFinalizeLeavesNothingStuck() throws {
        let ca = try RunningCA()
        ca.stop()
        // The state a crash leaves: an order in the middle of finalization, a challenge in the middle
        // of validation that has used all its attempts.
        let setup = try runPython("""
            import base64, json, sqlite3, sys
            from cryptography.hazmat.primitives.asymmetric import ec
            numbers = ec.generate_private_key(ec.SECP256R1()).public_key().public_numbers()
            b64 = lambda value: base64.urlsafe_b64encode(value.to_bytes(32, "big")).rstrip(b"=").decode()
            jwk = json.dumps({"crv": "P-256", "kty": "EC", "x": b64(numbers.x), "y": b64(numbers.y)})
            db = sqlite3.connect(sys.argv[1])
            db.execute("INSERT INTO acme_accounts (id, provisioner, thumbprint, jwk, status, contact, created_at) VALUES ('acc', 'acme', 't', ?, 'valid', '[]', 0)", (jwk,))
            db.execute("INSERT INTO acme_orders (id, account_id, provisioner, status, identifiers, not_before, not_after, expires, created_at) VALUES ('ord', 'acc', 'acme', 'processing', '[]', NULL, NULL, 9999999999, 0)")
            db.execute("INSERT INTO acme_authorizations (id, account_id, order_id, position, identifier_type, identifier_value, wildcard, status, expires) VALUES ('az', 'acc', 'ord', 0, 'dns', 'x.test', 0, 'pending', 9999999999)")
            db.execute("INSERT INTO acme_challenges (id, authorization_id, position, type, token, status, attempts) VALUES ('ch', 'az', 0, 'http-01', 'tok', 'processing', 3)")
            db.commit()
            """, arguments: [databasePath(ca)])
        #expect(setup.status == 0, "\(setup)")
        try ca.restart()
        var states: [String] = []
        for _ in 0..<50 {
            states = try query(ca, "SELECT (SELECT status FROM acme_orders WHERE id = 'ord'), (SELECT status FROM acme_challenges WHERE id = 'ch')")
            if states.first?.hasSuffix("|invalid") == true { break }
            usleep(100_000)
        }
        #expect(states.first == "ready|invalid" || states.first == "invalid|invalid", "\(states)")
        #expect(try query(ca, "SELECT count(*) FROM acme_orders WHERE status = 'processing'").first == "0")
        #expect(try query(ca, "SELECT count(*) FROM acme_challenges WHERE status = 'processing'").first == "0")
        #expect(try query(ca, "SELECT error FROM acme_challenges WHERE id = 'ch'").first?.contains("attempts") == true)
    }

    /// A second `ca serve` on the same address: refused before it issues its own TLS certificate or
    /// writes an audit line that claims it listens.
    @Test func aPortInUseIsReportedBeforeAnythingIsIssuedOrAudited() throws {
        let ca = try RunningCA()
        let certificates = try query(ca, "SELECT count(*) FROM certificates").first
        let starts = try ca.auditEvents().filter { $0["event"] as? String == "service.start" }.count
        let second = try ca.sandbox.run(["ca", "serve"])
        #expect(second.status == 1, "\(second)")
        #expect(second.stderr.contains("cannot listen on 127.0.0.1:\(ca.port)") && second.stderr.contains("already in use"), "\(second)")
        #expect(try query(ca, "SELECT count(*) FROM certificates").first == certificates)
        #expect(try ca.auditEvents().filter { $0["event"] as? String == "service.start" }.count == starts)
        #expect(ca.process.isRunning)
    }
}
