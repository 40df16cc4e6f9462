import AutoSSLCore
import AutoSSLIO
import Foundation
import GRDB
import Logging

/// The embedded default store: SQLite in WAL mode with `synchronous=FULL`, so a commit is on disk
/// when it returns. Writes go through a group committer: every request waiting while a commit is
/// being flushed joins the next one, so N concurrent issuances cost one fsync, not N.
public final class SQLiteCertificateStore: CertificateDatabase, DatabaseSnapshotting {
    let pool: DatabasePool
    let committer: GroupCommitter
    let readers: LookupReaders
    public let path: String

    /// `writer`: how the database writer thread treats the requests waiting on it.
    public init(path: String, writer: WriterOptions = WriterOptions(), logger: Logger = Logger(label: "auto-ssl.store")) throws {
        self.path = path
        let expected = try Self.keepPrivate(path)
        var configuration = Configuration()
        configuration.busyMode = .timeout(10)
        configuration.label = "auto-ssl"
        configuration.prepareDatabase { db in
            // Every connection, the writer and each reader GRDB opens later: SQLite resolves symbolic
            // links, so a link put in the file's place after the check above shows here as another
            // file than the one checked, and that connection is refused before it reads or writes.
            let opened = try String.fetchOne(db, sql: "SELECT file FROM pragma_database_list WHERE name = 'main'")
            guard opened == expected else {
                // Not an AutoSSLError: a reader opened for a request answers 500, the details go to the log.
                throw StoreOpenError(
                    path: path,
                    underlying: "it was replaced after it was checked (SQLite opened \(opened ?? "nothing")); check who else can write to "
                        + (path as NSString).deletingLastPathComponent + ": it should be the CA's service account only")
            }
            try db.execute(sql: "PRAGMA foreign_keys = ON")
        }
        // Opened one process at a time (see `openingLock`), until the schema is up to date.
        let opening = try Self.openingLock(path)
        defer { opening?.release() }
        let pool: DatabasePool
        do {
            pool = try DatabasePool(path: path, configuration: configuration)
            // WAL + FULL: each commit is fsync'd (NORMAL, GRDB's WAL default, would lose the last commits
            // on power loss). Set on the one writer connection, after GRDB's own WAL setup.
            try pool.writeWithoutTransaction { db in try db.execute(sql: "PRAGMA synchronous = FULL") }
        } catch let error as StoreOpenError {
            throw error
        } catch {
            throw StoreOpenError(path: path, underlying: "\(error)")
        }
        self.pool = pool
        try Self.migrator.migrate(pool)
        committer = GroupCommitter(pool: pool, logger: logger, options: writer)
        // After the migrations: the lookup connections skip GRDB's per-read schema check.
        readers = LookupReaders(path: path, configuration: configuration, maximum: Self.lookupConnections)
    }

