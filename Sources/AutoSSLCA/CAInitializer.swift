import AutoSSLConfig
import AutoSSLCore
import AutoSSLIO
import Foundation
import Logging

/// Where a secret comes from: the operator gave it, or we generate it and store it 0600.
public enum PasswordChoice: Sendable {
    case given(String)
    case generate
}

public struct CAInitOptions: Sendable {
    public var name = "Internal CA"
    public var addresses: [ListenAddress] = []
    public var dnsNames: [String] = []
    public var keyType: CAKeyType = .ec
    public var defaultDuration = CertificateDuration.hours(168)
    public var maximumDuration = CertificateDuration.hours(720)
    public var provisionerName = "admin"
    public var caPassword: PasswordChoice = .generate
    public var provisionerPassword: PasswordChoice = .generate
    public var force = false
    public var kdfIterations = EncryptedPrivateKey.defaultIterations
    /// An ACME provisioner named `acme` (`ca init --no-acme` leaves it out).
    public var acme = true
    /// A PostgreSQL database for the CA's records (checked with `checkSharedDatabase` first); nil = SQLite.
    public var database: DatabaseSettings?
    /// The plain-HTTP revocation listener and the CRL and OCSP URLs leaves carry (`--revocation-address`).
    public var revocation: RevocationSettings?
    /// Where `ca serve` answers Prometheus scrapes (`--metrics-address`), and whether over HTTPS.
    public var metricsAddress: ListenAddress?
    public var metricsTLS = false

    public init() {}

    /// Hard limits of the product : certificates live at least 5 minutes and at most 30 days.
    public static let minimumDuration = CertificateDuration.minutes(5)
    public static let durationCeiling = CertificateDuration.days(30)

    public func validate() throws {
        try Self.validateCAName(name)
        guard !addresses.isEmpty else { throw AutoSSLError.invalidArgument("at least one --address is needed") }
        for name in dnsNames { _ = try SubjectName(parsing: name) }
        try ProvisionerName.validateNew(provisionerName)
        guard maximumDuration >= Self.minimumDuration, maximumDuration <= Self.durationCeiling else {
            throw AutoSSLError.invalidArgument(
                "--max-duration \(maximumDuration) is out of bounds",
                hint: "choose between \(Self.minimumDuration) and \(Self.durationCeiling.description) (30 days)")
        }
        guard defaultDuration >= Self.minimumDuration, defaultDuration <= maximumDuration else {
            throw AutoSSLError.invalidArgument(
                "--cert-duration \(defaultDuration) is out of bounds",
                hint: "choose between \(Self.minimumDuration) and the maximum duration \(maximumDuration)")
        }
        if case .given(let password) = caPassword { try Passwords.validate(password, purpose: "CA key password") }
        if case .given(let password) = provisionerPassword {
            try Passwords.validate(password, purpose: "provisioner password")
        }
        if case .given(let a) = caPassword, case .given(let b) = provisionerPassword, a == b {
            throw AutoSSLError.invalidArgument(
                "the provisioner password must differ from the CA key password",
                hint: "the provisioner password is shared with every application server; the CA key password never leaves the CA")
        }
    }

    static func validateCAName(_ name: String) throws {
        // The longest subject CN we derive is "<name> Intermediate CA"; X.520 caps a CN at 64 characters.
        guard !name.trimmingCharacters(in: .whitespaces).isEmpty, name.count <= 48 else {
            throw AutoSSLError.invalidArgument("--name must be 1 to 48 characters")
        }
        guard !name.unicodeScalars.contains(where: { CharacterSet.controlCharacters.contains($0) }) else {
            throw AutoSSLError.invalidArgument("--name must not contain control characters")
        }
    }
}

public enum ProvisionerName {
    /// The name the CA records its own TLS certificates under (not a provisioner: no provisioner
    /// may take it, and `ca revoke --provisioner` does not take it).
    public static let caServer = "ca-server"

    /// A name for a provisioner made now (`ca init`, `ca provisioner add`): well formed and not
    /// reserved. (Names read back, from config.yaml or the shared settings, are only checked for
    /// their form, so that one made before a name was reserved can still be removed.)
    public static func validateNew(_ name: String) throws {
        guard name != caServer else {
            throw AutoSSLError.invalidArgument(
                "\"\(caServer)\" is the name the CA records its own TLS certificates under; a provisioner cannot have it",
                hint: "choose another name")
        }
        try validate(name)
    }

