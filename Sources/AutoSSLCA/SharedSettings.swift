import AutoSSLConfig
import AutoSSLCore
import AutoSSLHost
import AutoSSLIO
import AutoSSLStore
import Foundation
import Logging

/// The settings every replica of a CA on a shared database must agree on: durations, the CA-wide
/// policy, the password (JWK) provisioners with their encrypted keys, and the ACME provisioners.
/// Each replica keeps its own copy in config.yaml and the secrets directory (so `ca serve` reads
/// them as on a single machine); the database holds the document that is in force.
struct SharedCASettings: Codable, Equatable {
    struct Provisioner: Codable, Equatable {
        var name: String
        var type: String
        var publicKey: String
        var policy: PolicySettings?
        /// The compact JWE of the private key, as in the key file.
        var encryptedKey: String

        enum CodingKeys: String, CodingKey {
            case name, type, policy
            case publicKey = "public_key"
            case encryptedKey = "encrypted_key"
        }
    }

    var format = 1
    var defaultDuration: String
    var minimumDuration: String
    var maximumDuration: String
    var policy: PolicySettings?
    var renewalGraceFraction: Double?
    var provisioners: [Provisioner]
    var acmeProvisioners: [ACMEProvisionerSettings]?

    enum CodingKeys: String, CodingKey {
        case format, policy, provisioners
        case defaultDuration = "default_duration"
        case minimumDuration = "min_duration"
        case maximumDuration = "max_duration"
        case renewalGraceFraction = "renewal_grace_fraction"
        case acmeProvisioners = "acme_provisioners"
    }

    /// The shared part of this machine's settings (reading the provisioner key files).
    init(_ settings: CASettings) throws {
        defaultDuration = settings.defaultDuration
        minimumDuration = settings.minimumDuration
        maximumDuration = settings.maximumDuration
        policy = settings.policy
        renewalGraceFraction = settings.renewalGraceFraction
        acmeProvisioners = settings.acmeProvisioners
        provisioners = try settings.provisioners.map {
            Provisioner(
                name: $0.name, type: $0.type, publicKey: $0.publicKey, policy: $0.policy,
                encryptedKey: try FileOperations.readText($0.encryptedKeyFile).trimmingCharacters(in: .whitespacesAndNewlines))
        }
    }

    /// Documents from the database are as hostile as any other input: bounded and checked.
    static let maximumBytes = 4 << 20

    static func decode(_ json: String) throws -> SharedCASettings {
        guard json.utf8.count <= maximumBytes else {
            throw AutoSSLError.general("the shared settings in the database are larger than \(maximumBytes) bytes; they were not applied")
        }
        let document: SharedCASettings
        do {
            document = try JSONDecoder().decode(SharedCASettings.self, from: Data(json.utf8))
        } catch {
            throw AutoSSLError.general("the shared settings in the database could not be read (\(error)); they were not applied")
        }
        guard document.format == 1 else {
            throw AutoSSLError.general(
                "the shared settings in the database have format \(document.format), newer than this auto-ssl understands",
                hint: "upgrade auto-ssl on this replica")
        }
        for provisioner in document.provisioners { try ProvisionerName.validate(provisioner.name) }
        for provisioner in document.acmeProvisioners ?? [] { try ProvisionerName.validate(provisioner.name) }
        return document
    }

    func json() throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return String(decoding: try encoder.encode(self), as: UTF8.self)
    }

    /// `settings` with the shared part replaced by this document; a provisioner this machine
    /// already had keeps its local password file.
    func applied(to settings: CASettings) -> CASettings {
        var updated = settings
        updated.defaultDuration = defaultDuration
        updated.minimumDuration = minimumDuration
        updated.maximumDuration = maximumDuration
        updated.policy = policy
        updated.renewalGraceFraction = renewalGraceFraction
        updated.acmeProvisioners = acmeProvisioners
        updated.provisioners = provisioners.map { shared in
            ProvisionerSettings(
                name: shared.name, type: shared.type, publicKey: shared.publicKey,
                encryptedKeyFile: settings.paths.provisionerKeyFile(shared.name), policy: shared.policy,
                passwordFile: settings.provisioners.first { $0.name == shared.name }?.passwordFile)
        }
        return updated
    }
}

