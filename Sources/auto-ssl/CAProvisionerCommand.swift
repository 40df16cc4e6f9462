import ArgumentParser
import AutoSSLCA
import AutoSSLConfig
import AutoSSLCore
import AutoSSLIO
import Foundation

struct CAProvisionerCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "provisioner", abstract: "Manage provisioners: password (JWK) ones servers enroll with, and ACME ones.",
        subcommands: [
            ProvisionerListCommand.self, ProvisionerAddCommand.self, ProvisionerUpdateCommand.self, ProvisionerRemoveCommand.self,
            ProvisionerPasswordCommand.self, ProvisionerEABCommand.self,
        ])
}

struct ProvisionerListCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "List provisioners and their policies.")

    @Flag(help: "Print JSON.")
    var json = false

    func run() throws {
        let admin = ProvisionerAdmin(directories: Directories.fromEnvironment())
        let provisioners = try admin.list()
        let acme = try admin.acmeProvisioners()
        if json {
            struct View: Encodable {
                var name: String
                var type: String
                var kid: String?
                var policy: PolicySettings?
                var challenges: [String]?
                var requireEAB: Bool?
                var resolver: String?
                var http01Port: Int?
                var tlsALPN01Port: Int?
                var validationAllow: [String]?
                enum CodingKeys: String, CodingKey {
                    case name, type, kid, policy, challenges, resolver
                    case requireEAB = "require_eab"
                    case http01Port = "http01_port"
                    case tlsALPN01Port = "tls_alpn01_port"
                    case validationAllow = "validation_allow"
                }
            }
            try Output.json(try provisioners.map { provisioner in
                View(
                    name: provisioner.name, type: provisioner.type,
                    kid: try JSONDecoder().decode(ECJWK.self, from: Data(provisioner.publicKey.utf8)).kid,
                    policy: provisioner.policy)
            } + acme.map {
                View(
                    name: $0.name, type: "ACME", policy: $0.policy, challenges: $0.challenges, requireEAB: $0.requireEAB,
                    resolver: $0.resolver, http01Port: $0.http01Port, tlsALPN01Port: $0.tlsALPN01Port,
                    validationAllow: $0.validationAllow)
            })
            return
        }
        func rules(_ policy: PolicySettings?) -> [String] {
            guard let policy else { return [] }
            var rules: [String] = []
            if let dns = policy.allowedDNS { rules.append("dns: " + dns.joined(separator: ",")) }
            if let ips = policy.allowedIPs { rules.append("ip: " + ips.joined(separator: ",")) }
            if let max = policy.maximumDuration { rules.append("max: " + max) }
            return rules
        }
        for provisioner in provisioners {
            print(([("\(provisioner.name) (\(provisioner.type))")] + rules(provisioner.policy)).joined(separator: "  "))
        }
        for provisioner in acme {
            var parts = ["\(provisioner.name) (ACME)", "challenges: " + provisioner.challenges.joined(separator: ",")]
            if provisioner.requireEAB { parts.append("requires EAB") }
            if let resolver = provisioner.resolver { parts.append("resolver: " + resolver) }
            if let port = provisioner.http01Port { parts.append("http-01 port: \(port)") }
            if let port = provisioner.tlsALPN01Port { parts.append("tls-alpn-01 port: \(port)") }
            if let allow = provisioner.validationAllow { parts.append("validation-allow: " + allow.joined(separator: ",")) }
            print((parts + rules(provisioner.policy)).joined(separator: "  "))
        }
    }
}

/// Settings of ACME provisioners (`add --type acme`, `update`).
struct ACMEOptions: ParsableArguments {
    @Option(help: "ACME: challenges offered, comma-separated (http-01,dns-01,tls-alpn-01).") var challenges: String?
    @Flag(inversion: .prefixedNo, help: "ACME: require an external account binding (keys from `ca provisioner eab add`).")
    var requireEab: Bool?
    @Option(help: ArgumentHelp("ACME: DNS server for validation look-ups (A, AAAA, TXT); \"\" = the system's.", valueName: "host:port"))
    var resolver: String?
    @Option(name: .customLong("http01-port"), help: "ACME: port http-01 connects to (default 80).") var http01Port: Int?
    @Option(name: .customLong("tlsalpn01-port"), help: "ACME: port tls-alpn-01 connects to (default 443).") var tlsALPN01Port: Int?
    @Option(
        name: .customLong("validation-allow"),
        help: ArgumentHelp(
            "ACME: address range validation may connect to although refused by default (loopback, link-local, multicast, unspecified, this machine's own addresses); repeatable; \"\" clears the list.",
            valueName: "CIDR"))
    var validationAllow: [String] = []