    public static func validate(_ name: String) throws {
        // "@": step-ca names its first provisioner after an e-mail address, and `ca import` keeps it.
        let allowed = CharacterSet(charactersIn: "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-@")
        guard (1...64).contains(name.count), name.unicodeScalars.allSatisfy(allowed.contains), !name.hasPrefix(".") else {
            throw AutoSSLError.invalidArgument(
                "invalid provisioner name \"\(name)\"",
                hint: "use 1-64 letters, digits, dots, underscores, hyphens or @")
        }
    }
}

public struct CAInitResult: Sendable {
    public var settings: CASettings
    public var rootFingerprint: String
    public var intermediateFingerprint: String
    /// Secrets we generated and where they are stored, in the order (purpose, path).
    public var generatedPasswordFiles: [(purpose: String, path: String)]
    /// Where a replaced CA was moved, when --force replaced one.
    public var previousCALocation: String?
}

/// Creates a CA: root, intermediate, encrypted keys, provisioner, configuration. All or nothing:
/// the CA directory appears by one rename of a fully written staging directory, and any later
/// failure undoes what was done, including putting a replaced CA back.
public struct CAInitializer {
    public let directories: Directories
    let logger: Logger
    /// Tests only: called at named points of the install so a failure can be injected there.
    var faultInjector: (@Sendable (InstallPoint) throws -> Void)?

    enum InstallPoint: Sendable {
        case movedAside, installedCADirectory, wroteSecrets
    }

    public init(directories: Directories, logger: Logger = Logger(label: "auto-ssl.ca.init")) {
        self.directories = directories
        self.logger = logger
    }

    /// Describes an existing CA on this machine, or nil when there is none.
    public func existingCA() throws -> String? {
        if FileOperations.exists(directories.caDir) { return "a CA directory exists at \(directories.caDir)" }
        let configuration: AutoSSLConfiguration
        do {
            configuration = try AutoSSLConfiguration.load(from: directories.configFile)
        } catch {
            // A damaged file may describe a CA: only --force replaces it (keeping a copy).
            return "\(directories.configFile) exists and cannot be read"
        }
        if configuration.ca != nil {
            return "\(directories.configFile) describes a CA"
        }
        return nil
    }

    /// Refuses early (before any password prompt or key generation) when a CA exists and --force is not given.
    public func checkNotInitialised(force: Bool) throws {
        guard !force, let existing = try existingCA() else { return }
        throw AutoSSLError.general(
            "a CA already exists on this machine (\(existing)); nothing was changed",
            hint: "check it with `auto-ssl ca status`; to replace it, rerun with --force (the old CA is moved aside, not deleted), or remove it with `auto-ssl ca reset`")
    }

