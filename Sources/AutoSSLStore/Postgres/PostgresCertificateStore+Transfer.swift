import AutoSSLCore
import Foundation
import Logging
import PostgresNIO

/// The PostgreSQL side of `DatabaseTransfer`: one connection of the store's client, in one
/// transaction for the whole transfer. As a source: REPEATABLE READ, read only (one snapshot). As a
/// target: the copied tables locked against other writers, rows inserted in batches, verified, and
/// committed only when every table matches; anything thrown rolls all of it back.
struct PostgresTransferSession: TransferSource, TransferTarget {
    let connection: PostgresConnection
    let location: String
    let logger: Logger

    static func reading<T: Sendable>(
        _ store: PostgresCertificateStore, logger: Logger, _ body: (any TransferSource) async throws -> T
    ) async throws -> T {
        try await inTransaction(store, logger: logger, begin: "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", commit: true) { session in
            try await body(session)
        }
    }

    static func writing<T: Sendable>(
        _ store: PostgresCertificateStore, logger: Logger, commit: Bool, _ body: (any TransferTarget) async throws -> T
    ) async throws -> T {
        try await inTransaction(store, logger: logger, begin: "BEGIN", commit: commit) { session in
            if commit {
                // Nothing else writes these tables until the copy is committed or rolled back; a
                // replica holding them makes this wait, at most 10 seconds.
                try await session.run("SET LOCAL lock_timeout = '10s'")
                let names = DatabaseTransfer.tables.map(\.name).joined(separator: ", ")
                try await session.run("LOCK TABLE \(names) IN EXCLUSIVE MODE")
            }
            return try await body(session)
        }
    }

    private static func inTransaction<T: Sendable>(
        _ store: PostgresCertificateStore, logger: Logger, begin: String, commit: Bool,
        _ body: (PostgresTransferSession) async throws -> T
    ) async throws -> T {
        let location = store.location.description
        do {
            return try await store.client.withConnection { connection in
                let session = PostgresTransferSession(connection: connection, location: location, logger: logger)
                try await session.run(begin)
                do {
                    let result = try await body(session)
                    try await session.run(commit ? "COMMIT" : "ROLLBACK")
                    return result
                } catch {
                    try? await session.run("ROLLBACK")
                    throw error
                }
            }
        } catch let error as DatabaseTransferError {
            throw error
        } catch let error as AutoSSLError {
            throw error
        } catch {
            throw describe(error, location: location)
        }
    }

    /// A PostgreSQL failure in words (the server's own message when it sent one; never a password).
    static func describe(_ error: any Error, location: String) -> AutoSSLError {
        let mapped = PostgresStoreErrors.map(error)
        if let store = mapped as? StoreError, case .unavailable(let reason) = store {
            return AutoSSLError(.network, "PostgreSQL at \(location): \(reason)")
        }
        return AutoSSLError(.general, "PostgreSQL at \(location) refused the copy: \(PostgresStoreErrors.describe(error))")
    }

    func run(_ sql: String) async throws {
        try await connection.query(PostgresQuery(unsafeSQL: sql), logger: logger)
    }

    // MARK: Reading

    /// Text keys in byte order (`COLLATE "C"`), as SQLite orders them, so both sides hash the rows
    /// in the same order whatever the database's collation.
    static func orderBy(_ table: TransferTable) -> String {
        table.primaryKey.map { key in
            table.columns.first { $0.name == key }?.type == .text ? "\(key) COLLATE \"C\"" : key
        }.joined(separator: ", ")
    }

    static func values(_ row: PostgresRow, _ table: TransferTable) throws -> [TransferValue] {
        let cells = row.makeRandomAccess()
        guard cells.count == table.columns.count else {
            throw DatabaseTransferError.unexpectedValue(table: table.name, column: "*", detail: "came back with \(cells.count) columns")
        }
        var values: [TransferValue] = []
        values.reserveCapacity(table.columns.count)
        for (index, column) in table.columns.enumerated() {
            let cell = cells[index]
            do {
                switch column.type {
                case .text: values.append(try cell.decode(String?.self).map { .text($0) } ?? .null)
                case .double: values.append(try cell.decode(Double?.self).map { .double($0) } ?? .null)
                case .int32: values.append(try cell.decode(Int32?.self).map { .integer(Int64($0)) } ?? .null)
                case .int64: values.append(try cell.decode(Int64?.self).map { .integer($0) } ?? .null)
                case .boolean: values.append(try cell.decode(Bool?.self).map { .integer($0 ? 1 : 0) } ?? .null)
                case .blob: values.append(try cell.decode(Data?.self).map { .blob(Array($0)) } ?? .null)
                }
            } catch {
                throw DatabaseTransferError.unexpectedValue(
                    table: table.name, column: column.name, detail: "is not stored as \(column.type) in PostgreSQL")
            }
        }
        let result = values
        try table.check(result)
        return result
    }

