import AutoSSLConfig
import AutoSSLCore
import AutoSSLHost
import AutoSSLIO
import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The encrypted backup of the original (bash) auto-ssl, which ran step-ca: its `ca backup` did
///
///     tar -czf backup.tar.gz -C TMP metadata.json step-ca config
///     openssl enc -aes-256-cbc -salt -pbkdf2 -in backup.tar.gz -out backup.enc -pass ...
///
/// with openssl's defaults for `-pbkdf2` (10,000 iterations, SHA-256). `step-ca/` is a copy of its
/// $STEPPATH and `config/` of `/etc/auto-ssl`, where `ca init` stored the CA password as
/// `ca-password` (also used as the provisioner password). The archive is read with the same strict
/// tar reader as our own backups, unpacked into a private directory, and imported from there
/// through `importStepCA`; the directory is removed afterwards.
public struct OriginalBackupImport {
    /// `openssl enc -pbkdf2` without `-iter`.
    public static let defaultIterations = 10_000
    /// Where the original tool kept the CA (and provisioner) password, inside `config/`.
    public static let passwordFileName = "ca-password"

    public let directories: Directories

    public init(directories: Directories) {
        self.directories = directories
    }

    public struct Secrets: Sendable {
        public var passphrase: String
        public var iterations = OriginalBackupImport.defaultIterations
        /// step-ca's key password; nil = `config/ca-password` from the backup.
        public var stepCAPassword: String?
        /// nil = the same as the CA password, as the original tool set it up.
        public var provisionerPassword: String?

        public init(passphrase: String) {
            self.passphrase = passphrase
        }
    }

    public struct Imported: Sendable {
        public var report: CAImportReport
        /// metadata.json's fields that describe the old CA (name, URL, host, version, time).
        public var metadata: [(String, String)]
        /// Where the CA password came from, in words.
        public var passwordSource: String
    }

    /// `options.stepCADirectory` and `options.stepCAPassword` are set from the backup.
    public func importBackup(_ bytes: [UInt8], secrets: Secrets, options template: CAImportOptions, now: Date = Date()) throws -> Imported {
        let initializer = CAInitializer(directories: directories)
        try initializer.checkNotInitialised(force: template.force)
        guard (1_000...10_000_000).contains(secrets.iterations) else {
            throw AutoSSLError.invalidArgument("--iterations must be between 1000 and 10000000")
        }
        let archive = try OpenSSLEnc.decrypt(bytes, passphrase: secrets.passphrase, iterations: secrets.iterations)
        let createdDataDirectory = !FileOperations.exists(directories.dataDir)
        try FileOperations.makeDirectory(directories.dataDir, mode: 0o755)
        let work = directories.dataDir + "/.import-" + Passwords.generate(length: 10)
        try FileOperations.makeDirectory(work, mode: 0o700)
        defer {
            try? FileOperations.removeTree(work)
            if createdDataDirectory, !FileOperations.exists(directories.caDir) { rmdir(directories.dataDir) }
        }
        let tar = try TarReader.gunzip(archive, scratchDirectory: work)
        let members = try TarReader.members(of: tar)
        try Self.checkLayout(members)
        let files = work + "/files"
        try FileOperations.makeDirectory(files, mode: 0o700)
        try TarReader.write(members, from: tar, into: files) { _ in 0o600 }

        var metadata: [(String, String)] = []
        if let bytes = try CAInitializer.readRegularFile(files + "/metadata.json", limit: 64 * 1024),
           let object = (try? JSONSerialization.jsonObject(with: Data(bytes))) as? [String: Any] {
            for key in ["ca_name", "ca_url", "hostname", "version", "timestamp"] {
                if let value = object[key] as? String, !value.isEmpty { metadata.append((key, StepCAConfig.printable(value))) }
            }
        }
        var options = template
        options.source = "auto-ssl-backup"
        options.stepCADirectory = files + "/step-ca"
        let passwordSource: String
        if let given = secrets.stepCAPassword {
            options.stepCAPassword = given
            passwordSource = "--password-file"
        } else if let stored = try CAInitializer.readRegularFile(files + "/config/" + Self.passwordFileName, limit: 4_096),
                  let text = String(bytes: stored, encoding: .utf8), !Passwords.fromFileContents(text).isEmpty {
            options.stepCAPassword = Passwords.fromFileContents(text)
            passwordSource = "the backup's config/\(Self.passwordFileName)"
        } else {
            throw AutoSSLError.invalidArgument(
                "the backup holds no config/\(Self.passwordFileName), so the CA key password must be given; nothing was changed",
                hint: "pass step-ca's CA key password with --password-file")
        }
        options.provisionerPassword = secrets.provisionerPassword ?? options.stepCAPassword
        let report = try initializer.importStepCA(options, now: now)
        return Imported(report: report, metadata: metadata, passwordSource: passwordSource)
    }

    /// Only `metadata.json`, files and directories under `step-ca/`, and files directly in `config/`
    /// (optionally all below one top directory, `./` included); links and the like are refused by
    /// `TarReader.members` already.
    static func checkLayout(_ members: [TarMember]) throws {
        var sawStepCA = false
        for member in members {
            let parts = member.components.filter { $0 != "." }.map(String.init)
            switch (parts.first, parts.count, member.kind) {
            case (nil, _, .directory), ("config", 1, .directory), ("config", 2, .file), ("step-ca", 1, .directory), ("metadata.json", 1, .file):
                continue
            case ("step-ca", 2..., _):
                sawStepCA = true
            case ("config", 3..., _):
                continue  // a subdirectory of /etc/auto-ssl (not read)
            default:
                throw TarReader.refused(
                    member.path, "an original auto-ssl backup holds only metadata.json, step-ca/ and config/")
            }
        }
        guard sawStepCA else {
            throw AutoSSLError.general(
                "the archive holds no step-ca/ directory: it is not a backup of the original auto-ssl; nothing was changed",
                hint: "a backup made by this auto-ssl is restored with `auto-ssl ca restore`")
        }
    }
}
