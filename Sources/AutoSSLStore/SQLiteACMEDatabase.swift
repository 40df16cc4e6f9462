import AutoSSLCore
import Foundation
import GRDB

/// `ACMEDatabase` in the CA's SQLite file (the certificate store's pool, so issuance and order
/// completion can share one transaction). Every change is one transaction with a conditional
/// update; reads are read-only transactions.
public final class SQLiteACMEDatabase: ACMEDatabase {
    let pool: DatabasePool
    /// The certificate store whose group committer makes the ACME writes durable (same file).
    private let store: SQLiteCertificateStore

    init(store: SQLiteCertificateStore) {
        self.store = store
        self.pool = store.pool
    }

    // MARK: - Schema (called from `SQLiteCertificateStore.migrator`; existing tables never change)

    static func migrate(_ migrator: inout DatabaseMigrator) {
        migrator.registerMigration("v3-acme") { db in
            try db.execute(sql: """
                CREATE TABLE acme_keys (name TEXT PRIMARY KEY NOT NULL, value BLOB NOT NULL);
                CREATE TABLE acme_accounts (
                    id TEXT PRIMARY KEY NOT NULL,
                    provisioner TEXT NOT NULL,
                    thumbprint TEXT NOT NULL,
                    jwk TEXT NOT NULL,
                    status TEXT NOT NULL,
                    contact TEXT NOT NULL,
                    created_at DOUBLE NOT NULL,
                    eab_kid TEXT,
                    UNIQUE (provisioner, thumbprint)
                );
                CREATE TABLE acme_orders (
                    id TEXT PRIMARY KEY NOT NULL,
                    account_id TEXT NOT NULL REFERENCES acme_accounts(id),
                    provisioner TEXT NOT NULL,
                    status TEXT NOT NULL,
                    identifiers TEXT NOT NULL,
                    not_before DOUBLE,
                    not_after DOUBLE,
                    expires DOUBLE NOT NULL,
                    error TEXT,
                    certificate_serial TEXT,
                    created_at DOUBLE NOT NULL
                );
                CREATE INDEX acme_orders_account ON acme_orders(account_id);
                CREATE INDEX acme_orders_serial ON acme_orders(certificate_serial);
                CREATE INDEX acme_orders_expires ON acme_orders(expires);
                CREATE TABLE acme_authorizations (
                    id TEXT PRIMARY KEY NOT NULL,
                    account_id TEXT NOT NULL,
                    order_id TEXT NOT NULL REFERENCES acme_orders(id) ON DELETE CASCADE,
                    position INTEGER NOT NULL,
                    identifier_type TEXT NOT NULL,
                    identifier_value TEXT NOT NULL,
                    wildcard INTEGER NOT NULL,
                    status TEXT NOT NULL,
                    expires DOUBLE NOT NULL
                );
                CREATE INDEX acme_authorizations_order ON acme_authorizations(order_id);
                CREATE TABLE acme_challenges (
                    id TEXT PRIMARY KEY NOT NULL,
                    authorization_id TEXT NOT NULL REFERENCES acme_authorizations(id) ON DELETE CASCADE,
                    position INTEGER NOT NULL,
                    type TEXT NOT NULL,
                    token TEXT NOT NULL,
                    status TEXT NOT NULL,
                    validated_at DOUBLE,
                    error TEXT
                );
                CREATE INDEX acme_challenges_authorization ON acme_challenges(authorization_id);
                CREATE TABLE acme_eab_keys (
                    kid TEXT PRIMARY KEY NOT NULL,
                    provisioner TEXT NOT NULL,
                    hmac_key BLOB NOT NULL,
                    created_at DOUBLE NOT NULL,
                    bound_account TEXT,
                    bound_at DOUBLE
                );
                """)
        }
    }

