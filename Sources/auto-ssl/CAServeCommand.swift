import ArgumentParser
import AutoSSLBackup
import AutoSSLCA
import AutoSSLConfig
import AutoSSLCore
import AutoSSLHost
import AutoSSLIO
import AutoSSLMetrics
import AutoSSLServer
import AutoSSLStore
import NIOCore
import NIOPosix
import Foundation
import Logging

struct CAServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Run the HTTPS CA in the foreground (for systemd or a terminal).",
        discussion: """
            Serves on the addresses in config.yaml. The CA password comes from --password-file, a systemd \
            credential named ca-password, or $AUTO_SSL_CONFIG_DIR/ca-password. SIGTERM or SIGINT stops \
            accepting connections, lets requests in flight finish, and exits 0.
            """)

    /// Set by main before the first task: whether EventLoopExecutor's hook was installed.
    nonisolated(unsafe) static var tasksOnEventLoops = false

    /// Where a task started now actually runs, checked rather than assumed (the hook can be
    /// installed and still not be used), for the startup output and the tests that read it.
    static func executorLine() async -> String {
        let onLoop = await Task.detached { EventLoopExecutor.onEventLoop }.value
        let loops = NIOSingletons.groupLoopCountSuggestion
        if tasksOnEventLoops && onLoop {
            return "event loops: \(loops) (they run the connections and the tasks)\n"
        }
        return "warning: tasks run on Dispatch's thread pool, not on the \(loops) event loops (another executor hook came first); requests cost more CPU\n"
    }

    @Option(help: ArgumentHelp("File holding the CA key password.", valueName: "file"))
    var passwordFile: String?

    @Option(help: ArgumentHelp("File holding the PostgreSQL password (a CA on PostgreSQL; default: the file recorded in config.yaml, a systemd credential named database-password, or PGPASSFILE).", valueName: "file"))
    var databasePasswordFile: String?

    @Option(help: ArgumentHelp("This replica's name in `ca status` (a CA on PostgreSQL). Default: the host name and first address.", valueName: "name"))
    var replicaName: String?

    /// "ca1 (10.0.0.5:9000)": unique per machine and address, readable in `ca status`.
    static func defaultReplicaName(_ settings: CASettings) -> String {
        NetworkAddresses.hostname() + (settings.addresses.first.map { " (\($0))" } ?? "")
    }

    func run() async throws {
        let directories = Directories.fromEnvironment()
        let loader = AuthorityLoader(directories: directories)
        // Held while the CA runs: `ca database migrate` is refused meanwhile, and this while it runs.
        let serveLock = try CALock.serving(try loader.settings())
        defer { serveLock.release() }
        // Committed writes resume on the event loop they came from (one job per loop and batch), and
        // the database writer runs ahead of the requests waiting on it (see WriterOptions).
        var writer = WriterOptions.serving(affinity: WaiterAffinity(
            current: { MultiThreadedEventLoopGroup.currentEventLoop },
            run: { loop, work in
                if let loop = loop as? any EventLoop { loop.execute(work) } else { work() }
            }))
        let metrics = CAMetrics(version: AutoSSLCommand.version)
        writer.onCommit = { operations, duration in metrics.commit(size: operations, duration: duration) }
        let (authority, database) = try await loader.open(
            passwordFile: passwordFile, writer: writer, databasePasswordFile: databasePasswordFile, metrics: metrics)
        let health = DatabaseHealth()
        var replica: ReplicaPresence?
        var presence: Task<Void, Never>?
        do {
            try CAServer.checkAddressesAreFree(authority.settings.addresses + [authority.settings.metricsAddress].compactMap { $0 })
            replica = try await ReplicaPresence.join(
                database, authority: authority, replicaName: replicaName ?? Self.defaultReplicaName(authority.settings),
                version: AutoSSLCommand.version, directories: directories, health: health)
            let watcher = SettingsWatcher(loader: loader)
            let server = try await CAServer(
                authority: authority, acmeDatabase: database.acme, reloadSettings: { try watcher.settings() }, databaseHealth: health,
                backupObservation: {
                    BackupState.last(directories).map {
                        BackupObservation(lastRun: $0.time, lastRunSucceeded: $0.succeeded, lastSuccess: $0.lastSuccess)
                    }
                },
                replicas: { [replica] in try? await replica?.replicas() })
            Output.standardError("auto-ssl CA \"\(authority.settings.name)\" (root \(authority.rootFingerprint))\n")
            Output.standardError(await Self.executorLine())
            if replica != nil { Output.standardError("database: \(database.location), shared with the CA's other replicas\n") }
            let running = replica
            presence = Task { await running?.run() }
            try await server.run(onRunning: { address in
                Output.standardError("listening on \(address)\n")
            })
        } catch {
            // Whatever failed, the replica leaves (no heartbeat left to look alive) and the database closes.
            if let presence {
                presence.cancel()
                await presence.value
            } else {
                await replica?.leave()
            }
            try? await authority.close()
            throw error
        }
        presence?.cancel()
        await presence?.value
        // The presence's end removed its heartbeat and closed its listener; the authority closes the database.
        try await authority.close()
        Output.standardError("stopped\n")
    }
}
