import AutoSSLCore
import AutoSSLIO
import AutoSSLStore
import Foundation

/// `ca revoke` on the CA host: writes the revocation straight into the database, whether or not
/// the server runs. A running server notices within seconds and republishes its CRL.
public struct AdminRevocation {
    public let directories: Directories

    public init(directories: Directories) {
        self.directories = directories
    }

    public struct Result: Sendable {
        public var record: CertificateRecord
        public var alreadyRevoked: Bool
        /// Other certificates with the same key, revoked with it (serials).
        public var sameKey: [String]
    }

    public func revoke(serial text: String, reasonCode: Int, reason: String, now: Date = Date()) async throws -> Result {
        try Authority.validateReasonCode(reasonCode)
        let loader = AuthorityLoader(directories: directories)
        let database = try await loader.openDatabase(try loader.settings())
        let store = database.certificates
        do {
            var found: CertificateRecord?
            for candidate in try SerialText.candidates(text) {
                if let record = try await store.certificate(serial: candidate), record.status == .issued {
                    found = record
                    break
                }
            }
            guard let record = found else {
                throw AutoSSLError.general("no certificate with serial \(text) was issued by this CA; nothing was revoked")
            }
            let revocation = RevocationRecord(reasonCode: reasonCode, reason: reason, revokedAt: now, revokedBy: "admin")
            let revoked = try await store.revoke(serial: record.serial, revocation)
            let audit = try loader.openAuditLog()
            for serial in revoked {
                let names = serial == record.serial ? record.names : (try await store.certificate(serial: serial))?.names ?? []
                let event = AuditLog.Event.revoked(serial, named: record.serial, revocation, sans: names)
                await AdminEventLog.record(
                    database, event: event.event, detail: "\(serial) (\(names.joined(separator: ", "))), \(event.detail ?? "")", now: now)
                audit.record(event)
            }
            let updated = try await store.certificate(serial: record.serial) ?? record
            try await store.close()
            return Result(record: updated, alreadyRevoked: !revoked.contains(record.serial), sameKey: revoked.filter { $0 != record.serial })
        } catch {
            try? await store.close()
            throw error
        }
    }
}
