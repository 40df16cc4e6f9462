import AutoSSLCore
import Foundation
import Logging
import NIOCore
import PostgresNIO
import Synchronization

/// The certificate database on PostgreSQL, for several `ca serve` replicas of one CA. Same contract
/// as the SQLite store (`CertificateDatabaseContract`): a certificate's row, its token use and the
/// ACME order it completes are committed in one transaction before it is handed out; concurrent
/// issuances share transactions (`PostgresCommitter`).
public final class PostgresCertificateStore: CertificateDatabase {
    let client: PostgresClient
    let committer: PostgresCommitter
    let logger: Logger
    private let runner: Task<Void, Never>
    let started: StartSignal
    public let location: PostgresLocation

    /// Connects, applies missing migrations and returns the store. A server that cannot be reached
    /// or refuses the login is reported in words, without the password.
    public static func open(
        _ location: PostgresLocation, password: String?, onCommit: (@Sendable (Int, Duration) -> Void)? = nil,
        logger: Logger = Logger(label: "auto-ssl.store")
    ) async throws -> PostgresCertificateStore {
        let tls = try PostgresTLS.configuration(for: location)
        // One connection first: a wrong password, a missing database or a server certificate that
        // fails the checks is then reported at once, instead of the pool's retries running into
        // its circuit breaker.
        var probe = PostgresConnection.Configuration(
            host: location.host, port: location.port, username: location.user, password: password, database: location.database,
            tls: tls.connection)
        probe.options.connectTimeout = .seconds(10)
        do {
            let connection = try await PostgresConnection.connect(configuration: probe, id: 0, logger: logger)
            try await connection.close()
        } catch {
            throw openFailure(location, error)
        }
        var configuration = PostgresClient.Configuration(
            host: location.host, port: location.port, username: location.user, password: password, database: location.database,
            tls: tls.client)
        configuration.options.maximumConnections = 8
        configuration.options.connectionIdleTimeout = .seconds(60)
        var background = logger
        background.handler = WithoutLeaseBeforeRunWarning(wrapped: logger.handler)
        let client = PostgresClient(configuration: configuration, backgroundLogger: background)
        let store = PostgresCertificateStore(client: client, location: location, onCommit: onCommit, logger: logger)
        // The client must be running before the first query (else PostgresNIO warns and waits).
        await store.started.wait()
        do {
            try await PostgresSchema.migrate(client, logger: logger)
        } catch {
            try? await store.close()
            throw openFailure(location, error)
        }
        return store
    }

    static func openFailure(_ location: PostgresLocation, _ error: any Error) -> AutoSSLError {
        if let tls = PostgresTLS.describe(error, location: location) {
            return AutoSSLError(
                .trustFailure, "could not open the certificate database \(location): \(tls)",
                hint: "see sslmode and sslrootcert in docs/database.md; the connection was not used")
        }
        return AutoSSLError(
            .network, "could not open the certificate database \(location): \(PostgresStoreErrors.describe(error))",
            hint: "check that PostgreSQL runs there, that the user may log in to the database, and the password file")
    }

    init(client: PostgresClient, location: PostgresLocation, onCommit: (@Sendable (Int, Duration) -> Void)? = nil, logger: Logger) {
        self.client = client
        self.location = location
        self.logger = logger
        self.committer = PostgresCommitter(client: client, logger: logger, onCommit: onCommit)
        let started = StartSignal()
        self.started = started
        self.runner = Task {
            started.signal()
            await client.run()
        }
    }

    /// A read, with connection failures in plain words.
    func read<T: Sendable>(_ body: @escaping @Sendable (PostgresClient) async throws -> T) async throws -> T {
        try await PostgresStoreErrors.call(client, body)
    }

