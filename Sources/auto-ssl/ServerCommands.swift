import ArgumentParser
import AutoSSLAgent
import AutoSSLCA
import AutoSSLClient
import AutoSSLCore
import AutoSSLHost
import AutoSSLIO
import Foundation

struct ServerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "server",
        abstract: "Enroll this application server and keep its certificate renewed.",
        subcommands: [
            ServerEnrollCommand.self, ServerRenewCommand.self, ServerStatusCommand.self, ServerSuspendCommand.self,
            ServerResumeCommand.self, ServerRevokeCommand.self, ServerRemoveCommand.self, ServerSetCAURLCommand.self,
        ])
}

enum ServerCLI {
    static var agent: ServerAgent { ServerAgent(directories: Directories.fromEnvironment()) }

    /// What `server enroll` (and `--adopt`) says about the renewal units it wrote.
    static func describe(_ report: ServerAgent.UnitReport, systemdDir: String, note: String = "") {
        Output.progress("Automatic renewal: \(report.written.joined(separator: ", "))" + note)
        for (file, verification) in report.verification.sorted(by: { $0.key < $1.key }) {
            if case .failed(let detail) = verification { Output.warning("systemd-analyze verify \(file): \(detail)") }
        }
        if report.enabled == true {
            Output.progress("  auto-ssl-renew.timer is enabled and running (every 15 minutes).")
        } else if !SystemdUnits.systemdIsRunning {
            Output.progress("  systemd is not running here: use `auto-ssl server renew --daemon` (e.g. in a container) instead.")
        } else {
            Output.progress("  the units are in \(systemdDir); enable them with: systemctl daemon-reload && systemctl enable --now auto-ssl-renew.timer")
        }
    }

    static var executable: String {
        Directories.absolute(CommandLine.arguments[0].contains("/")
            ? CommandLine.arguments[0]
            : (SystemCommandRunner().which(CommandLine.arguments[0]) ?? "/usr/local/bin/auto-ssl"))
    }

    static func password(file: String?, nonInteractive: Bool, provisioner: String) throws -> String {
        if let file { return try SecretFiles.read(file, option: "--password-file") }
        guard !nonInteractive, Terminal.standardInputIsTerminal else {
            throw AutoSSLError.invalidArgument(
                "the provisioner password is needed", hint: "pass --password-file (it may be /dev/stdin)")
        }
        return try Terminal.readSecret(prompt: "Password for provisioner \(provisioner): ")
    }
}

/// A secret read at most once (a prompt or a file), however many of the CA's URLs are tried.
final class SecretOnce: @unchecked Sendable {
    private let lock = NSLock()
    private var secret: String?
    private let read: () throws -> String

    init(_ read: @escaping () throws -> String) {
        self.read = read
    }

    func value() throws -> String {
        lock.lock()
        defer { lock.unlock() }
        if let secret { return secret }
        let value = try read()
        secret = value
        return value
    }
}

