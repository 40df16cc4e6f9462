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

extension Authority {
    /// Default grace window after expiry within which renewal still works: 5 % of the lifetime.
    public static let defaultRenewalGraceFraction = 0.05

    /// The configured fraction when it is a number from 0 to 1 (config.yaml could say `.nan`), else the default.
    public var renewalGraceFraction: Double {
        guard let fraction = settings.renewalGraceFraction, fraction.isFinite, (0...1).contains(fraction) else {
            return Self.defaultRenewalGraceFraction
        }
        return fraction
    }

    /// Whether `leaf` was signed by this CA's current or an archived intermediate (its dates are not
    /// looked at: renewal applies the grace window itself).
    public func isIssuedByThisCA(_ leaf: Certificate) -> Bool {
        ([intermediate] + previousIntermediates).contains { issuer in
            leaf.issuer == issuer.subject && issuer.publicKey.isValidSignature(leaf.signature, for: leaf)
        }
    }

    /// Resolves a proof of possession to the presented certificate (and the token use to record).
    /// The certificate must have been signed by this CA's current or an archived intermediate; for a
    /// token that is checked before anything else the token says is read.
    func presentedCertificate(_ proof: PossessionProof, path: String, remote: String?, now: Date) throws
        -> (Certificate, TokenUse?)
    {
        switch proof {
        case .mutualTLS(let certificate):
            guard isIssuedByThisCA(certificate) else {
                throw refuse(.unauthorized, "the certificate was not issued by this CA", remote: remote, authFailure: true)
            }
            return (certificate, nil)
        case .x5cToken(let token):
            let verified: X5CToken.Verified
            do {
                verified = try X5CToken.verifySignature(token)
            } catch let error as AutoSSLError {
                throw refuse(.unauthorized, error.message, remote: remote, authFailure: true)
            }
            guard let leaf = verified.chain.first, isIssuedByThisCA(leaf) else {
                throw refuse(.unauthorized, "the token's certificate was not issued by this CA", remote: remote, authFailure: true)
            }
            let claims: CertificateTokenClaims
            do {
                claims = try JSONDecoder().decode(CertificateTokenClaims.self, from: verified.payload)
            } catch {
                throw refuse(.unauthorized, "the token's claims are incomplete or out of range (aud, exp, jti are required; times are seconds since 1970)", remote: remote, authFailure: true)
            }
            guard claims.aud.contains(where: { isAcceptedAudience($0, path: path) }) else {
                throw refuse(.unauthorized, "the token's audience \(claims.aud.joined(separator: ", ")) is not this CA's \(path) endpoint", remote: remote, authFailure: true)
            }
            let expectedSubject = leaf.commonName ?? leaf.subjectNames.first?.description ?? ""
            guard claims.sub == expectedSubject else {
                throw refuse(.unauthorized, "the token's subject \"\(claims.sub)\" is not the certificate's (\(expectedSubject))", remote: remote, authFailure: true)
            }
            if let refusal = checkTokenWindow(nbf: claims.nbf, exp: claims.exp, now: now) {
                throw refuse(.unauthorized, refusal.message, remote: remote, authFailure: true)
            }
            guard !claims.jti.isEmpty, claims.jti.count <= 256 else {
                throw refuse(.unauthorized, "the token has no valid jti", remote: remote, authFailure: true)
            }
            return (leaf, Self.tokenUse(id: "x5c:" + leaf.serialNumber.hexString + ":" + claims.jti, exp: claims.exp))
        }
    }

    /// Renews the presented certificate: same names and key, same lifetime (capped by policy).
    public func renew(_ proof: PossessionProof, remote: String?, now: Date = Date()) async throws -> IssuedCertificate {
        let (leaf, tokenUse) = try presentedCertificate(proof, path: "/renew", remote: remote, now: now)
        let serial = leaf.serialNumber.hexString
        func refuseRenewal(_ kind: AuthorityError.Kind, _ message: String) -> AuthorityError {
            audit.record(.init("renewal.refused", time: now, serial: serial, sans: leaf.subjectNames.map(\.description), remote: remote, reason: message))
            return AuthorityError(kind, message)
        }
        let lifetime = leaf.notValidAfter.timeIntervalSince(leaf.notValidBefore)
        if now > leaf.notValidAfter {
            let grace = lifetime * renewalGraceFraction
            guard now.timeIntervalSince(leaf.notValidAfter) <= grace else {
                throw refuseRenewal(
                    .forbidden,
                    "certificate \(serial) expired at \(AuditLog.timestamp(leaf.notValidAfter)), beyond the renewal grace window of \(CertificateDuration(seconds: Int64(grace.rounded(.down)))); enroll again with a provisioner token")
            }
        }
        guard let record = try await store.certificate(serial: serial), record.status == .issued else {
            throw refuseRenewal(.unauthorized, "this CA has no record of certificate \(serial)")
        }
        if let revocation = record.revocation {
            throw refuseRenewal(.forbidden, "certificate \(serial) was revoked (\(revocation.reason.isEmpty ? "reason code \(revocation.reasonCode)" : revocation.reason)); revoked certificates are never renewed")
        }
        // Renewal keeps the key, so a revocation cuts off the key: an earlier or later certificate
        // with the same key is not renewed either.
        if try await store.isKeyRevoked(publicKeyHash: Fingerprint.publicKeyHash(of: leaf)) {
            throw refuseRenewal(
                .forbidden,
                "another certificate with the same key was revoked, so this key is no longer trusted; enroll again with a new key (`auto-ssl server enroll`)")
        }
        let names = leaf.subjectNames
        guard !names.isEmpty, let keyType = KeyAlgorithm(publicKey: leaf.publicKey) else {
            throw refuseRenewal(.badRequest, "the certificate has no names or an unsupported key")
        }
        let policy = provisioners.first { $0.settings.name == record.provisioner }?.policy
            ?? (try? IssuancePolicy(settings.basePolicySettings))
        if let policy {
            do {
                try policy.check(names: names)
                try policy.check(keyType: keyType)
            } catch {
                throw refuseRenewal(.forbidden, "the certificate no longer meets policy: \(error.message)")
            }
        }
        // Same lifetime as the original (its span includes the backdating), capped by the policy maximum.
        var span = lifetime
        if let maximum = policy?.maximumDuration, span > TimeInterval(maximum.seconds) + Self.clockSkew {
            span = TimeInterval(maximum.seconds) + Self.clockSkew
        }
        let notBefore = now.addingTimeInterval(-Self.clockSkew)
        let notAfter = notBefore.addingTimeInterval(span)
        guard notAfter <= intermediate.notValidAfter else {
            throw refuseRenewal(
                .forbidden,
                "the renewed certificate would outlive the intermediate CA; create a new intermediate with `auto-ssl ca rotate-intermediate` on the CA host")
        }
        do {
            return try await issue(
                names: names, publicKey: leaf.publicKey, keyType: keyType, notBefore: notBefore, notAfter: notAfter,
                provisioner: record.provisioner, token: tokenUse, renewedFrom: serial, remote: remote, now: now,
                event: "certificate.renewed")
        } catch let error as AuthorityError {
            throw refuseRenewal(error.kind, error.message)
        }
    }
}