    /// The database holds the EAB keys and every certificate's record, so it is readable by its
    /// owner only, whatever the umask of whoever opens it first: created here with mode 0600 before
    /// SQLite opens it (SQLite gives its `-wal` and `-shm` files the database file's mode), and an
    /// older database, or its companions, opened to others is tightened. A symbolic link in the
    /// database's place is refused: the directory belongs to the CA's service account, and root
    /// runs admin commands in it.
    /// Returns the database file's real path, as SQLite reports the file it opened.
    @discardableResult
    static func keepPrivate(_ path: String) throws -> String {
        func permission(_ file: String, _ code: Int32) -> AutoSSLError {
            AutoSSLError(
                .permissionDenied, "cannot open the certificate database file \(file): \(String(cString: strerror(code)))",
                hint: "run as the user that owns the CA (root, or the service user)")
        }
        var real = path
        for (file, create) in [(path, true), (path + "-wal", false), (path + "-shm", false)] {
            let fd = open(file, (create ? O_RDWR | O_CREAT : O_RDONLY) | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK, 0o600)
            guard fd >= 0 else {
                let code = errno
                if code == ENOENT && !create { continue }
                if code == EACCES || code == EPERM { throw permission(file, code) }
                if code == ELOOP {
                    throw AutoSSLError.general(
                        "the certificate database file \(file) is a symbolic link",
                        hint: "the database's files must be regular files; to keep them elsewhere, set database_dir in config.yaml")
                }
                throw StoreOpenError(path: file, underlying: String(cString: strerror(code)))
            }
            defer { closeDescriptor(fd) }
            var info = stat()
            guard fstat(fd, &info) == 0, info.st_mode & S_IFMT == S_IFREG else {
                throw AutoSSLError.general("the certificate database file \(file) is not a regular file", hint: "move it aside and run again")
            }
            if info.st_mode & 0o077 != 0, fchmod(fd, info.st_mode & 0o700) != 0 {
                let code = errno
                if code == EACCES || code == EPERM { throw permission(file, code) }
                throw StoreOpenError(path: file, underlying: "could not make it private: \(String(cString: strerror(code)))")
            }
            if create, let resolved = realpath(file, nil) {
                real = String(cString: resolved)
                free(resolved)
            }
        }
        return real
    }

    public struct StoreOpenError: Error, CustomStringConvertible {
        public var path: String
        public var underlying: String
        public var description: String { "could not open the certificate database \(path): \(underlying)" }
    }

