import AutoSSLCore
import Foundation

/// One line of the audit log as the dashboard shows it. Every field is text read from a file, to be
/// escaped by whoever shows it; fields longer than `AuditTail.maximumFieldLength` are cut.
public struct AuditEntry: Sendable, Equatable {
    public var time: Date?
    public var event: String
    public var serial: String?
    public var sans: [String]
    public var provisioner: String?
    public var remote: String?
    public var reason: String?
    public var detail: String?
}

/// The recent events of the audit log, for the dashboard: issuances, revocations, authentication
/// failures.
public struct RecentActivity: Sendable, Equatable {
    public static let perKind = 15

    /// `certificate.issued`, `certificate.renewed`, newest first.
    public var issuances: [AuditEntry] = []
    /// `certificate.revoked`, `key.revoked`, newest first.
    public var revocations: [AuditEntry] = []
    /// `auth.failure`, `auth.rate-limited`, newest first.
    public var authenticationFailures: [AuditEntry] = []

    public init() {}

    public init(_ entries: [AuditEntry]) {
        for entry in entries.reversed() {
            switch entry.event {
            case "certificate.issued", "certificate.renewed":
                if issuances.count < Self.perKind { issuances.append(entry) }
            case "certificate.revoked", "key.revoked":
                if revocations.count < Self.perKind { revocations.append(entry) }
            case "auth.failure", "auth.rate-limited":
                if authenticationFailures.count < Self.perKind { authenticationFailures.append(entry) }
            default:
                continue
            }
        }
    }
}

/// Reads the end of the audit log (JSON lines) as hostile input: at most `maximumBytes` from the
/// end, a first partial line dropped, lines that are not JSON objects skipped, only string fields
/// taken, each cut to `maximumFieldLength`.
public enum AuditTail {
    public static let maximumBytes = 256 * 1024
    public static let maximumFieldLength = 512
    public static let maximumNames = 20

    /// The entries of the last `maximumBytes` of the file, oldest first; none when it does not exist.
    public static func read(path: String, maximumBytes: Int = maximumBytes) throws -> [AuditEntry] {
        guard let handle = FileHandle(forReadingAtPath: path) else { return [] }
        defer { try? handle.close() }
        let size = try handle.seekToEnd()
        let start = size > UInt64(maximumBytes) ? size - UInt64(maximumBytes) : 0
        try handle.seek(toOffset: start)
        let data = try handle.read(upToCount: maximumBytes) ?? Data()
        return parse([UInt8](data), startsMidLine: start > 0)
    }

    /// The entries in `bytes`; with `startsMidLine`, what comes before the first newline is a line's
    /// tail and is dropped.
    public static func parse(_ bytes: [UInt8], startsMidLine: Bool) -> [AuditEntry] {
        var lines = bytes.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false)
        if startsMidLine, !lines.isEmpty { lines.removeFirst() }
        var entries: [AuditEntry] = []
        for line in lines where !line.isEmpty {
            guard let object = try? JSONSerialization.jsonObject(with: Data(line)) as? [String: Any],
                  let event = field(object["event"]) else { continue }
            let sans = (object["sans"] as? [Any])?.prefix(maximumNames).compactMap(field) ?? []
            entries.append(AuditEntry(
                time: field(object["time"]).flatMap(timestamp), event: event, serial: field(object["serial"]), sans: sans,
                provisioner: field(object["provisioner"]), remote: field(object["remote"]), reason: field(object["reason"]),
                detail: field(object["detail"])))
        }
        return entries
    }

    static func field(_ value: Any?) -> String? {
        guard let text = value as? String else { return nil }
        return text.count > maximumFieldLength ? String(text.prefix(maximumFieldLength)) + "…" : text
    }

    static func timestamp(_ text: String) -> Date? {
        Timestamp.parse(text)
    }
}

extension Authority {
    /// The recent issuances, revocations and authentication failures in the audit log.
    public func recentActivity() -> RecentActivity {
        RecentActivity((try? AuditTail.read(path: audit.path)) ?? [])
    }
}
