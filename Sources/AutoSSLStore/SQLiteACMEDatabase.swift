import AutoSSLCore
import Foundation
import GRDB

/// ACME state (RFC 8555): accounts, orders, authorizations, challenges and external account
/// binding keys, in the CA's database so it survives restarts and is shared by replicas.
/// Every state change is one transaction with a conditional update, so concurrent requests on
/// the same order or account cannot overwrite each other.
public struct ACMEIdentifier: Codable, Hashable, Sendable {
    public var type: String
    public var value: String

    public init(type: String, value: String) {
        self.type = type
        self.value = value
    }
}

public struct ACMEAccountRecord: Sendable, Equatable {
    public var id: String
    public var provisioner: String
    public var thumbprint: String
    /// RFC 7638 canonical JWK.
    public var jwk: String
    public var status: String
    public var contact: [String]
    public var createdAt: Date
    public var eabKeyID: String?

    public init(id: String, provisioner: String, thumbprint: String, jwk: String, status: String, contact: [String], createdAt: Date, eabKeyID: String?) {
        self.id = id
        self.provisioner = provisioner
        self.thumbprint = thumbprint
        self.jwk = jwk
        self.status = status
        self.contact = contact
        self.createdAt = createdAt
        self.eabKeyID = eabKeyID
    }
}

public struct ACMEChallengeRecord: Sendable, Equatable {
    public var id: String
    public var authorizationID: String
    public var type: String
    public var token: String
    public var status: String
    public var validatedAt: Date?
    /// Problem document JSON.
    public var error: String?

    public init(id: String, authorizationID: String, type: String, token: String, status: String, validatedAt: Date? = nil, error: String? = nil) {
        self.id = id
        self.authorizationID = authorizationID
        self.type = type
        self.token = token
        self.status = status
        self.validatedAt = validatedAt
        self.error = error
    }
}

public struct ACMEAuthorizationRecord: Sendable, Equatable {
    public var id: String
    public var accountID: String
    public var orderID: String
    public var identifier: ACMEIdentifier
    public var wildcard: Bool
    public var status: String
    public var expires: Date
    public var challenges: [ACMEChallengeRecord]

    public init(id: String, accountID: String, orderID: String, identifier: ACMEIdentifier, wildcard: Bool, status: String, expires: Date, challenges: [ACMEChallengeRecord]) {
        self.id = id
        self.accountID = accountID
        self.orderID = orderID
        self.identifier = identifier
        self.wildcard = wildcard
        self.status = status
        self.expires = expires
        self.challenges = challenges
    }
}

public struct ACMEOrderRecord: Sendable, Equatable {
    public var id: String
    public var accountID: String
    public var provisioner: String
    public var status: String
    public var identifiers: [ACMEIdentifier]
    public var notBefore: Date?
    public var notAfter: Date?
    public var expires: Date
    public var error: String?
    public var certificateSerial: String?
    public var createdAt: Date
    public var authorizationIDs: [String]

    public init(
        id: String, accountID: String, provisioner: String, status: String, identifiers: [ACMEIdentifier], notBefore: Date?,
        notAfter: Date?, expires: Date, error: String? = nil, certificateSerial: String? = nil, createdAt: Date, authorizationIDs: [String]
    ) {
        self.id = id
        self.accountID = accountID
        self.provisioner = provisioner
        self.status = status
        self.identifiers = identifiers
        self.notBefore = notBefore
        self.notAfter = notAfter
        self.expires = expires
        self.error = error
        self.certificateSerial = certificateSerial
        self.createdAt = createdAt
        self.authorizationIDs = authorizationIDs
    }
}

public enum ACMEStoreError: Error, Equatable, Sendable {
    case accountKeyInUse(existingID: String)
    case notFound
    case eabKeyAlreadyUsed
}

public final class ACMEStore: Sendable {
    let pool: DatabasePool

    public init(_ store: SQLiteCertificateStore) {
        pool = store.pool
    }

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

