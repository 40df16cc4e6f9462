import AutoSSLCA
import AutoSSLCore
import AutoSSLHost
import AutoSSLStore
import Crypto
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import NIOSSL
import Synchronization
import X509

/// The ACME server (RFC 8555, RFC 8737, RFC 8738) at /acme/{provisioner}/...: accounts, orders,
/// authorizations, challenges, finalization, certificate download, revocation and key rollover.
/// All state lives in the CA's database; issuance goes through the same authority, policy,
/// durable records and audit log as `/sign`.
final class ACMEService: Sendable {
    let authority: Authority
    let store: ACMEStore
    let logger: Logger
    let provisionerList: Mutex<[ACMEProvisionerSettings]>
    let nonceKey: SymmetricKey
    let validationSlots = ValidationSlots(limit: 32)
    /// Every address of this machine's interfaces (read once at start).
    let ownMachineAddresses: [IPAddress] = NetworkAddresses.allInterfaceAddresses()

    static let nonceLifetime: TimeInterval = 3_600
    static let orderLifetime: TimeInterval = 86_400
    static let retention: TimeInterval = 7 * 86_400
    /// Delays before each attempt of one validation; their count is the durable maximum per challenge.
    static let validationAttempts: [TimeInterval] = [0, 2, 4]
    static let replayNonce = HTTPField.Name("Replay-Nonce")!
    static let link = HTTPField.Name("Link")!

    init(authority: Authority, store: ACMEStore, provisioners: [ACMEProvisionerSettings], logger: Logger) async throws {
        self.authority = authority
        self.store = store
        self.logger = logger
        self.provisionerList = Mutex(provisioners)
        self.nonceKey = SymmetricKey(data: try await store.key(named: "acme-nonce"))
    }

    var provisioners: [ACMEProvisionerSettings] { provisionerList.withLock { $0 } }

    func replaceProvisioners(_ fresh: [ACMEProvisionerSettings]) {
        provisionerList.withLock { $0 = fresh }
    }

    /// After a restart: finalizations a crash interrupted go back to ready, and validations it
    /// interrupted run again, within their remaining durable attempts (an expired authorization's
    /// are closed as invalid without connecting anywhere).
    func resumeValidations() {
        Task {
            if let reset = try? await store.resetInterruptedFinalizations(), reset > 0 {
                logger.notice("ACME: \(reset) interrupted finalization(s) set back to ready")
            }
            guard let pending = try? await store.challengesInProcessing() else { return }
            for id in pending {
                Task { await self.validate(challengeID: id, remote: nil) }
            }
        }
    }

    /// The addresses validation may connect to for this provisioner: its `validation_allow`
    /// ranges open what is refused by default, which includes this machine's own addresses.
    func addressPolicy(for provisioner: ACMEProvisionerSettings) -> ValidationAddressPolicy {
        let allowed = (provisioner.validationAllow ?? []).compactMap { try? IPRange(parsing: $0) }
        let configured = authority.settings.addresses.compactMap { IPAddress($0.host) }
        return ValidationAddressPolicy(allowed: allowed, ownAddresses: Set(configured + ownMachineAddresses))
    }

    func register(on router: Router<CARequestContext>) {
        let group = router.group("acme/:provisioner")
        group.get("directory") { request, context in await self.respond(request, context) { try self.directory($0) } }
        group.head("new-nonce") { request, context in await self.respond(request, context) { _ in Self.empty(.ok) } }
        group.get("new-nonce") { request, context in await self.respond(request, context) { _ in Self.empty(.noContent) } }
        for (path, handler) in [
            ("new-account", newAccount), ("new-order", newOrder), ("key-change", keyChange), ("revoke-cert", revokeCertificate),
            ("account/:id", accountUpdate), ("account/:id/orders", accountOrders), ("order/:id", orderResource),
            ("order/:id/finalize", finalize), ("authz/:id", authorizationResource), ("chall/:id", challengeResource),
            ("cert/:id", certificateResource),
        ] as [(String, @Sendable (ACMERequest) async throws -> Response)] {
            group.post(RouterPath(path)) { request, context in
                await self.respond(request, context) { endpoint in
                    try await handler(try await self.authenticate(endpoint))
                }
            }
        }
    }

    // MARK: - Plumbing

    /// Where a request came in: the provisioner, the URLs to hand out, the request itself.
    struct Endpoint: Sendable {
        var provisioner: ACMEProvisionerSettings
        var base: String
        var url: String
        var parameters: [String: String]
        var request: Request
        var remote: String?

        var directoryURL: String { base + "/directory" }
        func accountURL(_ id: String) -> String { base + "/account/" + id }
        func orderURL(_ id: String) -> String { base + "/order/" + id }
        func authorizationURL(_ id: String) -> String { base + "/authz/" + id }
        func challengeURL(_ id: String) -> String { base + "/chall/" + id }
        func certificateURL(_ id: String) -> String { base + "/cert/" + id }
    }

