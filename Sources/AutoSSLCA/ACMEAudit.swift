import AutoSSLCore
import Foundation

/// The audit lines of ACME account and validation events (issuance and revocation over ACME are
/// audited by the issuance pipeline and revocation like every other).
extension Authority {
    public enum ACMEEvent: Sendable {
        case accountCreated(provisioner: String, account: String, boundTo: String?, remote: String?)
        case accountDeactivated(provisioner: String, account: String, remote: String?)
        case accountKeyChanged(provisioner: String, account: String, remote: String?)
        /// `failure` nil: the challenge was validated.
        case challenge(
            provisioner: String, account: String, identifier: String, type: String, failure: String?, remote: String?)
    }

    public func record(_ event: ACMEEvent) {
        let prefix = ACMEProvisioner.labelPrefix
        switch event {
        case .accountCreated(let provisioner, let account, let boundTo, let remote):
            audit.record(.init(
                "acme.account.created", provisioner: prefix + provisioner, remote: remote,
                detail: "account \(account)" + (boundTo.map { ", bound to \($0)" } ?? "")))
        case .accountDeactivated(let provisioner, let account, let remote):
            audit.record(.init("acme.account.deactivated", provisioner: prefix + provisioner, remote: remote, detail: "account \(account)"))
        case .accountKeyChanged(let provisioner, let account, let remote):
            audit.record(.init("acme.account.key-changed", provisioner: prefix + provisioner, remote: remote, detail: "account \(account)"))
        case .challenge(let provisioner, let account, let identifier, let type, let failure, let remote):
            metrics.acmeValidation(type: type, valid: failure == nil)
            // A failed challenge invalidates its authorization and with it the order (RFC 8555 §7.1.6).
            if failure != nil { metrics.acmeOrder(.invalid, provisioner: prefix + provisioner) }
            audit.record(.init(
                failure == nil ? "acme.challenge.valid" : "acme.challenge.invalid", sans: [identifier], provisioner: prefix + provisioner,
                remote: remote, reason: failure, detail: "\(type) for account \(account)"))
        }
    }
}
