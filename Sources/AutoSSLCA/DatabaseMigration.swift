import AutoSSLConfig
import AutoSSLCore
import AutoSSLIO
import AutoSSLStore
import Foundation
import Logging

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// `ca database migrate`: moves the CA's records from its SQLite file to a PostgreSQL database or
/// back, with the CA stopped (`CALock`), every row copied and verified (`DatabaseTransfer`), and
/// config.yaml switched only once the copy is verified. Nothing the CA had is deleted: the SQLite
/// file left behind by a move to PostgreSQL is renamed and kept, and a move back to SQLite leaves
/// the PostgreSQL database as it was.
public struct DatabaseMigration: Sendable {
    public let directories: Directories
    let logger: Logger

    public init(directories: Directories, logger: Logger = Logger(label: "auto-ssl.ca.migrate")) {
        self.directories = directories
        self.logger = logger
    }

    public enum Kind: String, Sendable, Codable {
        case postgres
        case sqlite
    }

    /// What a migration did.
    public struct Outcome: Sendable, Codable {
        /// Where the CA's records are now.
        public var to: Kind
        /// The database copied from and the one copied to (locations, never passwords).
        public var source: String
        public var target: String
        /// Rows and SHA-256 of every copied table, equal on both sides.
        public var tables: [DatabaseTransfer.TableReport]
        public var totalRows: Int
        /// The password file recorded in config.yaml (moves to PostgreSQL with one given).
        public var passwordFile: String?
        /// The SQLite file kept after a move to PostgreSQL (renamed, not deleted).
        public var keptFile: String?
        /// Things that went wrong after the switch, which do not undo it.
        public var warnings: [String]

        enum CodingKeys: String, CodingKey {
            case to, source, target, tables, warnings
            case totalRows = "total_rows"
            case passwordFile = "password_file"
            case keptFile = "kept_file"
        }
    }

    static let unchanged = "nothing was changed: config.yaml still names the database the CA used"

    /// The SQLite database's file name in the CA's database directory.
    public static let sqliteName = "auto-ssl.sqlite"

    // MARK: - SQLite → PostgreSQL

