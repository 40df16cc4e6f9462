import AutoSSLCore
import AutoSSLIO
import AutoSSLStore
import Crypto
import Foundation
import Logging
import X509

/// Opens the CA on this machine for serving: reads config.yaml, refuses unsafe key permissions,
/// decrypts the intermediate key with the CA password, opens the database and the audit log.
public struct AuthorityLoader: Sendable {
    public let directories: Directories
    let logger: Logger

    public init(directories: Directories, logger: Logger = Logger(label: "auto-ssl.ca")) {
        self.directories = directories
        self.logger = logger
    }

    public func settings() throws -> CASettings {
        guard let settings = try AutoSSLConfiguration.load(from: directories.configFile).ca else {
            throw AutoSSLError.general(
                "no CA on this machine (looked in \(directories.configFile))", hint: "create one with `auto-ssl ca init`")
        }
        return settings
    }

    /// The CA password: --password-file, else a systemd credential named ca-password, else the
    /// password file recorded by `ca init`, else $AUTO_SSL_CONFIG_DIR/ca-password.
    public func caPassword(explicitFile: String?, settings: CASettings) throws -> String {
        var candidates: [String] = []
        if let explicitFile { candidates.append(explicitFile) }
        if let credentials = ProcessInfo.processInfo.environment["CREDENTIALS_DIRECTORY"] {
            candidates.append(credentials + "/ca-password")
        }
        if let recorded = settings.passwordFile { candidates.append(recorded) }
        candidates.append(directories.caPasswordFile)
        for path in candidates where explicitFile == path || FileOperations.exists(path) {
            let password = Passwords.fromFileContents(try FileOperations.readText(path))
            guard !password.isEmpty else { throw AutoSSLError.invalidArgument("\(path) is empty") }
            return password
        }
        throw AutoSSLError.invalidArgument(
            "no CA password available",
            hint: "pass --password-file, provide a systemd credential named ca-password, or create \(directories.caPasswordFile) (mode 0600)")
    }

    /// Refuses to go on when a key file or the secrets directory can be read by group or others.
    public static func checkSecretPermissions(_ settings: CASettings) throws {
        var problems: [String] = []
        if let mode = FileOperations.mode(of: settings.paths.secretsDir), mode & 0o077 != 0 {
            problems.append("\(settings.paths.secretsDir) has mode \(String(mode, radix: 8)) (run: chmod 700 \(settings.paths.secretsDir))")
        }
        var keyFiles = [settings.paths.rootKey, settings.paths.intermediateKey]
        keyFiles += settings.provisioners.map(\.encryptedKeyFile)
        for path in keyFiles {
            if let mode = FileOperations.mode(of: path), mode & 0o077 != 0 {
                problems.append("\(path) has mode \(String(mode, radix: 8)) (run: chmod 600 \(path))")
            }
        }
        guard problems.isEmpty else {
            throw AutoSSLError(
                .permissionDenied, "refusing to use CA keys that group or others can read:\n  " + problems.joined(separator: "\n  "),
                hint: "fix the modes, then start again")
        }
    }

    public func provisioners(_ settings: CASettings) throws -> [Provisioner] {
        let base = settings.basePolicySettings
        return try settings.provisioners.map { provisioner in
            guard provisioner.type == "JWK" else {
                throw AutoSSLError.general("provisioner \(provisioner.name) has unsupported type \(provisioner.type)")
            }
            let jwk = try JSONDecoder().decode(ECJWK.self, from: Data(provisioner.publicKey.utf8))
            let policy: IssuancePolicy
            do {
                policy = try IssuancePolicy(base.overlaid(by: provisioner.policy))
            } catch let error as AutoSSLError {
                throw AutoSSLError.general("the policy of provisioner \(provisioner.name) is invalid: \(error.message)")
            }
            return Provisioner(
                settings: provisioner, publicJWK: jwk, publicKey: try jwk.publicKey(), policy: policy,
                encryptedKey: try FileOperations.readText(provisioner.encryptedKeyFile)
                    .trimmingCharacters(in: .whitespacesAndNewlines))
        }
    }

