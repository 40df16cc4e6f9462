import ArgumentParser
import AutoSSLBackup
import AutoSSLCA
import AutoSSLCore
import AutoSSLIO
import Foundation

/// Where the backup passphrase comes from: a file, AUTO_SSL_BACKUP_PASSPHRASE, or a prompt.
struct PassphraseOptions: ParsableArguments {
    @Option(help: ArgumentHelp("File holding the backup passphrase (may be /dev/stdin).", valueName: "file"))
    var passphraseFile: String?

    @Option(help: "PBKDF2 iterations of the openssl enc format (must match when reading).")
    var iterations = OpenSSLEnc.defaultIterations

    func passphrase(confirm: Bool) throws -> String {
        guard (1_000...10_000_000).contains(iterations) else {
            throw AutoSSLError.invalidArgument("--iterations must be between 1000 and 10000000")
        }
        let passphrase: String
        if let passphraseFile {
            passphrase = try SecretFiles.read(passphraseFile, option: "--passphrase-file")
        } else if let fromEnvironment = ProcessInfo.processInfo.environment["AUTO_SSL_BACKUP_PASSPHRASE"], !fromEnvironment.isEmpty {
            passphrase = fromEnvironment
        } else if Terminal.standardInputIsTerminal {
            if confirm {
                guard case .given(let entered) = try Terminal.readNewSecret(purpose: "backup passphrase", allowGenerate: false) else {
                    throw AutoSSLError.invalidArgument("a backup passphrase is required")
                }
                passphrase = entered
            } else {
                passphrase = try Terminal.readSecret(prompt: "Backup passphrase: ")
            }
        } else {
            throw AutoSSLError.invalidArgument(
                "the backup passphrase is needed", hint: "pass --passphrase-file or set AUTO_SSL_BACKUP_PASSPHRASE")
        }
        try CABackup.validatePassphrase(passphrase)
        return passphrase
    }
}

struct CABackupCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "backup",
        abstract: "Write an encrypted backup of the CA (works while `ca serve` runs).",
        discussion: """
            One file: certificates, encrypted keys, provisioner keys, config.yaml, password files, an online \
            snapshot of the database and a manifest of SHA-256 hashes, as a tar.gz encrypted in the format of \
            `openssl enc -aes-256-cbc -pbkdf2 -md sha256 -iter N -salt`. Recover it anywhere with:

            openssl enc -d -aes-256-cbc -pbkdf2 -md sha256 -iter 600000 -in FILE | tar -xz
            """,
        subcommands: [CABackupCreateCommand.self, CABackupVerifyCommand.self],
        defaultSubcommand: CABackupCreateCommand.self)
}

