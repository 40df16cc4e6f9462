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

    /// A name `fileName(at:)` makes (a backup this tool may rotate away): the prefix, a UTC time
    /// `YYYYMMDDTHHMMSSZ`, the suffix. A name chosen by hand, such as
    /// `auto-ssl-backup-before-upgrade.enc`, is not one: it is never deleted, and it cannot pass for
    /// the newest backup (letters sort after digits) and have the real ones rotated away instead.
    public static func isBackupName(_ name: String) -> Bool {
        guard name.hasPrefix(prefix), name.hasSuffix(suffix) else { return false }
        let time = Array(name.utf8.dropFirst(prefix.utf8.count).dropLast(suffix.utf8.count))
        guard time.count == 16, time[8] == UInt8(ascii: "T"), time[15] == UInt8(ascii: "Z") else { return false }
        return time.enumerated().allSatisfy { index, byte in index == 8 || index == 15 || (0x30...0x39).contains(byte) }
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
    /// `written`, the backup just made, is always one of those kept, even when another name sorts
    /// after it (a backup made while the clock was ahead). A destination that cannot list its
    /// backups is refused before anything is deleted.
    @discardableResult
    public static func prune(_ destination: any BackupDestination, keep: Int, written: String?) async throws -> [String] {
        if let reason = destination.listingUnavailableReason {
            throw AutoSSLError.invalidArgument("cannot rotate the backups in \(destination): \(reason)")
        }
        var names = newestFirst(try await destination.list())
        if let written, let index = names.firstIndex(of: written) {
            names.remove(at: index)
            names.insert(written, at: 0)
        }
        let surplus = Array(names.dropFirst(max(keep, 1)))
        for name in surplus { try await destination.delete(name) }
        return surplus
    }
}
