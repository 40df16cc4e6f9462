import AutoSSLCore
import Foundation
import Logging
import PostgresNIO

/// `ACMEDatabase` on PostgreSQL, shared by every replica of the CA: the same tables, columns and
/// stored text as `SQLiteACMEDatabase` (a row moves between the two unchanged), and the same
/// contract (`ACMEDatabaseContract`).
///
/// How the contract holds with several writers at READ COMMITTED:
/// - A read is one statement (joins and `ARRAY(...)` subqueries, not one query per table), so it
///   sees one snapshot, as SQLite's read transactions do; reads never write.
/// - A conditional change is one `UPDATE ... WHERE status = <from> RETURNING`: a concurrent writer
///   of the same row waits for the row lock and then re-checks the condition on the committed row,
///   so of N racing transitions exactly one applies.
/// - A change of several rows is one transaction (`withTransaction`); a failure rolls it back whole.
/// - Creating what may already exist is `INSERT ... ON CONFLICT DO NOTHING`, then reading what won.
public final class PostgresACMEDatabase: ACMEDatabase {
    let client: PostgresClient
    let logger: Logger

    /// `client` is the certificate store's (which runs it); the schema is already migrated.
    public init(client: PostgresClient, logger: Logger) {
        self.client = client
        self.logger = logger
    }

    // MARK: - Running statements

    /// Rolls a transaction back on purpose, carrying what to do next outside it.
    private struct Rollback<Reason: Sendable>: Error {
        let reason: Reason
    }

    /// One statement (or a few independent ones) outside a transaction; each commits on its own.
    func run<T: Sendable>(_ body: @escaping @Sendable (PostgresClient) async throws -> T) async throws -> T {
        try await PostgresStoreErrors.call(client, body)
    }

    /// Several statements committed together, or not at all.
    func transaction<T: Sendable>(_ body: @escaping @Sendable (PostgresConnection) async throws -> T) async throws -> T {
        let logger = logger
        return try await PostgresStoreErrors.call(client) { client in
            try await client.withTransaction(logger: logger) { connection in try await body(connection) }
        }
    }

    /// How many rows a statement with `RETURNING` touched.
    static func count(_ rows: PostgresRowSequence) async throws -> Int {
        try await rows.collect().count
    }

    /// The first column of the first row, the rows read to the end (so the connection is free again).
    static func first<T: PostgresDecodable>(_ rows: PostgresRowSequence, as type: T.Type) async throws -> T? {
        try await rows.collect().first?.checkedDecode(T.self)
    }

    static func date(_ seconds: Double) -> Date { Date(timeIntervalSince1970: seconds) }

    // MARK: - Server secrets and nonces

    public func key(named name: String, size: Int) async throws -> Data {
        let logger = logger
        return try await run { client in
            if let existing = try await Self.key(named: name, client: client, logger: logger) { return existing }
            // Two replicas may get here together: one insert wins, and both read the winner's value.
            let value = Data(SecureRandom.bytes(size))
            try await client.query(
                "INSERT INTO acme_keys (name, value) VALUES (\(name), \(value)) ON CONFLICT (name) DO NOTHING", logger: logger)
            guard let stored = try await Self.key(named: name, client: client, logger: logger) else {
                throw StoreError.unavailable("the ACME key \(name) could not be stored")
            }
            return stored
        }
    }

    static func key(named name: String, client: PostgresClient, logger: Logger) async throws -> Data? {
        try await first(client.query("SELECT value FROM acme_keys WHERE name = \(name)", logger: logger), as: Data.self)
    }

    /// Kept with the one-time tokens (`used_tokens`, id "acme-nonce:" + nonce), which the
    /// certificate store purges once expired; a nonce spent on one replica is refused on the others.
    public func consumeNonce(_ nonce: String, expiresAt: Date) async throws -> Bool {
        let logger = logger
        return try await run { client in
            do {
                try await client.query(
                    "INSERT INTO used_tokens (expires_at, id) VALUES (\(expiresAt.timeIntervalSince1970), \("acme-nonce:" + nonce))",
                    logger: logger)
                return true
            } catch where PostgresStoreErrors.isUniqueViolation(error) {
                return false
            }
        }
    }

