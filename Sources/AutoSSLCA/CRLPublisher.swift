import AutoSSLCore
import AutoSSLStore
import Foundation
import X509

/// Keeps one intermediate's CRL: regenerated on every revocation (ours or one recorded by `ca revoke`
/// in another process, noticed through the store's revocation marker) and at least every hour.
/// It lists the revoked certificates that intermediate signed (matched by their authority key
/// identifier); the current intermediate's CRL also lists any revoked certificate whose issuer
/// cannot be told, so nothing revoked is ever left off every CRL.
public actor CRLPublisher {
    /// How long a CRL is valid (nextUpdate - thisUpdate).
    public static let validity: TimeInterval = 24 * 3600
    /// Regenerated at least this often even without revocations.
    public static let refreshInterval: TimeInterval = 3600
    /// Expired certificates stay listed this long after they expire, then leave the CRL.
    public static let expiredRetention: TimeInterval = 7 * 86_400

    public let issuer: Certificate
    let key: SigningKey
    let store: any CertificateDatabase
    /// The issuer's key identifier, as the certificates it signed carry it in their AKI.
    let issuerKeyID: ArraySlice<UInt8>
    /// Whether revoked certificates of unknown issuer are listed here (the current intermediate).
    let listsUnattributed: Bool
    private(set) var der: [UInt8]?
    private(set) var generatedAt: Date?
    private var marker: Int64?
    /// The number of the CRL served now.
    private(set) var number: Int64?
    /// Replicas of a CA on PostgreSQL share their newest CRL through this; nil on SQLite.
    let shared: (any ReplicatedState)?
    let issuerSerial: String

    init(
        issuer: Certificate, key: SigningKey, store: any CertificateDatabase, shared: (any ReplicatedState)? = nil,
        listsUnattributed: Bool = true
    ) throws {
        self.issuer = issuer
        self.key = key
        self.store = store
        self.shared = shared
        self.issuerSerial = issuer.serialNumber.hexString
        self.issuerKeyID = try CertificateProfiles.authorityKeyIdentifier(forIssuer: issuer)
        self.listsUnattributed = listsUnattributed
    }

    /// Whether this CRL lists the revoked certificate: signed by this issuer (or of unknown issuer,
    /// on the current intermediate's CRL).
    func lists(_ entry: RevokedEntry) -> Bool {
        guard let der = entry.der, let certificate = try? Certificate(derEncoded: der),
              let aki = try? certificate.extensions.authorityKeyIdentifier?.keyIdentifier else {
            return listsUnattributed
        }
        return aki == issuerKeyID
    }

    /// The current CRL (DER), generating it when there is none yet or it is due.
    public func current(now: Date = Date()) async throws -> [UInt8] {
        if let der, let generatedAt, now.timeIntervalSince(generatedAt) < Self.refreshInterval {
            return der
        }
        if let der, let failedAt = lastFailure, now.timeIntervalSince(failedAt) < Self.retryAfterFailure {
            // The database did not answer a moment ago: the last CRL is the answer (clients accept
            // it until its nextUpdate), without making every request wait for the database again.
            return der
        }
        do {
            let fresh = try await regenerate(now: now)
            lastFailure = nil
            return fresh
        } catch StoreError.unavailable where der != nil {
            lastFailure = now
            return der ?? []
        }
    }

    /// When regenerating last failed because the database did not answer.
    private var lastFailure: Date?
    static let retryAfterFailure: TimeInterval = 30

    /// Regenerates when a revocation was recorded since the last CRL (or when it is due).
    public func refreshIfChanged(now: Date = Date()) async throws {
        let latest = try await store.revocationMarker()
        if latest != marker || generatedAt.map({ now.timeIntervalSince($0) >= Self.refreshInterval }) ?? true {
            try await regenerate(now: now)
        } else {
            try await adoptNewerShared()
        }
    }

    /// Serves another replica's CRL when it is newer than ours (same issuer, higher number from the
    /// shared counter), so that replicas behind one name converge on one CRL within seconds. The
    /// database is the CA's own (it holds every record this CA serves); its CRL is size-checked,
    /// and relying parties verify its signature as for any CRL.
    func adoptNewerShared() async throws {
        guard let shared, let newest = try await shared.currentCRL(issuerSerial: issuerSerial),
              newest.number > (number ?? 0), !newest.der.isEmpty, newest.der.count <= Self.maximumSharedBytes,
              newest.der.first == 0x30 else { return }
        der = newest.der
        number = newest.number
        generatedAt = min(Date(), newest.thisUpdate)
    }

    static let maximumSharedBytes = 64 << 20

    @discardableResult
    public func regenerate(now: Date = Date()) async throws -> [UInt8] {
        let latestMarker = try await store.revocationMarker()
        let entries = try await store.revokedCertificates(notExpiredBefore: now.addingTimeInterval(-Self.expiredRetention))
        let number = try await store.nextCRLNumber()
        let crl = try CRLBuilder.build(
            issuer: issuer, issuerKey: key, number: number, thisUpdate: now.addingTimeInterval(-60),
            nextUpdate: now.addingTimeInterval(Self.validity),
            entries: entries.filter(lists).map { entry in
                CRLBuilder.Entry(serial: SerialText.bytes(fromHex: entry.serial), revokedAt: entry.revokedAt, reasonCode: entry.reasonCode)
            })
        der = crl
        generatedAt = now
        marker = latestMarker
        self.number = number
        if let shared {
            try? await shared.publishCRL(SharedCRL(issuerSerial: issuerSerial, number: number, thisUpdate: now, der: crl))
        }
        return crl
    }
}
