import AutoSSLCore
import AutoSSLIO
import Foundation
import Yams

/// `$AUTO_SSL_CONFIG_DIR/config.yaml`. One file per machine; each role owns one section, so a CA
/// and an enrolled server can live on the same host without overwriting each other.
public struct AutoSSLConfiguration: Codable, Equatable, Sendable {
    public var ca: CASettings?
    /// This machine's enrollment as an application server (`server enroll`).
    public var server: ServerEnrollment?

    public init(ca: CASettings? = nil, server: ServerEnrollment? = nil) {
        self.ca = ca
        self.server = server
    }

    public var isEmpty: Bool { ca == nil && server == nil }

    /// Every path no certificate or key auto-ssl writes may take (`FileOperations.checkReplaceable`):
    /// `Directories.ownPaths`, and the secret files the CA section of config.yaml names wherever
    /// they are (its password file, the provisioners' and the database's). A config.yaml that
    /// cannot be read adds nothing here (the command that needs it reports it).
    public static func reservedPaths(_ directories: Directories) -> [String] {
        var paths = directories.ownPaths
        if let ca = (try? load(from: directories.configFile))?.ca {
            let named = [ca.passwordFile, ca.database?.passwordFile] + ca.provisioners.map(\.passwordFile)
            for case let path? in named where path.hasPrefix("/") && !paths.contains(path) { paths.append(path) }
        }
        return paths
    }

    /// Loads the file; a missing file is an empty configuration, a damaged one is an error.
    public static func load(from path: String) throws -> AutoSSLConfiguration {
        try read(path) { try decode($0) } ?? AutoSSLConfiguration()
    }

    /// The `server` section alone (nil when the file or the section is absent), for the server
    /// role's reads: the section of a CA on the same machine is not decoded (its commands report a
    /// damaged one).
    public static func loadServerSection(from path: String) throws -> ServerEnrollment? {
        try read(path) { text in
            try decodeRoot(text) { root in
                guard let root else {
                    throw DecodingError.dataCorrupted(.init(codingPath: [], debugDescription: "the file is empty"))
                }
                guard let section = root["server"], section.null == nil else { return nil }
                return try YAMLDecoder().decode(ServerEnrollment.self, from: section)
            }
        } ?? nil
    }

    /// The file's text through `body`; nil for a missing file, an AutoSSLError for a damaged one.
    static func read<T>(_ path: String, _ body: (String) throws -> T) throws -> T? {
        guard FileOperations.exists(path) else { return nil }
        let text = try FileOperations.readText(path)
        do {
            return try body(text)
        } catch {
            // A CA's file can come back from a backup; a server's section is made by enrolling.
            let holdsCA = text.hasPrefix("ca:") || text.contains("\nca:")
            throw AutoSSLError.general(
                "\(path) could not be read: \(error)",
                hint: holdsCA
                    ? "fix the file by hand, or restore the CA from a backup with `auto-ssl ca restore --force` (the damaged file is kept with the CA it replaces)"
                    : "fix the file by hand, or move it aside and enroll this server again with `auto-ssl server enroll`")
        }
    }

    static func decode(_ text: String) throws -> AutoSSLConfiguration {
        try decodeRoot(text) { try YAMLDecoder().decode(AutoSSLConfiguration.self, from: $0 ?? "") }
    }

    /// The document is refused past this many values, or this deep, once its aliases are expanded
    /// (auto-ssl writes about 500 values, 5 deep).
    static let maximumExpandedNodes = 50_000
    static let maximumExpandedDepth = 64
    static var expansionLimits: YAMLExpansion.Limits { .init(values: maximumExpandedNodes, depth: maximumExpandedDepth) }

    /// The document's root node (nil for an empty file) through `body`, while the parser that
    /// holds its anchors lives. `YAMLDecoder.decode(_:from: String)` would resolve every key
    /// against an ICU regular expression for YAML's merge key `<<`; only a file that has one needs
    /// that resolver (docs/benchmarks.md). A text past `maximumExpandedNodes` values once its
    /// aliases are expanded is refused before Yams reads it (`YAMLExpansion`).
    static func decodeRoot<T>(_ text: String, _ body: (Node?) throws -> T) throws -> T {
        guard YAMLExpansion.values(text, limits: expansionLimits) != nil else {
            throw DecodingError.dataCorrupted(.init(
                codingPath: [],
                debugDescription: "it holds more than \(maximumExpandedNodes) values, or values nested more than \(maximumExpandedDepth) deep, "
                    + "once its aliases are expanded (auto-ssl writes no aliases)"))
        }
        let parser = try Parser(yaml: text, resolver: text.contains("<<") ? Resolver.basic.appending(.merge) : .basic, encoding: .utf8)
        return try withExtendedLifetime(parser) { try body(try parser.singleRoot()) }
    }

