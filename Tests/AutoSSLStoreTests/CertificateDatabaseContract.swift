import AutoSSLCore
import AutoSSLStore
import Crypto
import Foundation
import SwiftASN1
import Testing
import TestSupport
import X509

/// Opens the same certificate database again and again (each call a new connection to what
/// earlier calls wrote), so the contract can check what survives a close.
protocol CertificateDatabaseFactory: Sendable {
    func openCertificates() async throws -> any CertificateDatabase
}

/// The same for the whole CA database (certificates with the ACME state), for the checks that
/// span both.
protocol CADatabaseFactory: CertificateDatabaseFactory {
    func open() async throws -> CADatabase
}

/// What every `CertificateDatabase` must do, whichever database implements it. Each implementation
/// runs every check (see `SQLiteCertificateDatabaseContractTests`); a second one (PostgreSQL) adds
/// a suite of its own that calls the same functions with its factory.
enum CertificateDatabaseContract {
    static func record(
        _ serial: String, notAfter: Date = Date().addingTimeInterval(86_400), der: [UInt8]? = nil, created: Date = Date()
    ) throws -> CertificateRecord {
        CertificateRecord(
            serial: serial, status: .issued, commonName: "a.internal", names: ["a.internal", "10.0.0.1"],
            notBefore: Date(timeIntervalSince1970: 1_800_000_000), notAfter: notAfter, keyType: "P-256", provisioner: "admin",
            requester: "127.0.0.1", renewedFrom: nil, der: try der ?? certificateDER(), createdAt: created)
    }

    /// A real certificate (its key identifies it for `isKeyRevoked`).
    static func certificateDER(key: P256.Signing.PrivateKey = P256.Signing.PrivateKey()) throws -> [UInt8] {
        let name = try DistinguishedName { CommonName("contract.internal") }
        let certificate = try Certificate(
            version: .v3, serialNumber: Certificate.SerialNumber(), publicKey: .init(key.publicKey),
            notValidBefore: Date(timeIntervalSince1970: 1_800_000_000), notValidAfter: Date(timeIntervalSince1970: 1_900_000_000),
            issuer: name, subject: name, signatureAlgorithm: .ecdsaWithSHA256, extensions: Certificate.Extensions(),
            issuerPrivateKey: .init(key))
        var serializer = DER.Serializer()
        try serializer.serialize(certificate)
        return serializer.serializedBytes
    }

    /// A token use. A replay repeats the id and the expiry exactly (both come from what the token's
    /// signature covers), so the expiry is a fixed instant here, not "now + seconds".
    static let epoch = Date(timeIntervalSince1970: (Date().timeIntervalSince1970 / 1000).rounded(.down) * 1000)
    static func token(_ id: String, in seconds: TimeInterval = 3_600) -> TokenUse {
        TokenUse(id: id, expiresAt: epoch.addingTimeInterval(seconds))
    }

    static func withDatabase(_ factory: some CADatabaseFactory, _ body: (CADatabase) async throws -> Void) async throws {
        let database = try await factory.open()
        do {
            try await body(database)
            try await database.close()
        } catch {
            try? await database.close()
            throw error
        }
    }

    static func withStore(_ factory: some CertificateDatabaseFactory, _ body: (any CertificateDatabase) async throws -> Void) async throws {
        let store = try await factory.openCertificates()
        do {
            try await body(store)
            try await store.close()
        } catch {
            try? await store.close()
            throw error
        }
    }

    /// An issuance is durable: it is there after the database is closed and opened again, field for field.
    static func issuanceIsRecordedAndSurvivesReopening(_ factory: some CertificateDatabaseFactory) async throws {
        let original = try record("0a01")
        try await withStore(factory) { store in
            try await store.recordIssuance(original, token: token("admin:one"))
        }
        try await withStore(factory) { store in
            let stored = try #require(try await store.certificate(serial: "0a01"))
            #expect(stored.serial == original.serial && stored.names == original.names && stored.der == original.der)
            #expect(stored.provisioner == "admin" && stored.requester == "127.0.0.1" && stored.keyType == "P-256")
            #expect(abs(stored.notAfter.timeIntervalSince(original.notAfter)) < 0.001)
            #expect(stored.revocation == nil && stored.status == .issued)
            #expect(try await store.certificate(serial: "ffff") == nil)
        }
    }

