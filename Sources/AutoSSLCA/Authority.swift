import AutoSSLCore
import AutoSSLIO
import AutoSSLStore
import Crypto
import Foundation
import Logging
import Synchronization
import X509

/// A refusal the HTTP layer turns into a status code; the message is safe to send to the client.
public struct AuthorityError: Error, Sendable, CustomStringConvertible {
    public enum Kind: Sendable {
        case badRequest, unauthorized, forbidden, notFound, conflict, unavailable
    }

    public var kind: Kind
    public var message: String
    public var description: String { message }

    public init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }
}

/// What `/sign` returns: the leaf and the chain above it (root excluded).
public struct IssuedCertificate: Sendable {
    /// The leaf's DER, as stored and sent.
    public var leafDER: [UInt8]
    public var intermediate: Certificate
    public var serial: String

    public init(leafDER: [UInt8], intermediate: Certificate, serial: String) {
        self.leafDER = leafDER
        self.intermediate = intermediate
        self.serial = serial
    }

    /// The leaf, parsed from its DER on demand (`/sign` answers from the bytes and never needs it).
    public var leaf: Certificate {
        get throws { try Certificate(derEncoded: leafDER) }
    }

    /// The leaf as PEM, from the stored DER.
    public var leafPEM: String {
        PEM.encode(leafDER, label: "CERTIFICATE")
    }
}

/// A provisioner as the authority uses it: its public key and effective policy.
public struct Provisioner: Sendable {
    public var settings: ProvisionerSettings
    public var publicJWK: ECJWK
    public var publicKey: P256.Signing.PublicKey
    public var policy: IssuancePolicy
    public var encryptedKey: String
}

/// The CA itself: verifies one-time tokens, applies policy, records serials durably and signs.
/// It knows nothing about HTTP; `remote` is only for the audit trail.
public final class Authority: Sendable {
    public let settings: CASettings
    public let root: Certificate
    public let intermediate: Certificate
    public let rootFingerprint: String
    private let provisionerList: Mutex<[Provisioner]>
    /// The current provisioners; replaced when config.yaml changes while serving.
    public var provisioners: [Provisioner] { provisionerList.withLock { $0 } }
    public let store: any CertificateDatabase
    public let audit: AuditLog
    /// Intermediates replaced by `ca rotate-intermediate`: certificates they signed stay renewable and revocable.
    public let previousIntermediates: [Certificate]
    /// The CRL, signed by the current intermediate.
    public let crl: CRLPublisher
    /// CRLs of archived intermediates that have not expired (their certificates may still be in
    /// use), keyed by the intermediate's serial in lower-case hex.
    public let previousCRLs: [String: CRLPublisher]
    let intermediateKey: SigningKey
    /// Writes the leaves the intermediate signs.
    let leafEncoder: LeafEncoder
    let logger: Logger
    /// How far a token's times may be off because of clock differences.
    public static let clockSkew: TimeInterval = 60
    /// The longest a one-time token may be valid.
    public static let maximumTokenLifetime: Int64 = 300

    public init(
        settings: CASettings, root: Certificate, intermediate: Certificate, intermediateKey: SigningKey,
        provisioners: [Provisioner], store: any CertificateDatabase, audit: AuditLog,
        previousIntermediates: [Certificate] = [], previousIntermediateKeys: [String: SigningKey] = [:],
        logger: Logger = Logger(label: "auto-ssl.authority")
    ) throws {
        guard intermediateKey.publicKey == intermediate.publicKey else {
            throw AutoSSLError.general("the intermediate key does not match the intermediate certificate")
        }
        self.settings = settings
        self.root = root
        self.intermediate = intermediate
        self.intermediateKey = intermediateKey
        self.leafEncoder = try LeafEncoder(issuer: intermediate, issuerKey: intermediateKey)
        self.rootFingerprint = try Fingerprint.sha256(of: root)
        self.provisionerList = Mutex(provisioners)
        self.store = store
        self.audit = audit
        self.previousIntermediates = previousIntermediates
        self.crl = try CRLPublisher(issuer: intermediate, key: intermediateKey, store: store)
        var previousCRLs: [String: CRLPublisher] = [:]
        for certificate in previousIntermediates {
            let serial = certificate.serialNumber.hexString
            guard let key = previousIntermediateKeys[serial], key.publicKey == certificate.publicKey else { continue }
            previousCRLs[serial] = try CRLPublisher(issuer: certificate, key: key, store: store, listsUnattributed: false)
        }
        self.previousCRLs = previousCRLs
        self.logger = logger
        let hosts = Self.audienceHosts(of: settings)
        self.audienceHosts = hosts
        var exact: [String: Set<String>] = [:]
        for path in ["/sign", "/renew", "/revoke"] {
            exact[path] = Set(hosts.flatMap { ["https://\($0)\(path)", "https://\($0)/1.0\(path)"] })
        }
        self.exactAudiences = exact
    }

