import Foundation
import Testing
import TestSupport

#if canImport(Glibc)
import Glibc
#endif

/// `ca database migrate` through the built binary: a CA on SQLite with certificates from our client,
/// a revocation, ACME accounts, orders and certificates (an independent Python client), an EAB key
/// and used tokens goes to a PostgreSQL server started by the tests and back, and every table of
/// its SQLite file (read with Python's sqlite3, not our code) is the same afterwards. Refused: while
/// the CA runs (exit 7, and `ca serve` while the lock is held), with a wrong password (exit 5), a
/// password file others can read (exit 4), and into a database that holds records (exit 1); each
/// time config.yaml and the SQLite file stay as they were.
@Suite(.serialized) struct DatabaseMigrationEndToEndTests {
    static var available: Bool { TemporaryPostgres.isAvailable && ACMEEndToEndTests.haveClients }

    /// Every copied table of an SQLite file, in primary-key order, values as Python reads them.
    static func dump(_ path: String) throws -> String {
        let result = try runPython("""
            import json, sqlite3, sys
            order = {"certificates": "serial", "revocations": "serial", "revoked_keys": "key_hash", "used_tokens": "expires_at, id",
                     "crl_state": "id", "acme_keys": "name", "acme_accounts": "id", "acme_eab_keys": "kid", "acme_orders": "id",
                     "acme_authorizations": "id", "acme_challenges": "id"}
            db = sqlite3.connect("file:" + sys.argv[1] + "?mode=ro", uri=True)
            out = {}
            for table, key in order.items():
                rows = db.execute(f"SELECT * FROM {table} ORDER BY {key}").fetchall()
                out[table] = [[v.hex() if isinstance(v, bytes) else repr(v) for v in row] for row in rows]
            print(json.dumps(out, sort_keys=True))
            """, arguments: [path])
        guard result.status == 0 else { throw TestFailure("sqlite3 dump: \(result)") }
        return result.stdout
    }

    static func rowCounts(_ dump: String) throws -> [String: Int] {
        let object = try JSONSerialization.jsonObject(with: Data(dump.utf8)) as? [String: [Any]] ?? [:]
        return object.mapValues(\.count)
    }

