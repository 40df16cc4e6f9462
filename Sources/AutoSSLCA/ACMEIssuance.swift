import AutoSSLConfig
import AutoSSLCore
import AutoSSLStore
import Foundation
import X509

/// What the ACME front end asks of the authority: the same policy, durations, durable records and
/// audit trail as `/sign`, with the ACME account as the requester.
extension Authority {
    public func acmePolicy(_ provisioner: ACMEProvisionerSettings) throws -> IssuancePolicy {
        try acmeProvisioner(provisioner).policy
    }

    /// The loaded provisioner (its policy parsed once), or one built from settings it does not hold.
    func acmeProvisioner(_ settings: ACMEProvisionerSettings) throws -> ACMEProvisioner {
        if let loaded = provisioners.acme(named: settings.name), loaded.settings == settings { return loaded }
        return try ACMEProvisioner(settings: settings, base: self.settings.basePolicySettings)
    }

    /// Checks the dates a new order asks for by the rule its certificate will be issued under (the
    /// provisioner's durations, the intermediate's lifetime), so that an order the CA would refuse
    /// at finalize is refused before the client proves control of its names.
    public func checkACMEValidity(
        provisioner: ACMEProvisionerSettings, notBefore: Date?, notAfter: Date?, now: Date = Date()
    ) throws {
        guard notBefore != nil || notAfter != nil else { return }
        _ = try requestedValidity(
            notBefore: notBefore.map { Timestamp.rfc3339($0) }, notAfter: notAfter.map { Timestamp.rfc3339($0) },
            policy: try acmePolicy(provisioner), now: now, refuse: { AuthorityError($0, $1, about: .validity) })
    }

    /// Issues for a finalized order whose names were validated. `names` is the order's identifiers;
    /// the CSR must ask for exactly those (its CN may repeat one of them). The order moves from
    /// processing to valid in the transaction that records the certificate (with `orderID`).
    public func issueForACME(
        csr: VerifiedCSR, names: [SubjectName], provisioner: ACMEProvisionerSettings, accountID: String, orderID: String? = nil,
        notBefore: Date?, notAfter: Date?, remote: String?, now: Date = Date()
    ) async throws -> IssuedCertificate {
        try await counted(.issue, provisioner: ProvisionerLabel(ACMEProvisioner.labelPrefix + provisioner.name)) {
            let acme = try acmeProvisioner(provisioner)
            let issued = try await issue(
                IssuanceRequest(
                    csr: csr, names: names,
                    validity: .requested(notBefore: notBefore.map { Timestamp.rfc3339($0) }, notAfter: notAfter.map { Timestamp.rfc3339($0) }),
                    remote: remote),
                acme.authorizeOrder(accountID: accountID, orderID: orderID), now: now)
            if orderID != nil { metrics.acmeOrder(.valid, provisioner: ACMEProvisioner.labelPrefix + provisioner.name) }
            return issued
        }
    }

    /// Revokes a certificate for an ACME request (authorized by the ACME layer: the ordering
    /// account of `provisioner`, or the certificate's own key when `revokedBy` is "holder"). False
    /// when nothing changed: it was revoked already, and so was its key if the reason covers it
    /// (counted as refused). A certificate revoked as superseded and then for key compromise
    /// keeps its first record, but its key is cut off then (true).
    public func revokeForACME(
        serial: String, reasonCode: Int, revokedBy: String, provisioner: String, remote: String?, now: Date = Date()
    ) async throws -> Bool {
        let label = ProvisionerLabel(revokedBy == "holder" ? "holder" : ACMEProvisioner.labelPrefix + provisioner)
        return try await counted(.revoke, provisioner: label, outcome: { $0 ? .ok : .refused }) {
            !(try await recordRevocation(serial: serial, reasonCode: reasonCode, reason: "", revokedBy: revokedBy, remote: remote, now: now)).isEmpty
        }
    }

    /// The leaf and its chain, for the certificate download. Until an intermediate is rotated,
    /// the one intermediate is every leaf's issuer: the leaf is then served from its stored bytes,
    /// without parsing it and checking its signature (a P-256 verification per download).
    public func pemChain(serial: String) async throws -> String? {
        guard let record = try await store.certificate(serial: serial), let der = record.der else { return nil }
        let issuer = previousIntermediates.isEmpty ? intermediate : (issuer(of: try Certificate(derEncoded: der)) ?? intermediate)
        return PEM.encode(der, label: "CERTIFICATE") + (try issuer.pemString())
    }
}
