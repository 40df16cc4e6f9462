import AutoSSLCore
import AutoSSLMetrics
import AutoSSLStore
import Foundation

/// The kinds of provisioner the CA knows. Each has one file in this directory.
public enum ProvisionerKind: String, Sendable, Equatable {
    /// A key pair whose private half is encrypted under a password; it signs one-time tokens.
    case jwk = "JWK"
    /// A certificate holder proving possession of a certificate this CA issued (mutual TLS or an
    /// `x5c` token); it renews and revokes that certificate only.
    case x5c = "X5C"
    /// An ACME directory (RFC 8555); names are proven by challenges, not by a token.
    case acme = "ACME"
}

/// What a provisioner hands the issuance pipeline once it has authorised a request: under which
/// name and policy the certificate is issued, and what the same durable transaction must record.
public struct IssuanceOptions: Sendable {
    /// Recorded with the certificate and in the audit line ("admin", "acme/NAME", "ca-server").
    public var provisioner: String
    /// The policy the names, key and lifetime must meet; nil only for the CA's own TLS certificate.
    public var policy: IssuancePolicy?
    /// The one-time token to mark as used in the issuance's transaction.
    public var token: TokenUse?
    /// Who asked, when it is not the network peer (an ACME account).
    public var requester: String?
    /// The ACME order the issuance completes, in the same transaction.
    public var completingOrder: String?

    public init(
        provisioner: String, policy: IssuancePolicy?, token: TokenUse? = nil, requester: String? = nil, completingOrder: String? = nil
    ) {
        self.provisioner = provisioner
        self.policy = policy
        self.token = token
        self.requester = requester
        self.completingOrder = completingOrder
    }
}

/// What `/sign` may issue once a provisioner accepted the credential.
public struct SignAuthorization: Sendable {
    /// The names the credential allows, in its order (the first becomes the subject CN).
    public var names: [SubjectName]
    public var options: IssuanceOptions
}

/// What a provisioner credential may revoke.
public struct RevokeAuthorization: Sendable {
    /// The serials (hex candidates) the credential names.
    public var serials: [String]
    public var revokedBy: String
    public var token: TokenUse
    public var provisioner: String
}

/// What every provisioner check needs from the authority: the time, the peer, which endpoint, and
/// the CA's identity (audiences, root fingerprint). Refusals go through `refuse`, which audits them.
public struct AuthorizationContext: Sendable {
    public var now: Date
    public var remote: String?
    /// The endpoint path the credential must be meant for ("/sign", "/renew", "/revoke").
    public var path: String
    let authority: Authority

    func refuse(
        _ kind: AuthorityError.Kind, _ message: String, provisioner: String? = nil, authFailure: Bool = true,
        failure: CAMetrics.AuthFailure? = nil
    ) -> AuthorityError {
        authority.refuse(kind, message, provisioner: provisioner, remote: remote, authFailure: authFailure, failure: failure)
    }
}

/// A provisioner: it authorises sign, renew and revoke requests and returns the options for
/// issuance. Requests a kind does not support are refused with a message saying which does.
public protocol Provisioner: Sendable {
    var name: String { get }
    var kind: ProvisionerKind { get }
    /// `/sign` with a one-time token (parsed, its algorithm checked, its `kid` naming this provisioner).
    func authorizeSign(token: JWT.Parsed, context: AuthorizationContext) throws -> SignAuthorization
    /// `/renew` of a certificate this provisioner authorised: under which policy it is issued again.
    func authorizeRenew(_ record: CertificateRecord, context: AuthorizationContext) throws -> IssuanceOptions
    /// `/revoke` with a one-time token.
    func authorizeRevoke(token: JWT.Parsed, context: AuthorizationContext) throws -> RevokeAuthorization
}

extension Provisioner {
    public func authorizeSign(token: JWT.Parsed, context: AuthorizationContext) throws -> SignAuthorization {
        throw context.refuse(.unauthorized, "provisioner \(name) (\(kind.rawValue)) does not sign token requests", provisioner: name)
    }

    public func authorizeRevoke(token: JWT.Parsed, context: AuthorizationContext) throws -> RevokeAuthorization {
        throw context.refuse(.unauthorized, "provisioner \(name) (\(kind.rawValue)) does not revoke with tokens", provisioner: name)
    }

    public func authorizeRenew(_ record: CertificateRecord, context: AuthorizationContext) throws -> IssuanceOptions {
        throw context.refuse(.unauthorized, "provisioner \(name) (\(kind.rawValue)) authorises no certificates to renew", provisioner: name)
    }
}
