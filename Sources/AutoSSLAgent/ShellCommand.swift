import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// Runs an operator-supplied command (`--exec`, a reload command) through /bin/sh.
///
/// Output goes to a temporary file rather than a pipe: a reload command may start a daemon that
/// inherits its descriptors, and reading a pipe to its end would then wait for that daemon.
public enum ShellCommand {
    public struct Outcome: Sendable, Equatable {
        public var status: Int32
        public var output: String
        public var timedOut: Bool
    }

    public static func run(_ command: String, timeout: TimeInterval = 120) throws -> Outcome {
        let outputURL = FileManager.default.temporaryDirectory.appendingPathComponent("auto-ssl-exec-\(UUID().uuidString)")
        FileManager.default.createFile(atPath: outputURL.path, contents: nil, attributes: [.posixPermissions: 0o600])
        defer { try? FileManager.default.removeItem(at: outputURL) }
        let output = try FileHandle(forWritingTo: outputURL)
        defer { try? output.close() }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        process.arguments = ["-c", command]
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = output
        process.standardError = output
        try process.run()
        let deadline = Date().addingTimeInterval(timeout)
        var timedOut = false
        while process.isRunning {
            if Date() > deadline {
                timedOut = true
                process.terminate()
                usleep(200_000)
                if process.isRunning { kill(process.processIdentifier, SIGKILL) }
                break
            }
            usleep(20_000)
        }
        process.waitUntilExit()
        let text = (try? String(contentsOf: outputURL, encoding: .utf8)) ?? ""
        return Outcome(status: process.terminationStatus, output: String(text.suffix(4_000)), timedOut: timedOut)
    }
}
