import AutoSSLCore
import AutoSSLStore
import Foundation
import X509

/// How a holder proves it has the certificate: over mutual TLS, or with a token signed by the
/// certificate's key carrying the chain in `x5c` (for proxies that terminate TLS).
public enum PossessionProof: Sendable {
    case mutualTLS(Certificate)
    case x5cToken(String)
}

/// The certificate holders' provisioner (step-ca's X5C, built in): whoever proves possession of a
/// certificate this CA issued may renew or revoke that certificate, and nothing else. Renewal keeps
/// the policy of the provisioner that authorised the original.
public struct X5CProvisioner: Provisioner, Equatable {
    public var name: String { "x5c" }
    public var kind: ProvisionerKind { .x5c }
    public init() {}

    /// Resolves a proof of possession to the presented certificate (and the token use to record).
    /// The certificate must have been signed by this CA's current or an archived intermediate; for a
    /// token that is checked before anything else the token says is read.
    public func authorize(_ proof: PossessionProof, context: AuthorizationContext) throws -> (Certificate, TokenUse?) {
        let authority = context.authority
        switch proof {
        case .mutualTLS(let certificate):
            guard authority.isIssuedByThisCA(certificate) else {
                throw context.refuse(.unauthorized, "the certificate was not issued by this CA", failure: .certificate)
            }
            return (certificate, nil)
        case .x5cToken(let token):
            let verified: X5CToken.Verified
            do {
                verified = try X5CToken.verifySignature(token)
            } catch let error as AutoSSLError {
                throw context.refuse(.unauthorized, error.message, failure: .malformedToken)
            }
            guard let leaf = verified.chain.first, authority.isIssuedByThisCA(leaf) else {
                throw context.refuse(.unauthorized, "the token's certificate was not issued by this CA", failure: .certificate)
            }
            let claims: CertificateTokenClaims
            do {
                claims = try JSONDecoder().decode(CertificateTokenClaims.self, from: verified.payload)
            } catch {
                throw context.refuse(
                    .unauthorized,
                    "the token's claims are incomplete or out of range (aud, exp, jti are required; times are seconds since 1970)")
            }
            guard claims.aud.contains(where: { authority.isAcceptedAudience($0, path: context.path) }) else {
                throw context.refuse(
                    .unauthorized, "the token's audience \(claims.aud.joined(separator: ", ")) is not this CA's \(context.path) endpoint", failure: .wrongAudience)
            }
            let expectedSubject = leaf.commonName ?? leaf.subjectNames.first?.description ?? ""
            guard claims.sub == expectedSubject else {
                throw context.refuse(.unauthorized, "the token's subject \"\(claims.sub)\" is not the certificate's (\(expectedSubject))")
            }
            if let refusal = authority.checkTokenWindow(nbf: claims.nbf, exp: claims.exp, now: context.now) {
                throw context.refuse(.unauthorized, refusal.message, failure: .expiredToken)
            }
            guard !claims.jti.isEmpty, claims.jti.count <= 256 else {
                throw context.refuse(.unauthorized, "the token has no valid jti")
            }
            return (leaf, Authority.tokenUse(id: "x5c:" + leaf.serialNumber.hexString + ":" + claims.jti, exp: claims.exp))
        }
    }

    /// Whether a JWT's header carries `x5c` (a certificate holder's token) rather than a provisioner `kid`.
    public static func carriesCertificateChain(_ token: String) -> Bool {
        guard let header = token.split(separator: ".").first, let data = Base64URL.decode(header),
              let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else { return false }
        return object["x5c"] != nil
    }
}