struct CABackupCreateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "create", abstract: "Write an encrypted backup file.")

    @Option(help: ArgumentHelp(
        "The backup file to write (mode 0600), or an existing directory for a timestamped file.", valueName: "path"))
    var output: String?
    @Option(help: "With a directory --output: keep only the newest N backups there (after this one succeeded).")
    var retention: Int?
    @Option(help: "local (default), rsync or s3.") var destType = "local"
    @Option(help: ArgumentHelp("With --dest-type rsync: where to copy the backup, [user@]host:path (a path ending in / is a directory).", valueName: "target"))
    var rsyncTarget: String?
    @Option(help: ArgumentHelp("With --dest-type rsync: the remote shell (default: ssh -o BatchMode=yes).", valueName: "command"))
    var sshCommand: String?
    @OptionGroup var s3: S3Options
    @OptionGroup var passphrase: PassphraseOptions
    @OptionGroup var quiet: QuietOption

    func run() async throws {
        Output.quiet = quiet.quiet
        let directories = Directories.fromEnvironment()
        do {
            try await backUp(directories)
        } catch {
            // Scheduled runs have no one watching: `ca status` reports the failure.
            BackupState.record(.init(time: Date(), succeeded: false, detail: "\(error)"), directories: directories)
            throw error
        }
    }

    /// Writes a backup to a local `--output`: the file named, or in a directory a new file named
    /// for this second. Names have a resolution of one second, so a backup that finds its name
    /// taken (another one in the same second, from this machine's timer or another command) waits
    /// for the next name instead of replacing it; the name is claimed atomically, so two processes
    /// never both get it.
    func putLocal(_ bytes: [UInt8], at location: BackupLocation) async throws -> (path: String, name: String) {
        guard location.name == nil, let directory = location.destination as? FileDestination else {
            let name = location.nameForNewBackup(at: Date())
            return (try await location.destination.put(bytes, name: name), name)
        }
        var name = location.nameForNewBackup(at: Date())
        for _ in 0..<12 {
            if let path = try directory.putNew(bytes, name: name) { return (path, name) }
            try await Task.sleep(for: .milliseconds(250))
            name = location.nameForNewBackup(at: Date())
        }
        throw AutoSSLError.general(
            "\(directory.location(of: name)) and every name after it for 3 seconds were taken; nothing was written",
            hint: "another program is writing backups into \(directory.description) at the same time: run this one again")
    }

    func backUp(_ directories: Directories) async throws {
        switch destType {
        case "local":
            guard let output else { throw AutoSSLError.invalidArgument("--output is required for a local backup") }
            try checkRetention()
            let location = try BackupLocation.output(output)
            if retention != nil { try location.checkRotation() }
            try checkOutput(location, directories)
            let (bytes, manifest) = try await create(directories)
            let (path, name) = try await putLocal(bytes, at: location)
            let pruned = try await prune(location, written: name)
            BackupState.record(.init(time: Date(), succeeded: true, detail: path), directories: directories)
            Output.progress("Backed up CA \"\(manifest.caName)\" (\(manifest.caFingerprint)): \(manifest.files.count) files, \(bytes.count) bytes")
            if Output.quiet { print(path) }
            Output.progress("  \(path) (mode 0600)")
            printPruned(pruned)
            Output.progress("Recover with openssl and tar alone:")
            Output.progress("  " + CABackup.recoveryCommand(file: path, iterations: passphrase.iterations))
        case "rsync":
            // Also written locally when --output is given; the copy keeps the local file's name
            // unless the target names one.
            guard let rsyncTarget else { throw AutoSSLError.invalidArgument("--dest-type rsync needs --rsync-target [user@]host:path") }
            let remote = try BackupLocation.rsync(rsyncTarget, sshCommand: sshCommand)
            try checkRetention()
            if retention != nil { try remote.checkRotation() }
            let secret = try passphrase.passphrase(confirm: true)
            let local = try output.map(BackupLocation.output)
            if let local { try checkOutput(local, directories) }
            let (bytes, manifest) = try await create(directories, secret: secret)
            var localCopy: (path: String, name: String)?
            if let local { localCopy = try await putLocal(bytes, at: local) }
            let localPath = localCopy?.path
            let localName = localCopy?.name ?? BackupRotation.fileName(at: Date())
            let remoteName = remote.name ?? localName
            let destination = try await remote.destination.put(bytes, name: remoteName)
            let pruned = try await prune(remote, written: remoteName)
            BackupState.record(.init(time: Date(), succeeded: true, detail: destination), directories: directories)
            Output.progress("Backed up CA \"\(manifest.caName)\" (\(manifest.caFingerprint)): \(manifest.files.count) files, \(bytes.count) bytes")
            if Output.quiet { print(destination) }
            Output.progress("  copied with rsync to \(destination)")
            if let localPath { Output.progress("  local copy: \(localPath) (mode 0600)") }
            printPruned(pruned)
            Output.progress("Recover with openssl and tar alone (after copying it back):")
            Output.progress("  " + CABackup.recoveryCommand(file: localName, iterations: passphrase.iterations))
        case "s3":
            guard let bucket = s3.s3Bucket else { throw AutoSSLError.invalidArgument("--dest-type s3 needs --s3-bucket") }
            let connection = try s3.connection()
            let location = try BackupLocation.s3(bucket: bucket, prefix: s3.s3Prefix, connection: connection)
            try checkRetention()
            let (bytes, manifest) = try await create(directories)
            let name = location.nameForNewBackup(at: Date())
            let key = try await location.destination.put(bytes, name: name)
            let pruned = try await prune(location, written: name)
            BackupState.record(.init(time: Date(), succeeded: true, detail: key), directories: directories)
            if Output.quiet { print(key) }
            Output.progress("Backed up CA \"\(manifest.caName)\" (\(manifest.caFingerprint)) to \(key) (\(bytes.count) bytes)")
            printPruned(pruned)
            Output.progress("Restore with: auto-ssl ca restore --input \(key) --s3-endpoint \(connection.endpoint.absoluteString) --s3-region \(connection.region)")
        default:
            throw AutoSSLError.invalidArgument("--dest-type must be local, rsync or s3")
        }
    }

    func checkRetention() throws {
        if let retention, retention < 1 { throw AutoSSLError.invalidArgument("--retention must be at least 1") }
    }

    func create(_ directories: Directories, secret: String? = nil) async throws -> (bytes: [UInt8], manifest: CABackup.Manifest) {
        let secret = try secret ?? passphrase.passphrase(confirm: true)
        let made = try await CABackup(directories: directories).create(
            passphrase: secret, iterations: passphrase.iterations, toolVersion: AutoSSLCommand.version)
        if let database = made.manifest.sharedDatabase {
            Output.warning(
                "the certificate records are in PostgreSQL (\(database)) and not in this backup: back them up with PostgreSQL's tools (pg_dump, or its replication)")
        }
        if let unpacked = made.manifest.unpackedBytes, unpacked > CABackup.defaultMaximumUnpackedMiB << 20 {
            let needed = (unpacked + (1 << 20) - 1) >> 20
            Output.warning(
                "this backup unpacks to \(needed) MiB, more than the \(CABackup.defaultMaximumUnpackedMiB) MiB that `ca restore` and `ca backup verify` accept by default: give them --max-unpacked-mib \(needed + needed / 4) (restoring needs that much memory)")
        }
        return made
    }

    /// A local --output stays out of the CA's directories and off the passphrase file.
    func checkOutput(_ location: BackupLocation, _ directories: Directories) throws {
        try location.checkLocalOverwrite(
            protected: [directories.configDir, directories.caDir], protectedFiles: passphrase.passphraseFile.map { [$0] } ?? [])
    }

    /// With --retention, after the new backup `written` succeeded: all but the newest N go, and
    /// `written` stays.
    func prune(_ location: BackupLocation, written: String) async throws -> [String] {
        guard let retention else { return [] }
        return try await BackupRotation.prune(location.destination, keep: retention, written: written)
    }

    func printPruned(_ pruned: [String]) {
        if !pruned.isEmpty { Output.progress("  removed \(pruned.count) older backup(s): \(pruned.joined(separator: ", "))") }
    }
}