    func changes(policy: PolicySettings?) -> ProvisionerAdmin.ACMEChanges {
        ProvisionerAdmin.ACMEChanges(
            challenges: challenges.map { $0.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) } },
            requireEAB: requireEab, resolver: resolver, http01Port: http01Port, tlsALPN01Port: tlsALPN01Port, policy: policy,
            validationAllow: validationAllow.isEmpty ? nil : validationAllow.filter { !$0.isEmpty })
    }

    var isEmpty: Bool {
        challenges == nil && requireEab == nil && resolver == nil && http01Port == nil && tlsALPN01Port == nil && validationAllow.isEmpty
    }
}

struct PolicyOptions: ParsableArguments {
    @Option(name: .customLong("allow-dns"), help: "Allowed DNS name, or suffix as .internal / *.internal (repeatable).")
    var allowDNS: [String] = []

    @Option(name: .customLong("allow-ip"), help: "Allowed IP range in CIDR form, e.g. 10.0.0.0/8 (repeatable).")
    var allowIP: [String] = []

    @Option(help: "Allowed key types, comma-separated (P-256, P-384, RSA-2048, RSA-3072, RSA-4096).")
    var keyTypes: String?

    @Option(help: "Default certificate lifetime for this provisioner.")
    var defaultDuration: String?

    @Option(help: "Shortest lifetime allowed.")
    var minDuration: String?

    @Option(help: "Longest lifetime allowed (at most 720h).")
    var maxDuration: String?

    var settings: PolicySettings? {
        let policy = PolicySettings(
            allowedDNS: allowDNS.isEmpty ? nil : allowDNS, allowedIPs: allowIP.isEmpty ? nil : allowIP,
            keyTypes: keyTypes.map { $0.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) } },
            defaultDuration: defaultDuration, minimumDuration: minDuration, maximumDuration: maxDuration)
        return policy == PolicySettings() ? nil : policy
    }
}

struct ProvisionerAddCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "add", abstract: "Create a provisioner: a password (JWK) one with its own policy, or an ACME one.",
        discussion: """
            ACME provisioners serve https://CA/acme/NAME/directory for certbot, lego, Caddy and other ACME clients.
            """)

    @Argument(help: "Provisioner name.")
    var positionalName: String?

    @Option(name: .customLong("name"), help: "Provisioner name (instead of the argument).")
    var nameOption: String?

    @Option(help: "jwk (password; the default) or acme.")
    var type = "jwk"

    @Option(help: ArgumentHelp("JWK: file holding its password (may be /dev/stdin).", valueName: "file"))
    var passwordFile: String?

    @Flag(help: "JWK: never prompt; generate the password when no file gives one.")
    var nonInteractive = false

    @OptionGroup var acme: ACMEOptions
    @OptionGroup var policy: PolicyOptions

    func run() async throws {
        guard let name = nameOption ?? positionalName else { throw AutoSSLError.invalidArgument("name the provisioner") }
        if let nameOption, let positionalName, nameOption != positionalName {
            throw AutoSSLError.invalidArgument("the provisioner is named twice (\(positionalName) and --name \(nameOption)); give one name")
        }
        try ProvisionerName.validateNew(name)
        let admin = ProvisionerAdmin(directories: Directories.fromEnvironment())
        // Checked now, before a password is asked for, and again on the settings in force (a stale
        // config.yaml on a replica may still list a provisioner another replica removed).
        let reusable: () async throws -> Void = {
            try await AdminRevocation(directories: Directories.fromEnvironment()).checkNameReusable(
                forNewProvisioner: name, acme: type.lowercased() == "acme")
        }
        try await reusable()
        switch type.lowercased() {
        case "acme":
            guard passwordFile == nil else { throw AutoSSLError.invalidArgument("ACME provisioners have no password") }
            let changes = acme.changes(policy: policy.settings)
            let added = try await Self.everywhere(
                "provisioner add \(name) (ACME)", event: "provisioner.added", provisioner: name, checkFirst: reusable
            ) { try admin.addACME(name: name, changes: changes) }
            print("Added ACME provisioner \(added.name) (challenges: \(added.challenges.joined(separator: ", "))\(added.requireEAB ? "; external account binding required" : "")).")
            let directories = Directories.fromEnvironment()
            let base = try? AutoSSLConfiguration.load(from: directories.configFile).ca?.addresses.first?.urlString
            print("Directory: \(base ?? "https://CA-ADDRESS")/acme/\(added.name)/directory")
            print(Self.inForce)
            return
        case "jwk":
            break
        default:
            throw AutoSSLError.invalidArgument("--type must be jwk or acme")
        }
        guard acme.isEmpty else { throw AutoSSLError.invalidArgument("--challenges, --require-eab, --resolver and the ports are for --type acme") }
        let password: PasswordChoice
        if let passwordFile {
            password = .given(try SecretFiles.read(passwordFile, option: "--password-file"))
        } else if nonInteractive {
            password = .generate
        } else if Terminal.standardInputIsTerminal {
            password = try Terminal.readNewSecret(purpose: "password for provisioner \(name)", allowGenerate: true)
        } else {
            throw AutoSSLError.invalidArgument(
                "standard input is not a terminal", hint: "pass --password-file, or --non-interactive to generate one")
        }
        let added = try await Self.everywhere(
            "provisioner add \(name)", event: "provisioner.added", provisioner: name, checkFirst: reusable
        ) { try admin.add(name: name, password: password, policy: policy.settings) }
        print("Added provisioner \(added.settings.name) (JWK).")
        if let file = added.generatedPasswordFile {
            print("Its password was generated and stored in \(file) (mode 0600).")
        }
        print(Self.inForce)
    }
}

