import AutoSSLCore
import AutoSSLIO
import Foundation

/// Backups with timestamped names, of which the newest N are kept: older ones are deleted only
/// after a new backup succeeded, through `BackupDestination.list` and `delete`, so the same rule
/// holds for a directory and for a bucket.
public enum BackupRotation {
    public static let prefix = "auto-ssl-backup-"
    public static let suffix = ".enc"

    public static func fileName(at date: Date) -> String {
        prefix + FileOperations.timestamp(date) + suffix
    }

    /// A name `fileName(at:)` makes (a backup this tool may rotate away).
    public static func isBackupName(_ name: String) -> Bool {
        name.hasPrefix(prefix) && name.hasSuffix(suffix) && name.count > prefix.count + suffix.count
            && !name.contains("/") && name.utf8.allSatisfy { $0 > 0x20 && $0 < 0x7F }
    }

    /// Refuses names that would leave the destination or be empty.
    static func checkName(_ name: String) throws {
        guard !name.isEmpty, name != ".", name != "..", !name.contains("/"), !name.utf8.contains(0) else {
            throw AutoSSLError.invalidArgument("\"\(name)\" is not a backup file name")
        }
    }

    /// Backup names, newest first (the timestamp in the name sorts chronologically).
    public static func newestFirst(_ names: [String]) -> [String] {
        names.filter(isBackupName).sorted(by: >)
    }

    /// Deletes all but the newest `keep` backups in `destination`; returns the deleted names.
    /// A destination that cannot list its backups is refused before anything is deleted.
    @discardableResult
    public static func prune(_ destination: any BackupDestination, keep: Int) async throws -> [String] {
        if let reason = destination.listingUnavailableReason {
            throw AutoSSLError.invalidArgument("cannot rotate the backups in \(destination): \(reason)")
        }
        let surplus = Array(newestFirst(try await destination.list()).dropFirst(max(keep, 1)))
        for name in surplus { try await destination.delete(name) }
        return surplus
    }
}