    // MARK: - Accounts

    static let accountColumns = "id, provisioner, thumbprint, jwk, status, contact, created_at, eab_kid"
    typealias AccountRow = (String, String, String, String, String, String, Double, String?)

    static func account(_ row: AccountRow) -> ACMEAccountRecord {
        let (id, provisioner, thumbprint, jwk, status, contact, createdAt, eabKeyID) = row
        return ACMEAccountRecord(
            id: id, provisioner: provisioner, thumbprint: thumbprint, jwk: jwk, status: ACMEAccountStatus(rawValue: status) ?? .deactivated,
            contact: StoredJSON.strings(contact), createdAt: date(createdAt), eabKeyID: eabKeyID)
    }

    static func accounts(_ rows: PostgresRowSequence) async throws -> [ACMEAccountRecord] {
        var found: [ACMEAccountRecord] = []
        for try await row in rows.checkedDecode(AccountRow.self) { found.append(account(row)) }
        return found
    }

    static func accountQuery(id: String) -> PostgresQuery {
        var query = PostgresQuery(unsafeSQL: "SELECT \(accountColumns) FROM acme_accounts WHERE id = $1")
        query.binds.append(id, context: .default)
        return query
    }

    static func accountQuery(provisioner: String, thumbprint: String) -> PostgresQuery {
        var query = PostgresQuery(unsafeSQL: "SELECT \(accountColumns) FROM acme_accounts WHERE provisioner = $1 AND thumbprint = $2")
        query.binds.append(provisioner, context: .default)
        query.binds.append(thumbprint, context: .default)
        return query
    }

    private enum AccountRace: Sendable {
        /// Another newAccount with the same key committed first.
        case keyTaken
    }

    public func createAccount(_ account: ACMEAccountRecord) async throws -> (ACMEAccountRecord, created: Bool) {
        let logger = logger
        do {
            return try await transaction { connection in
                if let existing = try await Self.accounts(
                    connection.query(Self.accountQuery(provisioner: account.provisioner, thumbprint: account.thumbprint), logger: logger)).first {
                    return (existing, false)
                }
                if let kid = account.eabKeyID {
                    // The key's row lock makes a concurrent binding wait, then find the key bound.
                    let bound = try await Self.count(connection.query(
                        """
                        UPDATE acme_eab_keys SET bound_account = \(account.id), bound_at = \(account.createdAt.timeIntervalSince1970)
                        WHERE kid = \(kid) AND provisioner = \(account.provisioner) AND bound_account IS NULL RETURNING kid
                        """, logger: logger))
                    guard bound == 1 else {
                        // The same account key sent twice with the same binding key: the first one's account.
                        if let existing = try await Self.accounts(connection.query(
                            Self.accountQuery(provisioner: account.provisioner, thumbprint: account.thumbprint), logger: logger)).first {
                            return (existing, false)
                        }
                        throw ACMEDatabaseError.eabKeyAlreadyUsed
                    }
                }
                let inserted = try await Self.count(connection.query(
                    """
                    INSERT INTO acme_accounts (id, provisioner, thumbprint, jwk, status, contact, created_at, eab_kid)
                    VALUES (\(account.id), \(account.provisioner), \(account.thumbprint), \(account.jwk), \(account.status.rawValue),
                        \(StoredJSON.encode(account.contact)), \(account.createdAt.timeIntervalSince1970), \(account.eabKeyID))
                    ON CONFLICT (provisioner, thumbprint) DO NOTHING RETURNING id
                    """, logger: logger))
                // A concurrent newAccount with the same key committed in between: undo the binding, return that one.
                guard inserted == 1 else { throw Rollback(reason: AccountRace.keyTaken) }
                return (account, true)
            }
        } catch is Rollback<AccountRace> {
            let existing = try await run { client in
                try await Self.accounts(
                    client.query(Self.accountQuery(provisioner: account.provisioner, thumbprint: account.thumbprint), logger: logger)).first
            }
            guard let existing else { throw StoreError.unavailable("the ACME account could not be created; try again") }
            return (existing, false)
        }
    }

