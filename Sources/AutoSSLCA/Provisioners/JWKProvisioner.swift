import AutoSSLConfig
import AutoSSLCore
import AutoSSLStore
import Crypto
import Foundation

/// A password provisioner (step-ca's JWK type): a P-256 key pair whose private half is kept
/// encrypted under a password and handed to clients, who sign one-time tokens with it. A token
/// authorises exactly the names in its `sans` (for `/sign`) or the serial in its `sub` (for
/// `/revoke`), once, within five minutes.
public struct JWKProvisioner: Provisioner, Equatable {
    public let settings: ProvisionerSettings
    public let publicJWK: ECJWK
    public let publicKey: P256.Signing.PublicKey
    public let policy: IssuancePolicy
    /// The encrypted private key (compact JWE), served by `/provisioners`.
    public let encryptedKey: String
    public var name: String { settings.name }
    public var kind: ProvisionerKind { .jwk }
    /// The key id tokens name in their header (RFC 7638 thumbprint).
    public var keyID: String { publicJWK.kid ?? publicJWK.thumbprint }

    public init(settings: ProvisionerSettings, base: PolicySettings, encryptedKey: String) throws {
        let jwk = try JSONDecoder().decode(ECJWK.self, from: Data(settings.publicKey.utf8))
        do {
            policy = try IssuancePolicy(base.overlaid(by: settings.policy))
        } catch let error as AutoSSLError {
            throw AutoSSLError.general("the policy of provisioner \(settings.name) is invalid: \(error.message)")
        }
        self.settings = settings
        self.publicJWK = jwk
        self.publicKey = try jwk.publicKey()
        self.encryptedKey = encryptedKey
    }

    public static func == (lhs: JWKProvisioner, rhs: JWKProvisioner) -> Bool {
        lhs.settings == rhs.settings && lhs.encryptedKey == rhs.encryptedKey
    }

    public func authorizeSign(token: JWT.Parsed, context: AuthorizationContext) throws -> SignAuthorization {
        let claims = try verify(token, context: context)
        let names: [SubjectName]
        do {
            names = try claims.sans.map(SubjectName.init(parsing:))
        } catch {
            throw context.refuse(.unauthorized, "the token's sans are not valid names", provisioner: name)
        }
        return SignAuthorization(
            names: names, options: IssuanceOptions(provisioner: name, policy: policy, token: tokenUse(claims)))
    }

    public func authorizeRenew(_ record: CertificateRecord, context: AuthorizationContext) throws -> IssuanceOptions {
        IssuanceOptions(provisioner: record.provisioner, policy: policy)
    }

    public func authorizeRevoke(token: JWT.Parsed, context: AuthorizationContext) throws -> RevokeAuthorization {
        let claims = try verify(token, context: context)
        let serials: [String]
        do {
            serials = try SerialText.candidates(claims.sub)
        } catch {
            throw context.refuse(.unauthorized, "the token's subject is not a serial number", provisioner: name)
        }
        return RevokeAuthorization(serials: serials, revokedBy: "provisioner:" + name, token: tokenUse(claims), provisioner: name)
    }

    /// The checks of every provisioner token: signature, issuer, audience, time window, jti, root
    /// fingerprint. Uniqueness (jti) is enforced when the token's use is recorded, in the same
    /// durable transaction as what it authorises.
    func verify(_ parsed: JWT.Parsed, context: AuthorizationContext) throws -> ProvisionerTokenClaims {
        guard JWT.verifyES256(parsed, key: publicKey) else {
            throw context.refuse(.unauthorized, "the token's signature does not verify", provisioner: name, failure: .badSignature)
        }
        let claims: ProvisionerTokenClaims
        do {
            claims = try ProvisionerTokenClaims.decode(parsed.payload)
        } catch {
            throw context.refuse(.unauthorized, "the token's claims are incomplete (iss, aud, nbf, exp, jti are required)", provisioner: name)
        }
        guard claims.iss == name else {
            throw context.refuse(.unauthorized, "the token's issuer \"\(claims.iss)\" does not match provisioner \"\(name)\"", provisioner: name)
        }
        let authority = context.authority
        guard claims.aud.contains(where: { authority.isAcceptedAudience($0, path: context.path) }) else {
            throw context.refuse(
                .unauthorized, "the token's audience \(claims.aud.joined(separator: ", ")) is not this CA's \(context.path) endpoint",
                provisioner: name, failure: .wrongAudience)
        }
        if let refusal = authority.checkTokenWindow(
            nbf: claims.nbf, exp: claims.exp, now: context.now, maximumLifetime: Authority.maximumProvisionerTokenLifetime)
        {
            throw context.refuse(.unauthorized, refusal.message, provisioner: name, failure: .expiredToken)
        }
        guard !claims.jti.isEmpty, claims.jti.count <= 256 else {
            throw context.refuse(.unauthorized, "the token has no valid jti", provisioner: name)
        }
        guard claims.sha.lowercased() == authority.rootFingerprint else {
            throw context.refuse(.unauthorized, "the token's root fingerprint (sha) is not this CA's", provisioner: name)
        }
        return claims
    }

    func tokenUse(_ claims: ProvisionerTokenClaims) -> TokenUse {
        Authority.tokenUse(id: name + ":" + claims.jti, exp: claims.exp)
    }
}
