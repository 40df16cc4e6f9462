import ArgumentParser
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
    var output: String
    @Option(help: "With a directory --output: keep only the newest N backups there (after this one succeeded).")
    var retention: Int?
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
        if let retention, retention < 1 { throw AutoSSLError.invalidArgument("--retention must be at least 1") }
        var isDirectory: ObjCBool = false
        let target = Directories.absolute(output)
        let intoDirectory = FileManager.default.fileExists(atPath: target, isDirectory: &isDirectory) && isDirectory.boolValue
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

struct CABackupVerifyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "verify", abstract: "Decrypt a backup and check its manifest, installing nothing.")

    @Argument(help: "The backup file.") var file: String
    @OptionGroup var passphrase: PassphraseOptions

    func run() async throws {
        let secret = try passphrase.passphrase(confirm: false)
        let backup = CABackup(directories: Directories.fromEnvironment())
        let opened = try backup.open(try Self.read(file), passphrase: secret, iterations: passphrase.iterations)
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
        discussion: "Also restores a tar.gz of the same layout encrypted by `openssl enc` by hand.")

    @Option(help: ArgumentHelp("The backup file.", valueName: "file")) var input: String
    @Option(help: ArgumentHelp("Serve on this address instead of the backed-up ones.", valueName: "host:port"))
    var newAddress: String?
    @Flag(help: "Replace an existing CA (it is moved aside first).") var force = false
    @OptionGroup var passphrase: PassphraseOptions

    func run() async throws {
        let address = try newAddress.map(ListenAddress.init(parsing:))
        let secret = try passphrase.passphrase(confirm: false)
        let backup = CABackup(directories: Directories.fromEnvironment())
        let opened = try backup.open(try CABackupVerifyCommand.read(input), passphrase: secret, iterations: passphrase.iterations)
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
