import GRDB

extension Database {
    /// The prepared statement for `sql` from this connection's statement cache, with `arguments`
    /// bound (checked against the statement's placeholders). SQLite then parses and authorizes
    /// each query once per connection instead of once per call; under ACME load the parse and
    /// GRDB's authorizer were about 6 % of the server's CPU (docs/benchmarks.md).
    func cached(_ sql: String, _ arguments: StatementArguments = StatementArguments()) throws -> Statement {
        let statement = try cachedStatement(sql: sql)
        try statement.setArguments(arguments)
        return statement
    }
}
