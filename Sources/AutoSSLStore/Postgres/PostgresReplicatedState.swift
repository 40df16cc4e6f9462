import AutoSSLCore
import Foundation
import Logging
import PostgresNIO
import Synchronization

/// `ReplicatedState` on the CA's PostgreSQL database (tables of schema v2). Settings changes are
/// announced with `NOTIFY auto_ssl_settings` in the publishing transaction, so listeners hear of
/// them only once they are committed.
public final class PostgresReplicatedState: ReplicatedState {
    static let channel = "auto_ssl_settings"
    let client: PostgresClient
    let logger: Logger
    private let listeners = Mutex<[Task<Void, Never>]>([])

    init(client: PostgresClient, logger: Logger) {
        self.client = client
        self.logger = logger
    }

    func read<T: Sendable>(_ body: @escaping @Sendable (PostgresClient) async throws -> T) async throws -> T {
        try await PostgresStoreErrors.call(client, body)
    }

    public func bind(rootFingerprint: String, caName: String, now: Date) async throws {
        let logger = logger
        let bound = try await read { client in
            try await client.withTransaction(logger: logger) { connection in
                try await connection.query(
                    """
                    INSERT INTO ca_identity (id, root_fingerprint, ca_name, bound_at)
                    VALUES (1, \(rootFingerprint), \(caName), \(now.timeIntervalSince1970)) ON CONFLICT (id) DO NOTHING
                    """, logger: logger)
                var found = ("", nil as Double?)
                for try await value in try await connection.query(
                    "SELECT root_fingerprint, retired_at FROM ca_identity WHERE id = 1", logger: logger).checkedDecode((String, Double?).self) {
                    found = value
                }
                return found
            }
        }
        guard bound.0 == rootFingerprint else { throw StoreError.belongsToAnotherCA(rootFingerprint: bound.0) }
        if let retired = bound.1 { throw StoreError.retired(since: Date(timeIntervalSince1970: retired)) }
    }

    public func setRetired(_ retired: Bool, now: Date) async throws {
        let logger = logger
        let value: Double? = retired ? now.timeIntervalSince1970 : nil
        try await read { client in
            try await client.query("UPDATE ca_identity SET retired_at = \(value) WHERE id = 1", logger: logger)
        }
    }

    public func retiredAt() async throws -> Date? {
        let logger = logger
        return try await read { client in
            var found: Date?
            for try await value in try await client.query(
                "SELECT retired_at FROM ca_identity WHERE id = 1", logger: logger).checkedDecode(Double?.self) {
                found = value.map { Date(timeIntervalSince1970: $0) }
            }
            return found
        }
    }

    public func boundRootFingerprint() async throws -> String? {
        let logger = logger
        return try await read { client in
            var found: String?
            for try await value in try await client.query(
                "SELECT root_fingerprint FROM ca_identity WHERE id = 1", logger: logger).checkedDecode(String.self) {
                found = value
            }
            return found
        }
    }

    public func heartbeat(_ replica: ReplicaHeartbeat) async throws {
        let addresses = StoredJSON.encode(replica.addresses)
        let logger = logger
        try await read { client in
            try await client.query(
                """
                INSERT INTO replicas (name, addresses, version, started_at, last_seen)
                VALUES (\(replica.name), \(addresses), \(replica.version), \(replica.startedAt.timeIntervalSince1970),
                    \(replica.lastSeen.timeIntervalSince1970))
                ON CONFLICT (name) DO UPDATE SET addresses = EXCLUDED.addresses, version = EXCLUDED.version,
                    started_at = EXCLUDED.started_at, last_seen = EXCLUDED.last_seen
                """, logger: logger)
        }
    }

    public func leave(name: String) async throws {
        let logger = logger
        try await read { client in
            try await client.query("DELETE FROM replicas WHERE name = \(name)", logger: logger)
        }
    }

    public func replicas() async throws -> [ReplicaHeartbeat] {
        let logger = logger
        return try await read { client in
            var found: [ReplicaHeartbeat] = []
            let rows = try await client.query(
                "SELECT name, addresses, version, started_at, last_seen FROM replicas ORDER BY last_seen DESC, name", logger: logger)
            for try await (name, addresses, version, startedAt, lastSeen) in rows.checkedDecode((String, String, String, Double, Double).self) {
                found.append(ReplicaHeartbeat(
                    name: name, addresses: StoredJSON.strings(addresses),
                    version: version, startedAt: Date(timeIntervalSince1970: startedAt), lastSeen: Date(timeIntervalSince1970: lastSeen)))
            }
            return found
        }
    }

