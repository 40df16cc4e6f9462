import AutoSSLCore
import AutoSSLStore
import Foundation
import Testing
import TestSupport

/// Keeps a CA database open while a check uses it, and closes it afterwards.
final class OpenDatabase: @unchecked Sendable {
    let database: CADatabase

    init(_ database: CADatabase) { self.database = database }

    deinit {
        let database = database
        Task { try? await database.close() }
    }
}

extension ACMEDatabaseFactory {
    /// A fresh database on the shared server, opened as a CA opens it.
    static let postgres = ACMEDatabaseFactory(description: "PostgreSQL") {
        let server = try TemporaryPostgres.shared.get()
        let location = try PostgresLocation(url: server.url(database: try server.makeDatabase("acme")))
        let handle = OpenDatabase(try await CADatabase.openPostgres(location, password: server.password))
        return (handle.database.acme, handle)
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

    @Test func theLastValidationOfAnOrderMarksItReadyEvenWhenTheyFinishTogether() async throws {
        try await ACMEDatabaseContract.theLastValidationOfAnOrderMarksItReadyEvenWhenTheyFinishTogether(.postgres)
    }

    @Test func anAccountsOpenOrdersAreLimited() async throws {
        try await ACMEDatabaseContract.anAccountsOpenOrdersAreLimited(.postgres)
    }

    @Test func aFailedChallengeInvalidatesTheOrderAndExpiredOrdersArePurged() async throws {
        try await ACMEDatabaseContract.aFailedChallengeInvalidatesTheOrderAndExpiredOrdersArePurged(.postgres)
    }

    @Test func aKeyRolloverAppliesOnlyFromTheCurrentKey() async throws {
        try await ACMEDatabaseContract.aKeyRolloverAppliesOnlyFromTheCurrentKey(.postgres)
    }

    @Test func aFailureAfterAnotherChallengeValidatedTheAuthorizationLeavesTheOrder() async throws {
        try await ACMEDatabaseContract.aFailureAfterAnotherChallengeValidatedTheAuthorizationLeavesTheOrder(.postgres)
    }

    @Test func deactivatingAnAuthorizationInvalidatesItsOrder() async throws {
        try await ACMEDatabaseContract.deactivatingAnAuthorizationInvalidatesItsOrder(.postgres)
    }

    @Test func anAccountIsReadWithItsRevokedKeyCheck() async throws {
        try await ACMEDatabaseContract.anAccountIsReadWithItsRevokedKeyCheck(.postgres)
    }

    @Test func noncesAreSpentOnceAndSecretsAreStable() async throws {
        try await ACMEDatabaseContract.noncesAreSpentOnceAndSecretsAreStable(.postgres)
    }
}