    func readRows(_ table: TransferTable, batchSize: Int, _ body: ([[TransferValue]]) async throws -> Void) async throws {
        let rows = try await connection.query(
            PostgresQuery(unsafeSQL: "SELECT \(table.columnList) FROM \(table.name) ORDER BY \(Self.orderBy(table))"), logger: logger)
        var batch: [[TransferValue]] = []
        batch.reserveCapacity(batchSize)
        for try await row in rows {
            batch.append(try Self.values(row, table))
            if batch.count >= batchSize {
                try await body(batch)
                batch.removeAll(keepingCapacity: true)
            }
        }
        if !batch.isEmpty { try await body(batch) }
    }

    func digest(_ table: TransferTable) async throws -> TableDigest {
        let rows = try await connection.query(
            PostgresQuery(unsafeSQL: "SELECT \(table.columnList) FROM \(table.name) ORDER BY \(Self.orderBy(table))"), logger: logger)
        var digester = TableDigester(table)
        for try await row in rows { digester.add(try Self.values(row, table)) }
        return digester.digest
    }

    /// One REPEATABLE READ snapshot: nothing to compare with.
    func confirmUnchanged(_ digests: [(TransferTable, TableDigest)]) async throws {}

    // MARK: Writing

    static func cast(_ type: TransferColumnType) -> String {
        switch type {
        case .text: "text"
        case .double: "double precision"
        case .int32: "integer"
        case .int64: "bigint"
        case .boolean: "boolean"
        case .blob: "bytea"
        }
    }

    static func bind(_ value: TransferValue, _ column: TransferColumn, table: String, into bindings: inout PostgresBindings) throws {
        switch (value, column.type) {
        case (.null, _):
            bindings.appendNull()
        case (.text(let text), .text):
            bindings.append(text)
        case (.double(let number), .double):
            bindings.append(number)
        case (.integer(let number), .int32):
            guard let small = Int32(exactly: number) else {
                throw DatabaseTransferError.unexpectedValue(table: table, column: column.name, detail: "holds \(number), beyond a 32-bit integer")
            }
            bindings.append(small)
        case (.integer(let number), .int64):
            bindings.append(number)
        case (.integer(let number), .boolean):
            bindings.append(number != 0)
        case (.blob(let bytes), .blob):
            try bindings.append(Data(bytes))
        default:
            throw DatabaseTransferError.unexpectedValue(table: table, column: column.name, detail: "holds \(value.kind), expected \(column.type)")
        }
    }

    func occupiedRows(_ table: TransferTable) async throws -> Int {
        var sql = "SELECT COUNT(*) FROM \(table.name)"
        var bindings = PostgresBindings()
        if let seed = table.seed {
            var conditions: [String] = []
            for (value, column) in zip(seed, table.columns) {
                try Self.bind(value, column, table: table.name, into: &bindings)
                conditions.append("\(column.name) IS NOT DISTINCT FROM $\(bindings.count)::\(Self.cast(column.type))")
            }
            sql += " WHERE NOT (" + conditions.joined(separator: " AND ") + ")"
        }
        var count: Int64 = 0
        for try await value in try await connection.query(PostgresQuery(unsafeSQL: sql, binds: bindings), logger: logger).checkedDecode(Int64.self) {
            count = value
        }
        return Int(clamping: count)
    }

    func clear(_ table: TransferTable) async throws {
        try await run("DELETE FROM \(table.name)")
    }

    func insert(_ table: TransferTable, rows: [[TransferValue]]) async throws {
        guard !rows.isEmpty else { return }
        var bindings = PostgresBindings(capacity: rows.count * table.columns.count)
        var tuples: [String] = []
        tuples.reserveCapacity(rows.count)
        for row in rows {
            guard row.count == table.columns.count else {
                throw DatabaseTransferError.unexpectedValue(table: table.name, column: "*", detail: "has \(row.count) values")
            }
            var placeholders: [String] = []
            for (value, column) in zip(row, table.columns) {
                try Self.bind(value, column, table: table.name, into: &bindings)
                placeholders.append("$\(bindings.count)::\(Self.cast(column.type))")
            }
            tuples.append("(" + placeholders.joined(separator: ", ") + ")")
        }
        let sql = "INSERT INTO \(table.name) (\(table.columnList)) VALUES " + tuples.joined(separator: ", ")
        try await connection.query(PostgresQuery(unsafeSQL: sql, binds: bindings), logger: logger)
    }

    func executeForTesting(_ sql: String) async throws {
        try await run(sql)
    }
}
