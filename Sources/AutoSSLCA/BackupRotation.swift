import AutoSSLCore
import AutoSSLIO
import Foundation

/// Backups written into a directory: timestamped names, the newest N kept (older ones are deleted
/// only after a new backup succeeded), and a small state file for `ca status`.
public enum BackupRotation {
    public static let prefix = "auto-ssl-backup-"
    public static let suffix = ".enc"

    public static func fileName(at date: Date) -> String {
        prefix + FileOperations.timestamp(date) + suffix
    }

    /// Backups in `directory`, newest first (the timestamp in the name sorts chronologically).
    public static func backups(in directory: String) -> [String] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        return names.filter { $0.hasPrefix(prefix) && $0.hasSuffix(suffix) }.sorted(by: >)
    }

    /// Deletes all but the newest `keep`; returns the deleted names.
    @discardableResult
    public static func prune(_ directory: String, keep: Int) throws -> [String] {
        let surplus = Array(backups(in: directory).dropFirst(max(keep, 1)))
        for name in surplus { try FileOperations.removeTree(directory + "/" + name) }
        return surplus
    }

    public struct State: Codable, Sendable, Equatable {
        public var time: Date
        public var succeeded: Bool
        public var detail: String

        public init(time: Date, succeeded: Bool, detail: String) {
            self.time = time
            self.succeeded = succeeded
            self.detail = detail
        }
    }

    public static func stateFile(_ directories: Directories) -> String { directories.dataDir + "/backup-state.json" }

    public static func record(_ state: State, directories: Directories) {
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .iso8601
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        if let data = try? encoder.encode(state) {
            try? FileOperations.writeAtomically(data, to: stateFile(directories), mode: 0o600)
        }
    }

    public static func lastState(_ directories: Directories) -> State? {
        guard let data = FileManager.default.contents(atPath: stateFile(directories)) else { return nil }
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        return try? decoder.decode(State.self, from: data)
    }
}
