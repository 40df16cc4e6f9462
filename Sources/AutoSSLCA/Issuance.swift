import AutoSSLCore
import AutoSSLMetrics
import AutoSSLStore
import Foundation
import X509

/// One certificate to issue, whatever asked for it: `/sign`, `/renew`, an ACME order, or the CA's
/// own TLS listener. The provisioner that authorised it supplies the `IssuanceOptions`.
public struct IssuanceRequest: Sendable {
    /// How the certificate's validity is chosen.
    public enum Validity: Sendable {
        /// The requester's notBefore/notAfter (RFC 3339 times or durations from now), else the
        /// policy's default lifetime from now.
        case requested(notBefore: String?, notAfter: String?)
        /// A renewal: the original's lifetime again (capped by the policy's maximum), from now.
        case sameLifetime(TimeInterval)
        /// The CA's own certificate: this long from now, cut at the intermediate's expiry.
        case upTo(TimeInterval)
    }

    /// Why the certificate is issued; it names the audit event and what a refusal is audited as.
    public enum Purpose: Sendable, Equatable {
        case issue
        case renew(from: String)
        case serverCertificate
    }

    /// In order: the first becomes the subject CN.
    public var names: [SubjectName]
    public var publicKey: Certificate.PublicKey
    public var keyType: KeyAlgorithm
    public var validity: Validity
    public var purpose: Purpose
    public var remote: String?
    /// From the CSR when there is one: copied into the certificate byte for byte.
    public var subjectKeyIdentifier: ArraySlice<UInt8>?
    public var subjectPublicKeyInfo: ArraySlice<UInt8>?

    public init(
        names: [SubjectName], publicKey: Certificate.PublicKey, keyType: KeyAlgorithm, validity: Validity, purpose: Purpose = .issue,
        remote: String?, subjectKeyIdentifier: ArraySlice<UInt8>? = nil, subjectPublicKeyInfo: ArraySlice<UInt8>? = nil
    ) {
        // Each name once, in the order first given (a token or command line may repeat one).
        var seen = Set<SubjectName>()
        self.names = names.filter { seen.insert($0).inserted }
        self.publicKey = publicKey
        self.keyType = keyType
        self.validity = validity
        self.purpose = purpose
        self.remote = remote
        self.subjectKeyIdentifier = subjectKeyIdentifier
        self.subjectPublicKeyInfo = subjectPublicKeyInfo
    }

    /// For a verified CSR: its key, key identifier and encoded public key.
    public init(csr: VerifiedCSR, names: [SubjectName], validity: Validity, remote: String?) {
        self.init(
            names: names, publicKey: csr.publicKey, keyType: csr.keyAlgorithm, validity: validity, remote: remote,
            subjectKeyIdentifier: csr.subjectKeyIdentifier, subjectPublicKeyInfo: csr.subjectPublicKeyInfo)
    }
}