    /// A token works once, across separate transactions, and a refused issuance leaves nothing.
    static func aTokenWorksOnceAndARefusalLeavesNothing(_ factory: some CertificateDatabaseFactory) async throws {
        try await withStore(factory) { store in
            try await store.recordIssuance(try record("0b01"), token: token("admin:t"))
            await #expect(throws: StoreError.tokenAlreadyUsed) {
                try await store.recordIssuance(try record("0b02"), token: token("admin:t"))
            }
            // The same id with another expiry is another token (ids are only unique per provisioner and expiry).
            try await store.consume(token("admin:t", in: 7_200))
            #expect(try await store.certificate(serial: "0b02") == nil)
            // A serial already taken: refused, and the token of that request was not spent.
            await #expect(throws: StoreError.serialAlreadyExists) {
                try await store.recordIssuance(try record("0b01"), token: token("admin:u"))
            }
            try await store.consume(token("admin:u"))
            await #expect(throws: StoreError.tokenAlreadyUsed) { try await store.consume(token("admin:u")) }
            // Without the certificate there is nothing to record.
            await #expect(throws: StoreError.missingCertificate) {
                var incomplete = try record("0b03")
                incomplete.der = nil
                try await store.recordIssuance(incomplete, token: token("admin:v"))
            }
            try await store.consume(token("admin:v"))
        }
    }

    /// Concurrent issuances all land, each under its own serial.
    static func concurrentIssuancesAllLand(_ factory: some CertificateDatabaseFactory) async throws {
        try await withStore(factory) { store in
            let der = try certificateDER()
            let stored = try await withThrowingTaskGroup(of: Void.self) { group in
                for index in 0..<48 {
                    group.addTask {
                        try await store.recordIssuance(
                            try record(String(format: "c%03x", index), der: der), token: token("admin:c\(index)"))
                    }
                }
                try await group.waitForAll()
                return try await store.certificates(CertificateQuery(), now: Date()).count
            }
            #expect(stored == 48)
        }
    }

    /// An issuance that completes an ACME order needs the order ready; otherwise nothing is stored.
    static func anIssuanceCompletesOnlyAReadyOrder(_ factory: some CADatabaseFactory) async throws {
        try await withDatabase(factory) { database in
            await #expect(throws: StoreError.orderNotReady) {
                try await database.certificates.recordIssuance(try record("0d01"), token: token("admin:d"), completingOrder: "no-such-order")
            }
            #expect(try await database.certificates.certificate(serial: "0d01") == nil)
            try await database.certificates.consume(token("admin:d"))  // the token was not spent either

            let now = Date()
            let account = ACMEAccountRecord(
                id: "acct", provisioner: "acme", thumbprint: "thumb", jwk: "{}", status: .valid, contact: [], createdAt: now, eabKeyID: nil)
            _ = try await database.acme.createAccount(account)
            let order = ACMEOrderRecord(
                id: "order", accountID: "acct", provisioner: "acme", status: .ready, identifiers: [ACMEIdentifier(type: "dns", value: "a.internal")],
                notBefore: nil, notAfter: nil, expires: now.addingTimeInterval(3600), createdAt: now, authorizationIDs: [])
            try await database.acme.createOrder(order, authorizations: [])
            // Processing (an earlier version's finalization in flight) is not ready: refused.
            #expect(try await database.acme.setOrderStatus(id: "order", from: .ready, to: .processing, error: nil))
            await #expect(throws: StoreError.orderNotReady) {
                try await database.certificates.recordIssuance(try record("0d02"), token: nil, completingOrder: "order")
            }
            #expect(try await database.certificates.certificate(serial: "0d02") == nil)
            #expect(try await database.acme.setOrderStatus(id: "order", from: .processing, to: .ready, error: nil))
            try await database.certificates.recordIssuance(try record("0d03"), token: nil, completingOrder: "order")
            let completed = try #require(try await database.acme.order(id: "order"))
            #expect(completed.status == .valid && completed.certificateSerial == "0d03")
            // Once valid, a second issuance for the same order is refused.
            await #expect(throws: StoreError.orderNotReady) {
                try await database.certificates.recordIssuance(try record("0d04"), token: nil, completingOrder: "order")
            }
            #expect(try await database.certificates.certificate(serial: "0d04") == nil)
        }
    }

    /// Renewal keeps the key, so revoking one certificate revokes, in the same transaction, every
    /// other unexpired and unrevoked one with that key; superseded (4) revokes only the one named.
    static func revokingACertificateRevokesTheOthersWithItsKeyUnlessSuperseded(_ factory: some CertificateDatabaseFactory) async throws {
        let key = P256.Signing.PrivateKey()
        let other = P256.Signing.PrivateKey()
        try await withStore(factory) { store in
            let now = Date()
            try await store.recordIssuance(try record("5c01", der: certificateDER(key: key)), token: nil)
            var renewed = try record("5c02", der: certificateDER(key: key))
            renewed.renewedFrom = "5c01"
            try await store.recordIssuance(renewed, token: nil)
            try await store.recordIssuance(try record("5c03", notAfter: now.addingTimeInterval(-60), der: certificateDER(key: key)), token: nil)
            try await store.recordIssuance(try record("5c04", der: certificateDER(key: other)), token: nil)
            try await store.recordIssuance(try record("5c05", der: certificateDER(key: key)), token: nil)
            let earlier = RevocationRecord(reasonCode: 5, reason: "", revokedAt: now, revokedBy: "holder")
            let changes = try await store.revoke(serial: "5c05", earlier)
            #expect(changes.keyRevoked, "the first revocation that covers the key cuts it off")
            let revoked = changes.serials
            #expect(revoked.first == "5c05" && Set(revoked.dropFirst()) == ["5c01", "5c02"] && revoked.count == 3, "\(revoked)")
            let first = try #require(try await store.certificate(serial: "5c01")?.revocation)
            #expect(first.reasonCode == 5 && first.revokedBy == "holder, same key as 5c05")
            #expect(try await store.certificate(serial: "5c02")?.revocation?.revokedBy == "holder, same key as 5c05")
            #expect(try await store.certificate(serial: "5c03")?.revocation == nil, "an expired certificate is left as it is")
            #expect(try await store.certificate(serial: "5c04")?.revocation == nil, "another key is left alone")
            #expect(Set(try await store.revokedCertificates(notExpiredBefore: now).map(\.serial)) == ["5c01", "5c02", "5c05"])
            #expect(try await store.revoke(serial: "5c02", earlier).isEmpty, "already revoked with its key")

            try await store.recordIssuance(try record("5d01", der: certificateDER(key: other)), token: nil)
            let superseded = RevocationRecord(reasonCode: 4, reason: "superseded", revokedAt: now, revokedBy: "holder")
            #expect(try await store.revoke(serial: "5d01", superseded) == RevocationChanges(serials: ["5d01"], keyRevoked: false))
            #expect(try await store.certificate(serial: "5c04")?.revocation == nil, "superseded leaves the later certificate in force")
            let otherHash = try #require(Fingerprint.publicKeyHash(certificateDER: certificateDER(key: other)))
            #expect(try await !store.isKeyRevoked(publicKeyHash: otherHash), "and its key")
            // Learning later that the key was compromised: revoking the superseded one again (it
            // stays as it was) now revokes the others with its key and cuts the key off.
            let compromised = RevocationRecord(reasonCode: 1, reason: "key compromise", revokedAt: now, revokedBy: "admin")
            #expect(try await store.revoke(serial: "5d01", compromised) == RevocationChanges(serials: ["5c04"], keyRevoked: true))
            #expect(try await store.certificate(serial: "5d01")?.revocation?.reasonCode == 4)
            #expect(try await store.isKeyRevoked(publicKeyHash: otherHash))
            #expect(try await store.revoke(serial: "5d01", compromised).isEmpty, "a third time changes nothing")
            // A key cut off with no other certificate of it left to revoke is still a change.
            let lone = P256.Signing.PrivateKey()
            try await store.recordIssuance(try record("5e01", der: certificateDER(key: lone)), token: nil)
            #expect(try await store.revoke(serial: "5e01", superseded).serials == ["5e01"])
            #expect(try await store.revoke(serial: "5e01", compromised) == RevocationChanges(serials: [], keyRevoked: true))
        }
    }

    /// An issuance checks, in its own transaction, that no revocation cut off its key: one committed
    /// while the certificate was being signed is not missed, and nothing is stored.
    static func anIssuanceForARevokedKeyStoresNothing(_ factory: some CertificateDatabaseFactory) async throws {
        let key = P256.Signing.PrivateKey()
        let keyHash = try #require(Fingerprint.publicKeyHash(certificateDER: try certificateDER(key: key)))
        try await withStore(factory) { store in
            try await store.recordIssuance(try record("6a01", der: certificateDER(key: key)), token: nil, completingOrder: nil, refusingRevokedKey: keyHash)
            #expect(try await store.revoke(serial: "6a01", RevocationRecord(reasonCode: 1, reason: "", revokedAt: Date(), revokedBy: "admin")).serials == ["6a01"])
            await #expect(throws: StoreError.keyRevoked) {
                try await store.recordIssuance(
                    try record("6a02", der: certificateDER(key: key)), token: token("admin:6a02"), completingOrder: nil, refusingRevokedKey: keyHash)
            }
            #expect(try await store.certificate(serial: "6a02") == nil)
            // The token was not spent either: the whole transaction was refused.
            try await store.consume(token("admin:6a02"))
            try await store.recordIssuance(try record("6a03"), token: nil, completingOrder: nil, refusingRevokedKey: "another key")
        }
    }

    /// Revocation: once, of a known serial; it cuts off the key; the CRL's inputs follow.
    static func revocationIsRecordedOnceAndCutsOffTheKey(_ factory: some CertificateDatabaseFactory) async throws {
        let key = P256.Signing.PrivateKey()
        let der = try certificateDER(key: key)
        let keyHash = try #require(Fingerprint.publicKeyHash(certificateDER: der))
        try await withStore(factory) { store in
            try await store.recordIssuance(try record("0e01", der: der), token: nil)
            try await store.recordIssuance(try record("0e02"), token: nil)
            let revocation = RevocationRecord(reasonCode: 1, reason: "key compromise", revokedAt: Date(), revokedBy: "admin")
            await #expect(throws: StoreError.unknownSerial) { _ = try await store.revoke(serial: "ffff", revocation) }
            #expect(try await store.isKeyRevoked(publicKeyHash: keyHash) == false)
            let markerBefore = try await store.revocationMarker()
            #expect(try await store.revoke(serial: "0e01", revocation).serials == ["0e01"])
            #expect(try await store.revoke(serial: "0e01", revocation).isEmpty)
            #expect(try await store.revocationMarker() != markerBefore)
            #expect(try await store.isKeyRevoked(publicKeyHash: keyHash))
            #expect(try await store.certificate(serial: "0e01")?.revocation?.reason == "key compromise")
            let listed = try await store.revokedCertificates(notExpiredBefore: Date())
            #expect(listed.map(\.serial) == ["0e01"] && listed.first?.reasonCode == 1 && listed.first?.der == der)
            #expect(try await store.revokedCertificates(notExpiredBefore: Date().addingTimeInterval(2 * 86_400)).isEmpty)
            let revokedOnly = try await store.certificates(CertificateQuery(onlyRevoked: true), now: Date())
            #expect(revokedOnly.map(\.serial) == ["0e01"])
        }
        // Revocations are durable too.
        try await withStore(factory) { store in
            let revoked = try await store.isKeyRevoked(publicKeyHash: keyHash)
            #expect(revoked)
        }
    }

    /// CRL numbers only go up, across reopening.
    static func crlNumbersOnlyGoUp(_ factory: some CertificateDatabaseFactory) async throws {
        var seen: [Int64] = []
        try await withStore(factory) { store in
            for _ in 0..<3 { seen.append(try await store.nextCRLNumber()) }
        }
        try await withStore(factory) { store in
            seen.append(try await store.nextCRLNumber())
        }
        #expect(seen == seen.sorted() && Set(seen).count == seen.count, "\(seen)")
    }

    /// Listing: newest first, by expiry, without the expired, with a limit; purging forgets only expired tokens.
    static func listsAndPurges(_ factory: some CertificateDatabaseFactory) async throws {
        try await withStore(factory) { store in
            let now = Date()
            try await store.recordIssuance(
                try record("0f01", notAfter: now.addingTimeInterval(3600), created: now.addingTimeInterval(-30)), token: token("old", in: -3_000))
            try await store.recordIssuance(
                try record("0f02", notAfter: now.addingTimeInterval(5 * 86_400), created: now.addingTimeInterval(-20)), token: token("new"))
            try await store.recordIssuance(try record("0f03", notAfter: now.addingTimeInterval(-60), created: now.addingTimeInterval(-10)), token: nil)
            #expect(try await store.certificates(CertificateQuery(), now: now).map(\.serial) == ["0f03", "0f02", "0f01"])
            #expect(try await store.certificates(CertificateQuery(limit: 1), now: now).map(\.serial) == ["0f03"])
            let soon = try await store.certificates(
                CertificateQuery(expiringBefore: now.addingTimeInterval(48 * 3600), includeExpired: false), now: now)
            #expect(soon.map(\.serial) == ["0f01"])
            #expect(try await store.purgeTokens(expiredBefore: epoch) == 1)
            try await store.consume(token("old", in: -3_000))  // forgotten: the same id is new again
            await #expect(throws: StoreError.tokenAlreadyUsed) { try await store.consume(token("new")) }
        }
    }

    /// What the metrics read: lifetimes of certificates not expired before a date (revoked ones
    /// marked), every name ever issued, and whether another certificate carries a name (a name
    /// with LIKE's wildcards in it matches only itself).
    static func metricsQueriesSeeNamesLifetimesAndRevocations(_ factory: some CertificateDatabaseFactory) async throws {
        try await withStore(factory) { store in
            let now = Date()
            var live = try record("2a01", notAfter: now.addingTimeInterval(3_600))
            live.names = ["web.internal", "10.0.0.9"]
            var revoked = try record("2a02", notAfter: now.addingTimeInterval(7_200))
            revoked.names = ["db.internal"]
            var old = try record("2a03", notAfter: now.addingTimeInterval(-30 * 86_400))
            old.names = ["gone.internal"]
            var odd = try record("2a04", notAfter: now.addingTimeInterval(3_600))
            odd.names = ["a_b.internal"]
            for certificate in [live, revoked, old, odd] { try await store.recordIssuance(certificate, token: nil) }
            #expect(try await store.revoke(serial: "2a02", RevocationRecord(reasonCode: 1, reason: "", revokedAt: now, revokedBy: "test")).serials == ["2a02"])

            let lifetimes = try await store.lifetimes(notExpiredBefore: now.addingTimeInterval(-86_400))
            #expect(lifetimes.count == 3)
            #expect(lifetimes.first { $0.names == ["web.internal", "10.0.0.9"] }?.revoked == false)
            #expect(lifetimes.first { $0.names == ["db.internal"] }?.revoked == true)
            #expect(!lifetimes.contains { $0.names == ["gone.internal"] })
            #expect(try await store.issuedNames() == ["web.internal", "10.0.0.9", "db.internal", "gone.internal", "a_b.internal"])

            #expect(try await store.hasIssued(name: "web.internal", otherThan: "ffff"))
            #expect(try await !store.hasIssued(name: "web.internal", otherThan: "2a01"))
            #expect(try await !store.hasIssued(name: "eb.internal", otherThan: "ffff"), "whole names only")
            #expect(try await !store.hasIssued(name: "axb.internal", otherThan: "ffff"), "_ is not a wildcard")
            #expect(try await store.hasIssued(name: "a_b.internal", otherThan: "ffff"))
        }
    }

    /// What the fleet view reads: each certificate not expired before a date with its serial,
    /// provisioner, requester, the serial it renewed, when it was made and when it was revoked.
    static func fleetQuerySeesWhereEachCertificateCameFrom(_ factory: some CertificateDatabaseFactory) async throws {
        try await withStore(factory) { store in
            let now = epoch
            var first = try record("3b01", notAfter: now.addingTimeInterval(3_600), created: now.addingTimeInterval(-600))
            first.names = ["web.internal", "10.0.0.9"]
            first.requester = "192.0.2.7"
            var renewed = try record("3b02", notAfter: now.addingTimeInterval(7_200), created: now.addingTimeInterval(-60))
            renewed.names = first.names
            renewed.renewedFrom = "3b01"
            renewed.provisioner = "x5c"
            renewed.requester = nil
            var revoked = try record("3b03", notAfter: now.addingTimeInterval(7_200), created: now)
            revoked.names = ["db.internal"]
            var old = try record("3b04", notAfter: now.addingTimeInterval(-30 * 86_400))
            old.names = ["gone.internal"]
            for certificate in [first, renewed, revoked, old] { try await store.recordIssuance(certificate, token: nil) }
            let revokedAt = now.addingTimeInterval(5)
            #expect(try await store.revoke(serial: "3b03", RevocationRecord(reasonCode: 1, reason: "", revokedAt: revokedAt, revokedBy: "test")).serials == ["3b03"])

            let fleet = try await store.fleetCertificates(notExpiredBefore: now.addingTimeInterval(-86_400))
            #expect(fleet.map(\.serial).sorted() == ["3b01", "3b02", "3b03"], "the expired one is left out")
            let one = try #require(fleet.first { $0.serial == "3b01" })
            #expect(one.lifetime == CertificateLifetime(
                names: ["web.internal", "10.0.0.9"], notBefore: first.notBefore, notAfter: first.notAfter, revoked: false))
            #expect(one.provisioner == "admin" && one.requester == "192.0.2.7" && one.renewedFrom == nil && one.revokedAt == nil)
            #expect(one.createdAt == first.createdAt)
            let two = try #require(fleet.first { $0.serial == "3b02" })
            #expect(two.provisioner == "x5c" && two.requester == nil && two.renewedFrom == "3b01" && two.createdAt == renewed.createdAt)
            let three = try #require(fleet.first { $0.serial == "3b03" })
            #expect(three.lifetime.revoked && three.revokedAt == revokedAt)
        }
    }

    /// A snapshot is a database the store opens, holding what was committed.
    static func snapshotsHoldWhatWasCommitted(_ factory: some CADatabaseFactory, snapshotPath: String, openSnapshot: (String) throws -> CADatabase)
        async throws
    {
        try await withDatabase(factory) { database in
            try await database.certificates.recordIssuance(try record("1a01"), token: nil)
            try await #require(database.snapshots).snapshot(to: snapshotPath)
        }
        let copy = try openSnapshot(snapshotPath)
        #expect(try await copy.certificates.certificate(serial: "1a01") != nil)
        try await copy.close()
    }
}

