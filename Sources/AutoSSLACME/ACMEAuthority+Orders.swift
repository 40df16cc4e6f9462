import AutoSSLCA
import AutoSSLCore
import AutoSSLStore
import Foundation

/// Orders (RFC 8555 §7.4): creation with one authorization per identifier, reading (a read: the
/// status shown is derived by `ACMEStateRules`), finalization and the certificate download.
extension ACMEAuthority {
    public static let maximumIdentifiers = 100

    static func parseTime(_ text: String?) throws -> Date? {
        guard let text else { return nil }
        if let date = Timestamp.parse(text) { return date }
        throw ACMEProblem(.malformed, "\(text) is not an RFC 3339 time")
    }

    public func newOrder(_ request: ACMERequest, now: Date = Date()) async throws -> ACMEReply {
        let account = try request.requireAccount()
        let payload = try request.payload(NewOrderPayload.self)
        guard !payload.identifiers.isEmpty, payload.identifiers.count <= Self.maximumIdentifiers else {
            throw ACMEProblem(.malformed, "an order needs between 1 and \(Self.maximumIdentifiers) identifiers")
        }
        var values: [ACMEIdentifierValue] = []
        var identifiers: [ACMEIdentifier] = []
        for identifier in payload.identifiers {
            let value = try ACMEIdentifierValue(identifier)
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
        do {
            try authority.checkACMEValidity(provisioner: provisioner, notBefore: notBefore, notAfter: notAfter, now: now)
        } catch let error as AuthorityError {
            throw ACMEProblem(.malformed, "the order's notBefore/notAfter cannot be issued: \(error.message)")
        }
        let expires = now.addingTimeInterval(Self.orderLifetime)
        let orderID = Self.randomID()
        var authorizations: [ACMEAuthorizationRecord] = []
        for (value, identifier) in zip(values, identifiers) {
            let types = ACMEStateRules.challengeTypes(for: value, offered: provisioner.challenges)
            guard !types.isEmpty else {
                throw ACMEProblem(
                    .rejectedIdentifier,
                    "provisioner \(provisioner.name) offers no challenge that can validate \(value.value)"
                        + (value.isWildcard ? " (wildcards need dns-01)" : ""))
            }
            let authorizationID = Self.randomID()
            // A wildcard's authorization is for the domain under it, marked as a wildcard (RFC 8555 §7.1.4).
            let authorized = value.isWildcard ? ACMEIdentifier(type: "dns", value: String(value.value.dropFirst(2))) : identifier
            authorizations.append(ACMEAuthorizationRecord(
                id: authorizationID, accountID: account.id, orderID: orderID, identifier: authorized, wildcard: value.isWildcard,
                status: .pending, expires: expires,
                challenges: types.map {
                    ACMEChallengeRecord(id: Self.randomID(), authorizationID: authorizationID, type: $0, token: Self.randomID(32), status: .pending)
                }))
        }
        let order = ACMEOrderRecord(
            id: orderID, accountID: account.id, provisioner: provisioner.name, status: .pending, identifiers: identifiers,
            notBefore: notBefore, notAfter: notAfter, expires: expires, createdAt: now, authorizationIDs: authorizations.map(\.id))
        do {
            try await database.createOrder(order, authorizations: authorizations, openOrderLimit: Self.maximumOpenOrders)
        } catch ACMEDatabaseError.tooManyOpenOrders(let limit) {
            throw ACMEProblem(
                .rateLimited,
                "the account already has \(limit) open orders (pending, ready or processing): finish them, or wait for them to expire (24 hours after they were made)")
        }
        authority.metrics.acmeOrder(.created, provisioner: ACMEProvisioner.labelPrefix + request.endpoint.provisioner.name)
        return try .json(orderObject(order, request.endpoint), status: 201, location: request.endpoint.orderURL(orderID))
    }

    func orderObject(_ order: ACMEOrderRecord, _ endpoint: ACMEEndpoint) -> ACMEOrderObject {
        ACMEOrderObject(
            status: order.status, expires: Timestamp.rfc3339(order.expires), identifiers: order.identifiers,
            authorizations: order.authorizationIDs.map(endpoint.authorizationURL), finalize: endpoint.orderURL(order.id) + "/finalize",
            notBefore: order.notBefore.map { Timestamp.rfc3339($0) }, notAfter: order.notAfter.map { Timestamp.rfc3339($0) },
            certificate: order.status == .valid ? endpoint.certificateURL(order.id) : nil, error: ProblemDocument(stored: order.error))
    }

    /// The order as it stands now (derived, nothing written).
    public func currentOrder(id: String, now: Date = Date()) async throws -> ACMEOrderRecord? {
        guard let order = try await database.order(id: id) else { return nil }
        return try await effectiveOrder(order, now: now)
    }

    /// The order as it stands at `now`, from its stored record and its authorizations. Those are two
    /// reads, and a validation that fails between them writes the authorization and the order (with
    /// the error) in one transaction: when the authorizations say invalid while the order read
    /// before them was still pending, the order is read again, so its error is not lost.
    func effectiveOrder(_ stored: ACMEOrderRecord, now: Date) async throws -> ACMEOrderRecord {
        guard ACMEStateRules.needsAuthorizations(stored, now: now) else {
            return ACMEStateRules.effective(stored, authorizations: [], now: now)
        }
        let authorizations = try await database.authorizations(orderID: stored.id)
        let derived = ACMEStateRules.effective(stored, authorizations: authorizations, now: now)
        if derived.status == .invalid, derived.error == nil, let again = try await database.order(id: stored.id), again.status != .pending {
            return ACMEStateRules.effective(again, authorizations: authorizations, now: now)
        }
        return derived
    }

    /// The order the request's `:id` names, if it belongs to the signing account: (account, order as
    /// it stands now, order as stored).
    func ownedOrder(_ request: ACMERequest, now: Date) async throws -> (ACMEAccountRecord, ACMEOrderRecord, stored: ACMEOrderStatus) {
        let account = try request.requireAccount()
        guard let id = request.endpoint.id, let stored = try await database.order(id: id), stored.provisioner == account.provisioner else {
            throw ACMEProblem(.malformed, "no such order", status: 404)
        }
        guard stored.accountID == account.id else { throw ACMEProblem(.unauthorized, "the order belongs to another account") }
        return (account, try await effectiveOrder(stored, now: now), stored.status)
    }

    public func order(_ request: ACMERequest, now: Date = Date()) async throws -> ACMEReply {
        let (_, order, _) = try await ownedOrder(request, now: now)
        return try ACMEReply.json(orderObject(order, request.endpoint), location: request.endpoint.orderURL(order.id))
            .retrying(when: order.status == .processing || order.status == .pending)
    }

    /// Finalization (RFC 8555 §7.4): a CSR for exactly the order's identifiers, once the order is
    /// ready. Nothing is written before the certificate: its record and ready → valid are one
    /// transaction (in the authority's issuance), so of requests that race only one certificate is
    /// recorded and handed out. In this process one request at a time signs for an order; the
    /// others are answered that it is being finalized.
    public func finalize(_ request: ACMERequest, now: Date = Date()) async throws -> ACMEReply {
        let (account, order, stored) = try await ownedOrder(request, now: now)
        guard order.status == .ready else {
            switch order.status {
            case .valid: throw ACMEProblem(.orderNotReady, "the order was finalized already: its certificate is at the order's \"certificate\" URL")
            case .processing: throw ACMEProblem(.orderNotReady, "the order is being finalized already")
            default: throw ACMEProblem(.orderNotReady, "the order is \(order.status.rawValue), not ready: every authorization must be valid first")
            }
        }
        let payload = try request.payload(FinalizePayload.self)
        guard let der = Base64URL.decode(payload.csr) else { throw ACMEProblem(.badCSR, "the CSR is not base64url DER") }
        let csr: VerifiedCSR
        do {
            csr = try VerifiedCSR(der: Array(der))
        } catch let error as AutoSSLError {
            throw ACMEProblem(.badCSR, error.message)
        }
        // RFC 8555 §11.1: the account key must not also be a certificate's key (whoever held the
        // certificate's key could then act as the account).
        if let certificateKey = ACMEAccountKey(certificateKey: csr.publicKey), certificateKey.thumbprint == request.key.thumbprint {
            throw ACMEProblem(.badCSR, "the CSR's key is the account key; make the certificate a key of its own")
        }
        let values = try order.identifiers.map(ACMEIdentifierValue.init)
        // Compared as text: lego puts an IP identifier into the CN and even into a dNSName; what is
        // issued is the order's identifiers, an IP as an iPAddress SAN.
        guard Set(csr.names.map(\.description)) == Set(values.map(\.value)) else {
            throw ACMEProblem(
                .badCSR,
                "the CSR asks for \(csr.names.map(\.description).joined(separator: ", ")) but the order is for \(values.map(\.value).joined(separator: ", "))")
        }
        if stored == .pending {
            // Ready by its authorizations, not yet marked so: mark it (whoever does it first).
            _ = try await database.setOrderStatus(id: order.id, from: .pending, to: .ready, error: nil)
        }
        guard finalizing.withLock({ $0.insert(order.id).inserted }) else {
            throw ACMEProblem(.orderNotReady, "the order is already being finalized")
        }
        defer { _ = finalizing.withLock { $0.remove(order.id) } }
        let issued: IssuedCertificate
        do {
            issued = try await authority.issueForACME(
                csr: csr, names: values.map(\.subjectName), provisioner: request.endpoint.provisioner, accountID: account.id,
                orderID: order.id, notBefore: order.notBefore, notAfter: order.notAfter, remote: request.endpoint.remote)
        } catch {
            let problem = await abandonFinalize(orderID: order.id, after: error)
            throw problem
        }
        var done = order
        done.status = .valid
        done.certificateSerial = issued.serial
        return try .json(orderObject(done, request.endpoint), location: request.endpoint.orderURL(order.id))
    }

    /// A finalization that did not issue: returns the problem to answer (503 when the CA cannot
    /// issue right now: its database unavailable, say), and leaves the order so: after such a
    /// temporary failure ready, so that the client can finalize again; when the order was no
    /// longer ready (another request finalized it, a deactivation) as it is; after a refusal (the
    /// policy, a revoked key) or an internal error, invalid with the problem. (A refusal on one
    /// replica while another replica signs for the same order, which takes one account racing
    /// itself with different keys, ends the order: the other certificate is then discarded.)
    func abandonFinalize(orderID: String, after error: any Error) async -> ACMEProblem {
        let problem = Self.problem(for: error) ?? ACMEProblem(.serverInternal, "issuance failed")
        if problem.httpStatus != 503, problem.kind != .orderNotReady {
            try? await database.refuseFinalization(orderID: orderID, problem: ProblemDocument(problem).stored)
        }
        return problem
    }

    public func certificate(_ request: ACMERequest, now: Date = Date()) async throws -> ACMEReply {
        let (_, order, _) = try await ownedOrder(request, now: now)
        guard order.status == .valid, let serial = order.certificateSerial, let chain = try await authority.pemChain(serial: serial) else {
            throw ACMEProblem(.malformed, "the order has no certificate (yet)", status: 404)
        }
        return .pemChain(chain)
    }
}