    /// Two processes opening the database at once (two admin commands run together on a new CA)
    /// would both switch a new file to WAL ("database is locked") and both apply the same
    /// migration, each checking what was applied before its own transaction ("table ... already
    /// exists"). So the open, from the WAL setup to the last migration, takes turns on an exclusive
    /// `flock` of `.migrate.lock` next to the database; it is held for the open only, never while
    /// serving. Waits for a migration another process is running.
    static func openingLock(_ path: String) throws -> FileLock? {
        try FileLock.acquire((path as NSString).deletingLastPathComponent + "/.migrate.lock", exclusive: true, wait: true)
    }

    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1") { db in
            try db.execute(sql: """
                CREATE TABLE certificates (
                    serial TEXT PRIMARY KEY NOT NULL,
                    status TEXT NOT NULL,
                    common_name TEXT NOT NULL,
                    names TEXT NOT NULL,
                    not_before DOUBLE NOT NULL,
                    not_after DOUBLE NOT NULL,
                    key_type TEXT NOT NULL,
                    provisioner TEXT NOT NULL,
                    requester TEXT,
                    renewed_from TEXT,
                    der BLOB,
                    created_at DOUBLE NOT NULL
                );
                CREATE INDEX certificates_not_after ON certificates(not_after);
                CREATE TABLE revocations (
                    serial TEXT PRIMARY KEY NOT NULL REFERENCES certificates(serial),
                    reason_code INTEGER NOT NULL,
                    reason TEXT NOT NULL,
                    revoked_at DOUBLE NOT NULL,
                    revoked_by TEXT NOT NULL
                );
                CREATE TABLE used_tokens (
                    id TEXT PRIMARY KEY NOT NULL,
                    expires_at DOUBLE NOT NULL
                );
                CREATE INDEX used_tokens_expires_at ON used_tokens(expires_at);
                """)
        }
        migrator.registerMigration("v2-crl") { db in
            try db.execute(sql: """
                CREATE TABLE crl_state (id INTEGER PRIMARY KEY CHECK (id = 1), number INTEGER NOT NULL);
                INSERT INTO crl_state (id, number) VALUES (1, 0);
                """)
        }
        SQLiteACMEDatabase.migrate(&migrator)
        migrator.registerMigration("v3-used-tokens-without-rowid") { db in
            // Keyed by the token id alone: every issuance inserts here, and a rowid table kept a
            // second B-tree (one more page in every commit) that no query uses.
            try db.execute(sql: """
                CREATE TABLE used_tokens_keyed (
                    id TEXT PRIMARY KEY NOT NULL,
                    expires_at DOUBLE NOT NULL
                ) WITHOUT ROWID;
                INSERT INTO used_tokens_keyed (id, expires_at) SELECT id, expires_at FROM used_tokens;
                DROP TABLE used_tokens;
                ALTER TABLE used_tokens_keyed RENAME TO used_tokens;
                CREATE INDEX used_tokens_expires_at ON used_tokens(expires_at);
                """)
        }
        migrator.registerMigration("v4-used-tokens-by-expiry") { db in
            // Ordered by expiry: tokens arrive roughly in that order, so each commit adds to the
            // last page of one B-tree instead of one random page per token (plus a second index
            // for purging). A token is still refused the second time: a replay carries the same
            // signed id and expiry.
            try db.execute(sql: """
                CREATE TABLE used_tokens_by_expiry (
                    expires_at DOUBLE NOT NULL,
                    id TEXT NOT NULL,
                    PRIMARY KEY (expires_at, id)
                ) WITHOUT ROWID;
                INSERT INTO used_tokens_by_expiry (expires_at, id) SELECT expires_at, id FROM used_tokens;
                DROP TABLE used_tokens;
                ALTER TABLE used_tokens_by_expiry RENAME TO used_tokens;
                """)
        }
        migrator.registerMigration("v5-revoked-keys") { db in
            // Renewal keeps the key: revoking one certificate must stop every certificate with its
            // key from renewing. Filled at each revocation; existing revocations are read here.
            try db.execute(sql: """
                CREATE TABLE revoked_keys (
                    key_hash TEXT NOT NULL PRIMARY KEY,
                    serial TEXT NOT NULL
                ) WITHOUT ROWID;
                """)
            let rows = try Row.fetchAll(db, sql: "SELECT r.serial, c.der FROM revocations r JOIN certificates c ON c.serial = r.serial")
            for row in rows {
                let der: Data? = try row.decode(forColumn: "der")
                guard let der, let hash = Fingerprint.publicKeyHash(certificateDER: Array(der)) else { continue }
                try db.execute(
                    sql: "INSERT OR IGNORE INTO revoked_keys (key_hash, serial) VALUES (?, ?)", arguments: [hash, try row.decode(forColumn: "serial") as String])
            }
        }
        SQLiteACMEDatabase.migrateValidationAttempts(&migrator)
        return migrator
    }

    /// The synchronous mode in force on the writer connection (2 = FULL), for tests and `ca status`.
    public func synchronousMode() async throws -> Int {
        try await pool.write { db in try Int.fetchOne(db, sql: "PRAGMA synchronous") ?? -1 }
    }

    /// Submits a write; database failures that say nothing about the request (a full disk, an I/O
    /// error, a read-only file) become `StoreError.unavailable` with the reason in plain words.
    func write(_ operation: @escaping GroupCommitter.Operation) async throws {
        try await write(returning: operation)
    }

    /// Submits a write that produces a value; the ACME database's writes come here too, so they
    /// share the group commits (one fsync for every write waiting at that moment).
    func write<T: Sendable>(durable: Bool = true, returning operation: @escaping @Sendable (Database) throws -> T) async throws -> T {
        do {
            return try await committer.submit(durable: durable, returning: operation)
        } catch let error as DatabaseError {
            throw Self.unavailable(error) ?? error
        }
    }

    static func unavailable(_ error: DatabaseError) -> StoreError? {
        switch error.resultCode {
        case .SQLITE_FULL: return .unavailable("the disk holding the certificate database is full")
        case .SQLITE_IOERR: return .unavailable("the certificate database could not be written (I/O error)")
        case .SQLITE_READONLY: return .unavailable("the certificate database is read-only")
        case .SQLITE_CANTOPEN: return .unavailable("the certificate database could not be opened")
        case .SQLITE_CORRUPT, .SQLITE_NOTADB: return .unavailable("the certificate database is damaged")
        case .SQLITE_BUSY, .SQLITE_LOCKED: return .unavailable("the certificate database is locked by another process")
        default: return nil
        }
    }

    public func recordIssuance(
        _ record: CertificateRecord, token: TokenUse?, completingOrder orderID: String?, refusingRevokedKey keyHash: String?
    ) async throws {
        guard let der = record.der else { throw StoreError.missingCertificate }
        let names = StoredJSON.encode(record.names)
        try await write { db in
            if let keyHash,
               try Bool.fetchOne(db.cachedStatement(sql: "SELECT 1 FROM revoked_keys WHERE key_hash = ?"), arguments: [keyHash]) == true {
                throw StoreError.keyRevoked
            }
            if let token { try Self.insert(token, into: db) }
            if let orderID {
                // The ACME order becomes valid in the same transaction that records its certificate.
                try db.cachedStatement(
                    sql: "UPDATE acme_orders SET status = 'valid', certificate_serial = ? WHERE id = ? AND status = 'ready'"
                ).execute(arguments: [record.serial, orderID])
                guard db.changesCount == 1 else { throw StoreError.orderNotReady }
            }
            do {
                // Cached statements: the SQL is compiled once per connection, not once per issuance.
                try db.cachedStatement(sql: """
                    INSERT INTO certificates (serial, status, common_name, names, not_before, not_after, key_type,
                        provisioner, requester, renewed_from, der, created_at)
                    VALUES (?, 'issued', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                    """).execute(
                    arguments: [
                        record.serial, record.commonName, names,
                        record.notBefore.timeIntervalSince1970, record.notAfter.timeIntervalSince1970, record.keyType,
                        record.provisioner, record.requester, record.renewedFrom, Data(der), record.createdAt.timeIntervalSince1970,
                    ])
            } catch let error as DatabaseError where error.resultCode == .SQLITE_CONSTRAINT {
                throw StoreError.serialAlreadyExists
            }
        }
    }

    public func consume(_ token: TokenUse) async throws {
        try await write { db in try Self.insert(token, into: db) }
    }

    static func insert(_ token: TokenUse, into db: Database) throws {
        do {
            try db.cachedStatement(sql: "INSERT INTO used_tokens (id, expires_at) VALUES (?, ?)")
                .execute(arguments: [token.id, token.expiresAt.timeIntervalSince1970])
        } catch let error as DatabaseError where error.resultCode == .SQLITE_CONSTRAINT {
            throw StoreError.tokenAlreadyUsed
        }
    }

    /// A lookup by key (primary key or an indexed column, a handful of rows), run on the calling
    /// thread. A WAL reader never waits for the writer, and a CA's database is small enough to stay
    /// in the page cache: the lookup costs microseconds, less than the two thread hops of an
    /// asynchronous read (to a dispatch queue and back to the caller's executor), which cost more
    /// than the SQL under load (docs/benchmarks.md). Reads that may return many rows, or scan a
    /// table, go to a worker thread (`readOnWorker`).
    ///
    /// No read transaction is opened around `body` (its BEGIN and COMMIT cost more than a lookup by
    /// key): SQLite reads each statement from one snapshot by itself, so `body` runs one statement
    /// (a join when it needs related rows), or statements whose rows need no common snapshot (rows
    /// that never change once written).
    func lookupOne<T>(_ body: (Database) throws -> T) throws -> T {
        try readers.read(orThrough: pool, body)
    }

    /// As many as lookups can run at once on a small server: one per event loop, and a few
    /// from other tasks.
    static let lookupConnections = 4

    public func certificate(serial: String) async throws -> CertificateRecord? {
        try lookupOne { db in
            try Row.fetchOne(try db.cached(Self.selectBySerialSQL, [serial])).map(Self.record)
        }
    }

    public func certificates(_ query: CertificateQuery, now: Date) async throws -> [CertificateRecord] {
        var clauses = ["c.status = 'issued'"]
        var arguments: [any DatabaseValueConvertible] = []
        if let before = query.expiringBefore {
            clauses.append("c.not_after <= ?")
            arguments.append(before.timeIntervalSince1970)
        }
        if !query.includeExpired {
            clauses.append("c.not_after > ?")
            arguments.append(now.timeIntervalSince1970)
        }
        if query.onlyRevoked { clauses.append("r.serial IS NOT NULL") }
        if let provisioners = query.provisioners {
            let names = provisioners.sorted()
            clauses.append(names.isEmpty ? "0" : "c.provisioner IN (" + Array(repeating: "?", count: names.count).joined(separator: ", ") + ")")
            for name in names { arguments.append(name) }
        }
        var sql = Self.selectSQL + " WHERE " + clauses.joined(separator: " AND ") + " ORDER BY c.created_at DESC"
        if let limit = query.limit { sql += " LIMIT \(max(0, limit))" }
        let finalSQL = sql
        let finalArguments = StatementArguments(arguments.map { $0.databaseValue })
        return try await pool.readOnWorker { db in
            try Row.fetchAll(db, sql: finalSQL, arguments: finalArguments).map(Self.record)
        }
    }

    public func revoke(serial: String, _ revocation: RevocationRecord) async throws -> RevocationChanges {
        let box = ResultBox()
        try await write { db in
            box.serials = []
            box.flag = false
            guard try String.fetchOne(db, sql: "SELECT status FROM certificates WHERE serial = ?", arguments: [serial]) == "issued" else {
                throw StoreError.unknownSerial
            }
            func insert(_ serial: String, _ revocation: RevocationRecord) throws -> Bool {
                try db.execute(
                    sql: """
                        INSERT OR IGNORE INTO revocations (serial, reason_code, reason, revoked_at, revoked_by)
                        VALUES (?, ?, ?, ?, ?)
                        """,
                    arguments: [serial, revocation.reasonCode, revocation.reason, revocation.revokedAt.timeIntervalSince1970, revocation.revokedBy])
                return db.changesCount > 0
            }
            if try insert(serial, revocation) { box.serials = [serial] }
            guard revocation.coversTheKey,
                  let der = try Data.fetchOne(db, sql: "SELECT der FROM certificates WHERE serial = ?", arguments: [serial]),
                  let key = Fingerprint.publicKey(certificateDER: Array(der))
            else { return }
            try db.execute(sql: "INSERT OR IGNORE INTO revoked_keys (key_hash, serial) VALUES (?, ?)", arguments: [key.hash, serial])
            box.flag = db.changesCount > 0
            // The other certificates with this key: its public key's bytes found in their DER, then
            // each confirmed by parsing (a byte match elsewhere in a certificate is not its key).
            let siblings = try Row.fetchAll(
                db,
                sql: """
                    SELECT c.serial, c.der FROM certificates c LEFT JOIN revocations r ON r.serial = c.serial
                    WHERE c.status = 'issued' AND c.not_after > ? AND r.serial IS NULL AND instr(c.der, ?) > 0
                    """,
                arguments: [revocation.revokedAt.timeIntervalSince1970, Data(key.bytes)])
            for row in siblings {
                let other: String = try row.decode(forColumn: "serial")
                let otherDER: Data? = try row.decode(forColumn: "der")
                guard let otherDER, Fingerprint.publicKey(certificateDER: Array(otherDER))?.hash == key.hash else { continue }
                if try insert(other, revocation.sameKey(as: serial)) { box.serials.append(other) }
            }
        }
        return RevocationChanges(serials: box.serials, keyRevoked: box.flag)
    }

    public func isKeyRevoked(publicKeyHash: String) async throws -> Bool {
        try lookupOne { db in try Self.isKeyRevoked(db, publicKeyHash: publicKeyHash) }
    }

    /// The look-up itself, for a caller already holding a connection (`SQLiteACMEDatabase`).
    static func isKeyRevoked(_ db: Database, publicKeyHash: String) throws -> Bool {
        try Bool.fetchOne(try db.cached("SELECT 1 FROM revoked_keys WHERE key_hash = ?", [publicKeyHash])) ?? false
    }

    public func revokedCertificates(notExpiredBefore date: Date) async throws -> [RevokedEntry] {
        try await pool.readOnWorker { db in
            try Row.fetchAll(
                db,
                sql: """
                    SELECT r.serial, r.revoked_at, r.reason_code, c.der FROM revocations r JOIN certificates c ON c.serial = r.serial
                    WHERE c.not_after > ? ORDER BY r.revoked_at
                    """,
                arguments: [date.timeIntervalSince1970]
            ).map { row in
                let der: Data? = try row.decode(forColumn: "der")
                return try RevokedEntry(
                    serial: row.decode(forColumn: "serial"), revokedAt: Date(timeIntervalSince1970: row.decode(forColumn: "revoked_at")), reasonCode: row.decode(forColumn: "reason_code"),
                    der: der.map { Array($0) })
            }
        }
    }

    public func nextCRLNumber() async throws -> Int64 {
        let box = ResultBox()
        try await write { db in
            try db.execute(sql: "UPDATE crl_state SET number = number + 1 WHERE id = 1")
            box.number = try Int64.fetchOne(db, sql: "SELECT number FROM crl_state WHERE id = 1") ?? 0
        }
        return box.number
    }

    public func revocationMarker() async throws -> Int64 {
        try await pool.readOnWorker { db in
            try Int64.fetchOne(db, sql: "SELECT COUNT(*) * 1000003 + COALESCE(MAX(rowid), 0) FROM revocations") ?? 0
        }
    }

    public func purgeTokens(expiredBefore date: Date) async throws -> Int {
        try await pool.write { db in
            try db.execute(sql: "DELETE FROM used_tokens WHERE expires_at < ?", arguments: [date.timeIntervalSince1970])
            return db.changesCount
        }
    }

    public func lifetimes(notExpiredBefore date: Date) async throws -> [CertificateLifetime] {
        try await pool.readOnWorker { db in
            let rows = try Row.fetchCursor(
                db,
                sql: """
                    SELECT c.names, c.not_before, c.not_after, r.serial IS NOT NULL FROM certificates c
                    LEFT JOIN revocations r ON r.serial = c.serial WHERE c.status = 'issued' AND c.not_after > ?
                    """,
                arguments: [date.timeIntervalSince1970])
            var lifetimes: [CertificateLifetime] = []
            while let row = try rows.next() {
                try lifetimes.append(CertificateLifetime(
                    names: StoredJSON.strings(row.decode(atIndex: 0)), notBefore: Date(timeIntervalSince1970: row.decode(atIndex: 1)),
                    notAfter: Date(timeIntervalSince1970: row.decode(atIndex: 2)), revoked: row.decode(atIndex: 3)))
            }
            return lifetimes
        }
    }

    public func fleetCertificates(notExpiredBefore date: Date) async throws -> [FleetCertificate] {
        try await pool.readOnWorker { db in
            let rows = try Row.fetchCursor(
                db,
                sql: """
                    SELECT c.serial, c.names, c.not_before, c.not_after, c.provisioner, c.requester, c.renewed_from, c.created_at,
                        r.revoked_at FROM certificates c
                    LEFT JOIN revocations r ON r.serial = c.serial WHERE c.status = 'issued' AND c.not_after > ?
                    """,
                arguments: [date.timeIntervalSince1970])
            var certificates: [FleetCertificate] = []
            while let row = try rows.next() {
                let revokedAt: Double? = try row.decode(atIndex: 8)
                try certificates.append(FleetCertificate(
                    serial: row.decode(atIndex: 0),
                    lifetime: CertificateLifetime(
                        names: StoredJSON.strings(row.decode(atIndex: 1)), notBefore: Date(timeIntervalSince1970: row.decode(atIndex: 2)),
                        notAfter: Date(timeIntervalSince1970: row.decode(atIndex: 3)), revoked: revokedAt != nil),
                    provisioner: row.decode(atIndex: 4), requester: row.decode(atIndex: 5), renewedFrom: row.decode(atIndex: 6), createdAt: Date(timeIntervalSince1970: row.decode(atIndex: 7)),
                    revokedAt: revokedAt.map(Date.init(timeIntervalSince1970:))))
            }
            return certificates
        }
    }

    public func issuedNames() async throws -> Set<String> {
        try await pool.readOnWorker { db in
            var names = Set<String>()
            let rows = try String.fetchCursor(db, sql: "SELECT DISTINCT names FROM certificates WHERE status = 'issued'")
            while let text = try rows.next() { names.formUnion(StoredJSON.strings(text)) }
            return names
        }
    }

    public func hasIssued(name: String, otherThan serial: String) async throws -> Bool {
        try await pool.readOnWorker { db in
            try Bool.fetchOne(
                db,
                sql: "SELECT 1 FROM certificates WHERE status = 'issued' AND serial <> ? AND names LIKE ? ESCAPE '\\' LIMIT 1",
                arguments: [serial, StoredJSON.likePattern(forName: name)]) ?? false
        }
    }

    public func close() async throws {
        committer.close()
        readers.close()
        try pool.close()
    }

    /// SQLite's online backup into a new file: consistent while the CA keeps writing.
    public func snapshot(to path: String) async throws {
        try Self.keepPrivate(path)
        let snapshot = try DatabaseQueue(path: path)
        do {
            try pool.backup(to: snapshot)
            try snapshot.close()
        } catch {
            try? snapshot.close()
            throw error
        }
    }

    static let recordColumns = SelectedColumns(
        ["serial", "status", "common_name", "names", "not_before", "not_after", "key_type", "provisioner", "requester", "renewed_from", "der", "created_at"],
        of: "c") + SelectedColumns(["reason_code", "reason", "revoked_at", "revoked_by"], of: "r")

    static let selectSQL = """
        SELECT \(recordColumns.sql)
        FROM certificates c LEFT JOIN revocations r ON r.serial = c.serial
        """
    static let selectBySerialSQL = selectSQL + " WHERE c.serial = ?"

    static func record(_ row: Row) throws -> CertificateRecord {
        let column = recordColumns
        var revocation: RevocationRecord?
        if let revokedAt = try column.decode(row, "revoked_at", as: Double?.self) {
            revocation = try RevocationRecord(
                reasonCode: column.decode(row, "reason_code"), reason: column.decode(row, "reason"),
                revokedAt: Date(timeIntervalSince1970: revokedAt), revokedBy: column.decode(row, "revoked_by"))
        }
        let der = try column.decode(row, "der", as: Data?.self)
        return try CertificateRecord(
            serial: column.decode(row, "serial"),
            status: CertificateRecord.Status(rawValue: column.decode(row, "status")) ?? .reserved,
            commonName: column.decode(row, "common_name"),
            names: StoredJSON.strings(column.decode(row, "names")),
            notBefore: Date(timeIntervalSince1970: column.decode(row, "not_before")),
            notAfter: Date(timeIntervalSince1970: column.decode(row, "not_after")),
            keyType: column.decode(row, "key_type"),
            provisioner: column.decode(row, "provisioner"),
            requester: column.decode(row, "requester"),
            renewedFrom: column.decode(row, "renewed_from"),
            der: der.map { Array($0) },
            createdAt: Date(timeIntervalSince1970: column.decode(row, "created_at")),
            revocation: revocation)
    }

}

/// Carries a value out of a group-committed operation (which runs on the database's queue).
final class ResultBox: @unchecked Sendable {
    var serials: [String] = []
    var flag = false
    var number: Int64 = 0
}

/// close(2), out of reach of the store's own `close()`.
private func closeDescriptor(_ descriptor: Int32) {
    close(descriptor)
}