    public func sharedSettings() async throws -> SharedSettingsDocument? {
        let logger = logger
        return try await read { client in
            var found: SharedSettingsDocument?
            let rows = try await client.query("SELECT revision, document, updated_at FROM shared_settings WHERE id = 1", logger: logger)
            for try await (revision, document, updatedAt) in rows.checkedDecode((Int64, String, Double).self) {
                found = SharedSettingsDocument(revision: revision, json: document, updatedAt: Date(timeIntervalSince1970: updatedAt))
            }
            return found
        }
    }

    public func publishSettings(_ document: String, expectedRevision: Int64?, now: Date) async throws -> Int64 {
        let logger = logger
        let channel = Self.channel
        return try await read { client in
            try await client.withTransaction(logger: logger) { connection in
                // Compare-and-set on the revision, in one statement each way: the first publication
                // only inserts (a second one racing it finds the row and is refused), later ones
                // only update the revision they read.
                let next: Int64
                let changed: [PostgresRow]
                if let expectedRevision {
                    next = expectedRevision &+ 1
                    changed = try await connection.query(
                        """
                        UPDATE shared_settings SET revision = \(next), document = \(document), updated_at = \(now.timeIntervalSince1970)
                        WHERE id = 1 AND revision = \(expectedRevision) RETURNING revision
                        """, logger: logger).collect()
                } else {
                    next = 1
                    changed = try await connection.query(
                        """
                        INSERT INTO shared_settings (id, revision, document, updated_at) VALUES (1, 1, \(document), \(now.timeIntervalSince1970))
                        ON CONFLICT (id) DO NOTHING RETURNING revision
                        """, logger: logger).collect()
                }
                guard changed.count == 1 else { throw StoreError.settingsChangedConcurrently }
                try await connection.query("SELECT pg_notify(\(channel), \(String(next)))", logger: logger)
                return next
            }
        }
    }

    public func publishCRL(_ crl: SharedCRL) async throws {
        let logger = logger
        try await read { client in
            try await client.query(
                """
                INSERT INTO current_crls (issuer_serial, number, this_update, der)
                VALUES (\(crl.issuerSerial), \(crl.number), \(crl.thisUpdate.timeIntervalSince1970), \(Data(crl.der)))
                ON CONFLICT (issuer_serial) DO UPDATE SET number = EXCLUDED.number, this_update = EXCLUDED.this_update,
                    der = EXCLUDED.der
                WHERE current_crls.number < EXCLUDED.number
                """, logger: logger)
        }
    }

    public func currentCRL(issuerSerial: String) async throws -> SharedCRL? {
        let logger = logger
        return try await read { client in
            var found: SharedCRL?
            let rows = try await client.query(
                "SELECT number, this_update, der FROM current_crls WHERE issuer_serial = \(issuerSerial)", logger: logger)
            for try await (number, thisUpdate, der) in rows.checkedDecode((Int64, Double, Data).self) {
                found = SharedCRL(
                    issuerSerial: issuerSerial, number: number, thisUpdate: Date(timeIntervalSince1970: thisUpdate), der: Array(der))
            }
            return found
        }
    }

    public func recordAdminEvent(_ event: AdminEvent) async throws {
        let logger = logger
        try await read { client in
            try await client.query(
                """
                INSERT INTO admin_events (at, host, event, detail)
                VALUES (\(event.at.timeIntervalSince1970), \(event.host), \(event.event), \(event.detail))
                """, logger: logger)
        }
    }

    public func adminEvents(limit: Int) async throws -> [AdminEvent] {
        let logger = logger
        let count = max(0, min(limit, 10_000))
        return try await read { client in
            var found: [AdminEvent] = []
            let rows = try await client.query(
                "SELECT at, host, event, detail FROM admin_events ORDER BY id DESC LIMIT \(count)", logger: logger)
            for try await (at, host, event, detail) in rows.checkedDecode((Double, String, String, String).self) {
                found.append(AdminEvent(at: Date(timeIntervalSince1970: at), host: host, event: event, detail: detail))
            }
            return found
        }
    }

    public func settingsNotifications() -> AsyncStream<Void> {
        let (stream, continuation) = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
        let client = client
        let logger = logger
        let channel = Self.channel
        let task = Task {
            while !Task.isCancelled {
                do {
                    try await client.withConnection { connection in
                        try await connection.listen(on: channel) { notifications in
                            // Listening (again): anything published while not listening was missed.
                            continuation.yield(())
                            for try await _ in notifications { continuation.yield(()) }
                        }
                    }
                } catch {
                    logger.debug("settings notifications interrupted: \(PostgresStoreErrors.describe(error))")
                }
                try? await Task.sleep(for: .seconds(2))
            }
            continuation.finish()
        }
        continuation.onTermination = { _ in task.cancel() }
        listeners.withLock { $0.append(task) }
        return stream
    }

    /// Stops listening (before the client shuts down).
    func close() {
        let tasks = listeners.withLock { tasks in
            defer { tasks = [] }
            return tasks
        }
        for task in tasks { task.cancel() }
    }
}
