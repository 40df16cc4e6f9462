import ArgumentParser
import AutoSSLCore

struct AutoSSLCommand: AsyncParsableCommand {
    static let version = "0.1.0"
    static var versionLine: String { "auto-ssl \(version)" }

    static let configuration = CommandConfiguration(
        commandName: "auto-ssl",
        abstract: "Internal PKI made easy: a private CA, short-lived server certificates that renew themselves, and client trust.",
        discussion: """
            Directories can be moved with AUTO_SSL_CONFIG_DIR, AUTO_SSL_DATA_DIR, AUTO_SSL_CERT_DIR and \
            AUTO_SSL_SYSTEMD_DIR; AUTO_SSL_DEBUG=1 adds debug logging on stderr.

            Exit codes: 0 ok, 1 error, 2 invalid arguments, 3 missing dependency, 4 permission denied, \
            5 network error, 6 trust failure, 7 the CA is in use (ca serve excludes ca database migrate, \
            ca reset and replacing the CA with --force), 8 a command on a remote host failed (remote).
            """,
        version: versionLine,
        subcommands: [CACommand.self, ServerCommand.self, RemoteCommand.self, CertCommand.self, ClientCommand.self, InfoCommand.self, VersionCommand.self]
    )
}

struct CACommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ca",
        abstract: "Create and run the Certificate Authority.",
        subcommands: [
            CAInitCommand.self, CAServeCommand.self, CAStatusCommand.self, CACertsCommand.self, CAFleetCommand.self, CARevokeCommand.self,
            CAProvisionerCommand.self,
            CARotateIntermediateCommand.self, CABackupCommand.self, CARestoreCommand.self, CABackupScheduleCommand.self, CAInstallServiceCommand.self,
            CAResetCommand.self, CADatabaseCommand.self, CAReplicaCommand.self, CAImportCommand.self, CATokenCommand.self,
        ]
    )
}

struct VersionCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "version", abstract: "Print the version.")

    func run() {
        print(AutoSSLCommand.versionLine)
    }
}
