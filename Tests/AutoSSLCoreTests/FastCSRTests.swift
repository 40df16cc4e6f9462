@testable import AutoSSLCore
import Crypto
import Foundation
import SwiftASN1
import Testing
import TestSupport
import X509

/// The fast CSR reader must read exactly what swift-certificates reads wherever it answers, and
/// step aside (nil) for everything else, so `VerifiedCSR` comes out the same either way.
@Suite struct FastCSRTests {
    /// Both readings of `der`: the same fields, or both refuse.
    static func expectSameReading(_ der: [UInt8], _ comment: Comment? = nil, sourceLocation: SourceLocation = #_sourceLocation) {
        let fast = Result { try VerifiedCSR(der: der, fastReader: true) }
        let library = Result { try VerifiedCSR(der: der, fastReader: false) }
        switch (fast, library) {
        case (.success(let a), .success(let b)):
            #expect(a.publicKey == b.publicKey, comment, sourceLocation: sourceLocation)
            #expect(a.keyAlgorithm == b.keyAlgorithm, comment, sourceLocation: sourceLocation)
            #expect(a.names == b.names, comment, sourceLocation: sourceLocation)
            #expect(a.subjectKeyIdentifier == b.subjectKeyIdentifier, comment, sourceLocation: sourceLocation)
            #expect(a.subjectPublicKeyInfo == b.subjectPublicKeyInfo, comment, sourceLocation: sourceLocation)
        case (.failure, .failure):
            break
        default:
            Issue.record("fast: \(fast), library: \(library) \(comment.map { "\($0)" } ?? "")", sourceLocation: sourceLocation)
        }
    }

    static func der(ofPEM pem: String) throws -> [UInt8] { try PEMDocument(pemString: pem).derBytes }

    @Test func readsOurClientsCSRsLikeTheLibrary() throws {
        for algorithm in [KeyAlgorithm.p256, .p384, .rsa2048] {
            let key = try SigningKey.generate(algorithm)
            for names in [["one.test"], ["a.test", "10.0.0.1", "fd00::7", "b.test"], (0..<40).map { "host-\($0).long-enough-label.test" }] {
                let der = try Self.der(ofPEM: try VerifiedCSR.make(names: try names.map(SubjectName.init(parsing:)), key: key))
                #expect((FastCSR.read(der) != nil) == !algorithm.isRSA, "\(algorithm)")
                Self.expectSameReading(der, "\(algorithm) \(names.count)")
                let csr = try VerifiedCSR(der: der)
                #expect(csr.names.map(\.description) == names)
                #expect(csr.publicKey == key.publicKey)
            }
        }
    }

