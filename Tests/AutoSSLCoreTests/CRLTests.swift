import AutoSSLCore
import Foundation
import Testing
import TestSupport
import X509

@Suite struct CRLTests {
    @Test(arguments: [KeyAlgorithm.p256, .rsa2048])
    func opensslVerifiesTheCRLAndReadsEveryEntry(algorithm: KeyAlgorithm) throws {
        let now = Date()
        let rootKey = try SigningKey.generate(algorithm == .p256 ? .p384 : .rsa2048)
        let root = try CertificateProfiles.root(caName: "CRL", key: rootKey, notBefore: now - 60, notAfter: now + 86_400 * 365)
        let key = try SigningKey.generate(algorithm)
        let intermediate = try CertificateProfiles.intermediate(
            caName: "CRL", publicKey: key.publicKey, root: root, rootKey: rootKey, notBefore: now - 60, notAfter: now + 86_400 * 300)
        let entries = [
            CRLBuilder.Entry(serial: [0x7f, 0x01, 0x02], revokedAt: now - 100, reasonCode: 1),
            CRLBuilder.Entry(serial: [0xff, 0x00], revokedAt: now - 50, reasonCode: 0),  // top bit set: needs a 0x00 prefix
            CRLBuilder.Entry(serial: [0x01], revokedAt: now, reasonCode: 5),
        ]
        let der = try CRLBuilder.build(
            issuer: intermediate, issuerKey: key, number: 42, thisUpdate: now, nextUpdate: now + 3600, entries: entries)
        let dir = TemporaryDirectory()
        let crl = try dir.write("crl.pem", CRLBuilder.pem(der))
        let chain = try dir.write("chain.pem", try root.pemString() + intermediate.pemString())
        let verify = try runProcess("openssl", ["crl", "-in", crl, "-CAfile", chain, "-noout", "-verify"])
        #expect((verify.stdout + verify.stderr).contains("verify OK"), "\(verify)")
        let text = try runProcess("openssl", ["crl", "-in", crl, "-noout", "-text"]).stdout
        #expect(text.contains("7F0102") && text.contains("FF00") && text.contains("Serial Number: 01"), "\(text)")
        #expect(text.contains("Key Compromise") && text.contains("Cessation Of Operation"), "\(text)")
        #expect(text.contains("X509v3 CRL Number: \n                42") || text.contains("42"), "\(text)")
        // Python's cryptography parses it too and agrees on the entries.
        let python = try runPython("""
            import sys
            from cryptography import x509
            crl = x509.load_pem_x509_crl(open(sys.argv[1], "rb").read())
            print(sorted(format(r.serial_number, "x") for r in crl), crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number)
            """, arguments: [crl])
        #expect(python.stdout == "['1', '7f0102', 'ff00'] 42\n", "\(python)")
    }

    @Test func emptyCRLIsValid() throws {
        let now = Date()
        let key = try SigningKey.generate(.p256)
        let root = try CertificateProfiles.root(caName: "E", key: key, notBefore: now - 60, notAfter: now + 86_400)
        let der = try CRLBuilder.build(issuer: root, issuerKey: key, number: 1, thisUpdate: now, nextUpdate: now + 60, entries: [])
        let dir = TemporaryDirectory()
        let crl = try dir.write("crl.pem", CRLBuilder.pem(der))
        let verify = try runProcess("openssl", ["crl", "-in", crl, "-CAfile", try dir.write("root.pem", try root.pemString()), "-noout", "-verify"])
        #expect((verify.stdout + verify.stderr).contains("verify OK"), "\(verify)")
    }

    @Test func x5cTokensVerifyWithTheLeafKeyOnly() throws {
        let now = Date()
        let caKey = try SigningKey.generate(.p256)
        let ca = try CertificateProfiles.root(caName: "X", key: caKey, notBefore: now - 60, notAfter: now + 86_400)
        for algorithm in [KeyAlgorithm.p256, .p384, .rsa2048] {
            let key = try SigningKey.generate(algorithm)
            let leaf = try CertificateProfiles.leaf(
                names: [.dns("x.internal")], publicKey: key.publicKey, serial: CertificateProfiles.randomSerial(), issuer: ca,
                issuerKey: caKey, notBefore: now, notAfter: now + 3600)
            let claims = CertificateTokenClaims(aud: ["https://ca/renew"], sub: "x.internal", nbf: 1, iat: 1, exp: 2, jti: "j")
            let token = try X5CToken.sign(payload: claims, chain: [leaf, ca], key: key)
            let verified = try X5CToken.verifySignature(token)
            #expect(verified.chain.count == 2 && verified.chain[0] == leaf)
            // Signed by a different key of the same type: refused.
            let other = try X5CToken.sign(payload: claims, chain: [leaf], key: try SigningKey.generate(algorithm))
            #expect(throws: AutoSSLError.self) { try X5CToken.verifySignature(other) }
        }
    }
}
