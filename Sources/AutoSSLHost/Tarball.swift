import AutoSSLCore
import Foundation

/// gzip-compressed tar archives through the system's GNU tar, so that what we write is exactly what
/// `tar -xz` reads back, and what an administrator made by hand is what we read.
public enum Tarball {
    /// Archives `member` (a directory inside `directory`) and returns the .tar.gz bytes.
    public static func create(directory: String, member: String) throws -> [UInt8] {
        try run(["-C", directory, "--sort=name", "--owner=0", "--group=0", "--numeric-owner", "-czf", "-", member], input: nil)
    }

    /// Extracts .tar.gz bytes into `directory`. GNU tar refuses members with `..` and strips leading `/`.
    public static func extract(_ data: [UInt8], into directory: String) throws {
        _ = try run(["-C", directory, "--no-same-owner", "-xzf", "-"], input: data)
    }

    static func run(_ arguments: [String], input: [UInt8]?) throws -> [UInt8] {
        guard let tar = SystemCommandRunner().which("tar") else {
            throw AutoSSLError(.missingDependency, "tar is not installed", hint: "install the tar package")
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: tar)
        process.arguments = arguments
        let output = Pipe()
        let errors = Pipe()
        let stdin = Pipe()
        process.standardOutput = output
        process.standardError = errors
        process.standardInput = input == nil ? FileHandle.nullDevice : stdin
        try process.run()
        let writer = Thread {
            if let input { stdin.fileHandleForWriting.write(Data(input)) }
            try? stdin.fileHandleForWriting.close()
        }
        if input != nil { writer.start() }
        let errorBox = ErrorText()
        let done = DispatchSemaphore(value: 0)
        let reader = Thread {
            errorBox.text = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            done.signal()
        }
        reader.start()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        done.wait()
        guard process.terminationStatus == 0 else {
            throw AutoSSLError.general("tar failed: \(errorBox.text.trimmingCharacters(in: .whitespacesAndNewlines))")
        }
        return Array(data)
    }
}

private final class ErrorText: @unchecked Sendable {
    var text = ""
}
