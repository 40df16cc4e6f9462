import ArgumentParser
import AutoSSLCA
import AutoSSLConfig
import AutoSSLCore
import AutoSSLHost
import AutoSSLIO
import AutoSSLStore
import Foundation
import Logging

struct CAInitCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "init",
        abstract: "Create a new CA: root, intermediate, encrypted keys and the enrollment provisioner.",
        discussion: """
            Without password files and at a terminal, asks for the CA key password and the provisioner \
            (enrollment) password twice each. With --non-interactive and no password file, generates \
            strong passwords and stores them 0600 in $AUTO_SSL_CONFIG_DIR. An existing CA is never \
            overwritten: --force moves it aside first.
            """)

    @Option(help: "CA name; the root is \"<name> Root CA\", the intermediate \"<name> Intermediate CA\".")
    var name = "Internal CA"

    @Option(help: ArgumentHelp("Address the CA serves on, host:port (repeatable). Default: this machine's primary IP and :9000.", valueName: "host:port"))
    var address: [String] = []

    @Option(help: "Extra DNS name for the CA's own TLS certificate (repeatable).")
    var dns: [String] = []

    @Option(help: "ec (P-384 root + P-256 intermediate) or rsa (4096 + 2048).")
    var keyType: String = "ec"

    @Option(help: "Default lifetime of issued certificates (e.g. 168h, 7d).")
    var certDuration = "168h"

    @Option(help: "Longest lifetime a certificate may be given (at most 720h).")
    var maxDuration = "720h"

    @Option(help: "Name of the password (JWK) provisioner that servers enroll with.")
    var provisioner = "admin"

    @Option(help: ArgumentHelp("File holding the CA key password (may be /dev/stdin).", valueName: "file"))
    var passwordFile: String?

    @Option(help: ArgumentHelp("File holding the provisioner (enrollment) password (may be /dev/stdin).", valueName: "file"))
    var provisionerPasswordFile: String?

    @Option(help: ArgumentHelp(
        "Keep the CA's records in this PostgreSQL database, shared by the CA's replicas: postgres://USER@HOST[:PORT]/DB, with ?sslmode=MODE&sslrootcert=FILE for TLS (no password in the URL; TLS verified unless the host is this machine). Default: SQLite in the CA directory.",
        valueName: "url"))
    var database: String?

    @Option(help: ArgumentHelp(
        "File (mode 0600) holding the PostgreSQL password; its path is recorded in config.yaml. Default: PGPASSFILE or ~/.pgpass.",
        valueName: "file"))
    var databasePasswordFile: String?

    @Option(help: ArgumentHelp(
        "Serve the CRLs and OCSP over plain HTTP on this address, and write http://HOST:PORT/crl (CRL distribution point) and http://HOST:PORT/ocsp (OCSP) into every certificate. Default: no revocation URLs in certificates.",
        valueName: "host:port"))
    var revocationAddress: String?

    @Option(help: ArgumentHelp(
        "The host name clients reach the revocation address by, for the URLs in certificates (needed when --revocation-address listens on every interface).",
        valueName: "name"))
    var revocationURLHost: String?

    @Option(help: ArgumentHelp(
        "Serve Prometheus metrics at /metrics on this address (e.g. 127.0.0.1:9100; plain HTTP unless --metrics-tls). Default: no metrics listener.",
        valueName: "host:port"))
    var metricsAddress: String?

    @Flag(help: "Serve /metrics over HTTPS with the CA's own certificate.")
    var metricsTLS = false

    @Option(help: ArgumentHelp(
        "Where an active firewalld or ufw admits the CA port from, in CIDR form (repeatable). Default: the private networks 10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16 and fc00::/7.",
        valueName: "cidr"))
    var firewallAllowFrom: [String] = []

    @Flag(help: "Do not create the ACME provisioner \"acme\".")
    var noAcme = false

    @Flag(help: "Never prompt; generate any password that no file provides.")
    var nonInteractive = false

    @Flag(help: "Replace an existing CA (it is moved aside, not deleted).")
    var force = false

    @OptionGroup var output: QuietOption

    func run() async throws {
        Output.quiet = output.quiet
        let directories = Directories.fromEnvironment()
        let logger = Logger(label: "auto-ssl.ca.init")
        let initializer = CAInitializer(directories: directories, logger: logger)

        var options = CAInitOptions()
        options.acme = !noAcme
        options.name = name
        options.force = force
        options.provisionerName = provisioner
        guard let keyType = CAKeyType(rawValue: keyType.lowercased()) else {
            throw AutoSSLError.invalidArgument("--key-type must be ec or rsa, not \"\(keyType)\"")
        }
        options.keyType = keyType
        options.defaultDuration = try CertificateDuration(parsing: certDuration)
        options.maximumDuration = try CertificateDuration(parsing: maxDuration)
        options.addresses = try address.isEmpty
            ? [ListenAddress(host: NetworkAddresses.defaultCAHost(), port: 9000)]
            : address.map(ListenAddress.init(parsing:))
        options.dnsNames = dns
        let firewallSources = try firewallAllowFrom.isEmpty ? Firewall.privateNetworks : firewallAllowFrom.map(IPRange.init(parsing:))
        if let metricsAddress {
            options.metricsAddress = try ListenAddress(parsing: metricsAddress)
            options.metricsTLS = metricsTLS
        } else if metricsTLS {
            throw AutoSSLError.invalidArgument("--metrics-tls goes with --metrics-address")
        }
        if let revocationAddress {
            options.revocation = try RevocationSettings.serving(
                at: try ListenAddress(parsing: revocationAddress), urlHost: revocationURLHost)
        } else if revocationURLHost != nil {
            throw AutoSSLError.invalidArgument("--revocation-url-host goes with --revocation-address")
        }
        if databasePasswordFile != nil, database == nil {
            throw AutoSSLError.invalidArgument("--database-password-file goes with --database")
        }
        if let database {
            options.database = try Self.databaseSettings(url: database, passwordFile: databasePasswordFile)
        }

        // Everything that can be checked without secrets is checked before asking for any.
        var check = options
        check.caPassword = .generate
        check.provisionerPassword = .generate
        try check.validate()
        try initializer.checkNotInitialised(force: force)
        if let shared = options.database {
            _ = try await initializer.checkSharedDatabase(shared, passwordFile: databasePasswordFile)
        }

        if SecretFiles.isStandardInput(passwordFile), SecretFiles.isStandardInput(provisionerPasswordFile) {
            throw AutoSSLError.invalidArgument(
                "--password-file and --provisioner-password-file cannot both read standard input")
        }
        let needsPrompt = passwordFile == nil || provisionerPasswordFile == nil
        if needsPrompt, !nonInteractive, !Terminal.standardInputIsTerminal {
            throw AutoSSLError.invalidArgument(
                "standard input is not a terminal, so passwords cannot be asked for",
                hint: "pass --password-file and --provisioner-password-file, or --non-interactive to generate and store them")
        }
        options.caPassword = try passwordFile.map { .given(try SecretFiles.read($0, option: "--password-file")) }
            ?? (nonInteractive ? .generate : Terminal.readNewSecret(purpose: "CA key password", allowGenerate: true))
        options.provisionerPassword = try provisionerPasswordFile.map {
            .given(try SecretFiles.read($0, option: "--provisioner-password-file"))
        } ?? (nonInteractive ? .generate : Terminal.readNewSecret(purpose: "provisioner password", allowGenerate: true))

        if keyType == .rsa && !Output.quiet { Output.standardError("Generating RSA 4096 and 2048 keys; this can take a few seconds...\n") }
        let result = try initializer.initialise(options)
        if options.database != nil {
            do {
                try await initializer.bindSharedDatabase(result, databasePasswordFile: databasePasswordFile)
            } catch {
                Output.standardError(
                    "warning: the CA was created, but its database could not be prepared yet (\(error)); `ca serve` does it when it starts\n")
            }
        }
        report(result, directories: directories, firewallSources: firewallSources)
    }

    /// The database part of config.yaml: the URL checked, and the password file's path when it is a
    /// private file (its contents stay in it).
    static func databaseSettings(url: String, passwordFile: String?) throws -> DatabaseSettings {
        let location = try PostgresLocation(url: url)
        guard let passwordFile else { return DatabaseSettings(url: location.description) }
        return DatabaseSettings(url: location.description, passwordFile: try recordedPasswordFile(passwordFile))
    }

    /// The `--database-password-file` whose path config.yaml records for `ca serve` (`ca init
    /// --database`, `ca database migrate --to postgres://...`): a file that stays, as an absolute
    /// path (`ca serve` may start in any directory), held to `DatabaseMigration.checkPasswordFile`.
    static func recordedPasswordFile(_ given: String) throws -> String {
        guard !SecretFiles.isStandardInput(given) else {
            throw AutoSSLError.invalidArgument(
                "--database-password-file must be a file that stays (its path is recorded for `ca serve`), not standard input",
                hint: "write the password to a file with mode 0600, e.g. /etc/auto-ssl/database-password")
        }
        let path = Directories.absolute(given)
        try DatabaseMigration.checkPasswordFile(path)
        return path
    }

    private func report(_ result: CAInitResult, directories: Directories, firewallSources: [IPRange]) {
        let settings = result.settings
        let url = settings.addresses[0].urlString
        var lines: [String] = []
        if let previous = result.previousCALocation {
            lines.append("The previous CA was moved to \(previous) (its keys are still encrypted).")
        }
        lines += [
            "Created CA \"\(settings.name)\" in \(settings.paths.caDir)",
            "",
            "Root fingerprint (SHA-256) - compare it whenever you enroll a server or trust the CA:",
            "",
            "    \(result.rootFingerprint)",
            "",
            "  Root:          \(settings.name) Root CA (\(settings.keyType.rootAlgorithm.displayName), \(CAMaterial.rootLifetimeYears) years)",
            "  Intermediate:  \(settings.name) Intermediate CA (\(settings.keyType.intermediateAlgorithm.displayName), \(CAMaterial.intermediateLifetimeYears) years)",
            "  Addresses:     \(settings.addresses.map(\.description).joined(separator: ", "))",
            "  Provisioners:  \(CAStatusReport.ProvisionerSummary.all(settings).map(\.text).joined(separator: ", "))",
            "  Durations:     default \(settings.defaultDuration), maximum \(settings.maximumDuration)",
            "  Configuration: \(directories.configFile)",
        ]
        for (purpose, path) in result.generatedPasswordFiles {
            lines.append("  The \(purpose) was generated and stored in \(path) (mode 0600).")
        }
        lines.append("")
        lines.append(firewallReport(settings.addresses, sources: firewallSources))
        lines += [
            "",
            "Next steps:",
        ]
        lines += CAStartSteps.lines(settings: settings, directories: directories, givenPasswordFile: passwordFile)
        lines += [
            "  Check the CA:          auto-ssl ca status",
            "  On each server:        sudo auto-ssl server enroll --ca-url \(url) --fingerprint \(result.rootFingerprint)",
            "  On each client:        sudo auto-ssl client trust --ca-url \(url) --fingerprint \(result.rootFingerprint)",
        ]
        // Quiet: the fingerprint alone (servers and clients need it); the firewall was handled above.
        print(Output.quiet ? result.rootFingerprint : lines.joined(separator: "\n"))
    }

    private func firewallReport(_ addresses: [ListenAddress], sources: [IPRange]) -> String {
        let exposed = addresses.filter { address in
            guard let ip = IPAddress(address.host) else { return address.host != "localhost" }
            return !ip.isLoopback
        }
        guard !exposed.isEmpty else { return "Firewall: the CA listens on loopback only; no rule is needed." }
        let ranges = sources.map(\.description).joined(separator: ", ")
        var lines: [String] = []
        // An address outside every admitted range (a public one, by default) is worth saying out loud.
        for address in exposed {
            if let ip = IPAddress(address.host), !ip.isUnspecified, !sources.contains(where: { $0.contains(ip) }) {
                lines.append("Firewall: warning: the CA listens on \(address.host), outside \(ranges); the rules below do not admit"
                    + " clients that reach it there (name their networks with --firewall-allow-from)")
            }
        }
        let ports = Array(Set(exposed.map(\.port))).sorted()
        let firewall = Firewall()
        for port in ports {
            switch firewall.openPort(port, to: sources) {
            case .opened(let kind):
                let opened = firewall.ranges(for: kind, sources)
                lines.append("Firewall: opened \(port)/tcp in \(kind.rawValue) to \(opened.map(\.description).joined(separator: ", ")).")
                if opened.count < sources.count {
                    lines.append("Firewall: ufw has IPv6 turned off (IPV6=no in /etc/default/ufw): no rule for the IPv6 ranges.")
                }
            case .couldNotOpen(let kind, let command, let reason):
                lines.append("Firewall: \(kind.rawValue) is active but \(port)/tcp was not opened (\(reason)); run: \(command)")
            case .noActiveFirewall(let suggestions):
                lines.append("Firewall: no active firewalld or ufw found. If another firewall filters this host, allow \(port)/tcp from \(ranges) only, e.g.:")
                lines += suggestions.map { "    \($0)" }
            }
        }
        return lines.joined(separator: "\n")
    }
}