struct ProvisionerUpdateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "update",
        abstract: "Change a provisioner's policy and durations (any type), or an ACME one's challenges, EAB requirement, resolver or ports.",
        discussion: "Each option given replaces that setting; the others stay as they were.")

    @Argument(help: "Provisioner name.") var name: String
    @OptionGroup var acme: ACMEOptions
    @OptionGroup var policy: PolicyOptions

    func run() async throws {
        let admin = ProvisionerAdmin(directories: Directories.fromEnvironment())
        if acme.isEmpty && policy.settings == nil {
            throw AutoSSLError.invalidArgument(
                "nothing to change", hint: "give a policy option (--allow-dns, --max-duration, ...) or, for ACME provisioners, --challenges and the like")
        }
        if try admin.list().contains(where: { $0.name == name }) {
            guard acme.isEmpty else {
                throw AutoSSLError.invalidArgument(
                    "\(name) is a password (JWK) provisioner: --challenges, --require-eab, --resolver, the ports and --validation-allow are for ACME ones")
            }
            let updated = try await Self.everywhere("provisioner update \(name)", event: "provisioner.updated", provisioner: name) { try admin.update(name: name, policy: policy.settings ?? PolicySettings()) }
            print("Updated provisioner \(updated.name) (JWK): " + PolicyText.describe(updated.policy) + ".")
            print(Self.inForce)
            return
        }
        let changes = acme.changes(policy: policy.settings)
        let updated = try await Self.everywhere("provisioner update \(name) (ACME)", event: "provisioner.updated", provisioner: name) { try admin.updateACME(name: name, changes: changes) }
        var parts = ["challenges: " + updated.challenges.joined(separator: ",")]
        parts.append(updated.requireEAB ? "EAB required" : "EAB optional")
        parts.append("resolver: " + (updated.resolver ?? "system"))
        parts.append("http-01 port: \(updated.http01Port ?? 80)")
        parts.append("tls-alpn-01 port: \(updated.tlsALPN01Port ?? 443)")
        parts.append("validation also allowed to: " + (updated.validationAllow?.joined(separator: ",") ?? "none"))
        parts.append(PolicyText.describe(updated.policy))
        print("Updated ACME provisioner \(updated.name): " + parts.joined(separator: ", ") + ".")
    }
}

/// A provisioner's own policy in words (fields it does not set come from the CA's).
enum PolicyText {
    static func describe(_ policy: PolicySettings?) -> String {
        guard let policy, policy != PolicySettings() else { return "policy: the CA's" }
        var rules: [String] = []
        if let dns = policy.allowedDNS { rules.append("DNS names: " + dns.joined(separator: ",")) }
        if let ips = policy.allowedIPs { rules.append("IP ranges: " + ips.joined(separator: ",")) }
        if let keys = policy.keyTypes { rules.append("key types: " + keys.joined(separator: ",")) }
        if let value = policy.defaultDuration { rules.append("default duration: " + value) }
        if let value = policy.minimumDuration { rules.append("minimum duration: " + value) }
        if let value = policy.maximumDuration { rules.append("maximum duration: " + value) }
        return rules.joined(separator: ", ")
    }
}

