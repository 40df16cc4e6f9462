import AutoSSLCore
import Foundation
import GRDB
import Testing
import TestSupport

@testable import AutoSSLStore

/// A CA's database filled through the store's own operations: certificates (issued, renewed,
/// revoked, one completing an ACME order), used tokens (several sharing an expiry), CRL numbers,
/// the ACME nonce key and spent nonces, EAB keys (one bound), accounts, orders, authorizations
/// (wildcard and not) and challenges (validated, with errors and attempts).
enum TransferFixture {
    static let epoch = Date(timeIntervalSince1970: 1_900_000_000.123_456_7)

    static func populate(_ database: CADatabase) async throws {
        let store = database.certificates
        let acme = database.acme
        let der = try CertificateDatabaseContract.certificateDER()
        for (index, serial) in ["0a01", "0A02", "b003", "Z004", "é005"].enumerated() {
            var record = try CertificateDatabaseContract.record(
                serial, notAfter: epoch.addingTimeInterval(Double(index) * 3_600.25), der: index == 0 ? der : nil,
                created: epoch.addingTimeInterval(-Double(index) / 3))
            record.names = ["host\(index).internal", "10.0.0.\(index)", "ünï.internal"]
            record.requester = index % 2 == 0 ? nil : "127.0.0.\(index)"
            record.renewedFrom = index == 2 ? "0a01" : nil
            // Several tokens with one expiry: the used_tokens key is (expires_at, id).
            try await store.recordIssuance(record, token: TokenUse(id: "admin:t\(index)", expiresAt: epoch.addingTimeInterval(60)))
        }
        for index in 0..<7 { try await store.consume(TokenUse(id: "admin:u\(index)", expiresAt: epoch.addingTimeInterval(Double(index % 3)))) }
        #expect(try await store.revoke(serial: "0a01", RevocationRecord(reasonCode: 1, reason: "key compromise", revokedAt: epoch, revokedBy: "admin")).serials == ["0a01"])
        #expect(try await store.revoke(serial: "Z004", RevocationRecord(reasonCode: 4, reason: "superseded", revokedAt: epoch.addingTimeInterval(0.5), revokedBy: "holder")).serials == ["Z004"])
        for _ in 0..<3 { _ = try await store.nextCRLNumber() }

        _ = try await acme.key(named: "nonce", size: 32)
        #expect(try await acme.consumeNonce("n1", expiresAt: epoch.addingTimeInterval(30)))
        try await acme.addEABKey(kid: "kid-1", provisioner: "acme", key: Data([0, 1, 2, 255]), now: epoch)
        try await acme.addEABKey(kid: "kid-2", provisioner: "acme", key: Data(repeating: 7, count: 32), now: epoch.addingTimeInterval(1))
        let account = ACMEAccountRecord(
            id: "acct-1", provisioner: "acme", thumbprint: "thumb-1", jwk: #"{"crv":"P-256","kty":"EC","x":"a","y":"b"}"#, status: .valid,
            contact: ["mailto:ops@example.com"], createdAt: epoch, eabKeyID: "kid-1")
        _ = try await acme.createAccount(account)
        _ = try await acme.createAccount(ACMEAccountRecord(
            id: "acct-2", provisioner: "acme", thumbprint: "thumb-2", jwk: "{}", status: .valid, contact: [], createdAt: epoch,
            eabKeyID: nil))
        for (number, wildcard) in [(1, false), (2, true)] {
            let orderID = "order-\(number)"
            let authorizationID = "authz-\(number)"
            let challenges = ["http-01", "dns-01"].enumerated().map { position, type in
                ACMEChallengeRecord(id: "chall-\(number)-\(position)", authorizationID: authorizationID, type: type, token: "tok\(number)\(position)", status: .pending)
            }
            let authorization = ACMEAuthorizationRecord(
                id: authorizationID, accountID: "acct-1", orderID: orderID, identifier: ACMEIdentifier(type: "dns", value: "www\(number).example"),
                wildcard: wildcard, status: .pending, expires: epoch.addingTimeInterval(86_400), challenges: challenges)
            let order = ACMEOrderRecord(
                id: orderID, accountID: "acct-1", provisioner: "acme", status: .pending,
                identifiers: [ACMEIdentifier(type: "dns", value: "www\(number).example")], notBefore: number == 1 ? nil : epoch,
                notAfter: number == 1 ? nil : epoch.addingTimeInterval(7 * 86_400), expires: epoch.addingTimeInterval(86_400),
                createdAt: epoch, authorizationIDs: [authorizationID])
            try await acme.createOrder(order, authorizations: [authorization])
        }
        #expect(try await acme.startValidation(challengeID: "chall-1-0"))
        #expect(try await acme.beginValidationAttempt(challengeID: "chall-1-0", maximum: 5))
        try await acme.noteValidationAttempt(challengeID: "chall-1-0", error: #"{"type":"urn:ietf:params:acme:error:connection"}"#)
        #expect(try await acme.recordValidationOutcome(ACMEValidationOutcome(
            challengeID: "chall-1-0", challengeStatus: .valid, validatedAt: epoch.addingTimeInterval(2.75), error: nil,
            authorizationID: "authz-1", authorizationStatus: .valid, orderStatus: .ready)))
        var issued = try CertificateDatabaseContract.record("acme01")
        issued.provisioner = "acme/acme"
        try await store.recordIssuance(issued, token: nil, completingOrder: "order-1")
    }

    /// Everything the CA reads back through the store, for comparing two databases.
    static func readBack(_ database: CADatabase) async throws -> String {
        var lines: [String] = []
        for record in try await database.certificates.certificates(CertificateQuery(includeExpired: true), now: epoch)
            .sorted(by: { $0.serial < $1.serial })
        {
            lines.append("\(record)")
        }
        lines.append("\(try await database.certificates.revokedCertificates(notExpiredBefore: Date(timeIntervalSince1970: 0)))")
        let acme = database.acme
        lines.append("\(String(describing: try await acme.account(id: "acct-1")))")
        lines.append("\(String(describing: try await acme.account(provisioner: "acme", thumbprint: "thumb-2")))")
        for order in ["order-1", "order-2"] {
            lines.append("\(String(describing: try await acme.order(id: order)))")
            lines.append("\(try await acme.authorizations(orderID: order))")
        }
        lines.append("\(try await acme.eabKeys(provisioner: "acme"))")
        lines.append("\(try await acme.unboundEABKey(kid: "kid-2", provisioner: "acme") ?? Data())")
        lines.append("\(try await acme.key(named: "nonce", size: 32).base64EncodedString())")
        return lines.joined(separator: "\n")
    }
}