    public func yamlString() throws -> String {
        "# auto-ssl configuration; written by auto-ssl, safe to read, edit with care.\n"
            + (try YAMLEncoder().encode(self))
    }

    /// Atomic write, 0644: the file holds names, paths and durations, never a secret.
    public func save(to path: String) throws {
        try FileOperations.makeDirectory((path as NSString).deletingLastPathComponent, mode: 0o755)
        try FileOperations.writeAtomically(try yamlString(), to: path, mode: 0o644)
    }
}

/// The CA's own settings, written by `ca init`.
public struct CASettings: Codable, Equatable, Sendable {
    public var name: String
    public var addresses: [ListenAddress]
    public var dnsNames: [String]
    public var keyType: CAKeyType
    public var defaultDuration: String
    public var minimumDuration: String
    public var maximumDuration: String
    public var passwordFile: String?
    public var provisioners: [ProvisionerSettings]
    public var paths: CAPaths
    @ConfigTime public var createdAt: Date
    /// CA-wide issuance policy; nil = the product defaults (any name, every key type, 7d/5m/30d).
    public var policy: PolicySettings?
    /// Grace window after expiry during which renewal is still allowed, as a fraction of the lifetime.
    public var renewalGraceFraction: Double?
    /// Scheduled backups (`ca backup-schedule`), if enabled.
    public var backupSchedule: BackupSchedule?
    /// ACME (RFC 8555) provisioners, served at /acme/{name}/directory.
    public var acmeProvisioners: [ACMEProvisionerSettings]?
    /// A PostgreSQL database shared by the CA's replicas; nil = the embedded SQLite database in
    /// `paths.databaseDir`.
    public var database: DatabaseSettings?
    /// The revocation listener and the CRL and OCSP URLs leaves carry; nil = none of them.
    public var revocation: RevocationSettings?
    /// Where `/metrics` is served (Prometheus text format); nil = nowhere.
    public var metricsAddress: ListenAddress?
    /// Serve `/metrics` over HTTPS with the CA's own certificate instead of plain HTTP.
    public var metricsTLS: Bool?
    /// Set by `ca import`: where the CA came from and when. Certificates the previous CA issued
    /// before then have no record here and still renew (see `Authority.renew`).
    public var imported: ImportOrigin?
    /// The read-only web dashboard at `/dashboard` on the CA's listener; nil = on.
    public var dashboard: Bool?
    /// CIDRs whose clients may see the dashboard; nil = loopback only (127.0.0.0/8, ::1).
    public var dashboardAllow: [String]?

    public init(
        name: String, addresses: [ListenAddress], dnsNames: [String], keyType: CAKeyType, defaultDuration: String,
        minimumDuration: String, maximumDuration: String, passwordFile: String? = nil, provisioners: [ProvisionerSettings],
        paths: CAPaths, createdAt: Date, policy: PolicySettings? = nil, renewalGraceFraction: Double? = nil,
        backupSchedule: BackupSchedule? = nil, acmeProvisioners: [ACMEProvisionerSettings]? = nil,
        database: DatabaseSettings? = nil
    ) {
        self.name = name
        self.addresses = addresses
        self.dnsNames = dnsNames
        self.keyType = keyType
        self.defaultDuration = defaultDuration
        self.minimumDuration = minimumDuration
        self.maximumDuration = maximumDuration
        self.passwordFile = passwordFile
        self.provisioners = provisioners
        self.paths = paths
        self.createdAt = createdAt
        self.policy = policy
        self.renewalGraceFraction = renewalGraceFraction
        self.backupSchedule = backupSchedule
        self.acmeProvisioners = acmeProvisioners
        self.database = database
    }

