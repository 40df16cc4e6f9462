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
    public var caDir: String { dataDir + "/ca" }
    public var auditLog: String { dataDir + "/audit.log" }

    /// What auto-ssl keeps for itself: the configuration directory (config.yaml, stored passwords,
    /// its lock) and the data directory (the CA, the server's state, lock and certificate backups,
    /// adopted files, the audit log). No certificate or key it writes for a server may be one of
    /// them or lie inside one (`FileOperations.checkReplaceable`). A certificate directory placed
    /// inside either directory stays usable: then only the files auto-ssl keeps there are
    /// reserved (in the configuration directory, every `provisioner-*-password` there now too).
    /// Secret files config.yaml names elsewhere are added by `AutoSSLConfiguration.reservedPaths`.
    public var ownPaths: [String] {
        var paths: [String] = []
        if Self.isInside(certDir, dataDir) {
            paths += [caDir, auditLog] + ["server-state.json", ".server.lock", "cert-backups", "adopted", "backup-state.json",
                                          "remote-hosts.json"].map { dataDir + "/" + $0 }
        } else {
            paths.append(dataDir)
        }
        if Self.isInside(certDir, configDir) {
            paths += [configFile, caPasswordFile, provisionerPasswordFile, configDir + "/.settings.lock"]
            let stored = ((try? FileManager.default.contentsOfDirectory(atPath: configDir)) ?? []).filter {
                $0.hasPrefix("provisioner-") && ($0.hasSuffix("-password") || $0.hasSuffix("-password.pending"))
            }
            paths += stored.sorted().map { configDir + "/" + $0 }.filter { !paths.contains($0) }
        } else {
            paths.append(configDir)
        }
        return paths
    }

    /// Whether `path` is `directory` or lies inside it (as written, after standardizing).
    static func isInside(_ path: String, _ directory: String) -> Bool {
        let path = (path as NSString).standardizingPath, directory = (directory as NSString).standardizingPath
        return path == directory || path.hasPrefix(directory == "/" ? "/" : directory + "/")
    }
}
