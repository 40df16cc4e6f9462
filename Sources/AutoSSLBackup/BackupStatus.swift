import AutoSSLCA
import AutoSSLConfig
import AutoSSLCore
import AutoSSLIO
import Foundation

/// The last backup's time and result, kept in `$AUTO_SSL_DATA_DIR/backup-state.json` for `ca status`
/// (scheduled runs have no one watching).
public struct BackupState: Codable, Sendable, Equatable {
    public var time: Date
    public var succeeded: Bool
    public var detail: String
    /// When a backup last worked (this one, if it did). Files written before it was kept lack it.
    public var lastSuccess: Date?

    public init(time: Date, succeeded: Bool, detail: String, lastSuccess: Date? = nil) {
        self.time = time
        self.succeeded = succeeded
        self.detail = detail
        self.lastSuccess = lastSuccess ?? (succeeded ? time : nil)
    }

    public static func file(_ directories: Directories) -> String { directories.dataDir + "/backup-state.json" }

    /// Best effort: a backup that worked is not failed because its state could not be written.
    public static func record(_ state: BackupState, directories: Directories) {
        var state = state
        if !state.succeeded, state.lastSuccess == nil, let previous = last(directories) {
            state.lastSuccess = previous.lastSuccess ?? (previous.succeeded ? previous.time : nil)
        }
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .iso8601
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        if let data = try? encoder.encode(state) {
            try? FileOperations.writeAtomically(data, to: file(directories), mode: 0o600)
        }
    }

    public static func last(_ directories: Directories) -> BackupState? {
        let path = file(directories)
        guard let size = (try? FileManager.default.attributesOfItem(atPath: path))?[.size] as? Int, size <= 1 << 20,
              let data = FileManager.default.contents(atPath: path) else { return nil }
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        return try? decoder.decode(BackupState.self, from: data)
    }

    /// The `Backups:` line of `ca status`: the schedule, then the last backup's time and result.
    public static func summary(schedule: BackupSchedule?, directories: Directories) -> String {
        var parts: [String] = []
        if let schedule {
            parts.append("\(schedule.schedule) to \(schedule.outputDirectory), keeping \(schedule.retention)")
        } else {
            parts.append("not scheduled")
        }
        if let last = last(directories) {
            parts.append("last \(last.succeeded ? "succeeded" : "FAILED") at \(Timestamp.rfc3339(last.time))" + (last.succeeded ? "" : ": \(last.detail)"))
        } else {
            parts.append("no backup made yet")
        }
        return parts.joined(separator: "; ")
    }

    /// The same as structured data, for `ca status --json`.
    public static func report(directories: Directories) -> CAStatusReport.BackupReport {
        CAStatusReport.BackupReport(
            schedule: (try? AutoSSLConfiguration.load(from: directories.configFile))?.ca?.backupSchedule,
            lastBackup: last(directories).map { .init(time: $0.time, succeeded: $0.succeeded, detail: $0.detail) })
    }

    /// The same, reading the schedule from config.yaml.
    public static func summary(directories: Directories) -> String {
        summary(schedule: (try? AutoSSLConfiguration.load(from: directories.configFile))?.ca?.backupSchedule, directories: directories)
    }
}