struct ServerEnrollCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "enroll",
        abstract: "Get this machine's certificate from the CA and install automatic renewal.",
        discussion: """
            The CA is trusted only if its root has the given fingerprint (exit 6 and nothing written otherwise). \
            The key is made here and never leaves this machine. Files: server.crt (chain, 0644), server.key (0600) \
            and ca.crt (the root) in $AUTO_SSL_CERT_DIR (default /etc/ssl/auto-ssl); the replaced pair is kept in \
            $AUTO_SSL_DATA_DIR/cert-backups (last 5). Renewal: auto-ssl-renew.timer every 15 minutes. \
            With several --ca-url (the CA's replicas), all are recorded and tried in order, at enrollment \
            and at every renewal: a URL that does not answer moves on to the next within a second; an \
            answer that refuses (or a fingerprint mismatch) stops there.
            """)

    @Option(help: CAURLHelp.required) var caUrl: [String]
    @Option(help: "SHA-256 fingerprint of the CA's root (colons allowed; shown by `auto-ssl ca status`).") var fingerprint: String
    @Option(help: "Name for the certificate (repeatable; DNS or IP; the first is the subject CN). Default: hostname, FQDN and primary IPs.")
    var san: [String] = []
    @Option(help: "Lifetime (e.g. 24h, 7d); default: the CA's.") var duration: String?
    @Option(help: ArgumentHelp("Certificate chain path (default $AUTO_SSL_CERT_DIR/server.crt).", valueName: "file")) var certPath: String?
    @Option(help: ArgumentHelp("Private key path (default $AUTO_SSL_CERT_DIR/server.key).", valueName: "file")) var keyPath: String?
    @Option(help: "ec (P-256) or rsa (2048).") var keyType = "ec"
    @Option(help: "Provisioner to authenticate with.") var provisioner = "admin"
    @Option(help: ArgumentHelp("File holding the provisioner password (may be /dev/stdin).", valueName: "file")) var passwordFile: String?
    @Option(help: ArgumentHelp(
        "File holding a one-time enrollment token from `auto-ssl ca token create` (may be /dev/stdin), instead of the provisioner password; the names default to the token's.",
        valueName: "file")) var tokenFile: String?
    @Flag(help: "Do not install the renewal timer.") var noRenewal = false
    @Option(help: ArgumentHelp("Command to run after every renewal (through /bin/sh).", valueName: "command")) var exec: String?
    @Option(help: "Reload this web server after every renewal: nginx, apache, caddy or haproxy.") var reload: String?
    @Flag(help: "Also trust the CA's root in this machine's system trust store.") var trust = false
    @Flag(help: "Never prompt (needs --password-file).") var nonInteractive = false
    @Option(help: ArgumentHelp(
        "Write renewal metrics here after every `server renew` (a .prom file in node exporter's textfile collector directory).",
        valueName: "file")) var metricsFile: String?
    @Flag(help: ArgumentHelp(
        "Take over the certificate and key the original bash auto-ssl (step CLI) enrolled here: renewed once by mutual TLS, no password; its renewal timer is replaced.",
        discussion: "The files stay where they are (--cert-path/--key-path name them if they moved); see docs/migrating.md."))
    var adopt = false
    @Option(help: ArgumentHelp("With --adopt: the directory holding the original tool's server.crt and server.key.", valueName: "dir"))
    var from: String?
    @OptionGroup var output: QuietOption

    func run() async throws {
        Output.quiet = output.quiet
        if adopt { return try await runAdoption() }
        if from != nil { throw AutoSSLError.invalidArgument("--from goes with --adopt") }
        // Every argument is checked before the network is touched.
        let metricsPath = try metricsFile.map(ServerAgent.checkMetricsFile)
        if exec != nil && reload != nil { throw AutoSSLError.invalidArgument("use --exec or --reload, not both") }
        if tokenFile != nil && passwordFile != nil { throw AutoSSLError.invalidArgument("use --token-file or --password-file, not both") }
        if nonInteractive && passwordFile == nil && tokenFile == nil {
            throw AutoSSLError.invalidArgument("--non-interactive needs --password-file or --token-file (either may be /dev/stdin)")
        }
        let webServer = try reload.map(WebServer.init(parsing:))
        if let duration { _ = try CertificateDuration(parsing: duration) }
        let algorithm = try KeyAlgorithm.leaf(keyType: keyType)
        let token = try tokenFile.map { try EnrollmentToken(text: try SecretFiles.read($0, option: "--token-file")) }
        let given = san.isEmpty ? nil : try san.map(SubjectName.init(parsing:))
        let names = try token?.names(given: given) ?? given ?? NetworkAddresses.defaultServerNames()
        guard !names.isEmpty else {
            throw AutoSSLError.invalidArgument("this machine has no usable hostname or address", hint: "name it with --san")
        }
        _ = try Fingerprint.normalise(fingerprint)
        let endpoints = try CAEndpoints(caUrl)
        let agent = ServerCLI.agent
        let directories = agent.directories
        let family = OSFamily.current().family
        let plan = ServerAgent.EnrollmentPlan(
            caURLs: endpoints.urls, names: names, duration: duration,
            certPath: Directories.absolute(certPath ?? directories.certDir + "/server.crt"),
            keyPath: Directories.absolute(keyPath ?? directories.certDir + "/server.key"),
            rootPath: directories.certDir + "/ca.crt", keyAlgorithm: algorithm, provisioner: token?.claims.iss ?? provisioner, reload: webServer,
            reloadCommand: exec ?? webServer?.reloadCommand(systemd: SystemdUnits.systemdIsRunning, family: family),
            installTimer: !noRenewal, metricsFile: metricsPath)

        // Asked once, when the first URL has shown the right root; kept for the next URL if that one stops answering.
        let password = SecretOnce { [passwordFile, nonInteractive, provisioner] in
            try ServerCLI.password(file: passwordFile, nonInteractive: nonInteractive, provisioner: provisioner)
        }
        let answer = try await CAClient.withConnection(to: endpoints, fingerprint: fingerprint) { client in
            Output.progress("CA \(client.baseURL): root fingerprint \(client.rootFingerprint) matches.")
            Output.progress("Certificate names: \(names.map(\.description).joined(separator: ", "))")
            if let token { return try await agent.enroll(plan, client: client, credential: .token(token.text)) }
            return try await agent.enroll(plan, client: client, password: try password.value())
        }
        let result = answer.value
        Output.contact(answer.contact)
        if Output.quiet { print(ServerAgent.serialText(result.leaf)) }
        Output.progress("Enrolled: serial \(ServerAgent.serialText(result.leaf)), valid until \(Output.date(result.leaf.notValidAfter))")
        if plan.combinedPath != plan.certPath { Output.progress("  certificate chain: \(plan.certPath) (0644)") }
        Output.progress("  private key:       \(plan.keyPath) (0600)")
        Output.progress("  CA root:           \(plan.rootPath)")
        if let combined = plan.combinedPath { Output.progress("  key + chain:       \(combined) (0600, for HAProxy)") }
        if let backup = result.backedUpTo { Output.progress("  previous pair kept in \(backup)") }
        for warning in result.warnings { Output.warning(warning) }
        Output.progress("  recorded in \(directories.configFile)" + (endpoints.urls.count > 1 ? " with the CA's \(endpoints.urls.count) URLs, tried in this order at renewal: \(endpoints.urls.joined(separator: ", "))" : ""))

        if noRenewal {
            // A re-enrollment without renewal takes away the timer an earlier one installed.
            // (Only units auto-ssl wrote: another tool's of the same names are left alone.)
            let removed = agent.originalUnits().isEmpty ? try agent.removeRenewalUnits() : []
            Output.progress("Automatic renewal: off (--no-renewal); renew with `auto-ssl server renew`."
                + (removed.isEmpty ? "" : " The renewal timer installed before was removed: \(removed.joined(separator: ", "))."))
        } else {
            ServerCLI.describe(try agent.installRenewalUnits(executable: ServerCLI.executable), systemdDir: directories.systemdDir)
        }
        if let command = plan.reloadCommand { Output.progress("After each renewal: \(command)") }
        if let metricsPath { Output.progress("Metrics (node exporter textfile): \(metricsPath), rewritten at every renewal run") }
        if trust {
            let root = try ServerAgent(directories: directories).holder(result.enrollment).root
            try ClientTrustCommand.installInSystemStore(root, store: try TrustStoreOptions.store(os: nil))
        }
        if let webServer {
            Output.progress("\n\(webServer.rawValue) configuration:")
            Output.progress(webServer.snippet(certPath: plan.certPath, keyPath: plan.keyPath, combinedPath: plan.combinedPath))
        }
    }
}

