import AutoSSLConfig
import AutoSSLCore
import AutoSSLIO
import AutoSSLMetrics
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
        /// The request's public key was cut off by a revocation (HTTP 403; ACME `badPublicKey`).
        case revokedKey
    }

    /// What in the request a refusal is about, where a protocol names it (ACME answers a refused
    /// name with rejectedIdentifier, a refused key with badCSR, refused dates with malformed).
    public enum Subject: Sendable {
        case names, key, validity
    }

    public var kind: Kind
    public var message: String
    public var subject: Subject?
    public var description: String { message }

    public init(_ kind: Kind, _ message: String, about subject: Subject? = nil) {
        self.kind = kind
        self.message = message
        self.subject = subject
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

/// The CA itself: verifies one-time tokens, applies policy, records serials durably and signs.
/// It knows nothing about HTTP; `remote` is only for the audit trail.
public final class Authority: Sendable {
    public let settings: CASettings
    public let root: Certificate
    public let intermediate: Certificate
    public let rootFingerprint: String
    private let provisionerList: Mutex<ProvisionerCollection>
    /// The current provisioners; replaced as a whole when config.yaml changes while serving.
    public var provisioners: ProvisionerCollection { provisionerList.withLock { $0 } }
    /// The certificate records. Only the authority writes them; others get narrow operations.
    let store: any CertificateDatabase
    /// The audit trail: every line is written by the authority.
    let audit: AuditLog
    /// Lines about requests refused before they were read, per source (see `record(_:)`).
    let refusalThrottle = AuditThrottle()
    /// What `/metrics` shows (counted whether or not anyone scrapes).
    public let metrics: CAMetrics
    /// The names issued for, to notice a new one (loaded by `watchFirstIssuances`).
    let firstIssuances = FirstIssuanceWatch()
    /// The state shared with the other replicas, on PostgreSQL.
    let replicated: (any ReplicatedState)?
    /// Intermediates replaced by `ca rotate-intermediate`: certificates they signed stay renewable and revocable.
    public let previousIntermediates: [Certificate]
    /// The CRL, signed by the current intermediate.
    public let crl: CRLPublisher
    /// CRLs of archived intermediates that have not expired (their certificates may still be in
    /// use), keyed by the intermediate's serial in lower-case hex.
    public let previousCRLs: [String: CRLPublisher]
    /// The root's CRL (DER), which revokes intermediates whose key leaked (`ca rotate-intermediate
    /// --compromised`); nil when the root revoked none.
    public let rootCRL: [UInt8]?
    /// The OCSP responder: signed by the current and the archived intermediates.
    public let ocsp: OCSPResponder
    /// The CRL distribution point and OCSP URL every leaf carries (config.yaml `revocation:`).
    let revocationPointers: RevocationPointers
    let intermediateKey: SigningKey
    /// Writes the leaves the intermediate signs.
    let leafEncoder: LeafEncoder
    let logger: Logger
    /// How far a token's times may be off because of clock differences.
    public static let clockSkew: TimeInterval = 60
    /// The longest a one-time token made from a certificate (x5c, for renewal and revocation) may be valid.
    public static let maximumTokenLifetime: Int64 = 300
    /// The longest a provisioner token may be valid: `ca token create` makes enrollment tokens for
    /// one host's names that are handed over and used later (by default within the hour). Each
    /// still works once, for its names only.
    public static let maximumProvisionerTokenLifetime: Int64 = 86_400

    public init(
        settings: CASettings, root: Certificate, intermediate: Certificate, intermediateKey: SigningKey,
        provisioners: ProvisionerCollection, store: any CertificateDatabase, audit: AuditLog,
        previousIntermediates: [Certificate] = [], previousIntermediateKeys: [String: SigningKey] = [:], rootCRL: [UInt8]? = nil,
        replicated: (any ReplicatedState)? = nil, metrics: CAMetrics = CAMetrics(version: "unknown"),
        logger: Logger = Logger(label: "auto-ssl.authority")
    ) throws {
        guard intermediateKey.publicKey == intermediate.publicKey else {
            throw AutoSSLError.general("the intermediate key does not match the intermediate certificate")
        }
        self.settings = settings
        self.metrics = metrics
        self.replicated = replicated
        self.root = root
        self.intermediate = intermediate
        self.intermediateKey = intermediateKey
        let pointers = try settings.revocation?.pointers() ?? .none
        self.revocationPointers = pointers
        self.leafEncoder = try LeafEncoder(issuer: intermediate, issuerKey: intermediateKey, revocation: pointers)
        self.rootFingerprint = try Fingerprint.sha256(of: root)
        self.provisionerList = Mutex(provisioners)
        self.store = store
        self.audit = audit
        self.previousIntermediates = previousIntermediates
        self.rootCRL = rootCRL
        self.crl = try CRLPublisher(issuer: intermediate, key: intermediateKey, store: store, shared: replicated)
        var previousCRLs: [String: CRLPublisher] = [:]
        var archivedSigners: [(Certificate, SigningKey)] = []
        for certificate in previousIntermediates {
            let serial = certificate.serialNumber.hexString
            guard let key = previousIntermediateKeys[serial], key.publicKey == certificate.publicKey else { continue }
            previousCRLs[serial] = try CRLPublisher(
                issuer: certificate, key: key, store: store, shared: replicated, listsUnattributed: false)
            archivedSigners.append((certificate, key))
        }
        self.previousCRLs = previousCRLs
        self.ocsp = try OCSPResponder(
            current: intermediate, key: intermediateKey, archived: archivedSigners, store: store,
            logger: Logger(label: "auto-ssl.ocsp"))
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
        audienceHosts(addresses: settings.addresses, dnsNames: settings.dnsNames)
    }

    static func audienceHosts(addresses: [ListenAddress], dnsNames: [String]) -> Set<String> {
        var hosts = Set<String>()
        for address in addresses {
            let port = address.port
            var names = address.host.isEmpty ? ["localhost", "127.0.0.1", "[::1]"] : [address.host]
            names += dnsNames
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
        guard audienceHosts.contains(authority) || replicaAudienceHosts.withLock({ $0.contains(authority) }) else { return false }
        return url.path == path || url.path == "/1.0" + path
    }

    /// The hosts of the CA's other replicas (same CA, same database): a token made for one of them
    /// is accepted here too, so a client that fails over keeps its token; the shared database still
    /// lets each token be used once.
    private let replicaAudienceHosts = Mutex<Set<String>>([])

    /// Replaces the other replicas' addresses (`host:port`, as their heartbeats record them).
    public func acceptAudiences(ofReplicas addresses: [String]) {
        let parsed = addresses.compactMap { try? ListenAddress(parsing: $0) }
        let hosts = Self.audienceHosts(addresses: parsed, dnsNames: settings.dnsNames)
        replicaAudienceHosts.withLock { $0 = hosts }
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
        // A revocation recorded by `ca revoke` or another replica: OCSP answers drop within seconds.
        try await ocsp.refreshIfChanged()
    }

    public func replaceProvisioners(_ provisioners: ProvisionerCollection) {
        provisionerList.withLock { $0 = provisioners }
    }

    /// Reads the provisioners from `settings` again and puts them in place if they changed (the
    /// one place they are reloaded). Returns whether they changed.
    @discardableResult
    public func reloadProvisioners(from settings: CASettings) throws -> Bool {
        let fresh = try ProvisionerCollection.load(settings)
        return provisionerList.withLock { current in
            guard current != fresh else { return false }
            current = fresh
            return true
        }
    }

    // MARK: - Narrow operations on the records

    /// The stored record of a certificate (hex serial), for ACME revocation and downloads.
    public func certificateRecord(serial: String) async throws -> CertificateRecord? {
        try await store.certificate(serial: serial)
    }

    /// Forgets used tokens that expired (and could never be replayed any more); returns how many.
    /// Kept `tokenPurgeMargin` longer: replicas sharing the table may have clocks that differ, and
    /// one must not forget a token another would still accept.
    public func purgeExpiredTokens(now: Date = Date()) async throws -> Int {
        try await store.purgeTokens(expiredBefore: now.addingTimeInterval(-Self.tokenPurgeMargin))
    }

    public static let tokenPurgeMargin: TimeInterval = 600

    /// Waits for pending writes and closes the database.
    public func close() async throws {
        try await store.close()
    }

    // MARK: - Audit lines of the service around the authority

    /// Things the HTTP layer notices that belong in the audit trail.
    public enum ServiceEvent: Sendable {
        case started(listening: String)
        case stopped(reason: String)
        case rateLimited(remote: String)
        case bodyTooLarge(remote: String, path: String, limit: Int)
        case refused(remote: String, path: String, reason: String)
    }

    public func record(_ event: ServiceEvent) {
        // Requests refused before they were read: anyone can send them, so their lines are
        // throttled per source (`AuditThrottle`); the metric counts each.
        func throttled(_ remote: String, _ line: AuditLog.Event) {
            guard let leftOut = refusalThrottle.admit(remote) else { return }
            var line = line
            if leftOut > 0 {
                // First: the detail that follows may be long (a client's path) and is cut.
                line.detail = "\(leftOut) more such lines from this address were left out in the minute before" + (line.detail.map { "; " + $0 } ?? "")
            }
            audit.record(line)
        }
        switch event {
        case .started(let listening):
            audit.record(.init("service.start", detail: "listening on \(listening)"))
        case .stopped(let reason):
            audit.record(.init("service.stop", reason: reason))
        case .rateLimited(let remote):
            metrics.rateLimitedRequest()
            throttled(remote, .init("auth.rate-limited", remote: remote, reason: "too many authentication failures"))
        case .bodyTooLarge(let remote, let path, let limit):
            throttled(remote, .init("request.refused", remote: remote, reason: "request body larger than \(limit) bytes", detail: path))
        case .refused(let remote, let path, let reason):
            throttled(remote, .init("request.refused", remote: remote, reason: reason, detail: path))
        }
    }

    // MARK: - Tokens

    /// The provisioner whose key signed a one-time token, and the parsed token: the header is read
    /// (ES256, `kid`) before anything else; the provisioner then checks the rest.
    func tokenProvisioner(_ token: String, remote: String?) throws -> (JWKProvisioner, JWT.Parsed) {
        let parsed: JWT.Parsed
        do {
            parsed = try JWT.parse(token)
        } catch let error as AutoSSLError {
            throw refuse(.unauthorized, error.message, remote: remote, authFailure: true, failure: .malformedToken)
        }
        guard parsed.header.alg == "ES256" else {
            throw refuse(.unauthorized, "unsupported token algorithm \(parsed.header.alg) (ES256 expected)", remote: remote, authFailure: true, failure: .malformedToken)
        }
        guard let kid = parsed.header.kid, let provisioner = provisioners.jwk(keyID: kid) else {
            throw refuse(.unauthorized, "the token is signed by an unknown key", remote: remote, authFailure: true, failure: .unknownKey)
        }
        return (provisioner, parsed)
    }

    func context(path: String, remote: String?, now: Date) -> AuthorizationContext {
        AuthorizationContext(now: now, remote: remote, path: path, authority: self)
    }

    /// The time rules of every one-time token (provisioner and x5c tokens alike).
    func checkTokenWindow(nbf: Int64, exp: Int64, now: Date, maximumLifetime: Int64 = maximumTokenLifetime) -> TokenWindow.Refusal? {
        TokenWindow.check(nbf: nbf, exp: exp, now: now, skew: Int64(Self.clockSkew), maximumLifetime: maximumLifetime)
    }

    /// When a used token can be forgotten: its expiry plus the clock skew (exp is within
    /// `NumericDate.range`, which `TokenWindow` has checked).
    static func tokenUse(id: String, exp: Int64) -> TokenUse {
        TokenUse(id: id, expiresAt: Date(timeIntervalSince1970: TimeInterval(exp)).addingTimeInterval(clockSkew))
    }

    /// Audits a refusal (authentication failures get their own event) and builds the error.
    public func refuse(
        _ kind: AuthorityError.Kind, _ message: String, provisioner: String? = nil, remote: String?, authFailure: Bool = false,
        failure: CAMetrics.AuthFailure? = nil
    ) -> AuthorityError {
        if authFailure { metrics.authenticationFailed(failure ?? .invalidCredential) }
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
        let issued = try await issue(
            IssuanceRequest(names: unique, publicKey: key.publicKey, keyType: .p256, validity: .upTo(lifetime), purpose: .serverCertificate, remote: nil),
            IssuanceOptions(provisioner: ProvisionerName.caServer, policy: nil), now: now)
        return (key, [try issued.leaf, issued.intermediate])
    }
}
