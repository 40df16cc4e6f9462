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

/// Installing a CA that a backup brought back (the archive itself is read by `AutoSSLBackup`): the
/// CA's layout, paths and install transaction are the authority's business.
extension CAInitializer {
    public struct RestoredCA: Sendable {
        public var settings: CASettings
        /// Where the CA that was replaced went (`--force`), if there was one.
        public var previousCALocation: String?
    }

    /// Refuses (changing nothing) when a CA exists on this machine and `force` is not given.
    public func checkCanRestore(force: Bool) throws {
        guard !force, let existing = try existingCA() else { return }
        throw AutoSSLError.general(
            "a CA already exists on this machine (\(existing)); nothing was changed",
            hint: "rerun with --force to replace it (the current CA is moved aside, not deleted)")
    }

    /// Installs `content/ca` as this machine's CA directory and `content/config` (config.yaml and the
    /// password files) into the configuration directory, rewriting paths for the directories in use.
    /// An existing CA is refused unless `force`, and then moved aside first; any failure puts back
    /// what was there. `content/ca` is moved, not copied.
    public func installRestored(from content: String, force: Bool, newAddress: ListenAddress?, now: Date = Date()) throws -> RestoredCA {
        try checkCanRestore(force: force)
        let backupConfig = try AutoSSLConfiguration.load(from: content + "/config/config.yaml")
        guard var settings = backupConfig.ca else { throw AutoSSLError.general("the backup's config.yaml has no CA section") }
        let paths = CAPaths(caDir: directories.caDir)
        settings.paths = paths
        settings.provisioners = settings.provisioners.map { provisioner in
            var updated = provisioner
            updated.encryptedKeyFile = paths.provisionerKeyFile(provisioner.name)
            updated.passwordFile = provisioner.passwordFile.map { directories.configDir + "/" + ($0 as NSString).lastPathComponent }
            return updated
        }
        settings.passwordFile = settings.passwordFile.map { directories.configDir + "/" + ($0 as NSString).lastPathComponent }
        if var database = settings.database {
            database.passwordFile = database.passwordFile.map { directories.configDir + "/" + ($0 as NSString).lastPathComponent }
            settings.database = database
        }
        if let newAddress { settings.addresses = [newAddress] }

        try FileOperations.makeDirectory(directories.configDir, mode: 0o755)
        var transaction = InstallTransaction(directories: directories, logger: logger)
        do {
            if force, try existingCA() != nil {
                try transaction.moveExistingCAAside(suffix: "replaced-" + FileOperations.timestamp(now))
            }
            try Self.tightenModes(content + "/ca")
            try FileOperations.move(content + "/ca", to: directories.caDir)
            transaction.installedCADirectory = true
            let configFiles = (try? FileManager.default.contentsOfDirectory(atPath: content + "/config")) ?? []
            for name in configFiles where name != "config.yaml" {
                try transaction.writeSecret(
                    Passwords.fromFileContents(try FileOperations.readText(content + "/config/" + name)),
                    to: directories.configDir + "/" + name)
            }
            try transaction.installCASettings(settings)
        } catch {
            transaction.rollBack()
            throw error
        }
        return RestoredCA(settings: settings, previousCALocation: transaction.movedAside)
    }

    /// Secrets 0700/0600, database 0700, certificates readable: whatever the archive said. Never
    /// through a symbolic link (the archive cannot hold one; this does not trust that either).
    static func tightenModes(_ caDir: String) throws {
        for (path, mode) in [(caDir + "/secrets", mode_t(0o700)), (caDir + "/db", 0o700), (caDir + "/certs", 0o755), (caDir + "/certs/intermediates", 0o755), (caDir, 0o755)] {
            TarReader.setMode(path, mode)
        }
        for directory in [caDir + "/secrets", caDir + "/db", caDir + "/secrets/intermediates"] {
            for name in (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? [] {
                let path = directory + "/" + name
                var status = stat()
                guard lstat(path, &status) == 0 else { continue }
                TarReader.setMode(path, status.st_mode & S_IFMT == S_IFDIR ? 0o700 : 0o600)
            }
        }
    }
}