    @Test(.enabled(if: available, "needs PostgreSQL, pebble-challtestsrv and Python (CI installs them)"))
    func sqliteToPostgreSQLAndBackKeepsEveryRow() throws {
        let setup = try ACMEEndToEndTests.Setup()
        let ca = setup.ca
        let sandbox = ca.sandbox
        let fingerprint = try ca.fingerprint
        let database = sandbox.caDir + "/db/auto-ssl.sqlite"
        let config = sandbox.configDir + "/config.yaml"

        // Records made the way the CA makes them.
        var serials: [String] = []
        for name in ["one", "two", "three"] {
            let issued = try sandbox.run([
                "cert", "issue", "--ca-url", ca.url, "--fingerprint", fingerprint, "--san", "\(name).internal",
                "--out-cert", setup.file(name + ".crt"), "--out-key", setup.file(name + ".key"),
                "--password-file", sandbox.configDir + "/provisioner-password",
            ])
            #expect(issued.status == 0, "\(issued)")
            serials.append(try setup.serial(setup.file(name + ".crt")))
        }
        let revoked = try sandbox.run(["ca", "revoke", serials[1], "--reason-code", "1", "--reason", "key compromise"])
        #expect(revoked.status == 0, "\(revoked)")
        let acme = try runProcess("python3", [
            ACMEEndToEndTests.resources + "/acme_client.py", setup.directory, setup.root, "\(setup.http01Port)", "bench", "2",
        ])
        #expect(acme.status == 0, "\(acme)")
        let eab = try sandbox.run(["ca", "provisioner", "eab", "add", "acme", "--json"])
        #expect(eab.status == 0, "\(eab)")

        // The lock: refused while the CA runs (exit 7), and the CA refused while it is held.
        let whileRunning = try sandbox.run(["ca", "database", "migrate", "--to", "postgres://nobody@127.0.0.1:1/none"])
        #expect(whileRunning.status == 7, "\(whileRunning)")
        #expect(whileRunning.stderr.contains("the CA is running on this machine; stop it (systemctl stop auto-ssl-ca) and run again"))
        #expect(ca.stop() == 0)
        let lockFile = sandbox.caDir + "/db/.serve.lock"
        let held = open(lockFile, O_RDWR)
        #expect(held >= 0 && flock(held, LOCK_EX | LOCK_NB) == 0, "the lock is free once the CA stopped")
        let serveWhileLocked = try sandbox.run(["ca", "serve"])
        #expect(serveWhileLocked.status == 7 && serveWhileLocked.stderr.contains("being migrated"), "\(serveWhileLocked)")
        close(held)

        let before = try Self.dump(database)
        let counts = try Self.rowCounts(before)
        #expect(counts["certificates"] ?? 0 >= 5 && counts["revocations"] == 1 && counts["acme_accounts"] == 1, "\(counts)")
        // A CA on SQLite keeps its nonce key in memory (docs/acme.md), so acme_keys is empty here;
        // DatabaseTransferTests carries rows through that table.
        #expect(counts["acme_orders"] == 2 && counts["acme_eab_keys"] == 1 && counts["acme_keys"] == 0, "\(counts)")
        #expect(counts["used_tokens"] ?? 0 >= 3, "\(counts)")
        let listed = try sandbox.run(["ca", "certs", "list", "--json"]).stdout
        let listedRevoked = try sandbox.run(["ca", "certs", "list", "--revoked", "--json"]).stdout
        #expect(listedRevoked.contains("\"revoked"), "\(listedRevoked)")
        let configBefore = try readFile(config)

        let server = try TemporaryPostgres.shared.get()
        let pgDatabase = try server.makeDatabase("migrate")
        let url = server.url(database: pgDatabase)
        let passwordFile = try sandbox.root.write("database-password", server.password + "\n", mode: 0o600)
        func unchanged(_ result: ProcessResult, _ what: String) throws {
            #expect(try readFile(config) == configBefore, "\(what): config.yaml changed")
            #expect(try Self.dump(database) == before, "\(what): the SQLite database changed")
            #expect(!result.stdout.contains(server.password) && !result.stderr.contains(server.password), "\(what): the password was shown")
        }

        // A password file others can read is refused before anything is opened.
        let readable = try sandbox.root.write("readable-password", server.password + "\n", mode: 0o644)
        let loose = try sandbox.run(["ca", "database", "migrate", "--to", url, "--database-password-file", readable])
        #expect(loose.status == 4 && loose.stderr.contains("0600"), "\(loose)")
        try unchanged(loose, "a readable password file")
        // A wrong password: PostgreSQL's answer, in words.
        let wrongFile = try sandbox.root.write("wrong-password", "not-the-password\n", mode: 0o600)
        let wrong = try sandbox.run(["ca", "database", "migrate", "--to", url, "--database-password-file", wrongFile])
        #expect(wrong.status == 5 && wrong.stderr.contains("password authentication failed"), "\(wrong)")
        #expect(wrong.stderr.contains("nothing was changed"), "\(wrong)")
        try unchanged(wrong, "a wrong password")

        // To PostgreSQL, the password file named relative to the current directory (the sandbox's
        // root): config.yaml records its absolute path, which `ca serve` needs from any directory.
        #expect(passwordFile == sandbox.root.path + "/database-password")
        let toPostgres = try sandbox.run(["ca", "database", "migrate", "--to", url, "--database-password-file", "database-password", "--json"])
        #expect(toPostgres.status == 0, "\(toPostgres)")
        let outcome = try JSONSerialization.jsonObject(with: Data(toPostgres.stdout.utf8)) as? [String: Any] ?? [:]
        let tables = (outcome["tables"] as? [[String: Any]] ?? []).reduce(into: [String: Int]()) { $0[$1["table"] as? String ?? ""] = $1["rows"] as? Int }
        #expect(tables == counts, "every table copied, as many rows as Python counts: \(toPostgres.stdout)")
        let kept = try #require(outcome["kept_file"] as? String)
        #expect(kept.hasPrefix(database + ".migrated-to-postgres-"))
        #expect(try Self.dump(kept) == before, "the SQLite file is kept as it was")
        #expect(!FileManager.default.fileExists(atPath: database))
        let pgConfig = try readFile(config)
        #expect(pgConfig.contains("url: postgres://autossl@127.0.0.1:\(server.port)/") && pgConfig.contains("password_file: \(passwordFile)"), "\(pgConfig)")
        #expect(!pgConfig.contains(server.password))
        #expect(try sandbox.run(["ca", "certs", "list", "--json"]).stdout == listed, "the CA lists the same certificates from PostgreSQL")
        #expect(try sandbox.run(["ca", "certs", "list", "--revoked", "--json"]).stdout == listedRevoked)
        let audit = try readFile(sandbox.dataDir + "/audit.log")
        #expect(audit.contains("\"event\":\"database.migrated\""), "\(audit)")

        // Back to SQLite (the password now comes from the file recorded in config.yaml). A partial
        // copy an interrupted run left behind is removed first.
        let leftover = (database as NSString).deletingLastPathComponent + "/.auto-ssl.sqlite.migrating-abcd1234"
        for suffix in ["", "-wal"] { try "partial".write(toFile: leftover + suffix, atomically: false, encoding: .utf8) }
        // A switch that fails after the copy (here: the settings lock cannot be taken, a directory
        // is in its place) takes the PostgreSQL database out of retirement again, so the CA,
        // which config.yaml still puts on PostgreSQL, can start on it.
        let settingsLock = sandbox.configDir + "/.settings.lock"
        unlink(settingsLock)
        try FileManager.default.createDirectory(atPath: settingsLock, withIntermediateDirectories: false)
        let failedSwitch = try sandbox.run(["ca", "database", "migrate", "--to", "sqlite"])
        #expect(failedSwitch.status == 1 && failedSwitch.stderr.contains("the switch to SQLite failed"), "\(failedSwitch)")
        #expect(!FileManager.default.fileExists(atPath: database), "the SQLite copy was deleted again")
        #expect(try server.query("SELECT coalesce(retired_at::text, 'none') FROM ca_identity", database: pgDatabase).contains("none"))
        #expect(try sandbox.run(["ca", "certs", "list", "--json"]).stdout == listed, "the CA still works on PostgreSQL")
        try FileManager.default.removeItem(atPath: settingsLock)

        let toSQLite = try sandbox.run(["ca", "database", "migrate", "--to", "sqlite"])
        #expect(toSQLite.status == 0, "\(toSQLite)")
        #expect(!FileManager.default.fileExists(atPath: leftover) && !FileManager.default.fileExists(atPath: leftover + "-wal"))
        #expect(toSQLite.stdout.contains("Verified") && toSQLite.stdout.contains("start the CA"), "\(toSQLite.stdout)")
        #expect(try Self.dump(database) == before, "every row of every table is back, value for value")
        #expect(fileMode(database) == 0o600)
        let sqliteConfig = try readFile(config)
        #expect(!sqliteConfig.contains("postgres://") && !sqliteConfig.contains("password_file: \(passwordFile)"), "\(sqliteConfig)")
        #expect(try sandbox.run(["ca", "certs", "list", "--json"]).stdout == listed)
        #expect(try sandbox.run(["ca", "certs", "list", "--revoked", "--json"]).stdout == listedRevoked)

        // The PostgreSQL database still holds the records: migrating into it again is refused.
        let again = try sandbox.run(["ca", "database", "migrate", "--to", url, "--database-password-file", passwordFile])
        #expect(again.status == 1 && again.stderr.contains("not empty") && again.stderr.contains("certificates"), "\(again)")
        #expect(try readFile(config) == sqliteConfig)
        #expect(try Self.dump(database) == before)

        // Going back to SQLite is refused while a file is in the way.
        let configured = sqliteConfig.replacingOccurrences(
            of: "ca:\n", with: "ca:\n  database:\n    url: \(url)\n    password_file: \(passwordFile)\n")
        if configured != sqliteConfig {
            try configured.write(toFile: config, atomically: true, encoding: .utf8)
            let inTheWay = try sandbox.run(["ca", "database", "migrate", "--to", "sqlite"])
            #expect(inTheWay.status == 1 && inTheWay.stderr.contains("already exist"), "\(inTheWay)")
            #expect(inTheWay.stderr.contains("-wal and -shm files aside together"), "\(inTheWay)")
            #expect(try Self.dump(database) == before)
            try sqliteConfig.write(toFile: config, atomically: true, encoding: .utf8)
        }

        // The CA starts on the database it came back to.
        try ca.restart()
        #expect(ca.stop() == 0)
    }
}
