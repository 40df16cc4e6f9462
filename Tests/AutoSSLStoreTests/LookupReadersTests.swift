import Foundation
import GRDB
import Testing
import TestSupport

@testable import AutoSSLStore

struct LookupReadersTests {
    static func count(_ db: Database) throws -> Int {
        try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM revoked_keys") ?? -1
    }

    @Test func aLookupSeesEveryCommitAndReusesItsConnection() async throws {
        let directory = TemporaryDirectory()
        let store = try SQLiteCertificateStore(path: directory.file("db.sqlite"))
        for (index, hash) in ["h1", "h2", "h3"].enumerated() {
            try await store.pool.write { db in
                try db.execute(sql: "INSERT INTO revoked_keys (key_hash, serial) VALUES (?, ?)", arguments: [hash, "0\(index)"])
            }
            #expect(try store.lookupOne(Self.count) == index + 1)
        }
        #expect(store.readers.opened == 1)
        try await store.close()
    }

    @Test func aLookupThatFindsEveryConnectionBusyReadsThroughThePool() async throws {
        let directory = TemporaryDirectory()
        let store = try SQLiteCertificateStore(path: directory.file("db.sqlite"))
        try await store.pool.write { db in try db.execute(sql: "INSERT INTO revoked_keys (key_hash, serial) VALUES ('h', '01')") }
        // Each level holds its connection while the next one reads: one level more than there
        // are connections, so the innermost reads through the pool.
        func nested(_ depth: Int) throws -> Int {
            try store.lookupOne { db in try Self.count(db) + (depth == 0 ? 0 : nested(depth - 1)) }
        }
        let levels = SQLiteCertificateStore.lookupConnections + 1
        #expect(try nested(levels - 1) == levels)
        #expect(store.readers.opened == SQLiteCertificateStore.lookupConnections)
        #expect(try nested(levels - 1) == levels, "given back, the connections serve again")
        #expect(store.readers.opened == SQLiteCertificateStore.lookupConnections)

        try await store.close()
        #expect(throws: (any Error).self) { try store.lookupOne(Self.count) }
    }
}
