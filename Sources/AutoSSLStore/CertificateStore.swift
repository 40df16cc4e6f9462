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
}

/// A one-time token id, remembered until the token would have expired anyway.
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

    public init(expiringBefore: Date? = nil, onlyRevoked: Bool = false, includeExpired: Bool = true, limit: Int? = nil) {
        self.expiringBefore = expiringBefore
        self.onlyRevoked = onlyRevoked
        self.includeExpired = includeExpired
        self.limit = limit
    }
}

public enum StoreError: Error, Equatable, Sendable {
    case tokenAlreadyUsed
    case serialAlreadyExists
    case unknownSerial
}

/// The CA's database. Every write returns only once it is durable on disk.
public protocol CertificateDatabase: Sendable {
    /// Atomically marks the token as used (if any) and records the serial before anything is signed.
    func reserve(_ record: CertificateRecord, token: TokenUse?) async throws
    /// Stores the signed certificate for a reserved serial.
    func markIssued(serial: String, der: [UInt8]) async throws
    func certificate(serial: String) async throws -> CertificateRecord?
    func certificates(_ query: CertificateQuery, now: Date) async throws -> [CertificateRecord]
    /// Forgets token ids whose tokens expired before `date`; returns how many.
    func purgeTokens(expiredBefore date: Date) async throws -> Int
    func close() async throws
}
