import Crypto
import Foundation
import SwiftASN1
import X509
import _CryptoExtras

/// A certificate signing request that has been parsed and whose self-signature verified.
public struct VerifiedCSR: Sendable {
    public let publicKey: Certificate.PublicKey
    public let keyAlgorithm: KeyAlgorithm
    /// DNS and IP names from the extensionRequest's subjectAltName, plus the CN if it is not among them.
    public let names: [SubjectName]
    /// The subject key identifier of the requested key, when it could be read from the CSR's own
    /// bytes (a canonically encoded EC key); nil means "compute it from `publicKey`".
    public let subjectKeyIdentifier: ArraySlice<UInt8>?
    /// The CSR's SubjectPublicKeyInfo bytes when they are exactly what a certificate for the key
    /// carries (a canonically encoded EC key, the same cases as `subjectKeyIdentifier`); else nil.
    public let subjectPublicKeyInfo: ArraySlice<UInt8>?

    /// Parses a PEM ("CERTIFICATE REQUEST" or "NEW CERTIFICATE REQUEST") or DER CSR, checks its
    /// signature with its own public key, and refuses key types we do not issue for.
    public init(pem: String) throws {
        if let der = FastPEM.body(of: pem, label: "CERTIFICATE REQUEST") {
            try self.init(der: der)
            return
        }
        let document: PEMDocument
        do {
            document = try PEMDocument(pemString: pem)
        } catch {
            throw AutoSSLError.invalidArgument("the CSR is not valid PEM")
        }
        guard document.discriminator == "CERTIFICATE REQUEST" || document.discriminator == "NEW CERTIFICATE REQUEST" else {
            throw AutoSSLError.invalidArgument(
                "expected a PEM \"CERTIFICATE REQUEST\", found \"\(document.discriminator)\"")
        }
        try self.init(der: document.derBytes)
    }

    public init(der: [UInt8]) throws {
        try self.init(der: der, fastReader: true)
    }

    /// `fastReader: false` is the library's reading alone (the reference the tests compare with).
    init(der: [UInt8], fastReader: Bool) throws {
        // The usual CSR is read by the fast reader; any other (or one whose signature fails there)
        // goes through swift-certificates, which also words the refusals.
        if fastReader, let fast = FastCSR.read(der), let publicKey = Self.verifiedKey(fast) {
            self.publicKey = publicKey
            self.keyAlgorithm = fast.algorithm
            self.names = try Self.names(alternative: fast.alternativeNames, commonName: fast.commonName)
            self.subjectKeyIdentifier = CertificateProfiles.keyIdentifier(forCanonicalSPKI: fast.subjectPublicKeyInfo)
            self.subjectPublicKeyInfo = fast.subjectPublicKeyInfo
            return
        }
        let csr: CertificateSigningRequest
        do {
            csr = try CertificateSigningRequest(derEncoded: der)
        } catch {
            // swift-certificates refuses weak keys while parsing; say which rule was broken.
            if let weakKey = Self.describeRefusedKey(der: der) {
                throw AutoSSLError.invalidArgument(
                    "the CSR's \(weakKey) is not allowed", hint: "use ECDSA P-256 or P-384, or RSA with 2048, 3072 or 4096 bits")
            }
            throw AutoSSLError.invalidArgument("the CSR could not be parsed: \(error)")
        }
        guard let algorithm = KeyAlgorithm(publicKey: csr.publicKey) else {
            throw AutoSSLError.invalidArgument(
                "the CSR's key type is not allowed",
                hint: "use ECDSA P-256 or P-384, or RSA with 2048, 3072 or 4096 bits")
        }
        guard csr.publicKey.isValidSignature(csr.signature, for: csr) else {
            throw AutoSSLError.invalidArgument("the CSR's signature does not verify with its own public key")
        }
        // swift-certificates cannot even express ecdsa-with-SHA1; RSA-SHA1 it can, and we refuse it.
        if csr.signatureAlgorithm == .sha1WithRSAEncryption {
            throw AutoSSLError.invalidArgument("the CSR is signed with SHA-1, which is not accepted")
        }
        let alternativeNames: [GeneralName]
        do {
            alternativeNames = try csr.attributes.extensionRequest?.extensions.subjectAlternativeNames.map { Array($0) } ?? []
        } catch {
            throw AutoSSLError.invalidArgument("the CSR's extension request could not be parsed: \(error)")
        }
        let cn = csr.subject.flatMap { $0 }.first { $0.type == .RDNAttributeType.commonName }
        self.publicKey = csr.publicKey
        self.keyAlgorithm = algorithm
        self.names = try Self.names(alternative: alternativeNames, commonName: cn.map { String(describing: $0.value) })
        // Hashing the key's bytes as sent saves converting the parsed key back to bytes (a field
        // inversion); only done when those bytes are exactly what the certificate will carry.
        let spki = Self.subjectPublicKeyInfo(inCSR: der)
        self.subjectKeyIdentifier = spki.flatMap(CertificateProfiles.keyIdentifier(forCanonicalSPKI:))
        self.subjectPublicKeyInfo = subjectKeyIdentifier == nil ? nil : spki
    }

