import AutoSSLCore
import Foundation
import GRDB

/// The SQLite side of `DatabaseTransfer`. Values are read by their stored type (`typeof`), text as
/// its raw bytes: text that is not UTF-8, or a value of another type than its column's, is refused
/// by name instead of being repaired or converted on the way.
enum SQLiteTransfer {
    /// The result columns for a table: text columns come as (typeof, bytes), the others as stored.
    static func selectList(_ table: TransferTable) -> String {
        table.columns.map { column in
            column.type == .text ? "typeof(\(column.name)), CAST(\(column.name) AS BLOB)" : column.name
        }.joined(separator: ", ")
    }

    static func orderBy(_ table: TransferTable) -> String { table.primaryKey.joined(separator: ", ") }

    static func values(_ row: Row, _ table: TransferTable) throws -> [TransferValue] {
        let stored = Array(row.databaseValues)
        var values: [TransferValue] = []
        values.reserveCapacity(table.columns.count)
        var index = 0
        for column in table.columns {
            func refuse(_ detail: String) -> DatabaseTransferError {
                DatabaseTransferError.unexpectedValue(table: table.name, column: column.name, detail: detail)
            }
            guard index < stored.count else { throw refuse("is missing from the result") }
            if column.type == .text {
                guard index + 1 < stored.count else { throw refuse("is missing from the result") }
                let type = stored[index].storage
                let bytes = stored[index + 1].storage
                index += 2
                switch (type, bytes) {
                case (.string("null"), _):
                    values.append(.null)
                case (.string("text"), .blob(let data)):
                    guard let text = String(validating: Array(data), as: UTF8.self) else { throw refuse("holds text that is not UTF-8") }
                    values.append(.text(text))
                case (.string("text"), .null):
                    // A zero-length text cast to a blob.
                    values.append(.text(""))
                default:
                    throw refuse("holds a value that is not text")
                }
                continue
            }
            let value = stored[index].storage
            index += 1
            switch (value, column.type) {
            case (.null, _):
                values.append(.null)
            case (.double(let number), .double):
                values.append(.double(number))
            case (.int64(let number), .double):
                guard let exact = Double(exactly: number) else { throw refuse("holds an integer that is not exactly a double") }
                values.append(.double(exact))
            case (.int64(let number), .int32), (.int64(let number), .int64), (.int64(let number), .boolean):
                values.append(.integer(number))
            case (.double(let number), .int32), (.double(let number), .int64):
                guard let exact = Int64(exactly: number) else { throw refuse("holds \(number) where an integer belongs") }
                values.append(.integer(exact))
            case (.blob(let data), .blob):
                values.append(.blob(Array(data)))
            default:
                throw refuse("holds a value of another type than \(column.type)")
            }
        }
        let result = values
        try table.check(result)
        return result
    }

    static func databaseValue(_ value: TransferValue) -> DatabaseValue {
        switch value {
        case .null: .null
        case .integer(let number): number.databaseValue
        case .double(let number): number.databaseValue
        case .text(let text): text.databaseValue
        case .blob(let bytes): Data(bytes).databaseValue
        }
    }

    static func digest(_ reader: some DatabaseReader, _ table: TransferTable) async throws -> TableDigest {
        let sql = "SELECT \(selectList(table)) FROM \(table.name) ORDER BY \(orderBy(table))"
        return try await reader.readOnWorker { db in
            var digester = TableDigester(table)
            let cursor = try Row.fetchCursor(db, sql: sql)
            while let row = try cursor.next() { digester.add(try values(row, table)) }
            return digester.digest
        }
    }
}

/// An SQLite database read from one snapshot (a read transaction kept open for the whole copy).
struct SQLiteTransferSource: TransferSource {
    let snapshot: DatabaseSnapshot
    let pool: DatabasePool
    let location: String

    static func with<T: Sendable>(_ store: SQLiteCertificateStore, _ body: (any TransferSource) async throws -> T) async throws -> T {
        let snapshot = try store.pool.makeSnapshot()
        do {
            let result = try await body(SQLiteTransferSource(snapshot: snapshot, pool: store.pool, location: store.path))
            try? snapshot.close()
            return result
        } catch {
            try? snapshot.close()
            throw error
        }
    }

