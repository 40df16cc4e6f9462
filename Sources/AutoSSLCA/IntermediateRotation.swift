import AutoSSLCore
import AutoSSLIO
import Foundation
import X509

/// `ca rotate-intermediate`: a new intermediate under the root (the root key's only other use).
/// The old intermediate and its key are archived under `certs/intermediates/` and
/// `secrets/intermediates/`, named by serial, so chains for certificates it signed stay available.
public struct IntermediateRotation {
    public let directories: Directories

    public init(directories: Directories) {
        self.directories = directories
    }

    public struct Result: Sendable {
        public var previous: Certificate
        public var current: Certificate
        public var archivedCertificate: String
    }

    public func rotate(caPassword: String, now: Date = Date()) throws -> Result {
        let loader = AuthorityLoader(directories: directories)
        let settings = try loader.settings()
        try AuthorityLoader.checkSecretPermissions(settings)
        let paths = settings.paths
        let root = try CAStatusReport.loadCertificate(paths.rootCertificate, what: "root certificate")
        let previous = try CAStatusReport.loadCertificate(paths.intermediateCertificate, what: "intermediate certificate")
        let rootKey: SigningKey
        do {
            rootKey = try EncryptedPrivateKey.decryptKey(pem: try FileOperations.readText(paths.rootKey), password: caPassword)
        } catch let error as AutoSSLError {
            throw AutoSSLError(.general, "the root key could not be opened: \(error.message)", hint: "check the CA password")
        }
        guard rootKey.publicKey == root.publicKey else {
            throw AutoSSLError.general("the root key does not match the root certificate; nothing was changed")
        }
        let calendar = Calendar(identifier: .gregorian)
        guard let fiveYears = calendar.date(byAdding: .year, value: CAMaterial.intermediateLifetimeYears, to: now) else {
            throw AutoSSLError.general("could not compute the validity")
        }
        let notAfter = min(fiveYears, root.notValidAfter)
        let key = try SigningKey.generate(settings.keyType.intermediateAlgorithm)
        let current = try CertificateProfiles.intermediate(
            caName: settings.name, publicKey: key.publicKey, root: root, rootKey: rootKey,
            notBefore: now.addingTimeInterval(-CAMaterial.backdate), notAfter: notAfter)

        let serial = previous.serialNumber.hexString
        let certificateArchive = paths.caDir + "/certs/intermediates"
        let keyArchive = paths.secretsDir + "/intermediates"
        try FileOperations.makeDirectory(certificateArchive, mode: 0o755)
        try FileOperations.makeDirectory(keyArchive, mode: 0o700)
        let archivedCertificate = certificateArchive + "/\(serial).crt"
        try FileOperations.writeAtomically(try previous.pemString(), to: archivedCertificate, mode: 0o644)
        try FileOperations.writeAtomically(
            try FileOperations.readText(paths.intermediateKey), to: keyArchive + "/\(serial).key", mode: 0o600)
        try FileOperations.replaceTogether([
            (Array(try EncryptedPrivateKey.encrypt(pkcs8: key.pkcs8DERRepresentation, password: caPassword).utf8),
             paths.intermediateKey, 0o600),
            (Array(try current.pemString().utf8), paths.intermediateCertificate, 0o644),
        ])
        return Result(previous: previous, current: current, archivedCertificate: archivedCertificate)
    }
}
