import AutoSSLCore
import AutoSSLStore
import Foundation
import X509

extension Authority {
    public struct RevokeRequest: Sendable {
        /// Decimal (step-ca's form) or hex.
        public var serial: String
        public var reasonCode: Int
        public var reason: String
        /// A provisioner token (sub = serial) or an x5c token of the certificate itself.
        public var token: String?
        /// The certificate presented over mutual TLS, if any.
        public var presented: Certificate?
        public var remote: String?

        public init(serial: String, reasonCode: Int, reason: String, token: String?, presented: Certificate?, remote: String?) {
            self.serial = serial
            self.reasonCode = reasonCode
            self.reason = reason
            self.token = token
            self.presented = presented
            self.remote = remote
        }
    }

    public static func validateReasonCode(_ code: Int) throws {
        guard CRLBuilder.reasonNames[code] != nil else {
            throw AutoSSLError.invalidArgument(
                "invalid revocation reason code \(code)",
                hint: "use 0-6 or 9-10 (RFC 5280: 7 is unused, 8 removeFromCRL is for delta CRLs only)")
        }
    }

    /// Revokes a certificate, authenticated by the certificate itself (mTLS or x5c token) or by a
    /// provisioner token whose `sub` is the serial. Revocation is permanent.
    /// What a revocation changed: the certificate named, and the other unexpired certificates of
    /// its key revoked with it. A certificate revoked before keeps its first record; a reason that
    /// covers the key (any but superseded) still cuts its key off, and the others with it, when
    /// the first reason had not. When nothing changed at all the operation counts as refused.
    public struct RevocationOutcome: Sendable, Equatable {
        public var serial: String
        public var changes: RevocationChanges
        /// The certificate itself had been revoked before (its record is unchanged).
        public var alreadyRevoked: Bool { changes.revokedBefore(serial) }
        /// Revoked with it for having the same key (none with reason superseded).
        public var alsoRevoked: [String] { changes.sameKey(as: serial) }
        /// Its key was cut off by this revocation (it had not been before).
        public var keyRevoked: Bool { changes.keyRevoked }
        /// Nothing changed: revoked before, and so was its key if this reason covers it.
        public var changedNothing: Bool { changes.isEmpty }
    }

    @discardableResult
    public func revoke(_ request: RevokeRequest, now: Date = Date()) async throws -> RevocationOutcome {
        let label = ProvisionerLabel()
        return try await counted(.revoke, provisioner: label, outcome: { $0.changedNothing ? .refused : .ok }) {
            try await revoke(request, label: label, now: now)
        }
    }

