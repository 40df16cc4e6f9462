import AutoSSLHost
import Foundation

/// A temporary directory removed when the value is released... or explicitly with `remove()`.
public final class TemporaryDirectory: @unchecked Sendable {
    public let path: String

    public init(_ prefix: String = "auto-ssl-test") {
        var base = NSTemporaryDirectory()
        while base.count > 1, base.hasSuffix("/") { base.removeLast() }
        let template = base + "/\(prefix)-XXXXXX"
        var bytes = Array(template.utf8CString)
        guard let result = bytes.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else {
            fatalError("mkdtemp failed")  // a test machine without /tmp cannot run any test
        }
        path = String(cString: result)
    }

    deinit { try? FileManager.default.removeItem(atPath: path) }

    public func file(_ name: String) -> String { path + "/" + name }

    public func writeData(_ name: String, _ bytes: [UInt8]) throws -> String {
        let target = file(name)
        try Data(bytes).write(to: URL(fileURLWithPath: target))
        return target
    }

    public func write(_ name: String, _ contents: String, mode: Int = 0o600) throws -> String {
        let target = file(name)
        try contents.write(toFile: target, atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: mode], ofItemAtPath: target)
        return target
    }
}

public struct ProcessResult: Sendable, CustomStringConvertible {
    public var status: Int32
    public var stdout: String
    public var stderr: String

    public var description: String { "exit \(status)\nstdout:\n\(stdout)\nstderr:\n\(stderr)" }
}

/// Runs a program to completion. `stdin` is written then closed; nil means /dev/null (as in CI).
@discardableResult
public func runProcess(
    _ executable: String, _ arguments: [String], stdin: String? = nil, environment: [String: String]? = nil,
    currentDirectory: String? = nil
) throws -> ProcessResult {
    let process = Process()
    if executable.hasPrefix("/") {
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
    } else {
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [executable] + arguments
    }
    if let environment { process.environment = environment }
    if let currentDirectory { process.currentDirectoryURL = URL(fileURLWithPath: currentDirectory) }
    let out = Pipe()
    let err = Pipe()
    process.standardOutput = out
    process.standardError = err
    let input = Pipe()
    process.standardInput = stdin == nil ? FileHandle.nullDevice : input
    try process.run()
    if let stdin {
        input.fileHandleForWriting.write(Data(stdin.utf8))
        try input.fileHandleForWriting.close()
    }
    // Read both pipes concurrently so a chatty child cannot block on a full pipe.
    let errBox = DataBox()
    let group = DispatchGroup()
    group.enter()
    DispatchQueue.global().async {
        errBox.data = err.fileHandleForReading.readDataToEndOfFile()
        group.leave()
    }
    let outData = out.fileHandleForReading.readDataToEndOfFile()
    group.wait()
    process.waitUntilExit()
    return ProcessResult(
        status: process.terminationStatus, stdout: String(decoding: outData, as: UTF8.self),
        stderr: String(decoding: errBox.data, as: UTF8.self))
}

private final class DataBox: @unchecked Sendable {
    var data = Data()
}

/// Runs an inline Python 3 program (for independent checks with `cryptography` / `joserfc`).
@discardableResult
public func runPython(_ source: String, arguments: [String] = []) throws -> ProcessResult {
    try runProcess("python3", ["-c", source] + arguments)
}

public func fileMode(_ path: String) -> Int? {
    (try? FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? NSNumber)?.intValue
}

public func readFile(_ path: String) throws -> String {
    try String(contentsOfFile: path, encoding: .utf8)
}

/// SHA-256 of every regular file under `root`, keyed by relative path: to prove a tree is unchanged.
public func snapshotTree(_ root: String) throws -> [String: String] {
    var result: [String: String] = [:]
    guard let enumerator = FileManager.default.enumerator(atPath: root) else { return result }
    while let relative = enumerator.nextObject() as? String {
        let full = root + "/" + relative
        var isDirectory: ObjCBool = false
        FileManager.default.fileExists(atPath: full, isDirectory: &isDirectory)
        let mode = fileMode(full).map { String($0, radix: 8) } ?? "?"
        if isDirectory.boolValue {
            result[relative + "/"] = mode
        } else {
            let data = try Data(contentsOf: URL(fileURLWithPath: full))
            result[relative] = mode + " " + data.base64EncodedString()
        }
    }
    return result
}