    /// Batches in primary-key order, each one read after the last key of the one before.
    func readRows(_ table: TransferTable, batchSize: Int, _ body: ([[TransferValue]]) async throws -> Void) async throws {
        let keyIndexes = table.primaryKey.compactMap { key in table.columns.firstIndex { $0.name == key } }
        guard keyIndexes.count == table.primaryKey.count else {
            throw DatabaseTransferError.unsupported("the primary key of \(table.name) is not among its columns")
        }
        let keys = table.primaryKey.joined(separator: ", ")
        let placeholders = Array(repeating: "?", count: keyIndexes.count).joined(separator: ", ")
        let base = "SELECT \(SQLiteTransfer.selectList(table)) FROM \(table.name)"
        let order = " ORDER BY \(SQLiteTransfer.orderBy(table)) LIMIT \(batchSize)"
        var after: [TransferValue]?
        while true {
            let last = after
            let batch: [[TransferValue]] = try await snapshot.readOnWorker { db in
                var rows: [[TransferValue]] = []
                if let last {
                    let arguments = StatementArguments(last.map(SQLiteTransfer.databaseValue))
                    let cursor = try Row.fetchCursor(db, sql: base + " WHERE (\(keys)) > (\(placeholders))" + order, arguments: arguments)
                    while let row = try cursor.next() { rows.append(try SQLiteTransfer.values(row, table)) }
                } else {
                    let cursor = try Row.fetchCursor(db, sql: base + order)
                    while let row = try cursor.next() { rows.append(try SQLiteTransfer.values(row, table)) }
                }
                return rows
            }
            guard let final = batch.last else { return }
            try await body(batch)
            after = keyIndexes.map { final[$0] }
            if batch.count < batchSize { return }
        }
    }

    func digest(_ table: TransferTable) async throws -> TableDigest {
        try await SQLiteTransfer.digest(snapshot, table)
    }

    func confirmUnchanged(_ digests: [(TransferTable, TableDigest)]) async throws {
        for (table, copied) in digests where try await SQLiteTransfer.digest(pool, table) != copied {
            throw DatabaseTransferError.sourceChanged(table: table.name)
        }
    }
}

/// A new SQLite database being filled (the caller discards it when the transfer fails).
struct SQLiteTransferTarget: TransferTarget {
    let pool: DatabasePool
    let location: String

    func occupiedRows(_ table: TransferTable) async throws -> Int {
        var sql = "SELECT COUNT(*) FROM \(table.name)"
        var arguments = StatementArguments()
        if let seed = table.seed {
            sql += " WHERE NOT (" + table.columns.map { "\($0.name) IS ?" }.joined(separator: " AND ") + ")"
            arguments = StatementArguments(seed.map(SQLiteTransfer.databaseValue))
        }
        let query = sql
        let bound = arguments
        return try await pool.readOnWorker { db in try Int.fetchOne(db, sql: query, arguments: bound) ?? 0 }
    }

    func clear(_ table: TransferTable) async throws {
        try await pool.write { db in try db.execute(sql: "DELETE FROM \(table.name)") }
    }

    func insert(_ table: TransferTable, rows: [[TransferValue]]) async throws {
        let placeholders = Array(repeating: "?", count: table.columns.count).joined(separator: ", ")
        let sql = "INSERT INTO \(table.name) (\(table.columnList)) VALUES (\(placeholders))"
        try await pool.write { db in
            let statement = try db.cachedStatement(sql: sql)
            for row in rows {
                try statement.execute(arguments: StatementArguments(row.map(SQLiteTransfer.databaseValue)))
            }
        }
    }

    func digest(_ table: TransferTable) async throws -> TableDigest {
        try await SQLiteTransfer.digest(pool, table)
    }

    func executeForTesting(_ sql: String) async throws {
        try await pool.write { db in try db.execute(sql: sql) }
    }
}

extension SQLiteCertificateStore {
    /// Writes everything to the main file and empties the write-ahead log, so the file alone holds
    /// the database (before it is renamed into place).
    public func checkpoint() async throws {
        try await pool.writeWithoutTransaction { db in
            _ = try Row.fetchAll(db, sql: "PRAGMA wal_checkpoint(TRUNCATE)")
        }
    }
}
