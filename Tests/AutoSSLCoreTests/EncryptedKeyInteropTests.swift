import AutoSSLCore
import Foundation
import Testing
import TestSupport

/// PKCS#8 PBES2 both ways against the openssl CLI, and the JWE against Python's jwcrypto.
@Suite struct EncryptedKeyInteropTests {
    let password = "correct horse battery staple"

    @Test func roundTripsAndRefusesWrongPassword() throws {
        let key = try SigningKey.generate(.p256)
        let pem = try EncryptedPrivateKey.encrypt(pkcs8: key.pkcs8DERRepresentation, password: password)
        #expect(pem.hasPrefix("-----BEGIN ENCRYPTED PRIVATE KEY-----"))
        #expect(try EncryptedPrivateKey.iterations(pem: pem) == 600_000)
        #expect(try EncryptedPrivateKey.decryptKey(pem: pem, password: password).publicKey == key.publicKey)
        #expect(throws: AutoSSLError.self) { try EncryptedPrivateKey.decrypt(pem: pem, password: "wrong password here") }
        #expect(throws: AutoSSLError.self) {
            try EncryptedPrivateKey.encrypt(pkcs8: key.pkcs8DERRepresentation, password: password, iterations: 10_000)
        }
    }

    @Test(arguments: [KeyAlgorithm.p256, .p384, .rsa2048])
    func opensslOpensWhatWeWrite(algorithm: KeyAlgorithm) throws {
        let dir = TemporaryDirectory()
        let key = try SigningKey.generate(algorithm)
        let keyFile = try dir.write(
            "key.pem", try EncryptedPrivateKey.encrypt(pkcs8: key.pkcs8DERRepresentation, password: password))
        let passFile = try dir.write("pass", password + "\n")
        let opened = try runProcess("openssl", ["pkey", "-in", keyFile, "-passin", "file:" + passFile, "-pubout"])
        #expect(opened.status == 0, "\(opened)")
        #expect(opened.stdout == (try key.publicKey.serializeAsPEM().pemString + "\n"))
        let wrongFile = try dir.write("wrong", "not the password\n")
        let refused = try runProcess("openssl", ["pkey", "-in", keyFile, "-passin", "file:" + wrongFile, "-noout"])
        #expect(refused.status != 0)
        // openssl reports the scheme we claim: PBES2, PBKDF2 with HMAC-SHA256, AES-256-CBC, 600000 rounds.
        let parsed = try runProcess("openssl", ["asn1parse", "-in", keyFile])
        #expect(parsed.stdout.contains("PBES2") && parsed.stdout.contains("hmacWithSHA256")
            && parsed.stdout.contains("aes-256-cbc") && parsed.stdout.contains("INTEGER           :0927C0"))
    }

    @Test(arguments: [
        ["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"],
        ["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-384"],
        ["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"],
    ])
    func weOpenWhatOpenSSLWrites(generate: [String]) throws {
        let dir = TemporaryDirectory()
        let plain = dir.file("plain.pem")
        #expect(try runProcess("openssl", generate + ["-out", plain]).status == 0)
        let passFile = try dir.write("pass", password + "\n")
        // Both openssl's default scheme (low iteration count) and an explicit strong one must load.
        for extra in [[String](), ["-iter", "600000"]] {
            let encrypted = dir.file("enc.pem")
            let result = try runProcess("openssl", [
                "pkcs8", "-topk8", "-in", plain, "-out", encrypted, "-v2", "aes-256-cbc", "-v2prf", "hmacWithSHA256",
                "-passout", "file:" + passFile,
            ] + extra)
            #expect(result.status == 0, "\(result)")
            let key = try EncryptedPrivateKey.decryptKey(pem: try readFile(encrypted), password: password)
            let publicPEM = try runProcess("openssl", ["pkey", "-in", plain, "-pubout"])
            #expect(publicPEM.stdout == (try key.publicKey.serializeAsPEM().pemString + "\n"))
            #expect(throws: AutoSSLError.self) { try EncryptedPrivateKey.decrypt(pem: try readFile(encrypted), password: "nope nope nope nope") }
        }
    }

    @Test func aes128SchemeFromOpenSSLAlsoLoads() throws {
        let dir = TemporaryDirectory()
        let plain = dir.file("plain.pem")
        #expect(try runProcess("openssl", ["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", plain]).status == 0)
        let passFile = try dir.write("pass", password + "\n")
        let encrypted = dir.file("enc.pem")
        #expect(try runProcess("openssl", ["pkcs8", "-topk8", "-in", plain, "-out", encrypted, "-v2", "aes-128-cbc", "-passout", "file:" + passFile]).status == 0)
        _ = try EncryptedPrivateKey.decryptKey(pem: try readFile(encrypted), password: password)
    }

    @Test func jweRoundTripAndTamperDetection() throws {
        let jwk = ECJWK.generatePrivate()
        let plaintext = Data(try jwk.jsonString().utf8)
        let jwe = try PasswordJWE.encrypt(plaintext, password: password)
        #expect(jwe.split(separator: ".").count == 5)
        #expect(try PasswordJWE.decrypt(jwe, password: password) == plaintext)
        #expect(throws: AutoSSLError.self) { try PasswordJWE.decrypt(jwe, password: "wrong password here") }
        var parts = jwe.split(separator: ".").map(String.init)
        parts[3] = String(parts[3].reversed())
        #expect(throws: AutoSSLError.self) { try PasswordJWE.decrypt(parts.joined(separator: "."), password: password) }
        let decoded = try JSONDecoder().decode(ECJWK.self, from: try PasswordJWE.decrypt(jwe, password: password))
        #expect(try decoded.privateKey().publicKey.rawRepresentation == (try jwk.publicKey().rawRepresentation))
    }

    /// JOSE libraries cap PBES2 counts against denial of service (jwcrypto at 16,384 by default,
    /// joserfc at 300,000 without a setting); jwcrypto's cap is a documented knob, so it is our reference.
    static let jwcryptoPrelude = """
        import json, sys
        from jwcrypto import jwa, jwe, jwk
        jwa.default_max_pbkdf2_iterations = 2000000


        """

    @Test func jwcryptoDecryptsOurJWEAndAgreesOnTheThumbprint() throws {
        let jwk = ECJWK.generatePrivate()
        let jwe = try PasswordJWE.encrypt(Data(try jwk.jsonString().utf8), password: password)
        let script = Self.jwcryptoPrelude + """
            token = jwe.JWE()
            token.deserialize(sys.argv[1], key=jwk.JWK.from_password(sys.argv[2]))
            key = json.loads(token.payload)
            print(json.dumps({"header": token.jose_header, "jwk": key,
                              "thumbprint": jwk.JWK(**key).thumbprint()}))
            """
        let result = try runPython(script, arguments: [jwe, password])
        #expect(result.status == 0, "\(result)")
        let output = try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any]
        let header = output?["header"] as? [String: Any]
        #expect(header?["alg"] as? String == "PBES2-HS256+A128KW")
        #expect(header?["enc"] as? String == "A256GCM")
        #expect((header?["p2c"] as? Int ?? 0) >= 600_000)
        let decrypted = output?["jwk"] as? [String: Any]
        #expect(decrypted?["d"] as? String == jwk.d)
        #expect(decrypted?["x"] as? String == jwk.x)
        #expect(output?["thumbprint"] as? String == jwk.thumbprint)
        #expect(jwk.kid == jwk.thumbprint)
        // The wrong password must fail in the independent implementation too.
        #expect(try runPython(script, arguments: [jwe, "not the right password"]).status != 0)
    }

    @Test func weDecryptJwcryptoJWE() throws {
        let script = Self.jwcryptoPrelude + """
            header = {"alg": "PBES2-HS256+A128KW", "enc": "A256GCM", "p2c": 600000}
            token = jwe.JWE(b"hello from jwcrypto", protected=json.dumps(header))
            token.add_recipient(jwk.JWK.from_password(sys.argv[1]))
            print(token.serialize(compact=True))
            """
        let result = try runPython(script, arguments: [password])
        #expect(result.status == 0, "\(result)")
        let plaintext = try PasswordJWE.decrypt(result.stdout, password: password)
        #expect(String(decoding: plaintext, as: UTF8.self) == "hello from jwcrypto")
    }
}