struct ProvisionerEABCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "eab", abstract: "External account binding keys of an ACME provisioner.",
        subcommands: [EABAddCommand.self, EABListCommand.self, EABRemoveCommand.self])
}

struct EABAddCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "add", abstract: "Create a key id and HMAC key that binds one ACME account.",
        discussion: "Give both to the client, e.g. certbot --eab-kid KID --eab-hmac-key KEY or lego --eab --kid KID --hmac KEY.")

    @Argument(help: "ACME provisioner name.") var name: String
    @Flag(help: "Print JSON.") var json = false

    func run() async throws {
        let (kid, key) = try await ProvisionerAdmin(directories: Directories.fromEnvironment()).addEABKey(provisioner: name)
        if json {
            try Output.json(["kid": kid, "hmac_key": key, "provisioner": name])
        } else {
            print("Key id:   \(kid)")
            print("HMAC key: \(key)")
            print("It binds one account of ACME provisioner \(name); keep the HMAC key secret until it is used.")
        }
    }
}

struct EABListCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "List binding keys (never the HMAC keys).")

    @Argument(help: "ACME provisioner name.") var name: String
    @Flag(help: "Print JSON.") var json = false

    func run() async throws {
        let admin = ProvisionerAdmin(directories: Directories.fromEnvironment())
        guard try admin.acmeProvisioners().contains(where: { $0.name == name }) else {
            throw AutoSSLError.general("there is no ACME provisioner named \"\(name)\"")
        }
        let keys = try await admin.eabKeys(provisioner: name)
        if json {
            struct View: Encodable {
                var kid: String
                var provisioner: String
                var createdAt: Date
                var boundAccount: String?
                enum CodingKeys: String, CodingKey {
                    case kid, provisioner
                    case createdAt = "created_at"
                    case boundAccount = "bound_account"
                }
            }
            try Output.json(keys.map { View(kid: $0.kid, provisioner: $0.provisioner, createdAt: $0.createdAt, boundAccount: $0.boundAccount) })
            return
        }
        if keys.isEmpty { print("Provisioner \(name) has no binding keys; create one with `auto-ssl ca provisioner eab add \(name)`.") }
        for key in keys {
            print("\(key.kid)  created \(Output.date(key.createdAt))  " + (key.boundAccount.map { "bound to account \($0)" } ?? "unused"))
        }
    }
}

struct EABRemoveCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "remove",
        abstract: "Remove a binding key no account has used yet.",
        discussion: """
            A key already bound is refused and kept: it was checked when its account was created, and the account \
            stays valid whatever happens to the key.
            """)

    @Argument(help: "Key id (from `eab add` or `eab list`).") var kid: String

    func run() async throws {
        let provisioner = try await ProvisionerAdmin(directories: Directories.fromEnvironment()).removeEABKey(kid: kid)
        print("Removed binding key \(kid) of ACME provisioner \(provisioner); it can no longer create an account.")
    }
}

struct ProvisionerRemoveCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "remove", abstract: "Remove a provisioner: its tokens stop working at once.",
        discussion: """
            The certificates it issued stay valid until they expire but are no longer renewed: their servers must \
            enroll again with another provisioner. The command says how many there are.
            """)

    @Argument(help: "Provisioner name.")
    var name: String

    @Flag(help: "Do not ask for confirmation.")
    var yes = false

    func run() async throws {
        let directories = Directories.fromEnvironment()
        // What stops renewing; a database that cannot be read is reported and does not block the removal.
        var usable: [(names: [String], notAfter: Date)]?
        do {
            usable = try await AdminRevocation(directories: directories).usableCertificates(of: name).map { ($0.names, $0.notAfter) }
        } catch {
            Output.warning("could not count the certificates of provisioner \(name): \(error)")
        }
        let consequence = usable.map {
            $0.isEmpty ? "" : " The \($0.count) certificate\($0.count == 1 ? "" : "s") it issued that can still be used will not be renewed."
        } ?? ""
        try Terminal.requireConfirmation(
            yes: yes, action: "removing a provisioner",
            question: "Remove provisioner \(name)? Servers using it can no longer enroll.\(consequence)")
        let admin = ProvisionerAdmin(directories: directories)
        try await Self.everywhere("provisioner remove \(name)", event: "provisioner.removed", provisioner: name) {
            if try !admin.removeACME(name: name) {
                try admin.remove(name: name)
            }
        }
        print("Removed provisioner \(name).")
        if let usable, let last = usable.map(\.notAfter).max() {
            print(
                "\(usable.count) certificate\(usable.count == 1 ? "" : "s") it issued will not be renewed; the last expires \(Output.date(last)).")
            var seen = Set<String>()
            let nameSets = usable.map { $0.names.joined(separator: ", ") }.filter { seen.insert($0).inserted }
            let shown = nameSets.prefix(20).map { "  " + $0 }.joined(separator: "\n")
            print("Their servers must enroll again with another provisioner (`auto-ssl server enroll`):\n" + shown)
            if nameSets.count > 20 { print("  and \(nameSets.count - 20) more (`auto-ssl ca certs list --provisioner \(name)`)") }
            print("If its password leaked, revoke them now: auto-ssl ca revoke --provisioner \(name) --issued-after TIME")
        }
    }
}

