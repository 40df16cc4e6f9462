import AutoSSLCore
@testable import AutoSSLStore
import PostgresNIO
import Testing
import TestSupport

/// PostgresNIO checks a row's column count against the decoded tuple with a `precondition`: a
/// server (or anything between it and the CA) answering a query with fewer columns would stop the
/// process. Every row the PostgreSQL store reads goes through `checkedDecode`, which throws instead.
@Suite(.enabled(if: TemporaryPostgres.isAvailable, "PostgreSQL is not installed"))
struct PostgresRowShapeTests {
    @Test func aRowWithFewerColumnsThanAskedForIsAnError() async throws {
        let server = try TemporaryPostgres.shared.get()
        let location = try PostgresLocation(url: server.url(database: try server.makeDatabase()))
        let store = try await PostgresCertificateStore.open(location, password: server.password)
        let row = try #require(try await store.client.query("SELECT 1::INT8 AS one", logger: store.logger).collect().first)
        #expect(try row.checkedDecode(Int64.self) == 1)
        #expect(throws: PostgresRowShapeError.self) { _ = try row.checkedDecode((Int64, Int64).self) }
        #expect(throws: PostgresRowShapeError.self) { _ = try row.checkedDecode((Int64, String, Double?).self) }
        // A row of no columns (PostgreSQL allows `SELECT` alone).
        let empty = try #require(try await store.client.query("SELECT", logger: store.logger).collect().first)
        #expect(throws: PostgresRowShapeError.self) { _ = try empty.checkedDecode(Int64.self) }
        await #expect(throws: PostgresRowShapeError.self) {
            for try await _ in try await store.client.query("SELECT 1::INT8", logger: store.logger).checkedDecode((Int64, Int64).self) {}
        }
        try await store.close()
    }
}
