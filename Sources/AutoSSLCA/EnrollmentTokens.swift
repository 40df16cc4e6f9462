import AutoSSLConfig
import AutoSSLCore
import AutoSSLIO
import Foundation

/// `ca token create`: a one-time enrollment token for one host's names, signed on the CA with a
/// password provisioner's key. The host enrolls with it (`server enroll --token-file`) and never
/// sees the provisioner password; a stolen copy works once, for those names, until it expires.
public struct EnrollmentTokens: Sendable {
    public let directories: Directories

    public init(directories: Directories) {
        self.directories = directories
    }

    /// One hour unless asked otherwise.
    public static let defaultLifetime: Int64 = 3600
    /// From a minute to the longest the CA accepts.
    public static let lifetimes: ClosedRange<Int64> = 60...Authority.maximumProvisionerTokenLifetime

    public struct Token: Sendable, Encodable {
        public var token: String
        public var provisioner: String
        public var sans: [String]
        public var expiresAt: Date
        /// The CA's URLs a server may enroll at (each is in the token's audience).
        public var caURLs: [String]
        public var fingerprint: String

        enum CodingKeys: String, CodingKey {
            case token, provisioner, sans, fingerprint
            case expiresAt = "expires_at"
            case caURLs = "ca_urls"
        }
    }

    /// Makes a token for `names` (the first is the subject), checked against the provisioner's
    /// policy now, so a name the CA would refuse is refused here. `provisioner` nil: the first
    /// password provisioner. `password` nil: the one stored on this machine for that provisioner.
    public func create(
        names: [String], lifetime: Int64 = defaultLifetime, provisioner: String? = nil, password: String? = nil, now: Date = Date()
    ) throws -> Token {
        guard Self.lifetimes.contains(lifetime) else {
            throw AutoSSLError.invalidArgument(
                "a token may be valid for 1 minute to \(Self.lifetimes.upperBound / 3600) hours, not \(CertificateDuration(seconds: lifetime))",
                hint: "give --ttl between 1m and \(Self.lifetimes.upperBound / 3600)h")
        }
        guard !names.isEmpty else { throw AutoSSLError.invalidArgument("name the host's names with --san (at least one)") }
        let parsed = try names.map(SubjectName.init(parsing:))
        var unique: [SubjectName] = []
        for name in parsed where !unique.contains(name) { unique.append(name) }

        let configuration = try AutoSSLConfiguration.load(from: directories.configFile)
        guard let settings = configuration.ca else {
            throw AutoSSLError.general("no CA on this machine", hint: "tokens are made on the CA host; create a CA with `auto-ssl ca init`")
        }
        let provisioners = try ProvisionerCollection.load(settings).jwk
        let chosen: JWKProvisioner
        if let provisioner {
            guard let found = provisioners.first(where: { $0.name == provisioner }) else {
                throw AutoSSLError.invalidArgument(
                    "there is no password provisioner named \"\(provisioner)\"",
                    hint: "the password provisioners are: \(provisioners.map(\.name).joined(separator: ", "))")
            }
            chosen = found
        } else {
            guard let first = provisioners.first else {
                throw AutoSSLError.general("this CA has no password provisioner", hint: "add one with `auto-ssl ca provisioner add NAME`")
            }
            chosen = first
        }
        do {
            try chosen.policy.check(names: unique)
        } catch {
            throw AutoSSLError.general("provisioner \(chosen.name) would refuse these names: \(error.message); no token was made")
        }

        let secret: String
        if let password {
            secret = password
        } else if let stored = chosen.settings.passwordFile, FileOperations.exists(stored) {
            secret = Passwords.fromFileContents(try FileOperations.readText(stored))
        } else {
            throw AutoSSLError.invalidArgument(
                "the password of provisioner \(chosen.name) is not stored on this machine",
                hint: "give it with --password-file FILE (or /dev/stdin)")
        }
        let key: ECJWK
        do {
            let plaintext = try PasswordJWE.decrypt(chosen.encryptedKey, password: secret)
            key = try JSONDecoder().decode(ECJWK.self, from: plaintext)
        } catch {
            throw AutoSSLError(.trustFailure, "wrong password for provisioner \(chosen.name); no token was made")
        }
        let root = try CAStatusReport.loadCertificate(settings.paths.rootCertificate, what: "root certificate")
        let fingerprint = try Fingerprint.sha256(of: root)
        let hosts = Authority.audienceHosts(of: settings).sorted()
        let claims = ProvisionerTokenClaims.oneTime(
            provisioner: chosen.name, audience: hosts.map { "https://\($0)/1.0/sign" }, names: unique.map(\.description),
            lifetime: lifetime, rootFingerprint: fingerprint, now: now)
        let token = try JWT.sign(payload: claims, kid: chosen.keyID, key: try key.privateKey())
        try AuthorityLoader(directories: directories).openAuditLog().record(.init(
            "token.created", time: now, sans: claims.sans, provisioner: chosen.name,
            detail: "one-time enrollment token, valid until \(AuditLog.timestamp(Date(timeIntervalSince1970: TimeInterval(claims.exp))))"))
        return Token(
            token: token, provisioner: chosen.name, sans: claims.sans, expiresAt: Date(timeIntervalSince1970: TimeInterval(claims.exp)),
            caURLs: settings.addresses.map(\.urlString), fingerprint: fingerprint)
    }
}