    static func encode(_ value: some Encodable) -> String {
        String(decoding: (try? JSONEncoder().encode(value)) ?? Data("[]".utf8), as: UTF8.self)
    }

    static func decode<T: Decodable>(_ type: T.Type, _ text: String) -> T? {
        try? JSONDecoder().decode(type, from: Data(text.utf8))
    }

    // MARK: - Server secrets

    /// A random key kept in the database (so every replica shares it), created on first use.
    public func key(named name: String, size: Int = 32) async throws -> Data {
        try await pool.write { db in
            if let existing = try Data.fetchOne(db, sql: "SELECT value FROM acme_keys WHERE name = ?", arguments: [name]) {
                return existing
            }
            let value = Data(SecureRandom.bytes(size))
            try db.execute(sql: "INSERT INTO acme_keys (name, value) VALUES (?, ?)", arguments: [name, value])
            return value
        }
    }

    // MARK: - Accounts

    static func account(_ row: Row) -> ACMEAccountRecord {
        ACMEAccountRecord(
            id: row["id"], provisioner: row["provisioner"], thumbprint: row["thumbprint"], jwk: row["jwk"], status: row["status"],
            contact: decode([String].self, row["contact"]) ?? [], createdAt: Date(timeIntervalSince1970: row["created_at"]),
            eabKeyID: row["eab_kid"])
    }

    /// Creates the account, binding `eabKeyID` at the same time. If the key already has an account
    /// (a concurrent newAccount), that one is returned with `created == false`.
    public func createAccount(_ account: ACMEAccountRecord) async throws -> (ACMEAccountRecord, created: Bool) {
        try await pool.write { db in
            if let row = try Row.fetchOne(
                db, sql: "SELECT * FROM acme_accounts WHERE provisioner = ? AND thumbprint = ?", arguments: [account.provisioner, account.thumbprint]) {
                return (Self.account(row), false)
            }
            if let kid = account.eabKeyID {
                try db.execute(
                    sql: "UPDATE acme_eab_keys SET bound_account = ?, bound_at = ? WHERE kid = ? AND provisioner = ? AND bound_account IS NULL",
                    arguments: [account.id, account.createdAt.timeIntervalSince1970, kid, account.provisioner])
                guard db.changesCount == 1 else { throw ACMEStoreError.eabKeyAlreadyUsed }
            }
            try db.execute(
                sql: """
                    INSERT INTO acme_accounts (id, provisioner, thumbprint, jwk, status, contact, created_at, eab_kid)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                    """,
                arguments: [
                    account.id, account.provisioner, account.thumbprint, account.jwk, account.status, Self.encode(account.contact),
                    account.createdAt.timeIntervalSince1970, account.eabKeyID,
                ])
            return (account, true)
        }
    }

    public func account(id: String) async throws -> ACMEAccountRecord? {
        try await pool.read { db in
            try Row.fetchOne(db, sql: "SELECT * FROM acme_accounts WHERE id = ?", arguments: [id]).map(Self.account)
        }
    }

    public func account(provisioner: String, thumbprint: String) async throws -> ACMEAccountRecord? {
        try await pool.read { db in
            try Row.fetchOne(
                db, sql: "SELECT * FROM acme_accounts WHERE provisioner = ? AND thumbprint = ?", arguments: [provisioner, thumbprint]
            ).map(Self.account)
        }
    }

    public func accounts(provisioner: String? = nil) async throws -> [ACMEAccountRecord] {
        try await pool.read { db in
            if let provisioner {
                return try Row.fetchAll(db, sql: "SELECT * FROM acme_accounts WHERE provisioner = ? ORDER BY created_at", arguments: [provisioner]).map(Self.account)
            }
            return try Row.fetchAll(db, sql: "SELECT * FROM acme_accounts ORDER BY created_at").map(Self.account)
        }
    }