    /// Hosts a token's `aud` may name: every configured address and DNS name (plus loopback names
    /// when the CA listens on every interface). Computed once: the settings do not change.
    public let audienceHosts: Set<String>
    /// The exact `aud` strings accepted for each endpoint path (`https://host:port[/1.0]/path`):
    /// a token made by our client matches one of these without parsing a URL.
    private let exactAudiences: [String: Set<String>]

    static func audienceHosts(of settings: CASettings) -> Set<String> {
        var hosts = Set<String>()
        for address in settings.addresses {
            let port = address.port
            var names = address.host.isEmpty ? ["localhost", "127.0.0.1", "[::1]"] : [address.host]
            names += settings.dnsNames
            for name in names {
                let host = name.contains(":") && !name.hasPrefix("[") ? "[\(name)]" : name
                hosts.insert("\(host):\(port)")
                if port == 443 { hosts.insert(host) }
            }
        }
        return hosts
    }

    public func isAcceptedAudience(_ audience: String, path: String) -> Bool {
        if exactAudiences[path]?.contains(audience) == true { return true }
        guard let url = URL(string: audience), url.scheme == "https", let host = url.host else { return false }
        let hostPart = host.contains(":") && !host.hasPrefix("[") ? "[\(host.lowercased())]" : host.lowercased()
        let authority = url.port.map { "\(hostPart):\($0)" } ?? hostPart
        guard audienceHosts.contains(authority) else { return false }
        return url.path == path || url.path == "/1.0" + path
    }

    /// Every CRL this CA publishes: the current intermediate's first.
    public var allCRLs: [CRLPublisher] { [crl] + previousCRLs.keys.sorted().compactMap { previousCRLs[$0] } }

    /// Regenerates every CRL at once (after a revocation, so the serial is listed before the call returns).
    public func regenerateCRLs(now: Date = Date()) async throws {
        for publisher in allCRLs { try await publisher.regenerate(now: now) }
    }

    /// Regenerates the CRLs that are due or missed a revocation recorded by another process.
    public func refreshCRLsIfChanged(now: Date = Date()) async throws {
        for publisher in allCRLs { try await publisher.refreshIfChanged(now: now) }
    }

    public func replaceProvisioners(_ provisioners: [Provisioner]) {
        provisionerList.withLock { $0 = provisioners }
    }

    // MARK: - Signing

    public struct SignRequest: Sendable {
        public var csrPEM: String
        public var token: String
        public var notBefore: String?
        public var notAfter: String?
        public var remote: String?

        public init(csrPEM: String, token: String, notBefore: String? = nil, notAfter: String? = nil, remote: String? = nil) {
            self.csrPEM = csrPEM
            self.token = token
            self.notBefore = notBefore
            self.notAfter = notAfter
            self.remote = remote
        }
    }

