@testable import AutoSSLACME
import AutoSSLCore
import AutoSSLStore
import Foundation
import Testing
import TestSupport

struct ACMENoncesTests {
    func problem(_ work: () async throws -> Void) async -> ACMEProblem? {
        do {
            try await work()
            return nil
        } catch {
            return error as? ACMEProblem
        }
    }

    @Test func onOneProcessNoncesLiveInMemoryAndDieWithIt() async throws {
        let directory = TemporaryDirectory()
        let database = try CADatabase.openSQLite(path: directory.file("db.sqlite"))
        let nonces = try await ACMENonces(database: database.acme)
        let nonce = nonces.make()
        try await nonces.spend(nonce)
        #expect(await problem { try await nonces.spend(nonce) }?.detail.contains("already used") == true)
        // Nothing was written for it: spending it never reached the database.
        #expect(try await database.acme.consumeNonce(nonce, expiresAt: Date().addingTimeInterval(60)))
        // A restart (a new instance over the same database) knows none of the old nonces.
        let unspent = nonces.make()
        let restarted = try await ACMENonces(database: database.acme)
        #expect(await problem { try await restarted.spend(unspent) }?.detail.contains("unknown") == true)
        try await restarted.spend(restarted.make())
    }

    @Test func oversizedOrMalformedNoncesAreRefusedBeforeAnyWork() async throws {
        let directory = TemporaryDirectory()
        let database = try CADatabase.openSQLite(path: directory.file("db.sqlite"))
        let nonces = try await ACMENonces(database: database.acme)
        for bad in ["", "!!!!", String(repeating: "A", count: 43), String(repeating: "A", count: 10_000), nonces.make() + "A"] {
            #expect(await problem { try await nonces.spend(bad) }?.kind == .badNonce, "\(bad.prefix(20))")
        }
    }
}

/// Replicas share the database: a nonce made by one is spent once across all of them.
@Suite(.enabled(if: TemporaryPostgres.isAvailable, "PostgreSQL is not installed"))
struct ReplicatedACMENoncesTests {
    @Test func aNonceMadeByOneReplicaIsSpentOnceAcrossReplicas() async throws {
        let (database, handle) = try await ACMEDatabaseFactory.postgres.open()
        let replicaA = try await ACMENonces(database: database)
        let replicaB = try await ACMENonces(database: database)
        let nonce = replicaA.make()
        try await replicaB.spend(nonce)
        var refused = false
        do { try await replicaA.spend(nonce) } catch let problem as ACMEProblem { refused = problem.kind == .badNonce }
        #expect(refused)
        try await replicaA.spend(replicaB.make())
        withExtendedLifetime(handle) {}
    }
}
