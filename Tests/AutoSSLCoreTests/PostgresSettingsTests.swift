import AutoSSLCore
import Testing

@Suite struct PostgresSettingsTests {
    let location = PostgresLocation(user: "autossl", host: "db.internal", port: 5432, database: "ca")

    @Test func theFirstMatchingPasswordFileLineWinsWithWildcardsAndEscapes() {
        let text = """
            # comment
            other.internal:5432:ca:autossl:not-this-one
            db.internal:5432:ca:autossl:with\\:colon\\\\backslash:and-colons
            *:*:*:*:fallback
            """
        #expect(PGPassFile.password(for: location, in: text) == "with:colon\\backslash:and-colons")
        #expect(PGPassFile.password(for: PostgresLocation(user: "x", host: "y", database: "z"), in: text) == "fallback")
        #expect(PGPassFile.password(for: location, in: "db.internal:5433:ca:autossl:wrong-port\n") == nil)
        #expect(PGPassFile.password(for: location, in: "db.internal:5432:ca\n") == nil)
        #expect(PGPassFile.password(for: location, in: "db.internal:*:ca:autossl:any-port\r\n") == "any-port")
    }

    @Test func aPasswordFileBeyondTheLimitIsNotRead() {
        let huge = String(repeating: "#", count: PGPassFile.maximumBytes) + "\n*:*:*:*:pw"
        #expect(PGPassFile.password(for: location, in: huge) == nil)
    }

    @Test func theURLNeedsUserHostAndDatabaseAndNeverAPassword() throws {
        let parsed = try PostgresLocation(url: "postgres://autossl@db.internal/ca")
        #expect(parsed == location && parsed.description == "postgres://autossl@db.internal:5432/ca")
        #expect(try PostgresLocation(url: "postgresql://u@[::1]:6543/d").description == "postgres://u@[::1]:6543/d")
        for bad in ["postgres://autossl:secret@db/ca", "postgres://db/ca", "postgres://u@db/", "postgres://u@db/a/b",
                    "postgres://u@db/ca?sslmode=disable", "mysql://u@db/ca", "postgres://u@db:0/ca", "postgres://u@db:70000/ca"] {
            #expect(throws: AutoSSLError.self) { try PostgresLocation(url: bad) }
        }
        do {
            _ = try PostgresLocation(url: "postgres://autossl:s3cret@db/ca")
        } catch let error as AutoSSLError {
            #expect(!error.message.contains("s3cret") && !(error.hint ?? "").contains("s3cret"))
        }
    }
}
