import AutoSSLCore
import AutoSSLStore
import Foundation
import X509

extension Authority {
    /// Default grace window after expiry within which renewal still works: 5 % of the lifetime.
    public static let defaultRenewalGraceFraction = 0.05
    /// The widest window the security model allows: a certificate expired for longer than 5 % of its
    /// lifetime is never renewed, whatever config.yaml says.
    public static let maximumRenewalGraceFraction = 0.05

    /// Whether `fraction` may be configured: a number from 0 to the maximum (config.yaml could say `.nan`).
    public static func isAllowedRenewalGraceFraction(_ fraction: Double) -> Bool {
        fraction.isFinite && (0...maximumRenewalGraceFraction).contains(fraction)
    }

    /// Refuses a configured fraction outside 0 to 0.05 (`ca serve` and every command that loads the CA).
    public static func checkRenewalGraceFraction(_ fraction: Double?) throws {
        guard let fraction, !isAllowedRenewalGraceFraction(fraction) else { return }
        throw AutoSSLError.invalidArgument(
            "renewal_grace_fraction in config.yaml is \(fraction); it must be from 0 to \(maximumRenewalGraceFraction)"
                + " (a certificate expired for longer than 5 % of its lifetime must enroll again)",
            hint: "set it to 0.05 or less (0 turns renewal after expiry off), or remove it for the default of 0.05")
    }

    /// The configured fraction when it is allowed, else the default (a shared setting from another
    /// replica is not checked by this machine's loader).
    public var renewalGraceFraction: Double {
        guard let fraction = settings.renewalGraceFraction, Self.isAllowedRenewalGraceFraction(fraction) else {
            return Self.defaultRenewalGraceFraction
        }
        return fraction
    }

    /// Whether `leaf` was signed by this CA's current or an archived intermediate (its dates are not
    /// looked at: renewal applies the grace window itself).
    public func isIssuedByThisCA(_ leaf: Certificate) -> Bool {
        issuer(of: leaf) != nil
    }

    /// The current or archived intermediate that signed `leaf` (by its signature: every
    /// intermediate of a CA has the same subject), if any.
    func issuer(of leaf: Certificate) -> Certificate? {
        ([intermediate] + previousIntermediates).first { issuer in
            leaf.issuer == issuer.subject && issuer.publicKey.isValidSignature(leaf.signature, for: leaf)
        }
    }

    /// Whether a certificate presented as proof of possession is the very one this CA recorded
    /// under its serial. A signature by one of this CA's intermediates is not enough: a leaked
    /// (archived) intermediate key could sign a certificate with a recorded serial and other names
    /// or key. Records from before the certificate's bytes were kept compare by names.
    static func isRecorded(_ leaf: Certificate, as record: CertificateRecord) throws -> Bool {
        if let der = record.der { return try leaf.derBytes() == der }
        return Set(leaf.subjectNames.map(\.description)) == Set(record.names)
    }

    /// The record of a certificate issued by the same intermediate before `ca import` brought the CA
    /// here (step-ca kept its records in its own database), which this CA has no row for: renewed
    /// under the CA's policy, and revocable by its holder (the row is then made from it).
    ///
    /// Only within what the imported CA could have issued: signed by an intermediate that existed
    /// before the import (not one made by `ca rotate-intermediate` since, whose key would otherwise
    /// vouch for backdated certificates), and expiring within the longest lifetime (30 days) after
    /// the import, so the rule ends by itself.
    func importedRecord(of leaf: Certificate) -> CertificateRecord? {
        guard let imported = settings.imported, leaf.notValidBefore < imported.importedAt,
              leaf.notValidAfter <= imported.importedAt.addingTimeInterval(TimeInterval(CAInitOptions.durationCeiling.seconds)),
              let issuer = issuer(of: leaf), issuer.notValidBefore < imported.importedAt, let der = try? leaf.derBytes()
        else { return nil }
        return CertificateRecord(
            serial: leaf.serialNumber.hexString, status: .issued, commonName: leaf.subjectNames.first?.description ?? "",
            names: leaf.subjectNames.map(\.description), notBefore: leaf.notValidBefore, notAfter: leaf.notValidAfter,
            keyType: KeyAlgorithm(publicKey: leaf.publicKey)?.rawValue ?? "", provisioner: imported.source, requester: nil,
            renewedFrom: nil, der: der, createdAt: imported.importedAt)
    }