extension ServerEnrollCommand {
    /// `--adopt`: everything is checked before the CA is asked; nothing changes unless it renewed.
    func runAdoption() async throws {
        for (given, option) in [(!san.isEmpty, "--san"), (duration != nil, "--duration"), (keyType != "ec", "--key-type"),
                                (passwordFile != nil, "--password-file")] where given {
            throw AutoSSLError.invalidArgument(
                "\(option) does not go with --adopt: the certificate keeps its names, lifetime and key, and no password is used")
        }
        if from != nil && (certPath != nil || keyPath != nil) {
            throw AutoSSLError.invalidArgument("use --from DIR or --cert-path/--key-path, not both")
        }
        let metricsPath = try metricsFile.map(ServerAgent.checkMetricsFile)
        if exec != nil && reload != nil { throw AutoSSLError.invalidArgument("use --exec or --reload, not both") }
        let webServer = try reload.map(WebServer.init(parsing:))
        _ = try Fingerprint.normalise(fingerprint)
        let endpoints = try CAEndpoints(caUrl)
        let agent = ServerCLI.agent
        let original = try agent.locateOriginal(directory: from, certPath: certPath, keyPath: keyPath)
        Output.progress("Found \(original.certPath) (serial \(ServerAgent.serialText(original.leaf)), valid until \(Output.date(original.leaf.notValidAfter))) and its key \(original.keyPath).")
        let plan = ServerAgent.AdoptionPlan(
            caURLs: endpoints.urls, provisioner: provisioner, reload: webServer,
            reloadCommand: exec ?? webServer?.reloadCommand(systemd: SystemdUnits.systemdIsRunning, family: OSFamily.current().family),
            installTimer: !noRenewal, metricsFile: metricsPath)
        let answer = try await CAClient.withConnection(to: endpoints, fingerprint: fingerprint) { client in
            Output.progress("CA \(client.baseURL): root fingerprint \(client.rootFingerprint) matches.")
            return try await agent.adopt(original, plan: plan, client: client)
        }
        let result = answer.value
        Output.contact(answer.contact)
        if Output.quiet { print(ServerAgent.serialText(result.leaf)) }
        Output.progress("Taken over: certificate \(result.previousSerial) renewed by mutual TLS as serial \(ServerAgent.serialText(result.leaf)), valid until \(Output.date(result.leaf.notValidAfter))")
        Output.progress("  certificate chain: \(result.enrollment.certPath) (0644, same path)")
        Output.progress("  private key:       \(result.enrollment.keyPath) (unchanged)")
        Output.progress("  CA root:           \(result.enrollment.rootPath)")
        if let combined = result.enrollment.combinedPath { Output.progress("  key + chain:       \(combined) (0600, for HAProxy)") }
        if let backup = result.backedUpTo { Output.progress("  previous pair kept in \(backup)") }
        for copy in result.kept {
            let name = copy == agent.keptConfigFile ? "config.yaml" : (copy as NSString).lastPathComponent
            Output.progress("  the original tool's \(name) kept unchanged as \(copy)")
        }
        for warning in result.warnings { Output.warning(warning) }
        Output.progress("  recorded in \(agent.directories.configFile)")

        let units = try agent.takeOverRenewalUnits(executable: ServerCLI.executable, install: !noRenewal)
        if !units.originals.isEmpty {
            let names = units.originals.map { ($0 as NSString).lastPathComponent }.joined(separator: ", ")
            if units.disabled == true {
                Output.progress("The original tool's renewal (\(names), `step ca renew`): stopped and disabled; copies in \(agent.keptUnitsDir).")
            } else {
                Output.progress("The original tool's renewal units (\(names)) are copied to \(agent.keptUnitsDir); systemd does not manage \(agent.directories.systemdDir) here, so nothing was stopped.")
            }
            if noRenewal { Output.progress("  their files were left in place (--no-renewal).") }
        }
        if let report = units.installed {
            ServerCLI.describe(
                report, systemdDir: agent.directories.systemdDir, note: units.originals.isEmpty ? "" : " (replacing the original tool's)")
        } else {
            Output.progress("Automatic renewal: off (--no-renewal); renew with `auto-ssl server renew`.")
        }
        if let command = plan.reloadCommand { Output.progress("After each renewal: \(command) (the web server serves the renewed certificate from its next reload)") }
        if let metricsPath { Output.progress("Metrics (node exporter textfile): \(metricsPath), rewritten at every renewal run") }
        if trust {
            let root = try agent.holder(result.enrollment).root
            try ClientTrustCommand.installInSystemStore(root, store: try TrustStoreOptions.store(os: nil))
        }
    }
}