    public func recordIssuance(
        _ record: CertificateRecord, token: TokenUse?, completingOrder orderID: String?, refusingRevokedKey keyHash: String?
    ) async throws {
        guard let der = record.der else { throw StoreError.missingCertificate }
        let names = StoredJSON.encode(record.names)
        let logger = logger
        try await committer.submit { connection in
            if let keyHash {
                // Held until the transaction ends, as `revoke` holds it: an issuance and a revocation
                // of the same key, on any replica, see each other.
                try await Self.lockKey(keyHash, on: connection, logger: logger)
                let revoked = try await connection.query("SELECT 1 FROM revoked_keys WHERE key_hash = \(keyHash)", logger: logger).collect()
                guard revoked.isEmpty else { throw StoreError.keyRevoked }
            }
            if let token { try await Self.insert(token, on: connection, logger: logger) }
            if let orderID {
                let updated = try await connection.query(
                    """
                    UPDATE acme_orders SET status = 'valid', certificate_serial = \(record.serial)
                    WHERE id = \(orderID) AND status = 'ready' RETURNING id
                    """, logger: logger).collect()
                guard updated.count == 1 else { throw StoreError.orderNotReady }
            }
            do {
                try await connection.query(
                    """
                    INSERT INTO certificates (serial, status, common_name, names, not_before, not_after, key_type,
                        provisioner, requester, renewed_from, der, created_at)
                    VALUES (\(record.serial), 'issued', \(record.commonName), \(names), \(record.notBefore.timeIntervalSince1970),
                        \(record.notAfter.timeIntervalSince1970), \(record.keyType), \(record.provisioner), \(record.requester),
                        \(record.renewedFrom), \(Data(der)), \(record.createdAt.timeIntervalSince1970))
                    """, logger: logger)
            } catch where PostgresStoreErrors.isUniqueViolation(error) {
                throw StoreError.serialAlreadyExists
            }
        }
    }

    public func consume(_ token: TokenUse) async throws {
        let logger = logger
        try await committer.submit { connection in try await Self.insert(token, on: connection, logger: logger) }
    }

    static func insert(_ token: TokenUse, on connection: PostgresConnection, logger: Logger) async throws {
        do {
            try await connection.query(
                "INSERT INTO used_tokens (expires_at, id) VALUES (\(token.expiresAt.timeIntervalSince1970), \(token.id))", logger: logger)
        } catch where PostgresStoreErrors.isUniqueViolation(error) {
            throw StoreError.tokenAlreadyUsed
        }
    }

    static let selectSQL = """
        SELECT c.serial, c.status, c.common_name, c.names, c.not_before, c.not_after, c.key_type, c.provisioner, c.requester,
            c.renewed_from, c.der, c.created_at, r.reason_code, r.reason, r.revoked_at, r.revoked_by
        FROM certificates c LEFT JOIN revocations r ON r.serial = c.serial
        """

    typealias CertificateRow = (
        String, String, String, String, Double, Double, String, String, String?, String?, Data?, Double, Int?, String?, Double?, String?
    )

    static func record(_ row: CertificateRow) -> CertificateRecord {
        let (serial, status, commonName, names, notBefore, notAfter, keyType, provisioner, requester, renewedFrom, der, createdAt,
             reasonCode, reason, revokedAt, revokedBy) = row
        var revocation: RevocationRecord?
        if let reasonCode, let revokedAt {
            revocation = RevocationRecord(
                reasonCode: reasonCode, reason: reason ?? "", revokedAt: Date(timeIntervalSince1970: revokedAt), revokedBy: revokedBy ?? "")
        }
        return CertificateRecord(
            serial: serial, status: CertificateRecord.Status(rawValue: status) ?? .reserved, commonName: commonName,
            names: StoredJSON.strings(names),
            notBefore: Date(timeIntervalSince1970: notBefore), notAfter: Date(timeIntervalSince1970: notAfter), keyType: keyType,
            provisioner: provisioner, requester: requester, renewedFrom: renewedFrom, der: der.map { Array($0) },
            createdAt: Date(timeIntervalSince1970: createdAt), revocation: revocation)
    }

    func records(_ query: PostgresQuery) async throws -> [CertificateRecord] {
        let logger = logger
        return try await read { client in
            var found: [CertificateRecord] = []
            for try await row in try await client.query(query, logger: logger).checkedDecode(CertificateRow.self) {
                found.append(Self.record(row))
            }
            return found
        }
    }

    public func certificate(serial: String) async throws -> CertificateRecord? {
        var query = PostgresQuery(unsafeSQL: Self.selectSQL + " WHERE c.serial = $1")
        try query.binds.append(serial, context: .default)
        return try await records(query).first
    }

