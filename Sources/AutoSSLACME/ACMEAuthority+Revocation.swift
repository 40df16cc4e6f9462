import AutoSSLCA
import AutoSSLCore
import AutoSSLStore
import Foundation
import X509

/// Revocation (RFC 8555 §7.6): by the account that ordered the certificate, or signed by the
/// certificate's own key.
extension ACMEAuthority {
    public func revokeCertificate(_ request: ACMERequest) async throws -> ACMEReply {
        let payload = try request.payload(RevocationPayload.self)
        guard let der = Base64URL.decode(payload.certificate), let certificate = try? Certificate(derEncoded: Array(der)) else {
            throw ACMEProblem(.malformed, "certificate must be the base64url DER of the certificate to revoke")
        }
        let reason = payload.reason ?? 0
        guard (try? Authority.validateReasonCode(reason)) != nil else {
            throw ACMEProblem(.badRevocationReason, "reason \(reason) is not allowed (use 0-6, 9 or 10)")
        }
        let serial = certificate.serialNumber.hexString
        guard let record = try await authority.certificateRecord(serial: serial), record.der.map({ $0 == Array(der) }) == true else {
            throw ACMEProblem(.malformed, "this CA did not issue that certificate", status: 404)
        }
        let revokedBy: String
        if let account = request.account {
            guard let order = try await database.order(certificateSerial: serial), order.accountID == account.id else {
                throw ACMEProblem(.unauthorized, "account \(account.id) did not order this certificate")
            }
            revokedBy = "acme-account:" + account.id
        } else {
            guard let certificateKey = ACMEAccountKey(certificateKey: certificate.publicKey),
                  certificateKey.thumbprint == request.key.thumbprint else {
                throw ACMEProblem(.unauthorized, "the request is signed neither by an account nor by the certificate's key")
            }
            revokedBy = "holder"
        }
        guard try await authority.revokeForACME(
            serial: serial, reasonCode: reason, revokedBy: revokedBy, provisioner: request.endpoint.provisioner.name, remote: request.endpoint.remote) else {
            throw ACMEProblem(.alreadyRevoked, "certificate \(serial) is already revoked")
        }
        return .empty(200)
    }
}
