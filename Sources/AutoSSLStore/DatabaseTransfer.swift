import AutoSSLCore
import Foundation
import Logging

/// Copies a CA's records from one database to another (`ca database migrate`): every row of every
/// table the CA keeps, verified afterwards by a row count and a SHA-256 per table computed on both
/// sides over the same canonical encoding. Tables are named here one by one; anything else in
/// either database (PostgreSQL's per-deployment tables, its migration list) is not copied.
///
/// - A PostgreSQL target is filled in one transaction that is verified before it commits: a failure
///   anywhere (a refused row, a mismatch) leaves it as it was.
/// - An SQLite target is a new file the caller discards when the copy fails.
/// - An SQLite source is read from one snapshot, and checked again at the end: a write by another
///   process during the copy fails the transfer instead of being lost.
/// - A PostgreSQL source is read in one REPEATABLE READ transaction (one consistent snapshot).
public enum DatabaseTransfer {
    /// What each table held, as verified on both sides.
    public struct TableReport: Sendable, Equatable, Codable {
        public var table: String
        public var rows: Int
        /// SHA-256 (hex) of the canonical encoding of the table's rows in primary-key order.
        public var sha256: String
    }

    /// The tables copied, in an order that satisfies their foreign keys.
    public static var tableNames: [String] { tables.map(\.name) }

    static let tables: [TransferTable] = [
        TransferTable("certificates", key: ["serial"], [
            ("serial", .text, false), ("status", .text, false), ("common_name", .text, false), ("names", .text, false),
            ("not_before", .double, false), ("not_after", .double, false), ("key_type", .text, false),
            ("provisioner", .text, false), ("requester", .text, true), ("renewed_from", .text, true), ("der", .blob, true),
            ("created_at", .double, false),
        ]),
        TransferTable("revocations", key: ["serial"], [
            ("serial", .text, false), ("reason_code", .int32, false), ("reason", .text, false), ("revoked_at", .double, false),
            ("revoked_by", .text, false),
        ]),
        TransferTable("revoked_keys", key: ["key_hash"], [("key_hash", .text, false), ("serial", .text, false)]),
        TransferTable("used_tokens", key: ["expires_at", "id"], [("expires_at", .double, false), ("id", .text, false)]),
        // The schema creates its one row (1, 0); a target holding only that row is still empty, and
        // the row is replaced by the source's.
        TransferTable("crl_state", key: ["id"], [("id", .int32, false), ("number", .int64, false)], seed: [.integer(1), .integer(0)]),
        TransferTable("acme_keys", key: ["name"], [("name", .text, false), ("value", .blob, false)]),
        TransferTable("acme_accounts", key: ["id"], [
            ("id", .text, false), ("provisioner", .text, false), ("thumbprint", .text, false), ("jwk", .text, false),
            ("status", .text, false), ("contact", .text, false), ("created_at", .double, false), ("eab_kid", .text, true),
        ]),
        TransferTable("acme_eab_keys", key: ["kid"], [
            ("kid", .text, false), ("provisioner", .text, false), ("hmac_key", .blob, false), ("created_at", .double, false),
            ("bound_account", .text, true), ("bound_at", .double, true),
        ]),
        TransferTable("acme_orders", key: ["id"], [
            ("id", .text, false), ("account_id", .text, false), ("provisioner", .text, false), ("status", .text, false),
            ("identifiers", .text, false), ("not_before", .double, true), ("not_after", .double, true), ("expires", .double, false),
            ("error", .text, true), ("certificate_serial", .text, true), ("created_at", .double, false),
        ]),
        TransferTable("acme_authorizations", key: ["id"], [
            ("id", .text, false), ("account_id", .text, false), ("order_id", .text, false), ("position", .int32, false),
            ("identifier_type", .text, false), ("identifier_value", .text, false), ("wildcard", .boolean, false),
            ("status", .text, false), ("expires", .double, false),
        ]),
        TransferTable("acme_challenges", key: ["id"], [
            ("id", .text, false), ("authorization_id", .text, false), ("position", .int32, false), ("type", .text, false),
            ("token", .text, false), ("status", .text, false), ("validated_at", .double, true), ("error", .text, true),
            ("attempts", .int32, false),
        ]),
    ]

