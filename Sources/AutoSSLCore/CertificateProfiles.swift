import Crypto
import Foundation
import SwiftASN1
import X509

/// The certificate profiles: root, intermediate and leaf, RFC 5280 conformant,
/// random positive serials, SKI/AKI, critical basicConstraints, no SHA-1 anywhere.
public enum CertificateProfiles {
    /// Positive serial of 16 octets: the issuance time in milliseconds (48 bits, big-endian) then
    /// 80 bits from the CSPRNG (the CA/Browser Forum asks for at least 64).
    ///
    /// The time prefix makes serials grow with issuance, so each new row lands at the end of the
    /// certificate table's serial index: a batch of issuances touches one index page instead of one
    /// page per certificate, which is most of what a durable commit writes. The top octet stays
    /// below 0x80 (positive, no padding octet) until the year 10889, and is never zero.
    public static func randomSerial(now: Date = Date()) -> Certificate.SerialNumber {
        var bytes = SecureRandom.bytes(16)
        let milliseconds = UInt64(max(0, now.timeIntervalSince1970 * 1000))
        for index in 0..<6 {
            bytes[index] = UInt8(truncatingIfNeeded: milliseconds >> (8 * UInt64(5 - index)))
        }
        bytes[0] &= 0x7F
        if bytes[0] == 0 { bytes[0] = 0x01 }  // keep the encoding at a fixed 16 octets
        return Certificate.SerialNumber(bytes: bytes)
    }

    /// Key identifier per RFC 7093 §2 method 1: the leftmost 160 bits of the SHA-256 hash of the
    /// subjectPublicKey bits (the SHA-1 method of RFC 5280 would do, but we keep SHA-1 out entirely).
    public static func keyIdentifier(for publicKey: Certificate.PublicKey) -> ArraySlice<UInt8> {
        ArraySlice(SHA256.hash(data: Array(publicKey.subjectPublicKeyInfoBytes)).prefix(20))
    }

    /// The SubjectPublicKeyInfo DER a certificate for `publicKey` carries (swift-certificates' encoding).
    public static func subjectPublicKeyInfo(of publicKey: Certificate.PublicKey) throws -> [UInt8] {
        var serializer = DER.Serializer()
        try serializer.serialize(publicKey)
        return serializer.serializedBytes
    }

    /// The DER prefixes of P-256 and P-384 SubjectPublicKeyInfos as swift-certificates writes them
    /// (id-ecPublicKey, the named curve, an uncompressed point), with the point's length.
    static let canonicalECPrefixes: [(prefix: [UInt8], pointLength: Int)] = [
        ([0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x02, 0x01, 0x06, 0x08, 0x2A, 0x86, 0x48, 0xCE,
          0x3D, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00, 0x04], 64),
        ([0x30, 0x76, 0x30, 0x10, 0x06, 0x07, 0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x02, 0x01, 0x06, 0x05, 0x2B, 0x81, 0x04, 0x00,
          0x22, 0x03, 0x62, 0x00, 0x04], 96),
    ]

    /// `keyIdentifier(for:)` from the SPKI bytes a CSR carried, when those bytes are exactly what a
    /// certificate for that key will contain (a canonical P-256/P-384 encoding); else nil. The
    /// identifier hashes the key's bit string: the uncompressed point at the end of the SPKI.
    public static func keyIdentifier(forCanonicalSPKI spki: ArraySlice<UInt8>) -> ArraySlice<UInt8>? {
        for (prefix, pointLength) in canonicalECPrefixes where spki.count == prefix.count + pointLength && spki.starts(with: prefix) {
            return ArraySlice(SHA256.hash(data: spki.suffix(pointLength + 1)).prefix(20))
        }
        return nil
    }

    public static func rootSubject(caName: String) throws -> DistinguishedName {
        try DistinguishedName {
            OrganizationName(caName)
            CommonName("\(caName) Root CA")
        }
    }

    public static func intermediateSubject(caName: String) throws -> DistinguishedName {
        try DistinguishedName {
            OrganizationName(caName)
            CommonName("\(caName) Intermediate CA")
        }
    }

    /// A self-signed root. Its key signs intermediates (and CRLs about them), nothing else.
    public static func root(
        caName: String, key: SigningKey, notBefore: Date, notAfter: Date
    ) throws -> Certificate {
        let subject = try rootSubject(caName: caName)
        let extensions = try Certificate.Extensions {
            Critical(BasicConstraints.isCertificateAuthority(maxPathLength: nil))
            Critical(KeyUsage(keyCertSign: true, cRLSign: true))
            SubjectKeyIdentifier(keyIdentifier: keyIdentifier(for: key.publicKey))
            // Optional for a self-signed root (RFC 5280 §4.2.1.1) but helps path builders; equals the SKI.
            AuthorityKeyIdentifier(keyIdentifier: keyIdentifier(for: key.publicKey))
        }
        return try Certificate(
            version: .v3,
            serialNumber: randomSerial(),
            publicKey: key.publicKey,
            notValidBefore: notBefore,
            notValidAfter: notAfter,
            issuer: subject,
            subject: subject,
            signatureAlgorithm: key.algorithm.signatureAlgorithm,
            extensions: extensions,
            issuerPrivateKey: key.certificateKey)
    }

