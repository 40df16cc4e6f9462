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
                    "postgres://u@db/ca?password=x", "mysql://u@db/ca", "postgres://u@db:0/ca", "postgres://u@db:70000/ca"] {
            #expect(throws: AutoSSLError.self) { try PostgresLocation(url: bad) }
        }
        do {
            _ = try PostgresLocation(url: "postgres://autossl:s3cret@db/ca")
        } catch let error as AutoSSLError {
            #expect(!error.message.contains("s3cret") && !(error.hint ?? "").contains("s3cret"))
        }
    }

    @Test func aRemoteServerIsVerifiedByDefaultAndOnlyLoopbackIsPlainByDefault() throws {
        #expect(try PostgresLocation(url: "postgres://u@db.internal/ca").tls == .verifyFull)
        #expect(try PostgresLocation(url: "postgres://u@10.0.0.7/ca").tls == .verifyFull)
        #expect(try PostgresLocation(url: "postgres://u@[fd00::7]/ca").tls == .verifyFull)
        for loopback in ["127.0.0.1", "127.3.2.1", "localhost", "LOCALHOST", "[::1]", "[0:0:0:0:0:0:0:1]"] {
            #expect(try PostgresLocation(url: "postgres://u@\(loopback)/ca").tls == .disable, "\(loopback)")
        }
        // A name that only looks like loopback is remote.
        #expect(try PostgresLocation(url: "postgres://u@localhost.example/ca").tls == .verifyFull)
        #expect(try PostgresLocation(url: "postgres://u@128.0.0.1/ca").tls == .verifyFull)
    }

    @Test func sslModeAndRootsReadBackFromTheirCanonicalURL() throws {
        let cases: [(String, PostgresTLSMode, String?, String)] = [
            ("postgres://u@db/ca?sslmode=verify-full&sslrootcert=/etc/auto-ssl/pg.pem", .verifyFull, "/etc/auto-ssl/pg.pem",
             "postgres://u@db:5432/ca?sslrootcert=/etc/auto-ssl/pg.pem"),
            ("postgres://u@db/ca?sslrootcert=/etc/pg.pem&sslmode=verify-ca", .verifyCA, "/etc/pg.pem",
             "postgres://u@db:5432/ca?sslmode=verify-ca&sslrootcert=/etc/pg.pem"),
            ("postgres://u@db/ca?sslmode=disable", .disable, nil, "postgres://u@db:5432/ca?sslmode=disable"),
            ("postgres://u@db/ca?sslmode=require", .require, nil, "postgres://u@db:5432/ca?sslmode=require"),
            ("postgres://u@db/ca?sslmode=verify-full&sslrootcert=system", .verifyFull, nil, "postgres://u@db:5432/ca"),
            ("postgres://u@127.0.0.1:6000/ca?sslmode=verify-full&sslrootcert=/tmp/r.pem", .verifyFull, "/tmp/r.pem",
             "postgres://u@127.0.0.1:6000/ca?sslmode=verify-full&sslrootcert=/tmp/r.pem"),
            ("postgres://u@127.0.0.1/ca?sslmode=disable", .disable, nil, "postgres://u@127.0.0.1:5432/ca"),
            // A roots file without a mode asks for the full checks, even on loopback.
            ("postgres://u@127.0.0.1/ca?sslrootcert=/etc/pg.pem", .verifyFull, "/etc/pg.pem",
             "postgres://u@127.0.0.1:5432/ca?sslmode=verify-full&sslrootcert=/etc/pg.pem"),
            // So does `system` (the system's roots) without a mode: it is not dropped.
            ("postgres://u@localhost/ca?sslrootcert=system", .verifyFull, nil, "postgres://u@localhost:5432/ca?sslmode=verify-full"),
        ]
        for (url, mode, root, canonical) in cases {
            let parsed = try PostgresLocation(url: url)
            #expect(parsed.tls == mode && parsed.rootCertificateFile == root, "\(url)")
            #expect(parsed.description == canonical)
            #expect(try PostgresLocation(url: parsed.description) == parsed)
        }
    }

    @Test func sslSettingsThatWouldWeakenOrConfuseAreRefusedWithTheFix() throws {
        let refused: [(String, String)] = [
            ("postgres://u@db/ca?sslmode=prefer", "falls back"),
            ("postgres://u@db/ca?sslmode=allow", "falls back"),
            ("postgres://u@db/ca?sslmode=verify", "must be"),
            ("postgres://u@db/ca?sslmode=disable&sslmode=verify-full", "twice"),
            ("postgres://u@db/ca?sslrootcert=/a.pem&sslrootcert=/b.pem", "twice"),
            ("postgres://u@db/ca?sslmode=require&sslrootcert=/a.pem", "does not check"),
            ("postgres://u@db/ca?sslmode=disable&sslrootcert=/a.pem", "does not check"),
            ("postgres://u@127.0.0.1/ca?sslmode=disable&sslrootcert=system", "does not check"),
            ("postgres://u@db/ca?sslrootcert=roots.pem", "absolute path"),
            ("postgres://u@db/ca?sslrootcert=/etc/../root/x.pem", "absolute path"),
            ("postgres://u@db/ca?sslrootcert=/etc/a%20b.pem", "absolute path"),
            ("postgres://u@db/ca?sslrootcert=", "absolute path"),
            ("postgres://u@db/ca?sslmode=verify-full&", "only sslmode"),
            ("postgres://u@db/ca?sslpassword=hunter2", "only sslmode"),
        ]
        for (url, words) in refused {
            do {
                _ = try PostgresLocation(url: url)
                Issue.record("accepted \(url)")
            } catch let error as AutoSSLError {
                #expect(error.message.contains(words), "\(url): \(error.message)")
                #expect(!error.message.contains("hunter2") && !(error.hint ?? "").contains("hunter2"))
            }
        }
    }
}
