import ArgumentParser
import AutoSSLBackup
import AutoSSLCA
import AutoSSLConfig
import AutoSSLCore
import AutoSSLHost
import AutoSSLIO
import Foundation

struct CABackupScheduleCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "backup-schedule",
        abstract: "Show, enable or disable scheduled backups (auto-ssl-backup.service and .timer).",
        discussion: """
            The timer runs `ca backup` into --output (a directory), keeps the newest --retention backups and \
            deletes older ones only after a new backup succeeded. `ca status` shows the schedule and the last \
            backup's time and result. Without --enable or --disable, shows the schedule and the last backup.
            """)

    @Flag(help: "Write and enable the units.") var enable = false
    @Flag(help: "Remove the units.") var disable = false
    @Option(help: "daily, weekly or monthly (default daily).") var schedule: String?
    @Option(help: ArgumentHelp("Directory the backups go to.", valueName: "dir")) var output: String?
    @Option(help: "How many backups to keep (default 4).") var retention: Int?
    @Option(help: ArgumentHelp("File holding the backup passphrase (mode 0600; the timer reads it).", valueName: "file"))
    var passphraseFile: String?

    @Flag(help: "Without --enable or --disable: print the schedule as JSON.") var json = false

    func run() throws {
        guard !(enable && disable) else { throw AutoSSLError.invalidArgument("give --enable or --disable, not both") }
        let directories = Directories.fromEnvironment()
        let configuration = try AutoSSLConfiguration.load(from: directories.configFile)
        guard let settings = configuration.ca else {
            throw AutoSSLError.general("no CA on this machine", hint: "create one with `auto-ssl ca init`")
        }
        if !enable && !disable {
            guard schedule == nil, output == nil, retention == nil, passphraseFile == nil else {
                throw AutoSSLError.invalidArgument("--schedule, --output, --retention and --passphrase-file go with --enable")
            }
            try show(settings.backupSchedule, directories: directories)
            return
        }
        guard !json else { throw AutoSSLError.invalidArgument("--json only goes with showing the schedule (no --enable or --disable)") }
        let schedule = schedule ?? "daily"
        let retention = retention ?? 4
        let service = directories.systemdDir + "/auto-ssl-backup.service"
        let timer = directories.systemdDir + "/auto-ssl-backup.timer"
        let managesSystem = directories.systemdDir == Directories.defaults.systemdDir && SystemdUnits.systemdIsRunning
        if disable {
            if managesSystem { _ = SystemCommandRunner().run("systemctl", ["disable", "--now", "auto-ssl-backup.timer"], timeout: 60) }
            try FileOperations.removeTree(service)
            try FileOperations.removeTree(timer)
            try SharedSettingsSync(directories: directories).updateLocalSettings { $0.backupSchedule = nil }
            if managesSystem { _ = SystemCommandRunner().run("systemctl", ["daemon-reload"], timeout: 60) }
            print("Scheduled backups are disabled (units removed).")
            return
        }
        guard let calendar = SystemdUnits.backupCalendars[schedule] else {
            throw AutoSSLError.invalidArgument("--schedule must be daily, weekly or monthly")
        }
        guard retention >= 1 else { throw AutoSSLError.invalidArgument("--retention must be at least 1") }
        guard let output, let passphraseFile else {
            throw AutoSSLError.invalidArgument("--enable needs --output (a directory) and --passphrase-file")
        }
        let outputDirectory = Directories.absolute(output)
        let passphrasePath = Directories.absolute(passphraseFile)
        try CABackup.validatePassphrase(try SecretFiles.read(passphrasePath, option: "--passphrase-file"))
        if let mode = FileOperations.mode(of: passphrasePath), mode & 0o077 != 0 {
            throw AutoSSLError(.permissionDenied, "\(passphrasePath) is readable by group or others", hint: "run chmod 600 \(passphrasePath)")
        }
        try FileOperations.makeDirectory(outputDirectory, mode: 0o700)
        let executable = Directories.absolute(CommandLine.arguments[0].contains("/")
            ? CommandLine.arguments[0] : (SystemCommandRunner().which("auto-ssl") ?? "/usr/local/bin/auto-ssl"))
        try FileOperations.makeDirectory(directories.systemdDir, mode: 0o755)
        try FileOperations.writeAtomically(
            SystemdUnits.backupService(
                executable: executable, configDir: directories.configDir, dataDir: directories.dataDir,
                outputDirectory: outputDirectory, retention: retention, passphraseFile: passphrasePath),
            to: service, mode: 0o644)
        try FileOperations.writeAtomically(SystemdUnits.backupTimer(calendar: calendar), to: timer, mode: 0o644)
        for unit in [service, timer] {
            if case .failed(let output) = SystemdUnits.verify(unit) {
                throw AutoSSLError.general("systemd-analyze verify reports problems with \(unit):\n\(output)")
            }
        }
        let backupSchedule = BackupSchedule(
            schedule: schedule, outputDirectory: outputDirectory, retention: retention, passphraseFile: passphrasePath)
        try SharedSettingsSync(directories: directories).updateLocalSettings { $0.backupSchedule = backupSchedule }
        print("Wrote \(service) and \(timer) (\(schedule), keeping \(retention) backups in \(outputDirectory)).")
        if managesSystem {
            let runner = SystemCommandRunner()
            for arguments in [["daemon-reload"], ["enable", "--now", "auto-ssl-backup.timer"]] {
                guard let result = runner.run("systemctl", arguments, timeout: 60), result.status == 0 else {
                    throw AutoSSLError.general("`systemctl \(arguments.joined(separator: " "))` failed")
                }
            }
            print("auto-ssl-backup.timer is enabled.")
        } else {
            print("systemd is not managing \(directories.systemdDir) here; enable with: systemctl daemon-reload && systemctl enable --now auto-ssl-backup.timer")
        }
    }

    /// The schedule as recorded, the units and the last backup's result.
    private func show(_ recorded: BackupSchedule?, directories: Directories) throws {
        if json {
            try Output.json(BackupState.report(directories: directories))
            return
        }
        let timer = directories.systemdDir + "/auto-ssl-backup.timer"
        if let recorded {
            print("Scheduled:   \(recorded.schedule), into \(recorded.outputDirectory), keeping \(recorded.retention)")
            print("Passphrase:  \(recorded.passphraseFile)")
            print("Timer:       " + (FileOperations.exists(timer) ? timer : "\(timer) is missing: run --enable again"))
        } else {
            print("Scheduled:   no (enable with: auto-ssl ca backup-schedule --enable --output DIR --passphrase-file FILE)")
        }
        if let last = BackupState.last(directories) {
            print("Last backup: \(last.succeeded ? "succeeded" : "FAILED") at \(Output.date(last.time))" + (last.succeeded ? "" : ": \(last.detail)"))
        } else {
            print("Last backup: none yet")
        }
    }
}
