import Foundation
import SwiftASN1
import X509

/// A reader for the CSRs clients send to `/sign` and ACME finalize: an EC P-256 or P-384 key in its
/// canonical encoding, signed with ECDSA over SHA-256 or SHA-384, a subject that is one commonName (or
/// empty), and at most a subjectAltName request of DNS names and IP addresses.
///
/// swift-certificates parses a CSR into a full tree of attributes, extensions and names; this
/// reads the few fields `/sign` needs in one pass. It accepts only a strict subset of what the
/// library accepts (canonical DER lengths, exactly these shapes, nothing left over) and reads
/// those bytes to the same values; anything else returns nil and takes the library's path
/// (`FastCSRTests` holds it to that, including on randomly damaged input).
struct FastCSR {
    /// The CertificationRequestInfo's encoding: what the signature covers.
    var info: ArraySlice<UInt8>
    var subjectPublicKeyInfo: ArraySlice<UInt8>
    /// The uncompressed point (0x04 || X || Y).
    var point: ArraySlice<UInt8>
    var algorithm: KeyAlgorithm
    var hash: SignatureHash
    /// The DER ECDSA-Sig-Value from the signature BIT STRING.
    var signature: ArraySlice<UInt8>
    /// The names in the library's terms, in the CSR's order.
    var commonName: String?
    var alternativeNames: [GeneralName]

    enum SignatureHash { case sha256, sha384 }

    static let extensionRequestOID: [UInt8] = [0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x09, 0x0E]
    static let ecdsaWithSHA256: [UInt8] = [0x30, 0x0A, 0x06, 0x08, 0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x04, 0x03, 0x02]
    static let ecdsaWithSHA384: [UInt8] = [0x30, 0x0A, 0x06, 0x08, 0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x04, 0x03, 0x03]

    static func read(_ der: [UInt8]) -> FastCSR? {
        var outer = DERWalker(der[...])
        guard let request = outer.nextCanonical(tag: 0x30), outer.isAtEnd else { return nil }
        var requestFields = DERWalker(request.content)
        guard let info = requestFields.nextCanonical(tag: 0x30),
              let signatureAlgorithm = requestFields.nextCanonical(tag: 0x30),
              let signatureBits = requestFields.nextCanonical(tag: 0x03), requestFields.isAtEnd,
              signatureBits.content.first == 0x00 else { return nil }

        var infoFields = DERWalker(info.content)
        guard let version = infoFields.nextCanonical(tag: 0x02), version.content.elementsEqual([0x00]),
              let subject = infoFields.nextCanonical(tag: 0x30),
              let spki = infoFields.nextCanonical(tag: 0x30),
              let attributes = infoFields.nextCanonical(tag: 0xA0), infoFields.isAtEnd else { return nil }

        let algorithm: KeyAlgorithm
        let pointLength: Int
        if spki.element.starts(with: CertificateProfiles.canonicalECPrefixes[0].prefix) {
            (algorithm, pointLength) = (.p256, CertificateProfiles.canonicalECPrefixes[0].pointLength)
        } else if spki.element.starts(with: CertificateProfiles.canonicalECPrefixes[1].prefix) {
            (algorithm, pointLength) = (.p384, CertificateProfiles.canonicalECPrefixes[1].pointLength)
        } else {
            return nil
        }
        // openssl signs with SHA-256 whatever the curve; both hashes go with both curves.
        let hash: SignatureHash
        if signatureAlgorithm.element.elementsEqual(ecdsaWithSHA256) {
            hash = .sha256
        } else if signatureAlgorithm.element.elementsEqual(ecdsaWithSHA384) {
            hash = .sha384
        } else {
            return nil
        }
        let prefixLength = algorithm == .p256
            ? CertificateProfiles.canonicalECPrefixes[0].prefix.count : CertificateProfiles.canonicalECPrefixes[1].prefix.count
        guard spki.element.count == prefixLength + pointLength else { return nil }

        guard let subjectShape = readSubject(subject.content),
              let alternativeNames = readAttributes(attributes.content) else { return nil }
        let commonName: String?
        switch subjectShape {
        case .empty: commonName = nil
        case .commonName(let value): commonName = value
        }
        return FastCSR(
            info: info.element, subjectPublicKeyInfo: spki.element, point: spki.element.suffix(pointLength + 1),
            algorithm: algorithm, hash: hash, signature: signatureBits.content.dropFirst(), commonName: commonName,
            alternativeNames: alternativeNames)
    }

    enum SubjectShape: Equatable {
        case empty
        case commonName(String)
    }

