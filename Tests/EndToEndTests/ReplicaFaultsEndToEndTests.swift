import Foundation
import Testing
import TestSupport

/// Faults of a replicated CA under a 16-client `/sign` load spread over two replicas, by clients that
/// know both URLs and fail over (Tests/EndToEndTests/Resources/replica_load.py): a replica killed
/// with SIGKILL, and the PostgreSQL server stopped for 10 seconds. Each test has a PostgreSQL server
/// of its own, since stopping it must not disturb other tests.
@Suite(.serialized, .enabled(if: TemporaryPostgres.isAvailable)) struct ReplicaFaultsEndToEndTests {
    struct LoadOutcome {
        var issued: [(serial: String, time: Double)]
        var failures: [[String: Any]]
        var unavailable: Int
        var connectionErrors: Int
    }

    /// Starts the load in the background; `finish` waits for it and parses its report.
    final class Load: @unchecked Sendable {
        let process = Process()
        let output: String

        init(_ replicas: ReplicasEndToEndTests.Replicas, seconds: Int, clients: Int = 16) throws {
            output = replicas.a.sandbox.root.file("load.json")
            FileManager.default.createFile(atPath: output, contents: nil)
            process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            process.arguments = [
                "python3", ReplicasEndToEndTests.resources + "/replica_load.py", replicas.a.rootPath, replicas.adminPassword,
                String(seconds), String(clients), replicas.a.url, replicas.b.url,
            ]
            let errors = replicas.a.sandbox.root.file("load.err")
            FileManager.default.createFile(atPath: errors, contents: nil)
            process.standardOutput = FileHandle(forWritingAtPath: output)
            process.standardError = FileHandle(forWritingAtPath: errors)
            try process.run()
        }

        func finish() throws -> LoadOutcome {
            process.waitUntilExit()
            let text = try readFile(output)
            guard process.terminationStatus == 0,
                  let object = try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any] else {
                throw TestFailure("the load generator failed (exit \(process.terminationStatus)): \(text)")
            }
            let issued = (object["issued"] as? [[Any]] ?? []).compactMap { pair -> (String, Double)? in
                guard pair.count == 2, let serial = pair[0] as? String, let time = pair[1] as? Double else { return nil }
                return (serial, time)
            }
            return LoadOutcome(
                issued: issued.map { (serial: $0.0, time: $0.1) }, failures: object["failures"] as? [[String: Any]] ?? [],
                unavailable: object["unavailable"] as? Int ?? 0, connectionErrors: object["connection_errors"] as? Int ?? 0)
        }
    }

    /// Every serial in the certificates table, as lowercase hex without leading zeros (Python's form).
    static func storedSerials(_ replicas: ReplicasEndToEndTests.Replicas) throws -> [String] {
        var environment = ProcessInfo.processInfo.environment
        environment["PGPASSWORD"] = replicas.postgres.password
        let query = try runProcess(
            "psql", ["-h", "127.0.0.1", "-p", String(replicas.postgres.port), "-U", replicas.postgres.user, "-d", replicas.database,
                     "-Atc", "SELECT serial FROM certificates"],
            environment: environment)
        guard query.status == 0 else { throw TestFailure("psql failed: \(query)") }
        return query.stdout.split(separator: "\n").map { String($0.lowercased().drop { $0 == "0" }) }
    }

    static func checkEveryReceivedCertificateIsStoredOnce(_ outcome: LoadOutcome, _ replicas: ReplicasEndToEndTests.Replicas) throws {
        let stored = try storedSerials(replicas)
        var counts: [String: Int] = [:]
        for serial in stored { counts[serial, default: 0] += 1 }
        let received = outcome.issued.map { String($0.serial.lowercased().drop { $0 == "0" }) }
        #expect(Set(received).count == received.count, "a serial was handed out twice")
        let missing = received.filter { counts[$0] != 1 }
        #expect(missing.isEmpty, "received but not stored exactly once: \(missing.prefix(5))")
    }

    @Test func killingAReplicaUnderLoadLosesNoIssuance() throws {
        let postgres = try TemporaryPostgres()
        defer { postgres.stop() }
        let replicas = try ReplicasEndToEndTests.startReplicas(on: postgres)
        let load = try Load(replicas, seconds: 10)
        sleep(3)
        replicas.a.kill9()
        let killedAt = Date().timeIntervalSince1970
        let outcome = try load.finish()
        #expect(outcome.failures.isEmpty, "failed issuances: \(outcome.failures.prefix(3))")
        let afterKill = outcome.issued.filter { $0.time > killedAt }
        print("replica killed under load: \(outcome.issued.count) issued (\(afterKill.count) after the kill), \(outcome.connectionErrors) connection failures failed over, \(outcome.failures.count) failed")
        #expect(outcome.issued.count > 20 && !afterKill.isEmpty, "issued \(outcome.issued.count), after the kill \(afterKill.count)")
        try Self.checkEveryReceivedCertificateIsStoredOnce(outcome, replicas)
        // B noticed nothing and still answers; A's heartbeat stops.
        #expect(replicas.b.process.isRunning)
        let health = try runProcess("curl", ["-sf", "--cacert", replicas.b.rootPath, replicas.b.url + "/health"])
        #expect(health.status == 0, "\(health)")
        #expect(replicas.b.stop() == 0)
    }

    @Test func aStoppedDatabaseMeans503sThenIssuanceResumesWithoutRestarts() throws {
        let postgres = try TemporaryPostgres()
        defer { postgres.stop() }
        let replicas = try ReplicasEndToEndTests.startReplicas(on: postgres)
        let load = try Load(replicas, seconds: 24)
        sleep(3)
        try postgres.stopServer()
        let stoppedAt = Date().timeIntervalSince1970
        // While it is down: issuance is refused with 503, /health says degraded, the roots are served.
        let degraded = try ReplicasEndToEndTests.eventually(within: 9) {
            let health = try runProcess("curl", ["-s", "--cacert", replicas.b.rootPath, replicas.b.url + "/health"])
            return health.stdout.contains("\"degraded\"")
        }
        #expect(degraded)
        let roots = try runProcess("curl", ["-sf", "--cacert", replicas.a.rootPath, replicas.a.url + "/roots.pem"])
        #expect(roots.status == 0 && roots.stdout.contains("BEGIN CERTIFICATE"))
        let crl = try runProcess("curl", ["-sf", "--cacert", replicas.a.rootPath, "-o", "/dev/null", replicas.a.url + "/crl"])
        #expect(crl.status == 0, "the last CRL is still served: \(crl)")
        let wait = 10 - (Date().timeIntervalSince1970 - stoppedAt)
        if wait > 0 { usleep(UInt32(wait * 1_000_000)) }
        try postgres.startServer()
        let restartedAt = Date().timeIntervalSince1970
        let outcome = try load.finish()

        let internalErrors = (replicas.a.log + replicas.b.log).split(separator: "\n").filter { $0.contains("internal error") }
        #expect(outcome.failures.isEmpty, "failed issuances: \(outcome.failures.prefix(3))\n\(internalErrors.prefix(3).joined(separator: "\n"))")
        #expect(outcome.unavailable > 0, "no 503 while the database was down")
        let resumed = outcome.issued.filter { $0.time > restartedAt }
        print("database stopped 10 s under load: \(outcome.issued.count) issued (\(resumed.count) after the restart), \(outcome.unavailable) answers 503, \(outcome.connectionErrors) connection failures, \(outcome.failures.count) failed")
        #expect(!resumed.isEmpty, "no issuance after the database came back (issued \(outcome.issued.count) in all)")
        #expect(replicas.a.process.isRunning && replicas.b.process.isRunning)
        try Self.checkEveryReceivedCertificateIsStoredOnce(outcome, replicas)
        let healthy = try ReplicasEndToEndTests.eventually(within: 15) {
            try runProcess("curl", ["-s", "--cacert", replicas.b.rootPath, replicas.b.url + "/health"]).stdout.contains("\"ok\"")
        }
        #expect(healthy)
        #expect(replicas.a.stop() == 0 && replicas.b.stop() == 0)
    }
}