struct ServerRenewCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "renew",
        abstract: "Renew the certificate once 2/3 of its lifetime has passed (what the timer runs).",
        discussion: """
            Authenticated by the current certificate. On success the chain is swapped atomically and the reload \
            command runs; on failure the files stay as they were and the exit code is non-zero. The CA URLs \
            recorded at enrollment are tried in order; the one that answered is shown (and in `server status`). \
            --daemon keeps running (for hosts without systemd) and stops cleanly on SIGTERM.
            """)

    @Flag(help: "Renew now, even before the renewal point or while suspended.") var force = false
    @Option(help: ArgumentHelp("Run this instead of the recorded reload command.", valueName: "command")) var exec: String?
    @Flag(help: "Keep running: renew at the renewal point, back off on failure, stop on SIGTERM.") var daemon = false
    @Option(help: ArgumentHelp("Daemon: longest sleep between checks, in seconds.", valueName: "seconds")) var checkInterval = 900
    @Option(help: ArgumentHelp("Write the metrics here instead of the file recorded at enrollment.", valueName: "file"))
    var metricsFile: String?
    @OptionGroup var output: QuietOption

    func run() async throws {
        Output.quiet = output.quiet
        let metricsPath = try metricsFile.map(ServerAgent.checkMetricsFile)
        let agent = ServerCLI.agent
        if daemon {
            guard !force else { throw AutoSSLError.invalidArgument("--force renews once; it does not go with --daemon") }
            guard checkInterval >= 1 else { throw AutoSSLError.invalidArgument("--check-interval must be at least 1 second") }
            _ = try agent.enrollment()
            let stop = StopSignal.install()
            await RenewalDaemon(agent: agent, checkInterval: TimeInterval(checkInterval)).run(
                execOverride: exec, metricsFile: metricsPath, shouldStop: { stop.requested }, log: { line in FileHandle.standardOutput.write(Data((line + "\n").utf8)) })
            return
        }
        switch try await agent.renew(force: force, execOverride: exec, metricsFile: metricsPath, metricsWarning: Output.warning) {
        case .suspended(let reason):
            Output.progress("Renewal skipped: renewals are suspended (\(reason)). Resume with `auto-ssl server resume`; --force renews anyway.")
        case .notDue(let point, let notAfter):
            Output.progress("Not due: the certificate renews after \(Output.date(point)) (valid until \(Output.date(notAfter))). --force renews now.")
        case .renewed(let leaf, let previous, let reload, let contact):
            if Output.quiet { print(ServerAgent.serialText(leaf)) }
            Output.progress("Renewed: serial \(ServerAgent.serialText(leaf)) replaces \(previous), valid until \(Output.date(leaf.notValidAfter)).")
            Output.contact(contact)
            if let reload {
                guard reload.succeeded else {
                    throw AutoSSLError.general(
                        "the certificate was renewed, but `\(reload.command)` failed (exit \(reload.outcome.status))\(reload.outcome.timedOut ? " after timing out" : ""): \(reload.outcome.output.trimmingCharacters(in: .whitespacesAndNewlines))",
                        hint: "the new files are in place; reload the web server by hand")
                }
                Output.progress("Ran `\(reload.command)`.")
            }
        }
    }
}