    public func initialise(_ options: CAInitOptions, now: Date = Date()) throws -> CAInitResult {
        try options.validate()
        try checkNotInitialised(force: options.force)

        var generated: [(purpose: String, path: String)] = []
        let caPassword: String
        switch options.caPassword {
        case .given(let password): caPassword = password
        case .generate:
            caPassword = Passwords.generate()
            generated.append(("CA key password", directories.caPasswordFile))
        }
        let provisionerPassword: String
        switch options.provisionerPassword {
        case .given(let password): provisionerPassword = password
        case .generate:
            provisionerPassword = Passwords.generate()
            generated.append(("provisioner (enrollment) password", directories.provisionerPasswordFile))
        }

        logger.debug("generating CA keys", metadata: ["key-type": "\(options.keyType.rawValue)"])
        let material = try CAMaterial.create(
            caName: options.name, keyType: options.keyType, caPassword: caPassword,
            provisionerPassword: provisionerPassword, now: now, kdfIterations: options.kdfIterations)

        let paths = CAPaths(caDir: directories.caDir)
        var settings = CASettings(
            name: options.name,
            addresses: options.addresses,
            dnsNames: options.dnsNames.map { $0.lowercased() },
            keyType: options.keyType,
            defaultDuration: options.defaultDuration.description,
            minimumDuration: CAInitOptions.minimumDuration.description,
            maximumDuration: options.maximumDuration.description,
            passwordFile: generated.contains { $0.path == directories.caPasswordFile } ? directories.caPasswordFile : nil,
            provisioners: [
                ProvisionerSettings(
                    name: options.provisionerName, type: "JWK",
                    publicKey: try material.provisionerPublicJWK.jsonString(),
                    encryptedKeyFile: paths.provisionerKeyFile(options.provisionerName),
                    passwordFile: generated.contains { $0.path == directories.provisionerPasswordFile }
                        ? directories.provisionerPasswordFile : nil),
            ],
            paths: paths,
            createdAt: now,
            acmeProvisioners: options.acme && options.provisionerName != "acme" ? [ACMEProvisionerSettings(name: "acme")] : nil,
            database: options.database)
        settings.revocation = options.revocation
        settings.metricsAddress = options.metricsAddress
        if options.metricsTLS { settings.metricsTLS = true }

        try FileOperations.makeDirectory(directories.dataDir, mode: 0o755)
        try FileOperations.makeDirectory(directories.configDir, mode: 0o755)
        removeStaleStagingDirectories()
        let staging = try writeStaging(material, settings: settings)
        var stagingInstalled = false
        defer {
            if !stagingInstalled { try? FileOperations.removeTree(staging) }
        }

        var transaction = InstallTransaction(directories: directories, logger: logger)
        do {
            if options.force, try existingCA() != nil {
                try transaction.moveExistingCAAside(suffix: "replaced-" + FileOperations.timestamp(now))
                try faultInjector?(.movedAside)
            }
            try FileOperations.move(staging, to: directories.caDir)
            stagingInstalled = true
            transaction.installedCADirectory = true
            try faultInjector?(.installedCADirectory)
            if case .generate = options.caPassword {
                try transaction.writeSecret(caPassword, to: directories.caPasswordFile)
            }
            if case .generate = options.provisionerPassword {
                try transaction.writeSecret(provisionerPassword, to: directories.provisionerPasswordFile)
            }
            try faultInjector?(.wroteSecrets)
            try transaction.installCASettings(settings)
        } catch {
            transaction.rollBack()
            throw error
        }

        return CAInitResult(
            settings: settings,
            rootFingerprint: try Fingerprint.sha256(of: material.root),
            intermediateFingerprint: try Fingerprint.sha256(of: material.intermediate),
            generatedPasswordFiles: generated,
            previousCALocation: transaction.movedAside)
    }

    /// Writes the whole CA into a fresh hidden directory next to its final place.
    private func writeStaging(_ material: CAMaterial, settings: CASettings) throws -> String {
        let staging = directories.dataDir + "/.ca-staging-" + Passwords.generate(length: 8)
        try FileOperations.makeDirectory(staging, mode: 0o700)
        do {
            let paths = CAPaths(caDir: staging)
            try FileOperations.makeDirectory(staging + "/certs", mode: 0o755)
            try FileOperations.makeDirectory(paths.secretsDir, mode: 0o700)
            try FileOperations.makeDirectory(paths.databaseDir, mode: 0o700)
            try FileOperations.writeAtomically(try material.root.pemString(), to: paths.rootCertificate, mode: 0o644)
            try FileOperations.writeAtomically(
                try material.intermediate.pemString(), to: paths.intermediateCertificate, mode: 0o644)
            try FileOperations.writeAtomically(material.encryptedRootKey, to: paths.rootKey, mode: 0o600)
            try FileOperations.writeAtomically(material.encryptedIntermediateKey, to: paths.intermediateKey, mode: 0o600)
            try IntermediateRotation.writeRootCRL(
                material.rootCRL, state: .init(crlNumber: IntermediateRotation.firstRootCRLNumber, revoked: []), caDir: staging)
            for provisioner in settings.provisioners {
                try FileOperations.writeAtomically(
                    material.provisionerEncryptedKey + "\n", to: paths.provisionerKeyFile(provisioner.name), mode: 0o600)
            }
            // The staging directory was private while being filled; the CA directory itself is traversable.
            guard chmod(staging, 0o755) == 0 else { throw FileOperations.systemError(errno, "set the mode of \(staging)") }
            try FileOperations.syncDirectory(staging)
            return staging
        } catch {
            try? FileOperations.removeTree(staging)
            throw error
        }
    }

    /// A crash between staging and rename leaves a hidden directory with encrypted keys; clear it.
    func removeStaleStagingDirectories() {
        for path in FileOperations.removeStaleDirectories(in: directories.dataDir, prefix: ".ca-staging-", olderThan: 0) {
            logger.debug("removed stale staging directory", metadata: ["path": "\(path)"])
        }
    }
}
