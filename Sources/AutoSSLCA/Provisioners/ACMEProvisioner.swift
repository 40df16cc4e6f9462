import AutoSSLConfig
import AutoSSLCore
import AutoSSLStore
import Foundation

/// An ACME directory at /acme/NAME (RFC 8555): accounts prove control of names with challenges, and
/// a finalized order whose authorizations are all valid is issued under this provisioner's policy
/// (the CA's overlaid by its own). Certificates it authorised are recorded as "acme/NAME".
public struct ACMEProvisioner: Provisioner, Equatable {
    public static let labelPrefix = "acme/"
    public let settings: ACMEProvisionerSettings
    public let policy: IssuancePolicy
    public var name: String { settings.name }
    public var kind: ProvisionerKind { .acme }
    /// The provisioner name recorded with the certificates it authorised.
    public var label: String { Self.labelPrefix + name }

    /// The recorded provisioner names that an operator's `name` stands for: the name itself (a
    /// password provisioner's, or a recorded label given as it is shown) and the label an ACME
    /// provisioner of that name records (names are unique across kinds).
    public static func recordedLabels(forName name: String) -> Set<String> {
        [name, labelPrefix + name]
    }

    public init(settings: ACMEProvisionerSettings, base: PolicySettings) throws {
        do {
            policy = try IssuancePolicy(base.overlaid(by: settings.policy))
        } catch let error as AutoSSLError {
            throw AutoSSLError.general("the policy of ACME provisioner \(settings.name) is invalid: \(error.message)")
        }
        self.settings = settings
    }

    /// Options for the order's certificate: issued to the account, completing the order in the
    /// same transaction.
    public func authorizeOrder(accountID: String, orderID: String?) -> IssuanceOptions {
        IssuanceOptions(provisioner: label, policy: policy, requester: "acme-account:" + accountID, completingOrder: orderID)
    }

    public func authorizeRenew(_ record: CertificateRecord, context: AuthorizationContext) throws -> IssuanceOptions {
        IssuanceOptions(provisioner: record.provisioner, policy: policy)
    }
}
