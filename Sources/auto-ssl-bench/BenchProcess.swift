import AutoSSLCA
import AutoSSLClient
import AutoSSLConfig
import AutoSSLCore
import AutoSSLHost
import AutoSSLIO
import Foundation

/// The CA under test as a child process, and what /proc says about it: shared by the benchmarks
/// that start `auto-ssl ca serve`.
enum BenchProcess {
    /// A throw-away CA's directories under a new temporary directory (the caller removes `path`),
    /// and the options of a CA named "Bench CA" on a free loopback port.
    static func throwAwayCA() throws -> (path: String, directories: Directories, options: CAInitOptions, port: Int) {
        let path = NSTemporaryDirectory() + "auto-ssl-bench-" + UUID().uuidString
        let directories = Directories(
            configDir: path + "/etc", dataDir: path + "/data", certDir: path + "/certs", systemdDir: path + "/systemd")
        let port = try NetworkAddresses.freeLoopbackPort()
        var options = CAInitOptions()
        options.name = "Bench CA"
        options.addresses = [ListenAddress(host: "127.0.0.1", port: port)]
        return (path, directories, options, port)
    }

    static func waitForServer(url: String, fingerprint: String) async throws -> CAClient {
        var lastError: (any Error)?
        for _ in 0..<100 {
            do {
                return try await CAClient.connect(url: url, fingerprint: fingerprint)
            } catch {
                lastError = error
                try await Task.sleep(for: .milliseconds(100))
            }
        }
        throw lastError ?? AutoSSLError(.network, "the benchmark's CA server did not start")
    }

    /// The `auto-ssl` to measure: the given path, or the one built next to this binary.
    static func serverBinary(_ given: String?) throws -> String {
        let path = given.map(Directories.absolute)
            ?? URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent().appendingPathComponent("auto-ssl").path
        guard FileManager.default.isExecutableFile(atPath: path) else {
            throw AutoSSLError.invalidArgument("no auto-ssl binary at \(path): build it (swift build --product auto-ssl) or pass --server-binary PATH")
        }
        return path
    }

    /// `auto-ssl ca serve` for the CA in `directories`, as a child process.
    static func serve(_ directories: Directories, binary: String) throws -> Process {
        let server = Process()
        server.executableURL = URL(fileURLWithPath: binary)
        server.arguments = ["ca", "serve"]
        var environment = ProcessInfo.processInfo.environment
        environment["AUTO_SSL_CONFIG_DIR"] = directories.configDir
        environment["AUTO_SSL_DATA_DIR"] = directories.dataDir
        server.environment = environment
        server.standardOutput = FileHandle.nullDevice
        server.standardError = FileHandle.nullDevice
        try server.run()
        return server
    }

    /// The CPU time of all the servers together.
    static func cpuSeconds(_ servers: [Process]) -> Double? {
        var total = 0.0
        for server in servers {
            guard let seconds = cpuSeconds(pid: server.processIdentifier) else { return nil }
            total += seconds
        }
        return total
    }

    static func cpuSeconds(pid: Int32) -> Double? {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return nil }
        // After "pid (comm) " come state, ppid, ...: utime and stime are the 12th and 13th fields.
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        guard fields.count > 12, let user = Double(fields[11]), let system = Double(fields[12]) else { return nil }
        return (user + system) / Double(sysconf(Int32(_SC_CLK_TCK)))
    }

    static func peakRSSKilobytes(pid: Int32) -> Int? {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
              let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmHWM:") }) else { return nil }
        return Int(line.split(separator: " ").dropFirst().first { !$0.isEmpty }.map(String.init) ?? "")
    }
}

/// What `sign --json` and `acme --json` print: the run, the CPU per certificate of the server and
/// of the load generator (in the unit named in their keys), the server's peak RSS and the rows the
/// CA stored.
struct BenchReport<Run: Encodable>: Encodable {
    var result: Run
    var serverCPU: Double?
    var loadGeneratorCPU: Double?
    var serverPeakRSSKilobytes: Int?
    var storedCertificates: Int
    /// "us" or "ms".
    var cpuUnit: String

    struct Key: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(_ name: String) { stringValue = name }
        init?(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }

    func encode(to encoder: Encoder) throws {
        var container = encoder.container(keyedBy: Key.self)
        try container.encode(result, forKey: Key("result"))
        try container.encodeIfPresent(serverCPU, forKey: Key("server_cpu_\(cpuUnit)_per_certificate"))
        try container.encodeIfPresent(loadGeneratorCPU, forKey: Key("load_generator_cpu_\(cpuUnit)_per_certificate"))
        try container.encodeIfPresent(serverPeakRSSKilobytes, forKey: Key("server_peak_rss_kb"))
        try container.encode(storedCertificates, forKey: Key("stored_certificates"))
    }
}
