import AutoSSLCore
import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// File-system primitives with these guarantees: every write is atomic
/// (temp file + fsync + rename + fsync of the directory) with its final mode set before the rename,
/// and every failure becomes an AutoSSLError with the right exit code.
public enum FileOperations {
    /// Writes `data` to `path` atomically with `mode`. Readers see the old file or the new one, never a mix.
    public static func writeAtomically(_ data: some DataProtocol, to path: String, mode: mode_t) throws {
        let directory = Self.directory(of: path)
        let name = (path as NSString).lastPathComponent
        var template = Array("\(directory)/.\(name).tmp-XXXXXX".utf8CString)
        let fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
        guard fd >= 0 else { throw systemError(errno, "create a temporary file in \(directory)") }
        let tempPath = String(decoding: template.dropLast().map { UInt8(bitPattern: $0) }, as: UTF8.self)
        var committed = false
        defer {
            if !committed { unlink(tempPath) }
        }
        do {
            defer { close(fd) }
            guard fchmod(fd, mode) == 0 else { throw systemError(errno, "set the mode of \(path)") }
            let bytes = Array(data)
            var offset = 0
            while offset < bytes.count {
                let written = bytes[offset...].withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
                if written < 0 {
                    if errno == EINTR { continue }
                    throw systemError(errno, "write \(path)")
                }
                offset += written
            }
            guard fsync(fd) == 0 else { throw systemError(errno, "flush \(path) to disk") }
        }
        guard rename(tempPath, path) == 0 else { throw systemError(errno, "replace \(path)") }
        committed = true
        try syncDirectory(directory)
    }

