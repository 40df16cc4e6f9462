import AutoSSLConfig
import AutoSSLCore
import AutoSSLIO
import AutoSSLStore
import Foundation

/// `ca init --database postgres://...`: the database is checked before any key is made, and bound
/// to the new CA (with its provisioners and policy published) once the CA exists.
extension CAInitializer {
    /// Refuses a database that cannot be reached, that belongs to a CA already, or that holds
    /// certificates, before anything is created. Returns the password to use.
    public func checkSharedDatabase(_ database: DatabaseSettings, passwordFile: String?) async throws -> String? {
        let location = try PostgresLocation(url: database.url)
        let loader = AuthorityLoader(directories: directories)
        let password = try loader.databasePassword(explicitFile: passwordFile, settings: database, location: location)
        let opened = try await CADatabase.openPostgres(location, password: password)
        do {
            if let bound = try await opened.replicated?.boundRootFingerprint() {
                throw AutoSSLError.general(
                    "the database \(location) already belongs to a CA (root \(bound)); nothing was created",
                    hint: "give a new, empty database, or set up this machine as a replica of that CA with `auto-ssl ca replica add`")
            }
            if try await !opened.certificates.certificates(.init(includeExpired: true, limit: 1), now: Date()).isEmpty {
                throw AutoSSLError.general(
                    "the database \(location) holds certificates already; nothing was created", hint: "give a new, empty database")
            }
        } catch {
            try? await opened.close()
            throw error
        }
        try await opened.close()
        return password
    }

    /// Binds the shared database to the CA just created and publishes its provisioners and policy.
    public func bindSharedDatabase(_ result: CAInitResult, databasePasswordFile: String?, now: Date = Date()) async throws {
        let loader = AuthorityLoader(directories: directories)
        let database = try await loader.openDatabase(result.settings, databasePasswordFile: databasePasswordFile)
        do {
            if let state = database.replicated {
                try await state.bind(rootFingerprint: result.rootFingerprint, caName: result.settings.name, now: now)
                try await SharedSettingsSync(directories: directories).publish(state, expectedRevision: nil, now: now)
            }
        } catch {
            try? await database.close()
            throw error
        }
        try await database.close()
    }
}

/// `ca restore --as-replica`: another machine serving the same CA from the same shared database.
extension CAInitializer {
    /// The backup's settings, before anything is installed: a replica needs a CA on a shared
    /// database (an SQLite CA has one machine by construction) and an address of its own.
    public static func checkReplicaBackup(content: String, newAddress: ListenAddress?) throws {
        guard let settings = try AutoSSLConfiguration.load(from: content + "/config/config.yaml").ca else {
            throw AutoSSLError.general("the backup's config.yaml has no CA section")
        }
        guard settings.database != nil else {
            throw AutoSSLError.invalidArgument(
                "this backup's CA keeps its records in SQLite on its own machine, so it cannot have replicas; nothing was changed",
                hint: "move that CA to PostgreSQL first (`auto-ssl ca database migrate --to postgres://...`), then make a new backup")
        }
        guard newAddress != nil else {
            throw AutoSSLError.invalidArgument(
                "a replica serves on its own address: give --new-address HOST:PORT (this machine's)")
        }
    }

    /// After a replica was installed: its database answers and belongs to this CA (or to none yet).
    public func checkReplicaDatabase(_ settings: CASettings, rootFingerprint: String) async throws {
        let database = try await AuthorityLoader(directories: directories).openDatabase(settings)
        defer { Task { try? await database.close() } }
        if let bound = try await database.replicated?.boundRootFingerprint(), bound != rootFingerprint {
            throw AutoSSLError.general(
                "the database \(database.location) belongs to another CA (root \(bound)), not to this one (root \(rootFingerprint))",
                hint: "check `database.url` in config.yaml")
        }
        if let since = try await database.replicated?.retiredAt() {
            throw AutoSSLError.general(
                "the database \(database.location) was marked as left by this CA on \(AuditLog.timestamp(since)) (`ca database migrate --to sqlite`); the CA was restored, but `ca serve` will refuse this database",
                hint: "run the CA from the machine that holds its records in SQLite, or move them to a new, empty PostgreSQL database with `ca database migrate --to postgres://...`")
        }
    }
}
