import AutoSSLConfig
import AutoSSLCore
import AutoSSLIO
import Foundation

/// `ca provisioner add|remove|password`: changes to config.yaml and the encrypted keys, each
/// written atomically. A running `ca serve` picks them up within seconds.
public struct ProvisionerAdmin {
    public let directories: Directories

    public init(directories: Directories) {
        self.directories = directories
    }

    func load() throws -> (AutoSSLConfiguration, CASettings) {
        let configuration = try AutoSSLConfiguration.load(from: directories.configFile)
        guard let settings = configuration.ca else {
            throw AutoSSLError.general("no CA on this machine", hint: "create one with `auto-ssl ca init`")
        }
        return (configuration, settings)
    }

    public func list() throws -> [ProvisionerSettings] {
        try load().1.provisioners
    }

    public struct Added: Sendable {
        public var settings: ProvisionerSettings
        public var generatedPasswordFile: String?
    }

    public func add(
        name: String, password: PasswordChoice, policy: PolicySettings?, kdfIterations: Int = PasswordJWE.defaultIterations
    ) throws -> Added {
        try ProvisionerName.validateNew(name)
        var (configuration, settings) = try load()
        if settings.acmeProvisioners?.contains(where: { $0.name == name }) == true {
            throw AutoSSLError.invalidArgument("an ACME provisioner named \"\(name)\" already exists")
        }
        guard !settings.provisioners.contains(where: { $0.name == name }) else {
            throw AutoSSLError.invalidArgument("a provisioner named \"\(name)\" already exists")
        }
        var policy = policy
        // A maximum below the inherited default lowers the default with it (a 24h provisioner
        // defaults to 24h rather than refusing every request that names no lifetime).
        if var adjusted = policy, adjusted.defaultDuration == nil, let maximum = adjusted.maximumDuration,
           let inherited = settings.basePolicySettings.defaultDuration,
           try CertificateDuration(parsing: maximum) < CertificateDuration(parsing: inherited) {
            adjusted.defaultDuration = maximum
            policy = adjusted
        }
        // The policy must parse on top of the CA's before anything is written.
        _ = try IssuancePolicy(settings.basePolicySettings.overlaid(by: policy))
        let secret: String
        var storedPasswordFile: String?
        switch password {
        case .given(let given):
            try Passwords.validate(given, purpose: "provisioner password")
            // As at `ca init`: the CA key password (when this machine stores it) never doubles as one.
            if let caPassword = try? AuthorityLoader(directories: directories).caPassword(explicitFile: nil, settings: settings),
               caPassword == given {
                throw AutoSSLError.invalidArgument(
                    "the provisioner password must differ from the CA key password",
                    hint: "the provisioner password is shared with every application server; the CA key password never leaves the CA")
            }
            secret = given
        case .generate:
            secret = Passwords.generate()
            storedPasswordFile = directories.configDir + "/provisioner-\(name)-password"
        }
        let jwk = ECJWK.generatePrivate()
        let jwe = try PasswordJWE.encrypt(Data(try jwk.jsonString().utf8), password: secret, iterations: kdfIterations)
        let keyFile = settings.paths.provisionerKeyFile(name)
        let provisioner = ProvisionerSettings(
            name: name, type: "JWK", publicKey: try jwk.publicOnly.jsonString(), encryptedKeyFile: keyFile, policy: policy,
            passwordFile: storedPasswordFile)
        try FileOperations.writeAtomically(jwe + "\n", to: keyFile, mode: 0o600)
        do {
            if let storedPasswordFile {
                try FileOperations.writeAtomically(secret + "\n", to: storedPasswordFile, mode: 0o600)
            }
            settings.provisioners.append(provisioner)
            configuration.ca = settings
            try configuration.save(to: directories.configFile)
        } catch {
            try? FileOperations.removeTree(keyFile)
            if let storedPasswordFile { try? FileOperations.removeTree(storedPasswordFile) }
            throw error
        }
        return Added(settings: provisioner, generatedPasswordFile: storedPasswordFile)
    }

