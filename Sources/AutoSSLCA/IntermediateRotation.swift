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
        /// Where the previous intermediate's certificate now is: the archive, or for a compromised
        /// one the root's CRL that revokes it.
        public var archivedCertificate: String
    }

    /// One intermediate the root revoked (`ca rotate-intermediate --compromised`), as listed in
    /// `certs/revoked_intermediates.json` and in the root's CRL (`certs/root_ca.crl`).
    public struct RevokedIntermediate: Codable, Equatable, Sendable {
        public var serial: String
        public var revokedAt: Date
        enum CodingKeys: String, CodingKey {
            case serial
            case revokedAt = "revoked_at"
        }
    }

    /// The intermediates the root revoked (none when the file does not exist).
    public static func revokedIntermediates(caDir: String) throws -> [RevokedIntermediate] {
        let path = caDir + "/certs/revoked_intermediates.json"
        guard FileOperations.exists(path) else { return [] }
        let text = try FileOperations.readText(path)
        guard text.utf8.count <= 1 << 20 else { throw AutoSSLError.general("\(path) is larger than 1 MiB; it is not one auto-ssl wrote") }
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .secondsSince1970
        do {
            return try decoder.decode([RevokedIntermediate].self, from: Data(text.utf8))
        } catch {
            throw AutoSSLError.general("\(path) is damaged (\(error))", hint: "restore it from a backup of the CA")
        }
    }

    /// Rotates the intermediate. With `compromised` (its key leaked), the previous intermediate is
    /// not archived: the root revokes it (reason cACompromise) in the root's CRL, and its key is
    /// deleted, so nothing it signed renews or authenticates to the CA any more.
    public func rotate(caPassword: String, compromised: Bool = false, now: Date = Date()) throws -> Result {
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
        let archivedCertificate: String
        if compromised {
            // The root's CRL first: once it is written the old intermediate is revoked for every
            // client that reads it, whatever happens next (running the command again revokes the
            // then-current intermediate, a fresh one, too).
            var revoked = try Self.revokedIntermediates(caDir: paths.caDir).filter { $0.serial != serial }
            revoked.append(RevokedIntermediate(serial: serial, revokedAt: now))
            let crl = try CRLBuilder.build(
                issuer: root, issuerKey: rootKey, number: Int64(revoked.count), thisUpdate: now.addingTimeInterval(-CAMaterial.backdate),
                nextUpdate: root.notValidAfter,
                entries: try revoked.map { entry in
                    CRLBuilder.Entry(serial: SerialText.bytes(fromHex: entry.serial), revokedAt: entry.revokedAt, reasonCode: 2)
                })
            let encoder = JSONEncoder()
            encoder.dateEncodingStrategy = .secondsSince1970
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            archivedCertificate = paths.caDir + "/certs/root_ca.crl"
            try FileOperations.writeAtomically(String(decoding: try encoder.encode(revoked), as: UTF8.self) + "\n",
                                               to: paths.caDir + "/certs/revoked_intermediates.json", mode: 0o644)
            try FileOperations.writeAtomically(crl, to: archivedCertificate, mode: 0o644)
        } else {
            let certificateArchive = paths.caDir + "/certs/intermediates"
            let keyArchive = paths.secretsDir + "/intermediates"
            try FileOperations.makeDirectory(certificateArchive, mode: 0o755)
            try FileOperations.makeDirectory(keyArchive, mode: 0o700)
            archivedCertificate = certificateArchive + "/\(serial).crt"
            try FileOperations.writeAtomically(try previous.pemString(), to: archivedCertificate, mode: 0o644)
            try FileOperations.writeAtomically(
                try FileOperations.readText(paths.intermediateKey), to: keyArchive + "/\(serial).key", mode: 0o600)
        }
        try FileOperations.replaceTogether([
            (Array(try EncryptedPrivateKey.encrypt(pkcs8: key.pkcs8DERRepresentation, password: caPassword).utf8),
             paths.intermediateKey, 0o600),
            (Array(try current.pemString().utf8), paths.intermediateCertificate, 0o644),
        ])
        return Result(previous: previous, current: current, archivedCertificate: archivedCertificate)
    }
}
