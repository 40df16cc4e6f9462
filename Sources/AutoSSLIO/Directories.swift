import Foundation

/// Where auto-ssl keeps its files. Every directory can be moved with an environment variable,
/// which is how the tests run without touching /etc or /var.
public struct Directories: Sendable, Codable, Equatable {
    public var configDir: String
    public var dataDir: String
    public var certDir: String
    public var systemdDir: String

    public static let defaults = Directories(
        configDir: "/etc/auto-ssl", dataDir: "/var/lib/auto-ssl", certDir: "/etc/ssl/auto-ssl",
        systemdDir: "/etc/systemd/system")

    public init(configDir: String, dataDir: String, certDir: String, systemdDir: String) {
        self.configDir = configDir
        self.dataDir = dataDir
        self.certDir = certDir
        self.systemdDir = systemdDir
    }

    /// The defaults, overridden by AUTO_SSL_CONFIG_DIR, AUTO_SSL_DATA_DIR, AUTO_SSL_CERT_DIR and
    /// AUTO_SSL_SYSTEMD_DIR. Relative overrides are made absolute against the working directory so
    /// that paths recorded in config.yaml stay valid from anywhere.
    public static func fromEnvironment(_ environment: [String: String] = ProcessInfo.processInfo.environment) -> Directories {
        func pick(_ name: String, _ fallback: String) -> String {
            guard let value = environment[name], !value.isEmpty else { return fallback }
            return absolute(value)
        }
        return Directories(
            configDir: pick("AUTO_SSL_CONFIG_DIR", defaults.configDir),
            dataDir: pick("AUTO_SSL_DATA_DIR", defaults.dataDir),
            certDir: pick("AUTO_SSL_CERT_DIR", defaults.certDir),
            systemdDir: pick("AUTO_SSL_SYSTEMD_DIR", defaults.systemdDir))
    }

    public static func absolute(_ path: String) -> String {
        let url = path.hasPrefix("/")
            ? URL(fileURLWithPath: path)
            : URL(fileURLWithPath: FileManager.default.currentDirectoryPath).appendingPathComponent(path)
        return url.standardizedFileURL.path
    }

    public var configFile: String { configDir + "/config.yaml" }
    public var caPasswordFile: String { configDir + "/ca-password" }
    public var provisionerPasswordFile: String { configDir + "/provisioner-password" }
    public var caDir: String { dataDir + "/" + Self.caDirName }
    static let caDirName = "ca"
    public var auditLog: String { dataDir + "/audit.log" }

    /// What auto-ssl keeps for itself: the configuration directory (config.yaml, stored passwords,
    /// its lock) and the data directory (the CA and the copies set aside by `--force`, the
    /// server's state, lock and certificate backups, adopted files, the audit log). No certificate
    /// or key it writes for a server may be one of them or lie inside one
    /// (`FileOperations.checkReplaceable`). A certificate directory placed inside either directory
    /// stays usable: then everything else there is reserved (each entry but the one that leads to
    /// the certificate directory, and the files auto-ssl makes there later). Secret files
    /// config.yaml names elsewhere are added by `AutoSSLConfiguration.reservedPaths`.
    public var ownPaths: [String] {
        var paths: [String] = []
        func reserve(_ directory: String, known: [String]) {
            guard let leading = Self.entry(of: directory, leadingTo: certDir) else {
                paths.append(directory)
                return
            }
            // Everything there but the way to the certificates; when the certificates are in the
            // directory itself, what auto-ssl keeps there (its own names and name patterns).
            let present = ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).filter { name in
                !leading.isEmpty || [Self.caDirName + ".", ".ca-staging-", ".import-", ".backup-", "provisioner-"].contains { name.hasPrefix($0) }
            }
            for name in Set(known + present).sorted() where name != leading {
                paths.append(directory + "/" + name)
            }
        }
        reserve(dataDir, known: ["ca", "audit.log", "server-state.json", ".server.lock", "cert-backups", "adopted", "backup-state.json", "remote-hosts.json"])
        reserve(configDir, known: ["config.yaml", "ca-password", "provisioner-password", ".settings.lock"])
        return paths
    }

    /// The name of the entry of `directory` on the way to `path` when `path` lies inside it (its
    /// links resolved as far as they exist, as `FileOperations.checkReplaceable` compares paths),
    /// nil otherwise; "" when `path` is `directory` itself.
    static func entry(of directory: String, leadingTo path: String) -> String? {
        func resolved(_ path: String) -> String {
            var existing = (path as NSString).standardizingPath
            var rest: [String] = []
            while existing != "/", !existing.isEmpty, !FileManager.default.fileExists(atPath: existing) {
                rest.insert((existing as NSString).lastPathComponent, at: 0)
                existing = (existing as NSString).deletingLastPathComponent
            }
            let real = FileOperations.realPath(existing) ?? existing
            return rest.isEmpty ? real : (real == "/" ? "" : real) + "/" + rest.joined(separator: "/")
        }
        let directory = resolved(directory), path = resolved(path)
        if path == directory { return "" }
        let prefix = directory == "/" ? "/" : directory + "/"
        guard path.hasPrefix(prefix) else { return nil }
        return path.dropFirst(prefix.count).split(separator: "/").first.map(String.init)
    }
}