/// The built `auto-ssl` binary: $AUTO_SSL_BINARY, else next to the running test bundle
/// (SwiftPM puts executables and test bundles in the same products directory).
public func autoSSLBinaryPath() -> String {
    if let explicit = ProcessInfo.processInfo.environment["AUTO_SSL_BINARY"], !explicit.isEmpty { return explicit }
    var directory = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent()
    for _ in 0..<4 {
        let candidate = directory.appendingPathComponent("auto-ssl").path
        if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        directory = directory.deletingLastPathComponent()
    }
    return "auto-ssl"
}

/// The benchmark binary, built next to `auto-ssl`.
public func autoSSLBenchBinaryPath() -> String {
    URL(fileURLWithPath: autoSSLBinaryPath()).deletingLastPathComponent().appendingPathComponent("auto-ssl-bench").path
}

/// A sandbox for one end-to-end test: every AUTO_SSL_* directory inside one temporary folder.
public final class Sandbox: @unchecked Sendable {
    public let root: TemporaryDirectory
    public var extraEnvironment: [String: String] = [:]

    public init() { root = TemporaryDirectory("auto-ssl-e2e") }

    public var configDir: String { root.file("etc") }
    public var dataDir: String { root.file("data") }
    public var certDir: String { root.file("certs") }
    public var systemdDir: String { root.file("systemd") }
    public var caDir: String { dataDir + "/ca" }

    public var environment: [String: String] {
        var env = ProcessInfo.processInfo.environment
        env["AUTO_SSL_CONFIG_DIR"] = configDir
        env["AUTO_SSL_DATA_DIR"] = dataDir
        env["AUTO_SSL_CERT_DIR"] = certDir
        env["AUTO_SSL_SYSTEMD_DIR"] = systemdDir
        env.removeValue(forKey: "AUTO_SSL_DEBUG")
        env.merge(extraEnvironment) { _, new in new }
        return env
    }

    @discardableResult
    public func run(_ arguments: [String], stdin: String? = nil) throws -> ProcessResult {
        try runProcess(autoSSLBinaryPath(), arguments, stdin: stdin, environment: environment, currentDirectory: root.path)
    }

    /// `auto-ssl-bench` with this sandbox's environment.
    public func bench(_ arguments: [String]) throws -> ProcessResult {
        try runProcess(autoSSLBenchBinaryPath(), arguments, environment: environment, currentDirectory: root.path)
    }
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
public func freeLoopbackPort() -> Int {
    (try? NetworkAddresses.freeLoopbackPort()) ?? 0
}

/// `auto-ssl ca serve` running in the background for one test; stopped with SIGTERM.
public final class RunningCA: @unchecked Sendable {
    public let sandbox: Sandbox
    public let port: Int
    public private(set) var process: Process
    public let stderrFile: String
    var serveArguments: [String] = []
    public var url: String { "https://127.0.0.1:\(port)" }
    public var rootPath: String { sandbox.caDir + "/certs/root_ca.crt" }

    /// Creates a CA on a free loopback port (plus `setup`, run before serving) and starts serving.
    public init(initArguments: [String] = [], setup: (Sandbox) throws -> Void = { _ in }) throws {
        sandbox = Sandbox()
        port = freeLoopbackPort()
        let created = try sandbox.run(
            ["ca", "init", "--non-interactive", "--name", "Serve CA", "--address", "127.0.0.1:\(port)"] + initArguments)
        guard created.status == 0 else { throw TestFailure("ca init failed: \(created)") }
        try setup(sandbox)
        stderrFile = sandbox.root.file("serve.log")
        FileManager.default.createFile(atPath: stderrFile, contents: nil)
        process = Process()
        try start()
    }

    /// Serves a CA that `sandbox` already holds (a restored replica, say) on `port`, with `arguments`
    /// added to `ca serve`.
    public init(serving sandbox: Sandbox, port: Int, arguments: [String] = []) throws {
        self.sandbox = sandbox
        self.port = port
        serveArguments = arguments
        stderrFile = sandbox.root.file("serve.log")
        FileManager.default.createFile(atPath: stderrFile, contents: nil)
        process = Process()
        try start()
    }

    /// Stops the server (if running) and starts it again on the same port and directories.
    public func restart() throws {
        stop()
        try start()
    }

