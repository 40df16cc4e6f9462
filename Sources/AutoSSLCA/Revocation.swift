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
    /// its key revoked with it; or nothing, when it had been revoked before (then the operation
    /// counts as refused: there was nothing to do).
    public struct RevocationOutcome: Sendable, Equatable {
        public var serial: String
        public var alreadyRevoked: Bool
        /// Revoked with it for having the same key (none with reason superseded).
        public var alsoRevoked: [String]

        init(serial: String, revokedNow: [String]) {
            self.serial = serial
            alreadyRevoked = revokedNow.isEmpty
            alsoRevoked = revokedNow.filter { $0 != serial }
        }
    }

    @discardableResult
    public func revoke(_ request: RevokeRequest, now: Date = Date()) async throws -> RevocationOutcome {
        let label = ProvisionerLabel()
        return try await counted(.revoke, provisioner: label, outcome: { $0.alreadyRevoked ? .refused : .ok }) {
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
        let revoked = try await recordRevocation(
            serial: serial, reasonCode: request.reasonCode, reason: request.reason, revokedBy: revokedBy, remote: request.remote, now: now)
        return RevocationOutcome(serial: serial, revokedNow: revoked)
    }

    /// Stores the revocation (with the other certificates of the same key, see
    /// `CertificateStore.revoke`) and audits each; unknown serials are a 404. Returns the serials
    /// revoked now: none when the certificate was revoked already (nothing changed).
    func recordRevocation(serial: String, reasonCode: Int, reason: String, revokedBy: String, remote: String?, now: Date) async throws -> [String] {
        let revocation = RevocationRecord(reasonCode: reasonCode, reason: reason, revokedAt: now, revokedBy: revokedBy)
        let revoked: [String]
        do {
            revoked = try await store.revoke(serial: serial, revocation)
        } catch StoreError.unknownSerial {
            throw AuthorityError(.notFound, "this CA issued no certificate with serial \(serial)")
        }
        guard !revoked.isEmpty else { return [] }
        for each in revoked {
            audit.record(.revoked(
                each, named: serial, revocation, provisioner: revokedBy.hasPrefix("provisioner:") ? String(revokedBy.dropFirst(12)) : nil,
                remote: remote))
            // Publish at once: the CRL must list the serial, and OCSP must not answer from an
            // earlier "good", before this call returns.
            ocsp.revoked(serial: each)
        }
        try await regenerateCRLs(now: now)
        return revoked
    }
}
