import AutoSSLConfig
import AutoSSLCore
import AutoSSLStore
import AutoSSLIO
import Foundation

/// Every provisioner of the CA, loaded from config.yaml in one place (`load`) and replaced as a
/// whole when the file changes while serving.
public struct ProvisionerCollection: Sendable, Equatable {
    public let jwk: [JWKProvisioner]
    public let acme: [ACMEProvisioner]
    /// The certificate holders' own provisioner (renewal and revocation by possession).
    public let x5c: X5CProvisioner
    private let byKeyID: [String: JWKProvisioner]

    public init(jwk: [JWKProvisioner], acme: [ACMEProvisioner], x5c: X5CProvisioner = X5CProvisioner()) {
        self.jwk = jwk
        self.acme = acme
        self.x5c = x5c
        var byKeyID: [String: JWKProvisioner] = [:]
        for provisioner in jwk where byKeyID[provisioner.keyID] == nil { byKeyID[provisioner.keyID] = provisioner }
        self.byKeyID = byKeyID
    }

    /// Reads the provisioners of `settings`: their public keys, policies (over the CA's) and the
    /// encrypted private keys clients download from `/provisioners`.
    public static func load(_ settings: CASettings) throws -> ProvisionerCollection {
        let base = settings.basePolicySettings
        let jwk = try settings.provisioners.map { provisioner in
            guard provisioner.type == ProvisionerKind.jwk.rawValue else {
                throw AutoSSLError.general("provisioner \(provisioner.name) has unsupported type \(provisioner.type)")
            }
            return try JWKProvisioner(
                settings: provisioner, base: base,
                encryptedKey: try FileOperations.readText(provisioner.encryptedKeyFile).trimmingCharacters(in: .whitespacesAndNewlines))
        }
        let acme = try (settings.acmeProvisioners ?? []).map { try ACMEProvisioner(settings: $0, base: base) }
        return ProvisionerCollection(jwk: jwk, acme: acme)
    }

    /// The JWK provisioner whose key signed a token (`kid`).
    public func jwk(keyID: String) -> JWKProvisioner? { byKeyID[keyID] }

    public func acme(named name: String) -> ACMEProvisioner? { acme.first { $0.name == name } }

    /// The provisioner a stored certificate names (`record.provisioner`): a JWK one by its name, an
    /// ACME one as "acme/NAME".
    public func issuer(of provisionerLabel: String) -> (any Provisioner)? {
        if provisionerLabel.hasPrefix(ACMEProvisioner.labelPrefix) {
            return acme(named: String(provisionerLabel.dropFirst(ACMEProvisioner.labelPrefix.count)))
        }
        return jwk.first { $0.name == provisionerLabel }
    }

    public static func == (lhs: ProvisionerCollection, rhs: ProvisionerCollection) -> Bool {
        lhs.jwk == rhs.jwk && lhs.acme == rhs.acme
    }
}
