import Foundation
import SwiftASN1
import X509

/// Where a leaf tells relying parties to check its revocation: a CRL distribution point (RFC 5280
/// §4.2.1.13) and an authority information access OCSP URL (§4.2.2.1). The one rule for both
/// leaf paths: `LeafEncoder` appends `extensions` as bytes, `CertificateProfiles.leaf` adds the same
/// (OID, value) pairs as swift-certificates extensions, so both write the same DER.
public struct RevocationPointers: Sendable, Equatable {
    public let crlURL: String?
    public let ocspURL: String?

    /// Neither URL: leaves carry no revocation pointer.
    public static let none = RevocationPointers(validated: nil, nil)

    /// The longest URL accepted.
    public static let maximumURLLength = 512

    public init(crlURL: String?, ocspURL: String?) throws {
        self.init(
            validated: try crlURL.map { try Self.check($0, what: "CRL URL") },
            try ocspURL.map { try Self.check($0, what: "OCSP URL") })
    }

    private init(validated crlURL: String?, _ ocspURL: String?) {
        self.crlURL = crlURL
        self.ocspURL = ocspURL
    }

    public var isEmpty: Bool { crlURL == nil && ocspURL == nil }

    /// A URL a certificate may carry: http or https, printable ASCII without spaces (an IA5String
    /// URI), a host, at most `maximumURLLength` characters.
    @discardableResult
    public static func check(_ url: String, what: String = "URL") throws -> String {
        let bytes = Array(url.utf8)
        guard !bytes.isEmpty, bytes.count <= maximumURLLength, bytes.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else {
            throw AutoSSLError.invalidArgument(
                "the \(what) \"\(url)\" is not usable in a certificate",
                hint: "give an http:// or https:// URL of printable ASCII without spaces, at most \(maximumURLLength) characters")
        }
        guard let parsed = URL(string: url), let scheme = parsed.scheme?.lowercased(), scheme == "http" || scheme == "https",
              let host = parsed.host, !host.isEmpty, parsed.query == nil, parsed.fragment == nil else {
            throw AutoSSLError.invalidArgument(
                "the \(what) \"\(url)\" is not an http:// or https:// URL with a host",
                hint: "for example http://ca.example.internal:8080/crl")
        }
        return url
    }

    static let crlDistributionPointsOID: [UInt8] = [0x55, 0x1D, 0x1F]  // 2.5.29.31
    static let authorityInfoAccessOID: [UInt8] = [0x2B, 0x06, 0x01, 0x05, 0x05, 0x07, 0x01, 0x01]  // 1.3.6.1.5.5.7.1.1
    static let ocspAccessMethod: [UInt8] = [0x2B, 0x06, 0x01, 0x05, 0x05, 0x07, 0x30, 0x01]  // 1.3.6.1.5.5.7.48.1

    /// The non-critical extensions, in the order leaves carry them: (extnID content octets, extnValue).
    public var extensions: [(oid: [UInt8], value: [UInt8])] {
        var result: [(oid: [UInt8], value: [UInt8])] = []
        if let crlURL {
            // CRLDistributionPoints ::= SEQUENCE OF DistributionPoint { distributionPoint [0]
            // DistributionPointName { fullName [0] GeneralNames { uniformResourceIdentifier [6] } } }
            let uri = LeafEncoder.element(0x86, Array(crlURL.utf8))
            result.append((Self.crlDistributionPointsOID,
                           LeafEncoder.element(0x30, LeafEncoder.element(0x30, LeafEncoder.element(0xA0, LeafEncoder.element(0xA0, uri))))))
        }
        if let ocspURL {
            // AuthorityInfoAccessSyntax ::= SEQUENCE OF AccessDescription { id-ad-ocsp, [6] URI }
            let description = LeafEncoder.element(0x06, Self.ocspAccessMethod) + LeafEncoder.element(0x86, Array(ocspURL.utf8))
            result.append((Self.authorityInfoAccessOID, LeafEncoder.element(0x30, LeafEncoder.element(0x30, description))))
        }
        return result
    }

    /// The extensions as DER Extension fields (what `LeafEncoder` appends).
    var encodedExtensions: [UInt8] {
        extensions.flatMap { LeafEncoder.extensionField(oid: $0.oid, critical: false, value: $0.value) }
    }

    /// The extensions as swift-certificates values (what `CertificateProfiles.leaf` adds).
    func certificateExtensions() throws -> [Certificate.Extension] {
        try extensions.map { item in
            var oidDER = DER.Serializer()
            oidDER.appendPrimitiveNode(identifier: .objectIdentifier) { $0.append(contentsOf: item.oid) }
            let oid = try ASN1ObjectIdentifier(derEncoded: oidDER.serializedBytes)
            return Certificate.Extension(oid: oid, critical: false, value: item.value[...])
        }
    }
}
