import ArgumentParser
import AutoSSLCA
import AutoSSLConfig
import AutoSSLCore
import AutoSSLHost
import AutoSSLIO
import Foundation

struct CAImportCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "import",
        abstract: "Make this machine's CA from a step-ca directory or an original auto-ssl backup.",
        discussion: """
            The same root and intermediate (keys re-encrypted in auto-ssl's format), the same JWK provisioners \
            (their encryptedKey kept, so the same password opens it), the ACME provisioners and the durations. \
            Everything else (other provisioner types, templates, step-ca's database, the SSH CA) is named in the \
            output. The step-ca files are only read. An existing CA is refused unless --force. See docs/migrating.md.

            EXAMPLES:
              sudo auto-ssl ca import --step-ca /etc/step-ca --password-file /etc/step-ca/password.txt \\
                  --provisioner-password-file /root/provisioner-password
              sudo auto-ssl ca import --auto-ssl-backup /backup/ca-backup.enc --passphrase-file /root/backup-pass
            """)

    @Option(help: ArgumentHelp("A step-ca directory ($STEPPATH: config/ca.json, certs/, secrets/).", valueName: "dir"))
    var stepCa: String?
    @Option(help: ArgumentHelp("An encrypted backup made by the original auto-ssl (`auto-ssl ca backup` of the bash tool).", valueName: "file"))
    var autoSslBackup: String?
    @Option(help: ArgumentHelp(
        "step-ca's CA key password (first line; may be /dev/stdin). With --auto-ssl-backup, default: the backup's config/ca-password.",
        valueName: "file"))
    var passwordFile: String?
    @Option(help: ArgumentHelp("Encrypt the imported keys under this password instead (at least 16 characters).", valueName: "file"))
    var newPasswordFile: String?
    @Option(help: ArgumentHelp(
        "Check that this password opens the JWK provisioners' keys. With --auto-ssl-backup, default: the CA password (as the original tool set it).",
        valueName: "file"))
    var provisionerPasswordFile: String?
    @Option(help: ArgumentHelp("With --auto-ssl-backup: the backup passphrase (may be /dev/stdin).", valueName: "file"))
    var passphraseFile: String?
    @Option(help: "With --auto-ssl-backup: PBKDF2 iterations of its openssl enc format (openssl's default for -pbkdf2 is 10000).")
    var iterations = OriginalBackupImport.defaultIterations
    @Flag(help: "Lower step-ca lifetimes above auto-ssl's 30-day maximum to 720h instead of refusing.")
    var clampDurations = false
    @Option(help: ArgumentHelp("Serve on host:port (repeatable). Default: ca.json's address.", valueName: "host:port"))
    var address: [String] = []
    @Flag(help: "Replace an existing CA (it is moved aside, never deleted).") var force = false
    @OptionGroup var quiet: QuietOption

    func validate() throws {
        guard (stepCa == nil) != (autoSslBackup == nil) else {
            throw ValidationError("give exactly one of --step-ca DIR and --auto-ssl-backup FILE")
        }
        if stepCa != nil, passphraseFile != nil { throw ValidationError("--passphrase-file goes with --auto-ssl-backup") }
        let stdinReaders = [passwordFile, newPasswordFile, provisionerPasswordFile, passphraseFile].filter(SecretFiles.isStandardInput)
        if stdinReaders.count > 1 { throw ValidationError("only one of the password options can read standard input") }
    }

    func run() async throws {
        Output.quiet = quiet.quiet
        let directories = Directories.fromEnvironment()
        let initializer = CAInitializer(directories: directories)
        // Refuse before asking for any secret.
        try initializer.checkNotInitialised(force: force)
        var options = CAImportOptions(stepCADirectory: stepCa ?? "", stepCAPassword: "")
        options.clampDurations = clampDurations
        options.force = force
        options.addresses = try address.map(ListenAddress.init(parsing:))
        options.defaultHost = NetworkAddresses.defaultCAHost()
        options.newCAPassword = try newPasswordFile.map { try SecretFiles.read($0, option: "--new-password-file") }
        if let new = options.newCAPassword { try Passwords.validate(new, purpose: "new CA key password") }
        let provisionerPassword = try provisionerPasswordFile.map { try SecretFiles.read($0, option: "--provisioner-password-file") }

        let report: CAImportReport
        if let stepCa {
            options.stepCADirectory = stepCa
            options.provisionerPassword = provisionerPassword
            options.stepCAPassword = try secret(passwordFile, option: "--password-file", prompt: "step-ca's CA key password: ")
            report = try initializer.importStepCA(options)
            Output.progress("Imported the step-ca CA from \(Directories.absolute(stepCa)) (its files were only read).")
        } else if let autoSslBackup {
            var secrets = OriginalBackupImport.Secrets(
                passphrase: try secret(passphraseFile, option: "--passphrase-file", prompt: "Backup passphrase: "))
            secrets.iterations = iterations
            secrets.stepCAPassword = try passwordFile.map { try SecretFiles.read($0, option: "--password-file") }
            secrets.provisionerPassword = provisionerPassword
            guard let bytes = FileManager.default.contents(atPath: autoSslBackup) else {
                throw AutoSSLError.invalidArgument("--auto-ssl-backup: \(autoSslBackup) cannot be read")
            }
            // The original tool kept the CA password with its configuration; so does the imported CA.
            options.storeCAPassword = true
            let imported = try OriginalBackupImport(directories: directories).importBackup(Array(bytes), secrets: secrets, options: options)
            report = imported.report
            Output.progress("Imported the original auto-ssl backup \(autoSslBackup) (CA password from \(imported.passwordSource)).")
            if !imported.metadata.isEmpty {
                Output.progress("Backup: " + imported.metadata.map { "\($0.0) \($0.1)" }.joined(separator: ", "))
            }
        } else {
            throw ValidationError("give exactly one of --step-ca DIR and --auto-ssl-backup FILE")
        }
        if quiet.quiet {
            print(report.rootFingerprint)
            return
        }
        if let previous = report.previousCALocation { Output.progress("The previous CA was moved to \(previous).") }
        Output.progress("CA \"\(report.settings.name)\" in \(report.settings.paths.caDir), root fingerprint \(report.rootFingerprint)")
        Output.progress("Addresses: \(report.settings.addresses.map(\.description).joined(separator: ", "))")
        Output.progress("Carried over:")
        for line in report.carried { Output.progress("  - " + line) }
        Output.progress("Not carried over:")
        for line in report.notCarried { Output.progress("  - " + line) }
        if report.notCarried.isEmpty { Output.progress("  (nothing)") }
        for note in report.notes { Output.progress("Note: " + note) }
        if let stored = report.storedPasswordFile { Output.progress("The CA key password is stored in \(stored) (0600).") }
        Output.progress("Stop step-ca before starting this CA on the same address. Next steps:")
        let given = newPasswordFile ?? (report.storedPasswordFile == nil ? passwordFile : nil)
        for line in CAStartSteps.lines(settings: report.settings, directories: directories, givenPasswordFile: given) {
            Output.progress(line)
        }
    }

    private func secret(_ file: String?, option: String, prompt: String) throws -> String {
        if let file { return try SecretFiles.read(file, option: option) }
        guard Terminal.standardInputIsTerminal else {
            throw AutoSSLError.invalidArgument("the \(prompt.dropLast(2)) is needed", hint: "pass \(option) FILE (it may be /dev/stdin)")
        }
        return try Terminal.readSecret(prompt: prompt)
    }
}