    static func migrateValidationAttempts(_ migrator: inout DatabaseMigrator) {
        migrator.registerMigration("v6-acme-validation-attempts") { db in
            try db.execute(sql: "ALTER TABLE acme_challenges ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0")
        }
        // A new order counts the account's open orders (the limit on open orders): the index
        // leads it to the unexpired ones, however many the account made before.
        migrator.registerMigration("v7-acme-orders-by-account-and-expiry") { db in
            try db.execute(sql: "CREATE INDEX acme_orders_account_expires ON acme_orders(account_id, expires)")
        }
    }

    /// Writes go through the certificate store's group committer: the ACME requests waiting at the
    /// same moment (each POST spends a nonce) share one transaction and one fsync with each other
    /// and with issuances. A write that throws gets its error, and the rest of its batch is
    /// committed without it (see GroupCommitter). Writes fail with `StoreError.unavailable` when
    /// the database cannot take them (a full disk, an I/O error, a read-only file), as the
    /// certificate store's do.
    func write<T: Sendable>(durable: Bool = true, _ updates: @escaping @Sendable (Database) throws -> T) async throws -> T {
        try await store.write(durable: durable, returning: updates)
    }

    /// A lookup by key on the calling thread, with no read transaction (see
    /// `SQLiteCertificateStore.lookupOne`).
    func lookupOne<T>(_ body: (Database) throws -> T) throws -> T {
        try store.lookupOne(body)
    }

    // MARK: - Server secrets and nonces

    public func key(named name: String, size: Int) async throws -> Data {
        if let existing = try lookupOne({ db in
            try Data.fetchOne(try db.cached("SELECT value FROM acme_keys WHERE name = ?", [name]))
        }) {
            return existing
        }
        return try await write { db in
            if let existing = try Data.fetchOne(try db.cached("SELECT value FROM acme_keys WHERE name = ?", [name])) {
                return existing
            }
            let value = Data(SecureRandom.bytes(size))
            try db.cached("INSERT INTO acme_keys (name, value) VALUES (?, ?)", [name, value]).execute()
            return value
        }
    }

    /// Kept with the one-time tokens (`used_tokens`, id "acme-nonce:" + nonce), which the
    /// certificate store purges once expired.
    public func consumeNonce(_ nonce: String, expiresAt: Date) async throws -> Bool {
        try await write { db in
            do {
                try db.cached("INSERT INTO used_tokens (id, expires_at) VALUES (?, ?)", ["acme-nonce:" + nonce, expiresAt.timeIntervalSince1970]).execute()
                return true
            } catch let error as DatabaseError where error.resultCode == .SQLITE_CONSTRAINT {
                return false
            }
        }
    }

    // MARK: - Accounts

    static let accountColumns = SelectedColumns(["id", "provisioner", "thumbprint", "jwk", "status", "contact", "created_at", "eab_kid"])
    /// An account's row, as `account(_:)` reads it.
    static let selectAccountSQL = "SELECT \(accountColumns.sql) FROM acme_accounts"
    static let selectAccountByIDSQL = selectAccountSQL + " WHERE id = ?"

    static func account(_ row: Row) throws -> ACMEAccountRecord {
        let column = accountColumns
        return try ACMEAccountRecord(
            id: column.decode(row, "id"), provisioner: column.decode(row, "provisioner"), thumbprint: column.decode(row, "thumbprint"), jwk: column.decode(row, "jwk"),
            status: ACMEAccountStatus(rawValue: column.decode(row, "status")) ?? .deactivated,
            contact: StoredJSON.strings(column.decode(row, "contact")), createdAt: Date(timeIntervalSince1970: column.decode(row, "created_at")),
            eabKeyID: column.decode(row, "eab_kid"))
    }


