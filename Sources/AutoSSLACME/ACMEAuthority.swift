import AutoSSLCA
import AutoSSLConfig
import AutoSSLCore
import AutoSSLHost
import AutoSSLStore
import Crypto
import Foundation
import Logging
import Synchronization

/// The ACME server's rules (RFC 8555, RFC 8737, RFC 8738), without HTTP: authentication of JWS
/// requests and nonces, accounts, orders and their state transitions, validation, finalization,
/// revocation and key rollover. State lives in an `ACMEDatabase`; issuance and revocation go through
/// the `Authority`, with the same policy, durable records and audit trail as `/sign`. Each
/// operation takes what the HTTP layer parsed and returns an `ACMEReply` for it to send.
public final class ACMEAuthority: Sendable {
    public let authority: Authority
    public let database: any ACMEDatabase
    let network: any ValidationNetwork
    let logger: Logger
    /// Makes and spends the `Replay-Nonce` values (in memory, or in a database replicas share).
    let nonces: ACMENonces
    let accountKeys = AccountKeys()
    let validationSlots = ValidationSlots(limit: 32)
    /// The orders this process is finalizing: one finalization per order at a time here. (Across
    /// replicas, the first certificate recorded completes the order; another replica's is
    /// discarded unseen, `CertificateDatabase.recordIssuance`.)
    let finalizing = Mutex<Set<String>>([])
    /// Validations started by a challenge's POST in this process and not finished (their retries
    /// included), in all and per account; those resumed after a restart are bounded by what was
    /// pending then.
    let validationsInProgress = ValidationsInProgress(
        limit: maximumValidationsInProgress, perAccount: maximumValidationsInProgressPerAccount)
    /// Past this many, a challenge's POST is answered rateLimited and the challenge stays pending.
    public static let maximumValidationsInProgress = 1_024
    /// Past this many of one account's, that account's challenge POSTs are answered rateLimited:
    /// a quarter of the whole, so that one account cannot hold every place.
    public static let maximumValidationsInProgressPerAccount = 256
    /// Orders one account may have open (pending, ready or processing) at once; Let's Encrypt
    /// allows 300 pending authorizations per account.
    public static let maximumOpenOrders = 300
    /// Every address of this machine's interfaces (read once at start), refused to validation.
    let ownMachineAddresses: [IPAddress]
    /// Delays before each attempt of one validation; their count is the durable maximum per challenge.
    let attemptDelays: [TimeInterval]
    /// The budget of one validation attempt.
    let attemptTimeout: TimeInterval
    /// How long a challenge's POST waits for its validation to end before answering `processing`.
    let challengeAnswerWait: TimeInterval

    public static let nonceLifetime: TimeInterval = ACMENonces.lifetime
    public static let orderLifetime: TimeInterval = 86_400
    /// How long expired orders without a certificate are kept.
    public static let retention: TimeInterval = 7 * 86_400
    public static let validationAttempts: [TimeInterval] = [0, 2, 4]
    public static let signatureAlgorithms = ["ES256", "ES384", "RS256", "EdDSA"]

    public init(
        authority: Authority, database: any ACMEDatabase,
        network: any ValidationNetwork = NIOValidationNetwork(), ownMachineAddresses: [IPAddress] = NetworkAddresses.allInterfaceAddresses(),
        attemptDelays: [TimeInterval] = ACMEAuthority.validationAttempts, attemptTimeout: TimeInterval = 10,
        challengeAnswerWait: TimeInterval = ACMEAuthority.challengeAnswerWait,
        logger: Logger = Logger(label: "auto-ssl.acme")
    ) async throws {
        self.authority = authority
        self.database = database
        self.network = network
        self.ownMachineAddresses = ownMachineAddresses
        self.attemptDelays = attemptDelays
        self.attemptTimeout = attemptTimeout
        self.challengeAnswerWait = challengeAnswerWait
        self.logger = logger
        self.nonces = try await ACMENonces(database: database)
    }

    /// The ACME provisioners: those of the authority's one provisioner collection (reloaded there
    /// when config.yaml changes).
    public var provisioners: [ACMEProvisionerSettings] { authority.provisioners.acme.map(\.settings) }