    /// Copies the SQLite database into the (empty) PostgreSQL database at `url`, then records the
    /// database in config.yaml (with `passwordFile` when one was given) and renames the SQLite file
    /// to `auto-ssl.sqlite.migrated-to-postgres-<time>`.
    public func toPostgres(url: String, passwordFile: String?, now: Date = Date()) async throws -> Outcome {
        let location = try PostgresLocation(url: url)
        if let passwordFile {
            // config.yaml records it for `ca serve`, which refuses a relative path.
            guard passwordFile.hasPrefix("/") else {
                throw AutoSSLError.invalidArgument("the database password file must be given as an absolute path, not \(passwordFile); nothing was changed")
            }
            try Self.checkPasswordFile(passwordFile)
        }
        let loader = AuthorityLoader(directories: directories)
        let lock = try CALock.migrating(try loader.settings())
        defer { lock.release() }
        // Read again under the lock: another migration may have finished just before it.
        let settings = try loader.settings()
        if let database = settings.database {
            throw AutoSSLError.general(
                "the CA already keeps its records in PostgreSQL (\(database.displayURL)); nothing was changed",
                hint: "to move them back to SQLite: auto-ssl ca database migrate --to sqlite")
        }
        let password = try loader.databasePassword(
            explicitFile: passwordFile, settings: DatabaseSettings(url: location.description, passwordFile: nil), location: location)
        // (A CA that never ran has no file yet: it is created empty and migrated as such.)
        try FileOperations.makeDirectory(settings.paths.databaseDir, mode: 0o700)
        let sqlitePath = settings.paths.databaseDir + "/" + Self.sqliteName
        let rootFingerprint = try Fingerprint.sha256(
            of: try CAStatusReport.loadCertificate(settings.paths.rootCertificate, what: "root certificate"))

        let target: CADatabase
        do {
            target = try await CADatabase.openPostgres(location, password: password, logger: logger)
        } catch let error as AutoSSLError {
            throw AutoSSLError(error.kind, error.message + "; " + Self.unchanged, hint: error.hint)
        }
        let reports: [DatabaseTransfer.TableReport]
        do {
            // Refused before anything is written to it (the copy checks again, under its lock).
            let occupied = try await DatabaseTransfer.occupiedRows(in: target, logger: logger)
            if let table = DatabaseTransfer.tableNames.first(where: { occupied[$0] != nil }), let rows = occupied[table] {
                throw DatabaseTransferError.targetNotEmpty(table: table, rows: rows, target: location.description)
            }
            if let state = target.replicated {
                // The database becomes this CA's, as with `ca init --database`: refused when it is
                // another CA's; bound to this one, with this machine's provisioners and policy in
                // force, before the records go in (a failed copy can then simply be run again).
                if let bound = try await state.boundRootFingerprint(), bound != rootFingerprint {
                    throw AutoSSLError.general(
                        "the database \(location) belongs to another CA (root \(bound))",
                        hint: "give a new, empty database for this CA")
                }
                try await state.bind(rootFingerprint: rootFingerprint, caName: settings.name, now: now)
                let revision = try await state.sharedSettings()?.revision
                try await SharedSettingsSync(directories: directories, logger: logger).publish(state, expectedRevision: revision, now: now)
            }
            let source = try CADatabase.openSQLite(path: sqlitePath, logger: logger)
            do {
                reports = try await DatabaseTransfer.copy(from: source, to: target, logger: logger)
                try await source.close()
            } catch {
                try? await source.close()
                throw error
            }
            await AdminEventLog.record(
                target, event: "database.migrated", detail: "from \(sqlitePath): \(reports.reduce(0) { $0 + $1.rows }) rows", now: now)
            try await target.close()
        } catch {
            try? await target.close()
            throw Self.failure(error, hint: "the PostgreSQL database was left as it was (the copy is one transaction)")
        }

        // The copy is committed and verified: switch config.yaml, then move the old file aside.
        do {
            try SharedSettingsSync(directories: directories, logger: logger).updateLocalSettings {
                $0.database = DatabaseSettings(url: location.description, passwordFile: passwordFile)
            }
        } catch {
            throw AutoSSLError(
                .general,
                "the records were copied to \(location) and verified, but config.yaml could not be updated: \(Self.words(error)); "
                    + "the CA still uses \(sqlitePath)",
                hint: "fix the cause, empty the PostgreSQL database (its copy is complete but unused) and run the migration again")
        }
        var warnings: [String] = []
        var kept = sqlitePath + ".migrated-to-postgres-" + FileOperations.timestamp(now)
        // Never over an earlier kept file (two migrations within one second).
        for attempt in 2..<100 where FileOperations.exists(kept) {
            kept = sqlitePath + ".migrated-to-postgres-" + FileOperations.timestamp(now) + "-\(attempt)"
        }
        do {
            for suffix in ["-wal", "-shm"] where FileOperations.exists(sqlitePath + suffix) {
                try FileOperations.move(sqlitePath + suffix, to: kept + suffix)
            }
            try FileOperations.move(sqlitePath, to: kept)
        } catch {
            warnings.append(
                "the SQLite file \(sqlitePath) could not be renamed (\(Self.words(error))); the CA uses PostgreSQL now, "
                    + "move the file aside yourself before any migration back to SQLite")
        }
        let keptFile = FileOperations.exists(kept) ? kept : nil
        let outcome = Outcome(
            to: .postgres, source: sqlitePath, target: location.description, tables: reports,
            totalRows: reports.reduce(0) { $0 + $1.rows }, passwordFile: passwordFile, keptFile: keptFile, warnings: warnings)
        audit(outcome)
        return outcome
    }

    // MARK: - PostgreSQL → SQLite