/// S3-compatible object storage for backups.
struct S3Options: ParsableArguments {
    @Option(help: "S3 bucket (with --dest-type s3).") var s3Bucket: String?
    @Option(help: "S3 endpoint URL (default: AWS for --s3-region).") var s3Endpoint: String?
    @Option(help: "Key prefix inside the bucket, e.g. ca/.") var s3Prefix = ""
    @Option(help: "S3 region.") var s3Region = "us-east-1"

    func connection() throws -> S3Connection {
        try S3Connection(endpoint: s3Endpoint, region: s3Region, credentials: try S3Connection.credentials())
    }
}

/// Where `ca restore --input s3://bucket/key` reads from (the bucket and key are in the URL).
struct S3SourceOptions: ParsableArguments {
    @Option(help: "With an s3:// --input: the S3 endpoint URL (default: AWS for --s3-region).") var s3Endpoint: String?
    @Option(help: "With an s3:// --input: the S3 region.") var s3Region = "us-east-1"

    func connection() throws -> S3Connection {
        try S3Connection(endpoint: s3Endpoint, region: s3Region, credentials: try S3Connection.credentials())
    }
}

/// `--allow-no-manifest` for `ca backup verify` and `ca restore`.
struct ManifestOptions: ParsableArguments {
    @Flag(help: ArgumentHelp(
        "Accept an archive without manifest.json (one made by hand from ca/ and config/); its files are then not hash-checked."))
    var allowNoManifest = false

    @Option(help: ArgumentHelp(
        "The most the archive may unpack to, in MiB (default 256; a larger CA's backup says what it needs).", valueName: "MiB"))
    var maxUnpackedMib = CABackup.defaultMaximumUnpackedMiB

    /// The bound in bytes, checked: 1 MiB to 64 GiB.
    func maximumUnpackedBytes() throws -> Int {
        guard (1...65_536).contains(maxUnpackedMib) else {
            throw AutoSSLError.invalidArgument("--max-unpacked-mib must be from 1 to 65536")
        }
        return maxUnpackedMib << 20
    }
}