    /// The fast reader's key, when the CSR's signature verifies with it (the same check as
    /// swift-certificates makes: ECDSA with the hash the signature algorithm names, over the
    /// CertificationRequestInfo as sent).
    static func verifiedKey(_ fast: FastCSR) -> Certificate.PublicKey? {
        switch fast.algorithm {
        case .p256:
            guard let key = try? P256.Signing.PublicKey(x963Representation: fast.point),
                  let signature = try? P256.Signing.ECDSASignature(derRepresentation: fast.signature) else { return nil }
            let valid = switch fast.hash {
            case .sha256: key.isValidSignature(signature, for: SHA256.hash(data: fast.info))
            case .sha384: key.isValidSignature(signature, for: SHA384.hash(data: fast.info))
            }
            return valid ? Certificate.PublicKey(key) : nil
        case .p384:
            guard let key = try? P384.Signing.PublicKey(x963Representation: fast.point),
                  let signature = try? P384.Signing.ECDSASignature(derRepresentation: fast.signature) else { return nil }
            let valid = switch fast.hash {
            case .sha256: key.isValidSignature(signature, for: SHA256.hash(data: fast.info))
            case .sha384: key.isValidSignature(signature, for: SHA384.hash(data: fast.info))
            }
            return valid ? Certificate.PublicKey(key) : nil
        case .rsa2048, .rsa3072, .rsa4096:
            return nil
        }
    }

    /// The subjectAltName's DNS and IP names without repeats, then the CN first if it is a name
    /// the SAN does not list.
    static func names(alternative: [GeneralName], commonName: String?) throws -> [SubjectName] {
        var names: [SubjectName] = []
        var seen: Set<SubjectName> = []
        for general in alternative {
            guard let name = SubjectName(generalName: general) else {
                throw AutoSSLError.invalidArgument("the CSR asks for a name that is neither DNS nor IP: \(general)")
            }
            if seen.insert(name).inserted { names.append(name) }
        }
        if let commonName, let cnName = try? SubjectName(parsing: commonName), !seen.contains(cnName) {
            names.insert(cnName, at: 0)
        }
        return names
    }

    /// The DER of the SubjectPublicKeyInfo inside a CSR that has already been parsed successfully:
    /// CertificationRequest → CertificationRequestInfo → (version, subject, SPKI).
    static func subjectPublicKeyInfo(inCSR der: [UInt8]) -> ArraySlice<UInt8>? {
        var outer = DERWalker(der[...])
        guard let request = outer.next(tag: 0x30)?.content else { return nil }
        var requestFields = DERWalker(request)
        guard let info = requestFields.next(tag: 0x30)?.content else { return nil }
        var infoFields = DERWalker(info)
        guard infoFields.next(tag: 0x02) != nil, infoFields.next(tag: 0x30) != nil else { return nil }
        return infoFields.next(tag: 0x30)?.element
    }

    static let rsaEncryptionOID: ASN1ObjectIdentifier = [1, 2, 840, 113549, 1, 1, 1]

    /// Reads just enough of a CSR (CertificationRequestInfo → SubjectPublicKeyInfo) to name a key
    /// the X.509 parser refused, e.g. "RSA key of 1024 bits". Nil when the CSR is broken otherwise.
    static func describeRefusedKey(der: [UInt8]) -> String? {
        guard let root = try? DER.parse(der), case .constructed(let outer) = root.content,
              let info = outer.first(where: { _ in true }), case .constructed(let infoNodes) = info.content else {
            return nil
        }
        let fields = Array(infoNodes)
        guard fields.count >= 3, case .constructed(let spkiNodes) = fields[2].content else { return nil }
        let spki = Array(spkiNodes)
        guard spki.count == 2, case .constructed(let algorithmNodes) = spki[0].content,
              let oidNode = algorithmNodes.first(where: { _ in true }),
              let oid = try? ASN1ObjectIdentifier(derEncoded: oidNode) else { return nil }
        guard oid == rsaEncryptionOID else { return "key algorithm \(oid)" }
        guard let bits = try? ASN1BitString(derEncoded: spki[1]),
              let key = try? _RSA.Signing.PublicKey(unsafeDERRepresentation: Array(bits.bytes)) else { return nil }
        return "RSA key of \(key.keySizeInBits) bits"
    }

    /// Builds a CSR for `names` signed by `key` (used by our own client and tests).
    public static func make(names: [SubjectName], key: SigningKey) throws -> String {
        guard let first = names.first else { throw AutoSSLError.invalidArgument("a CSR needs at least one name") }
        let extensions = try Certificate.Extensions { SubjectAlternativeNames(names.map(\.generalName)) }
        let csr = try CertificateSigningRequest(
            version: .v1,
            subject: try DistinguishedName { CommonName(first.description) },
            privateKey: key.certificateKey,
            attributes: try CertificateSigningRequest.Attributes([.init(ExtensionRequest(extensions: extensions))]),
            signatureAlgorithm: key.algorithm.signatureAlgorithm)
        return try csr.serializeAsPEM().pemString + "\n"
    }
}
