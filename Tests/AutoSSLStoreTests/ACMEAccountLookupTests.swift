import AutoSSLCore
import Foundation
import GRDB
import Testing
import TestSupport

@testable import AutoSSLStore

struct ACMEAccountLookupTests {
    struct NoKey: Error {}

    @Test func anAccountIsReadWithWhetherItsKeyWasRevokedInOneLookUp() async throws {
        let directory = TemporaryDirectory()
        let database = try CADatabase.openSQLite(path: directory.file("db.sqlite"))
        let store = try #require(database.certificates as? SQLiteCertificateStore)
        let account = ACMEAccountRecord(
            id: "a1", provisioner: "acme", thumbprint: "t1", jwk: "{}", status: .valid, contact: [], createdAt: Date(), eabKeyID: nil)
        _ = try await database.acme.createAccount(account)

        var asked: [String] = []
        let found = try #require(try await database.acme.account(id: "a1", keyHash: { asked.append($0.id); return "hash-1" }))
        #expect(found.account.id == account.id && found.account.thumbprint == "t1" && found.keyRevoked == false && asked == ["a1"])
        #expect(try await database.acme.account(id: "nobody", keyHash: { _ in Issue.record("asked for no account"); return "" }) == nil)

        // A revocation that covers the key (written as the certificate store records one).
        try await store.pool.write { db in
            try db.execute(sql: "INSERT INTO revoked_keys (key_hash, serial) VALUES (?, ?)", arguments: ["hash-1", "01"])
        }
        #expect(try await database.acme.account(id: "a1", keyHash: { _ in "hash-1" })?.keyRevoked == true)
        #expect(try await database.acme.account(id: "a1", keyHash: { _ in "hash-2" })?.keyRevoked == false)
        #expect(try await store.isKeyRevoked(publicKeyHash: "hash-1"), "the certificate store's own look-up agrees")
        // A key that cannot be worked out fails the look-up: no answer without the check.
        await #expect(throws: NoKey.self) { try await database.acme.account(id: "a1", keyHash: { _ in throw NoKey() }) }
    }
}
