import AutoSSLCore
import AutoSSLIO
import Foundation

/// The hosts this CA enrolled over ssh (`remote enroll`): `remote-hosts.json` in the CA's data
/// directory, 0600, replaced atomically. No secrets are recorded (an identity is a path).
public struct RemoteInventory: Codable, Sendable, Equatable {
    public var hosts: [Entry] = []

    public struct Entry: Codable, Sendable, Equatable {
        /// How the operator names the host (`--name`, default the host).
        public var name: String
        public var host: String
        public var port: Int?
        public var user: String?
        public var identity: String?
        public var names: [String]
        public var reload: String?
        public var enrolledAt: Date
        public var lastStatus: RemoteHostStatus?

        public init(
            name: String, host: String, port: Int?, user: String?, identity: String?, names: [String], reload: String?, enrolledAt: Date,
            lastStatus: RemoteHostStatus? = nil
        ) {
            self.name = name
            self.host = host
            self.port = port
            self.user = user
            self.identity = identity
            self.names = names
            self.reload = reload
            self.enrolledAt = enrolledAt
            self.lastStatus = lastStatus
        }

        public func target() throws -> SSHTarget { try SSHTarget(host: host, port: port, user: user, identity: identity) }

        enum CodingKeys: String, CodingKey {
            case name, host, port, user, identity, names, reload
            case enrolledAt = "enrolled_at"
            case lastStatus = "last_status"
        }
    }

    public init(hosts: [Entry] = []) {
        self.hosts = hosts
    }

    public static func path(_ directories: Directories) -> String { directories.dataDir + "/remote-hosts.json" }

    public static func load(_ directories: Directories) throws -> RemoteInventory {
        let path = path(directories)
        guard FileOperations.exists(path) else { return RemoteInventory() }
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        do {
            return try decoder.decode(RemoteInventory.self, from: Data(try FileOperations.readText(path).utf8))
        } catch let error as AutoSSLError {
            throw error
        } catch {
            throw AutoSSLError.general("\(path) is damaged: \(error)")
        }
    }

    public func save(_ directories: Directories) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        encoder.dateEncodingStrategy = .iso8601
        try FileOperations.makeDirectory(directories.dataDir, mode: 0o700)
        try FileOperations.writeAtomically(try encoder.encode(self) + Data("\n".utf8), to: Self.path(directories), mode: 0o600)
    }

    /// Reads the inventory, applies `change` and writes it back, holding an exclusive lock on
    /// `remote-hosts.json.lock` throughout, so two `remote` commands running at once (a status
    /// while another host enrolls) never lose each other's changes.
    public static func update(_ directories: Directories, _ change: (inout RemoteInventory) throws -> Void) throws {
        let lock = try FileLock.acquire(path(directories) + ".lock", exclusive: true, wait: true)
        defer { lock?.release() }
        var inventory = try load(directories)
        try change(&inventory)
        try inventory.save(directories)
    }

    public func entry(_ name: String) -> Entry? { hosts.first { $0.name == name } }

    /// Replaces the entry of the same name, or adds it (kept in name order).
    public mutating func upsert(_ entry: Entry) {
        hosts.removeAll { $0.name == entry.name }
        hosts.append(entry)
        hosts.sort { $0.name < $1.name }
    }

    /// The entries for `names` (all when empty); an unknown name is an error.
    public func select(_ names: [String]) throws -> [Entry] {
        if names.isEmpty { return hosts }
        return try names.map { name in
            guard let found = entry(name) else {
                throw AutoSSLError.invalidArgument(
                    "\"\(SSHTarget.shown(name))\" is not in the inventory", hint: "see `auto-ssl remote list`; hosts are added by `auto-ssl remote enroll`")
            }
            return found
        }
    }
}

/// One host as `remote status` saw it, from the host's own `server status --json`.
public struct RemoteHostStatus: Codable, Sendable, Equatable {
    public enum State: String, Codable, Sendable {
        case ok
        case renewalOverdue = "renewal_overdue"
        case expired
        case revoked
        case notEnrolled = "not_enrolled"
        case unreachable
        case failed
    }

