import ArgumentParser
import AutoSSLCA
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

    func run() throws {
        let directories = Directories.fromEnvironment()
        let settings = try AuthorityLoader(directories: directories).settings()
        let executable = Directories.absolute(CommandLine.arguments[0].contains("/")
            ? CommandLine.arguments[0] : (SystemCommandRunner().which("auto-ssl") ?? "/usr/local/bin/auto-ssl"))
        let passwordFile = settings.passwordFile ?? (FileOperations.exists(directories.caPasswordFile) ? directories.caPasswordFile : nil)
        let unit = SystemdUnits.caService(
            executable: executable, configDir: directories.configDir, dataDir: directories.dataDir,
            passwordFile: passwordFile, lowPort: settings.addresses.contains { $0.port < 1024 })
        try FileOperations.makeDirectory(directories.systemdDir, mode: 0o755)
        let path = directories.systemdDir + "/auto-ssl-ca.service"
        try FileOperations.writeAtomically(unit, to: path, mode: 0o644)
        print("Wrote \(path)")
        if passwordFile == nil {
            print("No CA password file exists: create one (mode 0600) and add `LoadCredential=ca-password:<file>` to the unit.")
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
}
