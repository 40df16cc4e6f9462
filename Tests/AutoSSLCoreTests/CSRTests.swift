import AutoSSLCore
import Foundation
import SwiftASN1
import Testing
import TestSupport
import X509
import _CryptoExtras

@Suite struct CSRTests {
    @Test func acceptsAndReadsOurOwnCSR() throws {
        let key = try SigningKey.generate(.p256)
        let names: [SubjectName] = [.dns("web01.internal"), try SubjectName(parsing: "10.1.2.3")]
        let pem = try VerifiedCSR.make(names: names, key: key)
        let csr = try VerifiedCSR(pem: pem)
        #expect(csr.names == names)
        #expect(csr.keyAlgorithm == .p256)
        #expect(csr.publicKey == key.publicKey)
    }

    @Test func refusesTamperedSignature() throws {
        let key = try SigningKey.generate(.p256)
        let pem = try VerifiedCSR.make(names: [.dns("a.internal")], key: key)
        var der = try PEMDocument(pemString: pem).derBytes
        // Flip a bit inside the subject's CN: the signature no longer matches the request info.
        let needle = Array("a.internal".utf8)
        let index = try #require(der.indices.first { Array(der[$0..<min($0 + needle.count, der.count)]) == needle })
        der[index] ^= 0x01
        #expect(throws: AutoSSLError.self) { try VerifiedCSR(der: der) }
    }

    @Test func refusesGarbageAndWrongPEMType() throws {
        #expect(throws: AutoSSLError.self) { try VerifiedCSR(pem: "not a csr") }
        #expect(throws: AutoSSLError.self) { try VerifiedCSR(der: [0x30, 0x03, 0x02, 0x01, 0x00]) }
        let key = try SigningKey.generate(.p256)
        #expect(throws: AutoSSLError.self) { try VerifiedCSR(pem: key.pkcs8PEMRepresentation) }
    }

    @Test func refusesWeakRSA() throws {
        let weak = try _RSA.Signing.PrivateKey(unsafeKeySize: .init(bitCount: 1024))
        let csr = try CertificateSigningRequest(
            version: .v1, subject: try DistinguishedName { CommonName("weak.internal") },
            privateKey: Certificate.PrivateKey(weak), attributes: CertificateSigningRequest.Attributes(),
            signatureAlgorithm: .sha256WithRSAEncryption)
        var serializer = DER.Serializer()
        try serializer.serialize(csr)
        do {
            _ = try VerifiedCSR(der: serializer.serializedBytes)
            Issue.record("accepted an RSA-1024 CSR")
        } catch let error as AutoSSLError {
            #expect(error.message.contains("RSA key of 1024 bits"), "\(error)")
        }
    }

    @Test func acceptsOpenSSLGeneratedCSR() throws {
        let dir = NSTemporaryDirectory() + "/csr-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let result = try runProcess("openssl", [
            "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-384", "-nodes",
            "-keyout", dir + "/k.pem", "-out", dir + "/r.pem", "-subj", "/CN=svc.internal",
            "-addext", "subjectAltName=DNS:svc.internal,IP:192.0.2.10",
        ])
        #expect(result.status == 0, "\(result)")
        let csr = try VerifiedCSR(pem: try String(contentsOfFile: dir + "/r.pem", encoding: .utf8))
        #expect(csr.keyAlgorithm == .p384)
        #expect(csr.names.map(\.description) == ["svc.internal", "192.0.2.10"])
    }
}
