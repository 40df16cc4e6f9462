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
    /// With TLS: the PEM file of the root that signed the server's certificate (made with the
    /// openssl CLI, for DNS `localhost` and IP 127.0.0.1 only), and a root that signed nothing.
    public let rootCertificateFile: String?
    public let otherRootCertificateFile: String?
    let serverOptions: String
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

    /// A second server for the TLS tests: `ssl = on`, and `pg_hba.conf` admits only TLS connections
    /// (plain ones get PostgreSQL's "no encryption" refusal). It also listens on 127.0.0.2, a
    /// name its certificate does not hold.
    public static let sharedTLS: Result<TemporaryPostgres, any Error> = Result { try TemporaryPostgres(tls: true) }

    public static var isAvailable: Bool { binDirectory.map { FileManager.default.fileExists(atPath: $0 + "/initdb") } ?? false }

    public init(tls: Bool = false) throws {
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
        let common = "-p \(port) -k \(directory) -c fsync=on -c max_connections=200"
        if tls {
            rootCertificateFile = directory + "/root.pem"
            otherRootCertificateFile = directory + "/other-root.pem"
            serverOptions = common + " -c listen_addresses=127.0.0.1,127.0.0.2 -c ssl=on -c ssl_cert_file=server.pem -c ssl_key_file=server.key"
        } else {
            rootCertificateFile = nil
            otherRootCertificateFile = nil
            serverOptions = common + " -c listen_addresses=127.0.0.1"
        }
        try run(bin + "/initdb", [
            "-D", dataDirectory, "-U", user, "--pwfile=\(serverPasswordFile)", "--auth-host=scram-sha-256", "--auth-local=trust",
            "--encoding=UTF8", "--no-instructions",
        ])
        if let root = rootCertificateFile, let other = otherRootCertificateFile {
            try Self.makeCertificates(root: root, other: other, in: directory, data: dataDirectory, runAs: runAs)
            // Only TLS over TCP; the Unix socket (createdb, psql in tests) stays trusted.
            let hba = "local all all trust\nhostssl all all 127.0.0.0/8 scram-sha-256\n"
            try hba.write(toFile: dataDirectory + "/pg_hba.conf", atomically: false, encoding: .utf8)
        }
        try run(bin + "/pg_ctl", [
            "-D", dataDirectory, "-l", directory + "/server.log", "-w", "-t", "60", "-o", serverOptions, "start",
        ])
        Self.stopAtExit(self)
    }

    /// A root and a server certificate (P-256, two days) made by the openssl CLI, the key in the data
    /// directory with the mode PostgreSQL demands; and a second root that signed nothing.
    static func makeCertificates(root: String, other: String, in directory: String, data: String, runAs: String?) throws {
        func openssl(_ arguments: [String]) throws {
            let result = try runProcess("openssl", arguments)
            guard result.status == 0 else { throw TestFailure("openssl \(arguments.joined(separator: " ")): \(result)") }
        }
        for (certificate, name) in [(root, "pg-test-root"), (other, "pg-test-other-root")] {
            try openssl([
                "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", certificate + ".key",
                "-out", certificate, "-subj", "/CN=\(name)", "-days", "2",
                "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
            ])
        }
        try openssl([
            "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", data + "/server.key",
            "-out", directory + "/server.csr", "-subj", "/CN=pg-test-server",
        ])
        try "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n"
            .write(toFile: directory + "/server.ext", atomically: false, encoding: .utf8)
        try openssl([
            "x509", "-req", "-in", directory + "/server.csr", "-CA", root, "-CAkey", root + ".key", "-CAcreateserial",
            "-out", data + "/server.pem", "-days", "2", "-extfile", directory + "/server.ext",
        ])
        chmod(data + "/server.key", 0o600)
        if let runAs {
            _ = try runProcess("chown", ["\(runAs):\(runAs)", data + "/server.key", data + "/server.pem"])
        }
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

    /// `postgres://autossl@127.0.0.1:PORT/DATABASE`; with TLS, `?sslmode=verify-full&sslrootcert=ROOT`.
    public func url(database: String) -> String {
        let base = "postgres://\(user)@127.0.0.1:\(port)/\(database)"
        return rootCertificateFile.map { base + "?sslmode=verify-full&sslrootcert=\($0)" } ?? base
    }

    /// What psql prints for one query, run over the Unix socket (trusted, no password).
    public func query(_ sql: String, database: String) throws -> String {
        let command = (runAs.map { ["/usr/sbin/runuser", "-u", $0, "--"] } ?? []) + [
            "psql", "-h", directory, "-p", String(port), "-U", user, "-d", database, "-Atc", sql,
        ]
        let result = try runProcess(command[0], Array(command.dropFirst()))
        guard result.status == 0 else { throw TestFailure("psql: \(result)") }
        return result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    }

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
            "-D", dataDirectory, "-l", directory + "/server.log", "-w", "-t", "60", "-o", serverOptions, "start",
        ])
    }

    public func stop() {
        guard let bin = Self.binDirectory else { return }
        // Immediate: nothing of a test database needs a clean shutdown.
        try? run(bin + "/pg_ctl", ["-D", dataDirectory, "-m", "immediate", "-w", "stop"])
        try? FileManager.default.removeItem(atPath: directory)
    }
}