    /// Contact and/or status; a deactivated account stays deactivated.
    public func updateAccount(id: String, contact: [String]?, status: String?) async throws -> ACMEAccountRecord {
        try await pool.write { db in
            if let contact {
                try db.execute(sql: "UPDATE acme_accounts SET contact = ? WHERE id = ? AND status = 'valid'", arguments: [Self.encode(contact), id])
            }
            if let status {
                try db.execute(sql: "UPDATE acme_accounts SET status = ? WHERE id = ? AND status = 'valid'", arguments: [status, id])
                if status == "deactivated" {
                    // RFC 8555 §7.3.6: pending authorizations of a deactivated account are deactivated too.
                    try db.execute(
                        sql: "UPDATE acme_authorizations SET status = 'deactivated' WHERE account_id = ? AND status IN ('pending', 'valid')",
                        arguments: [id])
                }
            }
            guard let row = try Row.fetchOne(db, sql: "SELECT * FROM acme_accounts WHERE id = ?", arguments: [id]) else {
                throw ACMEStoreError.notFound
            }
            return Self.account(row)
        }
    }

    /// Key rollover: fails with the other account's id when the new key already belongs to one.
    public func changeAccountKey(id: String, thumbprint: String, jwk: String) async throws {
        try await pool.write { db in
            guard let row = try Row.fetchOne(db, sql: "SELECT provisioner FROM acme_accounts WHERE id = ?", arguments: [id]) else {
                throw ACMEStoreError.notFound
            }
            let provisioner: String = row["provisioner"]
            if let other = try String.fetchOne(
                db, sql: "SELECT id FROM acme_accounts WHERE provisioner = ? AND thumbprint = ?", arguments: [provisioner, thumbprint]) {
                throw ACMEStoreError.accountKeyInUse(existingID: other)
            }
            try db.execute(sql: "UPDATE acme_accounts SET thumbprint = ?, jwk = ? WHERE id = ?", arguments: [thumbprint, jwk, id])
        }
    }

    // MARK: - Orders, authorizations, challenges

    public func createOrder(_ order: ACMEOrderRecord, authorizations: [ACMEAuthorizationRecord]) async throws {
        try await pool.write { db in
            try db.execute(
                sql: """
                    INSERT INTO acme_orders (id, account_id, provisioner, status, identifiers, not_before, not_after, expires, created_at)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
                    """,
                arguments: [
                    order.id, order.accountID, order.provisioner, order.status, Self.encode(order.identifiers),
                    order.notBefore?.timeIntervalSince1970, order.notAfter?.timeIntervalSince1970, order.expires.timeIntervalSince1970,
                    order.createdAt.timeIntervalSince1970,
                ])
            for (position, authorization) in authorizations.enumerated() {
                try db.execute(
                    sql: """
                        INSERT INTO acme_authorizations (id, account_id, order_id, position, identifier_type, identifier_value, wildcard, status, expires)
                        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
                        """,
                    arguments: [
                        authorization.id, authorization.accountID, order.id, position, authorization.identifier.type,
                        authorization.identifier.value, authorization.wildcard, authorization.status,
                        authorization.expires.timeIntervalSince1970,
                    ])
                for (index, challenge) in authorization.challenges.enumerated() {
                    try db.execute(
                        sql: "INSERT INTO acme_challenges (id, authorization_id, position, type, token, status) VALUES (?, ?, ?, ?, ?, ?)",
                        arguments: [challenge.id, authorization.id, index, challenge.type, challenge.token, challenge.status])
                }
            }
        }
    }

    static func order(_ row: Row, authorizationIDs: [String]) -> ACMEOrderRecord {
        ACMEOrderRecord(
            id: row["id"], accountID: row["account_id"], provisioner: row["provisioner"], status: row["status"],
            identifiers: decode([ACMEIdentifier].self, row["identifiers"]) ?? [],
            notBefore: (row["not_before"] as Double?).map(Date.init(timeIntervalSince1970:)),
            notAfter: (row["not_after"] as Double?).map(Date.init(timeIntervalSince1970:)),
            expires: Date(timeIntervalSince1970: row["expires"]), error: row["error"], certificateSerial: row["certificate_serial"],
            createdAt: Date(timeIntervalSince1970: row["created_at"]), authorizationIDs: authorizationIDs)
    }