    public func account(id: String) async throws -> ACMEAccountRecord? {
        let logger = logger
        return try await run { client in try await Self.accounts(client.query(Self.accountQuery(id: id), logger: logger)).first }
    }

    /// Two queries here: the key's hash is worked out from the account the first one reads.
    public func account(id: String, keyHash: (ACMEAccountRecord) throws -> String) async throws -> (account: ACMEAccountRecord, keyRevoked: Bool)? {
        guard let account = try await account(id: id) else { return nil }
        let hash = try keyHash(account)
        let logger = logger
        return (account, try await run { client in try await PostgresCertificateStore.isKeyRevoked(hash, client: client, logger: logger) })
    }

    public func account(provisioner: String, thumbprint: String) async throws -> ACMEAccountRecord? {
        let logger = logger
        return try await run { client in
            try await Self.accounts(client.query(Self.accountQuery(provisioner: provisioner, thumbprint: thumbprint), logger: logger)).first
        }
    }

    public func updateAccountContact(id: String, contact: [String]) async throws -> ACMEAccountRecord? {
        let logger = logger
        return try await transaction { connection in
            try await connection.query(
                "UPDATE acme_accounts SET contact = \(StoredJSON.encode(contact)) WHERE id = \(id) AND status = 'valid'", logger: logger)
            return try await Self.accounts(connection.query(Self.accountQuery(id: id), logger: logger)).first
        }
    }

    public func deactivateAccount(id: String) async throws -> ACMEAccountRecord? {
        let logger = logger
        return try await transaction { connection in
            let changed = try await Self.count(connection.query(
                "UPDATE acme_accounts SET status = 'deactivated' WHERE id = \(id) AND status = 'valid' RETURNING id", logger: logger))
            if changed == 1 {
                try await connection.query(
                    "UPDATE acme_authorizations SET status = 'deactivated' WHERE account_id = \(id) AND status IN ('pending', 'valid')",
                    logger: logger)
            }
            return try await Self.accounts(connection.query(Self.accountQuery(id: id), logger: logger)).first
        }
    }

    public func changeAccountKey(id: String, oldThumbprint: String, thumbprint: String, jwk: String) async throws -> Bool {
        let logger = logger
        do {
            return try await transaction { connection in
                guard let provisioner = try await Self.first(
                    connection.query("SELECT provisioner FROM acme_accounts WHERE id = \(id)", logger: logger), as: String.self)
                else { throw ACMEDatabaseError.notFound }
                if let other = try await Self.accountID(provisioner: provisioner, thumbprint: thumbprint, connection: connection, logger: logger),
                   other != id {
                    throw ACMEDatabaseError.accountKeyInUse(existingID: other)
                }
                // A concurrent rollover (or newAccount) to the same key is caught by UNIQUE (provisioner, thumbprint).
                // Only from the key the request was signed with: a concurrent rollover of this account
                // waits for the row lock, then finds the key changed and changes nothing.
                return try await Self.count(connection.query(
                    """
                    UPDATE acme_accounts SET thumbprint = \(thumbprint), jwk = \(jwk)
                    WHERE id = \(id) AND thumbprint = \(oldThumbprint) AND status = 'valid' RETURNING id
                    """, logger: logger)) == 1
            }
        } catch where PostgresStoreErrors.isUniqueViolation(error) {
            // Another account took the key between the check and the update (and committed first).
            if let existing = try await account(id: id),
               let owner = try await account(provisioner: existing.provisioner, thumbprint: thumbprint), owner.id != id {
                throw ACMEDatabaseError.accountKeyInUse(existingID: owner.id)
            }
            throw error
        }
    }

    static func accountID(provisioner: String, thumbprint: String, connection: PostgresConnection, logger: Logger) async throws -> String? {
        try await first(
            connection.query("SELECT id FROM acme_accounts WHERE provisioner = \(provisioner) AND thumbprint = \(thumbprint)", logger: logger),
            as: String.self)
    }

    // MARK: - Orders

