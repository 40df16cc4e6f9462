import Foundation
import SwiftASN1
import X509

/// Writes leaf certificates of the `CertificateProfiles.leaf` profile directly as DER.
///
/// Every `/sign` builds one leaf; through swift-certificates that is a tree of extension, name and
/// time values serialized node by node (tens of microseconds and hundreds of small allocations),
/// though only the serial, the times, the name, the key and its identifier change from one
/// certificate to the next. This encoder keeps the issuer's parts as bytes and writes the rest in
/// one pass. Its output is byte for byte what `CertificateProfiles.leaf` produces for the same
/// inputs (signatures aside, which are randomized): `LeafEncoderTests` holds it to that.
public struct LeafEncoder: Sendable {
    let issuerKey: SigningKey
    /// The issuer's subject as swift-certificates serializes it: the leaf's issuer field.
    let issuerName: [UInt8]
    /// AlgorithmIdentifier of the issuer key's signatures (in the TBS and after it).
    let signatureAlgorithm: [UInt8]
    /// The authorityKeyIdentifier extension: the issuer's key identifier.
    let authorityKeyIdentifierExtension: [UInt8]
    /// The CRL distribution point and OCSP URL every leaf carries (`RevocationPointers.extensions`).
    let revocationExtensions: [UInt8]

    public init(issuer: Certificate, issuerKey: SigningKey, revocation: RevocationPointers = .none) throws {
        revocationExtensions = revocation.encodedExtensions
        var serializer = DER.Serializer()
        try serializer.serialize(issuer.subject)
        issuerName = serializer.serializedBytes
        self.issuerKey = issuerKey
        signatureAlgorithm = Self.algorithmIdentifier(issuerKey.algorithm)
        let keyIdentifier = try CertificateProfiles.authorityKeyIdentifier(forIssuer: issuer)
        // AuthorityKeyIdentifier ::= SEQUENCE { keyIdentifier [0] IMPLICIT OCTET STRING }
        authorityKeyIdentifierExtension = Self.extensionField(
            oid: [0x55, 0x1D, 0x23], critical: false, value: Self.element(0x30, Self.element(0x80, Array(keyIdentifier))))
    }

    /// The leaf's DER, signed by the issuer key. `subjectPublicKeyInfo` must be the DER that
    /// swift-certificates writes for the key (`CertificateProfiles.subjectPublicKeyInfo(of:)`, or a
    /// CSR's own bytes when they are in that canonical form), `subjectKeyIdentifier` its
    /// `CertificateProfiles.keyIdentifier`, and `serial` the content octets of a positive INTEGER.
    /// Nil when the validity cannot be written as RFC 5280 times (years outside 1-9999) or a DNS
    /// name is not ASCII: `CertificateProfiles.leaf` then decides.
    public func encode(
        names: [SubjectName], subjectPublicKeyInfo: ArraySlice<UInt8>, keyAlgorithm: KeyAlgorithm,
        subjectKeyIdentifier: ArraySlice<UInt8>, serial: [UInt8], notBefore: Date, notAfter: Date
    ) throws -> [UInt8]? {
        guard let first = names.first else {
            throw AutoSSLError.invalidArgument("a certificate needs at least one name")
        }
        guard let start = Self.time(notBefore), let end = Self.time(notAfter) else { return nil }

        var alternativeNames: [UInt8] = []
        for name in names {
            switch name {
            case .dns(let host):
                // [2] IA5String. A name outside ASCII is the library's to refuse.
                guard host.utf8.allSatisfy({ $0 < 0x80 }) else { return nil }
                Self.append(0x82, Array(host.utf8), to: &alternativeNames)
            case .ip(let address): Self.append(0x87, address.bytes, to: &alternativeNames)  // [7] OCTET STRING
            }
        }
        var extensions = keyAlgorithm.isRSA ? Self.fixedExtensionsRSA : Self.fixedExtensionsEC
        extensions += Self.extensionField(
            oid: [0x55, 0x1D, 0x0E], critical: false, value: Self.element(0x04, Array(subjectKeyIdentifier)))
        extensions += authorityKeyIdentifierExtension
        extensions += Self.extensionField(
            oid: [0x55, 0x1D, 0x11], critical: false, value: Self.element(0x30, alternativeNames))
        extensions += revocationExtensions

        // Name ::= SEQUENCE OF SET OF { commonName, UTF8String }
        let commonName = Self.element(0x0C, Array(first.description.utf8))
        let subject = Self.element(0x30, Self.element(0x31, Self.element(0x30, [0x06, 0x03, 0x55, 0x04, 0x03] + commonName)))

        var tbsContent: [UInt8] = []
        tbsContent.reserveCapacity(512 + subjectPublicKeyInfo.count + alternativeNames.count)
        tbsContent += [0xA0, 0x03, 0x02, 0x01, 0x02]  // [0] EXPLICIT version v3
        Self.append(0x02, serial, to: &tbsContent)
        tbsContent += signatureAlgorithm
        tbsContent += issuerName
        Self.append(0x30, start + end, to: &tbsContent)
        tbsContent += subject
        tbsContent += subjectPublicKeyInfo
        Self.append(0xA3, Self.element(0x30, extensions), to: &tbsContent)
        let tbs = Self.element(0x30, tbsContent)

        let signature = try issuerKey.signForX509(tbs)
        var certificateContent = tbs
        certificateContent += signatureAlgorithm
        var bitString: [UInt8] = [0x00]  // no unused bits
        bitString += signature
        Self.append(0x03, bitString, to: &certificateContent)
        return Self.element(0x30, certificateContent)
    }