    public func createAccount(_ account: ACMEAccountRecord) async throws -> (ACMEAccountRecord, created: Bool) {
        try await write { db in
            if let row = try Row.fetchOne(try db.cached(Self.selectAccountSQL + " WHERE provisioner = ? AND thumbprint = ?", [account.provisioner, account.thumbprint])) {
                return (try Self.account(row), false)
            }
            if let kid = account.eabKeyID {
                try db.cached("UPDATE acme_eab_keys SET bound_account = ?, bound_at = ? WHERE kid = ? AND provisioner = ? AND bound_account IS NULL", [account.id, account.createdAt.timeIntervalSince1970, kid, account.provisioner]).execute()
                guard db.changesCount == 1 else { throw ACMEDatabaseError.eabKeyAlreadyUsed }
            }
            try db.cached("""
                    INSERT INTO acme_accounts (id, provisioner, thumbprint, jwk, status, contact, created_at, eab_kid)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                    """, [
                    account.id, account.provisioner, account.thumbprint, account.jwk, account.status.rawValue, StoredJSON.encode(account.contact),
                    account.createdAt.timeIntervalSince1970, account.eabKeyID,
                ]).execute()
            return (account, true)
        }
    }

    public func account(id: String) async throws -> ACMEAccountRecord? {
        try lookupOne { db in
            try Row.fetchOne(try db.cached(Self.selectAccountByIDSQL, [id])).map(Self.account)
        }
    }

    /// Both in one look-up on the calling thread (two statements, no common snapshot needed: a
    /// revoked key stays revoked, and an account read a moment earlier is what a separate look-up
    /// would have seen too).
    public func account(id: String, keyHash: (ACMEAccountRecord) throws -> String) async throws -> (account: ACMEAccountRecord, keyRevoked: Bool)? {
        try lookupOne { db in
            guard let account = try Row.fetchOne(try db.cached(Self.selectAccountByIDSQL, [id])).map(Self.account) else { return nil }
            return (account, try SQLiteCertificateStore.isKeyRevoked(db, publicKeyHash: keyHash(account)))
        }
    }

    public func account(provisioner: String, thumbprint: String) async throws -> ACMEAccountRecord? {
        try lookupOne { db in
            try Row.fetchOne(try db.cached(Self.selectAccountSQL + " WHERE provisioner = ? AND thumbprint = ?", [provisioner, thumbprint])).map(Self.account)
        }
    }

    public func updateAccountContact(id: String, contact: [String]) async throws -> ACMEAccountRecord? {
        try await write { db in
            try db.cached("UPDATE acme_accounts SET contact = ? WHERE id = ? AND status = 'valid'", [StoredJSON.encode(contact), id]).execute()
            return try Row.fetchOne(try db.cached(Self.selectAccountByIDSQL, [id])).map(Self.account)
        }
    }

    public func deactivateAccount(id: String) async throws -> ACMEAccountRecord? {
        try await write { db in
            try db.cached("UPDATE acme_accounts SET status = 'deactivated' WHERE id = ? AND status = 'valid'", [id]).execute()
            if db.changesCount == 1 {
                try db.cached("UPDATE acme_authorizations SET status = 'deactivated' WHERE account_id = ? AND status IN ('pending', 'valid')", [id]).execute()
            }
            return try Row.fetchOne(try db.cached(Self.selectAccountByIDSQL, [id])).map(Self.account)
        }
    }

    public func changeAccountKey(id: String, oldThumbprint: String, thumbprint: String, jwk: String) async throws -> Bool {
        try await write { db in
            guard let row = try Row.fetchOne(try db.cached("SELECT provisioner FROM acme_accounts WHERE id = ?", [id])) else {
                throw ACMEDatabaseError.notFound
            }
            let provisioner: String = try row.decode(forColumn: "provisioner")
            if let other = try String.fetchOne(try db.cached("SELECT id FROM acme_accounts WHERE provisioner = ? AND thumbprint = ?", [provisioner, thumbprint])),
               other != id {
                throw ACMEDatabaseError.accountKeyInUse(existingID: other)
            }
            // Only from the key the request was signed with: of two rollovers signed with the same
            // key, the second finds the key changed and changes nothing.
            try db.cached("UPDATE acme_accounts SET thumbprint = ?, jwk = ? WHERE id = ? AND thumbprint = ? AND status = 'valid'", [thumbprint, jwk, id, oldThumbprint]).execute()
            return db.changesCount == 1
        }
    }

