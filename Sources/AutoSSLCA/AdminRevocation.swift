import AutoSSLConfig
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
        public var changes: RevocationChanges
        /// It had been revoked before (its record, reason included, is unchanged).
        public var alreadyRevoked: Bool { changes.revokedBefore(record.serial) }
        /// Its key was cut off now (revoked before for a reason that left the key in force).
        public var keyRevoked: Bool { changes.keyRevoked }
        /// Other certificates with the same key, revoked with it (serials).
        public var sameKey: [String] { changes.sameKey(as: record.serial) }
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
            let changes = try await Self.revoke(record, revocation, in: database, audit: try loader.openAuditLog(), now: now)
            let updated = try await store.certificate(serial: record.serial) ?? record
            try await store.close()
            return Result(record: updated, changes: changes)
        } catch {
            try? await store.close()
            throw error
        }
    }

    /// What a revocation of everything one provisioner issued in a time window did.
    public struct BulkResult: Sendable {
        /// The unexpired, unrevoked certificates the provisioner issued in the window (revoked now,
        /// unless it was a dry run), oldest first.
        public var matched: [CertificateRecord]
        /// Other certificates revoked with them for having the same key (serials).
        public var sameKey: [String]
        /// Whether a provisioner of that name is configured now (a removed one's certificates can
        /// still be revoked; an unknown name with nothing matched is likely a typo).
        public var isConfigured: Bool
    }

    /// Revokes every certificate that `provisioner` issued (unexpired, or expired but still within
    /// the widest renewal grace window) at or after `after` and before
    /// `before`: the answer to a leaked provisioner password, from the time of the leak. A renewal
    /// counts from the certificate first issued with a token (renewals keep its provisioner), so a
    /// certificate issued before the leak and renewed since is kept, and one issued since is revoked
    /// with all its renewals. `dryRun` lists them.
    public func revokeIssued(
        by provisioner: String, after: Date, before: Date?, reasonCode: Int, reason: String, dryRun: Bool, now: Date = Date()
    ) async throws -> BulkResult {
        try Authority.validateReasonCode(reasonCode)
        guard provisioner != ProvisionerName.caServer else {
            throw AutoSSLError.invalidArgument(
                "\"\(ProvisionerName.caServer)\" is the CA's own TLS certificates, not a provisioner; nothing was revoked",
                hint: "restart the CA (`systemctl restart auto-ssl-ca`) and it serves a new certificate; revoke an old one by its serial with `auto-ssl ca revoke SERIAL`")
        }
        if let before, before <= after {
            throw AutoSSLError.invalidArgument("--issued-before must be later than --issued-after")
        }
        let loader = AuthorityLoader(directories: directories)
        let settings = try loader.settings()
        let isConfigured = settings.provisioners.contains { $0.name == provisioner }
            || (settings.acmeProvisioners ?? []).contains { $0.name == provisioner }
        let database = try await loader.openDatabase(settings)
        let store = database.certificates
        do {
            let end = before ?? .distantFuture
            let candidates = try await Self.usable(labels: ACMEProvisioner.recordedLabels(forName: provisioner), in: store, now: now)
            var known = Dictionary(candidates.map { ($0.serial, $0) }, uniquingKeysWith: { first, _ in first })
            var matched: [CertificateRecord] = []
            for record in candidates {
                let issued = try await Self.firstIssued(record, known: &known, store: store)
                if issued >= after && issued < end { matched.append(record) }
            }
            matched.sort { ($0.createdAt, $0.serial) < ($1.createdAt, $1.serial) }
            var revokedSerials = Set<String>()
            if !dryRun {
                let audit = try loader.openAuditLog()
                let revocation = RevocationRecord(
                    reasonCode: reasonCode, reason: reason.isEmpty ? "issued by provisioner \(provisioner)" : reason, revokedAt: now,
                    revokedBy: "admin")
                for record in matched where !revokedSerials.contains(record.serial) {
                    revokedSerials.formUnion(try await Self.revoke(record, revocation, in: database, audit: audit, now: now).serials)
                }
            }
            try await store.close()
            let matchedSerials = Set(matched.map(\.serial))
            return BulkResult(
                matched: matched, sameKey: revokedSerials.subtracting(matchedSerials).sorted(), isConfigured: isConfigured)
        } catch {
            try? await store.close()
            throw error
        }
    }

    /// The certificates recorded under one of `labels` that can still be used or renewed: issued,
    /// unrevoked, and unexpired or expired within the widest renewal grace window.
    static func usable(labels: Set<String>, in store: any CertificateDatabase, now: Date) async throws -> [CertificateRecord] {
        try await store.certificates(CertificateQuery(includeExpired: true, provisioners: labels), now: now).filter {
            let lifetime = $0.notAfter.timeIntervalSince($0.notBefore)
            return $0.status == .issued && $0.revocation == nil
                && $0.notAfter.addingTimeInterval(max(0, lifetime) * Authority.maximumRenewalGraceFraction) > now
        }
    }

    /// Refuses to give a new provisioner the name of a removed one whose certificates can still be
    /// used: renewals are authorised by the provisioner of that name, so they would renew again.
    /// (An existing provisioner of that name is left to the add itself to refuse.)
    /// `acme`: the new provisioner is an ACME one (its certificates are recorded as `acme/NAME`, so
    /// only a removed ACME provisioner's would renew under it).
    public func checkNameReusable(forNewProvisioner name: String, acme: Bool, now: Date = Date()) async throws {
        let settings = try AuthorityLoader(directories: directories).settings()
        if settings.provisioners.contains(where: { $0.name == name }) || (settings.acmeProvisioners ?? []).contains(where: { $0.name == name }) {
            return
        }
        let usable = try await usableCertificates(labels: [acme ? ACMEProvisioner.labelPrefix + name : name], now: now)
        guard let last = usable.map(\.notAfter).max() else { return }
        throw AutoSSLError.general(
            "\(usable.count) certificate\(usable.count == 1 ? "" : "s") of a removed provisioner named \"\(name)\" can still be used (the last until \(AuditLog.timestamp(last))); a new provisioner of that name would renew them again, so it was not added",
            hint: "choose another name, or revoke them first: auto-ssl ca revoke --provisioner \(name) --issued-after 1970-01-01T00:00:00Z")
    }

    /// The certificates `provisioner` issued that can still be used or renewed (see `usable`),
    /// oldest first: what stops renewing when the provisioner is removed. `provisioner` is a name as
    /// `ca provisioner list` shows it (an ACME provisioner's certificates are recorded as
    /// `acme/NAME`) or such a recorded label.
    public func usableCertificates(of provisioner: String, now: Date = Date()) async throws -> [CertificateRecord] {
        try await usableCertificates(labels: ACMEProvisioner.recordedLabels(forName: provisioner), now: now)
    }

    func usableCertificates(labels: Set<String>, now: Date) async throws -> [CertificateRecord] {
        let loader = AuthorityLoader(directories: directories)
        let store = try await loader.openDatabase(try loader.settings()).certificates
        do {
            let found = try await Self.usable(labels: labels, in: store, now: now)
            try await store.close()
            return found.sorted { ($0.createdAt, $0.serial) < ($1.createdAt, $1.serial) }
        } catch {
            try? await store.close()
            throw error
        }
    }

    /// When the chain of renewals that ends in `record` began: the creation of the first certificate,
    /// the one issued with a token. Predecessors are looked up (expired ones too); a chain longer
    /// than 10,000 renewals, or one that loops, ends where it stops.
    static func firstIssued(
        _ record: CertificateRecord, known: inout [String: CertificateRecord], store: any CertificateDatabase
    ) async throws -> Date {
        var current = record
        var seen: Set<String> = [record.serial]
        for _ in 0..<10_000 {
            guard let previous = current.renewedFrom, seen.insert(previous).inserted else { break }
            let found: CertificateRecord?
            if let cached = known[previous] {
                found = cached
            } else {
                found = try await store.certificate(serial: previous)
                if let found { known[previous] = found }
            }
            guard let found else { break }
            current = found
        }
        return current.createdAt
    }

    /// One revocation written, audited and logged for the replicas; what it changed (the
    /// certificate, unless it was revoked already, those with the same key, and the key).
    static func revoke(
        _ record: CertificateRecord, _ revocation: RevocationRecord, in database: CADatabase, audit: AuditLog, now: Date
    ) async throws -> RevocationChanges {
        let store = database.certificates
        let changes = try await store.revoke(serial: record.serial, revocation)
        if changes.onlyKeyRevoked(of: record.serial) {
            let event = AuditLog.Event.keyRevoked(of: record.serial, revocation)
            await AdminEventLog.record(
                database, event: event.event, detail: "\(record.serial) (\(record.names.joined(separator: ", "))), \(event.detail ?? "")", now: now)
            audit.record(event)
        }
        for serial in changes.serials {
            let names = serial == record.serial ? record.names : (try await store.certificate(serial: serial))?.names ?? []
            let event = AuditLog.Event.revoked(serial, named: record.serial, revocation, sans: names)
            await AdminEventLog.record(
                database, event: event.event, detail: "\(serial) (\(names.joined(separator: ", "))), \(event.detail ?? "")", now: now)
            audit.record(event)
        }
        return changes
    }
}
