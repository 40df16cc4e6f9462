@testable import AutoSSLStore
import Foundation
import Testing
import TestSupport

@Suite struct StoreTests {
    func record(_ serial: String, notAfter: Date = Date().addingTimeInterval(86_400)) -> CertificateRecord {
        CertificateRecord(
            serial: serial, status: .reserved, commonName: "a.internal", names: ["a.internal", "10.0.0.1"],
            notBefore: Date(), notAfter: notAfter, keyType: "P-256", provisioner: "admin", requester: "127.0.0.1",
            renewedFrom: nil, der: nil, createdAt: Date())
    }

    @Test func commitsAreDurableAndFull() async throws {
        let dir = TemporaryDirectory()
        let store = try SQLiteCertificateStore(path: dir.file("db.sqlite"))
        #expect(try await store.synchronousMode() == 2)  // FULL
        let journal = try await store.pool.read { db in try String.fetchOne(db, sql: "PRAGMA journal_mode") }
        #expect(journal == "wal")
        try await store.close()
    }

    struct SigningFailed: Error {}

    @Test func recordsTheSerialBeforeSigningAndKeepsNothingOfAFailure() async throws {
        let dir = TemporaryDirectory()
        let store = try SQLiteCertificateStore(path: dir.file("db.sqlite"))
        try await store.recordIssuance(record("01"), token: TokenUse(id: "admin:t1", expiresAt: Date().addingTimeInterval(300))) {
            // Runs inside the transaction, after the serial's row was inserted.
            [1, 2, 3]
        }
        let stored = try #require(try await store.certificate(serial: "01"))
        #expect(stored.status == .issued && stored.der == [1, 2, 3] && stored.names == ["a.internal", "10.0.0.1"])
        await #expect(throws: StoreError.serialAlreadyExists) { try await store.recordIssuance(record("01"), token: nil) { [9] } }
        // A signing failure rolls back the token and the row.
        let token = TokenUse(id: "admin:t2", expiresAt: Date().addingTimeInterval(300))
        await #expect(throws: SigningFailed.self) { try await store.recordIssuance(record("02"), token: token) { throw SigningFailed() } }
        #expect(try await store.certificate(serial: "02") == nil)
        try await store.recordIssuance(record("03"), token: token) { [3] }
        try await store.close()
        // Reopening finds everything again.
        let reopened = try SQLiteCertificateStore(path: dir.file("db.sqlite"))
        #expect(try await reopened.certificate(serial: "01")?.der == [1, 2, 3])
        #expect(try await reopened.certificate(serial: "03")?.der == [3])
        try await reopened.close()
    }

    @Test func aTokenWorksOnceAndAFailedReservationLeavesNoRow() async throws {
        let dir = TemporaryDirectory()
        let store = try SQLiteCertificateStore(path: dir.file("db.sqlite"))
        let token = TokenUse(id: "admin:same", expiresAt: Date().addingTimeInterval(300))
        try await store.recordIssuance(record("0a"), token: token) { [0] }
        await #expect(throws: StoreError.tokenAlreadyUsed) { try await store.recordIssuance(record("0b"), token: token) { [0] } }
        #expect(try await store.certificate(serial: "0b") == nil)
        try await store.close()
    }

    @Test func concurrentWritesShareCommitsAndFailuresStayIsolated() async throws {
        let dir = TemporaryDirectory()
        let store = try SQLiteCertificateStore(path: dir.file("db.sqlite"))
        let shared = TokenUse(id: "admin:shared", expiresAt: Date().addingTimeInterval(300))
        let outcomes = await withTaskGroup(of: Bool.self) { group in
            for i in 0..<200 {
                group.addTask {
                    // Every tenth request replays the same token: exactly one of those may succeed.
                    let token = i % 10 == 0 ? shared : TokenUse(id: "admin:t\(i)", expiresAt: Date().addingTimeInterval(300))
                    do {
                        try await store.recordIssuance(self.record(String(format: "%04x", i + 1)), token: token) { [UInt8(i % 256)] }
                        return true
                    } catch {
                        return false
                    }
                }
            }
            return await group.reduce(into: [Bool]()) { $0.append($1) }
        }
        #expect(outcomes.filter { $0 }.count == 181)
        #expect(await store.committer.largestBatch > 1)
        try await store.close()
    }

    @Test func listsByExpiryAndPurgesTokens() async throws {
        let dir = TemporaryDirectory()
        let store = try SQLiteCertificateStore(path: dir.file("db.sqlite"))
        let now = Date()
        try await store.recordIssuance(record("01", notAfter: now.addingTimeInterval(3600)), token: TokenUse(id: "old", expiresAt: now.addingTimeInterval(-10))) { [0] }
        try await store.recordIssuance(record("02", notAfter: now.addingTimeInterval(86_400 * 5)), token: nil) { [0] }
        try await store.recordIssuance(record("03", notAfter: now.addingTimeInterval(-60)), token: nil) { [0] }
        let soon = try await store.certificates(
            CertificateQuery(expiringBefore: now.addingTimeInterval(48 * 3600), includeExpired: false), now: now)
        #expect(soon.map(\.serial) == ["01"])
        #expect(try await store.certificates(CertificateQuery(), now: now).count == 3)
        #expect(try await store.purgeTokens(expiredBefore: now) == 1)
        try await store.close()
    }
}
