import AutoSSLCore
import AutoSSLStore
import Foundation
import Testing
import TestSupport

/// A fresh database on the shared server; each open is a new client to it.
struct PostgresCertificatesFactory: CADatabaseFactory {
    let location: PostgresLocation
    let password: String

    init() throws {
        let server = try TemporaryPostgres.shared.get()
        location = try PostgresLocation(url: server.url(database: try server.makeDatabase()))
        password = server.password
    }

    func openCertificates() async throws -> any CertificateDatabase {
        try await PostgresCertificateStore.open(location, password: password)
    }

    func open() async throws -> CADatabase {
        try await CADatabase.openPostgres(location, password: password)
    }
}

/// The certificate contract against a real PostgreSQL server started by the tests.
@Suite(.enabled(if: TemporaryPostgres.isAvailable, "PostgreSQL is not installed"))
struct PostgresCertificateDatabaseContractTests {
    @Test func issuanceIsRecordedAndSurvivesReopening() async throws {
        try await CertificateDatabaseContract.issuanceIsRecordedAndSurvivesReopening(try PostgresCertificatesFactory())
    }

    @Test func aTokenWorksOnceAndARefusalLeavesNothing() async throws {
        try await CertificateDatabaseContract.aTokenWorksOnceAndARefusalLeavesNothing(try PostgresCertificatesFactory())
    }

    @Test func concurrentIssuancesAllLand() async throws {
        try await CertificateDatabaseContract.concurrentIssuancesAllLand(try PostgresCertificatesFactory())
    }

    @Test func metricsQueriesSeeNamesLifetimesAndRevocations() async throws {
        try await CertificateDatabaseContract.metricsQueriesSeeNamesLifetimesAndRevocations(try PostgresCertificatesFactory())
    }

    @Test func fleetQuerySeesWhereEachCertificateCameFrom() async throws {
        try await CertificateDatabaseContract.fleetQuerySeesWhereEachCertificateCameFrom(try PostgresCertificatesFactory())
    }

    @Test func anIssuanceCompletesOnlyAReadyOrder() async throws {
        try await CertificateDatabaseContract.anIssuanceCompletesOnlyAReadyOrder(try PostgresCertificatesFactory())
    }

    @Test func revocationIsRecordedOnceAndCutsOffTheKey() async throws {
        try await CertificateDatabaseContract.revocationIsRecordedOnceAndCutsOffTheKey(try PostgresCertificatesFactory())
    }

    @Test func revokingACertificateRevokesTheOthersWithItsKeyUnlessSuperseded() async throws {
        try await CertificateDatabaseContract.revokingACertificateRevokesTheOthersWithItsKeyUnlessSuperseded(try PostgresCertificatesFactory())
    }

    @Test func anIssuanceForARevokedKeyStoresNothing() async throws {
        try await CertificateDatabaseContract.anIssuanceForARevokedKeyStoresNothing(try PostgresCertificatesFactory())
    }

    @Test func crlNumbersOnlyGoUp() async throws {
        try await CertificateDatabaseContract.crlNumbersOnlyGoUp(try PostgresCertificatesFactory())
    }

    @Test func listsAndPurges() async throws {
        try await CertificateDatabaseContract.listsAndPurges(try PostgresCertificatesFactory())
    }