    public func certificates(_ query: CertificateQuery, now: Date) async throws -> [CertificateRecord] {
        var bindings = PostgresBindings()
        var clauses = ["c.status = 'issued'"]
        if let before = query.expiringBefore {
            try bindings.append(before.timeIntervalSince1970)
            clauses.append("c.not_after <= $\(bindings.count)")
        }
        if !query.includeExpired {
            try bindings.append(now.timeIntervalSince1970)
            clauses.append("c.not_after > $\(bindings.count)")
        }
        if query.onlyRevoked { clauses.append("r.serial IS NOT NULL") }
        if let provisioners = query.provisioners {
            var placeholders: [String] = []
            for name in provisioners.sorted() {
                try bindings.append(name)
                placeholders.append("$\(bindings.count)")
            }
            clauses.append(placeholders.isEmpty ? "FALSE" : "c.provisioner IN (" + placeholders.joined(separator: ", ") + ")")
        }
        var sql = Self.selectSQL + " WHERE " + clauses.joined(separator: " AND ") + " ORDER BY c.created_at DESC"
        if let limit = query.limit { sql += " LIMIT \(max(0, limit))" }
        return try await records(PostgresQuery(unsafeSQL: sql, binds: bindings))
    }

    /// A transaction-scoped lock on one public key (`pg_advisory_xact_lock`), taken by issuance and
    /// revocation before they read or write anything about that key.
    static func lockKey(_ keyHash: String, on connection: PostgresConnection, logger: Logger) async throws {
        try await connection.query("SELECT pg_advisory_xact_lock(hashtextextended(\(keyHash), 0))", logger: logger).collect()
    }

    public func revoke(serial: String, _ revocation: RevocationRecord) async throws -> RevocationChanges {
        let revoked = RevokedSerials()
        let logger = logger
        try await committer.submit { connection in
            revoked.serials = []
            revoked.keyRevoked = false
            let status = try await connection.query("SELECT status, der FROM certificates WHERE serial = \(serial)", logger: logger)
            var der: Data?
            var known = false
            for try await (state, bytes) in status.checkedDecode((String, Data?).self) where state == "issued" {
                known = true
                der = bytes
            }
            guard known else { throw StoreError.unknownSerial }
            let key = der.flatMap { Fingerprint.publicKey(certificateDER: Array($0)) }
            // The key's lock first, before any row is written: two revocations of certificates with
            // the same key wait for each other instead of deadlocking over each other's rows.
            if let key, revocation.coversTheKey { try await Self.lockKey(key.hash, on: connection, logger: logger) }
            func insert(_ serial: String, _ revocation: RevocationRecord) async throws -> Bool {
                try await !connection.query(
                    """
                    INSERT INTO revocations (serial, reason_code, reason, revoked_at, revoked_by)
                    VALUES (\(serial), \(revocation.reasonCode), \(revocation.reason), \(revocation.revokedAt.timeIntervalSince1970),
                        \(revocation.revokedBy))
                    ON CONFLICT (serial) DO NOTHING RETURNING serial
                    """, logger: logger
                ).collect().isEmpty
            }
            if try await insert(serial, revocation) { revoked.serials = [serial] }
            guard revocation.coversTheKey, let key else { return }
            revoked.keyRevoked = try await !connection.query(
                "INSERT INTO revoked_keys (key_hash, serial) VALUES (\(key.hash), \(serial)) ON CONFLICT (key_hash) DO NOTHING RETURNING key_hash",
                logger: logger
            ).collect().isEmpty
            // The other certificates with this key, as on SQLite: found by their DER, confirmed by parsing.
            let siblings = try await connection.query(
                """
                SELECT c.serial, c.der FROM certificates c LEFT JOIN revocations r ON r.serial = c.serial
                WHERE c.status = 'issued' AND c.not_after > \(revocation.revokedAt.timeIntervalSince1970) AND r.serial IS NULL
                    AND position(\(Data(key.bytes)) IN c.der) > 0
                """, logger: logger
            ).collect()
            for row in siblings {
                let (other, otherDER) = try row.checkedDecode((String, Data?).self)
                guard let otherDER, Fingerprint.publicKey(certificateDER: Array(otherDER))?.hash == key.hash else { continue }
                if try await insert(other, revocation.sameKey(as: serial)) { revoked.serials.append(other) }
            }
        }
        return RevocationChanges(serials: revoked.serials, keyRevoked: revoked.keyRevoked)
    }