/// Keeps a replica's provisioners and policy equal to the database's: `pull` writes the document in
/// force into config.yaml and the key files (the running `ca serve` reloads them within seconds);
/// `publish` makes this machine's settings the document in force. For a CA on SQLite there is
/// nothing to share and both do nothing.
public struct SharedSettingsSync: Sendable {
    public let directories: Directories
    let logger: Logger

    public init(directories: Directories, logger: Logger = Logger(label: "auto-ssl.ca.settings")) {
        self.directories = directories
        self.logger = logger
    }

    /// Applies the document in force to this machine. Returns its revision (nil when none was ever
    /// published). Writes only what changed: key files first, then config.yaml, each atomically.
    @discardableResult
    public func pull(_ state: any ReplicatedState) async throws -> Int64? {
        let lock = try settingsLock()
        defer { lock.release() }
        return try await pullLocked(state)
    }

    /// Serialises the writers of this machine's copy (`ca serve`'s follower and an admin command):
    /// an exclusive lock on `<config dir>/.settings.lock`, waited for (briefly: each holder only
    /// reads and writes a few files and makes one database call).
    func settingsLock() throws -> FileLock {
        guard let lock = try FileLock.acquire(directories.configDir + "/.settings.lock", exclusive: true, wait: true) else {
            throw AutoSSLError.general("could not lock \(directories.configDir)/.settings.lock")
        }
        return lock
    }

    /// `pull` for a caller that holds the settings lock.
    func pullLocked(_ state: any ReplicatedState) async throws -> Int64? {
        guard let current = try await state.sharedSettings() else { return nil }
        let document = try SharedCASettings.decode(current.json)
        var configuration = try AutoSSLConfiguration.load(from: directories.configFile)
        guard let settings = configuration.ca else {
            throw AutoSSLError.general("no CA on this machine", hint: "create one with `auto-ssl ca init`")
        }
        for provisioner in document.provisioners {
            let path = settings.paths.provisionerKeyFile(provisioner.name)
            let existing = FileOperations.exists(path) ? try FileOperations.readText(path) : nil
            if existing?.trimmingCharacters(in: .whitespacesAndNewlines) != provisioner.encryptedKey {
                try FileOperations.writeAtomically(provisioner.encryptedKey + "\n", to: path, mode: 0o600)
            }
        }
        let updated = document.applied(to: settings)
        if updated != settings {
            configuration.ca = updated
            try configuration.save(to: directories.configFile)
            logger.notice("applied the shared settings of revision \(current.revision)")
        }
        return current.revision
    }

    /// Publishes this machine's settings as the next revision after `expectedRevision`.
    @discardableResult
    public func publish(_ state: any ReplicatedState, expectedRevision: Int64?, now: Date = Date()) async throws -> Int64 {
        guard let settings = try AutoSSLConfiguration.load(from: directories.configFile).ca else {
            throw AutoSSLError.general("no CA on this machine", hint: "create one with `auto-ssl ca init`")
        }
        return try await state.publishSettings(try SharedCASettings(settings).json(), expectedRevision: expectedRevision, now: now)
    }

    /// Runs a change of provisioners or policy (`body`, which edits config.yaml and key files) so
    /// that it is in force on every replica: for a CA on a shared database, the document in force is
    /// applied here first, then `body` runs, then the result is published; when another replica
    /// published in between, the publication is refused and the command must be run again.
    /// `what` (e.g. "provisioner add fleet") goes to the shared log of administrative changes, and
    /// once the change is made, to this machine's audit log as `event` (e.g. "provisioner.added").
    /// `checkFirst` runs just before `body`, on the settings in force (after the pull, under the
    /// settings lock): a check that depends on them, which a stale config.yaml on this replica
    /// would otherwise get wrong.
    public func change<T>(
        _ what: String, event: String, provisioner: String?, checkFirst: (() async throws -> Void)? = nil,
        _ body: () throws -> T
    ) async throws -> T {
        let result = try await changeEverywhere(what, checkFirst: checkFirst, body)
        AdminEventLog.recordLocally(directories: directories, .init(event, provisioner: provisioner, detail: what), logger: logger)
        return result
    }