    static func fetchOrder(_ db: Database, id: String) throws -> ACMEOrderRecord? {
        guard let row = try Row.fetchOne(db, sql: "SELECT * FROM acme_orders WHERE id = ?", arguments: [id]) else { return nil }
        let ids = try String.fetchAll(db, sql: "SELECT id FROM acme_authorizations WHERE order_id = ? ORDER BY position", arguments: [id])
        return order(row, authorizationIDs: ids)
    }

    /// The order with its status brought up to date: pending → ready when every authorization is
    /// valid, → invalid when one failed or the order expired.
    public func order(id: String, now: Date = Date()) async throws -> ACMEOrderRecord? {
        try await pool.write { db in
            guard var order = try Self.fetchOrder(db, id: id) else { return nil }
            if order.status == "pending" || order.status == "ready", order.expires < now {
                try db.execute(sql: "UPDATE acme_orders SET status = 'invalid', error = ? WHERE id = ?", arguments: [
                    #"{"type":"urn:ietf:params:acme:error:malformed","detail":"the order expired"}"#, id,
                ])
                order.status = "invalid"
                return order
            }
            guard order.status == "pending" else { return order }
            let statuses = try String.fetchAll(db, sql: "SELECT status FROM acme_authorizations WHERE order_id = ?", arguments: [id])
            if statuses.contains(where: { $0 != "valid" && $0 != "pending" }) {
                try db.execute(sql: "UPDATE acme_orders SET status = 'invalid' WHERE id = ? AND status = 'pending'", arguments: [id])
                order.status = "invalid"
            } else if !statuses.isEmpty, statuses.allSatisfy({ $0 == "valid" }) {
                try db.execute(sql: "UPDATE acme_orders SET status = 'ready' WHERE id = ? AND status = 'pending'", arguments: [id])
                order.status = "ready"
            }
            return order
        }
    }

    public func orders(accountID: String) async throws -> [String] {
        try await pool.read { db in
            try String.fetchAll(db, sql: "SELECT id FROM acme_orders WHERE account_id = ? ORDER BY created_at", arguments: [accountID])
        }
    }

    /// The order that produced a certificate (for revocation by the account that ordered it).
    public func order(certificateSerial: String) async throws -> ACMEOrderRecord? {
        try await pool.read { db in
            guard let id = try String.fetchOne(db, sql: "SELECT id FROM acme_orders WHERE certificate_serial = ?", arguments: [certificateSerial]) else {
                return nil
            }
            return try Self.fetchOrder(db, id: id)
        }
    }

    /// ready → processing, exactly once however many finalize requests race.
    public func beginFinalize(orderID: String, notBefore: Date?, notAfter: Date?) async throws -> Bool {
        try await pool.write { db in
            try db.execute(sql: "UPDATE acme_orders SET status = 'processing' WHERE id = ? AND status = 'ready'", arguments: [orderID])
            return db.changesCount == 1
        }
    }

    public func completeOrder(orderID: String, serial: String) async throws {
        try await pool.write { db in
            try db.execute(
                sql: "UPDATE acme_orders SET status = 'valid', certificate_serial = ? WHERE id = ? AND status = 'processing'",
                arguments: [serial, orderID])
        }
    }

    /// A finalize that failed for a reason the client can fix (bad CSR) returns the order to ready.
    public func abortFinalize(orderID: String, invalidate error: String?) async throws {
        try await pool.write { db in
            if let error {
                try db.execute(sql: "UPDATE acme_orders SET status = 'invalid', error = ? WHERE id = ? AND status = 'processing'", arguments: [error, orderID])
            } else {
                try db.execute(sql: "UPDATE acme_orders SET status = 'ready' WHERE id = ? AND status = 'processing'", arguments: [orderID])
            }
        }
    }

