import Foundation
import GRDB
import Testing

@testable import AutoSSLStore

struct SelectedColumnsTests {
    @Test func columnsAreReadByNameAtTheirPositionInTheList() throws {
        let columns = SelectedColumns(["id", "name"], of: "t") + SelectedColumns([(expression: "u.id", name: "u_id"), (expression: "u.score", name: nil)])
        #expect(columns.sql == "t.id AS id, t.name AS name, u.id AS u_id, u.score")
        #expect(columns.count == 4)
        let queue = try DatabaseQueue()
        try queue.write { db in
            try db.execute(sql: """
                CREATE TABLE t (name TEXT, id TEXT);
                CREATE TABLE u (score DOUBLE, id TEXT, t_id TEXT);
                INSERT INTO t VALUES ('first', 'a');
                INSERT INTO u VALUES (2.5, 'b', 'a');
                """)
            let row = try #require(try Row.fetchOne(db, sql: "SELECT \(columns.sql) FROM t JOIN u ON u.t_id = t.id"))
            // The tables' own column order differs from the list's: positions come from the list.
            #expect(try columns.decode(row, "id", as: String.self) == "a")
            #expect(try columns.decode(row, "name", as: String.self) == "first")
            #expect(try columns.decode(row, "u_id", as: String.self) == "b")
            #expect(try columns.decode(row, "u.score", as: Double.self) == 2.5)
            #expect(throws: DatabaseError.self) { try columns.decode(row, "score", as: Double.self) }
            // A row of another SELECT, shorter or longer, is an error, not a read at the wrong place.
            let short = try #require(try Row.fetchOne(db, sql: "SELECT id FROM t"))
            #expect(throws: DatabaseError.self) { try columns.decode(short, "id", as: String.self) }
            let long = try #require(try Row.fetchOne(db, sql: "SELECT \(columns.sql), 1 FROM t JOIN u ON u.t_id = t.id"))
            #expect(throws: DatabaseError.self) { try columns.decode(long, "id", as: String.self) }
        }
    }
}