    private func revoke(_ request: RevokeRequest, label: ProvisionerLabel, now: Date) async throws -> RevocationOutcome {
        do {
            try Self.validateReasonCode(request.reasonCode)
        } catch let error as AutoSSLError {
            throw AuthorityError(.badRequest, error.message)
        }
        let candidates: [String]
        do {
            candidates = try SerialText.candidates(request.serial)
        } catch let error as AutoSSLError {
            throw AuthorityError(.badRequest, error.message)
        }
        var revokedBy: String
        var tokenUse: TokenUse?
        var serial: String
        if let token = request.token, !token.isEmpty, !X5CProvisioner.carriesCertificateChain(token) {
            let (provisioner, parsed) = try tokenProvisioner(token, remote: request.remote)
            label.name = provisioner.name
            let authorization = try provisioner.authorizeRevoke(
                token: parsed, context: context(path: "/revoke", remote: request.remote, now: now))
            // The wire form is decimal, so a digits-only serial is read as decimal first.
            let matching = candidates.filter(authorization.serials.contains).reversed()
            guard !matching.isEmpty else {
                throw refuse(.unauthorized, "the token's subject is not serial \(request.serial)", provisioner: provisioner.name, remote: request.remote, authFailure: true)
            }
            var known: String?
            for candidate in matching where known == nil {
                if try await store.certificate(serial: candidate)?.status == .issued { known = candidate }
            }
            guard let first = matching.first else { throw AuthorityError(.badRequest, "no serial") }
            serial = known ?? first
            revokedBy = authorization.revokedBy
            tokenUse = authorization.token
        } else {
            let proof: PossessionProof
            if let token = request.token, !token.isEmpty {
                proof = .x5cToken(token)
            } else if let presented = request.presented {
                proof = .mutualTLS(presented)
            } else {
                throw refuse(.unauthorized, "revocation needs the certificate (mutual TLS or an x5c token) or a provisioner token", remote: request.remote, authFailure: true, failure: .certificate)
            }
            let (leaf, use) = try provisioners.x5c.authorize(proof, context: context(path: "/revoke", remote: request.remote, now: now))
            guard candidates.contains(leaf.serialNumber.hexString) else {
                throw refuse(.forbidden, "a certificate can only revoke itself; serial \(request.serial) is not the presented certificate", remote: request.remote)
            }
            serial = leaf.serialNumber.hexString
            if let record = try await store.certificate(serial: serial) {
                guard try Self.isRecorded(leaf, as: record) else {
                    throw refuse(
                        .unauthorized, "certificate \(serial) is not the certificate this CA recorded under that serial", remote: request.remote,
                        authFailure: true, failure: .certificate)
                }
            } else if let imported = importedRecord(of: leaf) {
                // Issued before `ca import`: recorded now, so that its revocation reaches the CRL and OCSP.
                do {
                    try await store.recordIssuance(imported, token: nil)
                } catch StoreError.serialAlreadyExists {
                    // Recorded by a concurrent request in between.
                }
            }
            revokedBy = "holder"
            label.name = "holder"
            tokenUse = use
        }
        if let tokenUse {
            do {
                try await store.consume(tokenUse)
            } catch StoreError.tokenAlreadyUsed {
                throw refuse(.unauthorized, "the token was already used (tokens work exactly once)", remote: request.remote, authFailure: true, failure: .replayedToken)
            }
        }
        let changes = try await recordRevocation(
            serial: serial, reasonCode: request.reasonCode, reason: request.reason, revokedBy: revokedBy, remote: request.remote, now: now)
        return RevocationOutcome(serial: serial, changes: changes)
    }

    /// Whether a revocation cut this key off (no certificate is issued with it, and ACME takes it
    /// as no account's key).
    public func isKeyRevoked(_ key: Certificate.PublicKey) async throws -> Bool {
        try await store.isKeyRevoked(publicKeyHash: Fingerprint.publicKeyHash(of: key))
    }

    /// Stores the revocation (with the other certificates of the same key, see
    /// `CertificateStore.revoke`) and audits each; unknown serials are a 404. Returns what changed:
    /// nothing when the certificate was revoked already (and its key, if the reason covers it).
    func recordRevocation(serial: String, reasonCode: Int, reason: String, revokedBy: String, remote: String?, now: Date) async throws -> RevocationChanges {
        let revocation = RevocationRecord(reasonCode: reasonCode, reason: reason, revokedAt: now, revokedBy: revokedBy)
        let changes: RevocationChanges
        do {
            changes = try await store.revoke(serial: serial, revocation)
        } catch StoreError.unknownSerial {
            throw AuthorityError(.notFound, "this CA issued no certificate with serial \(serial)")
        }
        let provisioner = revokedBy.hasPrefix("provisioner:") ? String(revokedBy.dropFirst(12)) : nil
        if changes.onlyKeyRevoked(of: serial) {
            audit.record(.keyRevoked(of: serial, revocation, provisioner: provisioner, remote: remote))
        }
        let revoked = changes.serials
        guard !revoked.isEmpty else { return changes }
        for each in revoked {
            audit.record(.revoked(each, named: serial, revocation, provisioner: provisioner, remote: remote))
            // Publish at once: the CRL must list the serial, and OCSP must not answer from an
            // earlier "good", before this call returns.
            ocsp.revoked(serial: each)
        }
        try await regenerateCRLs(now: now)
        return changes
    }
}