    public func isKeyRevoked(publicKeyHash: String) async throws -> Bool {
        let logger = logger
        return try await read { client in try await Self.isKeyRevoked(publicKeyHash, client: client, logger: logger) }
    }

    /// The query itself, for the ACME database (same tables).
    static func isKeyRevoked(_ publicKeyHash: String, client: PostgresClient, logger: Logger) async throws -> Bool {
        try await !client.query("SELECT 1 FROM revoked_keys WHERE key_hash = \(publicKeyHash)", logger: logger).collect().isEmpty
    }

    public func revokedCertificates(notExpiredBefore date: Date) async throws -> [RevokedEntry] {
        let logger = logger
        return try await read { client in
            let rows = try await client.query(
                """
                SELECT r.serial, r.revoked_at, r.reason_code, c.der FROM revocations r JOIN certificates c ON c.serial = r.serial
                WHERE c.not_after > \(date.timeIntervalSince1970) ORDER BY r.revoked_at
                """, logger: logger)
            var entries: [RevokedEntry] = []
            for try await (serial, revokedAt, reasonCode, der) in rows.checkedDecode((String, Double, Int, Data?).self) {
                entries.append(RevokedEntry(
                    serial: serial, revokedAt: Date(timeIntervalSince1970: revokedAt), reasonCode: reasonCode, der: der.map { Array($0) }))
            }
            return entries
        }
    }

    public func nextCRLNumber() async throws -> Int64 {
        let number = NumberBox()
        let logger = logger
        try await committer.submit { connection in
            let rows = try await connection.query(
                "UPDATE crl_state SET number = number + 1 WHERE id = 1 RETURNING number", logger: logger)
            for try await value in rows.checkedDecode(Int64.self) { number.value = value }
        }
        return number.value
    }

    public func revocationMarker() async throws -> Int64 {
        let logger = logger
        return try await read { client in
            var marker: Int64 = 0
            let rows = try await client.query(
                "SELECT COUNT(*) * 1000003 + COALESCE(MAX(id), 0) FROM revocations", logger: logger)
            for try await value in rows.checkedDecode(Int64.self) { marker = value }
            return marker
        }
    }

    public func purgeTokens(expiredBefore date: Date) async throws -> Int {
        let logger = logger
        return try await read { client in
            try await client.query(
                "DELETE FROM used_tokens WHERE expires_at < \(date.timeIntervalSince1970) RETURNING 1", logger: logger).collect().count
        }
    }

    public func lifetimes(notExpiredBefore date: Date) async throws -> [CertificateLifetime] {
        let logger = logger
        return try await read { client in
            let rows = try await client.query(
                """
                SELECT c.names, c.not_before, c.not_after, r.serial IS NOT NULL FROM certificates c
                LEFT JOIN revocations r ON r.serial = c.serial WHERE c.status = 'issued' AND c.not_after > \(date.timeIntervalSince1970)
                """, logger: logger)
            var lifetimes: [CertificateLifetime] = []
            for try await (names, notBefore, notAfter, revoked) in rows.checkedDecode((String, Double, Double, Bool).self) {
                lifetimes.append(CertificateLifetime(
                    names: StoredJSON.strings(names), notBefore: Date(timeIntervalSince1970: notBefore),
                    notAfter: Date(timeIntervalSince1970: notAfter), revoked: revoked))
            }
            return lifetimes
        }
    }

    public func fleetCertificates(notExpiredBefore date: Date) async throws -> [FleetCertificate] {
        let logger = logger
        return try await read { client in
            let rows = try await client.query(
                """
                SELECT c.serial, c.names, c.not_before, c.not_after, c.provisioner, c.requester, c.renewed_from, c.created_at,
                    r.revoked_at FROM certificates c
                LEFT JOIN revocations r ON r.serial = c.serial WHERE c.status = 'issued' AND c.not_after > \(date.timeIntervalSince1970)
                """, logger: logger)
            var certificates: [FleetCertificate] = []
            for try await (serial, names, notBefore, notAfter, provisioner, requester, renewedFrom, createdAt, revokedAt) in rows.checkedDecode(
                (String, String, Double, Double, String, String?, String?, Double, Double?).self)
            {
                certificates.append(FleetCertificate(
                    serial: serial,
                    lifetime: CertificateLifetime(
                        names: StoredJSON.strings(names), notBefore: Date(timeIntervalSince1970: notBefore),
                        notAfter: Date(timeIntervalSince1970: notAfter), revoked: revokedAt != nil),
                    provisioner: provisioner, requester: requester, renewedFrom: renewedFrom, createdAt: Date(timeIntervalSince1970: createdAt),
                    revokedAt: revokedAt.map(Date.init(timeIntervalSince1970:))))
            }
            return certificates
        }
    }