    // MARK: - Orders

    public func createOrder(_ order: ACMEOrderRecord, authorizations: [ACMEAuthorizationRecord], openOrderLimit: Int) async throws {
        try await write(durable: false) { db in
            if openOrderLimit < .max {
                let open = try Int.fetchOne(db.cached(
                    "SELECT COUNT(*) FROM acme_orders WHERE account_id = ? AND status IN ('pending', 'ready', 'processing') AND expires > ?",
                    [order.accountID, order.createdAt.timeIntervalSince1970])) ?? 0
                guard open < openOrderLimit else { throw ACMEDatabaseError.tooManyOpenOrders(limit: openOrderLimit) }
            }
            try db.cached("""
                    INSERT INTO acme_orders (id, account_id, provisioner, status, identifiers, not_before, not_after, expires, created_at)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
                    """, [
                    order.id, order.accountID, order.provisioner, order.status.rawValue, StoredJSON.encode(order.identifiers),
                    order.notBefore?.timeIntervalSince1970, order.notAfter?.timeIntervalSince1970, order.expires.timeIntervalSince1970,
                    order.createdAt.timeIntervalSince1970,
                ]).execute()
            for (position, authorization) in authorizations.enumerated() {
                try db.cached("""
                        INSERT INTO acme_authorizations (id, account_id, order_id, position, identifier_type, identifier_value, wildcard, status, expires)
                        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
                        """, [
                        authorization.id, authorization.accountID, order.id, position, authorization.identifier.type,
                        authorization.identifier.value, authorization.wildcard, authorization.status.rawValue,
                        authorization.expires.timeIntervalSince1970,
                    ]).execute()
                for (index, challenge) in authorization.challenges.enumerated() {
                    try db.cached("INSERT INTO acme_challenges (id, authorization_id, position, type, token, status) VALUES (?, ?, ?, ?, ?, ?)", [challenge.id, authorization.id, index, challenge.type, challenge.token, challenge.status.rawValue]).execute()
                }
            }
        }
    }

    static let orderColumns = SelectedColumns([
        "id", "account_id", "provisioner", "status", "identifiers", "not_before", "not_after", "expires", "error", "certificate_serial", "created_at",
    ])

    static let selectOrderByIDSQL = "SELECT \(orderColumns.sql) FROM acme_orders WHERE id = ?"

    static func order(_ row: Row, authorizationIDs: [String]) throws -> ACMEOrderRecord {
        let column = orderColumns
        return try ACMEOrderRecord(
            id: column.decode(row, "id"), accountID: column.decode(row, "account_id"), provisioner: column.decode(row, "provisioner"),
            status: ACMEOrderStatus(rawValue: column.decode(row, "status")) ?? .invalid,
            identifiers: StoredJSON.identifiers(column.decode(row, "identifiers")),
            notBefore: column.decode(row, "not_before", as: Double?.self).map(Date.init(timeIntervalSince1970:)),
            notAfter: column.decode(row, "not_after", as: Double?.self).map(Date.init(timeIntervalSince1970:)),
            expires: Date(timeIntervalSince1970: column.decode(row, "expires")), error: column.decode(row, "error"),
            certificateSerial: column.decode(row, "certificate_serial"),
            createdAt: Date(timeIntervalSince1970: column.decode(row, "created_at")), authorizationIDs: authorizationIDs)
    }

    static func fetchOrder(_ db: Database, id: String) throws -> ACMEOrderRecord? {
        guard let row = try Row.fetchOne(try db.cached(selectOrderByIDSQL, [id])) else { return nil }
        let ids = try String.fetchAll(try db.cached("SELECT id FROM acme_authorizations WHERE order_id = ? ORDER BY position", [id]))
        return try order(row, authorizationIDs: ids)
    }

