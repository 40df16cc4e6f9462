import ArgumentParser
import AutoSSLBackup
import AutoSSLCA
import AutoSSLConfig
import AutoSSLBench
import AutoSSLClient
import AutoSSLCore
import AutoSSLHost
import AutoSSLIO
import AutoSSLStore
import Foundation

struct BenchSignCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sign",
        abstract: "Issue certificates through the real HTTPS API with concurrent clients; print rate, latency, server RSS.",
        discussion: """
            Creates a throw-away CA in a temporary directory, starts `auto-ssl ca serve` for it as a child \
            process on a loopback port (the `auto-ssl` next to this binary, or --server-binary), prepares one CSR and one-time token per request, then sends them \
            over --concurrency keep-alive HTTPS connections, one request in flight on each, from a \
            single-threaded NIO load generator (it shares the machine with the server, so it is kept \
            lean, like wrk). Every certificate is durably recorded (SQLite, synchronous=FULL) before it \
            is returned, as in production. Build with -c release to measure.
            """)

    @Option(help: "Concurrent clients (keep-alive connections).") var concurrency = 16
    @Option(help: "Certificates to issue in the measured run.") var requests = 20_000
    @Option(help: "Certificates issued first, unmeasured.") var warmup = 1_000
    @Flag(help: "Print JSON.") var json = false
    @Flag(help: "Call the authority directly (no HTTP, no TLS): isolates issuance + durable storage.")
    var inProcess = false
    @Option(help: ArgumentHelp(
        "Keep the throw-away CA's records in this empty PostgreSQL database (postgres://USER@HOST[:PORT]/DB) instead of SQLite.",
        valueName: "url"))
    var database: String?
    @Option(help: ArgumentHelp("File holding the PostgreSQL password (default: PGPASSFILE or ~/.pgpass).", valueName: "file"))
    var databasePasswordFile: String?
    @Option(help: "With --database: serve the CA from this many replicas (1 or 2), the connections spread over them.")
    var replicas = 1
    @Option(help: ArgumentHelp("The auto-ssl binary whose `ca serve` is measured (default: the one next to this binary).", valueName: "path"))
    var serverBinary: String?

    func run() async throws {
        guard concurrency > 0, requests > 0, warmup >= 0 else { throw AutoSSLError.invalidArgument("counts must be positive") }
        let (workspace, directories, initialOptions, port) = try BenchProcess.throwAwayCA()
        defer { try? FileManager.default.removeItem(atPath: workspace) }
        var options = initialOptions
        options.maximumDuration = .days(30)
        guard (1...2).contains(replicas), replicas == 1 || database != nil else {
            throw AutoSSLError.invalidArgument("--replicas is 1 or 2, and 2 needs --database")
        }
        let initializer = CAInitializer(directories: directories)
        if let database {
            let location = try PostgresLocation(url: database)
            let passwordFile = databasePasswordFile.map(Directories.absolute)
            options.database = DatabaseSettings(url: location.description, passwordFile: passwordFile)
            _ = try await initializer.checkSharedDatabase(options.database ?? DatabaseSettings(url: database), passwordFile: passwordFile)
        }
        let created = try initializer.initialise(options)
        if options.database != nil { try await initializer.bindSharedDatabase(created, databasePasswordFile: nil) }

        if inProcess {
            try await runInProcess(directories: directories, url: "https://127.0.0.1:\(port)")
            return
        }
        // A second replica: the CA restored from a backup of itself into its own directories, with its own port.
        var replicaURLs: [String] = []
        let binary = try BenchProcess.serverBinary(serverBinary)
        var servers = [try BenchProcess.serve(directories, binary: binary)]
        defer {
            for server in servers where server.isRunning {
                kill(server.processIdentifier, SIGTERM)
                server.waitUntilExit()
            }
        }
        let server = servers[0]
        let url = "https://127.0.0.1:\(port)"
        let client = try await BenchProcess.waitForServer(url: url, fingerprint: created.rootFingerprint)
        if replicas == 2 {
            let second = Directories(
                configDir: workspace + "/b/etc", dataDir: workspace + "/b/data", certDir: workspace + "/b/certs",
                systemdDir: workspace + "/b/systemd")
            try FileOperations.makeDirectory(second.dataDir, mode: 0o755)
            let passphrase = Passwords.generate()
            let (bundle, _) = try await CABackup(directories: directories).create(
                passphrase: passphrase, iterations: 1_000, toolVersion: AutoSSLBenchCommand.toolVersion)
            let target = CABackup(directories: second)
            let portB = try NetworkAddresses.freeLoopbackPort()
            _ = try target.restore(
                try target.open(bundle, passphrase: passphrase, iterations: 1_000), force: false,
                newAddress: ListenAddress(host: "127.0.0.1", port: portB))
            servers.append(try BenchProcess.serve(second, binary: binary))
            let urlB = "https://127.0.0.1:\(portB)"
            await (try BenchProcess.waitForServer(url: urlB, fingerprint: created.rootFingerprint)).shutdown()
            replicaURLs.append(urlB)
            // B accepts tokens made for A once it has read A's heartbeat (at its start: A's is there).
        }
        let password = Passwords.fromFileContents(try FileOperations.readText(directories.provisionerPasswordFile))
        let key = try await client.provisionerKey(name: options.provisionerName, password: password)
        let benchmark = SignBenchmark(client: client, provisioner: options.provisionerName, key: key)

        Output.standardError("preparing \(warmup + requests) CSRs and tokens...\n")
        let bodies = try benchmark.prepare(count: warmup + requests)
        if warmup > 0 {
            _ = try await benchmark.run(bodies: Array(bodies.prefix(warmup)), concurrency: concurrency, alsoTo: replicaURLs)
        }
        Output.standardError("issuing \(requests) certificates with \(concurrency) concurrent clients...\n")
        let serverCPUBefore = BenchProcess.cpuSeconds(servers)
        let ownCPUBefore = BenchProcess.cpuSeconds(pid: getpid())
        let result = try await benchmark.run(bodies: Array(bodies.suffix(requests)), concurrency: concurrency, alsoTo: replicaURLs)
        // CPU per certificate of each side over the measured run: on a shared machine this says
        // where the time goes more steadily than the rate does.
        func perCertificate(_ before: Double?, _ after: Double?) -> Double? {
            guard let before, let after, result.succeeded > 0 else { return nil }
            return (after - before) / Double(result.succeeded) * 1_000_000
        }
        let serverCPU = perCertificate(serverCPUBefore, BenchProcess.cpuSeconds(servers))
        let loadGeneratorCPU = perCertificate(ownCPUBefore, BenchProcess.cpuSeconds(pid: getpid()))
        let peakRSS = BenchProcess.peakRSSKilobytes(pid: server.processIdentifier)
        await client.shutdown()

        // Every issued certificate must be in the database (durable rows, not just responses).
        for server in servers {
            kill(server.processIdentifier, SIGTERM)
            server.waitUntilExit()
        }
        let loader = AuthorityLoader(directories: directories)
        let store = try await loader.openDatabase(try loader.settings()).certificates
        let stored = try await store.certificates(.init(), now: Date()).count
        try await store.close()

        if json {
            try Output.json(BenchReport(
                result: result, serverCPU: serverCPU, loadGeneratorCPU: loadGeneratorCPU, serverPeakRSSKilobytes: peakRSS,
                storedCertificates: stored, cpuUnit: "us"))
        } else {
            print(String(format: "requests      %d (%d ok, %d failed), %d concurrent clients", result.requests, result.succeeded, result.failed, result.concurrency))
            print(String(format: "duration      %.2f s", result.seconds))
            print(String(format: "throughput    %.0f certificates/s", result.certificatesPerSecond))
            print(String(format: "latency       p50 %.2f ms, p90 %.2f ms, p99 %.2f ms, max %.2f ms", result.p50Milliseconds, result.p90Milliseconds, result.p99Milliseconds, result.maxMilliseconds))
            print("server RSS    \(peakRSS.map { "\($0 / 1024) MiB peak" } ?? "unknown")")
            if let serverCPU, let loadGeneratorCPU {
                print(String(format: "CPU           server %.0f µs, load generator %.0f µs per certificate", serverCPU, loadGeneratorCPU))
            }
            print("stored        \(stored) certificate rows (incl. the server's own TLS certificate and warm-up)")
            if let error = result.firstError { print("first error   \(error)") }
        }
        if result.failed > 0 { throw AutoSSLError.general("\(result.failed) requests failed") }
    }

    /// The authority alone: same CSRs, tokens and durable store, no network stack.
    func runInProcess(directories: Directories, url: String) async throws {
        let load = try await InProcessLoad(directories: directories)
        Output.standardError("preparing \(warmup + requests) CSRs and tokens...\n")
        let prepared = try load.requests(warmup + requests, prefix: "bench", url: url)
        _ = await load.run(prepared[..<warmup], lanes: concurrency)
        let (seconds, latencies) = await load.run(prepared[warmup...], lanes: concurrency)
        func percentile(_ p: Double) -> Double { latencies.isEmpty ? 0 : latencies[min(latencies.count - 1, Int(Double(latencies.count) * p))] }
        print(String(format: "in-process    %d of %d issued, %d concurrent tasks, no HTTP/TLS", latencies.count, requests, concurrency))
        print(String(format: "throughput    %.0f certificates/s", Double(latencies.count) / seconds))
        print(String(format: "latency       p50 %.2f ms, p99 %.2f ms", percentile(0.5), percentile(0.99)))
        print("process RSS   \(BenchProcess.peakRSSKilobytes(pid: getpid()).map { "\($0 / 1024) MiB peak" } ?? "unknown")")
        try await load.authority.close()
    }
}
