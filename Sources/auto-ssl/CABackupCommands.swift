import ArgumentParser
import AutoSSLCA
import AutoSSLClient
import AutoSSLCore
import AutoSSLHost
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
            One file: certificates, encrypted keys, provisioner keys, config.yaml, password files, an online
            snapshot of the database and a manifest of SHA-256 hashes, as a tar.gz encrypted in the format of
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

    func run() async throws {
        let directories = Directories.fromEnvironment()
        do {
            try await backUp(directories)
        } catch {
            // Scheduled runs have no one watching: `ca status` reports the failure.
            BackupRotation.record(.init(time: Date(), succeeded: false, detail: "\(error)"), directories: directories)
            throw error
        }
    }

    func backUp(_ directories: Directories) async throws {
        if destType == "s3" {
            try await backUpToS3(directories)
            return
        }
        if destType == "rsync" {
            try await backUpWithRsync(directories)
            return
        }
        guard destType == "local" else { throw AutoSSLError.invalidArgument("--dest-type must be local, rsync or s3") }
        guard let output else { throw AutoSSLError.invalidArgument("--output is required for a local backup") }
        if let retention, retention < 1 { throw AutoSSLError.invalidArgument("--retention must be at least 1") }
        let (target, intoDirectory) = try Self.outputLocation(output)
        if retention != nil, !intoDirectory {
            throw AutoSSLError.invalidArgument("--retention needs --output to be a directory")
        }
        let secret = try passphrase.passphrase(confirm: true)
        let (bytes, manifest) = try await CABackup(directories: directories).create(
            passphrase: secret, iterations: passphrase.iterations, toolVersion: AutoSSLCommand.version)
        let path = intoDirectory ? target + "/" + BackupRotation.fileName(at: Date()) : target
        try FileOperations.writeAtomically(bytes, to: path, mode: 0o600)
        let pruned = try retention.map { try BackupRotation.prune(target, keep: $0) } ?? []
        BackupRotation.record(.init(time: Date(), succeeded: true, detail: path), directories: directories)
        print("Backed up CA \"\(manifest.caName)\" (\(manifest.caFingerprint)): \(manifest.files.count) files, \(bytes.count) bytes")
        print("  \(path) (mode 0600)")
        if !pruned.isEmpty { print("  removed \(pruned.count) older backup(s): \(pruned.joined(separator: ", "))") }
        print("Recover with openssl and tar alone:")
        print("  " + CABackup.recoveryCommand(file: path, iterations: passphrase.iterations))
    }
}

extension CABackupCreateCommand {
    /// Where `--output` points: an existing directory, or one to create when the value ends with
    /// `/` (as for rsync targets), or else a file.
    static func outputLocation(_ output: String) throws -> (path: String, isDirectory: Bool) {
        var target = Directories.absolute(output)
        while target.count > 1, target.hasSuffix("/") { target.removeLast() }
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: target, isDirectory: &isDirectory) {
            return (target, isDirectory.boolValue)
        }
        if output.hasSuffix("/") {
            try FileOperations.makeDirectory(target, mode: 0o700)
            return (target, true)
        }
        return (target, false)
    }

    /// The backup is written locally (to --output when given, else to a private temporary directory)
    /// and then copied with rsync over ssh; the temporary copy is removed afterwards.
    func backUpWithRsync(_ directories: Directories) async throws {
        guard let rsyncTarget else { throw AutoSSLError.invalidArgument("--dest-type rsync needs --rsync-target [user@]host:path") }
        let transfer = try RsyncTransfer(target: rsyncTarget, sshCommand: sshCommand)
        let secret = try passphrase.passphrase(confirm: true)
        let staging = try FileOperations.makeTemporaryDirectory(prefix: "auto-ssl-backup")
        defer { try? FileOperations.removeTree(staging) }
        let name = BackupRotation.fileName(at: Date())
        var local = staging + "/" + name
        if let output {
            let (target, intoDirectory) = try Self.outputLocation(output)
            local = intoDirectory ? target + "/" + name : target
        }
        let (bytes, manifest) = try await CABackup(directories: directories).create(
            passphrase: secret, iterations: passphrase.iterations, toolVersion: AutoSSLCommand.version)
        try FileOperations.writeAtomically(bytes, to: local, mode: 0o600)
        let destination = try transfer.upload(local)
        BackupRotation.record(.init(time: Date(), succeeded: true, detail: destination), directories: directories)
        print("Backed up CA \"\(manifest.caName)\" (\(manifest.caFingerprint)): \(manifest.files.count) files, \(bytes.count) bytes")
        print("  copied with rsync to \(destination)")
        if output != nil { print("  local copy: \(local) (mode 0600)") }
        print("Recover with openssl and tar alone (after copying it back):")
        print("  " + CABackup.recoveryCommand(file: (local as NSString).lastPathComponent, iterations: passphrase.iterations))
    }

    func backUpToS3(_ directories: Directories) async throws {
        guard let bucket = s3.s3Bucket else { throw AutoSSLError.invalidArgument("--dest-type s3 needs --s3-bucket") }
        let store = try s3.store()
        let secret = try passphrase.passphrase(confirm: true)
        let (bytes, manifest) = try await CABackup(directories: directories).create(
            passphrase: secret, iterations: passphrase.iterations, toolVersion: AutoSSLCommand.version)
        let key = s3.s3Prefix + BackupRotation.fileName(at: Date())
        try await store.put(bytes, bucket: bucket, key: key)
        BackupRotation.record(.init(time: Date(), succeeded: true, detail: "s3://\(bucket)/\(key)"), directories: directories)
        print("Backed up CA \"\(manifest.caName)\" (\(manifest.caFingerprint)) to s3://\(bucket)/\(key) (\(bytes.count) bytes)")
        print("Restore with: auto-ssl ca restore --input s3://\(bucket)/\(key) --s3-endpoint \(store.endpoint.absoluteString) --s3-region \(store.region)")
    }
}