    public func order(id: String) async throws -> ACMEOrderRecord? {
        // Without a common snapshot: an order's authorizations are written with it and never change.
        try lookupOne { db in try Self.fetchOrder(db, id: id) }
    }

    public func orderIDs(accountID: String) async throws -> [String] {
        try await pool.readOnWorker { db in
            try String.fetchAll(try db.cached("SELECT id FROM acme_orders WHERE account_id = ? ORDER BY created_at", [accountID]))
        }
    }

    public func order(certificateSerial: String) async throws -> ACMEOrderRecord? {
        try lookupOne { db in
            guard let id = try String.fetchOne(try db.cached("SELECT id FROM acme_orders WHERE certificate_serial = ?", [certificateSerial])) else {
                return nil
            }
            return try Self.fetchOrder(db, id: id)
        }
    }

    public func setOrderStatus(id: String, from: ACMEOrderStatus, to: ACMEOrderStatus, error: String?) async throws -> Bool {
        try await write(durable: to != .processing && to != .ready) { db in
            try db.cached("UPDATE acme_orders SET status = ?, error = COALESCE(?, error) WHERE id = ? AND status = ?", [to.rawValue, error, id, from.rawValue]).execute()
            return db.changesCount == 1
        }
    }

    public func resetInterruptedFinalizations() async throws -> Int {
        try await write { db in
            try db.cached("UPDATE acme_orders SET status = 'ready' WHERE status = 'processing'").execute()
            return db.changesCount
        }
    }

    // MARK: - Authorizations and challenges

    static let authorizationColumns = SelectedColumns(
        ["id", "account_id", "order_id", "identifier_type", "identifier_value", "wildcard", "status", "expires"], of: "a")
        + SelectedColumns([
            (expression: "c.id", name: "c_id"), (expression: "c.type", name: "c_type"), (expression: "c.token", name: "c_token"),
            (expression: "c.status", name: "c_status"), (expression: "c.validated_at", name: "c_validated_at"), (expression: "c.error", name: "c_error"),
        ])

    /// Authorizations with their challenges in one statement (one snapshot, so an authorization
    /// and its challenges agree, with no read transaction around it), in order. `condition` is
    /// on `a`, the authorization.
    static func fetchAuthorizations(_ db: Database, where condition: String, _ argument: String) throws -> [ACMEAuthorizationRecord] {
        let column = authorizationColumns
        let rows = try Row.fetchAll(try db.cached("""
                SELECT \(column.sql)
                FROM acme_authorizations AS a LEFT JOIN acme_challenges AS c ON c.authorization_id = a.id
                WHERE \(condition) ORDER BY a.order_id, a.position, c.position
                """, [argument]))
        var records: [ACMEAuthorizationRecord] = []
        for row in rows {
            let id: String = try column.decode(row, "id")
            if records.last?.id != id {
                try records.append(ACMEAuthorizationRecord(
                    id: id, accountID: column.decode(row, "account_id"), orderID: column.decode(row, "order_id"),
                    identifier: ACMEIdentifier(type: column.decode(row, "identifier_type"), value: column.decode(row, "identifier_value")),
                    wildcard: column.decode(row, "wildcard"),
                    status: ACMEAuthorizationStatus(rawValue: column.decode(row, "status")) ?? .invalid,
                    expires: Date(timeIntervalSince1970: column.decode(row, "expires")),
                    challenges: []))
            }
            guard let challengeID: String = try column.decode(row, "c_id") else { continue }
            try records[records.count - 1].challenges.append(ACMEChallengeRecord(
                id: challengeID, authorizationID: id, type: column.decode(row, "c_type"), token: column.decode(row, "c_token"),
                status: ACMEChallengeStatus(rawValue: column.decode(row, "c_status")) ?? .invalid,
                validatedAt: column.decode(row, "c_validated_at", as: Double?.self).map(Date.init(timeIntervalSince1970:)), error: column.decode(row, "c_error")))
        }
        return records
    }