/// SIGTERM/SIGINT turn into a flag the daemon checks, so it finishes what it is doing and exits 0.
final class StopSignal: @unchecked Sendable {
    private let lock = NSLock()
    private var flag = false
    private var sources: [DispatchSourceSignal] = []

    var requested: Bool {
        lock.lock()
        defer { lock.unlock() }
        return flag
    }

    static func install() -> StopSignal {
        let stop = StopSignal()
        for number in [SIGTERM, SIGINT] {
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler {
                stop.lock.lock()
                stop.flag = true
                stop.lock.unlock()
            }
            source.resume()
            stop.sources.append(source)
        }
        return stop
    }
}

struct ServerStatusCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status", abstract: "Show the certificate, its renewal point, the timer and the last renewal; exit 1 if expired, revoked or missing.")

    @Flag(help: "Print JSON.") var json = false

    func run() async throws {
        let report = try ServerCLI.agent.status()
        if json {
            try Output.json(report)
        } else {
            print(Self.text(report))
        }
        if !report.healthy { throw ExitCode(FailureKind.general.exitCode) }
    }

    static func text(_ report: ServerStatusReport) -> String {
        guard report.enrolled else { return "Not enrolled. Enroll with: auto-ssl server enroll --ca-url URL --fingerprint FP" }
        var lines = ["CA:            \((report.caURLs ?? report.caURL.map { [$0] } ?? []).joined(separator: ", "))", "Names:         \(report.names.joined(separator: ", "))"]
        if let serial = report.serial, let notBefore = report.notBefore, let notAfter = report.notAfter {
            lines.append("Serial:        \(serial)")
            lines.append("Issuer:        \(report.issuer ?? "")")
            lines.append("Valid:         \(Output.date(notBefore)) to \(Output.date(notAfter))")
            let left = report.secondsLeft ?? 0
            lines.append("Time left:     " + (left > 0 ? CertificateDuration(seconds: left).humanReadable : "EXPIRED"))
            if let revocation = report.revocation {
                lines.append("Revoked:       REVOKED" + (revocation.since.map { " (known since \(Output.date($0)))" } ?? "")
                    + (revocation.detail.map { ": \($0)" } ?? ""))
            }
            if let point = report.renewalPoint {
                lines.append("Renews after:  \(Output.date(point))" + (report.renewalDue ? " (due now)" : ""))
            }
        }
        if let problem = report.certificateProblem { lines.append("Problem:       \(problem)") }
        lines.append("Files:         \(report.certPath ?? ""), \(report.keyPath ?? "")")
        lines.append("Timer:         \(report.timer)")
        if let command = report.reloadCommand { lines.append("Reload:        \(command)") }
        if let adopted = report.adopted {
            lines.append("Taken over:    \(Output.date(adopted.adoptedAt)) from the original auto-ssl (certificate \(adopted.originalSerial)); its files kept in \(adopted.keptIn)")
        }
        if report.suspended {
            lines.append("Suspended:     yes, since \(report.suspendedSince.map(Output.date) ?? "?"): \(report.suspensionReason ?? "")")
        } else {
            lines.append("Suspended:     no")
        }
        if let attempt = report.lastAttempt {
            lines.append("Last attempt:  \(Output.date(attempt.time)) \(attempt.result): \(attempt.message)"
                + (attempt.caURL.map { " (CA \($0) answered)" } ?? ""))
        }
        if report.consecutiveFailures > 0 { lines.append("Failures:      \(report.consecutiveFailures) in a row") }
        if let command = report.enrollCommand {
            lines.append("This certificate can no longer be renewed; enroll again (keeps every recorded option):")
            lines.append("    \(command)")
        }
        return lines.joined(separator: "\n")
    }
}

