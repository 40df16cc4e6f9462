import AutoSSLCA
import AutoSSLCore
import AutoSSLStore
import Foundation

/// Accounts (RFC 8555 §7.3): creation (with external account binding), reading, contact updates,
/// deactivation, the orders list and key rollover.
extension ACMEAuthority {
    func accountObject(_ account: ACMEAccountRecord, _ endpoint: ACMEEndpoint) -> ACMEAccountObject {
        ACMEAccountObject(
            status: account.status, contact: account.contact, orders: endpoint.accountURL(account.id) + "/orders",
            externalAccountBinding: account.eabKeyID.map { ACMEAccountObject.Binding(kid: $0) })
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

    public func newAccount(_ request: ACMERequest) async throws -> ACMEReply {
        let endpoint = request.endpoint
        let payload: NewAccountPayload
        do {
            payload = try JSONDecoder().decode(NewAccountPayload.self, from: request.jws.payload)
        } catch {
            throw ACMEProblem(.malformed, "newAccount needs a JSON object payload")
        }
        if let existing = try await database.account(provisioner: endpoint.provisioner.name, thumbprint: request.key.thumbprint) {
            guard existing.status == .valid else {
                throw ACMEProblem(
                    .unauthorized, "the account of this key (\(existing.id)) is \(existing.status.rawValue); a new account needs a new key",
                    status: 401)
            }
            return try .json(accountObject(existing, endpoint), status: 200, location: endpoint.accountURL(existing.id))
        }
        if payload.onlyReturnExisting {
            throw ACMEProblem(.accountDoesNotExist, "no account exists for this key", status: 400)
        }
        try Self.validateContacts(payload.contact)
        try await refuseRevokedKey(request.key)
        var eabKeyID: String?
        if payload.isBindingMalformed {
            throw ACMEProblem(.malformed, "externalAccountBinding must be a flattened JWS object")
        } else if let binding = payload.externalAccountBinding {
            var macKey: Data?
            if let kid = ACMEJWS.externalBindingKeyID(binding) {
                macKey = try await database.unboundEABKey(kid: kid, provisioner: endpoint.provisioner.name)
            }
            eabKeyID = try ACMEJWS.verifyExternalBinding(binding, accountKey: request.key, url: endpoint.url) { _ in macKey }
        } else if endpoint.provisioner.requireEAB {
            throw ACMEProblem(
                .externalAccountRequired,
                "this provisioner requires an external account binding (`auto-ssl ca provisioner eab add \(endpoint.provisioner.name)` on the CA host)")
        }
        let record = ACMEAccountRecord(
            id: Self.randomID(), provisioner: endpoint.provisioner.name, thumbprint: request.key.thumbprint,
            jwk: request.key.canonicalJSON, status: .valid, contact: payload.contact, createdAt: Date(), eabKeyID: eabKeyID)
        let account: ACMEAccountRecord
        let created: Bool
        do {
            (account, created) = try await database.createAccount(record)
        } catch ACMEDatabaseError.eabKeyAlreadyUsed {
            throw ACMEProblem(.unauthorized, "that external account key was already used by another account")
        }
        if created {
            authority.record(.accountCreated(provisioner: endpoint.provisioner.name, account: account.id, boundTo: eabKeyID, remote: endpoint.remote))
        }
        return try .json(accountObject(account, endpoint), status: created ? 201 : 200, location: endpoint.accountURL(account.id))
    }

    /// A key that a revocation cut off (a certificate of it revoked for key compromise, say) is
    /// known to others: it becomes no account's key (RFC 8555 §7.3, badPublicKey).
    func refuseRevokedKey(_ key: ACMEAccountKey) async throws {
        if try await authority.isKeyRevoked(key.certificatePublicKey) {
            throw ACMEProblem(
                .badPublicKey, "this key was revoked with a certificate of it (a reason other than superseded) and cannot be an account key; make a new key")
        }
    }

    func ownAccount(_ request: ACMERequest) throws -> ACMEAccountRecord {
        let account = try request.requireAccount()
        guard request.endpoint.id == account.id else {
            throw ACMEProblem(.unauthorized, "an account can only read or change itself")
        }
        return account
    }

    /// POST to the account URL: read it (POST-as-GET), change its contacts, or deactivate it.
    public func account(_ request: ACMERequest) async throws -> ACMEReply {
        let account = try ownAccount(request)
        if request.isPostAsGet {
            return try .json(accountObject(account, request.endpoint), location: request.endpoint.accountURL(account.id))
        }
        let update = try request.payload(AccountUpdatePayload.self)
        if let status = update.status, status != ACMEAccountStatus.deactivated.rawValue {
            throw ACMEProblem(.malformed, "an account's status can only be changed to \"deactivated\"")
        }
        if let contact = update.contact { try Self.validateContacts(contact) }
        var updated = account
        if let contact = update.contact {
            updated = try await database.updateAccountContact(id: account.id, contact: contact) ?? updated
        }
        if update.status != nil {
            updated = try await database.deactivateAccount(id: account.id) ?? updated
            authority.record(.accountDeactivated(provisioner: account.provisioner, account: account.id, remote: request.endpoint.remote))
        }
        return try .json(accountObject(updated, request.endpoint), location: request.endpoint.accountURL(account.id))
    }

    public func accountOrders(_ request: ACMERequest) async throws -> ACMEReply {
        let account = try ownAccount(request)
        let ids = try await database.orderIDs(accountID: account.id)
        return try .json(ACMEOrderListObject(orders: ids.map(request.endpoint.orderURL)))
    }

    /// Key rollover (RFC 8555 §7.3.5): the inner JWS, signed by the new key, names the account and
    /// its current key.
    public func keyChange(_ request: ACMERequest) async throws -> ACMEReply {
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
        guard let payload = try? JSONDecoder().decode(KeyChangePayload.self, from: inner.payload) else {
            throw ACMEProblem(.malformed, "the inner payload must be {\"account\", \"oldKey\"}")
        }
        guard payload.account == request.endpoint.accountURL(account.id) else {
            throw ACMEProblem(.malformed, "the inner payload names another account")
        }
        guard (try? ACMEAccountKey(jwk: payload.oldKey))?.thumbprint == request.key.thumbprint else {
            throw ACMEProblem(.malformed, "oldKey is not the account's current key")
        }
        try await refuseRevokedKey(newKey)
        // A compare-and-swap from the key this request was signed with: of two rollovers signed
        // with the same key, only the first changes it.
        let changed: Bool
        do {
            changed = try await database.changeAccountKey(
                id: account.id, oldThumbprint: account.thumbprint, thumbprint: newKey.thumbprint, jwk: newKey.canonicalJSON)
        } catch ACMEDatabaseError.accountKeyInUse(let existing) {
            var reply = ACMEReply.problem(ACMEProblem(.malformed, "the new key already belongs to another account", status: 409))
            reply.location = request.endpoint.accountURL(existing)
            return reply
        }
        guard changed else {
            throw ACMEProblem(
                .unauthorized,
                "the account's key changed meanwhile (another key change, or the account was deactivated); nothing was changed: sign with the account's current key and try again")
        }
        authority.record(.accountKeyChanged(provisioner: account.provisioner, account: account.id, remote: request.endpoint.remote))
        var updated = account
        updated.jwk = newKey.canonicalJSON
        return try .json(accountObject(updated, request.endpoint), location: request.endpoint.accountURL(account.id))
    }
}
