@testable import AutoSSLStore
import Foundation
import Testing
import TestSupport

/// One PostgreSQL server for every PostgreSQL test of this target, started on first use (and
/// stopped by `TemporaryPostgres` when the test process exits).
enum ACMETestPostgres {
    static let server: Result<TemporaryPostgres, any Error> = Result { try TemporaryPostgres() }
}

/// The PostgreSQL store (which owns the client) with the ACME database on its client, closed
/// when the check lets go of it.
final class PostgresACMEHandle: @unchecked Sendable {
    let store: PostgresCertificateStore
    let acme: PostgresACMEDatabase

    init(store: PostgresCertificateStore) {
        self.store = store
        acme = PostgresACMEDatabase(client: store.client, logger: store.logger)
    }

    deinit {
        let store = store
        Task { try? await store.close() }
    }
}

extension ACMEDatabaseFactory {
    /// A fresh database on the shared server, with the schema of a new CA.
    static let postgres = ACMEDatabaseFactory(description: "PostgreSQL") {
        let server = try ACMETestPostgres.server.get()
        let location = try PostgresLocation(url: server.url(database: try server.makeDatabase("acme")))
        let handle = PostgresACMEHandle(store: try await PostgresCertificateStore.open(location, password: server.password))
        return (handle.acme, handle)
    }
}

/// The ACME contract against a real PostgreSQL server started by the tests: every check on a
/// database of its own.
@Suite(.enabled(if: TemporaryPostgres.isAvailable, "PostgreSQL is not installed"))
struct PostgresACMEDatabaseContractTests {
    @Test func oneAccountPerKeyAndEABKeysBindOnce() async throws {
        try await ACMEDatabaseContract.oneAccountPerKeyAndEABKeysBindOnce(.postgres)
    }

    @Test func onlyUnboundEABKeysAreRemoved() async throws {
        try await ACMEDatabaseContract.onlyUnboundEABKeysAreRemoved(.postgres)
    }

    @Test func deactivatingAnAccountDeactivatesItsAuthorizations() async throws {
        try await ACMEDatabaseContract.deactivatingAnAccountDeactivatesItsAuthorizations(.postgres)
    }

    @Test func readsNeverWrite() async throws {
        try await ACMEDatabaseContract.readsNeverWrite(.postgres)
    }

    @Test func validationAndFinalizationHappenOnceUnderConcurrency() async throws {
        try await ACMEDatabaseContract.validationAndFinalizationHappenOnceUnderConcurrency(.postgres)
    }

    @Test func aFailedChallengeInvalidatesTheOrderAndExpiredOrdersArePurged() async throws {
        try await ACMEDatabaseContract.aFailedChallengeInvalidatesTheOrderAndExpiredOrdersArePurged(.postgres)
    }

    @Test func noncesAreSpentOnceAndSecretsAreStable() async throws {
        try await ACMEDatabaseContract.noncesAreSpentOnceAndSecretsAreStable(.postgres)
    }
}