    enum CodingKeys: String, CodingKey {
        case acmeProvisioners = "acme_provisioners"
        case backupSchedule = "backup_schedule"
        case policy, database
        case renewalGraceFraction = "renewal_grace_fraction"
        case name, addresses
        case dnsNames = "dns_names"
        case keyType = "key_type"
        case defaultDuration = "default_duration"
        case minimumDuration = "min_duration"
        case maximumDuration = "max_duration"
        case passwordFile = "password_file"
        case provisioners, paths
        case createdAt = "created_at"
        case revocation
        case metricsAddress = "metrics_address"
        case metricsTLS = "metrics_tls"
        case imported
        case dashboard
        case dashboardAllow = "dashboard_allow"
    }

    /// The CA-wide policy: durations from the top-level settings, the rest from `policy`.
    public var basePolicySettings: PolicySettings {
        PolicySettings(defaultDuration: defaultDuration, minimumDuration: minimumDuration, maximumDuration: maximumDuration)
            .overlaid(by: policy)
    }
}

/// Where an imported CA came from (`ca import`).
public struct ImportOrigin: Codable, Equatable, Sendable {
    /// "step-ca" or "auto-ssl-backup".
    public var source: String
    @ConfigTime public var importedAt: Date

    public init(source: String, importedAt: Date) {
        self.source = source
        self.importedAt = importedAt
    }

    enum CodingKeys: String, CodingKey {
        case source
        case importedAt = "imported_at"
    }
}

public struct ProvisionerSettings: Codable, Equatable, Sendable {
    public var name: String
    public var type: String
    /// Public JWK (JSON), `kid` = RFC 7638 thumbprint.
    public var publicKey: String
    /// The private JWK, encrypted under the provisioner password as a compact JWE.
    public var encryptedKeyFile: String
    /// Replaces the CA's policy field by field for certificates this provisioner authorises.
    public var policy: PolicySettings?
    /// Where the password is stored (0600) when auto-ssl generated it; nil when the operator keeps it.
    public var passwordFile: String?

    public init(
        name: String, type: String, publicKey: String, encryptedKeyFile: String, policy: PolicySettings? = nil,
        passwordFile: String? = nil
    ) {
        self.name = name
        self.type = type
        self.publicKey = publicKey
        self.encryptedKeyFile = encryptedKeyFile
        self.policy = policy
        self.passwordFile = passwordFile
    }

    enum CodingKeys: String, CodingKey {
        case policy
        case passwordFile = "password_file"
        case name, type
        case publicKey = "public_key"
        case encryptedKeyFile = "encrypted_key_file"
    }
}

/// `ec`: P-384 root + P-256 intermediate; `rsa`: RSA 4096 root + RSA 2048 intermediate.
public enum CAKeyType: String, Codable, CaseIterable, Sendable {
    case ec
    case rsa

    public var rootAlgorithm: KeyAlgorithm { self == .ec ? .p384 : .rsa4096 }
    public var intermediateAlgorithm: KeyAlgorithm { self == .ec ? .p256 : .rsa2048 }
}

/// The CA's files under `$AUTO_SSL_DATA_DIR/ca`.
public struct CAPaths: Codable, Equatable, Sendable {
    public var caDir: String
    public var rootCertificate: String
    public var intermediateCertificate: String
    public var rootKey: String
    public var intermediateKey: String
    public var secretsDir: String
    public var databaseDir: String

    enum CodingKeys: String, CodingKey {
        case caDir = "ca_dir"
        case rootCertificate = "root_certificate"
        case intermediateCertificate = "intermediate_certificate"
        case rootKey = "root_key"
        case intermediateKey = "intermediate_key"
        case secretsDir = "secrets_dir"
        case databaseDir = "database_dir"
    }

    public init(caDir: String) {
        self.caDir = caDir
        self.rootCertificate = caDir + "/certs/root_ca.crt"
        self.intermediateCertificate = caDir + "/certs/intermediate_ca.crt"
        self.secretsDir = caDir + "/secrets"
        self.rootKey = caDir + "/secrets/root_ca_key"
        self.intermediateKey = caDir + "/secrets/intermediate_ca_key"
        self.databaseDir = caDir + "/db"
    }

    public func provisionerKeyFile(_ name: String) -> String {
        secretsDir + "/provisioner_\(name).jwe"
    }
}

/// `ca backup-schedule --enable`: what the timer runs.
public struct BackupSchedule: Codable, Equatable, Sendable {
    public var schedule: String
    public var outputDirectory: String
    public var retention: Int
    public var passphraseFile: String