    // MARK: - DER pieces

    static func element(_ tag: UInt8, _ content: [UInt8]) -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(content.count + 5)
        append(tag, content, to: &bytes)
        return bytes
    }

    /// Appends tag, definite length (short form below 128, else the fewest octets) and content.
    static func append(_ tag: UInt8, _ content: [UInt8], to bytes: inout [UInt8]) {
        bytes.append(tag)
        let length = content.count
        if length < 0x80 {
            bytes.append(UInt8(length))
        } else {
            var octets: [UInt8] = []
            var rest = length
            while rest > 0 {
                octets.insert(UInt8(rest & 0xFF), at: 0)
                rest >>= 8
            }
            bytes.append(0x80 | UInt8(octets.count))
            bytes += octets
        }
        bytes += content
    }

    /// Extension ::= SEQUENCE { extnID OID, critical BOOLEAN DEFAULT FALSE, extnValue OCTET STRING }
    static func extensionField(oid: [UInt8], critical: Bool, value: [UInt8]) -> [UInt8] {
        var content = element(0x06, oid)
        if critical { content += [0x01, 0x01, 0xFF] }
        append(0x04, value, to: &content)
        return element(0x30, content)
    }

    /// basicConstraints (critical, not a CA), keyUsage (critical) and extendedKeyUsage (serverAuth,
    /// clientAuth): the extensions every leaf shares, in the profile's order.
    static func fixedExtensions(keyUsage: [UInt8]) -> [UInt8] {
        let serverAuth: [UInt8] = [0x06, 0x08, 0x2B, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x01]
        let clientAuth: [UInt8] = [0x06, 0x08, 0x2B, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x02]
        return extensionField(oid: [0x55, 0x1D, 0x13], critical: true, value: [0x30, 0x00])
            + extensionField(oid: [0x55, 0x1D, 0x0F], critical: true, value: element(0x03, keyUsage))
            + extensionField(oid: [0x55, 0x1D, 0x25], critical: false, value: element(0x30, serverAuth + clientAuth))
    }

    /// keyUsage digitalSignature (bit 0; 7 unused bits).
    static let fixedExtensionsEC = fixedExtensions(keyUsage: [0x07, 0x80])
    /// keyUsage digitalSignature and keyEncipherment (bits 0 and 2; 5 unused bits).
    static let fixedExtensionsRSA = fixedExtensions(keyUsage: [0x05, 0xA0])

    static func algorithmIdentifier(_ algorithm: KeyAlgorithm) -> [UInt8] {
        switch algorithm {
        case .p256: return [0x30, 0x0A, 0x06, 0x08, 0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x04, 0x03, 0x02]  // ecdsa-with-SHA256
        case .p384: return [0x30, 0x0A, 0x06, 0x08, 0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x04, 0x03, 0x03]  // ecdsa-with-SHA384
        case .rsa2048, .rsa3072, .rsa4096:
            // sha256WithRSAEncryption, NULL parameters
            return [0x30, 0x0D, 0x06, 0x09, 0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01, 0x0B, 0x05, 0x00]
        }
    }

    /// RFC 5280 §4.1.2.5: UTCTime (YYMMDDHHMMSSZ) for 1950-2049, GeneralizedTime (YYYYMMDDHHMMSSZ)
    /// otherwise, whole seconds rounded to the nearest as swift-certificates does. Nil outside 1-9999.
    static func time(_ date: Date) -> [UInt8]? {
        let interval = date.timeIntervalSince1970.rounded()
        guard interval.isFinite, abs(interval) < 1e15 else { return nil }
        let seconds = Int64(interval)
        let days = seconds >= 0 ? seconds / 86_400 : (seconds - 86_399) / 86_400
        let secondOfDay = Int(seconds - days * 86_400)
        let (year, month, day) = civilDate(daysSinceEpoch: days)
        guard (1...9999).contains(year) else { return nil }
        var digits: [UInt8] = []
        func two(_ value: Int) {
            digits.append(0x30 + UInt8(value / 10))
            digits.append(0x30 + UInt8(value % 10))
        }
        let utc = (1950..<2050).contains(year)
        if utc {
            two(year % 100)
        } else {
            two(year / 100)
            two(year % 100)
        }
        two(month)
        two(day)
        two(secondOfDay / 3600)
        two(secondOfDay / 60 % 60)
        two(secondOfDay % 60)
        digits.append(0x5A)  // "Z"
        return element(utc ? 0x17 : 0x18, digits)
    }

    /// Proleptic Gregorian (year, month, day) of a day count from 1970-01-01 (days-from-civil inverted).
    static func civilDate(daysSinceEpoch: Int64) -> (year: Int, month: Int, day: Int) {
        let z = daysSinceEpoch + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let dayOfEra = z - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let shiftedMonth = (5 * dayOfYear + 2) / 153
        let day = dayOfYear - (153 * shiftedMonth + 2) / 5 + 1
        let month = shiftedMonth < 10 ? shiftedMonth + 3 : shiftedMonth - 9
        let year = yearOfEra + era * 400 + (month <= 2 ? 1 : 0)
        return (Int(year), Int(month), Int(day))
    }
}