    /// An empty subject, or exactly one RDN holding one commonName as a UTF8String or
    /// PrintableString of printable ASCII that the library describes as it is (see
    /// `describesUnescaped`); nil for any other subject.
    static func readSubject(_ content: ArraySlice<UInt8>) -> SubjectShape? {
        if content.isEmpty { return .empty }
        var names = DERWalker(content)
        guard let set = names.nextCanonical(tag: 0x31), names.isAtEnd else { return nil }
        var attributes = DERWalker(set.content)
        guard let attribute = attributes.nextCanonical(tag: 0x30), attributes.isAtEnd else { return nil }
        var fields = DERWalker(attribute.content)
        guard let type = fields.nextCanonical(tag: 0x06), type.content.elementsEqual([0x55, 0x04, 0x03]) else { return nil }
        let value: ArraySlice<UInt8>
        if let utf8 = fields.nextCanonical(tag: 0x0C) {
            value = utf8.content
            guard value.allSatisfy({ (0x20...0x7E).contains($0) }) else { return nil }
        } else if let printable = fields.nextCanonical(tag: 0x13) {
            value = printable.content
            guard value.allSatisfy(isPrintableStringCharacter) else { return nil }
        } else {
            return nil
        }
        guard fields.isAtEnd, describesUnescaped(value) else { return nil }
        return .commonName(String(decoding: value, as: UTF8.self))
    }

    /// Whether swift-certificates' description of this value (which is how the library path reads
    /// the CN) is the value itself: its RFC 4514 escaping adds a backslash before `, + " \ < > ;`,
    /// a leading space or `#`, and a trailing space. Other values go to the library, so that a
    /// CN such as " web.test" means the same name on both paths.
    static func describesUnescaped(_ value: ArraySlice<UInt8>) -> Bool {
        if let first = value.first, first == 0x20 || first == 0x23 { return false }
        if value.last == 0x20 { return false }
        return !value.contains { byte in
            switch byte {
            case 0x2C, 0x2B, 0x22, 0x5C, 0x3C, 0x3E, 0x3B: return true
            default: return false
            }
        }
    }

    /// X.680 PrintableString: letters, digits, space and ' ( ) + , - . / : = ?
    static func isPrintableStringCharacter(_ byte: UInt8) -> Bool {
        switch byte {
        case 0x41...0x5A, 0x61...0x7A, 0x30...0x39, 0x20, 0x27, 0x28, 0x29, 0x2B, 0x2C, 0x2D, 0x2E, 0x2F, 0x3A, 0x3D, 0x3F:
            return true
        default:
            return false
        }
    }

    /// No attributes, or one extensionRequest holding only a non-critical subjectAltName with
    /// at least one dNSName (ASCII) or iPAddress (4 or 16 octets).
    static func readAttributes(_ content: ArraySlice<UInt8>) -> [GeneralName]? {
        if content.isEmpty { return [] }
        var attributes = DERWalker(content)
        guard let attribute = attributes.nextCanonical(tag: 0x30), attributes.isAtEnd else { return nil }
        var attributeFields = DERWalker(attribute.content)
        guard let type = attributeFields.nextCanonical(tag: 0x06), type.content.elementsEqual(extensionRequestOID),
              let values = attributeFields.nextCanonical(tag: 0x31), attributeFields.isAtEnd else { return nil }
        var valueList = DERWalker(values.content)
        guard let extensions = valueList.nextCanonical(tag: 0x30), valueList.isAtEnd else { return nil }
        var extensionList = DERWalker(extensions.content)
        guard let onlyExtension = extensionList.nextCanonical(tag: 0x30), extensionList.isAtEnd else { return nil }
        var extensionFields = DERWalker(onlyExtension.content)
        guard let oid = extensionFields.nextCanonical(tag: 0x06), oid.content.elementsEqual([0x55, 0x1D, 0x11]),
              let value = extensionFields.nextCanonical(tag: 0x04), extensionFields.isAtEnd else { return nil }
        var valueFields = DERWalker(value.content)
        guard let generalNames = valueFields.nextCanonical(tag: 0x30), valueFields.isAtEnd,
              !generalNames.content.isEmpty else { return nil }
        var entries = DERWalker(generalNames.content)
        var names: [GeneralName] = []
        while !entries.isAtEnd {
            if let dns = entries.nextCanonical(tag: 0x82) {
                guard dns.content.allSatisfy({ $0 < 0x80 }) else { return nil }
                names.append(.dnsName(String(decoding: dns.content, as: UTF8.self)))
            } else if let ip = entries.nextCanonical(tag: 0x87) {
                guard ip.content.count == 4 || ip.content.count == 16 else { return nil }
                names.append(.ipAddress(ASN1OctetString(contentBytes: ip.content)))
            } else {
                return nil
            }
        }
        return names
    }
}