    /// Copies the PostgreSQL database named in config.yaml into a new SQLite file, puts it in place
    /// as `auto-ssl.sqlite` and removes the database from config.yaml. Refused when that file exists.
    public func toSQLite(passwordFile: String?) async throws -> Outcome {
        let loader = AuthorityLoader(directories: directories)
        let lock = try CALock.migrating(try loader.settings())
        defer { lock.release() }
        let settings = try loader.settings()
        guard let database = settings.database else {
            throw AutoSSLError.general(
                "the CA already keeps its records in SQLite (\(settings.paths.databaseDir)/\(Self.sqliteName)); nothing was changed",
                hint: "to move them to PostgreSQL: auto-ssl ca database migrate --to postgres://USER@HOST/DATABASE")
        }
        let location = try PostgresLocation(url: database.url)
        let password = try loader.databasePassword(explicitFile: passwordFile, settings: database, location: location)
        let directory = settings.paths.databaseDir
        let finalPath = directory + "/" + Self.sqliteName
        // Refused rather than moved aside: a file there is not the CA's database (the CA uses
        // PostgreSQL), so what it is is for the operator to decide.
        // The database and its -wal and -shm files go together: the WAL may hold committed rows.
        let present = [finalPath, finalPath + "-wal", finalPath + "-shm"].filter(FileOperations.exists)
        if !present.isEmpty {
            let aside = directory + "/old-" + FileOperations.timestamp(Date())
            throw AutoSSLError.general(
                "\(present.joined(separator: ", ")) already exist\(present.count == 1 ? "s" : ""); \(Self.unchanged)",
                hint: "it is not the database the CA uses now; move the database and its -wal and -shm files aside together (mkdir \(aside) && mv \(present.joined(separator: " ")) \(aside)/) and run again")
        }
        try FileOperations.makeDirectory(directory, mode: 0o700)
        // A partial copy left by an interrupted run (this run holds the migration lock, so no other
        // is writing one) is removed first.
        for name in (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        where name.hasPrefix(".\(Self.sqliteName).migrating-") {
            unlink(directory + "/" + name)
        }
        let staging = directory + "/.\(Self.sqliteName).migrating-" + Passwords.generate(length: 8)
        func removeStaging() {
            for suffix in ["", "-wal", "-shm", "-journal"] { unlink(staging + suffix) }
        }

        let source: CADatabase
        do {
            source = try await CADatabase.openPostgres(location, password: password, logger: logger)
        } catch let error as AutoSSLError {
            throw AutoSSLError(error.kind, error.message + "; " + Self.unchanged, hint: error.hint)
        }
        let reports: [DatabaseTransfer.TableReport]
        do {
            if let state = source.replicated {
                try await ReplicaPresence.checkNoneAlive(state)
                // Retired before the copy: a replica that starts (or was cut off and comes back)
                // from now on refuses the database instead of writing records the copy would miss.
                try await state.setRetired(true, now: Date())
            }
            let target = try CADatabase.openSQLite(path: staging, logger: logger)
            do {
                reports = try await DatabaseTransfer.copy(from: source, to: target, logger: logger)
                if let store = target.certificates as? SQLiteCertificateStore { try await store.checkpoint() }
                try await target.close()
            } catch {
                try? await target.close()
                throw error
            }
            try Self.settle(staging)
        } catch {
            try? await source.replicated?.setRetired(false, now: Date())
            try? await source.close()
            removeStaging()
            throw Self.failure(error, hint: "the PostgreSQL database was only read; the partial SQLite copy was deleted")
        }

        // Into place without replacing anything (link fails when the name was taken meanwhile).
        guard link(staging, finalPath) == 0 else {
            let error = FileOperations.systemError(errno, "put the new database in place at \(finalPath)")
            try? await source.replicated?.setRetired(false, now: Date())
            try? await source.close()
            removeStaging()
            throw AutoSSLError(error.kind, error.message + "; " + Self.unchanged, hint: error.hint)
        }
        removeStaging()
        do {
            try FileOperations.syncDirectory(directory)
            // A CA on PostgreSQL keeps its provisioners and policy in the database: the ones in
            // force there become this machine's (config.yaml and key files) as it leaves it.
            if let state = source.replicated { try await SharedSettingsSync(directories: directories, logger: logger).pull(state) }
            try SharedSettingsSync(directories: directories, logger: logger).updateLocalSettings { $0.database = nil }
        } catch {
            // config.yaml still names PostgreSQL: the database is taken out of retirement again
            // (through the connection still open), so the CA and its replicas can start on it.
            try? await source.replicated?.setRetired(false, now: Date())
            try? await source.close()
            unlink(finalPath)
            throw AutoSSLError(
                .general, "the switch to SQLite failed: \(Self.words(error)); config.yaml still names the PostgreSQL database",
                hint: "the SQLite copy was deleted again; fix the cause and run the migration again")
        }
        // The switch is made; a failure to close the connection changes nothing of it.
        try? await source.close()
        let outcome = Outcome(
            to: .sqlite, source: location.description, target: finalPath, tables: reports,
            totalRows: reports.reduce(0) { $0 + $1.rows }, passwordFile: nil, keptFile: nil, warnings: [])
        audit(outcome)
        return outcome
    }

    // MARK: - Helpers

    /// A database password file whose path is recorded (for `ca serve`): a regular file that only
    /// its owner can read. `ca init --database` and the migration hold it to the same rule.
    public static func checkPasswordFile(_ path: String) throws {
        var info = stat()
        guard stat(path, &info) == 0 else {
            throw AutoSSLError.invalidArgument("the database password file \(path) does not exist (or cannot be read); nothing was changed")
        }
        guard info.st_mode & S_IFMT == S_IFREG else {
            throw AutoSSLError.invalidArgument("the database password file \(path) is not a regular file; nothing was changed")
        }
        let mode = info.st_mode & 0o7777
        guard mode & 0o177 == 0 else {
            throw AutoSSLError(
                .permissionDenied,
                "refusing the database password file \(path): its mode is 0\(String(mode, radix: 8)), it must be 0600 or stricter; "
                    + "nothing was changed",
                hint: "run: chmod 600 \(path)")
        }
    }

    /// The new SQLite file alone must hold the database (its log checkpointed into it), private
    /// to its owner, on disk, before it is put in place.
    static func settle(_ path: String) throws {
        var info = stat()
        if stat(path + "-wal", &info) == 0, info.st_size > 0 {
            throw AutoSSLError.general("the new SQLite database \(path) still has a write-ahead log after closing")
        }
        unlink(path + "-wal")
        unlink(path + "-shm")
        guard chmod(path, 0o600) == 0 else { throw FileOperations.systemError(errno, "set the mode of \(path)") }
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw FileOperations.systemError(errno, "open \(path)") }
        defer { close(fd) }
        guard fsync(fd) == 0 else { throw FileOperations.systemError(errno, "flush \(path) to disk") }
    }