    /// `https://HOST/acme/NAME`, HOST being the Host the client used or else the CA's first address.
    public func base(host: String?, provisioner name: String) -> String {
        let host = host ?? authority.settings.addresses.first?.description ?? "localhost"
        return "https://\(host)/acme/\(name)"
    }

    /// The endpoint of a request to provisioner `name`, or nil when there is no such ACME provisioner.
    public func endpoint(provisioner name: String, host: String?, path: String, id: String?, remote: String?) -> ACMEEndpoint? {
        guard let provisioner = provisioners.first(where: { $0.name == name }) else { return nil }
        let base = base(host: host, provisioner: name)
        let url = "https://\(host ?? authority.settings.addresses.first?.description ?? "localhost")\(path)"
        return ACMEEndpoint(provisioner: provisioner, base: base, url: url, id: id, remote: remote, requestHost: host)
    }

    /// After a restart: finalizations a crash interrupted go back to ready, and validations it
    /// interrupted run again, within their remaining durable attempts (an expired authorization's
    /// are closed as invalid without connecting anywhere).
    /// On a database shared by replicas, work in progress may be another replica's: nothing is taken
    /// over at start; `recoverStaleWork` takes over what stays in progress for `staleAfter`.
    public func resumeValidations() {
        guard !database.sharedByReplicas else {
            Task { await self.recoverStaleWork() }
            return
        }
        Task {
            if let reset = try? await database.resetInterruptedFinalizations(), reset > 0 {
                logger.notice("ACME: \(reset) interrupted finalization(s) set back to ready")
            }
            guard let pending = try? await database.challengesInProcessing() else { return }
            for id in pending {
                Task { await self.validate(challengeID: id, remote: nil) }
            }
        }
    }

    /// How long an order or challenge may stay in processing before it counts as left by a crash
    /// (a finalization takes seconds; a validation is bounded by its attempts and deadlines).
    public static let staleAfter: TimeInterval = 600

    /// When each order and challenge was first seen in processing (by this process).
    private let inProgressSince = Mutex<(orders: [String: Date], challenges: [String: Date])>(([:], [:]))

    /// Looks at the work in progress (run every minute by the server): an order still in processing
    /// `staleAfter` after it was first seen goes back to ready, and such a challenge is validated
    /// again (within its remaining durable attempts). What a live replica is doing finishes long
    /// before that.
    public func recoverStaleWork(now: Date = Date()) async {
        guard let orders = try? await database.ordersInProcessing(),
              let challenges = try? await database.challengesInProcessing() else { return }
        let (staleOrders, staleChallenges) = inProgressSince.withLock { seen in
            func update(_ table: inout [String: Date], _ ids: [String]) -> [String] {
                let current = Set(ids)
                table = table.filter { current.contains($0.key) }
                for id in ids where table[id] == nil { table[id] = now }
                let stale = table.filter { now.timeIntervalSince($0.value) >= Self.staleAfter }.map(\.key)
                for id in stale { table[id] = now }  // taken over now; stale again only after another period
                return stale
            }
            return (update(&seen.orders, orders), update(&seen.challenges, challenges))
        }
        for id in staleOrders {
            if (try? await database.setOrderStatus(id: id, from: .processing, to: .ready, error: nil)) == true {
                logger.notice("ACME: order \(id) was left in processing; set back to ready")
            }
        }
        for id in staleChallenges {
            Task { await self.validate(challengeID: id, remote: nil) }
        }
    }

    /// Forgets orders that expired more than `retention` ago without a certificate.
    public func purgeExpired(now: Date = Date()) async throws -> Int {
        try await database.purge(expiredBefore: now.addingTimeInterval(-Self.retention))
    }

    static func randomID(_ count: Int = 16) -> String {
        Base64URL.encode(SecureRandom.bytes(count))
    }

    /// The problem document for an error an operation threw, or nil for an internal error (which
    /// the HTTP layer logs and answers with a generic 500).
    public static func problem(for error: any Error) -> ACMEProblem? {
        switch error {
        case let problem as ACMEProblem:
            return problem
        case let error as AuthorityError:
            // Named apart: `problem(for: error)` here resolved to this function again and
            // recursed until the stack ran out.
            return problem(forAuthorityError: error)
        case StoreError.unavailable(let reason):
            return ACMEProblem(.serverInternal, "the CA cannot write its database right now (\(reason)); try again later", status: 503)
        default:
            return nil
        }
    }

