import AutoSSLCore
import AutoSSLIO
import Foundation

/// A place that holds backup files: a local directory (`FileDestination`), a directory on another
/// machine reached with rsync over ssh (`RsyncDestination`), or a key prefix in an S3 bucket
/// (`S3Destination`). A backup in it is known by its name (`auto-ssl-backup-<time>.enc`, or the
/// name the operator chose); `location(of:)` is how it is shown to people and how they name it again.
public protocol BackupDestination: Sendable, CustomStringConvertible {
    /// The backup `name` as a person would write it: a path, `[user@]host:path`, `s3://bucket/key`.
    func location(of name: String) -> String

    /// Stores `bytes` as `name`, complete or not at all (never a truncated backup under the final
    /// name), readable by its owner only where the destination has modes. Returns `location(of: name)`.
    @discardableResult
    func put(_ bytes: [UInt8], name: String) async throws -> String

    /// The bytes of backup `name`, at most `BackupLimits.maximumBytes`.
    func get(_ name: String) async throws -> [UInt8]

    /// Nil when `list` and `delete` work here; otherwise why they cannot (said in errors).
    var listingUnavailableReason: String? { get }

    /// The names of the backups held here (only names that `BackupRotation` makes), in no order.
    func list() async throws -> [String]

    /// Removes backup `name`.
    func delete(_ name: String) async throws
}

public enum BackupLimits {
    /// More than any backup: the archive unpacks to at most 256 MiB and is compressed.
    public static let maximumBytes = 512 << 20
}

/// What a location string or the backup options name: a destination and, when they name one backup
/// rather than a place for many (`--output file.enc`, `--rsync-target host:/srv/ca.enc`,
/// `--input s3://bucket/key`), that backup's name.
public struct BackupLocation: Sendable {
    public var destination: any BackupDestination
    /// The one backup named, or nil for a place where backups get timestamped names.
    public var name: String?

    public init(destination: any BackupDestination, name: String?) {
        self.destination = destination
        self.name = name
    }

    /// The name a new backup made at `date` gets here.
    public func nameForNewBackup(at date: Date) -> String {
        name ?? BackupRotation.fileName(at: date)
    }

    /// Refuses (before anything is done) when `--retention` cannot apply here: a single named file,
    /// or a destination that cannot list its backups.
    public func checkRotation() throws {
        if name != nil {
            throw AutoSSLError.invalidArgument(
                destination is FileDestination
                    ? "--retention needs --output to be a directory"
                    : "--retention needs a destination that holds many backups, not the single file \(location)")
        }
        if let reason = destination.listingUnavailableReason {
            throw AutoSSLError.invalidArgument("--retention cannot be used here: \(reason)")
        }
    }

    /// Refuses (before anything is done) a local backup that would go where it does not belong: a
    /// file or directory inside one of `protected` (the CA's configuration and directory), one of
    /// `protectedFiles` (the passphrase file), or a file that would replace something other than
    /// an earlier backup (anything but an empty file or one that begins as every backup does,
    /// `Salted__`, openssl enc). Paths are compared with every symbolic link resolved.
    public func checkLocalOverwrite(protected directories: [String], protectedFiles: [String]) throws {
        guard destination is FileDestination else { return }
        let path = Directories.absolute(name.map { destination.location(of: $0) } ?? destination.description)
        let real = Self.resolved(path)
        for file in protectedFiles where Self.resolved(Directories.absolute(file)) == real {
            throw AutoSSLError.invalidArgument(
                "--output \(path) is the passphrase file; the backup would replace the passphrase it is encrypted with", hint: "choose another --output")
        }
        for directory in directories {
            let root = Self.resolved(Directories.absolute(directory))
            if real == root || real.hasPrefix(root.hasSuffix("/") ? root : root + "/") {
                throw AutoSSLError.invalidArgument(
                    "--output \(path) is inside \(directory), which holds the CA's own files; a backup is not written there",
                    hint: "keep backups outside the CA's directories (e.g. /var/backups/auto-ssl/)")
            }
        }
        guard name != nil, FileManager.default.fileExists(atPath: path) else { return }
        let attributes = try? FileManager.default.attributesOfItem(atPath: path)
        guard attributes?[.type] as? FileAttributeType == .typeRegular else {
            throw AutoSSLError.invalidArgument("--output \(path) exists and is not a regular file; nothing was written")
        }
        if (attributes?[.size] as? Int) == 0 { return }
        guard let handle = FileHandle(forReadingAtPath: path) else {
            throw AutoSSLError(.permissionDenied, "--output \(path) exists and cannot be read, so it cannot be told to be an earlier backup; nothing was written")
        }
        defer { try? handle.close() }
        let head = (try? handle.read(upToCount: 8)) ?? Data()
        guard head == Data("Salted__".utf8) else {
            throw AutoSSLError.invalidArgument(
                "--output \(path) exists and is not an auto-ssl backup; it is not overwritten",
                hint: "choose a new file name, or a directory for timestamped backups")
        }
    }

