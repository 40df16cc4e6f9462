import AutoSSLCore
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// gzip-compressed tar archives through the system's GNU tar, so that what we write is exactly what
/// `tar -xz` reads back, and what an administrator made by hand is what we read.
public enum Tarball {
    /// Archives `member` (a directory inside `directory`) and returns the .tar.gz bytes.
    public static func create(directory: String, member: String) throws -> [UInt8] {
        try run(["-C", directory, "--sort=name", "--owner=0", "--group=0", "--numeric-owner", "-czf", "-", member], input: nil)
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

// MARK: - Reading archives nobody trusts

/// One member of a tar archive that `TarReader` accepted: a regular file or a directory, by a
/// relative path without `.`/`..` components (leading `./` and a trailing `/` removed).
public struct TarMember: Sendable, Equatable {
    public enum Kind: Sendable, Equatable { case file, directory }
    public var path: String
    public var kind: Kind
    public var size: Int
    /// Where the member's data starts in the uncompressed archive.
    public var offset: Int

    public var components: [Substring] { path.split(separator: "/") }
}

/// Reads a tar archive (ustar, GNU and pax headers, as GNU tar and bsdtar write them) from its
/// uncompressed bytes, refusing anything but regular files and directories: symbolic and hard links,
/// devices, FIFOs, sparse and multi-volume members, absolute paths and `..` are errors naming the
/// member. Every field is bounds-checked and every header's checksum verified; after the end marker
/// only zero bytes may follow, so nothing hides where another reader would look.
public enum TarReader {
    public static let defaultMaximumMembers = 10_000
    /// The cap on the uncompressed size of an archive (a gzip bomb stops here).
    public static let defaultMaximumBytes = 256 << 20

    public static func members(of tar: [UInt8], maximumMembers: Int = defaultMaximumMembers) throws -> [TarMember] {
        var members: [TarMember] = []
        var offset = 0
        var longName: String?
        var pendingPaxPath: String?
        while true {
            guard offset + 512 <= tar.count else {
                if offset == tar.count { return members }  // no end marker: accepted, like GNU tar
                throw damaged("it ends inside a header")
            }
            let header = Array(tar[offset..<(offset + 512)])
            if header.allSatisfy({ $0 == 0 }) {
                guard tar[offset...].allSatisfy({ $0 == 0 }) else {
                    throw damaged("data follows its end marker")
                }
                return members
            }
            try verifyChecksum(header)
            let magic = Array(header[257..<263])
            let isUstar = magic == Array("ustar\u{0}".utf8)
            guard isUstar || magic == Array("ustar ".utf8) else {
                throw damaged("a header is not in ustar or GNU format")
            }
            let size = try octal(header[124..<136], field: "size")
            let dataStart = offset + 512
            let padded = (size + 511) / 512 * 512
            guard size <= tar.count, dataStart + padded <= tar.count else { throw damaged("a member's data is cut short") }
            let data = Array(tar[dataStart..<(dataStart + size)])
            offset = dataStart + padded
            let type = header[156]
            var name = try text(header[0..<100], what: "name")
            if isUstar {
                let prefix = try text(header[345..<500], what: "name prefix")
                if !prefix.isEmpty { name = prefix + "/" + name }
            }
            switch type {
            case UInt8(ascii: "L"):
                longName = try text(data[...], what: "long name")
                continue
            case UInt8(ascii: "K"):
                continue  // a long link target; the link itself is refused below
            case UInt8(ascii: "x"):
                pendingPaxPath = try paxPath(data) ?? pendingPaxPath
                continue
            case UInt8(ascii: "g"):
                guard try paxPath(data) == nil else { throw damaged("a global pax header sets a path") }
                continue
            default:
                break
            }
            let path = pendingPaxPath ?? longName ?? name
            longName = nil
            pendingPaxPath = nil
            let kind: TarMember.Kind
            switch type {
            case 0, UInt8(ascii: "0"), UInt8(ascii: "7"): kind = .file
            case UInt8(ascii: "5"): kind = .directory
            default: throw refused(path, "it is \(describe(type)); only regular files and directories are restored")
            }
            guard kind == .file || size == 0 else { throw refused(path, "it is a directory with data") }
            members.append(TarMember(path: try normalise(path), kind: kind, size: size, offset: dataStart))
            guard members.count <= maximumMembers else {
                throw AutoSSLError.general("the archive has more than \(maximumMembers) members; refused")
            }
        }
    }

    /// `path` without leading `./` or a trailing `/`; refused when absolute, empty, or holding `..`,
    /// `.` or empty components, or control characters.
    static func normalise(_ path: String) throws -> String {
        if path.hasPrefix("/") { throw refused(path, "its path is absolute") }
        guard !path.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) else {
            throw refused(path, "its path has control characters")
        }
        var parts = path.split(separator: "/", omittingEmptySubsequences: false)
        // The trailing "/" first, so that "./" (what `tar -C dir .` writes first) comes down to ".".
        if parts.count > 1, parts.last == "" { parts.removeLast() }
        while parts.count > 1, parts.first == "." { parts.removeFirst() }
        if parts.contains("..") { throw refused(path, "its path has a .. component") }
        if parts == ["."] { return "" }  // the archive's own top directory, "./"
        guard !parts.contains(where: { $0.isEmpty || $0 == "." }) else { throw refused(path, "its path is not normalised") }
        return parts.joined(separator: "/")
    }

    static func describe(_ type: UInt8) -> String {
        switch type {
        case UInt8(ascii: "1"): return "a hard link"
        case UInt8(ascii: "2"): return "a symbolic link"
        case UInt8(ascii: "3"): return "a character device"
        case UInt8(ascii: "4"): return "a block device"
        case UInt8(ascii: "6"): return "a FIFO"
        case UInt8(ascii: "S"): return "a sparse file"
        case UInt8(ascii: "D"): return "a GNU dump directory"
        case UInt8(ascii: "M"), UInt8(ascii: "V"): return "a multi-volume or volume header"
        default: return "of unknown type \(type < 0x20 || type > 0x7E ? String(type) : String(UnicodeScalar(type)))"
        }
    }

    /// Unsigned header sum with the checksum field counted as spaces (signed sums, written by some
    /// old tars, are accepted too).
    static func verifyChecksum(_ header: [UInt8]) throws {
        let stored = try octal(header[148..<156], field: "checksum")
        var unsigned = 0
        var signed = 0
        for (index, byte) in header.enumerated() {
            let value = (148..<156).contains(index) ? 0x20 : byte
            unsigned += Int(value)
            signed += Int(Int8(bitPattern: value))
        }
        guard stored == unsigned || stored == signed else { throw damaged("a header's checksum is wrong") }
    }

    /// An octal field: optional leading spaces, digits 0-7, then only NULs or spaces.
    static func octal(_ field: ArraySlice<UInt8>, field name: String) throws -> Int {
        var value = 0
        var seenDigit = false
        var ended = false
        for byte in field {
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "7") where !ended:
                seenDigit = true
                value = value * 8 + Int(byte - UInt8(ascii: "0"))
                guard value <= Int(UInt32.max) * 64 else { throw damaged("a header's \(name) is out of range") }
            case UInt8(ascii: " ") where !seenDigit:
                continue
            case 0, UInt8(ascii: " "):
                ended = true
            default:
                throw damaged("a header's \(name) field is not octal")
            }
        }
        guard seenDigit else { throw damaged("a header's \(name) field is empty") }
        return value
    }

    /// A NUL-terminated UTF-8 field.
    static func text(_ field: ArraySlice<UInt8>, what: String) throws -> String {
        let bytes = field.prefix { $0 != 0 }
        guard let value = String(validating: bytes, as: UTF8.self) else { throw damaged("a member's \(what) is not UTF-8") }
        return value
    }

    /// pax records ("LEN key=value\n"): the path it sets; a size or sparse map is refused (we would
    /// have to read the data differently from the header).
    static func paxPath(_ data: [UInt8]) throws -> String? {
        var path: String?
        var index = 0
        while index < data.count {
            guard let space = data[index...].firstIndex(of: UInt8(ascii: " ")), space - index <= 20,
                  let length = Int(String(decoding: data[index..<space], as: UTF8.self)), length > 0,
                  length <= data.count - index
            else { throw damaged("a pax header is malformed") }
            // `end` cannot overflow: the length was checked against what is left, not added first.
            let end = index + length
            guard end > space + 1, data[end - 1] == UInt8(ascii: "\n"),
                  let equals = data[(space + 1)..<end].firstIndex(of: UInt8(ascii: "="))
            else { throw damaged("a pax header is malformed") }
            let key = String(decoding: data[(space + 1)..<equals], as: UTF8.self)
            guard !key.isEmpty else { throw damaged("a pax header is malformed") }
            guard let value = String(validating: data[(equals + 1)..<(end - 1)], as: UTF8.self) else {
                throw damaged("a pax value is not UTF-8")
            }
            if key == "path" { path = value }
            if key == "size" || key.hasPrefix("GNU.sparse.") { throw damaged("a pax header sets \(key); not supported") }
            index = end
        }
        return path
    }

    /// A name fit for a message: control characters and the like shown as escapes.
    public static func printable(_ name: String) -> String {
        String(String.UnicodeScalarView(name.unicodeScalars.flatMap { scalar -> [Unicode.Scalar] in
            switch scalar.properties.generalCategory {
            case .control, .format, .lineSeparator, .paragraphSeparator: return Array(scalar.escaped(asASCII: true).unicodeScalars)
            default: return [scalar]
            }
        }))
    }

    public static func refused(_ member: String, _ reason: String) -> AutoSSLError {
        AutoSSLError.general("the archive member \"\(printable(member))\" is refused: \(reason); nothing was changed")
    }

    static func damaged(_ reason: String) -> AutoSSLError {
        AutoSSLError.general("the archive is damaged or not a tar archive: \(reason); nothing was changed")
    }

    // MARK: Unpacking

    /// gzip-decompresses `data` with the system's gzip, refusing more than `limit` bytes of output.
    /// The compressed bytes are handed over in a file in `scratchDirectory` (removed afterwards).
    public static func gunzip(_ data: [UInt8], scratchDirectory: String, limit: Int = defaultMaximumBytes) throws -> [UInt8] {
        guard let gzip = SystemCommandRunner().which("gzip") else {
            throw AutoSSLError(.missingDependency, "gzip is not installed", hint: "install the gzip package")
        }
        let input = scratchDirectory + "/archive.gz"
        try writeNew(input, bytes: data[...], mode: 0o600)
        defer { unlink(input) }
        guard let inputHandle = FileHandle(forReadingAtPath: input) else { throw AutoSSLError.general("could not read \(input)") }
        defer { try? inputHandle.close() }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: gzip)
        process.arguments = ["-dc"]
        let output = Pipe()
        process.standardInput = inputHandle
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        try process.run()
        var result: [UInt8] = []
        var tooLarge = false
        while let chunk = try output.fileHandleForReading.read(upToCount: 1 << 16), !chunk.isEmpty {
            guard result.count + chunk.count <= limit else {
                tooLarge = true
                process.terminate()
                break
            }
            result.append(contentsOf: chunk)
        }
        try? output.fileHandleForReading.close()
        process.waitUntilExit()
        if tooLarge {
            throw AutoSSLError.general("the archive unpacks to more than \(limit / (1 << 20)) MiB; refused as a possible gzip bomb; nothing was changed")
        }
        guard process.terminationReason == .exit, process.terminationStatus == 0 else {
            throw AutoSSLError.general("the archive is not valid gzip data (wrong passphrase or damaged file); nothing was changed")
        }
        return result
    }

    /// Writes the accepted members of `tar` below `directory` (which must be new and private):
    /// directories 0700, files with `fileMode` (set before anything is written), nothing followed
    /// through a symbolic link, nothing created twice. Every file and directory is on disk when it
    /// returns (a restore moves the result into place next, and must not leave empty keys after a crash).
    public static func write(
        _ members: [TarMember], from tar: [UInt8], into directory: String, fileMode: (TarMember) -> mode_t
    ) throws {
        var directories: Set<String> = [directory]
        for member in members where !member.path.isEmpty {
            let components = member.components
            var current = directory
            for component in components.dropLast() {
                current += "/" + component
                try makeDirectory(current, member: member.path)
                directories.insert(current)
            }
            let target = directory + "/" + member.path
            switch member.kind {
            case .directory:
                try makeDirectory(target, member: member.path)
                directories.insert(target)
            case .file:
                guard member.offset >= 0, member.offset + member.size <= tar.count else { throw damaged("a member's data is cut short") }
                do {
                    try writeNew(target, bytes: tar[member.offset..<(member.offset + member.size)], mode: fileMode(member))
                } catch let error as POSIXError where error.code == .EEXIST {
                    throw refused(member.path, "it appears twice in the archive")
                }
            }
        }
        for path in directories.sorted(by: >) {       // deepest first
            try syncDirectory(path)
        }
    }

    static func syncDirectory(_ path: String) throws {
        let descriptor = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard descriptor >= 0 else { throw AutoSSLError.general("cannot open \(path): \(String(cString: strerror(errno)))") }
        defer { close(descriptor) }
        guard fsync(descriptor) == 0 else { throw AutoSSLError.general("cannot flush \(path) to disk: \(String(cString: strerror(errno)))") }
    }

    static func makeDirectory(_ path: String, member: String) throws {
        if mkdir(path, 0o700) == 0 { return }
        let failure = errno
        var status = stat()
        guard failure == EEXIST, lstat(path, &status) == 0, status.st_mode & S_IFMT == S_IFDIR else {
            throw refused(member, failure == EEXIST ? "a file of that name is already there" : "cannot create \(path): \(String(cString: strerror(failure)))")
        }
    }

    /// Creates `path` exclusively (never following a link), sets `mode`, then writes `bytes`.
    static func writeNew(_ path: String, bytes: ArraySlice<UInt8>, mode: mode_t) throws {
        let descriptor = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else {
            let failure = errno
            if failure == EEXIST { throw POSIXError(.EEXIST) }
            throw AutoSSLError.general("cannot create \(path): \(String(cString: strerror(failure)))")
        }
        defer { close(descriptor) }
        guard fchmod(descriptor, mode) == 0 else { throw AutoSSLError.general("cannot set the mode of \(path)") }
        var written = 0
        try bytes.withUnsafeBytes { buffer in
            while written < buffer.count {
                guard let base = buffer.baseAddress else { return }
                let count = Glibc.write(descriptor, base + written, buffer.count - written)
                if count < 0 {
                    if errno == EINTR { continue }
                    throw AutoSSLError.general("cannot write \(path): \(String(cString: strerror(errno)))")
                }
                written += count
            }
        }
        guard fsync(descriptor) == 0 else { throw AutoSSLError.general("cannot flush \(path) to disk: \(String(cString: strerror(errno)))") }
    }

    /// Sets `mode` on `path` only if it is a directory or regular file (never through a symbolic link).
    public static func setMode(_ path: String, _ mode: mode_t) {
        let descriptor = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK)
        guard descriptor >= 0 else { return }
        defer { close(descriptor) }
        var status = stat()
        guard fstat(descriptor, &status) == 0, [S_IFDIR, S_IFREG].contains(status.st_mode & S_IFMT) else { return }
        _ = fchmod(descriptor, mode)
    }
}
