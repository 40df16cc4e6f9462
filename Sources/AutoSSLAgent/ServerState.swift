import AutoSSLCore
import AutoSSLIO
import Foundation

/// What happened at the last renewal attempts, kept in `$AUTO_SSL_DATA_DIR/server-state.json`
/// (never a secret). config.yaml holds what the operator chose; this file holds what happened.
public struct ServerState: Codable, Equatable, Sendable {
    public struct Attempt: Codable, Equatable, Sendable {
        public var time: Date
        /// enrolled, renewed, skipped, not-due, failed
        public var result: String
        public var message: String
        /// The CA URL that answered this attempt (with several URLs, which one); nil when none did
        /// or the CA was not asked.
        public var caURL: String?

        public init(time: Date, result: String, message: String, caURL: String? = nil) {
            self.time = time
            self.result = result
            self.message = message
            self.caURL = caURL
        }

        enum CodingKeys: String, CodingKey {
            case time, result, message
            case caURL = "ca_url"
        }
    }

    public var lastAttempt: Attempt?
    public var lastSuccess: Date?
    public var consecutiveFailures: Int
    /// Serial (hex) of a certificate known to be revoked: revoked from this machine (`server revoke`),
    /// or refused renewal by the CA because it (or its key) was revoked. `server remove` does not
    /// revoke it twice; `server status` reports it as revoked until the next enrollment.
    public var revokedSerial: String?
    /// When this machine learned of the revocation.
    public var revokedAt: Date?
    /// How it learned: "revoked with `server revoke`: reason" or the CA's refusal.
    public var revocationNote: String?

    public init() {
        consecutiveFailures = 0
    }

    enum CodingKeys: String, CodingKey {
        case lastAttempt = "last_attempt"
        case lastSuccess = "last_success"
        case consecutiveFailures = "consecutive_failures"
        case revokedSerial = "revoked_serial"
        case revokedAt = "revoked_at"
        case revocationNote = "revocation_note"
    }

    static func encoder() -> JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        encoder.dateEncodingStrategy = .iso8601
        return encoder
    }

    /// A missing or unreadable file is a fresh state: it is a log of events, not a source of truth.
    public static func load(from path: String) -> ServerState {
        guard let data = FileManager.default.contents(atPath: path) else { return ServerState() }
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        return (try? decoder.decode(ServerState.self, from: data)) ?? ServerState()
    }

    /// Whether `serial` is the one recorded as revoked (any of the forms serials are written in).
    public func isRevoked(serial: String) -> Bool {
        guard let revokedSerial else { return false }
        return Self.canonicalSerial(revokedSerial) == Self.canonicalSerial(serial)
    }

    static func canonicalSerial(_ text: String) -> String {
        String(text.replacingOccurrences(of: ":", with: "").lowercased().drop { $0 == "0" })
    }

    public func save(to path: String) throws {
        try FileOperations.makeDirectory((path as NSString).deletingLastPathComponent, mode: 0o755)
        try FileOperations.writeAtomically(try Self.encoder().encode(self), to: path, mode: 0o644)
    }
}
