import AutoSSLCore
import Foundation
import Testing
import TestSupport

/// The traditional encrypted PEM step-ca writes for its CA keys, against what openssl writes and reads.
@Suite struct LegacyEncryptedPEMTests {
    let password = "step-ca key password 2024"

    /// A key made by openssl, then encrypted by `openssl ec|rsa -<cipher>` in the traditional format.
    func opensslKey(_ generate: [String], convert: [String], cipher: String, in dir: TemporaryDirectory) throws -> (plain: String, encrypted: String) {
        let plain = dir.file("plain-\(cipher).pem")
        let made = try runProcess("openssl", generate + ["-out", plain])
        #expect(made.status == 0, "\(made)")
        let passFile = try dir.write("pass", password + "\n")
        let encrypted = dir.file("encrypted-\(cipher).pem")
        let result = try runProcess("openssl", convert + ["-in", plain, "-\(cipher)", "-passout", "file:" + passFile, "-out", encrypted])
        #expect(result.status == 0, "\(result)")
        return (plain, encrypted)
    }

    @Test(arguments: ["prime256v1", "secp384r1"], ["aes256", "aes128", "aes192"])
    func opensslECAESKeysOpenWithTheirPassword(curve: String, cipher: String) throws {
        let dir = TemporaryDirectory()
        let (plain, encrypted) = try opensslKey(
            ["ecparam", "-genkey", "-name", curve, "-noout"], convert: ["ec"], cipher: cipher, in: dir)
        let text = try readFile(encrypted)
        #expect(text.contains("-----BEGIN EC PRIVATE KEY-----") && text.contains("Proc-Type: 4,ENCRYPTED"))
        #expect(text.contains("DEK-Info: AES-\(cipher.dropFirst(3))-CBC,"))
        let key = try LegacyEncryptedPEM.decryptKey(pem: text, password: password)
        let publicPEM = try runProcess("openssl", ["pkey", "-in", plain, "-pubout"])
        #expect(publicPEM.stdout == (try key.publicKey.serializeAsPEM().pemString + "\n"))
        #expect(throws: AutoSSLError.self) { try LegacyEncryptedPEM.decryptKey(pem: text, password: "not the password at all") }
    }

    @Test func opensslRSATraditionalKeyOpensWithItsPassword() throws {
        let dir = TemporaryDirectory()
        let (plain, encrypted) = try opensslKey(
            ["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"], convert: ["rsa", "-traditional"], cipher: "aes256", in: dir)
        let text = try readFile(encrypted)
        #expect(text.contains("-----BEGIN RSA PRIVATE KEY-----") && text.contains("DEK-Info: AES-256-CBC,"))
        let opened = try CAKeyFile.open(pem: text, password: password)
        #expect(opened.wasEncrypted && opened.format == "traditional PEM (AES-256-CBC)")
        let publicPEM = try runProcess("openssl", ["pkey", "-in", plain, "-pubout"])
        #expect(publicPEM.stdout == (try opened.key.publicKey.serializeAsPEM().pemString + "\n"))
    }

    @Test func manyWrongPasswordsAreAllRefusedAsWrongPasswords() throws {
        // CBC has no MAC: about 1 in 256 wrong keys unpads cleanly, so the DER check must catch those.
        let dir = TemporaryDirectory()
        let (_, encrypted) = try opensslKey(["ecparam", "-genkey", "-name", "prime256v1", "-noout"], convert: ["ec"], cipher: "aes256", in: dir)
        let block = try LegacyEncryptedPEM.parse(try readFile(encrypted))
        for attempt in 0..<600 {
            do {
                _ = try LegacyEncryptedPEM.decrypt(block, password: "wrong password number \(attempt)")
                Issue.record("wrong password \(attempt) was accepted")
            } catch let error as AutoSSLError {
                #expect(error.message.contains("wrong password"))
            }
        }
    }

