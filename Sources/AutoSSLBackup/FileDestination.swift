import AutoSSLCore
import AutoSSLIO
import Foundation

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

    public func get(_ name: String) async throws -> [UInt8] {
        let path = location(of: name)
        let absolute = Directories.absolute(path)
        if let size = (try? FileManager.default.attributesOfItem(atPath: absolute))?[.size] as? Int, size > BackupLimits.maximumBytes {
            throw AutoSSLError.invalidArgument("\(path) is larger than any backup (\(size) bytes)")
        }
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: absolute, isDirectory: &isDirectory), !isDirectory.boolValue,
              let handle = FileHandle(forReadingAtPath: absolute) else {
            throw AutoSSLError.invalidArgument("\(path) cannot be read")
        }
        defer { try? handle.close() }
        guard let data = try? handle.read(upToCount: BackupLimits.maximumBytes + 1) else {
            throw AutoSSLError.invalidArgument("\(path) cannot be read")
        }
        guard data.count <= BackupLimits.maximumBytes else {
            throw AutoSSLError.invalidArgument("\(path) is larger than any backup")
        }
        return Array(data)
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