    /// Writes `data` to `path` atomically with `mode`, but only where there is nothing yet: false,
    /// with nothing written, when `path` exists. Of several writers racing for one path, one gets it
    /// and the others get false (the complete file is hard-linked into place, which fails if
    /// anything is there; where hard links are refused, the name is claimed with O_EXCL first).
    public static func writeNew(_ data: some DataProtocol, to path: String, mode: mode_t) throws -> Bool {
        let directory = Self.directory(of: path)
        let temp = directory + "/." + (path as NSString).lastPathComponent + ".new-" + UUID().uuidString
        try writeAtomically(data, to: temp, mode: mode)
        defer { unlink(temp) }
        if linkat(AT_FDCWD, temp, AT_FDCWD, path, 0) == 0 {
            try syncDirectory(directory)
            return true
        }
        let code = errno
        if code == EEXIST { return false }
        guard code == EPERM || code == EOPNOTSUPP || code == EMLINK else { throw systemError(code, "write \(path)") }
        let claimed = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode)
        guard claimed >= 0 else {
            if errno == EEXIST { return false }
            throw systemError(errno, "write \(path)")
        }
        close(claimed)
        guard rename(temp, path) == 0 else {
            let failed = errno
            unlink(path)
            throw systemError(failed, "write \(path)")
        }
        try syncDirectory(directory)
        return true
    }

    public static func writeAtomically(_ text: String, to path: String, mode: mode_t) throws {
        try writeAtomically(Array(text.utf8), to: path, mode: mode)
    }

    /// The directory a file is in: "." for a bare file name ("replica.bundle"), which has none in
    /// its path.
    public static func directory(of path: String) -> String {
        let parent = (path as NSString).deletingLastPathComponent
        return parent.isEmpty ? "." : parent
    }

    /// fsync a directory so a rename in it survives power loss.
    public static func syncDirectory(_ path: String) throws {
        let fd = open(path, O_RDONLY | O_DIRECTORY)
        guard fd >= 0 else { throw systemError(errno, "open directory \(path)") }
        defer { close(fd) }
        guard fsync(fd) == 0 else { throw systemError(errno, "flush directory \(path)") }
    }

    /// Creates `path` and missing parents. A directory created here gets `mode`; an existing one is
    /// tightened to `mode` only when `enforceMode` is set (for secrets directories).
    public static func makeDirectory(_ path: String, mode: mode_t, enforceMode: Bool = false) throws {
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) {
            guard isDirectory.boolValue else {
                throw AutoSSLError.general("\(path) exists but is not a directory")
            }
            if enforceMode, chmod(path, mode) != 0 { throw systemError(errno, "set the mode of \(path)") }
            return
        }
        let parent = (path as NSString).deletingLastPathComponent
        if parent != path, !parent.isEmpty {
            try makeDirectory(parent, mode: 0o755)
        }
        if mkdir(path, mode) != 0 {
            if errno == EEXIST { return }
            throw systemError(errno, "create directory \(path)")
        }
        // mkdir's mode is filtered by the umask; set it exactly.
        guard chmod(path, mode) == 0 else { throw systemError(errno, "set the mode of \(path)") }
    }

    public static func exists(_ path: String) -> Bool {
        var st = stat()
        return lstat(path, &st) == 0
    }

    /// Permission bits of a file (e.g. 0o600), or nil when it does not exist.
    public static func mode(of path: String) -> mode_t? {
        var st = stat()
        guard stat(path, &st) == 0 else { return nil }
        return st.st_mode & 0o7777
    }

    public static func readText(_ path: String) throws -> String {
        String(decoding: try readBytes(path), as: UTF8.self)
    }

    /// The file's bytes, refused once more than `limit` have been read (never read past it).
    public static func readBytes(_ path: String, limit: Int = 16 << 20) throws -> [UInt8] {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw readError(errno, path) }
        defer { close(fd) }
        var result = [UInt8]()
        var buffer = [UInt8](repeating: 0, count: 65_536)
        while true {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                throw systemError(errno, "read \(path)")
            }
            if n == 0 { break }
            result.append(contentsOf: buffer[0..<n])
            if result.count > limit {
                throw AutoSSLError.general("\(path) is larger than \(limit >> 20 > 0 ? "\(limit >> 20) MiB" : "\(limit) bytes"); refusing to read it")
            }
        }
        return result
    }

    /// rename(2) with errors mapped; both paths must be on one file system.
    public static func move(_ from: String, to: String) throws {
        guard rename(from, to) == 0 else { throw systemError(errno, "move \(from) to \(to)") }
        try syncDirectory(Self.directory(of: to))
    }

    public static func removeTree(_ path: String) throws {
        guard exists(path) else { return }
        do {
            try FileManager.default.removeItem(atPath: path)
        } catch {
            let underlying = (error as NSError).userInfo[NSUnderlyingErrorKey] as? NSError
            if let code = underlying?.code, code == Int(EACCES) || code == Int(EPERM) {
                throw systemError(Int32(code), "remove \(path)")
            }
            throw AutoSSLError.general("could not remove \(path): \(error.localizedDescription)")
        }
    }

    /// Removes the directories directly in `parent` whose names start with `prefix` and that
    /// were last modified at least `minimumAge` seconds before `now`: the work or staging
    /// directories a killed run left behind. Files and links with that prefix are left alone.
    /// Best effort: a directory that cannot be removed stays, and its path is not returned.
    @discardableResult
    public static func removeStaleDirectories(
        in parent: String, prefix: String, olderThan minimumAge: TimeInterval, now: Date = Date()
    ) -> [String] {
        var removed: [String] = []
        for name in (try? FileManager.default.contentsOfDirectory(atPath: parent)) ?? [] where name.hasPrefix(prefix) {
            let path = parent + "/" + name
            var info = stat()
            // With no minimum age, a directory is removed whatever its time says (a clock set back
            // after the crash that left it must not keep it).
            guard lstat(path, &info) == 0, info.st_mode & S_IFMT == S_IFDIR,
                  minimumAge <= 0 || now.timeIntervalSince1970 - Double(info.st_mtim.tv_sec) >= minimumAge else { continue }
            if (try? removeTree(path)) != nil { removed.append(path) }
        }
        return removed
    }

    /// A file that cannot be opened for reading. Permission problems (exit 4) say whose file it is
    /// and its mode: moving the AUTO_SSL_* directories would not help there.
    public static func readError(_ code: Int32, _ path: String) -> AutoSSLError {
        guard code == EACCES || code == EPERM else { return systemError(code, "read \(path)") }
        var info = stat()
        var owner = ""
        if stat(path, &info) == 0 {
            let name = getpwuid(info.st_uid).map { String(cString: $0.pointee.pw_name) } ?? "uid \(info.st_uid)"
            owner = " (owner \(name), mode 0\(String(info.st_mode & 0o7777, radix: 8)))"
        }
        return AutoSSLError(
            .permissionDenied, "could not read \(path): permission denied\(owner)",
            hint: "this user may not read it: run as its owner or with sudo, or make it readable to you")
    }

    /// Turns an errno into an operator-facing error: permission problems exit 4 with a sudo hint.
    public static func systemError(_ code: Int32, _ action: String) -> AutoSSLError {
        let reason = String(cString: strerror(code))
        switch code {
        case EACCES, EPERM, EROFS:
            return AutoSSLError(
                .permissionDenied, "could not \(action): \(reason)",
                hint: code == EROFS
                    ? "the file system is read-only; point the AUTO_SSL_*_DIR variables at a writable place"
                    : "rerun with sudo, or point AUTO_SSL_CONFIG_DIR / AUTO_SSL_DATA_DIR at directories you can write")
        case ENOSPC, EDQUOT:
            return AutoSSLError(.general, "could not \(action): \(reason)", hint: "free some disk space and try again")
        default:
            return AutoSSLError(.general, "could not \(action): \(reason)")
        }
    }

    /// A new private (0700) directory under the system's temporary directory.
    public static func makeTemporaryDirectory(prefix: String) throws -> String {
        var base = NSTemporaryDirectory()
        while base.count > 1, base.hasSuffix("/") { base.removeLast() }
        var template = Array("\(base)/\(prefix)-XXXXXX".utf8CString)
        guard let result = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else {
            throw systemError(errno, "create a temporary directory in \(base)")
        }
        return String(cString: result)
    }

    /// UTC timestamp for names of moved-aside directories, e.g. 20261129T011500Z.
    public static func timestamp(_ date: Date = Date()) -> String {
        Timestamp.compact(date)
    }
}