    static func problem(forAuthorityError error: AuthorityError) -> ACMEProblem {
        switch error.kind {
        case .forbidden:
            switch error.subject {
            case .names?: return ACMEProblem(.rejectedIdentifier, error.message)
            case .key?: return ACMEProblem(.badCSR, error.message)
            case .validity?: return ACMEProblem(.malformed, error.message, status: 403)
            case nil: return ACMEProblem(.unauthorized, error.message)
            }
        case .revokedKey: return ACMEProblem(.badPublicKey, error.message)
        case .unauthorized: return ACMEProblem(.unauthorized, error.message)
        case .badRequest: return ACMEProblem(.malformed, error.message)
        case .notFound: return ACMEProblem(.malformed, error.message, status: 404)
        // An issuance's one conflict: the order it was to complete is no longer ready.
        case .conflict: return ACMEProblem(.orderNotReady, error.message)
        case .unavailable: return ACMEProblem(.serverInternal, error.message, status: 503)
        }
    }

    // MARK: - Nonces

    /// A fresh nonce for a response's `Replay-Nonce`.
    public func makeNonce(now: Date = Date()) -> String {
        nonces.make(now: now)
    }

    /// Accepts a nonce once (see `ACMENonces`).
    public func spendNonce(_ nonce: String?, now: Date = Date()) async throws {
        try await nonces.spend(nonce, now: now)
    }

    // MARK: - Authentication

    /// Checks a POST: its content type, the JWS, its URL, its nonce (spent here), and its key: the
    /// JWK itself for newAccount and revokeCert, else the account `kid` names.
    public func authenticate(_ endpoint: ACMEEndpoint, body: Data, contentType: String?) async throws -> ACMERequest {
        if let contentType, !contentType.hasPrefix("application/jose+json") {
            throw ACMEProblem(.malformed, "the Content-Type must be application/jose+json", status: 415)
        }
        let jws = try ACMEJWS(body: body)
        guard jws.header.url == endpoint.url else {
            throw ACMEProblem(.unauthorized, "the JWS \"url\" (\(jws.header.url ?? "none")) is not this request's URL \(endpoint.url)")
        }
        try await spendNonce(jws.header.nonce)
        let isJWKEndpoint = endpoint.url.hasSuffix("/new-account") || endpoint.url.hasSuffix("/revoke-cert")
        if let fields = jws.header.jwk {
            guard isJWKEndpoint else {
                throw ACMEProblem(.malformed, "this request must carry \"kid\" (the account URL), not \"jwk\"")
            }
            let key = try ACMEAccountKey(jwk: fields)
            try verify(jws, key)
            return ACMERequest(endpoint: endpoint, jws: jws, account: nil, key: key)
        }
        guard let kid = jws.header.kid, let id = Self.accountID(kid: kid, base: endpoint.base) else {
            throw ACMEProblem(.accountDoesNotExist, "\"kid\" is not an account URL of this provisioner", status: 400)
        }
        if endpoint.url.hasSuffix("/new-account") {
            throw ACMEProblem(.malformed, "newAccount must carry \"jwk\", not \"kid\"")
        }
        // The account and whether a revocation cut its key off, read together; the key (parsed
        // once per key, with the hash a revocation records it under) comes from the account read.
        var accountKey: ACMEAccountKey?
        guard let found = try await database.account(id: id, keyHash: { account in
            let known = try self.knownKey(of: account)
            accountKey = known.key
            return known.publicKeyHash
        }), let key = accountKey, found.account.provisioner == endpoint.provisioner.name else {
            throw ACMEProblem(.accountDoesNotExist, "no account \(id)", status: 400)
        }
        let account = found.account
        guard account.status == .valid else {
            // RFC 8555 §7.3.6: requests of a deactivated account are answered 401.
            throw ACMEProblem(.unauthorized, "account \(id) is \(account.status.rawValue)", status: 401)
        }
        try verify(jws, key)
        // A key that a revocation cut off after the account was made (a certificate of it revoked
        // for key compromise, say) may be known to others: its account can do nothing more, not
        // even a key change, which would hand the account to whoever else holds the key. Looked
        // up on every request (a revocation may come from `ca revoke` or another replica).
        if found.keyRevoked {
            throw ACMEProblem(
                .unauthorized,
                "account \(id)'s key was revoked with a certificate of it (a reason other than superseded); make a new account with a new key",
                status: 401)
        }
        return ACMERequest(endpoint: endpoint, jws: jws, account: account, key: key)
    }