    /// Rows per read and per insert: memory stays bounded whatever the size of the CA.
    public static let defaultBatchSize = 500

    /// Copies every row of the CA's tables from `source` into `target` (which must hold none of
    /// them) and verifies counts and checksums of every table on both sides. Returns the verified
    /// figures; throws `DatabaseTransferError` (or the database's own error) otherwise.
    public static func copy(
        from source: CADatabase, to target: CADatabase, batchSize: Int = defaultBatchSize,
        logger: Logger = Logger(label: "auto-ssl.store")
    ) async throws -> [TableReport] {
        try await copy(from: source, to: target, batchSize: batchSize, logger: logger, beforeVerifying: nil)
    }

    /// `beforeVerifying`: for tests, runs on the target after the copy and before the checksums.
    static func copy(
        from source: CADatabase, to target: CADatabase, batchSize: Int, logger: Logger,
        beforeVerifying: (@Sendable (any TransferTarget) async throws -> Void)?
    ) async throws -> [TableReport] {
        let batch = min(max(batchSize, 1), 5_000)
        return try await withSource(source, logger: logger) { reader in
            try await withTarget(target, logger: logger) { writer in
                try await transfer(from: reader, to: writer, batchSize: batch, beforeVerifying: beforeVerifying)
            }
        }
    }

    /// The rows of the copied tables in `database` that stop it from being a target (0: empty).
    public static func occupiedRows(in database: CADatabase, logger: Logger = Logger(label: "auto-ssl.store")) async throws
        -> [String: Int]
    {
        try await withTarget(database, logger: logger, commit: false) { writer in
            var occupied: [String: Int] = [:]
            for table in tables {
                let rows = try await writer.occupiedRows(table)
                if rows > 0 { occupied[table.name] = rows }
            }
            return occupied
        }
    }

    /// The checksums of every copied table of `database` (as the verification computes them).
    public static func digests(of database: CADatabase, logger: Logger = Logger(label: "auto-ssl.store")) async throws -> [TableReport] {
        try await withSource(database, logger: logger) { reader in
            var reports: [TableReport] = []
            for table in tables {
                let digest = try await reader.digest(table)
                reports.append(TableReport(table: table.name, rows: digest.rows, sha256: digest.sha256))
            }
            return reports
        }
    }

    static func transfer(
        from source: any TransferSource, to target: any TransferTarget, batchSize: Int,
        beforeVerifying: (@Sendable (any TransferTarget) async throws -> Void)?
    ) async throws -> [TableReport] {
        for table in tables {
            let occupied = try await target.occupiedRows(table)
            guard occupied == 0 else {
                throw DatabaseTransferError.targetNotEmpty(table: table.name, rows: occupied, target: target.location)
            }
        }
        for table in tables {
            if table.seed != nil { try await target.clear(table) }
            try await source.readRows(table, batchSize: batchSize) { rows in
                for row in rows { try table.check(row) }
                try await target.insert(table, rows: rows)
            }
        }
        if let beforeVerifying { try await beforeVerifying(target) }
        var reports: [TableReport] = []
        var sourceDigests: [TableDigest] = []
        for table in tables {
            let expected = try await source.digest(table)
            let copied = try await target.digest(table)
            guard expected == copied else {
                throw DatabaseTransferError.mismatch(table: table.name, source: expected, target: copied)
            }
            sourceDigests.append(expected)
            reports.append(TableReport(table: table.name, rows: expected.rows, sha256: expected.sha256))
        }
        try await source.confirmUnchanged(zip(tables, sourceDigests).map { ($0, $1) })
        return reports
    }

    static func withSource<T: Sendable>(
        _ database: CADatabase, logger: Logger, _ body: (any TransferSource) async throws -> T
    ) async throws -> T {
        if let store = database.certificates as? SQLiteCertificateStore {
            return try await SQLiteTransferSource.with(store, body)
        }
        if let store = database.certificates as? PostgresCertificateStore {
            return try await PostgresTransferSession.reading(store, logger: logger, body)
        }
        throw DatabaseTransferError.unsupported("the database \(database.location) cannot be copied (unknown kind)")
    }

