import PostgresNIO

/// A row whose shape is not the query's: fewer columns than the statement selects. PostgresNIO's
/// `decode` checks the column count with a `precondition`, so a server (or anything between it
/// and the CA) answering with fewer would stop the process; `checkedDecode` throws this instead.
struct PostgresRowShapeError: Error, CustomStringConvertible {
    var expected: Int
    var received: Int
    var description: String {
        "the database answered with \(received) column(s) where the query selects \(expected); is this auto-ssl's PostgreSQL database?"
    }
}

extension PostgresRow {
    /// One column, after checking the row has one.
    func checkedDecode<Column: PostgresDecodable>(_ type: Column.Type, file: String = #fileID, line: Int = #line) throws -> Column {
        guard count >= 1 else { throw PostgresRowShapeError(expected: 1, received: count) }
        return try decode(type, file: file, line: line)
    }

    /// Several columns, after checking the row has as many.
    func checkedDecode<each Column: PostgresDecodable>(
        _ type: (repeat each Column).Type, file: String = #fileID, line: Int = #line
    ) throws -> (repeat each Column) {
        var expected = 0
        for _ in repeat (each Column).self { expected += 1 }
        guard count >= expected else { throw PostgresRowShapeError(expected: expected, received: count) }
        return try decode(type, context: .default, file: file, line: line)
    }
}

extension PostgresRowSequence {
    /// Each row through `PostgresRow.checkedDecode`.
    func checkedDecode<Column: PostgresDecodable>(_ type: Column.Type, file: String = #fileID, line: Int = #line)
        -> AsyncThrowingMapSequence<PostgresRowSequence, Column>
    {
        map { try $0.checkedDecode(type, file: file, line: line) }
    }

    func checkedDecode<each Column: PostgresDecodable>(
        _ type: (repeat each Column).Type, file: String = #fileID, line: Int = #line
    ) -> AsyncThrowingMapSequence<PostgresRowSequence, (repeat each Column)> {
        map { try $0.checkedDecode(type, file: file, line: line) }
    }
}