    public func createOrder(_ order: ACMEOrderRecord, authorizations: [ACMEAuthorizationRecord], openOrderLimit: Int) async throws {
        let logger = logger
        try await transaction { connection in
            if openOrderLimit < .max {
                var open = 0
                for try await count in try await connection.query(
                    """
                    SELECT COUNT(*) FROM acme_orders WHERE account_id = \(order.accountID)
                        AND status IN ('pending', 'ready', 'processing') AND expires > \(order.createdAt.timeIntervalSince1970)
                    """, logger: logger
                ).checkedDecode(Int64.self) { open = Int(count) }
                guard open < openOrderLimit else { throw ACMEDatabaseError.tooManyOpenOrders(limit: openOrderLimit) }
            }
            try await connection.query(
                """
                INSERT INTO acme_orders (id, account_id, provisioner, status, identifiers, not_before, not_after, expires, created_at)
                VALUES (\(order.id), \(order.accountID), \(order.provisioner), \(order.status.rawValue),
                    \(StoredJSON.encode(order.identifiers)), \(order.notBefore?.timeIntervalSince1970),
                    \(order.notAfter?.timeIntervalSince1970), \(order.expires.timeIntervalSince1970), \(order.createdAt.timeIntervalSince1970))
                """, logger: logger)
            for (position, authorization) in authorizations.enumerated() {
                try await connection.query(
                    """
                    INSERT INTO acme_authorizations (id, account_id, order_id, position, identifier_type, identifier_value, wildcard, status, expires)
                    VALUES (\(authorization.id), \(authorization.accountID), \(order.id), \(position), \(authorization.identifier.type),
                        \(authorization.identifier.value), \(authorization.wildcard), \(authorization.status.rawValue),
                        \(authorization.expires.timeIntervalSince1970))
                    """, logger: logger)
                for (index, challenge) in authorization.challenges.enumerated() {
                    try await connection.query(
                        """
                        INSERT INTO acme_challenges (id, authorization_id, position, type, token, status)
                        VALUES (\(challenge.id), \(authorization.id), \(index), \(challenge.type), \(challenge.token), \(challenge.status.rawValue))
                        """, logger: logger)
                }
            }
        }
    }

    /// An order with the ids of its authorizations in the order's order, read in one statement.
    static let orderSelect = """
        SELECT o.id, o.account_id, o.provisioner, o.status, o.identifiers, o.not_before, o.not_after, o.expires, o.error,
            o.certificate_serial, o.created_at,
            ARRAY(SELECT a.id FROM acme_authorizations a WHERE a.order_id = o.id ORDER BY a.position)
        FROM acme_orders o
        """
    typealias OrderRow = (String, String, String, String, String, Double?, Double?, Double, String?, String?, Double, [String])

    static func order(_ row: OrderRow) -> ACMEOrderRecord {
        let (id, accountID, provisioner, status, identifiers, notBefore, notAfter, expires, error, serial, createdAt, authorizationIDs) = row
        return ACMEOrderRecord(
            id: id, accountID: accountID, provisioner: provisioner, status: ACMEOrderStatus(rawValue: status) ?? .invalid,
            identifiers: StoredJSON.identifiers(identifiers), notBefore: notBefore.map(date),
            notAfter: notAfter.map(date), expires: date(expires), error: error, certificateSerial: serial, createdAt: date(createdAt),
            authorizationIDs: authorizationIDs)
    }

    func orders(where condition: String, _ value: String) async throws -> [ACMEOrderRecord] {
        var query = PostgresQuery(unsafeSQL: Self.orderSelect + " WHERE " + condition)
        query.binds.append(value, context: .default)
        let logger = logger
        let statement = query
        return try await run { client in
            var found: [ACMEOrderRecord] = []
            for try await row in try await client.query(statement, logger: logger).checkedDecode(OrderRow.self) { found.append(Self.order(row)) }
            return found
        }
    }

    public func order(id: String) async throws -> ACMEOrderRecord? {
        try await orders(where: "o.id = $1", id).first
    }

    public func orderIDs(accountID: String) async throws -> [String] {
        let logger = logger
        return try await run { client in
            var ids: [String] = []
            for try await id in try await client.query(
                "SELECT id FROM acme_orders WHERE account_id = \(accountID) ORDER BY created_at, id", logger: logger
            ).checkedDecode(String.self) {
                ids.append(id)
            }
            return ids
        }
    }