    static func challenge(_ row: Row) -> ACMEChallengeRecord {
        ACMEChallengeRecord(
            id: row["id"], authorizationID: row["authorization_id"], type: row["type"], token: row["token"], status: row["status"],
            validatedAt: (row["validated_at"] as Double?).map(Date.init(timeIntervalSince1970:)), error: row["error"])
    }

    static func fetchAuthorization(_ db: Database, id: String) throws -> ACMEAuthorizationRecord? {
        guard let row = try Row.fetchOne(db, sql: "SELECT * FROM acme_authorizations WHERE id = ?", arguments: [id]) else { return nil }
        let challenges = try Row.fetchAll(
            db, sql: "SELECT * FROM acme_challenges WHERE authorization_id = ? ORDER BY position", arguments: [id]).map(challenge)
        return ACMEAuthorizationRecord(
            id: row["id"], accountID: row["account_id"], orderID: row["order_id"],
            identifier: ACMEIdentifier(type: row["identifier_type"], value: row["identifier_value"]), wildcard: row["wildcard"],
            status: row["status"], expires: Date(timeIntervalSince1970: row["expires"]), challenges: challenges)
    }

    /// The authorization, marked expired once its time has passed.
    public func authorization(id: String, now: Date = Date()) async throws -> ACMEAuthorizationRecord? {
        try await pool.write { db in
            guard var authorization = try Self.fetchAuthorization(db, id: id) else { return nil }
            if authorization.status == "pending" || authorization.status == "valid", authorization.expires < now {
                try db.execute(sql: "UPDATE acme_authorizations SET status = 'expired' WHERE id = ?", arguments: [id])
                authorization.status = "expired"
            }
            return authorization
        }
    }

    public func challenge(id: String) async throws -> (ACMEChallengeRecord, ACMEAuthorizationRecord)? {
        try await pool.read { db in
            guard let row = try Row.fetchOne(db, sql: "SELECT * FROM acme_challenges WHERE id = ?", arguments: [id]) else { return nil }
            let challenge = Self.challenge(row)
            guard let authorization = try Self.fetchAuthorization(db, id: challenge.authorizationID) else { return nil }
            return (challenge, authorization)
        }
    }

    /// pending → processing (the client said "ready"); false when it was not pending, or its
    /// authorization is no longer pending.
    public func startValidation(challengeID: String) async throws -> Bool {
        try await pool.write { db in
            try db.execute(
                sql: """
                    UPDATE acme_challenges SET status = 'processing'
                    WHERE id = ? AND status = 'pending'
                      AND (SELECT status FROM acme_authorizations WHERE id = authorization_id) = 'pending'
                    """,
                arguments: [challengeID])
            return db.changesCount == 1
        }
    }

    /// Records the outcome of a validation: the challenge, its authorization and (on failure) the order.
    public func finishValidation(challengeID: String, valid: Bool, error: String?, now: Date = Date()) async throws {
        try await pool.write { db in
            guard let authorizationID = try String.fetchOne(
                db, sql: "SELECT authorization_id FROM acme_challenges WHERE id = ?", arguments: [challengeID]) else { return }
            try db.execute(
                sql: "UPDATE acme_challenges SET status = ?, validated_at = ?, error = ? WHERE id = ? AND status = 'processing'",
                arguments: [valid ? "valid" : "invalid", valid ? now.timeIntervalSince1970 : nil, error, challengeID])
            guard db.changesCount == 1 else { return }
            try db.execute(
                sql: "UPDATE acme_authorizations SET status = ? WHERE id = ? AND status = 'pending'",
                arguments: [valid ? "valid" : "invalid", authorizationID])
            if !valid {
                try db.execute(
                    sql: """
                        UPDATE acme_orders SET status = 'invalid', error = ?
                        WHERE id = (SELECT order_id FROM acme_authorizations WHERE id = ?) AND status = 'pending'
                        """,
                    arguments: [error, authorizationID])
            }
        }
    }