    public var state: State
    public var checkedAt: Date
    public var names: [String]?
    public var serial: String?
    public var notAfter: Date?
    public var renewalPoint: Date?
    public var timer: String?
    public var suspended: Bool?
    public var suspensionReason: String?
    public var lastAttempt: Attempt?
    public var consecutiveFailures: Int?
    public var caURL: String?
    /// What went wrong (unreachable, refused), or the host's own certificate problem.
    public var detail: String?

    /// The host's last renewal run: enrolled, renewed, skipped, not-due or failed, and its message.
    public struct Attempt: Codable, Sendable, Equatable {
        public var time: Date?
        public var result: String?
        public var message: String?
    }

    enum CodingKeys: String, CodingKey {
        case state, names, serial, timer, suspended, detail
        case checkedAt = "checked_at"
        case notAfter = "not_after"
        case renewalPoint = "renewal_point"
        case suspensionReason = "suspension_reason"
        case lastAttempt = "last_attempt"
        case consecutiveFailures = "consecutive_failures"
        case caURL = "ca_url"
    }

    public init(state: State, checkedAt: Date, detail: String? = nil) {
        self.state = state
        self.checkedAt = checkedAt
        self.detail = detail
    }

    /// The fields of the host's `server status --json` that matter here; anything else, or a
    /// field of the wrong type, is ignored or refused by Codable (the host is not trusted).
    struct HostReport: Decodable {
        var enrolled: Bool
        var caURL: String?
        var names: [String]?
        var serial: String?
        var notAfter: Date?
        var renewalPoint: Date?
        var renewalDue: Bool?
        var expired: Bool?
        var revoked: Bool?
        var certificateProblem: String?
        var timer: String?
        var suspended: Bool?
        var suspensionReason: String?
        var lastAttempt: HostAttempt?
        var consecutiveFailures: Int?

        struct HostAttempt: Decodable {
            var time: Date?
            var result: String?
            var message: String?
        }

        enum CodingKeys: String, CodingKey {
            case enrolled, names, serial, expired, revoked, timer, suspended
            case caURL = "ca_url"
            case notAfter = "not_after"
            case renewalPoint = "renewal_point"
            case renewalDue = "renewal_due"
            case certificateProblem = "certificate_problem"
            case suspensionReason = "suspension_reason"
            case lastAttempt = "last_attempt"
            case consecutiveFailures = "consecutive_failures"
        }
    }

    /// Reads a host's `server status --json` (at most 1 MiB; strings cleaned and shortened).
    public init(hostJSON: [UInt8], checkedAt: Date) throws {
        guard hostJSON.count <= 1 << 20 else { throw AutoSSLError.general("the host's status is larger than 1 MiB") }
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        let report: HostReport
        do {
            report = try decoder.decode(HostReport.self, from: Data(hostJSON))
        } catch {
            throw AutoSSLError.general("the host's `server status --json` could not be read (another version of auto-ssl there?)")
        }
        func text(_ value: String?) -> String? { value.map { RemoteText.clean($0, limit: 300) } }
        self.checkedAt = checkedAt
        names = report.names.map { Array($0.prefix(100)).map { RemoteText.clean($0, limit: 253) } }
        serial = text(report.serial)
        notAfter = report.notAfter
        renewalPoint = report.renewalPoint
        timer = text(report.timer)
        suspended = report.suspended
        suspensionReason = text(report.suspensionReason)
        consecutiveFailures = report.consecutiveFailures
        caURL = text(report.caURL)
        if let attempt = report.lastAttempt {
            lastAttempt = Attempt(time: attempt.time, result: text(attempt.result), message: text(attempt.message))
        }
        detail = text(report.certificateProblem)
        if !report.enrolled {
            state = .notEnrolled
        } else if report.revoked == true {
            state = .revoked
        } else if report.expired == true {
            state = .expired
        } else if report.serial == nil {
            state = .failed
        } else if report.renewalDue == true {
            state = .renewalOverdue
        } else {
            state = .ok
        }
    }
}
