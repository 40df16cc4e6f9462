import AutoSSLCore
import Foundation
import Logging

/// Everything the CA keeps in its database, behind the protocols the rest of the code uses: the
/// certificate records (with tokens, revocations and CRL numbers), the ACME state (with nonces) and
/// snapshots for backups. Nothing outside this module knows which database implements them.
public struct CADatabase: Sendable {
    public let certificates: any CertificateDatabase
    public let acme: any ACMEDatabase
    /// Consistent copies for `ca backup`; nil where the database is backed up with its own tools
    /// (PostgreSQL: `pg_dump` or the operator's replication).
    public let snapshots: (any DatabaseSnapshotting)?
    /// What replicas share (identity, heartbeats, provisioners and policy); nil for a database that
    /// belongs to one machine (SQLite).
    public let replicated: (any ReplicatedState)?
    /// Where the database is, for messages.
    public let location: String

    public init(
        certificates: any CertificateDatabase, acme: any ACMEDatabase, snapshots: (any DatabaseSnapshotting)?,
        replicated: (any ReplicatedState)? = nil, location: String
    ) {
        self.certificates = certificates
        self.acme = acme
        self.snapshots = snapshots
        self.replicated = replicated
        self.location = location
    }

    /// Waits for pending writes and closes the database.
    public func close() async throws {
        (replicated as? PostgresReplicatedState)?.close()
        try await certificates.close()
    }

    /// Connects to the CA's PostgreSQL database (applying missing migrations): the certificate
    /// records and the ACME state share one client. Backups of it are PostgreSQL's business.
    public static func openPostgres(
        _ location: PostgresLocation, password: String?, writer: WriterOptions = WriterOptions(), logger: Logger = Logger(label: "auto-ssl.store")
    ) async throws -> CADatabase {
        let store = try await PostgresCertificateStore.open(location, password: password, onCommit: writer.onCommit, logger: logger)
        return CADatabase(
            certificates: store, acme: PostgresACMEDatabase(client: store.client, logger: logger), snapshots: nil,
            replicated: PostgresReplicatedState(client: store.client, logger: logger), location: location.description)
    }

    /// Opens (creating on first use) the embedded SQLite database at `path`. A file that is there but
    /// is not an SQLite database, or that SQLite finds damaged, is refused before anything writes to
    /// it, so a damaged database is never replaced by an empty one.
    public static func openSQLite(
        path: String, writer: WriterOptions = WriterOptions(), logger: Logger = Logger(label: "auto-ssl.store")
    ) throws -> CADatabase {
        let advice = "nothing was changed; restore the CA from a backup (`auto-ssl ca restore`) or move the file aside to investigate"
        if let handle = FileHandle(forReadingAtPath: path) {
            let header = (try? handle.read(upToCount: 16)) ?? Data()
            try? handle.close()
            if !header.isEmpty, header != Data("SQLite format 3\0".utf8) {
                throw AutoSSLError.general("the certificate database \(path) is damaged: it is not an SQLite database; \(advice)")
            }
        } else if FileManager.default.fileExists(atPath: path) {
            throw AutoSSLError(
                .permissionDenied, "cannot read the certificate database \(path)",
                hint: "run as the user that owns the CA (root, or the service user)")
        }
        let store: SQLiteCertificateStore
        do {
            store = try SQLiteCertificateStore(path: path, writer: writer, logger: logger)
        } catch let error as SQLiteCertificateStore.StoreOpenError {
            throw AutoSSLError.general("\(error.description); \(advice)")
        } catch let error as AutoSSLError {
            throw error
        } catch {
            throw AutoSSLError.general("could not open the certificate database \(path): \(error); \(advice)")
        }
        return CADatabase(certificates: store, acme: SQLiteACMEDatabase(store: store), snapshots: store, location: path)
    }
}