extension Authority {
    /// The issuance pipeline, the one way a certificate comes to exist: validity, policy (names, key
    /// type, lifetime), encoding, the durable record (with the token use and the ACME order it
    /// completes, in one transaction) and the audit line. The certificate is handed out only once
    /// its record is durable; a refusal is audited and nothing is stored.
    public func issue(_ request: IssuanceRequest, _ options: IssuanceOptions, now: Date = Date()) async throws -> IssuedCertificate {
        func refuse(_ kind: AuthorityError.Kind, _ message: String, failure: CAMetrics.AuthFailure? = nil) -> AuthorityError {
            refusal(kind, message, request: request, provisioner: options.provisioner, failure: failure, now: now)
        }
        func refuseRevokedKey() -> AuthorityError {
            refuse(.revokedKey, RenewalRefusal.revokedKey)
        }
        guard let first = request.names.first else { throw refuse(.badRequest, "a certificate needs at least one name") }
        let (notBefore, notAfter) = try validity(request.validity, policy: options.policy, now: now, refuse: {
            var refusal = refuse($0, $1)
            refusal.subject = .validity
            return refusal
        })
        if let policy = options.policy {
            func refusePolicy(_ error: PolicyViolation, about subject: AuthorityError.Subject) -> AuthorityError {
                var refusal = refuse(.forbidden, request.purpose == .issue ? error.message : "the certificate no longer meets policy: \(error.message)")
                refusal.subject = subject
                return refusal
            }
            do { try policy.check(names: request.names) } catch { throw refusePolicy(error, about: .names) }
            do { try policy.check(keyType: request.keyType) } catch { throw refusePolicy(error, about: .key) }
        }
        // A key cut off by a revocation is refused by `recordIssuance`, in the transaction that
        // would record the certificate (no read before signing: it cost ~20 % of /sign's CPU).
        let keyHash = Fingerprint.publicKeyHash(of: request.publicKey)
        let serial = CertificateProfiles.randomSerial()
        let serialHex = serial.hexString
        // Signed before the transaction, in the request's own task (so signatures run in parallel,
        // not one after another on the database writer); handed out only once its row is durable.
        // The encoder writes the same bytes as CertificateProfiles.leaf, which remains the way for
        // what it does not write (times outside years 1-9999, DNS names outside ASCII).
        let der: [UInt8]
        if let encoded = try leafEncoder.encode(
            names: request.names,
            subjectPublicKeyInfo: try request.subjectPublicKeyInfo ?? CertificateProfiles.subjectPublicKeyInfo(of: request.publicKey)[...],
            keyAlgorithm: request.keyType,
            subjectKeyIdentifier: request.subjectKeyIdentifier ?? CertificateProfiles.keyIdentifier(for: request.publicKey),
            serial: Array(serial.bytes), notBefore: notBefore, notAfter: notAfter)
        {
            der = encoded
        } else {
            der = try CertificateProfiles.leaf(
                names: request.names, publicKey: request.publicKey, serial: serial, issuer: intermediate, issuerKey: intermediateKey,
                notBefore: notBefore, notAfter: notAfter, subjectKeyIdentifier: request.subjectKeyIdentifier,
                revocation: revocationPointers
            ).derBytes()
        }
        var renewedFrom: String?
        if case .renew(let original) = request.purpose { renewedFrom = original }
        let record = CertificateRecord(
            serial: serialHex, status: .issued, commonName: first.description, names: request.names.map(\.description),
            notBefore: notBefore, notAfter: notAfter, keyType: request.keyType.rawValue, provisioner: options.provisioner,
            requester: options.requester ?? request.remote, renewedFrom: renewedFrom, der: der, createdAt: now)
        do {
            // A revocation cuts off the key (renewal keeps it): no certificate is issued for a key
            // that a revocation cut off, whether renewed, asked for with a token or through ACME.
            // Checked in the transaction that records it, so a revocation in between is never missed.
            try await store.recordIssuance(record, token: options.token, completingOrder: options.completingOrder, refusingRevokedKey: keyHash)
        } catch StoreError.keyRevoked {
            throw refuseRevokedKey()
        } catch StoreError.tokenAlreadyUsed {
            throw refuse(.unauthorized, "the token was already used (tokens work exactly once)", failure: .replayedToken)
        } catch StoreError.orderNotReady {
            throw refuse(.conflict, "the order is not ready any more (finalized by another request, or deactivated); nothing was issued")
        } catch StoreError.serialAlreadyExists {
            // 80 random bits within one millisecond make this practically impossible; never reuse a serial all the same.
            throw AuthorityError(.unavailable, "serial collision; retry the request")
        } catch StoreError.unavailable(let reason) {
            audit.record(.init("request.refused", provisioner: options.provisioner, remote: request.remote, reason: "not issued: \(reason)"))
            throw AuthorityError(
                .unavailable,
                "the CA cannot store certificates right now (\(reason)); nothing was issued. Try again later; the CA's operator must fix the database's disk, and issuance resumes by itself")
        }
        let event: String
        switch request.purpose {
        case .issue: event = "certificate.issued"
        case .renew: event = "certificate.renewed"
        case .serverCertificate: event = "server-certificate.issued"
        }
        audit.record(.init(
            event, time: now, serial: serialHex, sans: record.names, provisioner: options.provisioner, remote: request.remote,
            detail: "valid until \(AuditLog.timestamp(notAfter))" + (renewedFrom.map { ", renewed from \($0)" } ?? "")
                + (options.requester.map { ", for \($0)" } ?? "")))
        if request.purpose != .serverCertificate {
            noteIssued(names: record.names, serial: serialHex, provisioner: options.provisioner, remote: request.remote, now: now)
        }
        return IssuedCertificate(leafDER: der, intermediate: intermediate, serial: serialHex)
    }