@Suite struct DatabaseTransferTests {
    static func sqlite(_ directory: TemporaryDirectory, _ name: String) throws -> CADatabase {
        try CADatabase.openSQLite(path: directory.file(name))
    }

    static func postgres() async throws -> CADatabase {
        let server = try TemporaryPostgres.shared.get()
        let location = try PostgresLocation(url: server.url(database: try server.makeDatabase("transfer")))
        return try await CADatabase.openPostgres(location, password: server.password)
    }

    /// Every table, as the verification hashes it, is the same after SQLite → PostgreSQL → SQLite,
    /// and the CA reads back the same records; the migrated databases go on working (the next CRL
    /// number follows on, spent tokens and nonces stay spent, a revoked key stays revoked).
    @Test(.enabled(if: TemporaryPostgres.isAvailable, "PostgreSQL is not installed"))
    func aRoundTripThroughPostgreSQLKeepsEveryRow() async throws {
        let directory = TemporaryDirectory()
        let original = try Self.sqlite(directory, "original.sqlite")
        try await TransferFixture.populate(original)
        let digests = try await DatabaseTransfer.digests(of: original)
        let expectedRows = [
            "certificates": 6, "revocations": 2, "revoked_keys": 1, "used_tokens": 13, "crl_state": 1, "acme_keys": 1,
            "acme_accounts": 2, "acme_eab_keys": 2, "acme_orders": 2, "acme_authorizations": 2, "acme_challenges": 4,
        ]
        #expect(Dictionary(uniqueKeysWithValues: digests.map { ($0.table, $0.rows) }) == expectedRows)
        let readBack = try await TransferFixture.readBack(original)

        let postgres = try await Self.postgres()
        // Batches of two: every table spans several reads, the composite key of used_tokens too.
        let toPostgres = try await DatabaseTransfer.copy(from: original, to: postgres, batchSize: 2, logger: .init(label: "test"), beforeVerifying: nil)
        #expect(toPostgres == digests)
        #expect(try await DatabaseTransfer.digests(of: postgres) == digests)
        #expect(try await TransferFixture.readBack(postgres) == readBack)

        let back = try Self.sqlite(directory, "back.sqlite")
        let toSQLite = try await DatabaseTransfer.copy(from: postgres, to: back, batchSize: 3, logger: .init(label: "test"), beforeVerifying: nil)
        #expect(toSQLite == digests)
        #expect(try await TransferFixture.readBack(back) == readBack)

        for database in [postgres, back] {
            #expect(try await database.certificates.nextCRLNumber() == 4)
            await #expect(throws: StoreError.tokenAlreadyUsed) {
                try await database.certificates.consume(TokenUse(id: "admin:u1", expiresAt: TransferFixture.epoch.addingTimeInterval(1)))
            }
            #expect(try await database.acme.consumeNonce("n1", expiresAt: TransferFixture.epoch.addingTimeInterval(30)) == false)
            let der = try #require(try await database.certificates.certificate(serial: "0a01")?.der)
            let hash = try #require(Fingerprint.publicKeyHash(certificateDER: der))
            #expect(try await database.certificates.isKeyRevoked(publicKeyHash: hash))
            await #expect(throws: ACMEDatabaseError.eabKeyAlreadyUsed) {
                _ = try await database.acme.createAccount(ACMEAccountRecord(
                    id: "acct-3", provisioner: "acme", thumbprint: "thumb-3", jwk: "{}", status: .valid, contact: [],
                    createdAt: Date(), eabKeyID: "kid-1"))
            }
        }
        for database in [original, postgres, back] { try await database.close() }
    }

    /// A PostgreSQL database holding records already is refused, and keeps exactly what it had.
    @Test(.enabled(if: TemporaryPostgres.isAvailable, "PostgreSQL is not installed"))
    func aTargetWithRecordsIsRefusedAndLeftAsItWas() async throws {
        let directory = TemporaryDirectory()
        let source = try Self.sqlite(directory, "source.sqlite")
        try await TransferFixture.populate(source)
        let target = try await Self.postgres()
        #expect(try await DatabaseTransfer.occupiedRows(in: target).isEmpty, "a new database (with its CRL seed row) is empty")
        try await target.certificates.recordIssuance(try CertificateDatabaseContract.record("ffee"), token: nil)
        let before = try await DatabaseTransfer.digests(of: target)
        await #expect(throws: DatabaseTransferError.targetNotEmpty(table: "certificates", rows: 1, target: target.location)) {
            _ = try await DatabaseTransfer.copy(from: source, to: target)
        }
        #expect(try await DatabaseTransfer.digests(of: target) == before)
        #expect(try await DatabaseTransfer.occupiedRows(in: target) == ["certificates": 1])
        // A CRL number already taken counts too: the seed row alone is empty, a used one is not.
        let other = try await Self.postgres()
        _ = try await other.certificates.nextCRLNumber()
        #expect(try await DatabaseTransfer.occupiedRows(in: other) == ["crl_state": 1])
        for database in [source, target, other] { try await database.close() }
    }

    /// A row that differs after the copy (changed here between the copy and the verification) fails
    /// the transfer naming the table, and the PostgreSQL transaction leaves the target empty.
    @Test(.enabled(if: TemporaryPostgres.isAvailable, "PostgreSQL is not installed"))
    func aCopyThatDiffersIsRefusedAndRolledBack() async throws {
        let directory = TemporaryDirectory()
        let source = try Self.sqlite(directory, "source.sqlite")
        try await TransferFixture.populate(source)
        let target = try await Self.postgres()
        do {
            _ = try await DatabaseTransfer.copy(from: source, to: target, batchSize: 500, logger: .init(label: "test")) { writer in
                try await writer.executeForTesting("UPDATE acme_authorizations SET wildcard = NOT wildcard WHERE id = 'authz-2'")
            }
            Issue.record("a damaged copy was accepted")
        } catch let DatabaseTransferError.mismatch(table, source, copy) {
            #expect(table == "acme_authorizations")
            #expect(source.rows == copy.rows && source.sha256 != copy.sha256)
        }
        #expect(try await DatabaseTransfer.occupiedRows(in: target).isEmpty, "the transaction was rolled back")
        // A missing row: the count differs.
        do {
            _ = try await DatabaseTransfer.copy(from: source, to: target, batchSize: 500, logger: .init(label: "test")) { writer in
                try await writer.executeForTesting("DELETE FROM used_tokens WHERE id = 'admin:u3'")
            }
            Issue.record("a copy with a row missing was accepted")
        } catch let DatabaseTransferError.mismatch(table, source, copy) {
            #expect(table == "used_tokens" && source.rows == copy.rows + 1)
        }
        #expect(try await DatabaseTransfer.occupiedRows(in: target).isEmpty)
        // And then the same copy, undamaged, goes through.
        let expected = try await DatabaseTransfer.digests(of: source)
        #expect(try await DatabaseTransfer.copy(from: source, to: target) == expected)
        try await source.close()
        try await target.close()
    }

    /// The same checks between two SQLite files (no PostgreSQL needed): a changed double is found.
    @Test func aChangedValueIsFoundBetweenSQLiteFiles() async throws {
        let directory = TemporaryDirectory()
        let source = try Self.sqlite(directory, "source.sqlite")
        try await TransferFixture.populate(source)
        let target = try Self.sqlite(directory, "target.sqlite")
        do {
            _ = try await DatabaseTransfer.copy(from: source, to: target, batchSize: 4, logger: .init(label: "test")) { writer in
                try await writer.executeForTesting("UPDATE certificates SET not_after = not_after + 0.000001 WHERE serial = 'b003'")
            }
            Issue.record("a changed time was accepted")
        } catch let DatabaseTransferError.mismatch(table, source, copy) {
            #expect(table == "certificates" && source.rows == copy.rows && source.sha256 != copy.sha256)
        }
        try await source.close()
        try await target.close()
    }

    /// A write to the source while it is being copied (another command of the CA) fails the copy.
    @Test func aSourceWrittenDuringTheCopyIsRefused() async throws {
        let directory = TemporaryDirectory()
        let source = try Self.sqlite(directory, "source.sqlite")
        try await TransferFixture.populate(source)
        let target = try Self.sqlite(directory, "target.sqlite")
        let certificates = source.certificates
        await #expect(throws: DatabaseTransferError.sourceChanged(table: "used_tokens")) {
            _ = try await DatabaseTransfer.copy(from: source, to: target, batchSize: 500, logger: .init(label: "test")) { _ in
                try await certificates.consume(TokenUse(id: "late", expiresAt: Date()))
            }
        }
        try await source.close()
        try await target.close()
    }

    /// Values a hand-edited or damaged SQLite file may hold and PostgreSQL could not (or would
    /// silently change) are refused, naming the table and column.
    @Test func valuesThatDoNotFitTheirColumnAreRefused() async throws {
        let cases: [(sql: String, table: String, column: String)] = [
            ("UPDATE certificates SET common_name = X'FF00' WHERE serial = '0a01'", "certificates", "common_name"),
            ("UPDATE certificates SET common_name = CAST(X'C328' AS TEXT) WHERE serial = '0a01'", "certificates", "common_name"),
            ("UPDATE acme_authorizations SET wildcard = 2 WHERE id = 'authz-1'", "acme_authorizations", "wildcard"),
            ("UPDATE revocations SET reason_code = 4294967296 WHERE serial = '0a01'", "revocations", "reason_code"),
            ("UPDATE acme_challenges SET attempts = 1.5 WHERE id = 'chall-1-0'", "acme_challenges", "attempts"),
            ("UPDATE acme_keys SET value = 'text' WHERE name = 'nonce'", "acme_keys", "value"),
            ("UPDATE certificates SET not_after = 'soon' WHERE serial = '0a01'", "certificates", "not_after"),
        ]
        for (sql, table, column) in cases {
            let directory = TemporaryDirectory()
            let source = try Self.sqlite(directory, "source.sqlite")
            try await TransferFixture.populate(source)
            try await (source.certificates as? SQLiteCertificateStore)?.pool.write { db in
                try db.execute(sql: sql)
            }
            let target = try Self.sqlite(directory, "target.sqlite")
            do {
                _ = try await DatabaseTransfer.copy(from: source, to: target)
                Issue.record("\(sql): accepted")
            } catch let DatabaseTransferError.unexpectedValue(refusedTable, refusedColumn, _) {
                #expect(refusedTable == table && refusedColumn == column, "\(sql)")
            }
            try await source.close()
            try await target.close()
        }
    }

    /// The canonical encoding keeps apart what must differ and equates what both engines cannot
    /// tell apart (a boolean and its integer, -0 and +0).
    @Test func theCanonicalEncodingIsUnambiguous() throws {
        let table = TransferTable("t", key: ["a"], [("a", .text, true), ("b", .text, true)])
        func digest(_ rows: [[TransferValue]]) -> TableDigest { TableDigester.digest(table, rows: rows) }
        let distinct: [[[TransferValue]]] = [
            [[.text("ab"), .text("c")]],
            [[.text("a"), .text("bc")]],
            [[.text("a"), .null]],
            [[.text("a"), .text("")]],
            [[.text("a"), .blob([])]],
            [[.text("a"), .blob(Array("bc".utf8))]],
            [[.integer(1), .null]],
            [[.double(1), .null]],
            [[.text("a"), .text("bc")], [.text("d"), .null]],
            [[.text("d"), .null], [.text("a"), .text("bc")]],
            [],
        ]
        let digests = distinct.map(digest)
        #expect(Set(digests.map(\.sha256)).count == distinct.count)
        #expect(digest([[.double(-0.0), .null]]) == digest([[.double(0.0), .null]]))
        #expect(digest([[.double(1.000_000_000_000_000_2), .null]]) != digest([[.double(1), .null]]))
        #expect(digests.last?.rows == 0 && digests[8].rows == 2)
        // Another table with the same rows hashes differently (the name and columns are hashed).
        let other = TransferTable("u", key: ["a"], [("a", .text, true), ("b", .text, true)])
        #expect(TableDigester.digest(other, rows: distinct[0]) != digests[0])
        // A value that does not fit its column is refused before it is written anywhere.
        let typed = TransferTable("v", key: ["a"], [("a", .int32, false), ("b", .boolean, false)])
        #expect(throws: DatabaseTransferError.self) { try typed.check([.integer(Int64(Int32.max) + 1), .integer(0)]) }
        #expect(throws: DatabaseTransferError.self) { try typed.check([.integer(1), .integer(2)]) }
        #expect(throws: DatabaseTransferError.self) { try typed.check([.null, .integer(1)]) }
        try typed.check([.integer(-5), .integer(1)])
    }

    /// The tables copied are the CA's own, listed one by one, in an order their foreign keys allow.
    @Test func theCopiedTablesAreListed() {
        #expect(DatabaseTransfer.tableNames == [
            "certificates", "revocations", "revoked_keys", "used_tokens", "crl_state", "acme_keys", "acme_accounts", "acme_eab_keys",
            "acme_orders", "acme_authorizations", "acme_challenges",
        ])
    }
}