struct SQLiteFactory: CADatabaseFactory {
    let path: String
    func open() async throws -> CADatabase { try CADatabase.openSQLite(path: path) }
    func openCertificates() async throws -> any CertificateDatabase { try CADatabase.openSQLite(path: path).certificates }
}

/// The contract, run against the embedded SQLite database.
@Suite struct SQLiteCertificateDatabaseContractTests {
    let directory = TemporaryDirectory()
    var factory: SQLiteFactory { SQLiteFactory(path: directory.file("ca.sqlite")) }

    @Test func issuanceIsRecordedAndSurvivesReopening() async throws {
        try await CertificateDatabaseContract.issuanceIsRecordedAndSurvivesReopening(factory)
    }

    @Test func aTokenWorksOnceAndARefusalLeavesNothing() async throws {
        try await CertificateDatabaseContract.aTokenWorksOnceAndARefusalLeavesNothing(factory)
    }

    @Test func concurrentIssuancesAllLand() async throws {
        try await CertificateDatabaseContract.concurrentIssuancesAllLand(factory)
    }

    @Test func anIssuanceCompletesOnlyAReadyOrder() async throws {
        try await CertificateDatabaseContract.anIssuanceCompletesOnlyAReadyOrder(factory)
    }

    @Test func revocationIsRecordedOnceAndCutsOffTheKey() async throws {
        try await CertificateDatabaseContract.revocationIsRecordedOnceAndCutsOffTheKey(factory)
    }