    public func order(certificateSerial: String) async throws -> ACMEOrderRecord? {
        try await orders(where: "o.certificate_serial = $1 LIMIT 1", certificateSerial).first
    }

    public func setOrderStatus(id: String, from: ACMEOrderStatus, to: ACMEOrderStatus, error: String?) async throws -> Bool {
        let logger = logger
        return try await run { client in
            try await Self.count(client.query(
                """
                UPDATE acme_orders SET status = \(to.rawValue), error = COALESCE(\(error), error)
                WHERE id = \(id) AND status = \(from.rawValue) RETURNING id
                """, logger: logger)) == 1
        }
    }

    public func resetInterruptedFinalizations() async throws -> Int {
        let logger = logger
        return try await run { client in
            try await Self.count(client.query("UPDATE acme_orders SET status = 'ready' WHERE status = 'processing' RETURNING id", logger: logger))
        }
    }

    // MARK: - Authorizations and challenges

    /// Authorizations with their challenges (a row per challenge, none for an authorization without
    /// any), read in one statement.
    static let authorizationSelect = """
        SELECT a.id, a.account_id, a.order_id, a.identifier_type, a.identifier_value, a.wildcard, a.status, a.expires,
            c.id, c.type, c.token, c.status, c.validated_at, c.error
        FROM acme_authorizations a LEFT JOIN acme_challenges c ON c.authorization_id = a.id
        """
    typealias AuthorizationRow = (
        String, String, String, String, String, Bool, String, Double, String?, String?, String?, String?, Double?, String?
    )

    /// Groups the joined rows (ordered by authorization, then challenge) back into records.
    static func authorizations(_ rows: PostgresRowSequence) async throws -> [ACMEAuthorizationRecord] {
        var found: [ACMEAuthorizationRecord] = []
        for try await row in rows.checkedDecode(AuthorizationRow.self) {
            let (id, accountID, orderID, identifierType, identifierValue, wildcard, status, expires,
                 challengeID, type, token, challengeStatus, validatedAt, error) = row
            if found.last?.id != id {
                found.append(ACMEAuthorizationRecord(
                    id: id, accountID: accountID, orderID: orderID, identifier: ACMEIdentifier(type: identifierType, value: identifierValue),
                    wildcard: wildcard, status: ACMEAuthorizationStatus(rawValue: status) ?? .invalid, expires: date(expires),
                    challenges: []))
            }
            if let challengeID, let type, let token, let challengeStatus, !found.isEmpty {
                found[found.count - 1].challenges.append(ACMEChallengeRecord(
                    id: challengeID, authorizationID: id, type: type, token: token,
                    status: ACMEChallengeStatus(rawValue: challengeStatus) ?? .invalid, validatedAt: validatedAt.map(date), error: error))
            }
        }
        return found
    }

    func authorizations(where condition: String, orderBy order: String, _ value: String) async throws -> [ACMEAuthorizationRecord] {
        var query = PostgresQuery(unsafeSQL: Self.authorizationSelect + " WHERE " + condition + " ORDER BY " + order)
        query.binds.append(value, context: .default)
        let logger = logger
        let statement = query
        return try await run { client in try await Self.authorizations(client.query(statement, logger: logger)) }
    }

    public func authorization(id: String) async throws -> ACMEAuthorizationRecord? {
        try await authorizations(where: "a.id = $1", orderBy: "c.position", id).first
    }

    public func authorizations(orderID: String) async throws -> [ACMEAuthorizationRecord] {
        try await authorizations(where: "a.order_id = $1", orderBy: "a.position, a.id, c.position", orderID)
    }

    public func setAuthorizationStatus(id: String, from: Set<ACMEAuthorizationStatus>, to: ACMEAuthorizationStatus) async throws -> Bool {
        guard !from.isEmpty else { return false }
        let sources = from.map(\.rawValue).sorted()
        let logger = logger
        return try await run { client in
            try await Self.count(client.query(
                "UPDATE acme_authorizations SET status = \(to.rawValue) WHERE id = \(id) AND status = ANY(\(sources)) RETURNING id",
                logger: logger)) == 1
        }
    }

