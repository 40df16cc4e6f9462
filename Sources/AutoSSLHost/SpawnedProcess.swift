import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// Runs a program with stdin from /dev/null and stdout + stderr into a temporary file, waiting with
/// `waitpid` on the program itself.
///
/// Foundation's `Process` with a pipe waits for the pipe to close, so a child that leaves a
/// descendant holding its output (a daemon started by a reload command, an ssh master connection)
/// would hang the caller. The program also gets its own process group, so a timeout stops
/// everything it started in the foreground.
public enum SpawnedProcess {
    public struct Outcome: Sendable, Equatable {
        public var status: Int32
        public var output: String
        public var timedOut: Bool

        public init(status: Int32, output: String, timedOut: Bool) {
            self.status = status
            self.output = output
            self.timedOut = timedOut
        }
    }

    public struct LaunchError: Error, CustomStringConvertible, Sendable {
        public var message: String
        public var description: String { message }
    }

    /// `arguments[0]` is the program's absolute path.
    public static func run(_ arguments: [String], timeout: TimeInterval) throws -> Outcome {
        precondition(!arguments.isEmpty && arguments[0].hasPrefix("/"), "an absolute program path comes first")
        let outputPath = FileManager.default.temporaryDirectory.appendingPathComponent("auto-ssl-run-\(UUID().uuidString)").path
        let outputFD = open(outputPath, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard outputFD >= 0 else { throw LaunchError(message: "could not create \(outputPath): \(String(cString: strerror(errno)))") }
        defer {
            close(outputFD)
            unlink(outputPath)
        }

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, outputFD, 1)
        posix_spawn_file_actions_adddup2(&actions, outputFD, 2)
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK))
        posix_spawnattr_setpgroup(&attributes, 0)
        // The caller may ignore SIGTERM/SIGINT (the renewal daemon does); the child starts with defaults.
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for number in [SIGTERM, SIGINT, SIGPIPE, SIGHUP] { sigaddset(&defaults, number) }
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        var emptyMask = sigset_t()
        sigemptyset(&emptyMask)
        posix_spawnattr_setsigmask(&attributes, &emptyMask)

        var argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
        defer { for pointer in argv { free(pointer) } }
        var pid: pid_t = 0
        let spawned = posix_spawn(&pid, arguments[0], &actions, &attributes, &argv, environ)
        guard spawned == 0 else {
            throw LaunchError(message: "could not start \(arguments[0]): \(String(cString: strerror(spawned)))")
        }

        let deadline = Date().addingTimeInterval(timeout)
        var status: Int32 = 0
        var timedOut = false
        var escalated = false
        while true {
            let result = waitpid(pid, &status, WNOHANG)
            if result == pid { break }
            if result < 0 && errno != EINTR { break }
            if Date() > deadline {
                if !timedOut {
                    timedOut = true
                    kill(-pid, SIGTERM)
                } else if !escalated, Date() > deadline.addingTimeInterval(2) {
                    escalated = true
                    kill(-pid, SIGKILL)
                }
            }
            usleep(10_000)
        }
        let exitStatus = status & 0x7F == 0 ? (status >> 8) & 0xFF : 128 + (status & 0x7F)
        let text = (try? String(contentsOfFile: outputPath, encoding: .utf8)) ?? ""
        return Outcome(status: exitStatus, output: String(text.suffix(4_000)), timedOut: timedOut)
    }
}