    @Test func readsOpenSSLsCSRsLikeTheLibrary() throws {
        let dir = NSTemporaryDirectory() + "/fastcsr-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let variants: [(curve: String, arguments: [String], fast: Bool)] = [
            ("P-256", ["-subj", "/CN=svc.internal", "-addext", "subjectAltName=DNS:svc.internal,IP:192.0.2.10"], true),
            ("P-384", ["-subj", "/CN=svc.internal", "-addext", "subjectAltName=DNS:Svc.Internal,DNS:x.internal"], true),
            ("P-256", ["-subj", "/CN=only-cn.internal"], true),
            ("P-256", ["-subj", "/O=Org/CN=svc.internal", "-addext", "subjectAltName=DNS:svc.internal"], false),
            ("P-256", ["-subj", "/CN=svc.internal", "-addext", "subjectAltName=DNS:svc.internal", "-addext", "keyUsage=digitalSignature"], false),
            ("P-256", ["-subj", "/CN=svc.internal", "-addext", "subjectAltName=critical,DNS:svc.internal"], false),
            ("P-256", ["-subj", "/CN=svc.internal", "-addext", "subjectAltName=DNS:svc.internal,URI:https://x.test/"], false),
            ("P-256", ["-subj", "/CN=svc.internal", "-sha384", "-addext", "subjectAltName=DNS:svc.internal"], true),
            ("P-384", ["-subj", "/CN=svc.internal", "-sha512", "-addext", "subjectAltName=DNS:svc.internal"], false),
            ("P-256", ["-subj", "/CN=svc.internal", "-utf8", "-addext", "subjectAltName=DNS:svc.internal"], true),
        ]
        for (index, variant) in variants.enumerated() {
            let result = try runProcess("openssl", [
                "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:\(variant.curve)", "-nodes",
                "-keyout", "\(dir)/k\(index).pem", "-out", "\(dir)/r\(index).pem",
            ] + variant.arguments)
            #expect(result.status == 0, "\(result)")
            let der = try Self.der(ofPEM: try String(contentsOfFile: "\(dir)/r\(index).pem", encoding: .utf8))
            #expect((FastCSR.read(der) != nil) == variant.fast, "\(variant.arguments)")
            Self.expectSameReading(der, "\(variant.arguments)")
        }
    }

    // MARK: - Hand-made CSRs, correctly signed, at the edges of the fast reader's shapes

    static let key = P256.Signing.PrivateKey()

    static func tlv(_ tag: UInt8, _ content: [UInt8]) -> [UInt8] { LeafEncoder.element(tag, content) }

    /// A CSR from raw parts, signed by `key` over exactly the info bytes given.
    static func signed(
        version: [UInt8] = [0x02, 0x01, 0x00], subject: [UInt8], attributes: [UInt8], infoTrailer: [UInt8] = [],
        algorithm: [UInt8] = FastCSR.ecdsaWithSHA256, spki: [UInt8]? = nil, lengthRewrite: ((inout [UInt8]) -> Void)? = nil
    ) throws -> [UInt8] {
        let publicKeyInfo = try spki ?? CertificateProfiles.subjectPublicKeyInfo(of: Certificate.PublicKey(key.publicKey))
        var info = tlv(0x30, version + subject + publicKeyInfo + attributes + infoTrailer)
        lengthRewrite?(&info)
        let signature = Array(try key.signature(for: info).derRepresentation)
        return tlv(0x30, info + algorithm + tlv(0x03, [0x00] + signature))
    }

    static func commonName(_ tag: UInt8, _ value: [UInt8]) -> [UInt8] {
        tlv(0x30, tlv(0x31, tlv(0x30, [0x06, 0x03, 0x55, 0x04, 0x03] + tlv(tag, value))))
    }

    static func extensionRequest(_ extensions: [[UInt8]]) -> [UInt8] {
        tlv(0xA0, tlv(0x30, tlv(0x06, FastCSR.extensionRequestOID) + tlv(0x31, tlv(0x30, extensions.flatMap { $0 }))))
    }

    static func subjectAltName(_ entries: [[UInt8]], critical: Bool = false) -> [UInt8] {
        tlv(0x30, tlv(0x06, [0x55, 0x1D, 0x11]) + (critical ? [0x01, 0x01, 0xFF] : []) + tlv(0x04, tlv(0x30, entries.flatMap { $0 })))
    }

    static func dns(_ name: String) -> [UInt8] { tlv(0x82, Array(name.utf8)) }

    @Test func handMadeShapesReadTheSameOrStepAside() throws {
        let cn = Self.commonName(0x0C, Array("web.test".utf8))
        let san = Self.extensionRequest([Self.subjectAltName([Self.dns("web.test"), Self.tlv(0x87, [10, 0, 0, 1])])])
        let cases: [(String, [UInt8], Bool)] = [
            ("plain", try Self.signed(subject: cn, attributes: san), true),
            ("no attributes", try Self.signed(subject: cn, attributes: [0xA0, 0x00]), true),
            ("empty subject", try Self.signed(subject: [0x30, 0x00], attributes: san), true),
            ("printable CN", try Self.signed(subject: Self.commonName(0x13, Array("web.test".utf8)), attributes: san), true),
            ("printable CN with a character PrintableString lacks",
             try Self.signed(subject: Self.commonName(0x13, Array("web_test".utf8)), attributes: san), false),
            ("UTF-8 CN beyond ASCII", try Self.signed(subject: Self.commonName(0x0C, Array("wéb.test".utf8)), attributes: san), false),
            ("IA5 CN", try Self.signed(subject: Self.commonName(0x16, Array("web.test".utf8)), attributes: san), false),
            ("upper-case and repeated names",
             try Self.signed(subject: cn, attributes: Self.extensionRequest([Self.subjectAltName([Self.dns("WEB.test"), Self.dns("web.test")])])), true),
            ("CN not among the SANs",
             try Self.signed(subject: Self.commonName(0x0C, Array("other.test".utf8)), attributes: san), true),
            ("CN that is no host name", try Self.signed(subject: Self.commonName(0x0C, Array("Web Server".utf8)), attributes: san), true),
            ("critical SAN", try Self.signed(subject: cn, attributes: Self.extensionRequest([Self.subjectAltName([Self.dns("web.test")], critical: true)])), false),
            ("empty SAN", try Self.signed(subject: cn, attributes: Self.extensionRequest([Self.subjectAltName([])])), false),
            ("IP of 5 octets", try Self.signed(subject: cn, attributes: Self.extensionRequest([Self.subjectAltName([Self.tlv(0x87, [1, 2, 3, 4, 5])])])), false),
            ("non-ASCII dNSName", try Self.signed(subject: cn, attributes: Self.extensionRequest([Self.subjectAltName([[0x82, 0x02, 0xC3, 0xA9]])])), false),
            ("two extensions",
             try Self.signed(subject: cn, attributes: Self.extensionRequest([
                 Self.subjectAltName([Self.dns("web.test")]),
                 Self.tlv(0x30, Self.tlv(0x06, [0x55, 0x1D, 0x0F]) + Self.tlv(0x04, [0x03, 0x02, 0x07, 0x80])),
             ])), false),
            ("version 2", try Self.signed(version: [0x02, 0x01, 0x01], subject: cn, attributes: san), false),
            ("bytes after the attributes", try Self.signed(subject: cn, attributes: san, infoTrailer: [0x05, 0x00]), false),
            ("SHA-384 with a P-256 key", try Self.signed(subject: cn, attributes: san, algorithm: FastCSR.ecdsaWithSHA384), true),
            ("ecdsa-with-SHA256 with NULL parameters", try Self.signed(
                subject: cn, attributes: san, algorithm: Self.tlv(0x30, Array(FastCSR.ecdsaWithSHA256[2...]) + [0x05, 0x00])), false),
            ("compressed point", try Self.signed(
                subject: cn, attributes: san,
                spki: Self.tlv(0x30, Array(CertificateProfiles.canonicalECPrefixes[0].prefix[2..<23])
                    + Self.tlv(0x03, [0x00] + Array(Self.key.publicKey.compressedRepresentation)))), false),
            ("long-form length where the short form fits", try Self.signed(subject: cn, attributes: san) { info in
                // Re-encode the info's own length with one octet too many.
                let length = info.count - 3
                info = [0x30, 0x82, UInt8(length >> 8), UInt8(length & 0xFF)] + info[3...]
            }, false),
        ]
        for (label, der, fast) in cases {
            #expect((FastCSR.read(der) != nil) == fast, "\(label)")
            Self.expectSameReading(der, "\(label)")
        }
        // Both refuse a CSR whose signature does not cover its bytes.
        var forged = try Self.signed(subject: cn, attributes: san)
        forged[forged.firstIndex(of: 0x82)! + 2] ^= 0x01  // a letter of the dNSName
        #expect(throws: AutoSSLError.self) { try VerifiedCSR(der: forged) }
        Self.expectSameReading(forged, "forged")
    }

    @Test func randomDamageNeverReadsDifferently() throws {
        var random = SeededGenerator(seed: 99)
        let sources = [
            try Self.signed(subject: Self.commonName(0x0C, Array("web.test".utf8)),
                            attributes: Self.extensionRequest([Self.subjectAltName([Self.dns("web.test"), Self.tlv(0x87, [10, 0, 0, 1])])])),
            try Self.der(ofPEM: try VerifiedCSR.make(names: [.dns("p384.test")], key: try SigningKey.generate(.p384))),
        ]
        for source in sources {
            for round in 0..<1_500 {
                var der = source
                switch round % 3 {
                case 0: der[Int.random(in: 0..<der.count, using: &random)] = UInt8.random(in: 0...255, using: &random)
                case 1: der.removeLast(Int.random(in: 1...8, using: &random))
                default: der.insert(UInt8.random(in: 0...255, using: &random), at: Int.random(in: 0..<der.count, using: &random))
                }
                Self.expectSameReading(der, "round \(round)")
            }
        }
    }
}