extension FileOperations {
    /// Refuses, before anything is made or asked for, a set of files that `replaceTogether` could
    /// not write: two of them at the same path, a path that is a directory, one whose directory is
    /// a file (exit 2), or one in a directory this user may not write (exit 4); and any path that
    /// is, or lies inside, one of `reserved` (auto-ssl's own files, `Directories.ownPaths`; exit 2).
    /// `options` names each path's option for the message (e.g. "--out-cert"), in the same order.
    public static func checkReplaceable(_ paths: [String], options: [String]? = nil, reserved: [String] = []) throws {
        func label(_ index: Int) -> String {
            guard let options, index < options.count else { return paths[index] }
            return "\(options[index]) \(paths[index])"
        }
        var seen: [String: Int] = [:]
        for (index, path) in paths.enumerated() {
            // The same file however it is named: the directory with its links resolved.
            let standard = (path as NSString).standardizingPath
            let absolute = (realPath(directory(of: standard)) ?? directory(of: standard)) + "/" + (standard as NSString).lastPathComponent
            if let first = seen[absolute] {
                throw AutoSSLError.invalidArgument(
                    "\(label(first)) and \(label(index)) name the same file; each file needs a path of its own", hint: "choose another path for one of them")
            }
            seen[absolute] = index
            var isDirectory: ObjCBool = false
            if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue {
                throw AutoSSLError.invalidArgument(
                    "\(label(index)) is a directory; give the path of a file (it is created or replaced)", hint: "for example \(path)/server.crt")
            }
            for own in reserved {
                let ownStandard = (own as NSString).standardizingPath
                let ownAbsolute = realPath(ownStandard) ?? ownStandard
                if absolute == ownAbsolute || absolute.hasPrefix(ownAbsolute + "/") {
                    throw AutoSSLError.invalidArgument(
                        "\(label(index)) is auto-ssl's own \(own == ownAbsolute ? own : "\(own) (\(ownAbsolute))")\(absolute == ownAbsolute ? "" : ", or inside it"); nothing was written",
                        hint: "choose a path outside auto-ssl's configuration and data directories, e.g. under /etc/ssl")
                }
            }
            try checkWritableDirectory(of: absolute, label: label(index))
        }
    }

