import AutoSSLConfig
import AutoSSLCore
import Foundation
import X509

/// Everything `ca init` writes, built in memory first so that nothing touches the disk until the
/// whole CA exists (a failure while generating leaves no trace).
public struct CAMaterial: Sendable {
    public var root: Certificate
    public var intermediate: Certificate
    public var encryptedRootKey: String
    public var encryptedIntermediateKey: String
    /// The root's first CRL (number 1, nothing revoked, valid as long as the root): clients that
    /// check CRLs for the whole chain (curl --crlfile, openssl -crl_check_all) need one for the root.
    public var rootCRL: [UInt8]
    public var provisionerPublicJWK: ECJWK
    public var provisionerEncryptedKey: String

    public static let rootLifetimeYears = 10
    public static let intermediateLifetimeYears = 5
    /// Backdating absorbs small clock differences between the CA and the machines that check it.
    public static let backdate: TimeInterval = 60

    public static func create(
        caName: String, keyType: CAKeyType, caPassword: String, provisionerPassword: String,
        now: Date = Date(), kdfIterations: Int = EncryptedPrivateKey.defaultIterations
    ) throws -> CAMaterial {
        let calendar = Calendar(identifier: .gregorian)
        let notBefore = now.addingTimeInterval(-backdate)
        guard let rootNotAfter = calendar.date(byAdding: .year, value: rootLifetimeYears, to: now),
              let intermediateNotAfter = calendar.date(byAdding: .year, value: intermediateLifetimeYears, to: now)
        else { throw AutoSSLError.general("could not compute certificate validity") }

        let rootKey = try SigningKey.generate(keyType.rootAlgorithm)
        let intermediateKey = try SigningKey.generate(keyType.intermediateAlgorithm)
        let root = try CertificateProfiles.root(caName: caName, key: rootKey, notBefore: notBefore, notAfter: rootNotAfter)
        let intermediate = try CertificateProfiles.intermediate(
            caName: caName, publicKey: intermediateKey.publicKey, root: root, rootKey: rootKey,
            notBefore: notBefore, notAfter: intermediateNotAfter)

        let privateJWK = ECJWK.generatePrivate()
        let provisionerJWE = try PasswordJWE.encrypt(
            Data(try privateJWK.jsonString().utf8), password: provisionerPassword, iterations: kdfIterations)

        return CAMaterial(
            root: root,
            intermediate: intermediate,
            encryptedRootKey: try EncryptedPrivateKey.encrypt(
                pkcs8: rootKey.pkcs8DERRepresentation, password: caPassword, iterations: kdfIterations),
            encryptedIntermediateKey: try EncryptedPrivateKey.encrypt(
                pkcs8: intermediateKey.pkcs8DERRepresentation, password: caPassword, iterations: kdfIterations),
            rootCRL: try CRLBuilder.build(
                issuer: root, issuerKey: rootKey, number: IntermediateRotation.firstRootCRLNumber, thisUpdate: notBefore,
                nextUpdate: root.notValidAfter, entries: []),
            provisionerPublicJWK: privateJWK.publicOnly,
            provisionerEncryptedKey: provisionerJWE)
    }
}