    /// The account ID in `kid`: an account URL of this provisioner, at this address or at another
    /// one of the same CA (a replica, or a name the client used before it failed over). The host
    /// is not what proves the account: the JWS signature by the account's key is.
    static func accountID(kid: String, base: String) -> String? {
        let prefix = base + "/account/"
        if kid.hasPrefix(prefix) { return String(kid.dropFirst(prefix.count)) }
        guard kid.utf8.count <= 2048, let kidURL = URL(string: kid), kidURL.scheme == "https",
              let baseURL = URL(string: base) else { return nil }
        let path = baseURL.path + "/account/"
        guard kidURL.query == nil, kidURL.fragment == nil, kidURL.path.hasPrefix(path) else { return nil }
        let id = String(kidURL.path.dropFirst(path.count))
        return id.isEmpty || id.contains("/") ? nil : id
    }

    /// The key of an account, from its stored JWK. Every request of an account needs it, so the
    /// parsed keys are kept (`AccountKeys`): a key is a function of the JWK text alone, so an
    /// entry can never be stale (a key rollover stores another text).
    func key(of account: ACMEAccountRecord) throws -> ACMEAccountKey {
        try knownKey(of: account).key
    }

    /// An account's key with the hash a revocation records it under (`Fingerprint.publicKeyHash`),
    /// both worked out once per key: every request of the account needs them.
    func knownKey(of account: ACMEAccountRecord) throws -> KnownKey {
        if let known = accountKeys.key(jwk: account.jwk) { return known }
        let key = try ACMEAccountKey(jwk: try JSONDecoder().decode(ACMEAccountKey.Fields.self, from: Data(account.jwk.utf8)))
        let known = KnownKey(key: key, publicKeyHash: Fingerprint.publicKeyHash(of: key.certificatePublicKey))
        accountKeys.keep(known, jwk: account.jwk)
        return known
    }

    struct KnownKey: Sendable {
        let key: ACMEAccountKey
        let publicKeyHash: String
    }

    /// Parsed account keys by their JWK text, at most `capacity` of them (when full, the table
    /// starts over: the busy accounts are back after their next request).
    final class AccountKeys: Sendable {
        static let capacity = 4_096
        private let table = Mutex<[String: KnownKey]>([:])

        func key(jwk: String) -> KnownKey? { table.withLock { $0[jwk] } }

        func keep(_ key: KnownKey, jwk: String) {
            table.withLock { table in
                if table.count >= Self.capacity { table.removeAll(keepingCapacity: true) }
                table[jwk] = key
            }
        }
    }

    func verify(_ jws: ACMEJWS, _ key: ACMEAccountKey) throws {
        guard key.accepts(algorithm: jws.header.alg) else {
            throw ACMEProblem(.badSignatureAlgorithm, "\(jws.header.alg) does not match the key", algorithms: Self.signatureAlgorithms)
        }
        guard key.isValidSignature(jws.signature, for: jws.signingInput) else {
            throw ACMEProblem(.unauthorized, "the JWS signature does not verify with the account's key")
        }
    }

    // MARK: - Directory

    public func directory(_ endpoint: ACMEEndpoint) throws -> ACMEReply {
        try .json(ACMEDirectoryObject(
            newNonce: endpoint.base + "/new-nonce", newAccount: endpoint.base + "/new-account", newOrder: endpoint.base + "/new-order",
            revokeCert: endpoint.base + "/revoke-cert", keyChange: endpoint.base + "/key-change",
            meta: .init(externalAccountRequired: endpoint.provisioner.requireEAB, website: "https://" + (endpoint.requestHost ?? "") + "/")))
    }
}
