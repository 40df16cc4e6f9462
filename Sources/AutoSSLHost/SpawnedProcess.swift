import CAutoSSLSpawn
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
        /// The program wrote more than `run`'s output limit and was stopped.
        public var overflowed: Bool

        public init(status: Int32, output: String, timedOut: Bool, overflowed: Bool = false) {
            self.status = status
            self.output = output
            self.timedOut = timedOut
            self.overflowed = overflowed
        }
    }

    public struct LaunchError: Error, CustomStringConvertible, Sendable {
        public var message: String
        public var description: String { message }
    }

    /// `arguments[0]` is the program's absolute path. The output kept is its last 4,000
    /// characters; a program that writes more than `outputLimit` bytes (rsync relays what the
    /// remote side says) is stopped with its process group, as one that outlives `timeout` is.
    public static func run(_ arguments: [String], timeout: TimeInterval, outputLimit: Int = 16 << 20) throws -> Outcome {
        let outputPath = FileManager.default.temporaryDirectory.appendingPathComponent("auto-ssl-run-\(UUID().uuidString)").path
        let outputFD = open(outputPath, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard outputFD >= 0 else { throw LaunchError(message: "could not create \(outputPath): \(String(cString: strerror(errno)))") }
        defer {
            close(outputFD)
            unlink(outputPath)
        }

        let pid = try spawn(arguments, stdin: nil, stdout: outputFD, stderr: outputFD, environment: nil)
        let waited = wait(pid, deadline: Date().addingTimeInterval(timeout)) { fileSize(outputFD) > outputLimit }
        // Only the end is read: at most 16 KiB, whatever the program wrote.
        let end = fileSize(outputFD)
        let start = max(0, end - 16_384)
        var tail = [UInt8](repeating: 0, count: end - start)
        var total = 0
        while total < tail.count {
            let count = tail[total...].withUnsafeMutableBytes { pread(outputFD, $0.baseAddress, $0.count, off_t(start + total)) }
            if count < 0 && errno == EINTR { continue }
            if count <= 0 { break }
            total += count
        }
        let text = String(decoding: tail.prefix(total), as: UTF8.self)
        return Outcome(status: waited.status, output: String(text.suffix(4_000)), timedOut: waited.timedOut, overflowed: waited.overflowed)
    }

    /// The size of an open file, 0 when it cannot be read.
    static func fileSize(_ fd: Int32) -> Int {
        var info = stat()
        return fstat(fd, &info) == 0 ? Int(clamping: info.st_size) : 0
    }
}

extension SpawnedProcess {
    /// What `capture` saw: stdout and stderr apart, each at most the limit.
    public struct Captured: Sendable, Equatable {
        public var status: Int32
        public var stdout: [UInt8]
        public var stderr: String
        public var timedOut: Bool
        /// The program wrote more than the limit and was stopped.
        public var overflowed: Bool

        public init(status: Int32, stdout: [UInt8], stderr: String, timedOut: Bool, overflowed: Bool) {
            self.status = status
            self.stdout = stdout
            self.stderr = stderr
            self.timedOut = timedOut
            self.overflowed = overflowed
        }
    }

    /// Like `run`, for programs whose answer matters (ssh): `input` is written to the program's
    /// stdin through a pipe (then closed; nil means /dev/null), stdout and stderr are kept apart,
    /// and a program that writes more than `outputLimit` bytes to either, or outlives `timeout`,
    /// is stopped with its process group. Secrets go through `input`, never `arguments`.
    public static func capture(
        _ arguments: [String], input: [UInt8]? = nil, environment: [String: String]? = nil, timeout: TimeInterval,
        outputLimit: Int = 1 << 20
    ) throws -> Captured {
        let base = FileManager.default.temporaryDirectory.appendingPathComponent("auto-ssl-capture-\(UUID().uuidString)").path
        let outPath = base + ".out"
        let errPath = base + ".err"
        let outFD = open(outPath, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard outFD >= 0 else { throw LaunchError(message: "could not create \(outPath): \(String(cString: strerror(errno)))") }
        defer {
            close(outFD)
            unlink(outPath)
        }
        let errFD = open(errPath, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard errFD >= 0 else { throw LaunchError(message: "could not create \(errPath): \(String(cString: strerror(errno)))") }
        defer {
            close(errFD)
            unlink(errPath)
        }
        var pipeFDs: [Int32] = [-1, -1]
        if input != nil {
            // Close-on-exec from the start: a child spawned by another thread between pipe() and
            // fcntl() would keep the write end open, and this child would never see end of input.
            guard autossl_pipe_cloexec(&pipeFDs) == 0 else {
                throw LaunchError(message: "could not make a pipe: \(String(cString: strerror(errno)))")
            }
        }
        defer { for fd in pipeFDs where fd >= 0 { close(fd) } }

        let pid = try spawn(arguments, stdin: input != nil ? pipeFDs[0] : nil, stdout: outFD, stderr: errFD, environment: environment)
        if let input {
            close(pipeFDs[0])
            pipeFDs[0] = -1
            // Written from another thread, so a program that never reads cannot block this one.
            let writeFD = pipeFDs[1]
            pipeFDs[1] = -1
            signal(SIGPIPE, SIG_IGN)  // a program that exits without reading is not our death
            let feeder = Thread {
                var offset = 0
                while offset < input.count {
                    let written = input[offset...].withUnsafeBytes { Glibc.write(writeFD, $0.baseAddress, $0.count) }
                    if written < 0 && errno == EINTR { continue }
                    if written <= 0 { break }
                    offset += written
                }
                close(writeFD)
            }
            feeder.start()
        }

        let waited = wait(pid, deadline: Date().addingTimeInterval(timeout)) { fileSize(outFD) > outputLimit || fileSize(errFD) > outputLimit }
        func read(_ fd: Int32) -> [UInt8] {
            var bytes = [UInt8](repeating: 0, count: outputLimit)
            var total = 0
            while total < outputLimit {
                let count = bytes[total...].withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, off_t(total)) }
                if count < 0 && errno == EINTR { continue }
                if count <= 0 { break }
                total += count
            }
            return Array(bytes.prefix(total))
        }
        return Captured(
            status: waited.status, stdout: read(outFD), stderr: String(decoding: read(errFD), as: UTF8.self), timedOut: waited.timedOut,
            overflowed: waited.overflowed)
    }
}