    /// Renews the presented certificate: same names and key, same lifetime (capped by policy).
    public func renew(_ proof: PossessionProof, remote: String?, now: Date = Date()) async throws -> IssuedCertificate {
        let label = ProvisionerLabel()
        return try await counted(.renew, provisioner: label) {
            try await renew(proof, remote: remote, label: label, now: now)
        }
    }

    private func renew(_ proof: PossessionProof, remote: String?, label: ProvisionerLabel, now: Date) async throws -> IssuedCertificate {
        let (leaf, tokenUse) = try provisioners.x5c.authorize(proof, context: context(path: "/renew", remote: remote, now: now))
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
        let record: CertificateRecord
        if let found = try await store.certificate(serial: serial) {
            guard found.status == .issued else { throw refuseRenewal(.unauthorized, "this CA has no record of certificate \(serial)") }
            guard try Self.isRecorded(leaf, as: found) else {
                throw refuseRenewal(.unauthorized, "certificate \(serial) is not the certificate this CA recorded under that serial")
            }
            record = found
        } else if let imported = importedRecord(of: leaf) {
            // Recorded now, so that a later revocation of its renewal finds it by its key.
            do {
                try await store.recordIssuance(
                    imported, token: nil, completingOrder: nil, refusingRevokedKey: Fingerprint.publicKeyHash(of: leaf))
                record = imported
            } catch StoreError.serialAlreadyExists {
                // Recorded by a concurrent request in between: as that request left it.
                guard let found = try await store.certificate(serial: serial), found.status == .issued else {
                    throw refuseRenewal(.unauthorized, "this CA has no record of certificate \(serial)")
                }
                record = found
            } catch StoreError.keyRevoked {
                throw refuseRenewal(.revokedKey, RenewalRefusal.revokedKey)
            }
        } else {
            throw refuseRenewal(.unauthorized, "this CA has no record of certificate \(serial)")
        }
        label.name = record.provisioner
        if let revocation = record.revocation {
            // The phrase first: clients keep only the start of a message, and the reason is free text.
            let reason = revocation.reason.isEmpty ? "reason code \(revocation.reasonCode)" : String(revocation.reason.prefix(100))
            throw refuseRenewal(.forbidden, "\(RenewalRefusal.revokedCertificate): certificate \(serial) was revoked (\(reason))")
        }
        let names = leaf.subjectNames
        guard !names.isEmpty, let keyType = KeyAlgorithm(publicKey: leaf.publicKey) else {
            throw refuseRenewal(.badRequest, "the certificate has no names or an unsupported key")
        }
        // The provisioner that authorised the original decides again. A removed provisioner renews
        // nothing (as in step-ca): removing it ends what it issued within one lifetime. Certificates
        // from before `ca import` (labelled with the import's source) renew under the CA's policy.
        var options: IssuanceOptions
        if let issuer = provisioners.issuer(of: record.provisioner) {
            options = try issuer.authorizeRenew(record, context: context(path: "/renew", remote: remote, now: now))
        } else if let imported = settings.imported, record.provisioner == imported.source {
            options = IssuanceOptions(provisioner: record.provisioner, policy: try? IssuancePolicy(settings.basePolicySettings))
        } else {
            throw refuseRenewal(
                .forbidden,
                "certificate \(serial) was issued through provisioner \"\(record.provisioner)\", which this CA no longer has; certificates of a removed provisioner are not renewed. Enroll again with a current provisioner (`auto-ssl server enroll`)")
        }
        options.token = tokenUse
        return try await issue(
            IssuanceRequest(
                names: names, publicKey: leaf.publicKey, keyType: keyType, validity: .sameLifetime(lifetime), purpose: .renew(from: serial),
                remote: remote),
            options, now: now)
    }
}