    @Test func revokingACertificateRevokesTheOthersWithItsKeyUnlessSuperseded() async throws {
        try await CertificateDatabaseContract.revokingACertificateRevokesTheOthersWithItsKeyUnlessSuperseded(factory)
    }

    @Test func anIssuanceForARevokedKeyStoresNothing() async throws {
        try await CertificateDatabaseContract.anIssuanceForARevokedKeyStoresNothing(factory)
    }

    @Test func crlNumbersOnlyGoUp() async throws {
        try await CertificateDatabaseContract.crlNumbersOnlyGoUp(factory)
    }

    @Test func listsAndPurges() async throws {
        try await CertificateDatabaseContract.listsAndPurges(factory)
    }

    @Test func metricsQueriesSeeNamesLifetimesAndRevocations() async throws {
        try await CertificateDatabaseContract.metricsQueriesSeeNamesLifetimesAndRevocations(factory)
    }

    @Test func fleetQuerySeesWhereEachCertificateCameFrom() async throws {
        try await CertificateDatabaseContract.fleetQuerySeesWhereEachCertificateCameFrom(factory)
    }

    @Test func snapshotsHoldWhatWasCommitted() async throws {
        try await CertificateDatabaseContract.snapshotsHoldWhatWasCommitted(
            factory, snapshotPath: directory.file("snapshot.sqlite"), openSnapshot: { try CADatabase.openSQLite(path: $0) })
    }

    /// A file that is not an SQLite database is refused before anything writes to it.
    @Test func aDamagedFileIsRefusedAndLeftAlone() async throws {
        let path = directory.file("damaged.sqlite")
        try Data("not a database at all, just text".utf8).write(to: URL(fileURLWithPath: path))
        #expect(throws: AutoSSLError.self) { _ = try CADatabase.openSQLite(path: path) }
        #expect(try String(contentsOfFile: path, encoding: .utf8) == "not a database at all, just text")
    }
}
