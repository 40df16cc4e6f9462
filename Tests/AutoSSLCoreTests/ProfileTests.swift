import AutoSSLCore
import Foundation
import SwiftASN1
import Testing
import X509

@Suite struct ProfileTests {
    let now = Date()

    func makeChain(rootAlgorithm: KeyAlgorithm = .p384, intermediateAlgorithm: KeyAlgorithm = .p256) throws
        -> (root: Certificate, rootKey: SigningKey, intermediate: Certificate, intermediateKey: SigningKey)
    {
        let rootKey = try SigningKey.generate(rootAlgorithm)
        let root = try CertificateProfiles.root(
            caName: "Test", key: rootKey, notBefore: now - 60, notAfter: now + 86_400 * 3650)
        let intermediateKey = try SigningKey.generate(intermediateAlgorithm)
        let intermediate = try CertificateProfiles.intermediate(
            caName: "Test", publicKey: intermediateKey.publicKey, root: root, rootKey: rootKey,
            notBefore: now - 60, notAfter: now + 86_400 * 1825)
        return (root, rootKey, intermediate, intermediateKey)
    }

    @Test func serialsArePositiveRandomAndAtMost20Octets() {
        var seen = Set<[UInt8]>()
        for _ in 0..<200 {
            let serial = Array(CertificateProfiles.randomSerial().bytes)
            #expect(serial.count == 16)
            #expect(serial[0] & 0x80 == 0)
            #expect(serial[0] != 0)
            seen.insert(serial)
        }
        #expect(seen.count == 200)
    }

    @Test func serialsGrowWithIssuanceTimeAndKeep80RandomBits() {
        let start = Date(timeIntervalSince1970: 1_764_000_000.123)
        var previous: [UInt8] = []
        for step in 0..<50 {
            let now = start.addingTimeInterval(Double(step) * 0.002)
            let serial = Array(CertificateProfiles.randomSerial(now: now).bytes)
            #expect(serial.count == 16 && serial[0] & 0x80 == 0 && serial[0] != 0)
            // The first six octets are the time in milliseconds, big-endian.
            let milliseconds = serial[0..<6].reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
            #expect(milliseconds == UInt64(now.timeIntervalSince1970 * 1000))
            #expect(previous.lexicographicallyPrecedes(serial), "serials must grow with time")
            previous = serial
        }
        // Within one millisecond only the random part differs.
        let tails = Set((0..<100).map { _ in Array(CertificateProfiles.randomSerial(now: start).bytes.suffix(10)) })
        #expect(tails.count == 100)
    }

    @Test func rootProfile() throws {
        let chain = try makeChain()
        let root = chain.root
        #expect(root.issuer == root.subject)
        #expect(root.commonName == "Test Root CA")
        #expect(root.signatureAlgorithm == .ecdsaWithSHA384)
        let basic = try #require(try root.extensions.basicConstraints)
        #expect(basic == .isCertificateAuthority(maxPathLength: nil))
        #expect(root.extensions[oid: .X509ExtensionID.basicConstraints]?.critical == true)
        #expect(root.extensions[oid: .X509ExtensionID.keyUsage]?.critical == true)
        let usage = try #require(try root.extensions.keyUsage)
        #expect(usage.keyCertSign && usage.cRLSign && !usage.digitalSignature)
        let ski = try #require(try root.extensions.subjectKeyIdentifier)
        #expect(ski.keyIdentifier.count == 20)
        #expect(try root.extensions.authorityKeyIdentifier?.keyIdentifier == ski.keyIdentifier)
        #expect(root.publicKey.isValidSignature(root.signature, for: root))
    }

    @Test func intermediateProfile() throws {
        let chain = try makeChain()
        let intermediate = chain.intermediate
        #expect(intermediate.issuer == chain.root.subject)
        #expect(intermediate.commonName == "Test Intermediate CA")
        #expect(try intermediate.extensions.basicConstraints == .isCertificateAuthority(maxPathLength: 0))
        #expect(try intermediate.extensions.authorityKeyIdentifier?.keyIdentifier
            == chain.root.extensions.subjectKeyIdentifier?.keyIdentifier)
        #expect(try intermediate.extensions.extendedKeyUsage?.contains(.serverAuth) == true)
        #expect(chain.root.publicKey.isValidSignature(intermediate.signature, for: intermediate))
    }

    @Test func leafProfileAndChainVerify() async throws {
        let chain = try makeChain()
        let leafKey = try SigningKey.generate(.p256)
        let names = [try SubjectName(parsing: "web01.internal"), try SubjectName(parsing: "10.0.0.7")]
        let leaf = try CertificateProfiles.leaf(
            names: names, publicKey: leafKey.publicKey, serial: CertificateProfiles.randomSerial(),
            issuer: chain.intermediate, issuerKey: chain.intermediateKey, notBefore: now - 60, notAfter: now + 86_400 * 7)
        #expect(leaf.commonName == "web01.internal")
        #expect(leaf.subjectNames == names)
        #expect(try leaf.extensions.basicConstraints == .notCertificateAuthority)
        let usage = try #require(try leaf.extensions.keyUsage)
        #expect(usage.digitalSignature && !usage.keyEncipherment && !usage.keyCertSign)
        let eku = try #require(try leaf.extensions.extendedKeyUsage)
        #expect(eku.contains(.serverAuth) && eku.contains(.clientAuth))

        var verifier = Verifier(rootCertificates: CertificateStore([chain.root])) {
            RFC5280Policy(validationTime: now)
        }
        let result = await verifier.validate(leaf: leaf, intermediates: CertificateStore([chain.intermediate]))
        guard case .validCertificate = result else {
            Issue.record("chain did not verify: \(result)")
            return
        }
    }

    @Test func rsaLeafGetsKeyEnciphermentAndRSAChainsSignWithSHA256() throws {
        let chain = try makeChain(rootAlgorithm: .rsa2048, intermediateAlgorithm: .rsa2048)
        #expect(chain.root.signatureAlgorithm == .sha256WithRSAEncryption)
        let leafKey = try SigningKey.generate(.rsa2048)
        let leaf = try CertificateProfiles.leaf(
            names: [.dns("app.internal")], publicKey: leafKey.publicKey, serial: CertificateProfiles.randomSerial(),
            issuer: chain.intermediate, issuerKey: chain.intermediateKey, notBefore: now, notAfter: now + 3600)
        #expect(try leaf.extensions.keyUsage?.keyEncipherment == true)
        #expect(leaf.signatureAlgorithm == .sha256WithRSAEncryption)
    }

    @Test func keyAlgorithmsRoundTripThroughPKCS8() throws {
        for algorithm in [KeyAlgorithm.p256, .p384, .rsa2048] {
            let key = try SigningKey.generate(algorithm)
            let again = try SigningKey(derRepresentation: key.pkcs8DERRepresentation)
            #expect(again.algorithm == algorithm)
            #expect(again.publicKey == key.publicKey)
            #expect(KeyAlgorithm(publicKey: key.publicKey) == algorithm)
            #expect(key.pkcs8PEMRepresentation.hasPrefix("-----BEGIN PRIVATE KEY-----"))
            #expect(key.pkcs8PEMRepresentation.hasSuffix("-----END PRIVATE KEY-----\n"))
        }
    }

    @Test func certificatePEMEndsWithNewlineSoChainsConcatenate() throws {
        let chain = try makeChain()
        let pem = try chain.root.pemString()
        #expect(pem.hasSuffix("-----END CERTIFICATE-----\n"))
    }
}
