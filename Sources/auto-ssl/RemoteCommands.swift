import ArgumentParser
import AutoSSLCA
import AutoSSLConfig
import AutoSSLCore
import AutoSSLIO
import AutoSSLRemote
import Foundation

struct RemoteCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "remote",
        abstract: "Enroll and manage application servers over ssh, from the CA host.",
        discussion: """
            Uses the system's ssh and scp with your keys, agent and known_hosts (host keys checked strictly). \
            On each host, auto-ssl runs as `sudo -n /usr/local/bin/auto-ssl ...`, so the login needs \
            password-less sudo for it (or is root). The hosts are listed in $AUTO_SSL_DATA_DIR/remote-hosts.json.
            """,
        subcommands: [
            RemoteEnrollCommand.self, RemoteListCommand.self, RemoteStatusCommand.self, RemoteRenewCommand.self, RemoteRemoveCommand.self,
            RemoteUpdateCommand.self, RemoteUpdateCAURLCommand.self,
        ])
}

/// How to reach hosts: the options every `remote` command shares.
struct SSHOptions: ParsableArguments {
    @Option(help: ArgumentHelp("Program used instead of ssh (also given to scp with -S), e.g. a wrapper with your options.", valueName: "program"))
    var sshCommand: String?
    @Flag(help: "Record a host key seen for the first time (StrictHostKeyChecking=accept-new); a changed key is still refused.")
    var acceptNewHostKey = false

    var runner: SSHRunner { SSHRunner(sshProgram: sshCommand, acceptNewHostKey: acceptNewHostKey) }

    var operations: RemoteOperations {
        RemoteOperations(ssh: runner, localBinary: RemoteCLI.localBinary, versionLine: AutoSSLCommand.versionLine)
    }
}

enum RemoteCLI {
    static var directories: Directories { Directories.fromEnvironment() }

    /// This program's own file (copied to hosts).
    static var localBinary: String {
        (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? ServerCLI.executable
    }

    static func line(_ entry: RemoteInventory.Entry, _ status: RemoteHostStatus?) -> String {
        guard let status else { return "\(entry.name)  \(entry.names.joined(separator: ","))  (not checked)" }
        var parts = [entry.name, status.state.rawValue]
        if let serial = status.serial { parts.append("serial \(serial)") }
        if let notAfter = status.notAfter { parts.append("until \(Output.date(notAfter))") }
        if let timer = status.timer { parts.append("timer: \(timer)") }
        if status.suspended == true { parts.append("SUSPENDED" + (status.suspensionReason.map { " (\($0))" } ?? "")) }
        if let attempt = status.lastAttempt, let result = attempt.result { parts.append("last renewal: \(result)") }
        if let detail = status.detail { parts.append(detail) }
        return parts.joined(separator: "  ")
    }

    /// Runs `body` on each selected host in parallel (bounded), prints one line each, saves the
    /// inventory, and fails (exit 1, or the single host's own error) when any host failed.
    static func each(
        _ names: [String], parallel: Int, what: String,
        _ body: @escaping @Sendable (RemoteInventory.Entry) throws -> String
    ) throws {
        let inventory = try RemoteInventory.load(directories)
        let selected = try inventory.select(names)
        guard !selected.isEmpty else { throw AutoSSLError.general("no hosts in the inventory", hint: "add one with `auto-ssl remote enroll HOST`") }
        let results: [Result<String, AutoSSLError>] = RemoteOperations.parallel(selected, limit: parallel) { entry in
            do {
                return .success(try body(entry))
            } catch let error as AutoSSLError {
                return .failure(error)
            } catch {
                return .failure(AutoSSLError.general("\(error)"))
            }
        }
        var failures: [AutoSSLError] = []
        for (entry, result) in zip(selected, results) {
            switch result {
            case .success(let text): print("\(entry.name): \(text)")
            case .failure(let error):
                Output.standardError("\(entry.name): \(what) failed: \(error.message)\n")
                failures.append(error)
            }
        }
        if failures.count == 1 && selected.count == 1 { throw failures[0] }
        if !failures.isEmpty { throw AutoSSLError.general("\(what) failed on \(failures.count) of \(selected.count) hosts") }
    }
}

struct RemoteEnrollCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "enroll",
        abstract: "Enroll a host over ssh: copy auto-ssl there if needed, enroll it with a fresh one-time token.",
        discussion: """
            Copies this binary to /usr/local/bin/auto-ssl on the host when it is missing or another build \
            (temporary name, SHA-256 checked there, then renamed), makes a one-time token for the host's names \
            here (the provisioner and CA passwords stay on this machine) and runs \
            `sudo -n auto-ssl server enroll --token-file /dev/stdin` there with the token on standard input \
            (never in a command line). Exit codes: 5 unreachable, 6 host key unknown or changed, 4 sudo needs \
            a password or the login is refused, 8 the host's enrollment failed (its output shown).
            """)

    @Argument(help: "The host (name or address) to reach over ssh.") var host: String
    @Option(help: "ssh user (default: yours, or your ssh config's).") var user: String?
    @Option(help: "ssh port.") var port: Int?
    @Option(help: ArgumentHelp("ssh private key file.", valueName: "file")) var identity: String?
    @Option(help: "A name for the host's certificate (repeatable; DNS or IP). Default: HOST.") var san: [String] = []
    @Option(help: "Reload this web server there after every renewal: nginx, apache, caddy or haproxy.") var reload: String?
    @Option(help: "The host's name in the inventory (default: HOST).") var name: String?
    @Option(help: "The password provisioner to make the token with (default: the first).") var provisioner: String?
    @OptionGroup var ssh: SSHOptions

    func run() throws {
        let target = try SSHTarget(host: host, port: port, user: user, identity: identity.map(Directories.absolute))
        let names = san.isEmpty ? [host] : san
        for name in names { _ = try SubjectName(parsing: name) }
        if let reload, !["nginx", "apache", "caddy", "haproxy"].contains(reload) {
            throw AutoSSLError.invalidArgument("--reload \(reload): use nginx, apache, caddy or haproxy")
        }
        let directories = RemoteCLI.directories
        let request = RemoteOperations.EnrollRequest(name: name ?? host, target: target, names: names, reload: reload)
        print("Enrolling \(target.display) for \(names.joined(separator: ", "))")
        let result = try ssh.operations.enroll(request) { names in
            let made = try EnrollmentTokens(directories: directories).create(names: names, lifetime: 600, provisioner: provisioner)
            return RemoteOperations.Token(token: made.token, caURLs: made.caURLs, fingerprint: made.fingerprint)
        }
        switch result.binary {
        case .alreadyCurrent: print("  auto-ssl there is this version (\(AutoSSLCommand.version)), not copied")
        case .copied(let replacing): print("  copied auto-ssl \(AutoSSLCommand.version) to \(RemoteOperations.remoteBinary)" + (replacing.map { " (was: \($0))" } ?? ""))
        }
        try RemoteInventory.update(directories) { $0.upsert(result.entry) }
        print("  " + RemoteCLI.line(result.entry, result.entry.lastStatus))
        print("  recorded in \(RemoteInventory.path(directories))")
    }
}