    /// Two clients (two replicas) on one database: a token used through one is refused through the
    /// other, and both see every row.
    @Test func replicasShareTokensAndRows() async throws {
        let factory = try PostgresCertificatesFactory()
        let a = try await factory.openCertificates()
        let b = try await factory.openCertificates()
        let token = CertificateDatabaseContract.token("admin:shared")
        try await a.recordIssuance(try CertificateDatabaseContract.record("2a01"), token: token)
        await #expect(throws: StoreError.tokenAlreadyUsed) {
            try await b.recordIssuance(try CertificateDatabaseContract.record("2a02"), token: token)
        }
        #expect(try await b.certificate(serial: "2a01") != nil)
        let numbers = [try await a.nextCRLNumber(), try await b.nextCRLNumber(), try await a.nextCRLNumber()]
        #expect(numbers == numbers.sorted() && Set(numbers).count == 3)
        try await a.close()
        try await b.close()
    }

    /// What replicas share besides records: settings by compare-and-set on the revision (a racing
    /// first publication included), the newest CRL per issuer, the admin log, the binding to one CA.
    @Test func replicatedStateIsCompareAndSet() async throws {
        let factory = try PostgresCertificatesFactory()
        let a = try await factory.open()
        let b = try await factory.open()
        let sa = try #require(a.replicated)
        let sb = try #require(b.replicated)
        let now = Date()
        #expect(try await sa.publishSettings("{\"r\":1}", expectedRevision: nil, now: now) == 1)
        await #expect(throws: StoreError.settingsChangedConcurrently) {
            try await sb.publishSettings("{\"r\":\"racing first\"}", expectedRevision: nil, now: now)
        }
        #expect(try await sb.publishSettings("{\"r\":2}", expectedRevision: 1, now: now) == 2)
        await #expect(throws: StoreError.settingsChangedConcurrently) {
            try await sa.publishSettings("{\"r\":\"stale\"}", expectedRevision: 1, now: now)
        }
        #expect(try await sa.sharedSettings()?.json == "{\"r\":2}")

        try await sa.publishCRL(SharedCRL(issuerSerial: "0a", number: 5, thisUpdate: now, der: [0x30, 0x05]))
        try await sb.publishCRL(SharedCRL(issuerSerial: "0a", number: 4, thisUpdate: now, der: [0x30, 0x04]))
        #expect(try await sb.currentCRL(issuerSerial: "0a")?.der == [0x30, 0x05])
        #expect(try await sb.currentCRL(issuerSerial: "0b") == nil)

        try await sa.recordAdminEvent(AdminEvent(at: now, host: "a", event: "first", detail: ""))
        try await sb.recordAdminEvent(AdminEvent(at: now, host: "b", event: "second", detail: "x"))
        #expect(try await sa.adminEvents(limit: 5).map(\.event) == ["second", "first"])

        try await sa.bind(rootFingerprint: "aa", caName: "A", now: now)
        await #expect(throws: StoreError.belongsToAnotherCA(rootFingerprint: "aa")) {
            try await sb.bind(rootFingerprint: "bb", caName: "B", now: now)
        }
        try await a.close()
        try await b.close()
    }

    /// Migrations run once however many replicas start at the same moment.
    @Test func replicasStartingTogetherMigrateOnce() async throws {
        let factory = try PostgresCertificatesFactory()
        let stores = try await withThrowingTaskGroup(of: (any CertificateDatabase).self) { group in
            for _ in 0..<4 { group.addTask { try await factory.openCertificates() } }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        #expect(stores.count == 4)
        try await stores[0].recordIssuance(try CertificateDatabaseContract.record("2b01"), token: nil)
        #expect(try await stores[3].certificate(serial: "2b01") != nil)
        for store in stores { try await store.close() }
    }

    /// A server that is not there: a clear error naming the database, no password in it.
    @Test func anUnreachableServerIsReportedInWords() async throws {
        let server = try TemporaryPostgres.shared.get()
        let location = PostgresLocation(user: "autossl", host: "127.0.0.1", port: freeLoopbackPort(), database: "nothing")
        do {
            let store = try await PostgresCertificateStore.open(location, password: server.password)
            try await store.close()
            Issue.record("opened a database on a port nobody listens on")
        } catch let error as AutoSSLError {
            #expect(error.message.contains("postgres://autossl@127.0.0.1:\(location.port)/nothing"), "\(error)")
            #expect(!error.description.contains(server.password))
        }
        // A wrong password is refused by the server, and said so.
        let real = try PostgresLocation(url: server.url(database: try server.makeDatabase()))
        do {
            let store = try await PostgresCertificateStore.open(real, password: "not-the-password")
            try await store.close()
            Issue.record("logged in with a wrong password")
        } catch let error as AutoSSLError {
            #expect(error.message.contains("password"), "\(error)")
            #expect(!error.description.contains("not-the-password"))
        }
    }

    @Test func urlsWithoutPasswordsOnly() throws {
        let location = try PostgresLocation(url: "postgres://ca@db.internal:6543/autossl")
        #expect(location == PostgresLocation(user: "ca", host: "db.internal", port: 6543, database: "autossl"))
        #expect(try PostgresLocation(url: "postgresql://ca@db.internal/autossl").port == 5432)
        for bad in [
            "postgres://ca:secret@db.internal/autossl", "mysql://ca@db/x", "postgres://db.internal/autossl", "postgres://ca@db.internal/",
            "postgres://ca@db.internal/a/b", "postgres://ca@db.internal/x?application_name=x", "postgres://ca@db.internal:70000/x", "",
            // Not ASCII (Foundation would make punycode of the host that does not read back).
            "postgres://ca@db.intérnal/x", "postgres://ca@db.interna%\u{5BF}543/x",
        ] {
            #expect(throws: AutoSSLError.self, "\(bad)") { try PostgresLocation(url: bad) }
        }
        // A refusal never repeats a password.
        for withPassword in ["postgres://ca:hunter2@db/x", "mysql://ca:hunter2@db/x", "postgres://ca:hunter2@db/x?a=b"] {
            do {
                _ = try PostgresLocation(url: withPassword)
                Issue.record("accepted \(withPassword)")
            } catch let error as AutoSSLError {
                #expect(!error.description.contains("hunter2"), "\(error)")
            }
        }
    }
}
