import Foundation

/// One certificate the CA issued (or reserved a serial for and is about to sign).
public struct CertificateRecord: Sendable, Equatable, Codable {
    public enum Status: String, Sendable, Codable {
        /// The serial is taken and the request accepted; the certificate is being signed.
        case reserved
        /// Signed, durable, handed out.
        case issued
    }

    public var serial: String
    public var status: Status
    public var commonName: String
    public var names: [String]
    public var notBefore: Date
    public var notAfter: Date
    public var keyType: String
    public var provisioner: String
    public var requester: String?
    public var renewedFrom: String?
    public var der: [UInt8]?
    public var createdAt: Date
    public var revocation: RevocationRecord?

    public init(
        serial: String, status: Status, commonName: String, names: [String], notBefore: Date, notAfter: Date,
        keyType: String, provisioner: String, requester: String?, renewedFrom: String?, der: [UInt8]?,
        createdAt: Date, revocation: RevocationRecord? = nil
    ) {
        self.serial = serial
        self.status = status
        self.commonName = commonName
        self.names = names
        self.notBefore = notBefore
        self.notAfter = notAfter
        self.keyType = keyType
        self.provisioner = provisioner
        self.requester = requester
        self.renewedFrom = renewedFrom
        self.der = der
        self.createdAt = createdAt
        self.revocation = revocation
    }
}

public struct RevocationRecord: Sendable, Equatable, Codable {
    public var reasonCode: Int
    public var reason: String
    public var revokedAt: Date
    public var revokedBy: String

    public init(reasonCode: Int, reason: String, revokedAt: Date, revokedBy: String) {
        self.reasonCode = reasonCode
        self.reason = reason
        self.revokedAt = revokedAt
        self.revokedBy = revokedBy
    }

    /// Whether this revocation also revokes the other certificates with the same key (see
    /// `CertificateStore.revoke`): every reason but superseded (4).
    public var coversTheKey: Bool { reasonCode != 4 }

    /// The revocation of a certificate that shares the key of `serial`, revoked with it.
    public func sameKey(as serial: String) -> RevocationRecord {
        RevocationRecord(reasonCode: reasonCode, reason: reason, revokedAt: revokedAt, revokedBy: "\(revokedBy), same key as \(serial)")
    }
}

/// A one-time token id, remembered until the token would have expired anyway. Both the id and the
/// expiry come from what the token's signature covers, so a replay repeats the pair exactly; the
/// store refuses a pair it has seen.
public struct TokenUse: Sendable, Equatable {
    public var id: String
    public var expiresAt: Date

    public init(id: String, expiresAt: Date) {
        self.id = id
        self.expiresAt = expiresAt
    }
}

public struct CertificateQuery: Sendable {
    public var expiringBefore: Date?
    public var onlyRevoked = false
    public var includeExpired = true
    public var limit: Int?
    /// Only certificates recorded under one of these provisioner names (labels such as `acme/NAME`).
    public var provisioners: Set<String>?

    public init(
        expiringBefore: Date? = nil, onlyRevoked: Bool = false, includeExpired: Bool = true, limit: Int? = nil,
        provisioners: Set<String>? = nil
    ) {
        self.expiringBefore = expiringBefore
        self.onlyRevoked = onlyRevoked
        self.includeExpired = includeExpired
        self.limit = limit
        self.provisioners = provisioners
    }
}

public struct RevokedEntry: Sendable, Equatable {
    public var serial: String
    public var revokedAt: Date
    public var reasonCode: Int
    /// The revoked certificate, so each CRL can list only what its issuer signed.
    public var der: [UInt8]?

    public init(serial: String, revokedAt: Date, reasonCode: Int, der: [UInt8]? = nil) {
        self.serial = serial
        self.revokedAt = revokedAt
        self.reasonCode = reasonCode
        self.der = der
    }
}