    /// An authenticated POST: the verified JWS, and the account when signed with `kid`.
    struct ACMERequest: Sendable {
        var endpoint: Endpoint
        var jws: ACMEJWS
        var account: ACMEAccountRecord?
        var key: ACMEAccountKey

        var isPostAsGet: Bool { jws.payloadB64.isEmpty }

        func requireAccount() throws -> ACMEAccountRecord {
            guard let account else {
                throw ACMEProblem(.malformed, "this request must be signed with the account key and carry \"kid\"")
            }
            return account
        }

        func payload<T: Decodable>(_ type: T.Type) throws -> T {
            do {
                return try JSONDecoder().decode(type, from: jws.payload)
            } catch {
                throw ACMEProblem(.malformed, "the JWS payload is not the expected JSON object")
            }
        }
    }

    func respond(
        _ request: Request, _ context: CARequestContext, _ body: (Endpoint) async throws -> Response
    ) async -> Response {
        let name = context.parameters.get("provisioner") ?? ""
        let host = request.head.authority ?? authority.settings.addresses.first?.description ?? "localhost"
        let base = "https://\(host)/acme/\(name)"
        var response: Response
        if let provisioner = provisioners.first(where: { $0.name == name }) {
            var parameters: [String: String] = [:]
            if let id = context.parameters.get("id") { parameters["id"] = id }
            let endpoint = Endpoint(
                provisioner: provisioner, base: base, url: "https://\(host)\(request.uri.path)", parameters: parameters,
                request: request, remote: context.remoteAddress)
            do {
                response = try await body(endpoint)
            } catch let problem as ACMEProblem {
                response = Self.problem(problem)
            } catch let error as AuthorityError {
                response = Self.problem(Self.problem(for: error))
            } catch {
                if let fault = clientFault(error) {
                    response = Self.problem(ACMEProblem(.malformed, fault))
                } else if case StoreError.unavailable(let reason) = error {
                    response = Self.problem(ACMEProblem(.serverInternal, "the CA cannot write its database right now (\(reason)); try again later", status: 503))
                } else {
                    logger.error("ACME internal error: \(error)")
                    response = Self.problem(ACMEProblem(.serverInternal, "internal error; see the CA's log"))
                }
            }
        } else {
            response = Self.problem(ACMEProblem(.malformed, "no ACME provisioner named \"\(name)\" here", status: 404))
        }
        response.headers[Self.replayNonce] = makeNonce()
        response.headers.append(HTTPField(name: Self.link, value: "<\(base)/directory>;rel=\"index\""))
        response.headers[.cacheControl] = "no-store"
        return response
    }

    static func problem(for error: AuthorityError) -> ACMEProblem {
        switch error.kind {
        case .forbidden: return ACMEProblem(.rejectedIdentifier, error.message)
        case .unauthorized: return ACMEProblem(.unauthorized, error.message)
        case .badRequest: return ACMEProblem(.malformed, error.message)
        case .notFound: return ACMEProblem(.malformed, error.message, status: 404)
        case .conflict: return ACMEProblem(.malformed, error.message, status: 409)
        case .unavailable: return ACMEProblem(.serverInternal, error.message, status: 503)
        }
    }

