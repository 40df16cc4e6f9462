import AutoSSLCA
import AutoSSLConfig
import AutoSSLCore
import AutoSSLStore
import Foundation
import Synchronization

/// Authorizations and challenges (RFC 8555 §7.5): reading and deactivating authorizations,
/// starting a validation, and the validation itself with its durable attempt count.
extension ACMEAuthority {
    func challengeObject(_ challenge: ACMEChallengeRecord, _ endpoint: ACMEEndpoint) -> ACMEChallengeObject {
        ACMEChallengeObject(
            type: challenge.type, url: endpoint.challengeURL(challenge.id), status: challenge.status, token: challenge.token,
            validated: challenge.validatedAt.map { Timestamp.rfc3339($0) },
            error: challenge.status == .valid ? nil : ProblemDocument(stored: challenge.error))
    }

    /// A valid authorization shows only the challenge that validated it.
    func authorizationObject(_ authorization: ACMEAuthorizationRecord, _ endpoint: ACMEEndpoint) -> ACMEAuthorizationObject {
        let challenges = authorization.status == .valid ? authorization.challenges.filter { $0.status == .valid } : authorization.challenges
        return ACMEAuthorizationObject(
            identifier: authorization.identifier, status: authorization.status, expires: Timestamp.rfc3339(authorization.expires),
            challenges: challenges.map { challengeObject($0, endpoint) }, wildcard: authorization.wildcard ? true : nil)
    }

    /// POST to an authorization: read it, or deactivate it (`{"status": "deactivated"}`).
    public func authorization(_ request: ACMERequest, now: Date = Date()) async throws -> ACMEReply {
        let account = try request.requireAccount()
        guard let id = request.endpoint.id, let stored = try await database.authorization(id: id) else {
            throw ACMEProblem(.malformed, "no such authorization", status: 404)
        }
        guard stored.accountID == account.id else { throw ACMEProblem(.unauthorized, "the authorization belongs to another account") }
        var authorization = ACMEStateRules.effective(stored, now: now)
        if !request.isPostAsGet {
            guard try request.payload(StatusPayload.self).status == ACMEAuthorizationStatus.deactivated.rawValue else {
                throw ACMEProblem(.malformed, "an authorization can only be deactivated")
            }
            // Its order, if pending or ready, becomes invalid in the same transaction (RFC 8555
            // §7.1.6): it is never finalized for an identifier the client gave up.
            let orderError = ProblemDocument(ACMEProblem(
                .unauthorized, "the authorization for \(stored.identifier.value) was deactivated; place a new order")).stored
            if authorization.status == .pending || authorization.status == .valid,
               try await database.deactivateAuthorization(id: id, orderError: orderError) {
                authorization.status = .deactivated
            } else if let fresh = try await database.authorization(id: id) {
                authorization = ACMEStateRules.effective(fresh, now: now)
            }
            return try .json(authorizationObject(authorization, request.endpoint))
        }
        let pending = authorization.status == .pending && authorization.challenges.contains { $0.status == .processing }
        return try ACMEReply.json(authorizationObject(authorization, request.endpoint)).retrying(when: pending)
    }

    /// POST to a challenge: `{}` asks for validation (once; it runs in the background), POST-as-GET reads it.
    public func challenge(_ request: ACMERequest, now: Date = Date()) async throws -> ACMEReply {
        let account = try request.requireAccount()
        guard let id = request.endpoint.id, let (found, authorization) = try await database.challenge(id: id) else {
            throw ACMEProblem(.malformed, "no such challenge", status: 404)
        }
        var challenge = found
        guard authorization.accountID == account.id else { throw ACMEProblem(.unauthorized, "the challenge belongs to another account") }
        if !request.isPostAsGet, challenge.status == .pending {
            if authorization.expires < now { throw ACMEProblem(.malformed, "the authorization expired") }
            // A deactivated (or otherwise settled) authorization's challenges cannot be answered any more.
            guard authorization.status == .pending else {
                throw ACMEProblem(
                    .malformed,
                    "the authorization is \(authorization.status.rawValue): its challenges can no longer be answered; place a new order")
            }
            // Validations wait for one of a few slots: their number is bounded, so that clients
            // asking faster than validation goes cannot pile up work without end. The challenge
            // stays pending, and the client may ask again.
            // The place is taken before the validation is recorded, so that requests arriving
            // together cannot all pass the check; it is given back unless a validation starts.
            switch validationsInProgress.take(account: account.id) {
            case .full(let limit)?:
                throw ACMEProblem(.rateLimited, "this CA is validating \(limit) challenges already; ask again in a few seconds")
            case .accountFull(let perAccount)?:
                throw ACMEProblem(
                    .rateLimited,
                    "this account has \(perAccount) validations in progress already; ask again once some of them have ended")
            case nil:
                break
            }
            var started = false
            defer { if !started { validationsInProgress.release(account: account.id) } }
            if try await database.startValidation(challengeID: id) {
                challenge.status = .processing
                let remote = request.endpoint.remote
                started = true
                let validation = Task {
                    defer { self.validationsInProgress.release(account: account.id) }
                    return await self.validate(challengeID: id, remote: remote, firstAttemptCounted: true)
                }
                // A validation that ends at once (the usual first attempt) is answered with its
                // outcome, so the client's first poll finds it; one that takes longer, or retries,
                // goes on in the background and the answer says processing.
                if let outcome = await Self.value(of: validation, within: challengeAnswerWait) ?? nil {
                    challenge.status = outcome.challengeStatus
                    challenge.validatedAt = outcome.validatedAt
                    challenge.error = outcome.error
                }
            }
        }
        var reply = try ACMEReply.json(challengeObject(challenge, request.endpoint)).retrying(when: challenge.status == .processing)
        reply.links.append("<\(request.endpoint.authorizationURL(authorization.id))>;rel=\"up\"")
        return reply
    }