    /// Changes the policy of a password (JWK) provisioner: each field given replaces the one it
    /// had, the others stay. Checked on top of the CA's policy before anything is written; applies
    /// to tokens signed from now on and to renewals of what the provisioner issued.
    public func update(name: String, policy changes: PolicySettings) throws -> ProvisionerSettings {
        var (configuration, settings) = try load()
        guard let index = settings.provisioners.firstIndex(where: { $0.name == name }) else {
            throw AutoSSLError.general("there is no provisioner named \"\(name)\"")
        }
        var merged = (settings.provisioners[index].policy ?? PolicySettings()).overlaid(by: changes)
        // A lower maximum lowers the default with it (as for `add`), unless this update gives one.
        if changes.defaultDuration == nil, let maximum = changes.maximumDuration,
           let inherited = merged.defaultDuration ?? settings.basePolicySettings.defaultDuration,
           try CertificateDuration(parsing: maximum) < CertificateDuration(parsing: inherited) {
            merged.defaultDuration = maximum
        }
        _ = try IssuancePolicy(settings.basePolicySettings.overlaid(by: merged))
        settings.provisioners[index].policy = merged == PolicySettings() ? nil : merged
        configuration.ca = settings
        try configuration.save(to: directories.configFile)
        return settings.provisioners[index]
    }

    public func remove(name: String) throws {
        var (configuration, settings) = try load()
        guard let provisioner = settings.provisioners.first(where: { $0.name == name }) else {
            throw AutoSSLError.general("there is no provisioner named \"\(name)\"")
        }
        settings.provisioners.removeAll { $0.name == name }
        configuration.ca = settings
        try configuration.save(to: directories.configFile)
        // The configuration no longer names them: removing the key and stored password cannot strand anything.
        try FileOperations.removeTree(provisioner.encryptedKeyFile)
        if let passwordFile = provisioner.passwordFile { try FileOperations.removeTree(passwordFile) }
    }

    /// Replaces the provisioner's key pair with a new one, encrypted under a new password (the
    /// current one must open the old key). A password that leaked gives its holder the key itself
    /// (anyone can fetch the encrypted key from `/provisioners`), so re-encrypting the same key would
    /// leave them able to sign tokens: the new key has a new key id, and tokens signed with the old
    /// key, including one-time tokens already handed out, are refused from now on. Certificates
    /// already issued are not affected.
    ///
    /// Order, so that a crash or a failed write never leaves the old key accepted nor the new key
    /// without its password: the new stored password goes to `<password file>.pending`, then
    /// config.yaml names the new public key (the old one is refused from there on), then the key
    /// file is replaced, then the pending password takes the stored one's place. A failed write puts
    /// back what was changed. After a crash the command is run again: with the current password if
    /// the key file was not replaced yet; else the pending password opens the new key, and the
    /// change it belonged to is completed first.
    public func changePassword(
        name: String, current: String, new: String, kdfIterations: Int = PasswordJWE.defaultIterations
    ) throws -> ProvisionerSettings {
        var (configuration, settings) = try load()
        guard let index = settings.provisioners.firstIndex(where: { $0.name == name }) else {
            throw AutoSSLError.general("there is no provisioner named \"\(name)\"")
        }
        var provisioner = settings.provisioners[index]
        try Passwords.validate(new, purpose: "new provisioner password")
        let keyFile = provisioner.encryptedKeyFile
        let oldJWE = try FileOperations.readText(keyFile)
        let pending = provisioner.passwordFile.map { $0 + ".pending" }
        if (try? PasswordJWE.decrypt(oldJWE, password: current)) == nil {
            // An interrupted change: its new key under the password it was storing.
            guard let pending, let passwordFile = provisioner.passwordFile, FileOperations.exists(pending),
                  let interrupted = try? Passwords.fromFileContents(FileOperations.readText(pending)),
                  (try? PasswordJWE.decrypt(oldJWE, password: interrupted)) != nil
            else {
                throw AutoSSLError(
                    .trustFailure, "the current password of provisioner \"\(name)\" is wrong; nothing was changed",
                    hint: "give the password it has now with --password-file")
            }
            try FileOperations.move(pending, to: passwordFile)
        }
        let jwk = ECJWK.generatePrivate()
        let encrypted = try PasswordJWE.encrypt(Data(try jwk.jsonString().utf8), password: new, iterations: kdfIterations)
        let previous = settings
        provisioner.publicKey = try jwk.publicOnly.jsonString()
        settings.provisioners[index] = provisioner
        configuration.ca = settings
        if let pending { try FileOperations.writeAtomically(new + "\n", to: pending, mode: 0o600) }
        do {
            try configuration.save(to: directories.configFile)
            do {
                try FileOperations.writeAtomically(encrypted + "\n", to: keyFile, mode: 0o600)
                if let pending, let passwordFile = provisioner.passwordFile { try FileOperations.move(pending, to: passwordFile) }
            } catch {
                try? FileOperations.writeAtomically(oldJWE, to: keyFile, mode: 0o600)
                configuration.ca = previous
                try? configuration.save(to: directories.configFile)
                throw error
            }
        } catch {
            if let pending { try? FileOperations.removeTree(pending) }
            throw error
        }
        return provisioner
    }
}
