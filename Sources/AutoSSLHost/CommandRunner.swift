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
        for directory in directories {
            let candidate = directory + "/" + name
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        return nil
    }

    /// Runs a program with stdin closed; returns nil when it cannot be started. Output is stdout and
    /// stderr together, capped at 64 KiB. A program that outlives `timeout` is killed.
    public func run(_ executable: String, _ arguments: [String], timeout: TimeInterval = 10) -> CommandResult? {
        guard let path = executable.hasPrefix("/") ? executable : which(executable) else { return nil }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        process.standardInput = FileHandle.nullDevice
        do {
            try process.run()
        } catch {
            return nil
        }
        let deadline = DispatchTime.now() + timeout
        let killer = DispatchWorkItem { if process.isRunning { process.terminate() } }
        DispatchQueue.global().asyncAfter(deadline: deadline, execute: killer)
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        killer.cancel()
        let output = String(decoding: data.prefix(65_536), as: UTF8.self)
        return CommandResult(status: process.terminationStatus, output: output)
    }
}
