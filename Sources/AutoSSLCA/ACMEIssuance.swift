import AutoSSLCore
import AutoSSLStore
import Foundation
import X509

/// What the ACME front end asks of the authority: the same policy, durations, durable records and
/// audit trail as `/sign`, with the ACME account as the requester.
extension Authority {
    public func acmePolicy(_ provisioner: ACMEProvisionerSettings) throws -> IssuancePolicy {
        try IssuancePolicy(settings.basePolicySettings.overlaid(by: provisioner.policy))
    }

    /// Issues for a finalized order whose names were validated. `names` is the order's identifiers;
    /// the CSR must ask for exactly those (its CN may repeat one of them).
    public func issueForACME(
        csr: VerifiedCSR, names: [SubjectName], provisioner: ACMEProvisionerSettings, accountID: String,
        notBefore: Date?, notAfter: Date?, remote: String?, now: Date = Date()
    ) async throws -> IssuedCertificate {
        let policy = try acmePolicy(provisioner)
        let label = "acme/" + provisioner.name
        let (start, end) = try validity(
            notBefore: notBefore.map { Timestamp.rfc3339($0) }, notAfter: notAfter.map { Timestamp.rfc3339($0) }, policy: policy,
            now: now, provisioner: label, remote: remote)
        do {
            try policy.check(names: names)
            try policy.check(keyType: csr.keyAlgorithm)
        } catch {
            throw refuse(.forbidden, error.message, provisioner: label, remote: remote)
        }
        return try await issue(
            names: names, publicKey: csr.publicKey, keyType: csr.keyAlgorithm, notBefore: start, notAfter: end,
            provisioner: label, token: nil, renewedFrom: nil, remote: remote, now: now, requester: "acme-account:" + accountID,
            subjectKeyIdentifier: csr.subjectKeyIdentifier, subjectPublicKeyInfo: csr.subjectPublicKeyInfo)
    }

    /// Revokes a certificate on behalf of an ACME client that proved its right to (the ordering
    /// account, or the certificate's own key). Returns false when it was already revoked.
    public func revokeForACME(serial: String, reasonCode: Int, revokedBy: String, remote: String?, now: Date = Date()) async throws -> Bool {
        if let record = try await store.certificate(serial: serial), record.revocation != nil { return false }
        try await recordRevocation(serial: serial, reasonCode: reasonCode, reason: "", revokedBy: revokedBy, remote: remote, now: now)
        return true
    }

    /// The leaf and its chain, for the certificate download.
    public func pemChain(serial: String) async throws -> String? {
        guard let record = try await store.certificate(serial: serial), let der = record.der else { return nil }
        let leaf = try Certificate(derEncoded: der)
        let issuer = ([intermediate] + previousIntermediates).first { $0.subject == leaf.issuer } ?? intermediate
        return try leaf.pemString() + issuer.pemString()
    }
}
