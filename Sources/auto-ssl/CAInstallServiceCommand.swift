import ArgumentParser
import AutoSSLCA
import AutoSSLConfig
import AutoSSLCore
import AutoSSLHost
import AutoSSLIO
import Foundation

struct CAInstallServiceCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "install-service",
        abstract: "Write a hardened auto-ssl-ca.service for systemd (and optionally start it).")

    @Flag(help: "Enable and start the service now (needs a running systemd).")
    var now = false

    @Option(help: ArgumentHelp(
        "File holding the CA key password (may be /dev/stdin): checked against the CA's key, then stored 0600 as $AUTO_SSL_CONFIG_DIR/ca-password, which the unit passes to the service as its systemd credential.",
        valueName: "file"))
    var passwordFile: String?

    @Option(help: ArgumentHelp(
        "The account the service runs as. Default: auto-ssl when that user exists (the Debian package creates it), else root. The CA's files (the data directory itself, its ca/ tree, audit.log) are given to this user; configuration and password files stay as they are.",
        valueName: "user"))
    var user: String?

    func run() throws {
        let directories = Directories.fromEnvironment()
        let settings = try AuthorityLoader(directories: directories).settings()
        let executable = Directories.absolute(CommandLine.arguments[0].contains("/")
            ? CommandLine.arguments[0] : (SystemCommandRunner().which("auto-ssl") ?? "/usr/local/bin/auto-ssl"))
        if let given = passwordFile {
            try Self.storeCAPassword(from: given, settings: settings, directories: directories)
        }
        let passwordFile = settings.passwordFile ?? (FileOperations.exists(directories.caPasswordFile) ? directories.caPasswordFile : nil)
        if passwordFile == nil, now {
            throw AutoSSLError.invalidArgument(
                "the service would not start: no CA password is stored on this machine",
                hint: "pass --password-file FILE (a file holding the CA key password); it is stored for the service")
        }
        let account = try Self.serviceAccount(named: user)
        if let account {
            try Self.handOver(directories: directories, to: account)
        }
        let unit = SystemdUnits.caService(
            executable: executable, configDir: directories.configDir, dataDir: directories.dataDir,
            passwordFile: passwordFile, lowPort: Self.listensBelow1024(settings),
            user: account?.name, group: account?.group)
        try FileOperations.makeDirectory(directories.systemdDir, mode: 0o755)
        let path = directories.systemdDir + "/auto-ssl-ca.service"
        try FileOperations.writeAtomically(unit, to: path, mode: 0o644)
        print("Wrote \(path)")
        if let account {
            print("The service runs as \(account.name):\(account.group); the CA's files in \(directories.dataDir) belong to it.")
        } else {
            print("The service runs as root\(user == nil ? " (there is no \(ServiceUser.packaged) user on this machine; --user picks an account)" : "").")
        }
        if let passwordFile {
            print("The service gets the CA password from \(passwordFile) as its systemd credential ca-password (LoadCredential=).")
        } else {
            print("No CA password is stored on this machine: the service cannot start until you run this again with --password-file FILE.")
        }
        switch SystemdUnits.verify(path) {
        case .passed: print("systemd-analyze verify: ok")
        case .unavailable: print("systemd-analyze is not available here; the unit was not verified")
        case .failed(let output):
            throw AutoSSLError.general("systemd-analyze verify reports problems with \(path):\n\(output)")
        }
        guard now else {
            print("Start it with: sudo systemctl daemon-reload && sudo systemctl enable --now auto-ssl-ca")
            return
        }
        guard SystemdUnits.systemdIsRunning else {
            throw AutoSSLError(.missingDependency, "systemd is not running on this machine; start `auto-ssl ca serve` another way")
        }
        let runner = SystemCommandRunner()
        for arguments in [["daemon-reload"], ["enable", "--now", "auto-ssl-ca.service"]] {
            guard let result = runner.run("systemctl", arguments, timeout: 60), result.status == 0 else {
                throw AutoSSLError.general("`systemctl \(arguments.joined(separator: " "))` failed")
            }
        }
        print("auto-ssl-ca.service is enabled and started.")
    }

    /// The account the unit names: `--user`, else the packaged `auto-ssl` user when it exists; nil
    /// for root (the unit then has no User= line, as before the package existed).
    static func serviceAccount(named requested: String?) throws -> ServiceUser? {
        let name = requested ?? (ServiceUser.lookup(ServiceUser.packaged) != nil ? ServiceUser.packaged : "root")
        guard let account = ServiceUser.lookup(name) else {
            throw AutoSSLError.invalidArgument(
                "--user: there is no user named \(name) on this machine",
                hint: "create it (the Debian package creates \(ServiceUser.packaged)), or leave --user out")
        }
        return account.isRoot ? nil : account
    }

    /// Gives the CA's files to the service's account: the data directory itself (for audit.log and
    /// backup-state.json), the CA's tree (keys, certificates, database) and the files `ca serve`
    /// appends to. Other roles' files in the data directory (an enrolled server's) stay as they are.
    static func handOver(directories: Directories, to account: ServiceUser) throws {
        try account.own(directories.dataDir, recursive: false)
        try account.own(directories.caDir, recursive: true)
        for file in [directories.auditLog, directories.dataDir + "/backup-state.json"] where FileOperations.exists(file) {
            try account.own(file, recursive: false)
        }
        for directory in [directories.dataDir, directories.configDir] {
            if let blocked = account.blockedAncestor(of: directory) {
                Output.warning("\(account.name) cannot enter \(blocked), so the service will not reach \(directory); make it searchable (chmod o+x) or move the directory")
            }
        }
    }

    /// Whether the CA listens on a port only root (or CAP_NET_BIND_SERVICE) may bind: its HTTPS
    /// addresses, the revocation listener or the metrics listener.
    static func listensBelow1024(_ settings: CASettings) -> Bool {
        let listeners = settings.addresses + [settings.revocation?.listen, settings.metricsAddress].compactMap { $0 }
        return listeners.contains { $0.port < 1024 }
    }

    /// Stores the CA password where the unit's LoadCredential= (and `ca serve`) find it, after
    /// checking that it opens the intermediate key: nothing is written for a wrong one.
    static func storeCAPassword(from file: String, settings: CASettings, directories: Directories) throws {
        let password = try SecretFiles.read(file, option: "--password-file")
        do {
            _ = try EncryptedPrivateKey.decryptKey(
                pem: try FileOperations.readText(settings.paths.intermediateKey), password: password)
        } catch {
            throw AutoSSLError.invalidArgument(
                "--password-file: the password in \(file) does not open the CA's intermediate key; nothing was written",
                hint: "give the CA key password chosen at `auto-ssl ca init`")
        }
        let target = directories.caPasswordFile
        if !SecretFiles.isStandardInput(file), Directories.absolute(file) == target {
            print("The CA password in \(target) opens the CA's key.")
            return
        }
        try FileOperations.makeDirectory(directories.configDir, mode: 0o755)
        try FileOperations.writeAtomically(password + "\n", to: target, mode: 0o600)
        print("Stored the CA password in \(target) (mode 0600).")
    }
}

/// How to start the CA, at the end of `ca init` and `ca restore`: `ca serve` and `ca
/// install-service`, with `--password-file` unless the CA password is stored where they find it.
enum CAStartSteps {
    static func lines(settings: CASettings, directories: Directories, givenPasswordFile: String?) -> [String] {
        let stored = settings.passwordFile ?? (FileOperations.exists(directories.caPasswordFile) ? directories.caPasswordFile : nil)
        if let stored {
            return [
                "  Start the CA:          auto-ssl ca serve   (it reads the CA password from \(stored))",
                "  Or as a service:       sudo auto-ssl ca install-service --now",
            ]
        }
        var lines: [String] = []
        let file: String
        if let given = givenPasswordFile, !SecretFiles.isStandardInput(given) {
            file = Directories.absolute(given)
        } else {
            file = "FILE"
            lines.append("  The CA password is not stored on this machine; put it in a FILE only root can read (chmod 600), then:")
        }
        lines += [
            "  Start the CA:          auto-ssl ca serve --password-file \(file)",
            "  Or as a service:       sudo auto-ssl ca install-service --password-file \(file) --now",
            "                         (stores the password for the service as its systemd credential)",
        ]
        return lines
    }
}
