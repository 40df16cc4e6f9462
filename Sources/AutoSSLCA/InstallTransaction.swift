import AutoSSLConfig
import AutoSSLCore
import AutoSSLIO
import Foundation
import Logging

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The changes `ca init` and `ca reset` make to an installed CA, recorded so that a failure half-way
/// can put everything back: a moved-aside CA returns, and files we replaced get their old content.
struct InstallTransaction {
    let directories: Directories
    let logger: Logger
    /// The CA directory (and copies of the config files) moved aside, if any.
    private(set) var movedAside: String?
    var installedCADirectory = false
    /// Original contents of files we overwrote or removed (nil = the file did not exist).
    private var originals: [(path: String, contents: [UInt8]?, mode: mode_t)] = []
    /// config.yaml could not be read when the CA was moved aside (`--force` over a damaged file): its
    /// copy went with the old CA, and the new CA section starts from an empty configuration.
    private var configurationUnreadable = false

    init(directories: Directories, logger: Logger) {
        self.directories = directories
        self.logger = logger
    }

    static let configFilesKeptWithCA = ["config.yaml", "ca-password", "provisioner-password"]

    /// The files of `configDir` that belong to the CA: `configFilesKeptWithCA`, the stored
    /// passwords of the provisioners added since (`provisioner-NAME-password`, and a `.pending`
    /// one an interrupted password change left), and any other password file in `configDir` that
    /// the CA's `settings` name (its database's, say: a restore or init over it must keep a copy).
    static func configFilesOfCA(in configDir: String, settings: CASettings? = nil) -> [String] {
        let stored = ((try? FileManager.default.contentsOfDirectory(atPath: configDir)) ?? []).filter {
            $0.hasPrefix("provisioner-") && ($0.hasSuffix("-password") || $0.hasSuffix("-password.pending"))
                && !configFilesKeptWithCA.contains($0)
        }
        let named = settings.map { settings in
            ([settings.passwordFile, settings.database?.passwordFile] + settings.provisioners.map(\.passwordFile)).compactMap { path -> String? in
                guard let path, (path as NSString).deletingLastPathComponent == configDir else { return nil }
                return (path as NSString).lastPathComponent
            }
        } ?? []
        var seen = Set(configFilesKeptWithCA)
        var names = configFilesKeptWithCA
        for name in stored.sorted() + named where seen.insert(name).inserted { names.append(name) }
        return names
    }

    /// Moves `$DATA/ca` to `$DATA/ca.<suffix>` (keys stay encrypted, nothing is deleted) and puts copies of
    /// config.yaml and the password files in its `previous-config/`, so the old CA can be brought back whole.
    mutating func moveExistingCAAside(suffix: String) throws {
        let aside = directories.caDir + "." + suffix
        guard !FileOperations.exists(aside) else {
            throw AutoSSLError.general("\(aside) already exists; wait a second and try again")
        }
        let loaded = Result { try AutoSSLConfiguration.load(from: directories.configFile) }
        if case .failure = loaded { configurationUnreadable = true }
        if FileOperations.exists(directories.caDir) {
            let lock = try Self.lockAgainstServing(directories, settings: (try? loaded.get())?.ca)
            defer { lock?.release() }
            try FileOperations.move(directories.caDir, to: aside)
        } else {
            try FileOperations.makeDirectory(aside, mode: 0o700)
        }
        movedAside = aside
        try writeCopiesOfConfiguration(to: aside, settings: (try? loaded.get())?.ca)
        logger.info("moved the existing CA aside", metadata: ["path": "\(aside)"])
    }

    /// Not while the CA runs here: its server would go on writing to a moved or deleted database
    /// (exit 7). Held by the caller until the CA directory is gone; nil for a CA that never served
    /// (it has no lock file, and none is made for it).
    static func lockAgainstServing(_ directories: Directories, settings: CASettings?) throws -> CALock? {
        let lockPath = settings.map(CALock.path(for:)) ?? directories.caDir + "/db/.serve.lock"
        return FileOperations.exists(lockPath) ? try CALock(path: lockPath, mode: .replacing) : nil
    }

    private mutating func writeCopiesOfConfiguration(to aside: String, settings: CASettings?) throws {
        let copies = aside + "/previous-config"
        try FileOperations.makeDirectory(copies, mode: 0o700)
        // The CA's own password files leave with it; another file its settings name (the
        // database's password, which the new CA may name too) is copied and stays where it is.
        let leaving = Set(Self.configFilesOfCA(in: directories.configDir))
        for name in Self.configFilesOfCA(in: directories.configDir, settings: settings) {
            let path = directories.configDir + "/" + name
            guard FileOperations.exists(path) else { continue }
            // As bytes: a damaged config.yaml is kept as it is, whatever it holds.
            try FileOperations.writeAtomically(try FileOperations.readBytes(path), to: copies + "/" + name, mode: 0o600)
            if name != "config.yaml", leaving.contains(name) {
                try remove(path)
            }
        }
    }

    mutating func writeSecret(_ secret: String, to path: String) throws {
        try remember(path)
        try FileOperations.writeAtomically(secret + "\n", to: path, mode: 0o600)
    }

    /// Puts `settings` into config.yaml as the CA section, keeping every other section.
    mutating func installCASettings(_ settings: CASettings?) throws {
        // Over a damaged file, the server section is kept when it can still be read (this machine
        // may also be an enrolled server); the whole file went with the old CA.
        var configuration = configurationUnreadable
            ? AutoSSLConfiguration(server: try? AutoSSLConfiguration.loadServerSection(from: directories.configFile))
            : try AutoSSLConfiguration.load(from: directories.configFile)
        configuration.ca = settings
        try writeConfiguration(configuration)
    }

    mutating func writeConfiguration(_ configuration: AutoSSLConfiguration) throws {
        try remember(directories.configFile)
        if configuration.isEmpty {
            try FileOperations.removeTree(directories.configFile)
        } else {
            try configuration.save(to: directories.configFile)
        }
    }

    mutating func remove(_ path: String) throws {
        try remember(path)
        try FileOperations.removeTree(path)
    }

    private mutating func remember(_ path: String) throws {
        guard !originals.contains(where: { $0.path == path }) else { return }
        if FileOperations.exists(path) {
            originals.append((path, try FileOperations.readBytes(path), FileOperations.mode(of: path) ?? 0o600))
        } else {
            originals.append((path, nil, 0))
        }
    }

    /// Best effort: every step is attempted even if an earlier one fails, and failures are logged.
    func rollBack() {
        for original in originals.reversed() {
            do {
                if let contents = original.contents {
                    try FileOperations.writeAtomically(contents, to: original.path, mode: original.mode)
                } else {
                    try FileOperations.removeTree(original.path)
                }
            } catch {
                logger.error("rollback could not restore \(original.path): \(error)")
            }
        }
        if installedCADirectory {
            do { try FileOperations.removeTree(directories.caDir) } catch {
                logger.error("rollback could not remove the new CA directory: \(error)")
            }
        }
        if let movedAside, FileOperations.exists(movedAside + "/certs") || FileOperations.exists(movedAside + "/secrets") {
            do {
                try FileOperations.removeTree(movedAside + "/previous-config")
                try FileOperations.move(movedAside, to: directories.caDir)
            } catch {
                logger.error("rollback could not move the previous CA back from \(movedAside): \(error)")
            }
        }
    }
}
