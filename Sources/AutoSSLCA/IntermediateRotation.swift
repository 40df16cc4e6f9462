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

    /// `certs/revoked_intermediates.json`: the intermediates the root revoked and the number of the
    /// root's last CRL (it only goes up).
    public struct RevokedIntermediates: Codable, Equatable, Sendable {
        public var crlNumber: Int64
        public var revoked: [RevokedIntermediate]
        enum CodingKeys: String, CodingKey {
            case crlNumber = "crl_number"
            case revoked
        }
    }

    static func revokedIntermediatesFile(caDir: String) -> String { caDir + "/certs/revoked_intermediates.json" }
    static func rootCRLFile(caDir: String) -> String { caDir + "/certs/root_ca.crl" }
    /// The number of the root CRL `ca init` writes (nothing revoked yet).
    static let firstRootCRLNumber: Int64 = 1

    /// Writes the root's CRL and its state (number and entries): the state first, so that a CRL
    /// on disk never has a number the state does not know.
    static func writeRootCRL(_ crl: [UInt8], state: RevokedIntermediates, caDir: String) throws {
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .secondsSince1970
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try FileOperations.writeAtomically(
            String(decoding: try encoder.encode(state), as: UTF8.self) + "\n", to: revokedIntermediatesFile(caDir: caDir), mode: 0o644)
        try FileOperations.writeAtomically(crl, to: rootCRLFile(caDir: caDir), mode: 0o644)
    }

    /// The intermediates the root revoked (none when the file does not exist).
    public static func revokedIntermediates(caDir: String) throws -> RevokedIntermediates {
        let path = revokedIntermediatesFile(caDir: caDir)
        guard FileOperations.exists(path) else { return RevokedIntermediates(crlNumber: 0, revoked: []) }
        let text = String(decoding: try FileOperations.readBytes(path, limit: 1 << 20), as: UTF8.self)
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .secondsSince1970
        do {
            return try decoder.decode(RevokedIntermediates.self, from: Data(text.utf8))
        } catch {
            throw AutoSSLError.general("\(path) is damaged (\(error))", hint: "restore it from a backup of the CA")
        }
    }

    /// Rotates the intermediate. With `compromised` (the current intermediate's serial, in hex:
    /// its key leaked), no intermediate is archived: the root revokes the current one and every
    /// archived one that has not expired (their keys were kept under the same password, and
    /// `ca serve` held them in the same process), reason cACompromise, in the root's CRL; their
    /// keys are deleted, so nothing they signed renews or authenticates to the CA any more.
    public func rotate(caPassword: String, compromised: String? = nil, now: Date = Date()) throws -> Result {
        let loader = AuthorityLoader(directories: directories)
        let settings = try loader.settings()
        try AuthorityLoader.checkSecretPermissions(settings, directories: directories)
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
        if let compromised {
            guard compromised.lowercased().filter({ $0 != ":" }) == serial else {
                throw AutoSSLError.invalidArgument(
                    "\(compromised) is not the current intermediate (that is \(serial)); nothing was changed",
                    hint: "name the current intermediate's serial (`auto-ssl ca status`); an intermediate revoked before stays revoked")
            }
            // The root's CRL first: once it is written the intermediates are revoked for every client
            // that reads it, whatever happens next; `ca serve` refuses to start with a revoked
            // current intermediate, and running the command again completes the rotation.
            let archived = try loader.previousIntermediates(settings).filter { $0.notValidAfter > now }
            var state = try Self.revokedIntermediates(caDir: paths.caDir)
            for certificate in [previous] + archived where !state.revoked.contains(where: { $0.serial == certificate.serialNumber.hexString }) {
                state.revoked.append(RevokedIntermediate(serial: certificate.serialNumber.hexString, revokedAt: now))
            }
            guard state.crlNumber >= 0, state.crlNumber < Int64.max else {
                throw AutoSSLError.general(
                    "\(Self.revokedIntermediatesFile(caDir: paths.caDir)) holds crl_number \(state.crlNumber), which cannot be increased",
                    hint: "The file is damaged; restore it from a backup (its crl_number only ever goes up by one per rotation).")
            }
            state.crlNumber += 1
            let crl = try CRLBuilder.build(
                issuer: root, issuerKey: rootKey, number: state.crlNumber, thisUpdate: now, nextUpdate: root.notValidAfter,
                entries: state.revoked.map { entry in
                    CRLBuilder.Entry(serial: SerialText.bytes(fromHex: entry.serial), revokedAt: entry.revokedAt, reasonCode: 2)
                })
            archivedCertificate = Self.rootCRLFile(caDir: paths.caDir)
            try Self.writeRootCRL(crl, state: state, caDir: paths.caDir)
            for certificate in archived {
                try FileOperations.removeTree(paths.secretsDir + "/intermediates/\(certificate.serialNumber.hexString).key")
            }
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
