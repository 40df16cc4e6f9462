import AutoSSLCore
import AutoSSLStore
import Foundation

/// The state rules of RFC 8555 §7.1.6 as pure functions over stored records: what a reader sees
/// is derived here, and the writes that make a transition durable are explicit, conditional
/// updates the authority asks the database for (never a side effect of reading).
public enum ACMEStateRules {
    static let expiredOrder = ProblemDocument(type: ACMEProblem(.malformed, "").type, detail: "the order expired", status: nil)

    /// An authorization as it stands at `now`: pending or valid past its expiry is expired.
    public static func effective(_ authorization: ACMEAuthorizationRecord, now: Date) -> ACMEAuthorizationRecord {
        var copy = authorization
        if authorization.status == .pending || authorization.status == .valid, authorization.expires < now {
            copy.status = .expired
        }
        return copy
    }

    /// An order as it stands at `now`, given its authorizations (as stored): pending or ready past
    /// its expiry is invalid; pending becomes invalid when an authorization failed, was deactivated
    /// or expired, and ready when every authorization is valid.
    public static func effective(_ order: ACMEOrderRecord, authorizations: [ACMEAuthorizationRecord], now: Date) -> ACMEOrderRecord {
        var copy = order
        if order.status == .pending || order.status == .ready, order.expires < now {
            copy.status = .invalid
            if copy.error == nil { copy.error = expiredOrder.stored }
            return copy
        }
        guard order.status == .pending else { return copy }
        let statuses = authorizations.map(\.status)
        if statuses.contains(where: { $0 != .valid && $0 != .pending }) {
            copy.status = .invalid
        } else if !statuses.isEmpty, statuses.allSatisfy({ $0 == .valid }) {
            copy.status = .ready
        }
        return copy
    }

    /// Whether an order's authorizations must be read to know its status.
    static func needsAuthorizations(_ order: ACMEOrderRecord, now: Date) -> Bool {
        order.status == .pending && order.expires >= now
    }

    /// What one validation's result changes: the challenge, its authorization, and the order (invalid
    /// when the challenge failed; ready when this was the last authorization it waited for, which
    /// the database decides in the same transaction: see `ACMEValidationOutcome.orderStatus`).
    public static func outcome(
        challengeID: String, authorization: ACMEAuthorizationRecord, failure: ProblemDocument?, now: Date
    ) -> ACMEValidationOutcome {
        guard let failure else {
            return ACMEValidationOutcome(
                challengeID: challengeID, challengeStatus: .valid, validatedAt: now, error: nil, authorizationID: authorization.id,
                authorizationStatus: .valid, orderStatus: .ready)
        }
        return ACMEValidationOutcome(
            challengeID: challengeID, challengeStatus: .invalid, validatedAt: nil, error: failure.stored, authorizationID: authorization.id,
            authorizationStatus: .invalid, orderStatus: .invalid)
    }

    /// The challenge types a provisioner offers for an identifier: no dns-01 for an IP address, only
    /// dns-01 for a wildcard (only control of the zone proves one, RFC 8555 §7.1.3).
    public static func challengeTypes(for value: ACMEIdentifierValue, offered: [String]) -> [String] {
        let offered = ["http-01", "dns-01", "tls-alpn-01"].filter(offered.contains)
        if case .ip = value { return offered.filter { $0 != "dns-01" } }
        if value.isWildcard { return offered.filter { $0 == "dns-01" } }
        return offered
    }
}