    /// Counts one more validation attempt of a challenge still in processing, durably and before
    /// the attempt, unless it already had `maximum`: false then (and for a challenge no longer in
    /// processing). A responder that crashes or hangs the CA therefore cannot make a restart loop.
    public func beginValidationAttempt(challengeID: String, maximum: Int) async throws -> Bool {
        try await pool.write { db in
            try db.execute(
                sql: "UPDATE acme_challenges SET attempts = attempts + 1 WHERE id = ? AND status = 'processing' AND attempts < ?",
                arguments: [challengeID, maximum])
            return db.changesCount == 1
        }
    }

    /// Orders a crash left between `beginFinalize` and its outcome go back to ready (their
    /// certificate, if any was made, was never handed out), so the client can finalize again.
    public func resetInterruptedFinalizations() async throws -> Int {
        try await pool.write { db in
            try db.execute(sql: "UPDATE acme_orders SET status = 'ready' WHERE status = 'processing'")
            return db.changesCount
        }
    }

    static func migrateValidationAttempts(_ migrator: inout DatabaseMigrator) {
        migrator.registerMigration("v6-acme-validation-attempts") { db in
            try db.execute(sql: "ALTER TABLE acme_challenges ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0")
        }
    }

    /// Keeps the last attempt's error on a challenge still being retried.
    public func noteValidationAttempt(challengeID: String, error: String) async throws {
        try await pool.write { db in
            try db.execute(sql: "UPDATE acme_challenges SET error = ? WHERE id = ? AND status = 'processing'", arguments: [error, challengeID])
        }
    }

    /// Challenges left in processing by a restart, to validate again.
    public func challengesInProcessing() async throws -> [String] {
        try await pool.read { db in try String.fetchAll(db, sql: "SELECT id FROM acme_challenges WHERE status = 'processing'") }
    }

    public func deactivateAuthorization(id: String) async throws -> Bool {
        try await pool.write { db in
            try db.execute(
                sql: "UPDATE acme_authorizations SET status = 'deactivated' WHERE id = ? AND status IN ('pending', 'valid')", arguments: [id])
            return db.changesCount == 1
        }
    }

    // MARK: - External account binding

    public func addEABKey(kid: String, provisioner: String, key: Data, now: Date = Date()) async throws {
        try await pool.write { db in
            try db.execute(
                sql: "INSERT INTO acme_eab_keys (kid, provisioner, hmac_key, created_at) VALUES (?, ?, ?, ?)",
                arguments: [kid, provisioner, key, now.timeIntervalSince1970])
        }
    }

    /// The HMAC key of an unused binding key of `provisioner`.
    public func unboundEABKey(kid: String, provisioner: String) async throws -> Data? {
        try await pool.read { db in
            try Data.fetchOne(
                db, sql: "SELECT hmac_key FROM acme_eab_keys WHERE kid = ? AND provisioner = ? AND bound_account IS NULL",
                arguments: [kid, provisioner])
        }
    }

    public struct EABKeyInfo: Sendable {
        public var kid: String
        public var provisioner: String
        public var createdAt: Date
        public var boundAccount: String?
    }

    public func eabKeys(provisioner: String) async throws -> [EABKeyInfo] {
        try await pool.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM acme_eab_keys WHERE provisioner = ? ORDER BY created_at", arguments: [provisioner]).map {
                EABKeyInfo(kid: $0["kid"], provisioner: $0["provisioner"], createdAt: Date(timeIntervalSince1970: $0["created_at"]), boundAccount: $0["bound_account"])
            }
        }
    }

    // MARK: - Clean-up

    /// Orders (with their authorizations and challenges) that expired more than `retention` ago and
    /// never produced a certificate.
    public func purge(expiredBefore date: Date) async throws -> Int {
        try await pool.write { db in
            try db.execute(sql: "DELETE FROM acme_orders WHERE expires < ? AND certificate_serial IS NULL", arguments: [date.timeIntervalSince1970])
            return db.changesCount
        }
    }
}