public enum StoreError: Error, Equatable, Sendable {
    case tokenAlreadyUsed
    case serialAlreadyExists
    case unknownSerial
    /// An issuance record without the certificate's DER.
    case missingCertificate
    /// The ACME order the issuance was to complete is not ready (any more): another request
    /// finalized it, or it was deactivated meanwhile.
    case orderNotReady
    /// The database cannot take writes now (disk full, I/O error, read-only); nothing was written.
    /// The reason is for the operator; a later try may succeed once it is fixed.
    case unavailable(String)
    /// The shared database belongs to the CA whose root has this fingerprint, not to this one.
    case belongsToAnotherCA(rootFingerprint: String)
    /// Another replica published settings after these were read; read them again and retry.
    case settingsChangedConcurrently
    /// The shared database was left by its CA (moved back to SQLite) at this time.
    case retired(since: Date)
    /// A certificate with the issuance's public key was revoked; nothing was written.
    case keyRevoked
}

/// The CA's database. Every write returns only once it is durable on disk.
public protocol CertificateDatabase: Sendable {
    /// One durable transaction per issuance: marks the token as used (if any) and records the signed
    /// certificate (`record.der`) under its serial. Returns only once the transaction is on disk; the
    /// caller hands the certificate out only then. If anything fails (a replayed token, a serial
    /// already taken) nothing of it remains and the certificate is discarded unseen.
    /// With `completingOrder`, the same transaction moves that ACME order from ready to valid with
    /// this serial; if the order is not ready it throws `orderNotReady` and stores nothing.
    /// With `refusingRevokedKey` (the certificate's `Fingerprint.publicKeyHash`), the same
    /// transaction first checks that no revocation cut off that key and throws `keyRevoked` if one
    /// did: a revocation committed while the certificate was being signed is never missed.
    func recordIssuance(
        _ record: CertificateRecord, token: TokenUse?, completingOrder orderID: String?, refusingRevokedKey keyHash: String?
    ) async throws
    /// Marks a token as used on its own (revocation tokens issue nothing).
    func consume(_ token: TokenUse) async throws
    func certificate(serial: String) async throws -> CertificateRecord?
    func certificates(_ query: CertificateQuery, now: Date) async throws -> [CertificateRecord]
    /// Records a revocation durably and returns what it changed: the serials it revoked (`serial`
    /// first unless it was revoked already: then its own record, reason included, stays as it
    /// was). Renewal keeps the key, so in the same transaction the key is cut off
    /// (`isKeyRevoked`) and every other unexpired, unrevoked certificate with the same public key
    /// is revoked too (revoked by "<revokedBy>, same key as <serial>"), also when `serial` was
    /// revoked already (a certificate revoked as superseded, then found compromised). Not for
    /// reason superseded (4): a certificate replaced by a later one with the same key leaves that
    /// later one, and the key, in force. Finding them reads every unexpired certificate's DER
    /// (about a microsecond each).
    func revoke(serial: String, _ revocation: RevocationRecord) async throws -> RevocationChanges
    /// Whether a revocation cut off this public key (`Fingerprint.publicKeyHash`): no certificate
    /// with it is issued or renewed again.
    func isKeyRevoked(publicKeyHash: String) async throws -> Bool
    /// Revoked certificates whose notAfter is after `date`, for the CRL.
    func revokedCertificates(notExpiredBefore date: Date) async throws -> [RevokedEntry]
    /// The next CRL number (monotonic, durable).
    func nextCRLNumber() async throws -> Int64
    /// Changes whenever a revocation is added (by this process or another), so a server can notice.
    func revocationMarker() async throws -> Int64
    /// Forgets token ids whose tokens expired before `date`; returns how many.
    func purgeTokens(expiredBefore date: Date) async throws -> Int
    /// Issued certificates whose notAfter is after `date`: names, lifetime and whether revoked (for
    /// the CA's gauges: names overdue for renewal, names expiring).
    func lifetimes(notExpiredBefore date: Date) async throws -> [CertificateLifetime]
    /// Issued certificates whose notAfter is after `date`, with where each came from (for the fleet
    /// view: `ca fleet` and the dashboard). No DER.
    func fleetCertificates(notExpiredBefore date: Date) async throws -> [FleetCertificate]
    /// Every name an issued certificate carries (for noticing the first issuance for a name).
    func issuedNames() async throws -> Set<String>
    /// Whether an issued certificate other than `serial` carries `name`.
    func hasIssued(name: String, otherThan serial: String) async throws -> Bool
    func close() async throws
}

