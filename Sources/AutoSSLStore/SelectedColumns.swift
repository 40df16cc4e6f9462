import GRDB

/// A SELECT list whose columns are read back by name at their position. GRDB's `Row` finds a
/// column by name by lowercasing the name and every column name before it, on each call: for the
/// rows every ACME request reads (account, order, authorizations, certificate) that was about 2 %
/// of the server's CPU (docs/benchmarks.md). Here the positions are worked out once, when the list
/// is made.
struct SelectedColumns: Sendable {
    /// The list to put after SELECT: each column's expression, with `AS` where its name differs.
    let sql: String
    /// How many columns the list has.
    let count: Int
    private let positions: [String: Int]

    /// `columns`: the expression each column is read from (`c.serial`, `a.id`) and the name it is
    /// decoded by (nil: the expression itself). Names are unique (a programming error otherwise).
    init(_ columns: [(expression: String, name: String?)]) {
        sql = columns.map { column in
            column.name.map { "\(column.expression) AS \($0)" } ?? column.expression
        }.joined(separator: ", ")
        var positions: [String: Int] = [:]
        for (index, column) in columns.enumerated() {
            let previous = positions.updateValue(index, forKey: column.name ?? column.expression)
            precondition(previous == nil, "\(column.name ?? column.expression) is twice in a SELECT list")
        }
        self.positions = positions
        count = columns.count
    }

    /// Columns by name: read as `alias.name` when an alias is given, decoded by the bare name.
    init(_ names: [String], of alias: String? = nil) {
        self.init(names.map { name in (expression: alias.map { "\($0).\(name)" } ?? name, name: alias == nil ? nil : name) })
    }

    /// Both lists, this one first.
    static func + (first: SelectedColumns, second: SelectedColumns) -> SelectedColumns {
        var positions = first.positions
        for (name, index) in second.positions {
            precondition(positions.updateValue(index + first.count, forKey: name) == nil, "\(name) is twice in a SELECT list")
        }
        return SelectedColumns(sql: first.sql + ", " + second.sql, count: first.count + second.count, positions: positions)
    }

    private init(sql: String, count: Int, positions: [String: Int]) {
        self.sql = sql
        self.count = count
        self.positions = positions
    }

    /// The value of column `name` in `row`, a row of this list: a row with another number of
    /// columns (of another SELECT) is an error, not a read at the wrong place.
    func decode<Value: DatabaseValueConvertible>(_ row: Row, _ name: String, as type: Value.Type = Value.self) throws -> Value {
        guard let index = positions[name], row.count == count else {
            throw DatabaseError(resultCode: .SQLITE_ERROR, message: "no column \(name) in the selected columns, or a row of another query")
        }
        return try row.decode(Value.self, atIndex: index)
    }
}