    static func words(_ error: any Error) -> String {
        if let error = error as? AutoSSLError { return error.message }
        return "\(error)"
    }

    /// A failed copy: what failed (which table, when the verification found it) and that nothing changed.
    static func failure(_ error: any Error, hint: String) -> AutoSSLError {
        switch error {
        case let transfer as DatabaseTransferError:
            if case .targetNotEmpty = transfer {
                return AutoSSLError(
                    .general, "the migration failed: \(transfer); \(unchanged)",
                    hint: "give a new, empty database (PostgreSQL's createdb), or empty this one if its records are not needed")
            }
            return AutoSSLError(.general, "the migration failed: \(transfer); \(unchanged)", hint: hint)
        case let error as AutoSSLError:
            return AutoSSLError(error.kind, "the migration failed: \(error.message); \(unchanged)", hint: error.hint ?? hint)
        case let store as StoreError:
            if case .unavailable(let reason) = store {
                return AutoSSLError(.network, "the migration failed: \(reason); \(unchanged)", hint: hint)
            }
            return AutoSSLError(.general, "the migration failed: \(store); \(unchanged)", hint: hint)
        default:
            return AutoSSLError(.general, "the migration failed: \(error); \(unchanged)", hint: hint)
        }
    }

    func audit(_ outcome: Outcome) {
        guard let log = try? AuditLog(path: directories.auditLog) else { return }
        log.record(AuditLog.Event(
            "database.migrated",
            detail: "\(outcome.source) -> \(outcome.target): \(outcome.totalRows) rows in \(outcome.tables.count) tables, verified"))
    }
}
