import ArgumentParser
import AutoSSLBench
import AutoSSLCA
import AutoSSLConfig
import AutoSSLCore
import AutoSSLHost
import AutoSSLIO
import Foundation

struct BenchACMECommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "acme",
        abstract: "Full ACME issuances with real http-01 validation; print rate, latency and the server's CPU per certificate.",
        discussion: """
            Creates a throw-away CA in a temporary directory whose ACME provisioner validates http-01 on \
            this machine's loopback responder, starts `auto-ssl ca serve` for it as a child process (the \
            `auto-ssl` next to this binary, or --server-binary), and runs --clients ACME clients, each with \
            its own account, for --seconds: new order for 127.0.0.1, the authorization read, the \
            challenge answered and validated by the CA over HTTP, the authorization and the order polled \
            every 50 ms, finalize with a fresh P-256 CSR, the chain downloaded. The server's CPU comes \
            from /proc; every issued certificate must be a row of the CA's database. Build with -c \
            release to measure. scripts/bench-peers drives the same issuances with python3-acme against \
            this CA and Caddy's acme_server.
            """)

    @Option(help: "Concurrent ACME clients (one account each).") var clients = 4
    @Option(help: "Seconds of measured issuances.") var seconds = 10.0
    @Option(help: "Seconds of issuances first, unmeasured.") var warmup = 2.0
    @Flag(help: "Print JSON.") var json = false
    @Option(help: ArgumentHelp("The auto-ssl binary whose `ca serve` is measured (default: the one next to this binary).", valueName: "path"))
    var serverBinary: String?

    func run() async throws {
        guard (1...256).contains(clients), seconds > 0, seconds <= 3_600, warmup >= 0, warmup <= 600 else {
            throw ValidationError("--clients is 1 to 256, --seconds above 0 and at most 3600, --warmup 0 to 600")
        }
        let (workspace, directories, options, port) = try BenchProcess.throwAwayCA()
        defer { try? FileManager.default.removeItem(atPath: workspace) }
        let created = try CAInitializer(directories: directories).initialise(options)

        // The responder first: its port goes into the provisioner's settings before the CA starts.
        let responder = try await HTTP01Responder.start(port: try NetworkAddresses.freeLoopbackPort())
        var configuration = try AutoSSLConfiguration.load(from: directories.configFile)
        guard var ca = configuration.ca, var provisioners = ca.acmeProvisioners, let index = provisioners.firstIndex(where: { $0.name == "acme" }) else {
            throw AutoSSLError.general("the throw-away CA has no ACME provisioner named acme")
        }
        provisioners[index].validationAllow = ["127.0.0.0/8"]
        provisioners[index].http01Port = responder.port
        provisioners[index].challenges = ["http-01"]
        ca.acmeProvisioners = provisioners
        configuration.ca = ca
        try configuration.save(to: directories.configFile)

        let server = try BenchProcess.serve(directories, binary: try BenchProcess.serverBinary(serverBinary))
        defer {
            if server.isRunning {
                kill(server.processIdentifier, SIGTERM)
                server.waitUntilExit()
            }
        }
        let url = "https://127.0.0.1:\(port)"
        let client = try await BenchProcess.waitForServer(url: url, fingerprint: created.rootFingerprint)
        let benchmark = ACMEBenchmark(directoryURL: url + "/acme/acme/directory", rootDER: try client.root.derBytes())
        await client.shutdown()

        var warmedUp = 0
        if warmup > 0 {
            Output.standardError("warming up for \(warmup) s...\n")
            warmedUp = try await benchmark.run(clients: clients, seconds: warmup, responder: responder).issued
        }
        Output.standardError("issuing for \(seconds) s with \(clients) ACME clients...\n")
        let serverCPUBefore = BenchProcess.cpuSeconds(pid: server.processIdentifier)
        let ownCPUBefore = BenchProcess.cpuSeconds(pid: getpid())
        let result = try await benchmark.run(clients: clients, seconds: seconds, responder: responder)
        func perCertificate(_ before: Double?, _ after: Double?) -> Double? {
            guard let before, let after, result.issued > 0 else { return nil }
            return (after - before) / Double(result.issued) * 1_000
        }
        let serverCPU = perCertificate(serverCPUBefore, BenchProcess.cpuSeconds(pid: server.processIdentifier))
        let loadGeneratorCPU = perCertificate(ownCPUBefore, BenchProcess.cpuSeconds(pid: getpid()))
        let peakRSS = BenchProcess.peakRSSKilobytes(pid: server.processIdentifier)
        kill(server.processIdentifier, SIGTERM)
        server.waitUntilExit()
        await responder.close()
        // Every certificate a client downloaded is a durable row (read after the server stopped;
        // the server's own TLS certificate is one more).
        let stored = try await Self.storedCertificates(directories) - warmedUp

        if json {
            try Output.json(BenchReport(
                result: result, serverCPU: serverCPU, loadGeneratorCPU: loadGeneratorCPU, serverPeakRSSKilobytes: peakRSS,
                storedCertificates: stored, cpuUnit: "ms"))
        } else {
            print(String(format: "issued        %d certificates (%d failed), %d ACME clients, %d requests", result.issued, result.failed, result.clients, result.requests))
            print(String(format: "duration      %.2f s", result.seconds))
            print(String(format: "throughput    %.1f certificates/s", result.certificatesPerSecond))
            print(String(format: "issuance      p50 %.1f ms, p99 %.1f ms (order to downloaded chain)", result.p50Milliseconds, result.p99Milliseconds))
            if let serverCPU, let loadGeneratorCPU {
                print(String(format: "CPU           server %.2f ms, load generator %.2f ms per certificate", serverCPU, loadGeneratorCPU))
            }
            print("server RSS    \(peakRSS.map { "\($0 / 1024) MiB peak" } ?? "unknown")")
            print("stored        \(stored) certificate rows besides the warm-up's (the server's own TLS certificate is one)")
            if let error = result.firstError { print("first error   \(error)") }
        }
        if result.failed > 0 { throw AutoSSLError.general("\(result.failed) issuances failed; the first: \(result.firstError ?? "?")") }
        if stored < result.issued {
            throw AutoSSLError.general("\(result.issued) certificates were downloaded but only \(stored) are in the database")
        }
    }

    /// Certificate rows in the CA's database, through the CA's own store.
    static func storedCertificates(_ directories: Directories) async throws -> Int {
        let loader = AuthorityLoader(directories: directories)
        let store = try await loader.openDatabase(try loader.settings()).certificates
        let count = try await store.certificates(.init(), now: Date()).count
        try await store.close()
        return count
    }
}