    static func withTarget<T: Sendable>(
        _ database: CADatabase, logger: Logger, commit: Bool = true, _ body: (any TransferTarget) async throws -> T
    ) async throws -> T {
        if let store = database.certificates as? SQLiteCertificateStore {
            return try await body(SQLiteTransferTarget(pool: store.pool, location: store.path))
        }
        if let store = database.certificates as? PostgresCertificateStore {
            return try await PostgresTransferSession.writing(store, logger: logger, commit: commit, body)
        }
        throw DatabaseTransferError.unsupported("the database \(database.location) cannot be copied into (unknown kind)")
    }
}

/// Why a transfer failed, in words for the operator.
public enum DatabaseTransferError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The target already holds rows of a copied table.
    case targetNotEmpty(table: String, rows: Int, target: String)
    /// The verification found a table whose rows differ between the two sides.
    case mismatch(table: String, source: TableDigest, target: TableDigest)
    /// The source changed while it was being copied (another process wrote to it).
    case sourceChanged(table: String)
    /// A value the other database could not hold as it is (a damaged or hand-edited database).
    case unexpectedValue(table: String, column: String, detail: String)
    case unsupported(String)

    public var description: String {
        switch self {
        case .targetNotEmpty(let table, let rows, let target):
            "the target database \(target) is not empty: its table \(table) holds \(rows) row\(rows == 1 ? "" : "s")"
        case .mismatch(let table, let source, let target):
            "verification failed for table \(table): the source has \(source.rows) rows (SHA-256 \(source.sha256)), "
                + "the copy \(target.rows) rows (SHA-256 \(target.sha256))"
        case .sourceChanged(let table):
            "the table \(table) changed while it was being copied (another auto-ssl command wrote to the database)"
        case .unexpectedValue(let table, let column, let detail):
            "a row of \(table) cannot be copied: its column \(column) \(detail)"
        case .unsupported(let reason):
            reason
        }
    }
}

/// A table's row count and SHA-256 over the canonical encoding of its rows in primary-key order.
public struct TableDigest: Sendable, Equatable, Codable {
    public var rows: Int
    public var sha256: String
}

/// How a column is stored: the same on both databases, up to these equivalences: SQLite's INTEGER
/// 0/1 is PostgreSQL's BOOLEAN, its REAL (DOUBLE) is DOUBLE PRECISION, its BLOB is BYTEA.
enum TransferColumnType: Sendable {
    case text, double, int32, int64, boolean, blob
}

struct TransferColumn: Sendable {
    let name: String
    let type: TransferColumnType
    let nullable: Bool
}

/// One value as copied and hashed. Booleans are `.integer(0)` / `.integer(1)`.
enum TransferValue: Sendable, Equatable {
    case null
    case integer(Int64)
    case double(Double)
    case text(String)
    case blob([UInt8])
}

struct TransferTable: Sendable {
    let name: String
    let columns: [TransferColumn]
    let primaryKey: [String]
    /// The one row the schema creates in this table, if any.
    let seed: [TransferValue]?

    init(_ name: String, key: [String], _ columns: [(String, TransferColumnType, Bool)], seed: [TransferValue]? = nil) {
        self.name = name
        self.columns = columns.map { TransferColumn(name: $0.0, type: $0.1, nullable: $0.2) }
        self.primaryKey = key
        self.seed = seed
    }

    var columnList: String { columns.map(\.name).joined(separator: ", ") }

    /// Refuses a row whose values do not fit the column types (each side's reader produces only
    /// fitting values; this guards the writer all the same).
    func check(_ row: [TransferValue]) throws {
        guard row.count == columns.count else {
            throw DatabaseTransferError.unexpectedValue(table: name, column: "*", detail: "has \(row.count) values, expected \(columns.count)")
        }
        for (value, column) in zip(row, columns) {
            let fits: Bool
            switch (value, column.type) {
            case (.null, _): fits = column.nullable
            case (.text, .text), (.double, .double), (.blob, .blob), (.integer, .int64): fits = true
            case (.integer(let number), .int32): fits = Int32(exactly: number) != nil
            case (.integer(let number), .boolean): fits = number == 0 || number == 1
            default: fits = false
            }
            guard fits else {
                throw DatabaseTransferError.unexpectedValue(table: name, column: column.name, detail: "holds \(value.kind), expected \(column.type)")
            }
        }
    }
}