    /// Runs `body`, a read-modify-write of config.yaml (and the files it names) on this machine,
    /// under the settings lock: two admin commands run at once (two `ca provisioner add`, a key
    /// change and an add) take turns instead of one writing its copy over the other's change.
    public func locked<T>(_ body: () throws -> T) throws -> T {
        let lock = try settingsLock()
        defer { lock.release() }
        return try body()
    }

    /// Changes this machine's own settings in config.yaml (ones no other replica shares, such as
    /// the backup schedule): read, changed and written under the settings lock.
    public func updateLocalSettings(_ change: (inout CASettings) throws -> Void) throws {
        try locked {
            var configuration = try AutoSSLConfiguration.load(from: directories.configFile)
            guard var settings = configuration.ca else {
                throw AutoSSLError.general("no CA on this machine", hint: "create one with `auto-ssl ca init`")
            }
            try change(&settings)
            configuration.ca = settings
            try configuration.save(to: directories.configFile)
        }
    }

    private func changeEverywhere<T>(
        _ what: String, checkFirst: (() async throws -> Void)?, _ body: () throws -> T
    ) async throws -> T {
        let loader = AuthorityLoader(directories: directories)
        let settings = try loader.settings()
        // Not during a migration (it publishes the settings before its copy and would miss this change).
        let lockPath = CALock.path(for: settings)
        let migrationGuard = FileOperations.exists(lockPath) ? try CALock(path: lockPath, mode: .administering) : nil
        defer { migrationGuard?.release() }
        func locally() async throws -> T {
            let lock = try settingsLock()
            defer { lock.release() }
            try await checkFirst?()
            return try body()
        }
        guard settings.database != nil else { return try await locally() }
        let database = try await loader.openDatabase(settings)
        do {
            guard let state = database.replicated else {
                try await database.close()
                return try await locally()
            }
            // Held from the pull to the publication: `ca serve`'s follower on this machine cannot
            // write an older document over this change in between.
            let lock = try settingsLock()
            defer { lock.release() }
            let revision = try await pullLocked(state)
            // What `body` may change on this machine (config.yaml, the provisioners' keys and stored
            // passwords, which are this machine's own), put back as it was if the change is not
            // published: the database may be unreachable for the pull as well.
            try await checkFirst?()
            let before = try LocalProvisionerFiles(directories: directories, secretsDir: loader.settings().paths.secretsDir)
            let result = try body()
            do {
                let published = try await publish(state, expectedRevision: revision)
                await AdminEventLog.record(database, event: "settings.changed", detail: "\(what) (revision \(published))", logger: logger)
            } catch {
                // Not published: this machine goes back to the document in force, so that it never
                // serves settings the other replicas do not have.
                before.restore(logger: logger)
                _ = try? await pullLocked(state)
                if case StoreError.settingsChangedConcurrently = error {
                    throw AutoSSLError.general(
                        "another replica changed the provisioners or policy at the same time; this change is not in force",
                        hint: "run the command again (this machine takes the other change first)")
                }
                throw AutoSSLError(
                    .network, "the change could not be published to the CA's other replicas (\(StoreFailureWords.describe(error))); it is not in force",
                    hint: "run the command again when the database answers")
            }
            try await database.close()
            return result
        } catch {
            try? await database.close()
            throw error
        }
    }