    public func authorization(id: String) async throws -> ACMEAuthorizationRecord? {
        try lookupOne { db in try Self.fetchAuthorizations(db, where: "a.id = ?", id).first }
    }

    public func authorizations(orderID: String) async throws -> [ACMEAuthorizationRecord] {
        try lookupOne { db in try Self.fetchAuthorizations(db, where: "a.order_id = ?", orderID) }
    }

    public func setAuthorizationStatus(id: String, from: Set<ACMEAuthorizationStatus>, to: ACMEAuthorizationStatus) async throws -> Bool {
        guard !from.isEmpty else { return false }
        let sources = from.map(\.rawValue).sorted()
        return try await write { db in
            try db.cached("UPDATE acme_authorizations SET status = ? WHERE id = ? AND status IN (\(databaseQuestionMarks(count: sources.count)))", StatementArguments([to.rawValue, id] + sources)).execute()
            return db.changesCount == 1
        }
    }

    public func deactivateAuthorization(id: String, orderError: String?) async throws -> Bool {
        try await write { db in
            try db.cached("UPDATE acme_authorizations SET status = 'deactivated' WHERE id = ? AND status IN ('pending', 'valid')", [id]).execute()
            guard db.changesCount == 1 else { return false }
            try db.cached("""
                    UPDATE acme_orders SET status = 'invalid', error = COALESCE(?, error)
                    WHERE id = (SELECT order_id FROM acme_authorizations WHERE id = ?) AND status IN ('pending', 'ready')
                    """, [orderError, id]).execute()
            return true
        }
    }

    public func challenge(id: String) async throws -> (ACMEChallengeRecord, ACMEAuthorizationRecord)? {
        try lookupOne { db in
            guard let authorization = try Self.fetchAuthorizations(
                db, where: "a.id = (SELECT authorization_id FROM acme_challenges WHERE id = ?)", id
            ).first, let challenge = authorization.challenges.first(where: { $0.id == id }) else { return nil }
            return (challenge, authorization)
        }
    }

    public func startValidation(challengeID: String) async throws -> Bool {
        try await write(durable: false) { db in
            try db.cached("""
                    UPDATE acme_challenges SET status = 'processing', attempts = attempts + 1
                    WHERE id = ? AND status = 'pending'
                      AND (SELECT status FROM acme_authorizations WHERE id = authorization_id) = 'pending'
                    """, [challengeID]).execute()
            return db.changesCount == 1
        }
    }

    public func beginValidationAttempt(challengeID: String, maximum: Int) async throws -> Bool {
        try await write(durable: false) { db in
            try db.cached("UPDATE acme_challenges SET attempts = attempts + 1 WHERE id = ? AND status = 'processing' AND attempts < ?", [challengeID, maximum]).execute()
            return db.changesCount == 1
        }
    }

    public func noteValidationAttempt(challengeID: String, error: String) async throws {
        try await write(durable: false) { db in
            try db.cached("UPDATE acme_challenges SET error = ? WHERE id = ? AND status = 'processing'", [error, challengeID]).execute()
        }
    }