    @Test func bytesToKeyIsOpenSSLsKeyDerivation() throws {
        // `openssl enc -P -md md5 -S SALT` prints EVP_BytesToKey's key and IV for that salt.
        let result = try runProcess("openssl", [
            "enc", "-aes-256-cbc", "-P", "-md", "md5", "-S", "0102030405060708", "-pass", "pass:" + password,
        ])
        #expect(result.status == 0, "\(result)")
        let printed = result.stdout.split(separator: "\n").compactMap { line -> (String, String)? in
            let parts = line.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            return parts.count == 2 ? (parts[0], parts[1].lowercased()) : nil
        }
        let key = printed.first { $0.0 == "key" }?.1
        let iv = printed.first { $0.0 == "iv" }?.1
        let derived = LegacyEncryptedPEM.bytesToKey(password: Array(password.utf8), salt: [1, 2, 3, 4, 5, 6, 7, 8], length: 48)
        #expect(Hex.encode(derived.prefix(32)) == key)
        #expect(Hex.encode(derived.suffix(16)) == iv)
    }

    @Test func opensslOpensATraditionalKeyAfterOurParseKeepsItsBytes() throws {
        // Our reading of the body must be exactly openssl's: decrypting gives the DER openssl prints.
        let dir = TemporaryDirectory()
        let (plain, encrypted) = try opensslKey(["ecparam", "-genkey", "-name", "prime256v1", "-noout"], convert: ["ec"], cipher: "aes256", in: dir)
        let der = try LegacyEncryptedPEM.decrypt(try LegacyEncryptedPEM.parse(try readFile(encrypted)), password: password)
        let expected = try runProcess("openssl", ["ec", "-in", plain, "-outform", "DER", "-out", dir.file("key.der")])
        #expect(expected.status == 0)
        #expect(der == Array(try Data(contentsOf: URL(fileURLWithPath: dir.file("key.der")))))
    }

    @Test func caKeyFileOpensPKCS8AndUnencryptedKeys() throws {
        let key = try SigningKey.generate(.p256)
        let pkcs8 = try EncryptedPrivateKey.encrypt(pkcs8: key.pkcs8DERRepresentation, password: password, iterations: 210_000)
        let opened = try CAKeyFile.open(pem: pkcs8, password: password)
        #expect(opened.key.publicKey == key.publicKey && opened.wasEncrypted && opened.format == "PKCS#8")
        let clear = try CAKeyFile.open(pem: key.pkcs8PEMRepresentation, password: "")
        #expect(clear.key.publicKey == key.publicKey && !clear.wasEncrypted)
        #expect(throws: AutoSSLError.self) { try CAKeyFile.open(pem: pkcs8, password: "wrong wrong wrong wrong") }
    }

    static let iv = "0123456789ABCDEF0123456789ABCDEF"
    static let body = String(repeating: "QUFBQUFBQUFBQUFBQUFBQQ==\n", count: 1)

