import Foundation

/// Runs external programs (firewall tools, version probes). Arguments never carry secrets.
public protocol CommandRunning: Sendable {
    func run(_ executable: String, _ arguments: [String], timeout: TimeInterval) -> CommandResult?
    func which(_ name: String) -> String?
}

public struct CommandResult: Sendable, Equatable {
    public var status: Int32
    public var output: String

    public init(status: Int32, output: String) {
        self.status = status
        self.output = output
    }
}

public struct SystemCommandRunner: CommandRunning {
    public init() {}

    /// Finds `name` on PATH (plus the sbin directories, where firewall tools live).
    public func which(_ name: String) -> String? {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        let directories = path.split(separator: ":").map(String.init) + ["/usr/sbin", "/sbin", "/usr/local/sbin"]
        // Only absolute directories: a relative PATH entry ("." or "bin") names a program by where
        // the command happens to run, and programs are run by absolute path.
        for directory in directories where directory.hasPrefix("/") {
            let candidate = directory + "/" + name
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        return nil
    }

    /// Runs a program with stdin from /dev/null; returns nil when it cannot be started. Output is
    /// its stdout then its stderr, at most 64 KiB. A program that outlives `timeout`, or writes
    /// more than 1 MiB to either, is stopped with its process group; one that leaves a daemon
    /// holding its output does not hang the caller (`SpawnedProcess` waits for the program, not
    /// for its output to close).
    public func run(_ executable: String, _ arguments: [String], timeout: TimeInterval = 10) -> CommandResult? {
        guard let path = executable.hasPrefix("/") ? executable : which(executable),
              let captured = try? SpawnedProcess.capture([path] + arguments, timeout: timeout)
        else { return nil }
        // stderr keeps a share of its own (its end, where the error usually is) beside a long stdout.
        let errors = Array(captured.stderr.utf8.suffix(16_384))
        let output = String(decoding: captured.stdout.prefix(65_536 - errors.count) + errors, as: UTF8.self)
        return CommandResult(status: captured.status, output: output)
    }
}