struct ServerSuspendCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "suspend", abstract: "Skip scheduled renewals until `server resume` (`renew --force` still works).")

    @Option(help: "Why (shown by status and logged by every skipped renewal).") var reason = ""

    func run() async throws {
        try ServerCLI.agent.suspend(reason: reason)
        print("Scheduled renewals are suspended\(reason.isEmpty ? "" : " (\(reason))"). Resume with `auto-ssl server resume`.")
    }
}

struct ServerResumeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "resume", abstract: "Resume scheduled renewals.")

    func run() async throws {
        if try ServerCLI.agent.resume() {
            print("Scheduled renewals are resumed.")
        } else {
            print("Renewals were not suspended; nothing changed.")
        }
    }
}

struct ServerRevokeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "revoke",
        abstract: "Revoke this server's certificate at the CA (or --serial with the provisioner password) and stop scheduled renewals.")

    @Option(help: "Serial to revoke instead of the current certificate (decimal or hex); needs the provisioner password.") var serial: String?
    @Option(help: ArgumentHelp("Provisioner password file for --serial (may be /dev/stdin).", valueName: "file")) var passwordFile: String?
    @OptionGroup var reason: RevocationReason

    func run() async throws {
        try Authority.validateReasonCode(reason.reasonCode)
        let agent = ServerCLI.agent
        if let serial {
            let enrollment = try agent.enrollment()
            let password = try ServerCLI.password(file: passwordFile, nonInteractive: false, provisioner: enrollment.provisioner)
            let revoked = try await agent.revoke(.serial(serial, password: password), reasonCode: reason.reasonCode, reason: reason.reason)
            print(CertRevokeCommand.report(revoked.answer, named: "Serial \(revoked.serial)", revoked: "Revoked serial \(revoked.serial)."))
            if revoked.currentRevoked {
                print("This host's current certificate is revoked with it (same key). Scheduled renewals are stopped; to get a new certificate with the same options, run:")
                print("    \(agent.enrollCommand(try agent.enrollment()))")
            }
        } else {
            let revoked = try await agent.revoke(.current, reasonCode: reason.reasonCode, reason: reason.reason)
            print(CertRevokeCommand.report(revoked.answer, named: "Certificate \(revoked.serial)", revoked: "Revoked \(revoked.serial)."))
            print("Scheduled renewals are stopped; to get a new certificate with the same options, run:")
            print("    \(agent.enrollCommand(try agent.enrollment()))")
        }
    }
}