    /// `path` with every symbolic link resolved: the deepest part that exists through realpath(3),
    /// the rest (not made yet) appended as it is.
    static func resolved(_ path: String) -> String {
        let standard = (path as NSString).standardizingPath
        var existing = standard
        var rest: [String] = []
        while FileOperations.realPath(existing) == nil, existing != "/", !existing.isEmpty {
            rest.insert((existing as NSString).lastPathComponent, at: 0)
            existing = (existing as NSString).deletingLastPathComponent
        }
        let base = FileOperations.realPath(existing) ?? existing
        return ([base] + rest).joined(separator: "/").replacingOccurrences(of: "//", with: "/")
    }

    /// How the backup this location names is written for people (the destination itself for a place).
    public var location: String { destination.location(of: name ?? "") }

    // MARK: - Parsing what the CLI accepts

    /// `ca restore --input`: `s3://bucket/key` (the endpoint, region and credentials from `s3`,
    /// asked only then), or else a local file path as given (a `host:path` text is a file name here).
    public static func input(_ text: String, s3: () throws -> S3Connection) throws -> BackupLocation {
        if text.hasPrefix("s3://") {
            let location = text.dropFirst(5)
            guard let slash = location.firstIndex(of: "/"), slash != location.startIndex,
                  location.index(after: slash) < location.endIndex else {
                throw AutoSSLError.invalidArgument("--input must be s3://bucket/key")
            }
            let bucket = String(location[..<slash])
            let key = String(location[location.index(after: slash)...])
            let (prefix, name) = split(key, after: "/")
            return BackupLocation(destination: try S3Destination(connection: try s3(), bucket: bucket, prefix: prefix), name: name)
        }
        return file(text)
    }

    /// A local file, exactly as given (relative paths are read from the current directory, and
    /// messages show the path as the operator wrote it).
    public static func file(_ path: String) -> BackupLocation {
        let (directory, name) = split(path, after: "/")
        return BackupLocation(destination: FileDestination(directory: directory), name: name)
    }

    /// `ca backup --output`: an existing directory (timestamped names), one to create when the value
    /// ends with `/` (as for rsync targets), or else a file.
    public static func output(_ output: String) throws -> BackupLocation {
        var target = Directories.absolute(output)
        while target.count > 1, target.hasSuffix("/") { target.removeLast() }
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: target, isDirectory: &isDirectory), isDirectory.boolValue {
            return BackupLocation(destination: FileDestination(directory: target), name: nil)
        }
        if output.hasSuffix("/") {
            try FileOperations.makeDirectory(target, mode: 0o700)
            return BackupLocation(destination: FileDestination(directory: target), name: nil)
        }
        let (directory, name) = split(target, after: "/")
        return BackupLocation(destination: FileDestination(directory: directory), name: name)
    }

    /// `ca backup --dest-type rsync --rsync-target`: `[user@]host:path` (also `rsync://host/path`,
    /// which rsync itself understands); a target ending in `/` (or `:`) is a directory that receives
    /// backups under their own names, anything else names the file.
    public static func rsync(_ target: String, sshCommand: String?) throws -> BackupLocation {
        guard let colon = target.firstIndex(of: ":"), colon != target.startIndex, !target[..<colon].contains("/") else {
            throw AutoSSLError.invalidArgument(
                "--rsync-target \"\(target)\" is not of the form [user@]host:path", hint: "e.g. backup@vault.internal:/srv/ca-backups/")
        }
        let remote = target[target.index(after: colon)...]
        let (directory, name) = split(String(remote), after: "/")
        let destination = RsyncDestination(directory: String(target[...colon]) + directory, sshCommand: sshCommand)
        return BackupLocation(destination: destination, name: name.isEmpty ? nil : name)
    }

    /// `ca backup --dest-type s3 --s3-bucket --s3-prefix`: objects `<prefix><name>` in the bucket.
    public static func s3(bucket: String, prefix: String, connection: S3Connection) throws -> BackupLocation {
        BackupLocation(destination: try S3Destination(connection: connection, bucket: bucket, prefix: prefix), name: nil)
    }

    /// `text` cut after the last `separator`: ("dir/", "name"), or ("", text) without one.
    static func split(_ text: String, after separator: Character) -> (String, String) {
        guard let last = text.lastIndex(of: separator) else { return ("", text) }
        return (String(text[...last]), String(text[text.index(after: last)...]))
    }
}
