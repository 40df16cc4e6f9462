import AutoSSLCore
import AutoSSLStore
import Foundation
import X509

/// Keeps the current CRL: regenerated on every revocation (ours or one recorded by `ca revoke` in
/// another process, noticed through the store's revocation marker) and at least every hour.
public actor CRLPublisher {
    /// How long a CRL is valid (nextUpdate - thisUpdate).
    public static let validity: TimeInterval = 24 * 3600
    /// Regenerated at least this often even without revocations.
    public static let refreshInterval: TimeInterval = 3600
    /// Expired certificates stay listed this long after they expire, then leave the CRL.
    public static let expiredRetention: TimeInterval = 7 * 86_400

    let issuer: Certificate
    let key: SigningKey
    let store: any CertificateDatabase
    private(set) var der: [UInt8]?
    private(set) var generatedAt: Date?
    private var marker: Int64?

    init(issuer: Certificate, key: SigningKey, store: any CertificateDatabase) {
        self.issuer = issuer
        self.key = key
        self.store = store
    }

    /// The current CRL (DER), generating it when there is none yet or it is due.
    public func current(now: Date = Date()) async throws -> [UInt8] {
        if let der, let generatedAt, now.timeIntervalSince(generatedAt) < Self.refreshInterval {
            return der
        }
        return try await regenerate(now: now)
    }

    /// Regenerates when a revocation was recorded since the last CRL (or when it is due).
    public func refreshIfChanged(now: Date = Date()) async throws {
        let latest = try await store.revocationMarker()
        if latest != marker || generatedAt.map({ now.timeIntervalSince($0) >= Self.refreshInterval }) ?? true {
            try await regenerate(now: now)
        }
    }

    @discardableResult
    public func regenerate(now: Date = Date()) async throws -> [UInt8] {
        let latestMarker = try await store.revocationMarker()
        let entries = try await store.revokedCertificates(notExpiredBefore: now.addingTimeInterval(-Self.expiredRetention))
        let number = try await store.nextCRLNumber()
        let crl = try CRLBuilder.build(
            issuer: issuer, issuerKey: key, number: number, thisUpdate: now.addingTimeInterval(-60),
            nextUpdate: now.addingTimeInterval(Self.validity),
            entries: entries.map { entry in
                CRLBuilder.Entry(serial: SerialText.bytes(fromHex: entry.serial), revokedAt: entry.revokedAt, reasonCode: entry.reasonCode)
            })
        der = crl
        generatedAt = now
        marker = latestMarker
        return crl
    }
}
