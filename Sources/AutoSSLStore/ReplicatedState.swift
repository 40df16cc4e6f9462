import Foundation

/// What the replicas of one CA share through its database besides the certificate records: which
/// CA the database belongs to, which replicas are alive, and the settings that must be the same on
/// every replica (provisioners and policy). Only a shared database (PostgreSQL) has it; the
/// embedded SQLite database belongs to one machine and has no replicas.
public protocol ReplicatedState: Sendable {
    /// Binds the database to the CA whose root has this fingerprint on first use; afterwards,
    /// refuses (`StoreError.belongsToAnotherCA`) a CA with another root, so that a replica is never
    /// pointed at another CA's records.
    func bind(rootFingerprint: String, caName: String, now: Date) async throws

    /// Marks the database as left by its CA (`ca database migrate --to sqlite`): from then on `bind`
    /// refuses it (`StoreError.retired`) and running replicas stop. `false` undoes it (a migration
    /// that failed after marking).
    func setRetired(_ retired: Bool, now: Date) async throws

    /// When the database was retired, nil while it is in use.
    func retiredAt() async throws -> Date?

    /// The fingerprint of the root the database is bound to, nil for an unbound database.
    func boundRootFingerprint() async throws -> String?

    /// Records that `replica` is alive now (an upsert by name).
    func heartbeat(_ replica: ReplicaHeartbeat) async throws

    /// Removes `name`'s heartbeat: the replica stopped on purpose.
    func leave(name: String) async throws

    /// Every replica that has recorded a heartbeat, the most recent first.
    func replicas() async throws -> [ReplicaHeartbeat]

    /// The current shared settings document, nil when none was ever published.
    func sharedSettings() async throws -> SharedSettingsDocument?

    /// Publishes `document` as the next revision, provided the current revision is still
    /// `expectedRevision` (nil: none published yet); otherwise `StoreError.settingsChangedConcurrently`.
    /// Every replica listening is told at once. Returns the new revision.
    func publishSettings(_ document: String, expectedRevision: Int64?, now: Date) async throws -> Int64

    /// Offers a CRL this replica made as the current one of its issuer (intermediate serial, hex):
    /// kept only when its number is higher than the one there.
    func publishCRL(_ crl: SharedCRL) async throws

    /// The current CRL of an issuer, as the replicas made it; nil when none was published.
    func currentCRL(issuerSerial: String) async throws -> SharedCRL?

    /// Appends an administrative change (a provisioner added, a certificate revoked by `ca revoke`,
    /// ...) to the log every replica's operators see, whichever machine it was made on.
    func recordAdminEvent(_ event: AdminEvent) async throws

    /// The newest `limit` administrative changes, newest first.
    func adminEvents(limit: Int) async throws -> [AdminEvent]

    /// Yields each time another replica (or this one) publishes settings, as far as the database
    /// can tell; callers still poll now and then, since a notification can be missed while the
    /// connection is down.
    func settingsNotifications() -> AsyncStream<Void>
}

/// One replica as its heartbeats describe it.
public struct ReplicaHeartbeat: Sendable, Equatable, Codable {
    /// The replica's name: its host name unless configured otherwise; unique per CA.
    public var name: String
    /// The addresses it serves on (host:port).
    public var addresses: [String]
    public var version: String
    public var startedAt: Date
    public var lastSeen: Date

    public init(name: String, addresses: [String], version: String, startedAt: Date, lastSeen: Date) {
        self.name = name
        self.addresses = addresses
        self.version = version
        self.startedAt = startedAt
        self.lastSeen = lastSeen
    }

    enum CodingKeys: String, CodingKey {
        case name, addresses, version
        case startedAt = "started_at"
        case lastSeen = "last_seen"
    }
}

/// The settings every replica must share, as one JSON document with a revision number that only
/// goes up.
public struct SharedSettingsDocument: Sendable, Equatable {
    public var revision: Int64
    public var json: String
    public var updatedAt: Date

    public init(revision: Int64, json: String, updatedAt: Date) {
        self.revision = revision
        self.json = json
        self.updatedAt = updatedAt
    }
}

/// One administrative change, as the shared log keeps it.
public struct AdminEvent: Sendable, Equatable, Codable {
    public var at: Date
    /// The machine the command ran on.
    public var host: String
    /// "settings.changed", "certificate.revoked", "eab.added", ...
    public var event: String
    public var detail: String

    public init(at: Date, host: String, event: String, detail: String) {
        self.at = at
        self.host = host
        self.event = event
        self.detail = detail
    }
}

/// A CRL as replicas share it, so that every replica serves the newest one (CRL numbers come from
/// one shared counter, and a client going from one replica to another never sees them go back for long).
public struct SharedCRL: Sendable, Equatable {
    public var issuerSerial: String
    public var number: Int64
    public var thisUpdate: Date
    public var der: [UInt8]

    public init(issuerSerial: String, number: Int64, thisUpdate: Date, der: [UInt8]) {
        self.issuerSerial = issuerSerial
        self.number = number
        self.thisUpdate = thisUpdate
        self.der = der
    }
}