extension SpawnedProcess {
    /// Starts `arguments` with posix_spawn: stdin from `stdin` (nil: /dev/null), stdout and stderr
    /// into the given descriptors, its own process group, SIGTERM/SIGINT/SIGPIPE/SIGHUP at their
    /// defaults and no signal blocked (the caller may ignore or block them: the renewal daemon
    /// ignores SIGTERM, and threads of a dispatch pool block most signals).
    static func spawn(_ arguments: [String], stdin: Int32?, stdout: Int32, stderr: Int32, environment: [String: String]?) throws -> pid_t {
        try requireAbsoluteProgram(arguments)
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        if let stdin {
            posix_spawn_file_actions_adddup2(&actions, stdin, 0)
        } else {
            posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        }
        posix_spawn_file_actions_adddup2(&actions, stdout, 1)
        posix_spawn_file_actions_adddup2(&actions, stderr, 2)
        // The child gets descriptors 0-2 only, even one a library opened without close-on-exec
        // (the CA's lock, its database, a listening socket).
        let closing = autossl_spawn_add_close_from(&actions, 3)
        guard closing == 0 else {
            throw LaunchError(message: "could not start \(arguments[0]): \(String(cString: strerror(closing)))")
        }
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK))
        posix_spawnattr_setpgroup(&attributes, 0)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for number in [SIGTERM, SIGINT, SIGPIPE, SIGHUP] { sigaddset(&defaults, number) }
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        var emptyMask = sigset_t()
        sigemptyset(&emptyMask)
        posix_spawnattr_setsigmask(&attributes, &emptyMask)

        var argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
        defer { for pointer in argv { free(pointer) } }
        var envp: [UnsafeMutablePointer<CChar>?] = environment.map { $0.map { strdup("\($0.key)=\($0.value)") } + [nil] } ?? []
        defer { for pointer in envp { free(pointer) } }
        var pid: pid_t = 0
        let spawned = envp.isEmpty
            ? posix_spawn(&pid, arguments[0], &actions, &attributes, &argv, environ)
            : posix_spawn(&pid, arguments[0], &actions, &attributes, &argv, &envp)
        guard spawned == 0 else {
            throw LaunchError(message: "could not start \(arguments[0]): \(String(cString: strerror(spawned)))")
        }
        return pid
    }

    /// The program comes first, as an absolute path (it may come from PATH or an option: an error,
    /// not a trap, when it is not).
    static func requireAbsoluteProgram(_ arguments: [String]) throws {
        guard let program = arguments.first, program.hasPrefix("/") else {
            throw LaunchError(message: "the program to run must be an absolute path, not \"\(arguments.first ?? "")\"")
        }
    }

    /// Waits for `pid` with `waitpid`. Past `deadline`, or once `overflowed()` says so, its process
    /// group gets SIGTERM, and SIGKILL 2 s later. The status is the exit code, or 128 + the signal.
    static func wait(_ pid: pid_t, deadline: Date, overflowed: () -> Bool) -> (status: Int32, timedOut: Bool, overflowed: Bool) {
        var status: Int32 = 0
        var timedOut = false
        var overflow = false
        var stopping: Date?
        while true {
            let result = waitpid(pid, &status, WNOHANG)
            if result == pid { break }
            if result < 0 && errno != EINTR { break }
            if stopping == nil {
                if Date() > deadline {
                    timedOut = true
                } else if overflowed() {
                    overflow = true
                }
                if timedOut || overflow {
                    stopping = Date()
                    kill(-pid, SIGTERM)
                }
            } else if let since = stopping, Date() > since.addingTimeInterval(2) {
                kill(-pid, SIGKILL)
                stopping = .distantFuture
            }
            usleep(5_000)
        }
        return (status & 0x7F == 0 ? (status >> 8) & 0xFF : 128 + (status & 0x7F), timedOut, overflow)
    }
}
