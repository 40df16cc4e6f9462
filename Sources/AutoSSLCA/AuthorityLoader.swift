import AutoSSLConfig
import AutoSSLCore
import AutoSSLIO
import AutoSSLMetrics
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
        try caPasswordAndSource(explicitFile: explicitFile, settings: settings).password
    }

    /// `caPassword` and the file it was read from (for a message when it does not open the keys).
    func caPasswordAndSource(explicitFile: String?, settings: CASettings) throws -> (password: String, source: String) {
        if let found = try Self.secretAndSource(
            explicitFile: explicitFile, credential: "ca-password", recorded: [settings.passwordFile, directories.caPasswordFile]) {
            return found
        }
        throw AutoSSLError.invalidArgument(
            "no CA password available",
            hint: "pass --password-file, provide a systemd credential named ca-password, or create \(directories.caPasswordFile) (mode 0600)")
    }

    /// A secret from the first file that is there: the explicit one (which must be), a systemd
    /// credential named `credential`, then the recorded files in order. Nil when there is none.
    static func secret(explicitFile: String?, credential: String, recorded: [String?]) throws -> String? {
        try secretAndSource(explicitFile: explicitFile, credential: credential, recorded: recorded)?.password
    }

    /// `secret` and the file it came from.
    static func secretAndSource(explicitFile: String?, credential: String, recorded: [String?]) throws -> (password: String, source: String)? {
        var candidates: [String] = []
        if let explicitFile { candidates.append(explicitFile) }
        if let credentials = ProcessInfo.processInfo.environment["CREDENTIALS_DIRECTORY"] {
            candidates.append(credentials + "/" + credential)
        }
        candidates += recorded.compactMap { $0 }
        for path in candidates where explicitFile == path || FileOperations.exists(path) {
            let secret = Passwords.fromFileContents(try FileOperations.readText(path))
            guard !secret.isEmpty else { throw AutoSSLError.invalidArgument("\(path) is empty") }
            return (secret, path)
        }
        return nil
    }

    /// The password files a CA may read: those recorded in config.yaml (the CA password, each
    /// provisioner's, the database's) and the default CA password file. Files only root should
    /// read, like the keys they unlock.
    public static func passwordFiles(_ settings: CASettings, directories: Directories) -> [String] {
        let recorded = [settings.passwordFile, settings.database?.passwordFile] + settings.provisioners.map(\.passwordFile)
            + [directories.caPasswordFile]
        var seen = Set<String>()
        return recorded.compactMap { $0 }.filter { seen.insert($0).inserted }
    }

    /// Refuses to go on when a key file, a password file (`passwordFiles`) or the secrets directory
    /// can be read by group or others.
    public static func checkSecretPermissions(_ settings: CASettings, directories: Directories) throws {
        var problems: [String] = []
        if let mode = FileOperations.mode(of: settings.paths.secretsDir), mode & 0o077 != 0 {
            problems.append("\(settings.paths.secretsDir) has mode \(String(mode, radix: 8)) (run: chmod 700 \(settings.paths.secretsDir))")
        }
        var secretFiles = [settings.paths.rootKey, settings.paths.intermediateKey]
        secretFiles += settings.provisioners.map(\.encryptedKeyFile)
        secretFiles += passwordFiles(settings, directories: directories).filter { !secretFiles.contains($0) }
        for path in secretFiles {
            if let mode = FileOperations.mode(of: path), mode & 0o077 != 0 {
                problems.append("\(path) has mode \(String(mode, radix: 8)) (run: chmod 600 \(path))")
            }
        }
        guard problems.isEmpty else {
            throw AutoSSLError(
                .permissionDenied, "refusing to use CA keys or passwords that group or others can read:\n  " + problems.joined(separator: "\n  "),
                hint: "fix the modes, then start again")
        }
    }

    public func provisioners(_ settings: CASettings) throws -> ProvisionerCollection {
        try ProvisionerCollection.load(settings)
    }

    /// Intermediates archived by `ca rotate-intermediate` (certs/intermediates/*.crt), without any
    /// the root revoked.
    public func previousIntermediates(_ settings: CASettings) throws -> [Certificate] {
        let directory = settings.paths.caDir + "/certs/intermediates"
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: directory) else { return [] }
        let revoked = Set(try IntermediateRotation.revokedIntermediates(caDir: settings.paths.caDir).revoked.map(\.serial))
        return try names.filter { $0.hasSuffix(".crt") }.sorted().map {
            try CAStatusReport.loadCertificate(directory + "/" + $0, what: "archived intermediate certificate")
        }.filter { !revoked.contains($0.serialNumber.hexString) }
    }

    /// The root's CRL of revoked intermediates (certs/root_ca.crl): written by `ca init` (empty)
    /// and by `ca rotate-intermediate --compromised`; nil for a CA made before there was one.
    public func rootCRL(_ settings: CASettings) throws -> [UInt8]? {
        let path = settings.paths.caDir + "/certs/root_ca.crl"
        guard FileOperations.exists(path) else { return nil }
        return try FileOperations.readBytes(path, limit: 1 << 20)
    }

    /// Opens the CA's database: the embedded SQLite file (created on a new CA's first use), or the
    /// PostgreSQL database named in config.yaml. A damaged SQLite file is refused before anything
    /// writes to it: the CA then stops with a clear error instead of starting on an empty database.
    /// `writer`: how the SQLite writer thread treats waiting requests (`ca serve` passes its own;
    /// every other command the defaults). `databasePasswordFile`: an explicit
    /// `--database-password-file`, tried before the other sources (see `databasePassword`).
    public func openDatabase(
        _ settings: CASettings, writer: WriterOptions = WriterOptions(), databasePasswordFile: String? = nil
    ) async throws -> CADatabase {
        if let database = settings.database {
            let location = try PostgresLocation(url: database.url)
            let password = try databasePassword(explicitFile: databasePasswordFile, settings: database, location: location)
            return try await CADatabase.openPostgres(location, password: password, writer: writer)
        }
        try FileOperations.makeDirectory(settings.paths.databaseDir, mode: 0o700)
        return try CADatabase.openSQLite(path: settings.paths.databaseDir + "/auto-ssl.sqlite", writer: writer)
    }

    /// The PostgreSQL password: the explicit file, else a systemd credential named
    /// database-password, else the file recorded in config.yaml, else the `PGPASSFILE` (or
    /// `~/.pgpass`) line for this database, else none (the server may use another login method).
    public func databasePassword(explicitFile: String?, settings: DatabaseSettings, location: PostgresLocation) throws -> String? {
        if explicitFile == nil, let recorded = settings.passwordFile, !recorded.hasPrefix("/") {
            // Read relative to wherever the command happens to run (/ under systemd): never what was meant.
            throw AutoSSLError.general(
                "database.password_file in \(directories.configFile) is \(recorded), a relative path",
                hint: "write the file's absolute path there")
        }
        if let password = try Self.secret(explicitFile: explicitFile, credential: "database-password", recorded: [settings.passwordFile]) {
            return password
        }
        if let recorded = settings.passwordFile {
            // Recorded but gone: connecting without it would only fail later with the server's "no password".
            throw AutoSSLError.general(
                "the database password file \(recorded) (database.password_file in \(directories.configFile)) does not exist",
                hint: "put the PostgreSQL password on its first line (mode 0600), give it with --database-password-file, or remove password_file from config.yaml to use PGPASSFILE or ~/.pgpass")
        }
        let environment = ProcessInfo.processInfo.environment
        let passFile = environment["PGPASSFILE"] ?? environment["HOME"].map { $0 + "/.pgpass" }
        if let passFile, FileOperations.exists(passFile) {
            if let mode = FileOperations.mode(of: passFile), mode & 0o077 != 0 {
                throw AutoSSLError(
                    .permissionDenied, "refusing the password file \(passFile): group or others can read it",
                    hint: "run: chmod 600 \(passFile)")
            }
            return PGPassFile.password(for: location, in: try FileOperations.readText(passFile))
        }
        return nil
    }

    public func openAuditLog() throws -> AuditLog {
        try AuditLog(path: directories.auditLog)
    }

    /// The authority alone (its database's ACME state stays closed to it).
    public func load(passwordFile: String?, writer: WriterOptions = WriterOptions()) async throws -> Authority {
        try await open(passwordFile: passwordFile, writer: writer).authority
    }

    /// Everything `ca serve` needs: the authority, which owns the certificate records, and the
    /// database, whose ACME state goes to the ACME server.
    public func open(
        passwordFile: String?, writer: WriterOptions = WriterOptions(), databasePasswordFile: String? = nil,
        metrics: CAMetrics = CAMetrics(version: "unknown")
    ) async throws -> (authority: Authority, database: CADatabase) {
        let settings = try settings()
        try Self.checkSecretPermissions(settings, directories: directories)
        try Authority.checkRenewalGraceFraction(settings.renewalGraceFraction)
        let (password, passwordSource) = try caPasswordAndSource(explicitFile: passwordFile, settings: settings)
        let root = try CAStatusReport.loadCertificate(settings.paths.rootCertificate, what: "root certificate")
        let intermediate = try CAStatusReport.loadCertificate(
            settings.paths.intermediateCertificate, what: "intermediate certificate")
        let key: SigningKey
        do {
            key = try EncryptedPrivateKey.decryptKey(
                pem: try FileOperations.readText(settings.paths.intermediateKey), password: password)
        } catch let error as AutoSSLError {
            throw AutoSSLError(.general, "the intermediate key could not be opened: \(error.message)",
                               hint: "the CA password was read from \(passwordSource); check it (or give the right one with --password-file)")
        }
        // An interrupted `ca rotate-intermediate --compromised` revoked the intermediate before
        // replacing it: never sign with an intermediate the root revoked.
        if try IntermediateRotation.revokedIntermediates(caDir: settings.paths.caDir).revoked
            .contains(where: { $0.serial == intermediate.serialNumber.hexString }) {
            throw AutoSSLError.general(
                "the current intermediate \(intermediate.serialNumber.hexString) is revoked by the root (its key leaked); the CA does not start",
                hint: "complete the rotation: auto-ssl ca rotate-intermediate --compromised \(intermediate.serialNumber.hexString) --yes")
        }
        let previous = try previousIntermediates(settings)
        let provisioners = try provisioners(settings)
        let audit = try openAuditLog()
        let database = try await openDatabase(settings, writer: writer, databasePasswordFile: databasePasswordFile)
        do {
            let authority = try Authority(
                settings: settings, root: root, intermediate: intermediate, intermediateKey: key,
                provisioners: provisioners, store: database.certificates, audit: audit,
                previousIntermediates: previous, previousIntermediateKeys: previousIntermediateKeys(previous, settings: settings, password: password),
                rootCRL: try rootCRL(settings), replicated: database.replicated, metrics: metrics, logger: logger)
            return (authority, database)
        } catch {
            // Nothing else holds the database yet.
            try? await database.close()
            throw error
        }
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