    public func deactivateAuthorization(id: String, orderError: String?) async throws -> Bool {
        let logger = logger
        return try await transaction { connection in
            // The order's row first, as every transaction that locks an order and its children does.
            _ = try await Self.count(connection.query(
                "SELECT 1 FROM acme_orders WHERE id = (SELECT order_id FROM acme_authorizations WHERE id = \(id)) FOR UPDATE", logger: logger))
            let changed = try await Self.count(connection.query(
                """
                UPDATE acme_authorizations SET status = 'deactivated' WHERE id = \(id) AND status IN ('pending', 'valid') RETURNING id
                """, logger: logger))
            guard changed == 1 else { return false }
            try await connection.query(
                """
                UPDATE acme_orders SET status = 'invalid', error = COALESCE(\(orderError), error)
                WHERE id = (SELECT order_id FROM acme_authorizations WHERE id = \(id)) AND status IN ('pending', 'ready')
                """, logger: logger)
            return true
        }
    }

    public func challenge(id: String) async throws -> (ACMEChallengeRecord, ACMEAuthorizationRecord)? {
        // The challenge's authorization with all its challenges, in one statement.
        guard let authorization = try await authorizations(
            where: "a.id = (SELECT authorization_id FROM acme_challenges WHERE id = $1)", orderBy: "c.position", id
        ).first, let challenge = authorization.challenges.first(where: { $0.id == id }) else {
            return nil
        }
        return (challenge, authorization)
    }

    public func startValidation(challengeID: String) async throws -> Bool {
        let logger = logger
        return try await run { client in
            try await Self.count(client.query(
                """
                UPDATE acme_challenges c SET status = 'processing', attempts = c.attempts + 1
                WHERE c.id = \(challengeID) AND c.status = 'pending'
                  AND (SELECT a.status FROM acme_authorizations a WHERE a.id = c.authorization_id) = 'pending'
                RETURNING c.id
                """, logger: logger)) == 1
        }
    }

    public func beginValidationAttempt(challengeID: String, maximum: Int) async throws -> Bool {
        let logger = logger
        return try await run { client in
            try await Self.count(client.query(
                """
                UPDATE acme_challenges SET attempts = attempts + 1
                WHERE id = \(challengeID) AND status = 'processing' AND attempts < \(maximum) RETURNING id
                """, logger: logger)) == 1
        }
    }

    public func noteValidationAttempt(challengeID: String, error: String) async throws {
        let logger = logger
        try await run { client in
            _ = try await client.query(
                "UPDATE acme_challenges SET error = \(error) WHERE id = \(challengeID) AND status = 'processing'", logger: logger)
        }
    }

    public func recordValidationOutcome(_ outcome: ACMEValidationOutcome) async throws -> Bool {
        let logger = logger
        return try await transaction { connection in
            // The order's row first: two validations of one order (on any replicas) then write one
            // after the other, and the second sees the first's authorization when it decides `ready`.
            // Every transaction that locks an order and its children locks the order first.
            _ = try await Self.count(connection.query(
                """
                SELECT 1 FROM acme_orders WHERE id = (SELECT order_id FROM acme_authorizations WHERE id = \(outcome.authorizationID)) FOR UPDATE
                """, logger: logger))
            let changed = try await Self.count(connection.query(
                """
                UPDATE acme_challenges SET status = \(outcome.challengeStatus.rawValue), validated_at = \(outcome.validatedAt?.timeIntervalSince1970),
                    error = \(outcome.error)
                WHERE id = \(outcome.challengeID) AND authorization_id = \(outcome.authorizationID) AND status = 'processing'
                RETURNING id
                """, logger: logger))
            guard changed == 1 else { return false }
            let authorizationChanged = try await Self.count(connection.query(
                """
                UPDATE acme_authorizations SET status = \(outcome.authorizationStatus.rawValue)
                WHERE id = \(outcome.authorizationID) AND status = 'pending' RETURNING id
                """, logger: logger)) == 1
            // Another challenge of the authorization may have decided it first (valid, say): a
            // failure that changed no authorization does not invalidate the order.
            if let orderStatus = outcome.orderStatus, orderStatus != .invalid || authorizationChanged {
                let orderError = orderStatus == .invalid ? outcome.error : nil
                try await connection.query(
                    """
                    UPDATE acme_orders SET status = \(orderStatus.rawValue), error = COALESCE(\(orderError), error)
                    WHERE id = (SELECT order_id FROM acme_authorizations WHERE id = \(outcome.authorizationID)) AND status = 'pending'
                    AND (\(orderStatus.rawValue) <> 'ready' OR NOT EXISTS (
                        SELECT 1 FROM acme_authorizations AS other WHERE other.order_id = acme_orders.id AND other.status <> 'valid'))
                    """, logger: logger)
            }
            return true
        }
    }