    @Test(arguments: [
        ("empty", ""),
        ("no block", "hello\n"),
        ("certificate", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"),
        ("no end", "-----BEGIN EC PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-256-CBC,\(iv)\n\nAAAA\n"),
        ("headers never end", "-----BEGIN EC PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-256-CBC,\(iv)"),
        ("des", "-----BEGIN EC PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: DES-EDE3-CBC,0123456789ABCDEF\n\n\(body)-----END EC PRIVATE KEY-----\n"),
        ("short iv", "-----BEGIN EC PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-256-CBC,0123\n\n\(body)-----END EC PRIVATE KEY-----\n"),
        ("odd iv", "-----BEGIN EC PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-256-CBC,\(iv)0\n\n\(body)-----END EC PRIVATE KEY-----\n"),
        ("non-hex iv", "-----BEGIN EC PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-256-CBC,ZZ23456789ABCDEF0123456789ABCDEF\n\n\(body)-----END EC PRIVATE KEY-----\n"),
        ("no dek", "-----BEGIN EC PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\n\n\(body)-----END EC PRIVATE KEY-----\n"),
        ("dek without cipher", "-----BEGIN EC PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: \(iv)\n\n\(body)-----END EC PRIVATE KEY-----\n"),
        ("partial block", "-----BEGIN EC PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-256-CBC,\(iv)\n\nAAAAAAAA\n-----END EC PRIVATE KEY-----\n"),
        ("bad base64", "-----BEGIN EC PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-256-CBC,\(iv)\n\n!!!!\n-----END EC PRIVATE KEY-----\n"),
        ("other proc type", "-----BEGIN EC PRIVATE KEY-----\nProc-Type: 4,MIC-ONLY\nDEK-Info: AES-256-CBC,\(iv)\n\n\(body)-----END EC PRIVATE KEY-----\n"),
        ("mismatched end", "-----BEGIN EC PRIVATE KEY-----\n\(body)-----END RSA PRIVATE KEY-----\n"),
        ("plain garbage", "-----BEGIN EC PRIVATE KEY-----\n\(body)-----END EC PRIVATE KEY-----\n"),
        ("nul", "-----BEGIN EC PRIVATE KEY-----\n\0\n-----END EC PRIVATE KEY-----\n"),
        ("header line without colon", "-----BEGIN EC PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nnonsense\n\n\(body)-----END EC PRIVATE KEY-----\n"),
        ("too large", "-----BEGIN EC PRIVATE KEY-----\n" + String(repeating: "A", count: 70_000) + "\n-----END EC PRIVATE KEY-----\n"),
    ])
    func malformedKeyFilesAreRefusedWithAnError(name: String, text: String) {
        #expect(throws: AutoSSLError.self, "\(name)") { try CAKeyFile.open(pem: text, password: self.password) }
        #expect(throws: AutoSSLError.self, "\(name)") { try LegacyEncryptedPEM.decryptKey(pem: text, password: self.password) }
    }

    @Test func unsupportedCipherIsNamedInTheError() {
        let text = "-----BEGIN EC PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: DES-EDE3-CBC,0123456789ABCDEF\n\n\(Self.body)-----END EC PRIVATE KEY-----\n"
        do {
            _ = try LegacyEncryptedPEM.parse(text)
            Issue.record("DES was accepted")
        } catch let error as AutoSSLError {
            #expect(error.message.contains("DES-EDE3-CBC") && error.hint?.contains("openssl ec -aes256") == true)
        } catch {
            Issue.record("unexpected \(error)")
        }
    }

    @Test func randomDamageToARealKeyNeverCrashesAndIsMostlyRefused() throws {
        let dir = TemporaryDirectory()
        let (_, encrypted) = try opensslKey(["ecparam", "-genkey", "-name", "prime256v1", "-noout"], convert: ["ec"], cipher: "aes256", in: dir)
        let original = Array(try readFile(encrypted).utf8)
        _ = try LegacyEncryptedPEM.decryptKey(pem: String(decoding: original, as: UTF8.self), password: password)
        var generator = SystemRandomNumberGenerator()
        var opened = 0
        for _ in 0..<3_000 {
            var bytes = original
            for _ in 0..<Int.random(in: 1...4, using: &generator) {
                switch Int.random(in: 0..<3, using: &generator) {
                case 0: bytes[Int.random(in: 0..<bytes.count, using: &generator)] = UInt8.random(in: 0...255, using: &generator)
                case 1: if bytes.count > 1 { bytes.remove(at: Int.random(in: 0..<bytes.count, using: &generator)) }
                default: bytes.insert(UInt8.random(in: 0...255, using: &generator), at: Int.random(in: 0...bytes.count, using: &generator))
                }
            }
            // Damage to what the reader skips (the label's spacing, line breaks) may still open.
            if (try? LegacyEncryptedPEM.decryptKey(pem: String(decoding: bytes, as: UTF8.self), password: password)) != nil { opened += 1 }
        }
        #expect(opened < 1_500, "\(opened) of 3000 damaged files opened")
    }
}