    /// The nearest existing directory above `path` (where the file, and any directory still to be
    /// made for it, would go) must be a directory this user may write.
    static func checkWritableDirectory(of path: String, label: String) throws {
        var ancestor = directory(of: path)
        while ancestor != "/", ancestor != ".", !exists(ancestor) { ancestor = directory(of: ancestor) }
        var info = stat()
        guard stat(ancestor, &info) == 0 else { return }  // vanished meanwhile: the write reports it
        guard info.st_mode & S_IFMT == S_IFDIR else {
            throw AutoSSLError.invalidArgument("\(label): \(ancestor) is a file, not a directory; nothing was written", hint: "choose another path")
        }
        if access(ancestor, W_OK) != 0 {
            let code = errno
            guard code == EACCES || code == EPERM || code == EROFS else { return }
            throw AutoSSLError(
                .permissionDenied,
                "\(label): cannot write in \(ancestor) (\(String(cString: strerror(code)))); nothing was written",
                hint: code == EROFS ? "the file system is read-only: choose another path" : "run as a user who may write there (e.g. with sudo), or choose another path")
        }
    }

    /// The path with every symbolic link resolved (realpath(3)); nil when it does not exist.
    public static func realPath(_ path: String) -> String? {
        guard let resolved = realpath(path, nil) else { return nil }
        defer { free(resolved) }
        return String(cString: resolved)
    }

    /// Writes several files that belong together (a key and its certificate): all or none. All are
    /// staged and synced first, so a failure while staging changes nothing. Then each is renamed
    /// into place; the file it replaces is kept as a hard link until every rename has succeeded,
    /// and if one fails, those already renamed are put back as they were (or removed, where there
    /// was none) before the error is thrown.
    public static func replaceTogether(_ files: [(data: [UInt8], path: String, mode: mode_t)]) throws {
        try replaceTogether(files, renaming: { rename($0, $1) })
    }

    /// `replaceTogether` with the rename step given (the tests make one fail).
    static func replaceTogether(
        _ files: [(data: [UInt8], path: String, mode: mode_t)], renaming: (String, String) -> Int32
    ) throws {
        try checkReplaceable(files.map(\.path))
        var staged: [(temp: String, path: String)] = []
        defer { for entry in staged { unlink(entry.temp) } }
        for file in files {
            let directory = Self.directory(of: file.path)
            let temp = directory + "/." + (file.path as NSString).lastPathComponent + ".staged-" + UUID().uuidString
            try writeAtomically(file.data, to: temp, mode: file.mode)
            staged.append((temp, file.path))
        }
        // What each rename replaced: a hard link to the previous file, or nil where there was none.
        var done: [(path: String, previous: String?)] = []
        func rollBack() {
            for entry in done.reversed() {
                if let previous = entry.previous {
                    _ = rename(previous, entry.path)
                } else {
                    _ = unlink(entry.path)
                }
            }
            done.removeAll()
        }
        defer { for entry in done { if let previous = entry.previous { unlink(previous) } } }
        for entry in staged {
            var previous: String?
            if exists(entry.path) {
                let kept = directory(of: entry.path) + "/." + (entry.path as NSString).lastPathComponent + ".previous-" + UUID().uuidString
                // A hard link (the file itself, not a symbolic link's target); where the file system
                // or its rules refuse one, a copy with the same mode.
                if linkat(AT_FDCWD, entry.path, AT_FDCWD, kept, 0) != 0 {
                    do {
                        try writeAtomically(try readBytes(entry.path, limit: 64 << 20), to: kept, mode: mode(of: entry.path) ?? 0o600)
                    } catch {
                        rollBack()
                        throw error
                    }
                }
                previous = kept
            }
            guard renaming(entry.temp, entry.path) == 0 else {
                let code = errno
                if let previous { unlink(previous) }
                rollBack()
                throw systemError(code, "replace \(entry.path)")
            }
            done.append((entry.path, previous))
        }
        for directory in Set(staged.map { Self.directory(of: $0.path) }) {
            try syncDirectory(directory)
        }
        staged.removeAll()
    }
}