    /// Audits a refused issuance: renewals as `renewal.refused` (with the original's serial and
    /// names), authentication failures (`failure` set) as `auth.failure`, the rest as `request.refused`.
    func refusal(
        _ kind: AuthorityError.Kind, _ message: String, request: IssuanceRequest, provisioner: String?,
        failure: CAMetrics.AuthFailure?, now: Date
    ) -> AuthorityError {
        if case .renew(let serial) = request.purpose, failure == nil {
            audit.record(.init(
                "renewal.refused", time: now, serial: serial, sans: request.names.map(\.description), remote: request.remote, reason: message))
            return AuthorityError(kind, message)
        }
        return refuse(kind, message, provisioner: provisioner, remote: request.remote, authFailure: failure != nil, failure: failure)
    }

    /// The validity rule of every certificate. Requested times are RFC 3339 times or durations from
    /// now; out-of-bounds requests are refused, never clamped. No certificate outlives the intermediate.
    func validity(
        _ validity: IssuanceRequest.Validity, policy: IssuancePolicy?, now: Date,
        refuse: (AuthorityError.Kind, String) -> AuthorityError
    ) throws -> (Date, Date) {
        switch validity {
        case .upTo(let lifetime):
            return (now.addingTimeInterval(-Self.clockSkew), min(now.addingTimeInterval(lifetime), intermediate.notValidAfter))
        case .sameLifetime(let lifetime):
            // Same lifetime as the original (its span includes the backdating), capped by the policy maximum.
            var span = lifetime
            if let maximum = policy?.maximumDuration, span > TimeInterval(maximum.seconds) + Self.clockSkew {
                span = TimeInterval(maximum.seconds) + Self.clockSkew
            }
            let notBefore = now.addingTimeInterval(-Self.clockSkew)
            let notAfter = notBefore.addingTimeInterval(span)
            guard notAfter <= intermediate.notValidAfter else {
                throw refuse(
                    .forbidden,
                    "the renewed certificate would outlive the intermediate CA; create a new intermediate with `auto-ssl ca rotate-intermediate` on the CA host")
            }
            return (notBefore, notAfter)
        case .requested(let notBefore, let notAfter):
            guard let policy else { throw refuse(.forbidden, "no policy applies to this request") }
            return try requestedValidity(notBefore: notBefore, notAfter: notAfter, policy: policy, now: now, refuse: refuse)
        }
    }

    func requestedValidity(
        notBefore: String?, notAfter: String?, policy: IssuancePolicy, now: Date, refuse: (AuthorityError.Kind, String) -> AuthorityError
    ) throws -> (Date, Date) {
        func parse(_ text: String?, field: String) throws -> Date? {
            guard let text, !text.isEmpty else { return nil }
            if let date = Timestamp.parse(text) { return date }
            do {
                return now.addingTimeInterval(TimeInterval(try CertificateDuration(parsing: text).seconds))
            } catch {
                throw refuse(.badRequest, "\(field) \"\(text)\" is neither an RFC 3339 time nor a duration")
            }
        }
        let start = try parse(notBefore, field: "notBefore") ?? now
        let end = try parse(notAfter, field: "notAfter") ?? start.addingTimeInterval(TimeInterval(policy.defaultDuration.seconds))
        guard end > start else {
            throw refuse(.badRequest, "notAfter must be later than notBefore")
        }
        guard start <= now.addingTimeInterval(TimeInterval(policy.maximumDuration.seconds)) else {
            throw refuse(.forbidden, "notBefore is too far in the future")
        }
        // A certificate that is over before it is issued, or that starts long ago, is a mistake (and
        // dates far from now do not fit a certificate's time fields).
        guard end > now else {
            throw refuse(.badRequest, "notAfter is in the past")
        }
        guard start >= now.addingTimeInterval(-86_400) else {
            throw refuse(.badRequest, "notBefore may be at most 24 hours in the past")
        }
        do {
            try policy.check(lifetime: CertificateDuration(seconds: Int64(end.timeIntervalSince(start).rounded())))
        } catch {
            throw refuse(.forbidden, error.message)
        }
        guard end <= intermediate.notValidAfter else {
            throw refuse(
                .forbidden,
                "the certificate would outlive the intermediate CA (valid until \(AuditLog.timestamp(intermediate.notValidAfter))); create a new intermediate with `auto-ssl ca rotate-intermediate` on the CA host")
        }
        // Backdate slightly so a server whose clock is a little behind accepts the certificate at once.
        let backdated = notBefore == nil ? start.addingTimeInterval(-Self.clockSkew) : start
        return (backdated, end)
    }
}