    /// How long a challenge's POST waits, by default, for its validation to end before answering
    /// `processing`.
    public static let challengeAnswerWait: TimeInterval = 1

    /// The task's value if it is there within `seconds`, else nil (the task goes on).
    static func value<T: Sendable>(of task: Task<T, Never>, within seconds: TimeInterval) async -> T? {
        let waiting = FirstAnswer<T?>()
        return await withCheckedContinuation { continuation in
            waiting.set(continuation)
            let timer = Task {
                try? await Task.sleep(nanoseconds: UInt64(seconds * 1_000_000_000))
                waiting.resume(returning: nil)
            }
            Task {
                let value = await task.value
                timer.cancel()
                waiting.resume(returning: value)
            }
        }
    }

    /// The addresses validation may connect to for this provisioner: its `validation_allow`
    /// ranges open what is refused by default, which includes this machine's own addresses.
    public func addressPolicy(for provisioner: ACMEProvisionerSettings) -> ValidationAddressPolicy {
        let allowed = (provisioner.validationAllow ?? []).compactMap { try? IPRange(parsing: $0) }
        let configured = authority.settings.addresses.compactMap { IPAddress($0.host) }
        return ValidationAddressPolicy(allowed: allowed, ownAddresses: Set(configured + ownMachineAddresses))
    }

    func validator(for provisioner: ACMEProvisionerSettings) -> ChallengeValidator {
        ChallengeValidator(
            http01Port: provisioner.http01Port ?? 80, tlsALPN01Port: provisioner.tlsALPN01Port ?? 443, resolver: provisioner.resolver,
            addressPolicy: addressPolicy(for: provisioner), network: network, timeout: attemptTimeout)
    }

    /// Tries the challenge a few times (the client's responder may need a moment), then records the
    /// result. Each attempt is counted in the database before it starts, so however often the CA
    /// restarts, a challenge gets at most `attemptDelays.count` attempts. `firstAttemptCounted`:
    /// the write that started the validation (`startValidation`) counted the first attempt already.
    /// Returns the outcome it wrote (nil when it wrote none: the challenge was no longer in processing).
    @discardableResult
    public func validate(challengeID: String, remote: String?, firstAttemptCounted: Bool = false) async -> ACMEValidationOutcome? {
        guard let (challenge, authorization) = try? await database.challenge(id: challengeID),
              let account = try? await database.account(id: authorization.accountID),
              let provisioner = provisioners.first(where: { $0.name == account.provisioner }),
              let identifier = try? ACMEIdentifierValue(authorization.identifier),
              let key = try? key(of: account) else {
            if let (challenge, authorization) = try? await database.challenge(id: challengeID) {
                let outcome = ACMEValidationOutcome(
                    challengeID: challenge.id, challengeStatus: .invalid, validatedAt: nil, error: nil, authorizationID: authorization.id,
                    authorizationStatus: .invalid, orderStatus: .invalid)
                if (try? await database.recordValidationOutcome(outcome)) == true { return outcome }
            }
            return nil
        }
        let keyAuthorization = ACMEChallengeValues.keyAuthorization(token: challenge.token, thumbprint: key.thumbprint)
        let validator = validator(for: provisioner)
        var failure: ACMEProblem?
        var attempted = false
        for (index, delay) in attemptDelays.enumerated() {
            if delay > 0 { try? await Task.sleep(nanoseconds: UInt64(delay * 1_000_000_000)) }
            if authorization.expires < Date() {
                failure = ACMEProblem(.unauthorized, "the authorization expired before it was validated")
                break
            }
            let counted: Bool
            if index == 0 && firstAttemptCounted {
                counted = true
            } else {
                counted = (try? await database.beginValidationAttempt(challengeID: challengeID, maximum: attemptDelays.count)) == true
            }
            guard counted else {
                if !attempted {
                    failure = ACMEProblem(
                        .connection, "validation gave up: its \(attemptDelays.count) attempts were used up (counted across restarts)")
                }
                break
            }
            attempted = true
            // Each attempt holds one of a bounded number of slots.
            await validationSlots.acquire(account: account.id)
            failure = await validator.validate(type: challenge.type, identifier: identifier, token: challenge.token, keyAuthorization: keyAuthorization)
            await validationSlots.release(account: account.id)
            guard let failure else { break }
            try? await database.noteValidationAttempt(challengeID: challengeID, error: ProblemDocument(failure).stored)
        }
        let outcome = ACMEStateRules.outcome(
            challengeID: challengeID, authorization: authorization, failure: failure.map(ProblemDocument.init), now: Date())
        let written = (try? await database.recordValidationOutcome(outcome)) == true
        authority.record(.challenge(
            provisioner: provisioner.name, account: account.id, identifier: identifier.value, type: challenge.type, failure: failure?.detail,
            remote: remote))
        return written ? outcome : nil
    }
}

/// A continuation resumed by whichever answer comes first; later ones are dropped.
final class FirstAnswer<T: Sendable>: Sendable {
    private let continuation = Mutex<CheckedContinuation<T, Never>?>(nil)

    func set(_ continuation: CheckedContinuation<T, Never>) {
        self.continuation.withLock { $0 = continuation }
    }

    func resume(returning value: T) {
        continuation.withLock { $0.take() }?.resume(returning: value)
    }
}