    public func ordersInProcessing() async throws -> [String] {
        let logger = logger
        return try await run { client in
            var ids: [String] = []
            for try await id in try await client.query(
                "SELECT id FROM acme_orders WHERE status = 'processing' ORDER BY id LIMIT 10000", logger: logger
            ).checkedDecode(String.self) {
                ids.append(id)
            }
            return ids
        }
    }

    public var sharedByReplicas: Bool { true }

    public func challengesInProcessing() async throws -> [String] {
        let logger = logger
        return try await run { client in
            var ids: [String] = []
            for try await id in try await client.query(
                "SELECT id FROM acme_challenges WHERE status = 'processing' ORDER BY id", logger: logger
            ).checkedDecode(String.self) {
                ids.append(id)
            }
            return ids
        }
    }

    // MARK: - External account binding

    public func addEABKey(kid: String, provisioner: String, key: Data, now: Date) async throws {
        let logger = logger
        try await run { client in
            _ = try await client.query(
                "INSERT INTO acme_eab_keys (kid, provisioner, hmac_key, created_at) VALUES (\(kid), \(provisioner), \(key), \(now.timeIntervalSince1970))",
                logger: logger)
        }
    }

    public func unboundEABKey(kid: String, provisioner: String) async throws -> Data? {
        let logger = logger
        return try await run { client in
            try await Self.first(
                client.query(
                    "SELECT hmac_key FROM acme_eab_keys WHERE kid = \(kid) AND provisioner = \(provisioner) AND bound_account IS NULL",
                    logger: logger),
                as: Data.self)
        }
    }

    public func eabKeys(provisioner: String) async throws -> [ACMEEABKeyInfo] {
        let logger = logger
        return try await run { client in
            var keys: [ACMEEABKeyInfo] = []
            for try await (kid, owner, createdAt, boundAccount) in try await client.query(
                "SELECT kid, provisioner, created_at, bound_account FROM acme_eab_keys WHERE provisioner = \(provisioner) ORDER BY created_at, kid",
                logger: logger
            ).checkedDecode((String, String, Double, String?).self) {
                keys.append(ACMEEABKeyInfo(kid: kid, provisioner: owner, createdAt: Self.date(createdAt), boundAccount: boundAccount))
            }
            return keys
        }
    }

    public func removeEABKey(kid: String) async throws -> ACMEEABKeyRemoval {
        let logger = logger
        return try await transaction { connection in
            // Locked: an account cannot bind the key between this read and the delete.
            var found: (String, String?)?
            for try await row in try await connection.query(
                "SELECT provisioner, bound_account FROM acme_eab_keys WHERE kid = \(kid) FOR UPDATE", logger: logger
            ).checkedDecode((String, String?).self) {
                found = row
            }
            guard let found else { return .notFound }
            let (provisioner, boundAccount) = found
            if let boundAccount { return .bound(provisioner: provisioner, account: boundAccount) }
            let deleted = try await Self.count(connection.query(
                "DELETE FROM acme_eab_keys WHERE kid = \(kid) AND bound_account IS NULL RETURNING kid", logger: logger))
            return deleted == 1 ? .removed(provisioner: provisioner) : .notFound
        }
    }

    // MARK: - Clean-up

    public func purge(expiredBefore date: Date) async throws -> Int {
        let logger = logger
        return try await run { client in
            // Authorizations and challenges go with their order (ON DELETE CASCADE).
            try await Self.count(client.query(
                "DELETE FROM acme_orders WHERE expires < \(date.timeIntervalSince1970) AND certificate_serial IS NULL RETURNING id",
                logger: logger))
        }
    }
}
