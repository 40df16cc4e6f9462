import AutoSSLCore
import AutoSSLIO
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Backups in a local directory, written atomically with mode 0600.
public struct FileDestination: BackupDestination {
    /// The directory as given, ending with `/` (or empty: the current directory); a backup's
    /// location is this followed by its name, so messages show paths the way the operator wrote them.
    public let directory: String

    public init(directory: String) {
        self.directory = directory.isEmpty || directory.hasSuffix("/") ? directory : directory + "/"
    }

    public var description: String { directory.isEmpty ? "." : directory }

    public func location(of name: String) -> String { directory + name }

    @discardableResult
    public func put(_ bytes: [UInt8], name: String) async throws -> String {
        try BackupRotation.checkName(name)
        let path = location(of: name)
        try FileOperations.writeAtomically(bytes, to: Directories.absolute(path), mode: 0o600)
        return path
    }

    /// Writes backup `name` only if there is none of that name yet: its path, or nil when the name
    /// is taken (another backup made in the same second, perhaps by another process).
    public func putNew(_ bytes: [UInt8], name: String) throws -> String? {
        try BackupRotation.checkName(name)
        let path = location(of: name)
        return try FileOperations.writeNew(bytes, to: Directories.absolute(path), mode: 0o600) ? path : nil
    }

    /// A path that is missing or a directory is a wrong argument (exit 2); one this user may not
    /// read exits 4; an empty file is not a backup (exit 1, like a damaged one).
    public func get(_ name: String) async throws -> [UInt8] {
        let path = location(of: name)
        let absolute = Directories.absolute(path)
        var info = stat()
        if stat(absolute, &info) != 0 {
            let code = errno
            if code == ENOENT || code == ENOTDIR {
                throw AutoSSLError.invalidArgument("\(path) does not exist", hint: "give the path of a backup written by `auto-ssl ca backup`")
            }
            throw FileOperations.readError(code, path)
        }
        switch info.st_mode & S_IFMT {
        case S_IFDIR:
            throw AutoSSLError.invalidArgument("\(path) is a directory, not a backup", hint: "give the path of a backup file inside it")
        case S_IFREG where info.st_size > BackupLimits.maximumBytes:
            throw AutoSSLError.invalidArgument("\(path) is larger than any backup (\(info.st_size) bytes)")
        default:
            break
        }
        let bytes = try FileOperations.readBytes(absolute, limit: BackupLimits.maximumBytes)
        guard !bytes.isEmpty else {
            throw AutoSSLError.general("\(path) is empty: it is not a backup (perhaps a copy that did not finish)")
        }
        return bytes
    }

    public var listingUnavailableReason: String? { nil }

    public func list() async throws -> [String] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: Directories.absolute(description))) ?? []
        return names.filter(BackupRotation.isBackupName)
    }

    public func delete(_ name: String) async throws {
        try BackupRotation.checkName(name)
        try FileOperations.removeTree(Directories.absolute(location(of: name)))
    }
}