    public func sign(_ request: SignRequest, now: Date = Date()) async throws -> IssuedCertificate {
        let (provisioner, claims) = try authenticate(token: request.token, path: "/sign", remote: request.remote, now: now)
        let csr: VerifiedCSR
        do {
            csr = try VerifiedCSR(pem: request.csrPEM)
        } catch let error as AutoSSLError {
            throw refuse(.badRequest, error.message, provisioner: provisioner.settings.name, remote: request.remote)
        }
        let tokenNames: [SubjectName]
        do {
            tokenNames = try claims.sans.map(SubjectName.init(parsing:))
        } catch {
            throw refuse(.unauthorized, "the token's sans are not valid names", provisioner: provisioner.settings.name, remote: request.remote, authFailure: true)
        }
        guard !tokenNames.isEmpty, Set(tokenNames) == Set(csr.names) else {
            throw refuse(
                .forbidden,
                "the CSR's names (\(csr.names.map(\.description).joined(separator: ", "))) do not match the token's sans (\(claims.sans.joined(separator: ", ")))",
                provisioner: provisioner.settings.name, remote: request.remote)
        }
        // Names in the order the token lists them: its first name becomes the subject CN.
        let names = tokenNames
        let (notBefore, notAfter) = try validity(
            notBefore: request.notBefore, notAfter: request.notAfter, policy: provisioner.policy, now: now,
            provisioner: provisioner.settings.name, remote: request.remote)
        do {
            try provisioner.policy.check(names: names)
            try provisioner.policy.check(keyType: csr.keyAlgorithm)
        } catch {
            throw refuse(.forbidden, error.message, provisioner: provisioner.settings.name, remote: request.remote)
        }
        let token = Self.tokenUse(id: provisioner.settings.name + ":" + claims.jti, exp: claims.exp)
        return try await issue(
            names: names, publicKey: csr.publicKey, keyType: csr.keyAlgorithm, notBefore: notBefore, notAfter: notAfter,
            provisioner: provisioner.settings.name, token: token, renewedFrom: nil, remote: request.remote, now: now,
            subjectKeyIdentifier: csr.subjectKeyIdentifier, subjectPublicKeyInfo: csr.subjectPublicKeyInfo)
    }

    /// Signs, then consumes the token and stores the certificate under its serial in one durable
    /// transaction (group-committed with concurrent requests), and only then returns it.
    func issue(
        names: [SubjectName], publicKey: Certificate.PublicKey, keyType: KeyAlgorithm, notBefore: Date, notAfter: Date,
        provisioner: String, token: TokenUse?, renewedFrom: String?, remote: String?, now: Date, event: String = "certificate.issued",
        requester: String? = nil, subjectKeyIdentifier: ArraySlice<UInt8>? = nil, subjectPublicKeyInfo: ArraySlice<UInt8>? = nil
    ) async throws -> IssuedCertificate {
        let serial = CertificateProfiles.randomSerial()
        let serialHex = serial.hexString
        // Signed before the transaction, in the request's own task (so signatures run in parallel,
        // not one after another on the database writer); handed out only once its row is durable.
        // The encoder writes the same bytes as CertificateProfiles.leaf, which remains the way for
        // what it does not write (times outside years 1-9999, DNS names outside ASCII).
        let der: [UInt8]
        if let encoded = try leafEncoder.encode(
            names: names, subjectPublicKeyInfo: try subjectPublicKeyInfo ?? CertificateProfiles.subjectPublicKeyInfo(of: publicKey)[...],
            keyAlgorithm: keyType,
            subjectKeyIdentifier: subjectKeyIdentifier ?? CertificateProfiles.keyIdentifier(for: publicKey),
            serial: Array(serial.bytes), notBefore: notBefore, notAfter: notAfter)
        {
            der = encoded
        } else {
            der = try CertificateProfiles.leaf(
                names: names, publicKey: publicKey, serial: serial, issuer: intermediate, issuerKey: intermediateKey,
                notBefore: notBefore, notAfter: notAfter, subjectKeyIdentifier: subjectKeyIdentifier
            ).derBytes()
        }
        let record = CertificateRecord(
            serial: serialHex, status: .issued, commonName: names[0].description, names: names.map(\.description),
            notBefore: notBefore, notAfter: notAfter, keyType: keyType.rawValue, provisioner: provisioner,
            requester: requester ?? remote, renewedFrom: renewedFrom, der: der, createdAt: now)
        do {
            try await store.recordIssuance(record, token: token)
        } catch StoreError.tokenAlreadyUsed {
            throw refuse(.unauthorized, "the token was already used (tokens work exactly once)", provisioner: provisioner, remote: remote, authFailure: true)
        } catch StoreError.serialAlreadyExists {
            // 80 random bits within one millisecond make this practically impossible; never reuse a serial all the same.
            throw AuthorityError(.unavailable, "serial collision; retry the request")
        } catch StoreError.unavailable(let reason) {
            audit.record(.init("request.refused", provisioner: provisioner, remote: remote, reason: "not issued: \(reason)"))
            throw AuthorityError(
                .unavailable,
                "the CA cannot store certificates right now (\(reason)); nothing was issued. Try again later; the CA's operator must fix the database's disk, and issuance resumes by itself")
        }
        audit.record(.init(
            event, time: now, serial: serialHex, sans: names.map(\.description), provisioner: provisioner, remote: remote,
            detail: "valid until \(AuditLog.timestamp(notAfter))" + (renewedFrom.map { ", renewed from \($0)" } ?? "")
                + (requester.map { ", for \($0)" } ?? "")))
        return IssuedCertificate(leafDER: der, intermediate: intermediate, serial: serialHex)
    }

