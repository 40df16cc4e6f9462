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
            let changed = try await store.revoke(
                serial: record.serial, RevocationRecord(reasonCode: reasonCode, reason: reason, revokedAt: now, revokedBy: "admin"))
            if changed {
                await AdminEventLog.record(
                    database, event: "certificate.revoked", detail: "\(record.serial) (\(record.names.joined(separator: ", "))), reason code \(reasonCode)",
                    now: now)
                try loader.openAuditLog().record(.init(
                    "certificate.revoked", time: now, serial: record.serial, sans: record.names,
                    reason: reason.isEmpty ? CRLBuilder.reasonNames[reasonCode] : reason,
                    detail: "reason code \(reasonCode), by admin"))
            }
            let updated = try await store.certificate(serial: record.serial) ?? record
            try await store.close()
            return Result(record: updated, alreadyRevoked: !changed)
        } catch {
            try? await store.close()
            throw error
        }
    }
}