    public init(schedule: String, outputDirectory: String, retention: Int, passphraseFile: String) {
        self.schedule = schedule
        self.outputDirectory = outputDirectory
        self.retention = retention
        self.passphraseFile = passphraseFile
    }

    enum CodingKeys: String, CodingKey {
        case schedule
        case outputDirectory = "output_directory"
        case retention
        case passphraseFile = "passphrase_file"
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        schedule = try container.decode(String.self, forKey: .schedule)
        outputDirectory = try container.decode(String.self, forKey: .outputDirectory)
        retention = try container.decode(DecimalInteger.self, forKey: .retention).value
        passphraseFile = try container.decode(String.self, forKey: .passphraseFile)
    }
}

/// A whole number of config.yaml, in decimal digits. Yams reads a YAML 1.1 integer with colons
/// (`1:30`) as base 60 with unchecked arithmetic, which stops the process on a long one; so the
/// number is read as text and parsed here: digits with an optional sign, within `Int`'s range.
/// The same settings travel between replicas as JSON (`SharedCASettings`), where the number is a
/// JSON number: a decoder that gives no text gets the number read as one.
struct DecimalInteger: Decodable {
    var value: Int

    init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        let text: String
        do {
            text = try container.decode(String.self)
        } catch DecodingError.typeMismatch {
            // JSON's number; from Yams a sequence or mapping, which Int refuses before reading it.
            value = try container.decode(Int.self)
            return
        }
        guard let value = Int(text, radix: 10) else {
            throw DecodingError.dataCorruptedError(
                in: container, debugDescription: "expected a whole number in decimal digits, found '\(text.prefix(40))'")
        }
        self.value = value
    }
}

/// What `server enroll` recorded: enough for `server renew` to run unattended from a timer.
public struct ServerEnrollment: Codable, Equatable, Sendable {
    /// The CA's URL; with several (`ca_urls`), the one tried first. Files written before there
    /// could be several have only this.
    public var caURL: String
    /// Every URL of the CA in the order they are tried, when there is more than one (replicas).
    public var caURLs: [String]?
    /// SHA-256 of the pinned root, lowercase hex without colons.
    public var fingerprint: String
    public var names: [String]
    public var certPath: String
    public var keyPath: String
    public var rootPath: String
    /// Key and chain in one file, for HAProxy (nil unless `--reload haproxy`).
    public var combinedPath: String?
    public var keyType: String
    public var provisioner: String
    /// The requested lifetime; nil = the CA's default.
    public var duration: String?
    /// nginx, apache, caddy or haproxy when chosen with `--reload`.
    public var reload: String?
    /// The shell command run after every renewal (from `--reload` or `--exec`).
    public var reloadCommand: String?
    /// Whether the renewal timer was installed.
    public var renewalTimer: Bool
    /// Renew once this fraction of the lifetime has passed (default 2/3).
    public var renewAtFraction: Double?
    @ConfigTime public var enrolledAt: Date
    public var suspension: Suspension?
    /// Where `server renew` writes its metrics for node exporter's textfile collector (a `.prom`
    /// file); nil = no metrics file.
    public var metricsFile: String?
    /// Set by `server enroll --adopt`: this enrollment took over a certificate the original bash
    /// auto-ssl (step CLI) had enrolled; nil for an ordinary enrollment.
    public var adoption: Adoption?

    public struct Adoption: Codable, Equatable, Sendable {
        /// Serial (hex) of the original tool's certificate that was renewed at the takeover.
        public var originalSerial: String
        @ConfigTime public var adoptedAt: Date
        /// Where the original tool's files this takeover replaced (its config.yaml, its renewal
        /// units) were copied, unchanged.
        public var keptIn: String

        public init(originalSerial: String, adoptedAt: Date, keptIn: String) {
            self.originalSerial = originalSerial
            self.adoptedAt = adoptedAt
            self.keptIn = keptIn
        }

        enum CodingKeys: String, CodingKey {
            case originalSerial = "original_serial"
            case adoptedAt = "adopted_at"
            case keptIn = "kept_in"
        }
    }

    public struct Suspension: Codable, Equatable, Sendable {
        public var reason: String
        @ConfigTime public var since: Date

        public init(reason: String, since: Date) {
            self.reason = reason
            self.since = since
        }
    }

