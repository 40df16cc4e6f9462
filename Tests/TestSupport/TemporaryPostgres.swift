import AutoSSLHost
import Foundation

/// A PostgreSQL server of its own for a test run: `initdb` in a temporary directory, `pg_ctl start`
/// on a free loopback port (password authentication over TCP, SCRAM), stopped and removed when the
/// value goes away. As root (CI) the server runs as the `postgres` user, which Debian's package
/// creates; PostgreSQL refuses to run as root.
public final class TemporaryPostgres: @unchecked Sendable {
    public let port: Int
    public let user = "autossl"
    public let password: String
    public let passwordFile: String
    let directory: String
    let dataDirectory: String
    let runAs: String?
    private let lock = NSLock()
    private var databases = 0

    /// Debian keeps the server programs out of PATH.
    public static var binDirectory: String? {
        let base = "/usr/lib/postgresql"
        let versions = ((try? FileManager.default.contentsOfDirectory(atPath: base)) ?? []).compactMap(Int.init).sorted()
        guard let newest = versions.last else { return nil }
        return "\(base)/\(newest)/bin"
    }

    /// One server for every PostgreSQL test of a test process, started on first use (and stopped at exit).
    public static let shared: Result<TemporaryPostgres, any Error> = Result { try TemporaryPostgres() }

    public static var isAvailable: Bool { binDirectory.map { FileManager.default.fileExists(atPath: $0 + "/initdb") } ?? false }

    public init() throws {
        guard let bin = Self.binDirectory else { throw TestFailure("PostgreSQL is not installed (apt-get install postgresql)") }
        port = freeLoopbackPort()
        password = "pg-" + UUID().uuidString
        directory = NSTemporaryDirectory() + "auto-ssl-pg-" + UUID().uuidString.prefix(8)
        dataDirectory = directory + "/data"
        runAs = getuid() == 0 ? "postgres" : nil
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        passwordFile = directory + "/client-password"
        try (password + "\n").write(toFile: passwordFile, atomically: true, encoding: .utf8)
        chmod(passwordFile, 0o600)
        let serverPasswordFile = directory + "/server-password"
        try (password + "\n").write(toFile: serverPasswordFile, atomically: true, encoding: .utf8)
        if runAs != nil {
            _ = try runProcess("chown", ["-R", "postgres:postgres", directory])
        }
        try run(bin + "/initdb", [
            "-D", dataDirectory, "-U", user, "--pwfile=\(serverPasswordFile)", "--auth-host=scram-sha-256", "--auth-local=trust",
            "--encoding=UTF8", "--no-instructions",
        ])
        try run(bin + "/pg_ctl", [
            "-D", dataDirectory, "-l", directory + "/server.log", "-w", "-t", "60",
            "-o", "-p \(port) -k \(directory) -c listen_addresses=127.0.0.1 -c fsync=on -c max_connections=200", "start",
        ])
        Self.stopAtExit(self)
    }

    deinit { stop() }

    /// Servers kept in statics are never deinitialised: they are stopped when the test process
    /// exits. A server left running would also keep every descriptor it inherited open (the build
    /// lock of `flock` among them).
    private static let running = NSLock()
    nonisolated(unsafe) private static var servers: [TemporaryPostgres] = []
    nonisolated(unsafe) private static var registered = false

    private static func stopAtExit(_ server: TemporaryPostgres) {
        running.withLock {
            servers.append(server)
            if !registered {
                registered = true
                atexit {
                    TemporaryPostgres.running.withLock {
                        for server in TemporaryPostgres.servers { server.stop() }
                        TemporaryPostgres.servers.removeAll()
                    }
                }
            }
        }
    }

    /// Runs a PostgreSQL program (as the server's user when we are root). Its output goes to a
    /// file, not a pipe: the server that `pg_ctl start` leaves running would keep a pipe open, and
    /// a reader waiting for its end would wait forever.
    func run(_ executable: String, _ arguments: [String]) throws {
        let command = (runAs.map { ["/usr/sbin/runuser", "-u", $0, "--"] } ?? []) + [executable] + arguments
        let outcome = try SpawnedProcess.run(command, timeout: 120)
        guard outcome.status == 0, !outcome.timedOut else {
            let log = (try? String(contentsOfFile: directory + "/server.log", encoding: .utf8)) ?? ""
            throw TestFailure("\(command.joined(separator: " ")) exited \(outcome.status): \(outcome.output)\n\(log)")
        }
    }

    /// `postgres://autossl@127.0.0.1:PORT/DATABASE`
    public func url(database: String) -> String { "postgres://\(user)@127.0.0.1:\(port)/\(database)" }

    /// A new, empty database owned by the test user.
    public func makeDatabase(_ prefix: String = "ca") throws -> String {
        let name: String = lock.withLock {
            databases += 1
            return "\(prefix)_\(databases)_\(getpid())"
        }
        guard let bin = Self.binDirectory else { throw TestFailure("PostgreSQL is not installed") }
        try run(bin + "/createdb", ["-h", directory, "-p", String(port), "-U", user, name])
        return name
    }

    /// Stops the server (fast shutdown: open connections are closed).
    public func stopServer() throws {
        guard let bin = Self.binDirectory else { return }
        try run(bin + "/pg_ctl", ["-D", dataDirectory, "-m", "fast", "-w", "stop"])
    }

    /// Starts it again on the same port and data.
    public func startServer() throws {
        guard let bin = Self.binDirectory else { return }
        try run(bin + "/pg_ctl", [
            "-D", dataDirectory, "-l", directory + "/server.log", "-w", "-t", "60",
            "-o", "-p \(port) -k \(directory) -c listen_addresses=127.0.0.1 -c fsync=on -c max_connections=200", "start",
        ])
    }

    public func stop() {
        guard let bin = Self.binDirectory else { return }
        // Immediate: nothing of a test database needs a clean shutdown.
        try? run(bin + "/pg_ctl", ["-D", dataDirectory, "-m", "immediate", "-w", "stop"])
        try? FileManager.default.removeItem(atPath: directory)
    }
}
