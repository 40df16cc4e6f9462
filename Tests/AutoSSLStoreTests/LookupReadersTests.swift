import Foundation
import GRDB
import Synchronization
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

    /// Closing waits for a look-up that holds a connection: once `close` returns, no connection of
    /// the store's reads the file.
    @Test func closingWaitsForTheLookUpsInProgress() async throws {
        let directory = TemporaryDirectory()
        let store = try SQLiteCertificateStore(path: directory.file("db.sqlite"))
        let ended = Mutex(false)
        let started = DispatchSemaphore(value: 0)
        let lookUp = Thread {
            _ = try? store.lookupOne { db in
                started.signal()
                usleep(200_000)
                let count = try Self.count(db)
                ended.withLock { $0 = true }
                return count
            }
        }
        lookUp.start()
        started.wait()
        store.readers.close()
        #expect(ended.withLock { $0 }, "close returned while a look-up still held its connection")
        #expect(store.readers.opened == 0)
        try await store.close()
    }
}