struct RemoteListCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "The hosts in the inventory, with the status last seen (no ssh).")
    @Flag(help: "Print JSON.") var json = false

    func run() throws {
        let inventory = try RemoteInventory.load(RemoteCLI.directories)
        if json { return try Output.json(inventory.hosts) }
        if inventory.hosts.isEmpty { print("no hosts; add one with `auto-ssl remote enroll HOST`") }
        for entry in inventory.hosts {
            let target = (try? entry.target().display) ?? entry.host
            print("\(entry.name)  \(target)  \(entry.names.joined(separator: ","))  last: \(entry.lastStatus.map { "\($0.state.rawValue) at \(Output.date($0.checkedAt))" } ?? "never checked")")
        }
    }
}

struct RemoteStatusCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Ask every host (in parallel) for its certificate, timer, last renewal and suspension; exit 1 unless all are ok.",
        discussion: """
            Each host runs `server status --json`; states: ok, renewal_overdue (past its renewal point: the timer \
            stopped or renewals fail), expired, revoked, not_enrolled, unreachable, failed. The result is \
            recorded in the inventory (see `remote list`).
            """)
    @Argument(help: "Hosts (inventory names); default: all.") var hosts: [String] = []
    @Option(help: "How many hosts to ask at once.") var parallel = 8
    @Flag(help: "Print JSON.") var json = false
    @OptionGroup var ssh: SSHOptions

    struct Row: Encodable {
        var name: String
        var host: String
        var status: RemoteHostStatus
    }

    func run() throws {
        guard (1...64).contains(parallel) else { throw AutoSSLError.invalidArgument("--parallel must be 1 to 64") }
        let directories = RemoteCLI.directories
        let selected = try RemoteInventory.load(directories).select(hosts)
        let operations = ssh.operations
        let statuses = RemoteOperations.parallel(selected, limit: parallel) { operations.status($0) }
        try RemoteInventory.update(directories) { inventory in
            for (entry, status) in zip(selected, statuses) {
                guard var current = inventory.entry(entry.name) else { continue }
                current.lastStatus = status
                inventory.upsert(current)
            }
        }
        if json {
            try Output.json(zip(selected, statuses).map { Row(name: $0.name, host: (try? $0.target().display) ?? $0.host, status: $1) })
        } else {
            if selected.isEmpty { print("no hosts; add one with `auto-ssl remote enroll HOST`") }
            for (entry, status) in zip(selected, statuses) { print(RemoteCLI.line(entry, status)) }
        }
        if statuses.contains(where: { $0.state != .ok }) { throw ExitCode(1) }
    }
}

struct RemoteRenewCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "renew", abstract: "Run `server renew` on hosts now (in parallel); with --force even before the renewal point.")
    @Argument(help: "Hosts (inventory names); default: all.") var hosts: [String] = []
    @Flag(help: "Renew even before the renewal point or while suspended.") var force = false
    @Option(help: "How many hosts at once.") var parallel = 8
    @OptionGroup var ssh: SSHOptions

    func run() throws {
        let operations = ssh.operations
        let force = force
        try RemoteCLI.each(hosts, parallel: parallel, what: "renewal") { entry in
            let target = try entry.target()
            let run = try operations.auto(target, ["server", "renew", "-q"] + (force ? ["--force"] : []))
            guard run.status == 0 else { throw RemoteOperations.refused("server renew", run, target: target) }
            let serial = run.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
            return serial.isEmpty ? "not due (nothing renewed)" : "renewed, serial \(serial)"
        }
    }
}