    public func issuedNames() async throws -> Set<String> {
        let logger = logger
        return try await read { client in
            let rows = try await client.query("SELECT DISTINCT names FROM certificates WHERE status = 'issued'", logger: logger)
            var names = Set<String>()
            for try await text in rows.checkedDecode(String.self) { names.formUnion(StoredJSON.strings(text)) }
            return names
        }
    }

    public func hasIssued(name: String, otherThan serial: String) async throws -> Bool {
        let logger = logger
        let pattern = StoredJSON.likePattern(forName: name)
        return try await read { client in
            let rows = try await client.query(
                "SELECT 1 FROM certificates WHERE status = 'issued' AND serial <> \(serial) AND names LIKE \(pattern) ESCAPE '\\' LIMIT 1",
                logger: logger)
            return try await rows.collect().count > 0
        }
    }

    public func close() async throws {
        await committer.close()
        runner.cancel()
    }
}

/// Values carried out of a committed operation (which runs inside the committer's transaction).
final class RevokedSerials: @unchecked Sendable {
    var serials: [String] = []
    var keyRevoked = false
}

final class NumberBox: @unchecked Sendable {
    var value: Int64 = 0
}

extension PostgresStoreErrors {
    /// A connection or login failure in words (PostgreSQL's own message when it sent one).
    static func describe(_ error: any Error) -> String {
        if let psql = error as? PSQLError {
            if let message = psql.serverInfo?[.message] { return message }
            switch psql.code {
            case .connectionError: return "no connection (is PostgreSQL running and listening there?)"
            case .authMechanismRequiresPassword: return "the server asks for a password and none was given"
            default: return "\(psql.code)"
            }
        }
        if let store = error as? StoreError, case .unavailable(let reason) = store { return reason }
        return "\(error)"
    }
}

/// Set once the client's `run()` is about to be called.
/// PostgresNIO's background log without one warning: that a connection was leased before
/// `PostgresClient.run()` began. The store starts `run()` before its first query, but the query's
/// thread may reach the pool a few microseconds before `run()` marks itself running; the lease then
/// just waits, so the warning (which reached `ca restore --as-replica`'s output) says nothing.
struct WithoutLeaseBeforeRunWarning: LogHandler {
    var wrapped: any LogHandler

    func log(event: LogEvent) {
        if event.message.description.hasPrefix("Trying to lease connection from `PostgresClient`, but `PostgresClient.run()`") { return }
        wrapped.log(event: event)
    }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { wrapped[metadataKey: key] }
        set { wrapped[metadataKey: key] = newValue }
    }

    var metadata: Logger.Metadata {
        get { wrapped.metadata }
        set { wrapped.metadata = newValue }
    }

    var logLevel: Logger.Level {
        get { wrapped.logLevel }
        set { wrapped.logLevel = newValue }
    }

    var metadataProvider: Logger.MetadataProvider? {
        get { wrapped.metadataProvider }
        set { wrapped.metadataProvider = newValue }
    }
}

final class StartSignal: Sendable {
    private let state = Mutex<(done: Bool, waiters: [CheckedContinuation<Void, Never>])>((false, []))

    func signal() {
        let waiters = state.withLock { state in
            state.done = true
            defer { state.waiters = [] }
            return state.waiters
        }
        for waiter in waiters { waiter.resume() }
    }

    func wait() async {
        await withCheckedContinuation { continuation in
            let ready = state.withLock { state in
                if !state.done { state.waiters.append(continuation) }
                return state.done
            }
            if ready { continuation.resume() }
        }
    }
}