struct ServerRemoveCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "remove",
        abstract: "Unenroll: revoke the certificate, remove the renewal timer, the files and the enrollment.",
        discussion: "A CA on the same machine (its files, units and configuration) is never touched.")

    @Option(help: "Why (recorded with the revocation).") var reason = ""
    @Flag(help: "Leave server.crt, server.key and ca.crt in place.") var keepCerts = false
    @Flag(help: "Do not revoke (e.g. the CA is gone for good).") var noRevoke = false
    @Flag(help: "Do not ask for confirmation.") var yes = false

    func run() async throws {
        let agent = ServerCLI.agent
        _ = try agent.enrollment()
        try Terminal.requireConfirmation(
            yes: yes, action: "server remove", question: "Revoke this server's certificate and remove its enrollment?")
        let report: ServerAgent.RemovalReport
        do {
            report = try await agent.remove(reason: reason, keepCertificates: keepCerts, revoke: !noRevoke)
        } catch var error as AutoSSLError where error.kind == .network && !noRevoke {
            // Nothing was removed: the revocation comes first.
            error.hint = (error.hint.map { $0 + "\n  " } ?? "")
                + "nothing was removed; to unenroll without revoking (the CA is gone for good), add --no-revoke"
            throw error
        }
        if let serial = report.revokedSerial { print("Revoked \(serial).") }
        for file in report.removedFiles { print("Removed \(file)") }
        for file in report.keptFiles { print("Kept \(file)") }
        print("This machine is no longer enrolled.")
    }
}

struct ServerSetCAURLCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "set-ca-url",
        abstract: "Renew at the CA's new URLs after it moved (the same CA: its root fingerprint is checked at each URL first).",
        discussion: """
            The fingerprint must be the one recorded at enrollment, and each URL must present that root and a \
            certificate naming its host; otherwise nothing changes (exit 6). `auto-ssl remote update-ca-url` runs \
            this on many hosts from the CA.
            """)

    @Option(help: CAURLHelp.required) var caUrl: [String]
    @Option(help: "SHA-256 fingerprint of the CA's root (the one this host was enrolled with).") var fingerprint: String

    func run() async throws {
        let urls = try await ServerCLI.agent.setCAURLs(caUrl, fingerprint: fingerprint)
        print("Renewal now uses \(urls.joined(separator: ", ")) (root fingerprint checked at each).")
    }
}