    /// An intermediate under `root`, path length 0: it signs leaves only. Its EKU lists what its leaves
    /// may be used for, so verifiers that check EKU nesting (Go, Windows, macOS) accept the chain.
    public static func intermediate(
        caName: String, publicKey: Certificate.PublicKey, root: Certificate, rootKey: SigningKey,
        notBefore: Date, notAfter: Date
    ) throws -> Certificate {
        let extensions = try Certificate.Extensions {
            Critical(BasicConstraints.isCertificateAuthority(maxPathLength: 0))
            Critical(KeyUsage(keyCertSign: true, cRLSign: true))
            try ExtendedKeyUsage([.serverAuth, .clientAuth])
            SubjectKeyIdentifier(keyIdentifier: keyIdentifier(for: publicKey))
            AuthorityKeyIdentifier(keyIdentifier: try authorityKeyIdentifier(of: root))
        }
        return try Certificate(
            version: .v3,
            serialNumber: randomSerial(),
            publicKey: publicKey,
            notValidBefore: notBefore,
            notValidAfter: notAfter,
            issuer: root.subject,
            subject: try intermediateSubject(caName: caName),
            signatureAlgorithm: rootKey.algorithm.signatureAlgorithm,
            extensions: extensions,
            issuerPrivateKey: rootKey.certificateKey)
    }

    /// A TLS leaf for `names` (the first is also the subject CN): serverAuth + clientAuth so the same
    /// certificate authenticates renewal over mutual TLS.
    /// `subjectKeyIdentifier`, when given, must equal `keyIdentifier(for: publicKey)` (callers pass
    /// the one `keyIdentifier(forCanonicalSPKI:)` read from a CSR).
    public static func leaf(
        names: [SubjectName], publicKey: Certificate.PublicKey, serial: Certificate.SerialNumber,
        issuer: Certificate, issuerKey: SigningKey, notBefore: Date, notAfter: Date,
        subjectKeyIdentifier: ArraySlice<UInt8>? = nil, revocation: RevocationPointers = .none
    ) throws -> Certificate {
        guard let first = names.first else {
            throw AutoSSLError.invalidArgument("a certificate needs at least one name")
        }
        guard let keyAlgorithm = KeyAlgorithm(publicKey: publicKey) else {
            throw AutoSSLError.invalidArgument("unsupported key type (use ECDSA P-256, P-384 or RSA 2048-4096)")
        }
        let keyUsage = keyAlgorithm.isRSA
            ? KeyUsage(digitalSignature: true, keyEncipherment: true)
            : KeyUsage(digitalSignature: true)
        let extensions = try Certificate.Extensions {
            Critical(BasicConstraints.notCertificateAuthority)
            Critical(keyUsage)
            try ExtendedKeyUsage([.serverAuth, .clientAuth])
            SubjectKeyIdentifier(keyIdentifier: subjectKeyIdentifier ?? keyIdentifier(for: publicKey))
            AuthorityKeyIdentifier(keyIdentifier: try authorityKeyIdentifier(of: issuer))
            SubjectAlternativeNames(names.map(\.generalName))
            for pointer in try revocation.certificateExtensions() { pointer }
        }
        let subject = try DistinguishedName { CommonName(first.description) }
        return try Certificate(
            version: .v3,
            serialNumber: serial,
            publicKey: publicKey,
            notValidBefore: notBefore,
            notValidAfter: notAfter,
            issuer: issuer.subject,
            subject: subject,
            signatureAlgorithm: issuerKey.algorithm.signatureAlgorithm,
            extensions: extensions,
            issuerPrivateKey: issuerKey.certificateKey)
    }

    /// The key identifier a CRL or certificate signed by `issuer` names in its AKI.
    public static func authorityKeyIdentifier(forIssuer issuer: Certificate) throws -> ArraySlice<UInt8> {
        try authorityKeyIdentifier(of: issuer)
    }

    /// The issuer's SKI, or one computed from its key when the issuer carries none.
    static func authorityKeyIdentifier(of issuer: Certificate) throws -> ArraySlice<UInt8> {
        if let ski = try issuer.extensions.subjectKeyIdentifier {
            return ski.keyIdentifier
        }
        return keyIdentifier(for: issuer.publicKey)
    }
}

extension Certificate {
    /// DNS and IP names of the certificate's subjectAltName extension.
    public var subjectNames: [SubjectName] {
        guard let sans = try? extensions.subjectAlternativeNames else { return [] }
        return sans.compactMap(SubjectName.init(generalName:))
    }

    public var commonName: String? {
        subject.flatMap { $0 }.first { $0.type == .RDNAttributeType.commonName }.map { String(describing: $0.value) }
    }
}