struct CABackupVerifyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify", abstract: "Decrypt a backup and check its members and manifest, installing nothing.",
        discussion: """
            Only regular files and directories under ca/ and config/ and manifest.json are accepted (links, devices, \
            absolute paths, .. and anything else exit 1 naming the member); an archive without manifest.json needs \
            --allow-no-manifest.
            """)

    @Argument(help: "The backup file.") var file: String
    @OptionGroup var manifestOptions: ManifestOptions
    @OptionGroup var passphrase: PassphraseOptions

    func run() async throws {
        let secret = try passphrase.passphrase(confirm: false)
        let backup = CABackup(directories: Directories.fromEnvironment())
        let location = BackupLocation.file(file)
        let bytes = try await location.destination.get(location.name ?? "")
        let opened = try backup.open(
            bytes, passphrase: secret, iterations: passphrase.iterations, allowNoManifest: manifestOptions.allowNoManifest,
            maximumUnpackedBytes: try manifestOptions.maximumUnpackedBytes())
        try? FileManager.default.removeItem(atPath: opened.workDirectory)
        if let manifest = opened.manifest {
            print("OK: \(manifest.files.count) files match the manifest; CA \"\(manifest.caName)\", root \(opened.rootFingerprint), made \(Output.date(manifest.createdAt)) by auto-ssl \(manifest.toolVersion)")
        } else {
            print("OK (no manifest: a hand-made archive): root \(opened.rootFingerprint)")
        }
    }
}

struct CARestoreCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "restore",
        abstract: "Restore the CA from a backup (verified before anything is installed).",
        discussion: """
            The archive is listed before anything is written: only regular files and directories under ca/ and \
            config/ and manifest.json are accepted; a symbolic or hard link, device, FIFO, absolute path, .. or any \
            other member exits 1 naming it, and nothing is changed. Owners and modes are never taken from the archive. \
            A tar.gz of the same layout encrypted by `openssl enc` by hand (no manifest.json) restores with \
            --allow-no-manifest.
            """)

    @Option(help: ArgumentHelp("The backup file, or s3://bucket/key.", valueName: "file")) var input: String
    @Option(help: ArgumentHelp("Serve on this address instead of the backed-up ones.", valueName: "host:port"))
    var newAddress: String?
    @Flag(help: "Replace an existing CA (it is moved aside first).") var force = false
    @Flag(help: ArgumentHelp(
        "Set this machine up as another replica of a CA on PostgreSQL (the backup of `ca replica add` or `ca backup`): same keys and database, this machine's --new-address."))
    var asReplica = false
    @OptionGroup var manifestOptions: ManifestOptions
    @OptionGroup var s3: S3SourceOptions
    @OptionGroup var passphrase: PassphraseOptions
    @OptionGroup var quiet: QuietOption

    func run() async throws {
        Output.quiet = quiet.quiet
        let address = try newAddress.map(ListenAddress.init(parsing:))
        let secret = try passphrase.passphrase(confirm: false)
        let backup = CABackup(directories: Directories.fromEnvironment())
        let location = try BackupLocation.input(input, s3: s3.connection)
        let bytes = try await location.destination.get(location.name ?? "")
        let opened = try backup.open(
            bytes, passphrase: secret, iterations: passphrase.iterations, allowNoManifest: manifestOptions.allowNoManifest,
            maximumUnpackedBytes: try manifestOptions.maximumUnpackedBytes())
        let restored: CABackup.Restored
        do {
            if asReplica { try CAInitializer.checkReplicaBackup(content: opened.content, newAddress: address) }
            restored = try backup.restore(opened, force: force, newAddress: address)
        } catch {
            try? FileManager.default.removeItem(atPath: opened.workDirectory)
            throw error
        }
        if let previous = restored.previousCALocation { Output.progress("The previous CA was moved to \(previous).") }
        Output.progress("Restored CA \"\(restored.settings.name)\" (root \(restored.fingerprint)) into \(restored.settings.paths.caDir)")
        if !restored.hadManifest { Output.warning("the archive had no manifest; its files were not hash-checked") }
        Output.progress("Addresses: \(restored.settings.addresses.map(\.description).joined(separator: ", "))")
        if let database = restored.settings.database {
            do {
                try await CAInitializer(directories: backup.directories).checkReplicaDatabase(
                    restored.settings, rootFingerprint: restored.fingerprint)
                Output.progress("Database: \(database.displayURL) answers and belongs to this CA; this machine is a replica of it.")
            } catch {
                Output.warning("the CA was restored, but its database did not pass the check: \(error)")
            }
        }
        Output.progress("Next steps:")
        for line in CAStartSteps.lines(settings: restored.settings, directories: backup.directories, givenPasswordFile: nil) {
            Output.progress(line)
        }
    }
}