struct RemoteRemoveCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "remove",
        abstract: "Remove a host: `server remove` there (revokes its certificate, removes the timer and files), then forget it.",
        discussion: """
            With --forget-only, only the inventory entry goes and the host is not contacted (e.g. the host is gone). \
            Otherwise the host runs `server remove --yes` (add --keep-certs to leave its files); /usr/local/bin/auto-ssl \
            stays there.
            """)
    @Argument(help: "The host (inventory name).") var host: String
    @Flag(help: "Only remove it from the inventory; do not contact the host.") var forgetOnly = false
    @Flag(help: "Leave server.crt, server.key and ca.crt on the host.") var keepCerts = false
    @Option(help: "Why (recorded with the revocation).") var reason = "removed with auto-ssl remote remove"
    @OptionGroup var ssh: SSHOptions

    func run() throws {
        let directories = RemoteCLI.directories
        guard let entry = try RemoteInventory.load(directories).select([host]).first else { return }
        if !forgetOnly {
            let target = try entry.target()
            let run = try ssh.operations.auto(
                target, ["server", "remove", "--yes", "--reason", reason] + (keepCerts ? ["--keep-certs"] : []))
            guard run.status == 0 else { throw RemoteOperations.refused("server remove", run, target: target) }
            print("\(entry.name): removed there (certificate revoked, renewal timer removed\(keepCerts ? "" : ", files deleted"))")
        }
        try RemoteInventory.update(directories) { $0.hosts.removeAll { $0.name == entry.name } }
        print("\(entry.name): removed from \(RemoteInventory.path(directories))")
    }
}

struct RemoteUpdateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "update", abstract: "Replace /usr/local/bin/auto-ssl on hosts with this build where it differs (in parallel).")
    @Argument(help: "Hosts (inventory names); default: all.") var hosts: [String] = []
    @Flag(help: "Copy even when the version and checksum match.") var force = false
    @Option(help: "How many hosts at once.") var parallel = 4
    @OptionGroup var ssh: SSHOptions

    func run() throws {
        let operations = ssh.operations
        let force = force
        try RemoteCLI.each(hosts, parallel: parallel, what: "update") { entry in
            switch try operations.installBinary(try entry.target(), force: force) {
            case .alreadyCurrent: return "already \(AutoSSLCommand.versionLine) (same checksum)"
            case .copied(let replacing): return "replaced \(replacing ?? "a missing or unreadable binary") with \(AutoSSLCommand.versionLine)"
            }
        }
    }
}

struct RemoteUpdateCAURLCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "update-ca-url",
        abstract: "Point hosts at the CA's new URLs after it moved; each host checks the new URL's root fingerprint first.",
        discussion: """
            Each host runs `server set-ca-url`: it connects to the new URL, checks that the CA there has the root \
            with the fingerprint (default: this CA's, which must be the one the host trusts) and only then records \
            the URLs for renewal. A mismatch changes nothing (exit 6).
            """)
    @Argument(help: "Hosts (inventory names); default: all.") var hosts: [String] = []
    @Option(help: "The CA's new URL (repeatable, in the order renewal tries them).") var caUrl: [String]
    @Option(help: "The CA's root fingerprint (default: this CA's).") var fingerprint: String?
    @Option(help: "How many hosts at once.") var parallel = 8
    @OptionGroup var ssh: SSHOptions

    func run() throws {
        guard !caUrl.isEmpty else { throw AutoSSLError.invalidArgument("give the new address with --ca-url") }
        let pinned: String
        if let fingerprint {
            pinned = try Fingerprint.normalise(fingerprint)
        } else {
            pinned = try RemoteCLI.localFingerprint()
        }
        let operations = ssh.operations
        let urls = caUrl
        let arguments = ["server", "set-ca-url", "--fingerprint", pinned] + urls.flatMap { ["--ca-url", $0] }
        try RemoteCLI.each(hosts, parallel: parallel, what: "update-ca-url") { entry in
            let target = try entry.target()
            let run = try operations.auto(target, arguments)
            guard run.status == 0 else {
                var error = RemoteOperations.refused("server set-ca-url", run, target: target)
                if run.status == 6 { error.kind = .trustFailure }
                throw error
            }
            return "now renews at \(urls.joined(separator: ", "))"
        }
    }
}

extension RemoteCLI {
    static func localFingerprint() throws -> String {
        let configuration = try AutoSSLConfiguration.load(from: directories.configFile)
        guard let settings = configuration.ca else {
            throw AutoSSLError.general("no CA on this machine", hint: "give the CA's root fingerprint with --fingerprint")
        }
        let root = try CAStatusReport.loadCertificate(settings.paths.rootCertificate, what: "root certificate")
        return try Fingerprint.sha256(of: root)
    }
}