    /// Validity from the request's notBefore/notAfter (RFC 3339 times or durations from now), else the
    /// policy's default lifetime. Out-of-bounds requests are refused, never clamped.
    func validity(
        notBefore: String?, notAfter: String?, policy: IssuancePolicy, now: Date, provisioner: String, remote: String?
    ) throws -> (Date, Date) {
        func parse(_ text: String?, field: String) throws -> Date? {
            guard let text, !text.isEmpty else { return nil }
            if let date = ISO8601DateFormatter().date(from: text) { return date }
            let fractional = ISO8601DateFormatter()
            fractional.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
            if let date = fractional.date(from: text) { return date }
            do {
                return now.addingTimeInterval(TimeInterval(try CertificateDuration(parsing: text).seconds))
            } catch {
                throw refuse(.badRequest, "\(field) \"\(text)\" is neither an RFC 3339 time nor a duration", provisioner: provisioner, remote: remote)
            }
        }
        let start = try parse(notBefore, field: "notBefore") ?? now
        let end = try parse(notAfter, field: "notAfter") ?? start.addingTimeInterval(TimeInterval(policy.defaultDuration.seconds))
        guard end > start else {
            throw refuse(.badRequest, "notAfter must be later than notBefore", provisioner: provisioner, remote: remote)
        }
        guard start <= now.addingTimeInterval(TimeInterval(policy.maximumDuration.seconds)) else {
            throw refuse(.forbidden, "notBefore is too far in the future", provisioner: provisioner, remote: remote)
        }
        // A certificate that is over before it is issued, or that starts long ago, is a mistake (and
        // dates far from now do not fit a certificate's time fields).
        guard end > now else {
            throw refuse(.badRequest, "notAfter is in the past", provisioner: provisioner, remote: remote)
        }
        guard start >= now.addingTimeInterval(-86_400) else {
            throw refuse(.badRequest, "notBefore may be at most 24 hours in the past", provisioner: provisioner, remote: remote)
        }
        do {
            try policy.check(lifetime: CertificateDuration(seconds: Int64(end.timeIntervalSince(start).rounded())))
        } catch {
            throw refuse(.forbidden, error.message, provisioner: provisioner, remote: remote)
        }
        guard end <= intermediate.notValidAfter else {
            throw refuse(
                .forbidden,
                "the certificate would outlive the intermediate CA (valid until \(AuditLog.timestamp(intermediate.notValidAfter))); create a new intermediate with `auto-ssl ca rotate-intermediate` on the CA host",
                provisioner: provisioner, remote: remote)
        }
        // Backdate slightly so a server whose clock is a little behind accepts the certificate at once.
        let backdated = notBefore == nil ? start.addingTimeInterval(-Self.clockSkew) : start
        return (backdated, end)
    }

    // MARK: - Tokens