extension TransferValue {
    var kind: String {
        switch self {
        case .null: "NULL"
        case .integer: "an integer"
        case .double: "a floating-point number"
        case .text: "text"
        case .blob: "binary data"
        }
    }

    /// The canonical encoding hashed for verification: a tag byte, then a fixed-width big-endian
    /// number or a length-prefixed byte string. Doubles by their IEEE 754 bits (-0 as +0, which
    /// SQLite does not keep apart), text as UTF-8, booleans as the integers 0 and 1.
    func encode(into bytes: inout [UInt8]) {
        switch self {
        case .null:
            bytes.append(0)
        case .integer(let number):
            bytes.append(1)
            Self.append(UInt64(bitPattern: number), to: &bytes)
        case .double(let number):
            bytes.append(2)
            Self.append((number == 0 ? 0.0 : number).bitPattern, to: &bytes)
        case .text(let text):
            bytes.append(3)
            Self.append(UInt64(text.utf8.count), to: &bytes)
            bytes.append(contentsOf: text.utf8)
        case .blob(let data):
            bytes.append(4)
            Self.append(UInt64(data.count), to: &bytes)
            bytes.append(contentsOf: data)
        }
    }

    static func append(_ number: UInt64, to bytes: inout [UInt8]) {
        for shift in stride(from: 56, through: 0, by: -8) { bytes.append(UInt8(truncatingIfNeeded: number >> UInt64(shift))) }
    }
}

/// Builds a table's digest row by row (in primary-key order).
struct TableDigester {
    private var hasher = StreamingSHA256()
    private(set) var rows = 0

    init(_ table: TransferTable) {
        var header: [UInt8] = []
        TransferValue.text("auto-ssl table v1").encode(into: &header)
        TransferValue.text(table.name).encode(into: &header)
        for column in table.columns { TransferValue.text(column.name).encode(into: &header) }
        hasher.update(header)
    }

    mutating func add(_ row: [TransferValue]) {
        var bytes: [UInt8] = [0x52]
        TransferValue.append(UInt64(row.count), to: &bytes)
        for value in row { value.encode(into: &bytes) }
        hasher.update(bytes)
        rows += 1
    }

    var digest: TableDigest { TableDigest(rows: rows, sha256: hasher.hex()) }

    /// The digest of rows given at once (for tests and small tables).
    static func digest(_ table: TransferTable, rows: [[TransferValue]]) -> TableDigest {
        var digester = TableDigester(table)
        for row in rows { digester.add(row) }
        return digester.digest
    }
}

/// Where rows come from. `readRows` delivers every row of a table in batches; `digest` hashes the
/// same rows in primary-key order.
protocol TransferSource: Sendable {
    var location: String { get }
    func readRows(_ table: TransferTable, batchSize: Int, _ body: ([[TransferValue]]) async throws -> Void) async throws
    func digest(_ table: TransferTable) async throws -> TableDigest
    /// Throws `sourceChanged` when the live database no longer matches what was copied.
    func confirmUnchanged(_ digests: [(TransferTable, TableDigest)]) async throws
}

/// Where rows go.
protocol TransferTarget: Sendable {
    var location: String { get }
    /// Rows of the table other than its schema-created seed row.
    func occupiedRows(_ table: TransferTable) async throws -> Int
    /// Deletes every row of the table (only called for a table holding at most its seed row).
    func clear(_ table: TransferTable) async throws
    func insert(_ table: TransferTable, rows: [[TransferValue]]) async throws
    func digest(_ table: TransferTable) async throws -> TableDigest
    /// Runs SQL on the target inside the transfer (tests: damage a row before verification).
    func executeForTesting(_ sql: String) async throws
}
