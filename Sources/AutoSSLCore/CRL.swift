import Foundation
import SwiftASN1
import X509

/// An X.509 v2 CRL (RFC 5280 §5). swift-certificates has no CRL type, so the DER is built here with
/// SwiftASN1; the tests check it with `openssl crl -verify` and `openssl verify -crl_check`.
public enum CRLBuilder {
    public struct Entry: Sendable, Equatable {
        /// Big-endian serial bytes.
        public var serial: [UInt8]
        public var revokedAt: Date
        /// RFC 5280 CRLReason; 0 (unspecified) is written without the extension, as §5.3.1 advises.
        public var reasonCode: Int

        public init(serial: [UInt8], revokedAt: Date, reasonCode: Int) {
            self.serial = serial
            self.revokedAt = revokedAt
            self.reasonCode = reasonCode
        }
    }

    /// RFC 5280 §5.3.1 reason codes; 7 is unused and 8 (removeFromCRL) belongs to delta CRLs only.
    public static let reasonNames: [Int: String] = [
        0: "unspecified", 1: "keyCompromise", 2: "cACompromise", 3: "affiliationChanged", 4: "superseded",
        5: "cessationOfOperation", 6: "certificateHold", 9: "privilegeWithdrawn", 10: "aACompromise",
    ]

    static let cRLNumberOID: ASN1ObjectIdentifier = [2, 5, 29, 20]
    static let reasonCodeOID: ASN1ObjectIdentifier = [2, 5, 29, 21]
    static let authorityKeyIdentifierOID: ASN1ObjectIdentifier = [2, 5, 29, 35]

    /// DER of the signed CRL.
    public static func build(
        issuer: Certificate, issuerKey: SigningKey, number: Int64, thisUpdate: Date, nextUpdate: Date, entries: [Entry]
    ) throws -> [UInt8] {
        var tbs = DER.Serializer()
        try tbs.appendConstructedNode(identifier: .sequence) { list in
            try list.serialize(1)  // v2
            try appendAlgorithm(issuerKey.algorithm, to: &list)
            try list.serialize(issuer.subject)
            try appendTime(thisUpdate, to: &list)
            try appendTime(nextUpdate, to: &list)
            if !entries.isEmpty {
                try list.appendConstructedNode(identifier: .sequence) { revoked in
                    for entry in entries {
                        try revoked.appendConstructedNode(identifier: .sequence) { item in
                            try item.serialize(ArraySlice(integerBytes(entry.serial)))
                            try appendTime(entry.revokedAt, to: &item)
                            if entry.reasonCode != 0 {
                                try item.appendConstructedNode(identifier: .sequence) { extensions in
                                    try extensions.appendConstructedNode(identifier: .sequence) { ext in
                                        try ext.serialize(reasonCodeOID)
                                        var value = DER.Serializer()
                                        try value.serialize(EnumeratedValue(value: entry.reasonCode))
                                        try ext.serialize(ASN1OctetString(contentBytes: value.serializedBytes[...]))
                                    }
                                }
                            }
                        }
                    }
                }
            }
            try list.appendConstructedNode(identifier: ASN1Identifier(tagWithNumber: 0, tagClass: .contextSpecific)) { wrapper in
                try wrapper.appendConstructedNode(identifier: .sequence) { extensions in
                    try extensions.appendConstructedNode(identifier: .sequence) { ext in
                        try ext.serialize(authorityKeyIdentifierOID)
                        var value = DER.Serializer()
                        try value.appendConstructedNode(identifier: .sequence) { aki in
                            let keyID = try CertificateProfiles.authorityKeyIdentifier(forIssuer: issuer)
                            aki.appendPrimitiveNode(identifier: ASN1Identifier(tagWithNumber: 0, tagClass: .contextSpecific)) {
                                $0.append(contentsOf: keyID)
                            }
                        }
                        try ext.serialize(ASN1OctetString(contentBytes: value.serializedBytes[...]))
                    }
                    try extensions.appendConstructedNode(identifier: .sequence) { ext in
                        try ext.serialize(cRLNumberOID)
                        var value = DER.Serializer()
                        try value.serialize(number)
                        try ext.serialize(ASN1OctetString(contentBytes: value.serializedBytes[...]))
                    }
                }
            }
        }
        let tbsBytes = tbs.serializedBytes
        let signature = try issuerKey.signForX509(tbsBytes)
        var crl = DER.Serializer()
        try crl.appendConstructedNode(identifier: .sequence) { outer in
            outer.serializeRawBytes(tbsBytes)
            try appendAlgorithm(issuerKey.algorithm, to: &outer)
            try outer.serialize(ASN1BitString(bytes: ArraySlice(signature)))
        }
        return crl.serializedBytes
    }

    public static func pem(_ der: [UInt8]) -> String {
        PEMDocument(type: "X509 CRL", derBytes: der).pemString + "\n"
    }

    /// A non-negative INTEGER's content octets: a leading 0x00 when the top bit is set.
    static func integerBytes(_ bytes: [UInt8]) -> [UInt8] {
        var trimmed = Array(bytes.drop { $0 == 0 })
        if trimmed.isEmpty { trimmed = [0] }
        if trimmed[0] & 0x80 != 0 { trimmed.insert(0, at: 0) }
        return trimmed
    }

    static let ecdsaWithSHA256OID: ASN1ObjectIdentifier = [1, 2, 840, 10045, 4, 3, 2]
    static let ecdsaWithSHA384OID: ASN1ObjectIdentifier = [1, 2, 840, 10045, 4, 3, 3]
    static let sha256WithRSAEncryptionOID: ASN1ObjectIdentifier = [1, 2, 840, 113549, 1, 1, 11]

    static func appendAlgorithm(_ algorithm: KeyAlgorithm, to serializer: inout DER.Serializer) throws {
        try serializer.appendConstructedNode(identifier: .sequence) { sequence in
            switch algorithm {
            case .p256: try sequence.serialize(ecdsaWithSHA256OID)
            case .p384: try sequence.serialize(ecdsaWithSHA384OID)
            case .rsa2048, .rsa3072, .rsa4096:
                try sequence.serialize(sha256WithRSAEncryptionOID)
                try sequence.serialize(ASN1Null())
            }
        }
    }

    /// RFC 5280 §5.1.2.4: UTCTime through 2049, GeneralizedTime from 2050, both in whole seconds, UTC.
    static func appendTime(_ date: Date, to serializer: inout DER.Serializer) throws {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        let c = calendar.dateComponents([.year, .month, .day, .hour, .minute, .second], from: date)
        if c.year! < 2050 {
            try serializer.serialize(UTCTime(year: c.year!, month: c.month!, day: c.day!, hours: c.hour!, minutes: c.minute!, seconds: c.second!))
        } else {
            try serializer.serialize(GeneralizedTime(
                year: c.year!, month: c.month!, day: c.day!, hours: c.hour!, minutes: c.minute!, seconds: c.second!,
                fractionalSeconds: 0))
        }
    }
}

/// An ASN.1 ENUMERATED (the CRLReason), minimal two's-complement content octets.
struct EnumeratedValue: DERSerializable {
    var value: Int

    func serialize(into coder: inout DER.Serializer) throws {
        coder.appendPrimitiveNode(identifier: .enumerated) { bytes in
            var content = withUnsafeBytes(of: value.bigEndian) { Array($0) }
            while content.count > 1, content[0] == 0, content[1] & 0x80 == 0 { content.removeFirst() }
            bytes.append(contentsOf: content)
        }
    }
}
