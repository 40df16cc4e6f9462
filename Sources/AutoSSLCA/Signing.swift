import AutoSSLCore
import Foundation

extension Authority {
    public struct SignRequest: Sendable {
        public var csrPEM: String
        public var token: String
        public var notBefore: String?
        public var notAfter: String?
        public var remote: String?

        public init(csrPEM: String, token: String, notBefore: String? = nil, notAfter: String? = nil, remote: String? = nil) {
            self.csrPEM = csrPEM
            self.token = token
            self.notBefore = notBefore
            self.notAfter = notAfter
            self.remote = remote
        }
    }

    /// `/sign`: the token's provisioner authorises the names; the CSR must ask for exactly those.
    public func sign(_ request: SignRequest, now: Date = Date()) async throws -> IssuedCertificate {
        let label = ProvisionerLabel()
        return try await counted(.issue, provisioner: label) {
            try await sign(request, label: label, now: now)
        }
    }

    private func sign(_ request: SignRequest, label: ProvisionerLabel, now: Date) async throws -> IssuedCertificate {
        let (provisioner, token) = try tokenProvisioner(request.token, remote: request.remote)
        label.name = provisioner.name
        let authorization = try provisioner.authorizeSign(token: token, context: context(path: "/sign", remote: request.remote, now: now))
        let csr: VerifiedCSR
        do {
            csr = try VerifiedCSR(pem: request.csrPEM)
        } catch let error as AutoSSLError {
            throw refuse(.badRequest, error.message, provisioner: provisioner.name, remote: request.remote)
        }
        guard !authorization.names.isEmpty, Set(authorization.names) == Set(csr.names) else {
            throw refuse(
                .forbidden,
                "the CSR's names (\(csr.names.map(\.description).joined(separator: ", "))) do not match the token's sans (\(authorization.names.map(\.description).joined(separator: ", ")))",
                provisioner: provisioner.name, remote: request.remote)
        }
        // Names in the order the token lists them: its first name becomes the subject CN.
        return try await issue(
            IssuanceRequest(
                csr: csr, names: authorization.names, validity: .requested(notBefore: request.notBefore, notAfter: request.notAfter),
                remote: request.remote),
            authorization.options, now: now)
    }
}