    /// Intermediates archived by `ca rotate-intermediate` (certs/intermediates/*.crt).
    public func previousIntermediates(_ settings: CASettings) throws -> [Certificate] {
        let directory = settings.paths.caDir + "/certs/intermediates"
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: directory) else { return [] }
        return try names.filter { $0.hasSuffix(".crt") }.sorted().map {
            try CAStatusReport.loadCertificate(directory + "/" + $0, what: "archived intermediate certificate")
        }
    }

    /// Opens the certificate database (creating it on a new CA's first use). A file that is there
    /// but is not an SQLite database, or that SQLite finds damaged, is refused before anything
    /// writes to it: the CA then stops with a clear error instead of starting on an empty database.
    public func openStore(_ settings: CASettings) throws -> SQLiteCertificateStore {
        try FileOperations.makeDirectory(settings.paths.databaseDir, mode: 0o700)
        let path = settings.paths.databaseDir + "/auto-ssl.sqlite"
        let advice = "nothing was changed; restore the CA from a backup (`auto-ssl ca restore`) or move the file aside to investigate"
        if let handle = FileHandle(forReadingAtPath: path) {
            let header = (try? handle.read(upToCount: 16)) ?? Data()
            try? handle.close()
            if !header.isEmpty, header != Data("SQLite format 3\0".utf8) {
                throw AutoSSLError.general("the certificate database \(path) is damaged: it is not an SQLite database; \(advice)")
            }
        } else if FileManager.default.fileExists(atPath: path) {
            throw AutoSSLError(.permissionDenied, "cannot read the certificate database \(path)", hint: "run as the user that owns the CA (root, or the service user)")
        }
        do {
            return try SQLiteCertificateStore(path: path)
        } catch let error as SQLiteCertificateStore.StoreOpenError {
            throw AutoSSLError.general("\(error.description); \(advice)")
        } catch {
            throw AutoSSLError.general("could not open the certificate database \(path): \(error); \(advice)")
        }
    }

    public func openAuditLog() throws -> AuditLog {
        try AuditLog(path: directories.auditLog)
    }

    /// Everything `ca serve` needs.
    public func load(passwordFile: String?) throws -> Authority {
        let settings = try settings()
        try Self.checkSecretPermissions(settings)
        let password = try caPassword(explicitFile: passwordFile, settings: settings)
        let root = try CAStatusReport.loadCertificate(settings.paths.rootCertificate, what: "root certificate")
        let intermediate = try CAStatusReport.loadCertificate(
            settings.paths.intermediateCertificate, what: "intermediate certificate")
        let key: SigningKey
        do {
            key = try EncryptedPrivateKey.decryptKey(
                pem: try FileOperations.readText(settings.paths.intermediateKey), password: password)
        } catch let error as AutoSSLError {
            throw AutoSSLError(.general, "the intermediate key could not be opened: \(error.message)",
                               hint: "check the CA password (--password-file or \(directories.caPasswordFile))")
        }
        let previous = try previousIntermediates(settings)
        return try Authority(
            settings: settings, root: root, intermediate: intermediate, intermediateKey: key,
            provisioners: try provisioners(settings), store: try openStore(settings), audit: try openAuditLog(),
            previousIntermediates: previous, previousIntermediateKeys: previousIntermediateKeys(previous, settings: settings, password: password),
            logger: logger)
    }

    /// The keys of archived intermediates that are still valid, to sign their CRLs (certificates they
    /// issued may still be in use, and their revocations must be published under their issuer).
    /// A key that cannot be opened is reported and skipped: the CA still serves, without that CRL.
    func previousIntermediateKeys(_ intermediates: [Certificate], settings: CASettings, password: String, now: Date = Date())
        -> [String: SigningKey]
    {
        var keys: [String: SigningKey] = [:]
        for certificate in intermediates where certificate.notValidAfter > now {
            let serial = certificate.serialNumber.hexString
            let path = settings.paths.secretsDir + "/intermediates/\(serial).key"
            do {
                let key = try EncryptedPrivateKey.decryptKey(pem: try FileOperations.readText(path), password: password)
                guard key.publicKey == certificate.publicKey else {
                    logger.warning("the archived key \(path) does not match intermediate \(serial); no CRL for it")
                    continue
                }
                keys[serial] = key
            } catch {
                logger.warning("could not open the archived intermediate key \(path) (\(error)); no CRL for intermediate \(serial)")
            }
        }
        return keys
    }
}