    public func recordValidationOutcome(_ outcome: ACMEValidationOutcome) async throws -> Bool {
        try await write(durable: false) { db in
            try db.cached("""
                    UPDATE acme_challenges SET status = ?, validated_at = ?, error = ?
                    WHERE id = ? AND authorization_id = ? AND status = 'processing'
                    """, [
                    outcome.challengeStatus.rawValue, outcome.validatedAt?.timeIntervalSince1970, outcome.error, outcome.challengeID,
                    outcome.authorizationID,
                ]).execute()
            guard db.changesCount == 1 else { return false }
            try db.cached("UPDATE acme_authorizations SET status = ? WHERE id = ? AND status = 'pending'", [outcome.authorizationStatus.rawValue, outcome.authorizationID]).execute()
            // Another challenge of the authorization may have decided it first (valid, say): a
            // failure that changed no authorization does not invalidate the order.
            let authorizationChanged = db.changesCount == 1
            // Writes are serialized: the other authorizations read here are as they will stay.
            if let orderStatus = outcome.orderStatus, orderStatus != .invalid || authorizationChanged {
                try db.cached("""
                        UPDATE acme_orders SET status = ?, error = COALESCE(?, error)
                        WHERE id = (SELECT order_id FROM acme_authorizations WHERE id = ?) AND status = 'pending'
                        AND (? <> 'ready' OR NOT EXISTS (
                            SELECT 1 FROM acme_authorizations AS other WHERE other.order_id = acme_orders.id AND other.status <> 'valid'))
                        """, [orderStatus.rawValue, orderStatus == .invalid ? outcome.error : nil, outcome.authorizationID, orderStatus.rawValue]).execute()
            }
            return true
        }
    }

    public func ordersInProcessing() async throws -> [String] {
        try await pool.readOnWorker { db in try String.fetchAll(try db.cached("SELECT id FROM acme_orders WHERE status = 'processing'")) }
    }

    public var sharedByReplicas: Bool { false }

    public func challengesInProcessing() async throws -> [String] {
        try await pool.readOnWorker { db in try String.fetchAll(try db.cached("SELECT id FROM acme_challenges WHERE status = 'processing'")) }
    }

    // MARK: - External account binding

    public func addEABKey(kid: String, provisioner: String, key: Data, now: Date) async throws {
        try await write { db in
            try db.cached("INSERT INTO acme_eab_keys (kid, provisioner, hmac_key, created_at) VALUES (?, ?, ?, ?)", [kid, provisioner, key, now.timeIntervalSince1970]).execute()
        }
    }

    public func unboundEABKey(kid: String, provisioner: String) async throws -> Data? {
        try lookupOne { db in
            try Data.fetchOne(try db.cached("SELECT hmac_key FROM acme_eab_keys WHERE kid = ? AND provisioner = ? AND bound_account IS NULL", [kid, provisioner]))
        }
    }

    public func eabKeys(provisioner: String) async throws -> [ACMEEABKeyInfo] {
        try await pool.readOnWorker { db in
            try Row.fetchAll(try db.cached("SELECT * FROM acme_eab_keys WHERE provisioner = ? ORDER BY created_at", [provisioner])).map {
                try ACMEEABKeyInfo(
                    kid: $0.decode(forColumn: "kid"), provisioner: $0.decode(forColumn: "provisioner"), createdAt: Date(timeIntervalSince1970: $0.decode(forColumn: "created_at")),
                    boundAccount: $0.decode(forColumn: "bound_account"))
            }
        }
    }

    public func removeEABKey(kid: String) async throws -> ACMEEABKeyRemoval {
        try await write { db in
            guard let row = try Row.fetchOne(try db.cached("SELECT provisioner, bound_account FROM acme_eab_keys WHERE kid = ?", [kid])) else {
                return .notFound
            }
            let provisioner: String = try row.decode(forColumn: "provisioner")
            if let account: String = try row.decode(forColumn: "bound_account") { return .bound(provisioner: provisioner, account: account) }
            // In the same write transaction as the read: an account cannot bind it in between.
            try db.cached("DELETE FROM acme_eab_keys WHERE kid = ? AND bound_account IS NULL", [kid]).execute()
            return db.changesCount == 1 ? .removed(provisioner: provisioner) : .notFound
        }
    }

    // MARK: - Clean-up

    public func purge(expiredBefore date: Date) async throws -> Int {
        try await write { db in
            try db.cached("DELETE FROM acme_orders WHERE expires < ? AND certificate_serial IS NULL", [date.timeIntervalSince1970]).execute()
            return db.changesCount
        }
    }
}

/// The former name, still used by `SQLiteCertificateStore.migrator` for the ACME migrations.