/// S3-compatible object storage for backups.
struct S3Options: ParsableArguments {
    @Option(help: "S3 bucket (with --dest-type s3).") var s3Bucket: String?
    @Option(help: "S3 endpoint URL (default: AWS for --s3-region).") var s3Endpoint: String?
    @Option(help: "Key prefix inside the bucket, e.g. ca/.") var s3Prefix = ""
    @Option(help: "S3 region.") var s3Region = "us-east-1"

    func store() throws -> S3ObjectStore {
        try S3ObjectStore(endpoint: s3Endpoint, region: s3Region, credentials: try S3ObjectStore.credentials())
    }
}

/// `--allow-no-manifest` for `ca backup verify` and `ca restore`.
struct ManifestOptions: ParsableArguments {
    @Flag(help: ArgumentHelp(
        "Accept an archive without manifest.json (one made by hand from ca/ and config/); its files are then not hash-checked."))
    var allowNoManifest = false
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
        let opened = try backup.open(
            try Self.read(file), passphrase: secret, iterations: passphrase.iterations, allowNoManifest: manifestOptions.allowNoManifest)
        try? FileManager.default.removeItem(atPath: opened.workDirectory)
        if let manifest = opened.manifest {
            print("OK: \(manifest.files.count) files match the manifest; CA \"\(manifest.caName)\", root \(opened.rootFingerprint), made \(Output.date(manifest.createdAt)) by auto-ssl \(manifest.toolVersion)")
        } else {
            print("OK (no manifest: a hand-made archive): root \(opened.rootFingerprint)")
        }
    }

    static func read(_ file: String) throws -> [UInt8] {
        guard let data = FileManager.default.contents(atPath: Directories.absolute(file)) else {
            throw AutoSSLError.invalidArgument("\(file) cannot be read")
        }
        return Array(data)
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
    @OptionGroup var manifestOptions: ManifestOptions
    @OptionGroup var s3: S3Options
    @OptionGroup var passphrase: PassphraseOptions

    func run() async throws {
        let address = try newAddress.map(ListenAddress.init(parsing:))
        let secret = try passphrase.passphrase(confirm: false)
        let backup = CABackup(directories: Directories.fromEnvironment())
        let bytes: [UInt8]
        if input.hasPrefix("s3://") {
            let location = input.dropFirst(5)
            guard let slash = location.firstIndex(of: "/"), location.index(after: slash) < location.endIndex else {
                throw AutoSSLError.invalidArgument("--input must be s3://bucket/key")
            }
            bytes = try await s3.store().get(bucket: String(location[..<slash]), key: String(location[location.index(after: slash)...]))
        } else {
            bytes = try CABackupVerifyCommand.read(input)
        }
        let opened = try backup.open(
            bytes, passphrase: secret, iterations: passphrase.iterations, allowNoManifest: manifestOptions.allowNoManifest)
        let restored: CABackup.Restored
        do {
            restored = try backup.restore(opened, force: force, newAddress: address)
        } catch {
            try? FileManager.default.removeItem(atPath: opened.workDirectory)
            throw error
        }
        if let previous = restored.previousCALocation { print("The previous CA was moved to \(previous).") }
        print("Restored CA \"\(restored.settings.name)\" (root \(restored.fingerprint)) into \(restored.settings.paths.caDir)")
        if !restored.hadManifest { Output.warning("the archive had no manifest; its files were not hash-checked") }
        print("Addresses: \(restored.settings.addresses.map(\.description).joined(separator: ", ")). Start it with `auto-ssl ca serve`.")
    }
}