    private func start() throws {
        let startedAt = log.count
        process = Process()
        process.executableURL = URL(fileURLWithPath: autoSSLBinaryPath())
        process.arguments = ["ca", "serve"] + serveArguments
        process.environment = sandbox.environment
        process.standardInput = FileHandle.nullDevice
        let output = FileHandle(forWritingAtPath: stderrFile)
        output?.seekToEndOfFile()
        process.standardOutput = output
        process.standardError = output
        try process.run()
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline {
            let started = String(log.dropFirst(startedAt))
            if started.contains("listening on") {
                // Every CA the tests start runs its tasks on the event loops (EventLoopExecutor):
                // a build where that silently stopped would otherwise pass with a slower server.
                guard started.contains("event loops: ") else {
                    process.terminate()
                    throw TestFailure("ca serve does not run its tasks on the event loops: \(started)")
                }
                return
            }
            if !process.isRunning { break }
            usleep(100_000)
        }
        process.terminate()
        throw TestFailure("ca serve did not start: \(log)")
    }

    public var fingerprint: String {
        get throws {
            let status = try sandbox.run(["ca", "status", "--json"])
            let object = try JSONSerialization.jsonObject(with: Data(status.stdout.utf8)) as? [String: Any]
            return object?["fingerprint"] as? String ?? ""
        }
    }

    /// SIGKILL: the replica dies as in a crash, nothing is shut down.
    public func kill9() {
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
    }

    /// SIGTERM, then the exit status. A server still running after `within` seconds (its own limit
    /// for requests in flight is 30 s) is a failed stop: its threads' stacks go to the log when gdb
    /// is installed, it is killed, and the status is `RunningCA.stopTimedOut`, so the test fails
    /// instead of hanging the suite.
    @discardableResult
    public func stop(within seconds: Double = 45) -> Int32 {
        guard process.isRunning else { return process.terminationStatus }
        kill(process.processIdentifier, SIGTERM)
        let deadline = Date().addingTimeInterval(seconds)
        while process.isRunning && Date() < deadline { usleep(20_000) }
        guard process.isRunning else { return process.terminationStatus }
        if FileManager.default.isExecutableFile(atPath: "/usr/bin/gdb"),
           let stacks = try? runProcess("/usr/bin/gdb", ["-p", "\(process.processIdentifier)", "-batch", "-ex", "thread apply all bt 30"]) {
            try? (log + "\n--- ca serve did not stop within \(seconds) s; its threads:\n" + stacks.stdout)
                .write(toFile: stderrFile, atomically: false, encoding: .utf8)
        }
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        return Self.stopTimedOut
    }

    /// What ``stop(within:)`` returns for a server that did not stop in time.
    public static let stopTimedOut: Int32 = -1

    public var log: String { (try? String(contentsOfFile: stderrFile, encoding: .utf8)) ?? "" }

    /// Waits until the server's output contains `text`. The listeners start concurrently, so only
    /// the first HTTPS one is known to be up when `RunningCA` returns.
    public func waitForLog(_ text: String, within seconds: Double = 10) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if log.contains(text) { return true }
            usleep(50_000)
        }
        return log.contains(text)
    }

    public var processIdentifier: Int32 { process.processIdentifier }

    /// The nice value of the server's thread named `name` (from /proc), nil while it has none.
    public func threadNice(named name: String) -> Int? {
        let tasks = "/proc/\(process.processIdentifier)/task"
        for task in (try? FileManager.default.contentsOfDirectory(atPath: tasks)) ?? [] {
            guard let comm = try? String(contentsOfFile: "\(tasks)/\(task)/comm", encoding: .utf8),
                  comm.trimmingCharacters(in: .newlines) == name,
                  let stat = try? String(contentsOfFile: "\(tasks)/\(task)/stat", encoding: .utf8),
                  let end = stat.range(of: ") ", options: .backwards) else { continue }
            // Fields after "(comm) " start at field 3 (state); nice is field 19.
            let fields = stat[end.upperBound...].split(separator: " ")
            if fields.count > 16, let nice = Int(fields[16]) { return nice }
        }
        return nil
    }

    public func auditEvents() throws -> [[String: Any]] {
        try readFile(sandbox.dataDir + "/audit.log").split(separator: "\n").compactMap {
            try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
        }
    }

    deinit { stop() }
}

public struct TestFailure: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}