    static func problem(_ problem: ACMEProblem) -> Response {
        let data = (try? JSONSerialization.data(withJSONObject: problem.json, options: [.sortedKeys, .withoutEscapingSlashes])) ?? Data()
        return Response(
            status: .init(code: problem.status), headers: [.contentType: "application/problem+json"],
            body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }

    static func empty(_ status: HTTPResponse.Status) -> Response {
        Response(status: status, body: .init(byteBuffer: ByteBuffer()))
    }

    static func json(_ object: [String: Any], status: HTTPResponse.Status = .ok, location: String? = nil) throws -> Response {
        // Foundation stops the process (rather than throwing) on some invalid objects.
        guard JSONSerialization.isValidJSONObject(object) else { throw AutoSSLError.general("the response is not valid JSON") }
        let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])
        var headers: HTTPFields = [.contentType: "application/json"]
        if let location { headers[.location] = location }
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }

    static func randomID(_ count: Int = 16) -> String {
        Base64URL.encode(SecureRandom.bytes(count))
    }

    // MARK: - Nonces

    /// time (8 bytes) + random (8) + HMAC prefix (16): checkable by any replica without a lookup;
    /// single use is enforced by recording each one in the database when it is spent.
    func makeNonce(now: Date = Date()) -> String {
        var bytes = withUnsafeBytes(of: UInt64(now.timeIntervalSince1970).bigEndian) { Array($0) }
        bytes += SecureRandom.bytes(8)
        bytes += HMAC<SHA256>.authenticationCode(for: bytes, using: nonceKey).prefix(16)
        return Base64URL.encode(bytes)
    }

    func spendNonce(_ nonce: String?, now: Date = Date()) async throws {
        guard let nonce, let bytes = Base64URL.decode(nonce).map(Array.init), bytes.count == 32 else {
            throw ACMEProblem(.badNonce, "the request has no valid nonce; get a fresh one from newNonce")
        }
        let mac = Array(HMAC<SHA256>.authenticationCode(for: bytes[0..<16], using: nonceKey).prefix(16))
        var difference: UInt8 = 0
        for (a, b) in zip(mac, bytes[16..<32]) { difference |= a ^ b }
        let issued = bytes[0..<8].reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        guard difference == 0, now.timeIntervalSince1970 - TimeInterval(issued) < Self.nonceLifetime else {
            throw ACMEProblem(.badNonce, "the nonce is unknown or expired; retry with the one in this response's Replay-Nonce")
        }
        do {
            try await authority.store.consume(TokenUse(
                id: "acme-nonce:" + nonce, expiresAt: Date(timeIntervalSince1970: TimeInterval(issued) + Self.nonceLifetime)))
        } catch StoreError.tokenAlreadyUsed {
            throw ACMEProblem(.badNonce, "the nonce was already used; retry with the one in this response's Replay-Nonce")
        }
    }

    // MARK: - Authentication

    func authenticate(_ endpoint: Endpoint) async throws -> ACMERequest {
        let buffer: ByteBuffer
        do {
            buffer = try await endpoint.request.body.collect(upTo: CAServer.maximumBodySize)
        } catch is NIOTooManyBytesError {
            throw ACMEProblem(.malformed, "the request body exceeds \(CAServer.maximumBodySize) bytes", status: 413)
        }
        if let type = endpoint.request.headers[.contentType], !type.hasPrefix("application/jose+json") {
            throw ACMEProblem(.malformed, "the Content-Type must be application/jose+json", status: 415)
        }
        let jws = try ACMEJWS(body: Data(buffer: buffer))
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
        guard let kid = jws.header.kid, kid.hasPrefix(endpoint.base + "/account/") else {
            throw ACMEProblem(.accountDoesNotExist, "\"kid\" is not an account URL of this provisioner", status: 400)
        }
        if endpoint.url.hasSuffix("/new-account") {
            throw ACMEProblem(.malformed, "newAccount must carry \"jwk\", not \"kid\"")
        }
        let id = String(kid.dropFirst((endpoint.base + "/account/").count))
        guard let account = try await store.account(id: id), account.provisioner == endpoint.provisioner.name else {
            throw ACMEProblem(.accountDoesNotExist, "no account \(id)", status: 400)
        }
        guard account.status == "valid" else {
            throw ACMEProblem(.unauthorized, "account \(id) is \(account.status)")
        }
        let key = try ACMEAccountKey(jwk: try JSONDecoder().decode(ACMEAccountKey.Fields.self, from: Data(account.jwk.utf8)))
        try verify(jws, key)
        return ACMERequest(endpoint: endpoint, jws: jws, account: account, key: key)
    }

    func verify(_ jws: ACMEJWS, _ key: ACMEAccountKey) throws {
        guard key.accepts(algorithm: jws.header.alg) else {
            throw ACMEProblem(.badSignatureAlgorithm, "\(jws.header.alg) does not match the key", algorithms: ["ES256", "ES384", "RS256", "EdDSA"])
        }
        guard key.isValidSignature(jws.signature, for: jws.signingInput) else {
            throw ACMEProblem(.unauthorized, "the JWS signature does not verify with the account's key")
        }
    }

    // MARK: - Directory and accounts

    func directory(_ endpoint: Endpoint) throws -> Response {
        try Self.json([
            "newNonce": endpoint.base + "/new-nonce",
            "newAccount": endpoint.base + "/new-account",
            "newOrder": endpoint.base + "/new-order",
            "revokeCert": endpoint.base + "/revoke-cert",
            "keyChange": endpoint.base + "/key-change",
            "meta": [
                "externalAccountRequired": endpoint.provisioner.requireEAB,
                "website": "https://" + (endpoint.request.head.authority ?? "") + "/",
            ] as [String: Any],
        ])
    }

    func accountJSON(_ account: ACMEAccountRecord, _ endpoint: Endpoint) -> [String: Any] {
        var object: [String: Any] = [
            "status": account.status, "contact": account.contact, "orders": endpoint.accountURL(account.id) + "/orders",
        ]
        if account.eabKeyID != nil { object["externalAccountBinding"] = ["kid": account.eabKeyID ?? ""] }
        return object
    }

    static func validateContacts(_ contacts: [String]) throws {
        for contact in contacts {
            guard contact.lowercased().hasPrefix("mailto:"), contact.count > 7, !contact.contains(",") else {
                throw ACMEProblem(.unsupportedContact, "only mailto: contacts are supported, not \(contact)")
            }
            guard contact.dropFirst(7).contains("@") else {
                throw ACMEProblem(.invalidContact, "\(contact) is not an e-mail address")
            }
        }
    }

    func newAccount(_ request: ACMERequest) async throws -> Response {
        let endpoint = request.endpoint
        guard let object = try? JSONSerialization.jsonObject(with: request.jws.payload) as? [String: Any] else {
            throw ACMEProblem(.malformed, "newAccount needs a JSON object payload")
        }
        if let existing = try await store.account(provisioner: endpoint.provisioner.name, thumbprint: request.key.thumbprint) {
            return try Self.json(accountJSON(existing, endpoint), status: .ok, location: endpoint.accountURL(existing.id))
        }
        if object["onlyReturnExisting"] as? Bool == true {
            throw ACMEProblem(.accountDoesNotExist, "no account exists for this key", status: 400)
        }
        let contacts = object["contact"] as? [String] ?? []
        try Self.validateContacts(contacts)
        var eabKeyID: String?
        if let value = object["externalAccountBinding"] {
            // Anything but an object here would stop Foundation's serializer (not an error it throws).
            guard let binding = value as? [String: Any], JSONSerialization.isValidJSONObject(binding) else {
                throw ACMEProblem(.malformed, "externalAccountBinding must be a flattened JWS object")
            }
            let data = try JSONSerialization.data(withJSONObject: binding)
            var macKey: Data?
            if let kid = ACMEJWS.externalBindingKeyID(data) {
                macKey = try await store.unboundEABKey(kid: kid, provisioner: endpoint.provisioner.name)
            }
            eabKeyID = try ACMEJWS.verifyExternalBinding(data, accountKey: request.key, url: endpoint.url) { _ in macKey }
        } else if endpoint.provisioner.requireEAB {
            throw ACMEProblem(.externalAccountRequired, "this provisioner requires an external account binding (`auto-ssl ca provisioner eab add \(endpoint.provisioner.name)` on the CA host)")
        }
        let record = ACMEAccountRecord(
            id: Self.randomID(), provisioner: endpoint.provisioner.name, thumbprint: request.key.thumbprint,
            jwk: request.key.canonicalJSON, status: "valid", contact: contacts, createdAt: Date(), eabKeyID: eabKeyID)
        let account: ACMEAccountRecord
        let created: Bool
        do {
            (account, created) = try await store.createAccount(record)
        } catch ACMEStoreError.eabKeyAlreadyUsed {
            throw ACMEProblem(.unauthorized, "that external account key was already used by another account")
        }
        if created {
            authority.audit.record(.init(
                "acme.account.created", provisioner: "acme/" + endpoint.provisioner.name, remote: endpoint.remote,
                detail: "account \(account.id)" + (eabKeyID.map { ", bound to \($0)" } ?? "")))
        }
        return try Self.json(accountJSON(account, endpoint), status: created ? .created : .ok, location: endpoint.accountURL(account.id))
    }

    func ownAccount(_ request: ACMERequest) throws -> ACMEAccountRecord {
        let account = try request.requireAccount()
        guard request.endpoint.parameters["id"] == account.id else {
            throw ACMEProblem(.unauthorized, "an account can only read or change itself")
        }
        return account
    }

    func accountUpdate(_ request: ACMERequest) async throws -> Response {
        let account = try ownAccount(request)
        if request.isPostAsGet {
            return try Self.json(accountJSON(account, request.endpoint), location: request.endpoint.accountURL(account.id))
        }
        struct Update: Decodable {
            var contact: [String]?
            var status: String?
        }
        let update = try request.payload(Update.self)
        if let status = update.status, status != "deactivated" {
            throw ACMEProblem(.malformed, "an account's status can only be changed to \"deactivated\"")
        }
        if let contact = update.contact { try Self.validateContacts(contact) }
        let updated = try await store.updateAccount(id: account.id, contact: update.contact, status: update.status)
        if update.status == "deactivated" {
            authority.audit.record(.init(
                "acme.account.deactivated", provisioner: "acme/" + account.provisioner, remote: request.endpoint.remote, detail: "account \(account.id)"))
        }
        return try Self.json(accountJSON(updated, request.endpoint), location: request.endpoint.accountURL(account.id))
    }

    func accountOrders(_ request: ACMERequest) async throws -> Response {
        let account = try ownAccount(request)
        let ids = try await store.orders(accountID: account.id)
        return try Self.json(["orders": ids.map(request.endpoint.orderURL)])
    }

    func keyChange(_ request: ACMERequest) async throws -> Response {
        let account = try request.requireAccount()
        let inner = try ACMEJWS(body: request.jws.payload)
        guard let fields = inner.header.jwk, inner.header.kid == nil else {
            throw ACMEProblem(.malformed, "the inner JWS of keyChange must carry the new key as \"jwk\"")
        }
        guard inner.header.url == request.endpoint.url else {
            throw ACMEProblem(.malformed, "the inner JWS's url must equal the outer one")
        }
        let newKey = try ACMEAccountKey(jwk: fields)
        guard newKey.accepts(algorithm: inner.header.alg), newKey.isValidSignature(inner.signature, for: inner.signingInput) else {
            throw ACMEProblem(.malformed, "the inner JWS is not signed by the new key")
        }
        struct Payload: Decodable {
            var account: String
            var oldKey: ACMEAccountKey.Fields
        }
        guard let payload = try? JSONDecoder().decode(Payload.self, from: inner.payload) else {
            throw ACMEProblem(.malformed, "the inner payload must be {\"account\", \"oldKey\"}")
        }
        guard payload.account == request.endpoint.accountURL(account.id) else {
            throw ACMEProblem(.malformed, "the inner payload names another account")
        }
        guard (try? ACMEAccountKey(jwk: payload.oldKey))?.thumbprint == request.key.thumbprint else {
            throw ACMEProblem(.malformed, "oldKey is not the account's current key")
        }
        do {
            try await store.changeAccountKey(id: account.id, thumbprint: newKey.thumbprint, jwk: newKey.canonicalJSON)
        } catch ACMEStoreError.accountKeyInUse(let existing) {
            var response = Self.problem(ACMEProblem(.malformed, "the new key already belongs to another account", status: 409))
            response.headers[.location] = request.endpoint.accountURL(existing)
            return response
        }
        authority.audit.record(.init(
            "acme.account.key-changed", provisioner: "acme/" + account.provisioner, remote: request.endpoint.remote, detail: "account \(account.id)"))
        var updated = account
        updated.jwk = newKey.canonicalJSON
        return try Self.json(accountJSON(updated, request.endpoint), location: request.endpoint.accountURL(account.id))
    }

    // MARK: - Orders

    static func identifier(_ identifier: ACMEIdentifier) throws -> ACMEIdentifierValue {
        switch identifier.type {
        case "dns":
            // lego 4.9 sends IP addresses as "dns" identifiers; treat them as the IP identifiers they are (RFC 8738).
            if let address = IPAddress(identifier.value) { return .ip(address) }
            if identifier.value.hasPrefix("*.") {
                // A wildcard covers one label under a domain that must itself be a valid name.
                let base = String(identifier.value.dropFirst(2))
                guard !base.contains("*"), case .dns(let name)? = try? SubjectName(parsing: base) else {
                    throw ACMEProblem(.rejectedIdentifier, "\(identifier.value) is not a valid wildcard name (*.domain)")
                }
                return .dns("*." + name)
            }
            guard case .dns(let name)? = try? SubjectName(parsing: identifier.value) else {
                throw ACMEProblem(.rejectedIdentifier, "\(identifier.value) is not a valid DNS name")
            }
            return .dns(name)
        case "ip":
            guard let address = IPAddress(identifier.value) else {
                throw ACMEProblem(.rejectedIdentifier, "\(identifier.value) is not an IP address")
            }
            return .ip(address)
        default:
            throw ACMEProblem(.unsupportedIdentifier, "identifier type \(identifier.type) is not supported (dns, ip)")
        }
    }

    func challengeTypes(for value: ACMEIdentifierValue, provisioner: ACMEProvisionerSettings) -> [String] {
        let offered = ACMEProvisionerSettings.allChallenges.filter(provisioner.challenges.contains)
        if case .ip = value { return offered.filter { $0 != "dns-01" } }
        // RFC 8555 §7.1.3: only control of the DNS zone proves a wildcard.
        if value.isWildcard { return offered.filter { $0 == "dns-01" } }
        return offered
    }

    static func parseTime(_ text: String?) throws -> Date? {
        guard let text else { return nil }
        let formatter = ISO8601DateFormatter()
        if let date = formatter.date(from: text) { return date }
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        if let date = formatter.date(from: text) { return date }
        throw ACMEProblem(.malformed, "\(text) is not an RFC 3339 time")
    }

    func newOrder(_ request: ACMERequest) async throws -> Response {
        let account = try request.requireAccount()
        struct Payload: Decodable {
            var identifiers: [ACMEIdentifier]
            var notBefore: String?
            var notAfter: String?
        }
        let payload = try request.payload(Payload.self)
        guard !payload.identifiers.isEmpty, payload.identifiers.count <= 100 else {
            throw ACMEProblem(.malformed, "an order needs between 1 and 100 identifiers")
        }
        var values: [ACMEIdentifierValue] = []
        var identifiers: [ACMEIdentifier] = []
        for identifier in payload.identifiers {
            let value = try Self.identifier(identifier)
            if !values.contains(value) {
                values.append(value)
                identifiers.append(ACMEIdentifier(type: identifier.type, value: value.value))
            }
        }
        let provisioner = request.endpoint.provisioner
        do {
            try authority.acmePolicy(provisioner).check(names: values.map(\.subjectName))
        } catch let error as AutoSSLError {
            throw ACMEProblem(.rejectedIdentifier, error.message)
        }
        let notBefore = try Self.parseTime(payload.notBefore)
        let notAfter = try Self.parseTime(payload.notAfter)
        let now = Date()
        let expires = now.addingTimeInterval(Self.orderLifetime)
        let orderID = Self.randomID()
        var authorizations: [ACMEAuthorizationRecord] = []
        for (index, value) in values.enumerated() {
            let types = challengeTypes(for: value, provisioner: provisioner)
            guard !types.isEmpty else {
                throw ACMEProblem(
                    .rejectedIdentifier,
                    "provisioner \(provisioner.name) offers no challenge that can validate \(value.value)"
                        + (value.isWildcard ? " (wildcards need dns-01)" : ""))
            }
            let authorizationID = Self.randomID()
            // A wildcard's authorization is for the domain under it, marked as a wildcard (RFC 8555 §7.1.4).
            let authorized = value.isWildcard
                ? ACMEIdentifier(type: "dns", value: String(value.value.dropFirst(2))) : identifiers[index]
            authorizations.append(ACMEAuthorizationRecord(
                id: authorizationID, accountID: account.id, orderID: orderID, identifier: authorized, wildcard: value.isWildcard,
                status: "pending", expires: expires,
                challenges: types.map {
                    ACMEChallengeRecord(id: Self.randomID(), authorizationID: authorizationID, type: $0, token: Self.randomID(32), status: "pending")
                }))
        }
        let order = ACMEOrderRecord(
            id: orderID, accountID: account.id, provisioner: provisioner.name, status: "pending", identifiers: identifiers,
            notBefore: notBefore, notAfter: notAfter, expires: expires, createdAt: now, authorizationIDs: authorizations.map(\.id))
        try await store.createOrder(order, authorizations: authorizations)
        return try Self.json(orderJSON(order, request.endpoint), status: .created, location: request.endpoint.orderURL(orderID))
    }

    func orderJSON(_ order: ACMEOrderRecord, _ endpoint: Endpoint) -> [String: Any] {
        var object: [String: Any] = [
            "status": order.status, "expires": Timestamp.rfc3339(order.expires),
            "identifiers": order.identifiers.map { ["type": $0.type, "value": $0.value] },
            "authorizations": order.authorizationIDs.map(endpoint.authorizationURL),
            "finalize": endpoint.orderURL(order.id) + "/finalize",
        ]
        if let notBefore = order.notBefore { object["notBefore"] = Timestamp.rfc3339(notBefore) }
        if let notAfter = order.notAfter { object["notAfter"] = Timestamp.rfc3339(notAfter) }
        if order.status == "valid" { object["certificate"] = endpoint.certificateURL(order.id) }
        if let error = order.error, let problem = try? JSONSerialization.jsonObject(with: Data(error.utf8)) { object["error"] = problem }
        return object
    }

    func ownedOrder(_ request: ACMERequest) async throws -> (ACMEAccountRecord, ACMEOrderRecord) {
        let account = try request.requireAccount()
        guard let id = request.endpoint.parameters["id"], let order = try await store.order(id: id), order.provisioner == account.provisioner else {
            throw ACMEProblem(.malformed, "no such order", status: 404)
        }
        guard order.accountID == account.id else { throw ACMEProblem(.unauthorized, "the order belongs to another account") }
        return (account, order)
    }

    static func withRetryAfter(_ response: Response, when pending: Bool) -> Response {
        guard pending else { return response }
        var copy = response
        copy.headers[.retryAfter] = "1"
        return copy
    }

    func orderResource(_ request: ACMERequest) async throws -> Response {
        let (_, order) = try await ownedOrder(request)
        let response = try Self.json(orderJSON(order, request.endpoint), location: request.endpoint.orderURL(order.id))
        return Self.withRetryAfter(response, when: order.status == "processing" || order.status == "pending")
    }

    func finalize(_ request: ACMERequest) async throws -> Response {
        let (account, order) = try await ownedOrder(request)
        guard order.status == "ready" else {
            throw ACMEProblem(.orderNotReady, "the order is \(order.status), not ready: every authorization must be valid first")
        }
        struct Payload: Decodable { var csr: String }
        let payload = try request.payload(Payload.self)
        guard let der = Base64URL.decode(payload.csr) else { throw ACMEProblem(.badCSR, "the CSR is not base64url DER") }
        let csr: VerifiedCSR
        do {
            csr = try VerifiedCSR(der: Array(der))
        } catch let error as AutoSSLError {
            throw ACMEProblem(.badCSR, error.message)
        }
        let values = try order.identifiers.map(Self.identifier)
        // Compared as text: lego puts an IP identifier into the CN and even into a dNSName; what is
        // issued is the order's identifiers, an IP as an iPAddress SAN.
        guard Set(csr.names.map(\.description)) == Set(values.map(\.value)) else {
            throw ACMEProblem(
                .badCSR,
                "the CSR asks for \(csr.names.map(\.description).joined(separator: ", ")) but the order is for \(values.map(\.value).joined(separator: ", "))")
        }
        guard try await store.beginFinalize(orderID: order.id, notBefore: order.notBefore, notAfter: order.notAfter) else {
            throw ACMEProblem(.orderNotReady, "the order is already being finalized")
        }
        let issued: IssuedCertificate
        do {
            issued = try await authority.issueForACME(
                csr: csr, names: values.map(\.subjectName), provisioner: request.endpoint.provisioner, accountID: account.id,
                notBefore: order.notBefore, notAfter: order.notAfter, remote: request.endpoint.remote)
        } catch {
            let problem = (error as? AuthorityError).map(Self.problem(for:)) ?? ACMEProblem(.serverInternal, "issuance failed")
            let document = String(decoding: (try? JSONSerialization.data(withJSONObject: problem.json)) ?? Data(), as: UTF8.self)
            try? await store.abortFinalize(orderID: order.id, invalidate: document)
            throw problem
        }
        try await store.completeOrder(orderID: order.id, serial: issued.serial)
        var done = order
        done.status = "valid"
        done.certificateSerial = issued.serial
        return try Self.json(orderJSON(done, request.endpoint), location: request.endpoint.orderURL(order.id))
    }

    func certificateResource(_ request: ACMERequest) async throws -> Response {
        let (_, order) = try await ownedOrder(request)
        guard order.status == "valid", let serial = order.certificateSerial, let chain = try await authority.pemChain(serial: serial) else {
            throw ACMEProblem(.malformed, "the order has no certificate (yet)", status: 404)
        }
        return Response(
            status: .ok, headers: [.contentType: "application/pem-certificate-chain"], body: .init(byteBuffer: ByteBuffer(string: chain)))
    }

    // MARK: - Authorizations and challenges

    func challengeJSON(_ challenge: ACMEChallengeRecord, _ endpoint: Endpoint) -> [String: Any] {
        var object: [String: Any] = [
            "type": challenge.type, "url": endpoint.challengeURL(challenge.id), "status": challenge.status, "token": challenge.token,
        ]
        if let validated = challenge.validatedAt { object["validated"] = Timestamp.rfc3339(validated) }
        if let error = challenge.error, challenge.status != "valid", let problem = try? JSONSerialization.jsonObject(with: Data(error.utf8)) {
            object["error"] = problem
        }
        return object
    }

    func authorizationJSON(_ authorization: ACMEAuthorizationRecord, _ endpoint: Endpoint) -> [String: Any] {
        let challenges = authorization.status == "valid"
            ? authorization.challenges.filter { $0.status == "valid" }
            : authorization.challenges
        var object: [String: Any] = [
            "identifier": ["type": authorization.identifier.type, "value": authorization.identifier.value],
            "status": authorization.status, "expires": Timestamp.rfc3339(authorization.expires),
            "challenges": challenges.map { challengeJSON($0, endpoint) },
        ]
        if authorization.wildcard { object["wildcard"] = true }
        return object
    }

    func authorizationResource(_ request: ACMERequest) async throws -> Response {
        let account = try request.requireAccount()
        guard let id = request.endpoint.parameters["id"], let authorization = try await store.authorization(id: id) else {
            throw ACMEProblem(.malformed, "no such authorization", status: 404)
        }
        guard authorization.accountID == account.id else { throw ACMEProblem(.unauthorized, "the authorization belongs to another account") }
        if !request.isPostAsGet {
            struct Update: Decodable { var status: String }
            guard try request.payload(Update.self).status == "deactivated" else {
                throw ACMEProblem(.malformed, "an authorization can only be deactivated")
            }
            _ = try await store.deactivateAuthorization(id: id)
            let updated = try await store.authorization(id: id) ?? authorization
            return try Self.json(authorizationJSON(updated, request.endpoint))
        }
        let pending = authorization.status == "pending" && authorization.challenges.contains { $0.status == "processing" }
        return Self.withRetryAfter(try Self.json(authorizationJSON(authorization, request.endpoint)), when: pending)
    }

    func challengeResource(_ request: ACMERequest) async throws -> Response {
        let account = try request.requireAccount()
        guard let id = request.endpoint.parameters["id"], let found = try await store.challenge(id: id) else {
            throw ACMEProblem(.malformed, "no such challenge", status: 404)
        }
        var challenge = found.0
        let authorization = found.1
        guard authorization.accountID == account.id else { throw ACMEProblem(.unauthorized, "the challenge belongs to another account") }
        if !request.isPostAsGet, challenge.status == "pending" {
            if authorization.expires < Date() { throw ACMEProblem(.malformed, "the authorization expired") }
            if try await store.startValidation(challengeID: id) {
                challenge.status = "processing"
                let remote = request.endpoint.remote
                Task { await self.validate(challengeID: id, remote: remote) }
            }
        }
        var response = try Self.json(challengeJSON(challenge, request.endpoint))
        response.headers.append(HTTPField(name: Self.link, value: "<\(request.endpoint.authorizationURL(authorization.id))>;rel=\"up\""))
        return Self.withRetryAfter(response, when: challenge.status == "processing")
    }

    /// Tries the challenge a few times (the client's responder may need a moment), then records the
    /// result. Each attempt is counted in the database before it starts, so however often the CA
    /// restarts, a challenge gets at most `validationAttempts.count` attempts.
    func validate(challengeID: String, remote: String?) async {
        guard let (challenge, authorization) = try? await store.challenge(id: challengeID),
              let account = try? await store.account(id: authorization.accountID),
              let provisioner = provisioners.first(where: { $0.name == account.provisioner }),
              let identifier = try? Self.identifier(authorization.identifier),
              let key = try? ACMEAccountKey(jwk: JSONDecoder().decode(ACMEAccountKey.Fields.self, from: Data(account.jwk.utf8))) else {
            try? await store.finishValidation(challengeID: challengeID, valid: false, error: nil)
            return
        }
        func document(_ problem: ACMEProblem) -> String {
            String(decoding: (try? JSONSerialization.data(withJSONObject: problem.json)) ?? Data(), as: UTF8.self)
        }
        let keyAuthorization = ACMEChallengeValues.keyAuthorization(token: challenge.token, thumbprint: key.thumbprint)
        let validator = ACMEValidator(provisioner: provisioner, addressPolicy: addressPolicy(for: provisioner))
        var failure: ACMEProblem?
        var attempted = false
        for delay in Self.validationAttempts {
            if delay > 0 { try? await Task.sleep(nanoseconds: UInt64(delay * 1_000_000_000)) }
            if authorization.expires < Date() {
                failure = ACMEProblem(.unauthorized, "the authorization expired before it was validated")
                break
            }
            guard (try? await store.beginValidationAttempt(challengeID: challengeID, maximum: Self.validationAttempts.count)) == true else {
                if !attempted {
                    failure = ACMEProblem(
                        .connection, "validation gave up: its \(Self.validationAttempts.count) attempts were used up (counted across restarts)")
                }
                break
            }
            attempted = true
            // Each attempt holds one of a bounded number of slots: validation opens connections from
            // the CA's network, and a client must not be able to make it open thousands at once.
            await validationSlots.acquire()
            failure = await validator.validate(type: challenge.type, identifier: identifier, token: challenge.token, keyAuthorization: keyAuthorization)
            await validationSlots.release()
            guard let failure else { break }
            try? await store.noteValidationAttempt(challengeID: challengeID, error: document(failure))
        }
        try? await store.finishValidation(challengeID: challengeID, valid: failure == nil, error: failure.map(document))
        authority.audit.record(.init(
            failure == nil ? "acme.challenge.valid" : "acme.challenge.invalid", sans: [identifier.value],
            provisioner: "acme/" + provisioner.name, remote: remote, reason: failure?.detail,
            detail: "\(challenge.type) for account \(account.id)"))
    }

    // MARK: - Revocation

    func revokeCertificate(_ request: ACMERequest) async throws -> Response {
        struct Payload: Decodable {
            var certificate: String
            var reason: Int?
        }
        let payload = try request.payload(Payload.self)
        guard let der = Base64URL.decode(payload.certificate), let certificate = try? Certificate(derEncoded: Array(der)) else {
            throw ACMEProblem(.malformed, "certificate must be the base64url DER of the certificate to revoke")
        }
        let reason = payload.reason ?? 0
        guard (try? Authority.validateReasonCode(reason)) != nil else {
            throw ACMEProblem(.badRevocationReason, "reason \(reason) is not allowed (use 0-6, 9 or 10)")
        }
        let serial = certificate.serialNumber.hexString
        guard let record = try await authority.store.certificate(serial: serial), record.der.map({ $0 == Array(der) }) == true else {
            throw ACMEProblem(.malformed, "this CA did not issue that certificate", status: 404)
        }
        let revokedBy: String
        if let account = request.account {
            guard let order = try await store.order(certificateSerial: serial), order.accountID == account.id else {
                throw ACMEProblem(.unauthorized, "account \(account.id) did not order this certificate")
            }
            revokedBy = "acme-account:" + account.id
        } else {
            guard let certificateKey = ACMEAccountKey(certificateKey: certificate.publicKey),
                  certificateKey.thumbprint == request.key.thumbprint else {
                throw ACMEProblem(.unauthorized, "the request is signed neither by an account nor by the certificate's key")
            }
            revokedBy = "holder"
        }
        guard try await authority.revokeForACME(serial: serial, reasonCode: reason, revokedBy: revokedBy, remote: request.endpoint.remote) else {
            throw ACMEProblem(.alreadyRevoked, "certificate \(serial) is already revoked")
        }
        return Self.empty(.ok)
    }
}


/// A counting semaphore for concurrent validation attempts (FIFO, never blocks a thread).
actor ValidationSlots {
    private let limit: Int
    private var inUse = 0
    private var waiting: [CheckedContinuation<Void, Never>] = []

    init(limit: Int) {
        self.limit = limit
    }

    func acquire() async {
        if inUse < limit {
            inUse += 1
            return
        }
        await withCheckedContinuation { waiting.append($0) }
    }

    func release() {
        if waiting.isEmpty {
            inUse -= 1
        } else {
            waiting.removeFirst().resume()
        }
    }
}
