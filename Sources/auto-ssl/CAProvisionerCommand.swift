import ArgumentParser
import AutoSSLCA
import AutoSSLCore
import AutoSSLIO
import Foundation

struct CAProvisionerCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "provisioner", abstract: "Manage the password (JWK) provisioners servers enroll with.",
        subcommands: [
            ProvisionerListCommand.self, ProvisionerAddCommand.self, ProvisionerRemoveCommand.self,
            ProvisionerPasswordCommand.self,
        ])
}

struct ProvisionerListCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "List provisioners and their policies.")

    @Flag(help: "Print JSON.")
    var json = false

    func run() throws {
        let provisioners = try ProvisionerAdmin(directories: Directories.fromEnvironment()).list()
        if json {
            struct View: Encodable {
                var name: String
                var type: String
                var kid: String?
                var policy: PolicySettings?
            }
            try Output.json(try provisioners.map { provisioner in
                View(
                    name: provisioner.name, type: provisioner.type,
                    kid: try JSONDecoder().decode(ECJWK.self, from: Data(provisioner.publicKey.utf8)).kid,
                    policy: provisioner.policy)
            })
            return
        }
        for provisioner in provisioners {
            var line = "\(provisioner.name) (\(provisioner.type))"
            if let policy = provisioner.policy {
                var rules: [String] = []
                if let dns = policy.allowedDNS { rules.append("dns: " + dns.joined(separator: ",")) }
                if let ips = policy.allowedIPs { rules.append("ip: " + ips.joined(separator: ",")) }
                if let max = policy.maximumDuration { rules.append("max: " + max) }
                if !rules.isEmpty { line += "  " + rules.joined(separator: "  ") }
            }
            print(line)
        }
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

struct ProvisionerAddCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "add", abstract: "Create another password provisioner, with its own policy.")

    @Argument(help: "Provisioner name.")
    var name: String

    @Option(help: ArgumentHelp("File holding its password (may be /dev/stdin).", valueName: "file"))
    var passwordFile: String?

    @Flag(help: "Never prompt; generate the password when no file gives one.")
    var nonInteractive = false

    @OptionGroup var policy: PolicyOptions

    func run() throws {
        let admin = ProvisionerAdmin(directories: Directories.fromEnvironment())
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
        let added = try admin.add(name: name, password: password, policy: policy.settings)
        print("Added provisioner \(added.settings.name) (JWK).")
        if let file = added.generatedPasswordFile {
            print("Its password was generated and stored in \(file) (mode 0600).")
        }
        print("A running `auto-ssl ca serve` picks it up within seconds.")
    }
}

struct ProvisionerRemoveCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "remove", abstract: "Remove a provisioner: its tokens stop working at once.")

    @Argument(help: "Provisioner name.")
    var name: String

    @Flag(help: "Do not ask for confirmation.")
    var yes = false

    func run() throws {
        try Terminal.requireConfirmation(
            yes: yes, action: "removing a provisioner", question: "Remove provisioner \(name)? Servers using it can no longer enroll.")
        try ProvisionerAdmin(directories: Directories.fromEnvironment()).remove(name: name)
        print("Removed provisioner \(name).")
    }
}

struct ProvisionerPasswordCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "password", abstract: "Re-encrypt a provisioner's key under a new password.")

    @Argument(help: "Provisioner name.")
    var name: String

    @Option(help: ArgumentHelp("File holding the current password (default: its stored password file).", valueName: "file"))
    var passwordFile: String?

    @Option(help: ArgumentHelp("File holding the new password.", valueName: "file"))
    var newPasswordFile: String?

    @Flag(help: "Never prompt; generate the new password when no file gives one (it is stored 0600).")
    var nonInteractive = false

    func run() throws {
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
        let changed = try admin.changePassword(name: name, current: current, new: new)
        print("The key of provisioner \(name) is now encrypted under the new password.")
        if let file = changed.passwordFile { print("The stored password in \(file) was updated.") }
        print("Servers that enroll from now on need the new password; certificates already issued are not affected.")
    }
}