/// One issued certificate as the CA's gauges see it.
public struct CertificateLifetime: Sendable, Equatable {
    public var names: [String]
    public var notBefore: Date
    public var notAfter: Date
    public var revoked: Bool

    public init(names: [String], notBefore: Date, notAfter: Date, revoked: Bool) {
        self.names = names
        self.notBefore = notBefore
        self.notAfter = notAfter
        self.revoked = revoked
    }
}

/// One issued certificate as the fleet view sees it: its lifetime plus who asked for it and when.
public struct FleetCertificate: Sendable, Equatable {
    public var serial: String
    public var lifetime: CertificateLifetime
    public var provisioner: String
    /// The address the request came from, as recorded (nil for the CA's own certificates).
    public var requester: String?
    /// The serial this certificate renewed, nil for a first issuance.
    public var renewedFrom: String?
    /// When the record was made (the issuance).
    public var createdAt: Date
    public var revokedAt: Date?

    public init(
        serial: String, lifetime: CertificateLifetime, provisioner: String, requester: String?, renewedFrom: String?,
        createdAt: Date, revokedAt: Date?
    ) {
        self.serial = serial
        self.lifetime = lifetime
        self.provisioner = provisioner
        self.requester = requester
        self.renewedFrom = renewedFrom
        self.createdAt = createdAt
        self.revokedAt = revokedAt
    }
}

extension CertificateDatabase {
    /// An issuance that completes no ACME order (`/sign`, `/renew`, the CA's own certificate).
    public func recordIssuance(_ record: CertificateRecord, token: TokenUse?) async throws {
        try await recordIssuance(record, token: token, completingOrder: nil, refusingRevokedKey: nil)
    }

    public func recordIssuance(_ record: CertificateRecord, token: TokenUse?, completingOrder orderID: String?) async throws {
        try await recordIssuance(record, token: token, completingOrder: orderID, refusingRevokedKey: nil)
    }
}

/// A consistent copy of the whole database while it is in use, for backups.
public protocol DatabaseSnapshotting: Sendable {
    /// Writes the copy to `path`, a file that must not exist yet, in the format the store opens.
    func snapshot(to path: String) async throws
}

/// What one revocation changed in the store.
public struct RevocationChanges: Sendable, Equatable {
    /// The serials revoked now: the one named first unless it was revoked before, then those
    /// with its key.
    public var serials: [String]
    /// Whether the key was cut off now (it had not been by an earlier revocation).
    public var keyRevoked: Bool

    public init(serials: [String] = [], keyRevoked: Bool = false) {
        self.serials = serials
        self.keyRevoked = keyRevoked
    }

    /// Nothing changed: the certificate was revoked before, and so was its key if this revocation covers it.
    public var isEmpty: Bool { serials.isEmpty && !keyRevoked }

    /// Whether `serial`, the certificate named, had been revoked before (its record is unchanged).
    public func revokedBefore(_ serial: String) -> Bool { !serials.contains(serial) }

    /// The others revoked for having the key of `serial`.
    public func sameKey(as serial: String) -> [String] { serials.filter { $0 != serial } }

    /// Only the key of `serial` was cut off now: the certificate itself had been revoked before
    /// (as superseded), so its own revocation is not what the audit log records.
    public func onlyKeyRevoked(of serial: String) -> Bool { keyRevoked && revokedBefore(serial) }
}