struct ProvisionerPasswordCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "password",
        abstract: "Give a provisioner a new key under a new password; tokens signed with the old key stop working.")

    @Argument(help: "Provisioner name.")
    var name: String

    @Option(help: ArgumentHelp("File holding the current password (default: its stored password file).", valueName: "file"))
    var passwordFile: String?

    @Option(help: ArgumentHelp("File holding the new password.", valueName: "file"))
    var newPasswordFile: String?

    @Flag(help: "Never prompt; generate the new password when no file gives one (it is stored 0600).")
    var nonInteractive = false

    func run() async throws {
        let directories = Directories.fromEnvironment()
        let admin = ProvisionerAdmin(directories: directories)
        guard let provisioner = try admin.list().first(where: { $0.name == name }) else {
            throw AutoSSLError.general("there is no provisioner named \"\(name)\"")
        }
        if SecretFiles.isStandardInput(passwordFile), SecretFiles.isStandardInput(newPasswordFile) {
            throw AutoSSLError.invalidArgument("--password-file and --new-password-file cannot both read standard input")
        }
        let interactive = !nonInteractive && Terminal.standardInputIsTerminal
        let current: String
        if let file = passwordFile ?? provisioner.passwordFile {
            current = try SecretFiles.read(file, option: "--password-file")
        } else if interactive {
            current = try Terminal.readSecret(prompt: "Current password of provisioner \(name): ")
        } else {
            throw AutoSSLError.invalidArgument("the current password is needed", hint: "pass --password-file")
        }
        let new: String
        if let newPasswordFile {
            new = try SecretFiles.read(newPasswordFile, option: "--new-password-file")
        } else if interactive {
            switch try Terminal.readNewSecret(purpose: "new password for provisioner \(name)", allowGenerate: provisioner.passwordFile != nil) {
            case .given(let value): new = value
            case .generate: new = Passwords.generate()
            }
        } else if nonInteractive, provisioner.passwordFile != nil {
            new = Passwords.generate()
        } else {
            throw AutoSSLError.invalidArgument("the new password is needed", hint: "pass --new-password-file")
        }
        guard new != current else { throw AutoSSLError.invalidArgument("the new password is the same as the current one") }
        let changed = try await Self.everywhere("provisioner password \(name)", event: "provisioner.key-rotated", provisioner: name) { try admin.changePassword(name: name, current: current, new: new) }
        let kid = (try? JSONDecoder().decode(ECJWK.self, from: Data(changed.publicKey.utf8)).kid) ?? "?"
        print("Provisioner \(name) has a new key (key id \(kid)), encrypted under the new password.")
        if let file = changed.passwordFile { print("The stored password in \(file) was updated.") }
        print("Tokens signed with the old key, including one-time tokens made before now, are refused from now on.")
        print("Servers that enroll from now on need the new password; certificates already issued are not affected.")
        print(Self.inForce)
    }
}

extension AsyncParsableCommand {
    /// Runs a change of provisioners or policy so that it is in force on every replica of a CA on a
    /// shared database (see `SharedSettingsSync.change`); on SQLite, just runs it.
    static func everywhere<T>(
        _ what: String, event: String, provisioner: String, checkFirst: (() async throws -> Void)? = nil, _ body: () throws -> T
    ) async throws -> T {
        try await SharedSettingsSync(directories: Directories.fromEnvironment()).change(
            what, event: event, provisioner: provisioner, checkFirst: checkFirst, body)
    }

    static var inForce: String {
        "A running `auto-ssl ca serve` (every replica, for a CA on PostgreSQL) picks it up within seconds."
    }
}