    /// For `ca serve` on a shared database: applies the document in force at start (or publishes
    /// this machine's settings when there is none yet), then follows every change, told by the
    /// database's notifications and, in case one is missed, by polling every `pollInterval`.
    public func follow(_ state: any ReplicatedState, pollInterval: Duration = .seconds(15)) async {
        var applied: Int64?
        do {
            applied = try await pull(state)
            if applied == nil { applied = try await publish(state, expectedRevision: nil) }
        } catch {
            logger.error("the shared settings could not be applied at start: \(error)")
        }
        let notifications = state.settingsNotifications()
        let ticks = AsyncStream<Void> { continuation in
            let ticker = Task {
                while !Task.isCancelled {
                    try? await Task.sleep(for: pollInterval)
                    continuation.yield(())
                }
                continuation.finish()
            }
            continuation.onTermination = { _ in ticker.cancel() }
        }
        await withTaskGroup(of: Void.self) { group in
            let (wakeups, wake) = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
            group.addTask {
                for await _ in notifications { wake.yield(()) }
            }
            group.addTask {
                for await _ in ticks { wake.yield(()) }
            }
            for await _ in wakeups {
                if Task.isCancelled { break }
                do {
                    // Applied every time (only what differs is written): a change this machine made
                    // but could not publish is undone here once the database answers again.
                    applied = try await pull(state) ?? applied
                } catch {
                    logger.warning("the shared settings could not be refreshed: \(error)")
                }
            }
            group.cancelAll()
        }
    }
}

/// config.yaml, the provisioners' encrypted keys (`provisioner_*.jwe`) and stored passwords
/// (`provisioner-*password*`, with `.pending` ones) as they are now, to put back exactly: files
/// that appear later are removed, changed ones written back with their mode.
struct LocalProvisionerFiles {
    let configFile: String
    let directories: [String]
    let files: [String: (text: String, mode: mode_t)]

    init(directories: Directories, secretsDir: String) throws {
        configFile = directories.configFile
        self.directories = [directories.configDir, secretsDir]
        var files: [String: (text: String, mode: mode_t)] = [:]
        for path in [configFile] + Self.provisionerFiles(in: self.directories) {
            files[path] = (try FileOperations.readText(path), FileOperations.mode(of: path) ?? 0o600)
        }
        self.files = files
    }

    static func provisionerFiles(in directories: [String]) -> [String] {
        directories.flatMap { directory in
            ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? [])
                .filter { ($0.hasPrefix("provisioner_") && $0.hasSuffix(".jwe")) || ($0.hasPrefix("provisioner-") && $0.contains("password")) }
                .map { directory + "/" + $0 }
        }
    }

    func restore(logger: Logger = Logger(label: "auto-ssl.ca.settings")) {
        for path in Self.provisionerFiles(in: directories) where files[path] == nil {
            try? FileOperations.removeTree(path)
        }
        for (path, saved) in files {
            guard (try? FileOperations.readText(path)) != saved.text else { continue }
            do {
                try FileOperations.writeAtomically(saved.text, to: path, mode: saved.mode & 0o777)
            } catch {
                logger.error("could not put \(path) back as it was: \(error)")
            }
        }
    }
}

/// The shared log of administrative changes of a CA on PostgreSQL (`ReplicatedState.recordAdminEvent`),
/// next to each machine's own audit log. Recording is best effort: the change it describes is
/// already made, so a failure to log it is reported, not undone.
public enum AdminEventLog {
    /// Appends an administrative change to this machine's audit log. Best effort, as for the shared
    /// log: the change is already made, so a failure to log it is reported, not undone.
    public static func recordLocally(
        directories: Directories, _ event: AuditLog.Event, logger: Logger = Logger(label: "auto-ssl.ca.admin")
    ) {
        do {
            try AuthorityLoader(directories: directories).openAuditLog().record(event)
        } catch {
            logger.warning("the change was made, but the audit log could not record it: \(error)")
        }
    }

    public static func record(
        _ database: CADatabase, event: String, detail: String, now: Date = Date(),
        logger: Logger = Logger(label: "auto-ssl.ca.admin")
    ) async {
        guard let state = database.replicated else { return }
        do {
            try await state.recordAdminEvent(AdminEvent(at: now, host: NetworkAddresses.hostname(), event: event, detail: detail))
        } catch {
            logger.warning("the change was made, but the shared log of administrative changes could not record it: \(error)")
        }
    }
}