    /// Verifies a provisioner one-time token: signature by a known provisioner key, issuer,
    /// audience, time window, root fingerprint. Uniqueness (jti) is enforced when the serial is
    /// reserved, in the same durable transaction.
    public func authenticate(token: String, path: String, remote: String?, now: Date) throws
        -> (Provisioner, ProvisionerTokenClaims)
    {
        let parsed: JWT.Parsed
        do {
            parsed = try JWT.parse(token)
        } catch let error as AutoSSLError {
            throw refuse(.unauthorized, error.message, remote: remote, authFailure: true)
        }
        guard parsed.header.alg == "ES256" else {
            throw refuse(.unauthorized, "unsupported token algorithm \(parsed.header.alg) (ES256 expected)", remote: remote, authFailure: true)
        }
        guard let kid = parsed.header.kid, let provisioner = provisioners.first(where: { $0.publicJWK.kid == kid }) else {
            throw refuse(.unauthorized, "the token is signed by an unknown key", remote: remote, authFailure: true)
        }
        let name = provisioner.settings.name
        guard JWT.verifyES256(parsed, key: provisioner.publicKey) else {
            throw refuse(.unauthorized, "the token's signature does not verify", provisioner: name, remote: remote, authFailure: true)
        }
        let claims: ProvisionerTokenClaims
        do {
            claims = try ProvisionerTokenClaims.decode(parsed.payload)
        } catch {
            throw refuse(.unauthorized, "the token's claims are incomplete (iss, aud, nbf, exp, jti are required)", provisioner: name, remote: remote, authFailure: true)
        }
        guard claims.iss == name else {
            throw refuse(.unauthorized, "the token's issuer \"\(claims.iss)\" does not match provisioner \"\(name)\"", provisioner: name, remote: remote, authFailure: true)
        }
        guard claims.aud.contains(where: { isAcceptedAudience($0, path: path) }) else {
            throw refuse(.unauthorized, "the token's audience \(claims.aud.joined(separator: ", ")) is not this CA's \(path) endpoint", provisioner: name, remote: remote, authFailure: true)
        }
        if let refusal = checkTokenWindow(nbf: claims.nbf, exp: claims.exp, now: now) {
            throw refuse(.unauthorized, refusal.message, provisioner: name, remote: remote, authFailure: true)
        }
        guard !claims.jti.isEmpty, claims.jti.count <= 256 else {
            throw refuse(.unauthorized, "the token has no valid jti", provisioner: name, remote: remote, authFailure: true)
        }
        guard claims.sha.lowercased() == rootFingerprint else {
            throw refuse(.unauthorized, "the token's root fingerprint (sha) is not this CA's", provisioner: name, remote: remote, authFailure: true)
        }
        return (provisioner, claims)
    }

    /// The time rules of every one-time token (provisioner and x5c tokens alike).
    func checkTokenWindow(nbf: Int64, exp: Int64, now: Date) -> TokenWindow.Refusal? {
        TokenWindow.check(
            nbf: nbf, exp: exp, now: now, skew: Int64(Self.clockSkew), maximumLifetime: Self.maximumTokenLifetime)
    }

    /// When a used token can be forgotten: its expiry plus the clock skew (exp is within
    /// `NumericDate.range`, which `TokenWindow` has checked).
    static func tokenUse(id: String, exp: Int64) -> TokenUse {
        TokenUse(id: id, expiresAt: Date(timeIntervalSince1970: TimeInterval(exp)).addingTimeInterval(clockSkew))
    }

    /// Audits a refusal (authentication failures get their own event) and builds the error.
    public func refuse(
        _ kind: AuthorityError.Kind, _ message: String, provisioner: String? = nil, remote: String?, authFailure: Bool = false
    ) -> AuthorityError {
        audit.record(.init(
            authFailure ? "auth.failure" : "request.refused", provisioner: provisioner, remote: remote, reason: message))
        return AuthorityError(kind, message)
    }

    // MARK: - The CA's own TLS certificate

    /// A fresh key and certificate for the CA's HTTPS listener: names = configured addresses and DNS
    /// names (and loopback names when listening on every interface).
    public func issueServerCertificate(lifetime: TimeInterval = 7 * 86_400, now: Date = Date()) async throws
        -> (key: SigningKey, chain: [Certificate])
    {
        var names: [SubjectName] = []
        for address in settings.addresses {
            if let name = address.subjectName { names.append(name) }
            if address.host.isEmpty {
                names += [.dns("localhost"), try SubjectName(parsing: "127.0.0.1"), try SubjectName(parsing: "::1")]
            }
        }
        names += try settings.dnsNames.map(SubjectName.init(parsing:))
        var unique: [SubjectName] = []
        for name in names where !unique.contains(name) { unique.append(name) }
        if unique.isEmpty { unique = [.dns("localhost")] }
        let key = try SigningKey.generate(.p256)
        let notAfter = min(now.addingTimeInterval(lifetime), intermediate.notValidAfter)
        let issued = try await issue(
            names: unique, publicKey: key.publicKey, keyType: .p256, notBefore: now.addingTimeInterval(-Self.clockSkew),
            notAfter: notAfter, provisioner: "ca-server", token: nil, renewedFrom: nil, remote: nil, now: now,
            event: "server-certificate.issued")
        return (key, [try issued.leaf, issued.intermediate])
    }
}