    public init(
        caURL: String, caURLs: [String]? = nil, fingerprint: String, names: [String], certPath: String, keyPath: String,
        rootPath: String, combinedPath: String?, keyType: String, provisioner: String, duration: String?, reload: String?,
        reloadCommand: String?, renewalTimer: Bool, enrolledAt: Date
    ) {
        self.caURL = caURL
        self.caURLs = caURLs
        self.fingerprint = fingerprint
        self.names = names
        self.certPath = certPath
        self.keyPath = keyPath
        self.rootPath = rootPath
        self.combinedPath = combinedPath
        self.keyType = keyType
        self.provisioner = provisioner
        self.duration = duration
        self.reload = reload
        self.reloadCommand = reloadCommand
        self.renewalTimer = renewalTimer
        self.enrolledAt = enrolledAt
    }

    /// The URLs tried in turn: `ca_url` first, then the others of `ca_urls` in their order (so a
    /// hand-edited `ca_url` is never ignored).
    public var urls: [String] {
        var list = [caURL]
        for url in caURLs ?? [] where !list.contains(url) { list.append(url) }
        return list
    }

    /// Records `urls` (in order): the first as `ca_url`, all of them as `ca_urls` when there are several.
    public mutating func setURLs(_ urls: [String]) {
        guard let first = urls.first else { return }
        caURL = first
        caURLs = urls.count > 1 ? urls : nil
    }

    enum CodingKeys: String, CodingKey {
        case caURL = "ca_url"
        case caURLs = "ca_urls"
        case fingerprint, names
        case certPath = "cert_path"
        case keyPath = "key_path"
        case rootPath = "root_path"
        case combinedPath = "combined_path"
        case keyType = "key_type"
        case provisioner, duration, reload
        case reloadCommand = "reload_command"
        case renewalTimer = "renewal_timer"
        case renewAtFraction = "renew_at_fraction"
        case enrolledAt = "enrolled_at"
        case suspension
        case metricsFile = "metrics_file"
        case adoption = "adopted"
    }
}

/// An ACME provisioner: which challenges it offers, whether accounts need an external account
/// binding, and (for tests and odd networks) where validation looks names up and connects.
public struct ACMEProvisionerSettings: Codable, Equatable, Sendable {
    public static let allChallenges = ["http-01", "dns-01", "tls-alpn-01"]

    public var name: String
    public var challenges: [String]
    public var requireEAB: Bool
    /// DNS server (host:port) for A/AAAA/TXT look-ups during validation; nil = the system's.
    public var resolver: String?
    public var http01Port: Int?
    public var tlsALPN01Port: Int?
    /// Replaces the CA's policy field by field for certificates this provisioner issues.
    public var policy: PolicySettings?
    /// Address ranges (CIDR) validation may connect to although they are refused by default
    /// (loopback, link-local, multicast, unspecified, this machine's own addresses).
    public var validationAllow: [String]?

    public init(
        name: String, challenges: [String] = allChallenges, requireEAB: Bool = false, resolver: String? = nil,
        http01Port: Int? = nil, tlsALPN01Port: Int? = nil, policy: PolicySettings? = nil, validationAllow: [String]? = nil
    ) {
        self.validationAllow = validationAllow
        self.name = name
        self.challenges = challenges
        self.requireEAB = requireEAB
        self.resolver = resolver
        self.http01Port = http01Port
        self.tlsALPN01Port = tlsALPN01Port
        self.policy = policy
    }

    enum CodingKeys: String, CodingKey {
        case name, challenges, policy, resolver
        case requireEAB = "require_eab"
        case http01Port = "http01_port"
        case tlsALPN01Port = "tlsalpn01_port"
        case validationAllow = "validation_allow"
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        name = try container.decode(String.self, forKey: .name)
        challenges = try container.decode([String].self, forKey: .challenges)
        requireEAB = try container.decode(Bool.self, forKey: .requireEAB)
        resolver = try container.decodeIfPresent(String.self, forKey: .resolver)
        http01Port = try container.decodeIfPresent(DecimalInteger.self, forKey: .http01Port)?.value
        tlsALPN01Port = try container.decodeIfPresent(DecimalInteger.self, forKey: .tlsALPN01Port)?.value
        policy = try container.decodeIfPresent(PolicySettings.self, forKey: .policy)
        validationAllow = try container.decodeIfPresent([String].self, forKey: .validationAllow)
    }
}
