import Crypto
import Foundation
import SwiftASN1
import _CryptoExtras

/// PKCS#8 EncryptedPrivateKeyInfo with PBES2 (RFC 8018): PBKDF2-HMAC-SHA256 + AES-256-CBC.
/// This is the "ENCRYPTED PRIVATE KEY" PEM that `openssl pkey -passin` opens. swift-crypto has no
/// writer for it, so it is encoded here with SwiftASN1 (tested against the openssl CLI both ways).
public enum EncryptedPrivateKey {
    /// Iterations we write; the security model asks for at least 600,000.
    public static let defaultIterations = 600_000
    /// Reading refuses absurd counts so that a hostile file cannot pin the CPU for hours.
    public static let maximumIterations = 10_000_000

    static let pbes2OID: ASN1ObjectIdentifier = [1, 2, 840, 113549, 1, 5, 13]
    static let pbkdf2OID: ASN1ObjectIdentifier = [1, 2, 840, 113549, 1, 5, 12]
    static let hmacSHA1OID: ASN1ObjectIdentifier = [1, 2, 840, 113549, 2, 7]
    static let hmacSHA256OID: ASN1ObjectIdentifier = [1, 2, 840, 113549, 2, 9]
    static let hmacSHA384OID: ASN1ObjectIdentifier = [1, 2, 840, 113549, 2, 10]
    static let hmacSHA512OID: ASN1ObjectIdentifier = [1, 2, 840, 113549, 2, 11]
    static let aes128CBCOID: ASN1ObjectIdentifier = [2, 16, 840, 1, 101, 3, 4, 1, 2]
    static let aes192CBCOID: ASN1ObjectIdentifier = [2, 16, 840, 1, 101, 3, 4, 1, 22]
    static let aes256CBCOID: ASN1ObjectIdentifier = [2, 16, 840, 1, 101, 3, 4, 1, 42]

    /// Encrypts a PKCS#8 PrivateKeyInfo (DER) under `password`; returns PEM with a trailing newline.
    public static func encrypt(
        pkcs8 der: [UInt8], password: String, iterations: Int = defaultIterations
    ) throws -> String {
        guard iterations >= 210_000 else {
            throw AutoSSLError.general("refusing to write an encrypted key with fewer than 210,000 PBKDF2 iterations")
        }
        let salt = SecureRandom.bytes(16)
        let iv = SecureRandom.bytes(16)
        let key = try KDF.Insecure.PBKDF2.deriveKey(
            from: Array(password.utf8), salt: salt, using: .sha256, outputByteCount: 32, rounds: iterations)
        let ciphertext = try AES._CBC.encrypt(der, using: key, iv: try AES._CBC.IV(ivBytes: iv))

        var serializer = DER.Serializer()
        try serializer.appendConstructedNode(identifier: .sequence) { info in
            // encryptionAlgorithm: PBES2 { keyDerivationFunc, encryptionScheme }
            try info.appendConstructedNode(identifier: .sequence) { algorithm in
                try algorithm.serialize(pbes2OID)
                try algorithm.appendConstructedNode(identifier: .sequence) { params in
                    try params.appendConstructedNode(identifier: .sequence) { kdf in
                        try kdf.serialize(pbkdf2OID)
                        try kdf.appendConstructedNode(identifier: .sequence) { pbkdf2 in
                            try pbkdf2.serialize(ASN1OctetString(contentBytes: ArraySlice(salt)))
                            try pbkdf2.serialize(iterations)
                            try pbkdf2.appendConstructedNode(identifier: .sequence) { prf in
                                try prf.serialize(hmacSHA256OID)
                                try prf.serialize(ASN1Null())
                            }
                        }
                    }
                    try params.appendConstructedNode(identifier: .sequence) { scheme in
                        try scheme.serialize(aes256CBCOID)
                        try scheme.serialize(ASN1OctetString(contentBytes: ArraySlice(iv)))
                    }
                }
            }
            try info.serialize(ASN1OctetString(contentBytes: ArraySlice(ciphertext)))
        }
        return PEMDocument(type: "ENCRYPTED PRIVATE KEY", derBytes: serializer.serializedBytes).pemString + "\n"
    }

    /// Decrypts an "ENCRYPTED PRIVATE KEY" PEM and returns the PKCS#8 PrivateKeyInfo DER.
    /// Accepts what openssl writes: PBES2 with PBKDF2 (HMAC-SHA1/256/384/512) and AES-128/192/256-CBC,
    /// including openssl's low default iteration count.
    public static func decrypt(pem: String, password: String) throws -> [UInt8] {
        let document: PEMDocument
        do {
            document = try PEMDocument(pemString: pem)
        } catch {
            throw AutoSSLError.general("the key file is not valid PEM")
        }
        guard document.discriminator == "ENCRYPTED PRIVATE KEY" else {
            throw AutoSSLError.general(
                "the key is not an encrypted PKCS#8 key (found \"\(document.discriminator)\")",
                hint: "CA keys must be stored encrypted; convert with `openssl pkcs8 -topk8 -v2 aes-256-cbc -v2prf hmacWithSHA256`")
        }
        let parsed: Parsed
        do {
            parsed = try Parsed(der: document.derBytes)
        } catch let error as AutoSSLError {
            throw error
        } catch {
            throw AutoSSLError.general("the encrypted key is malformed: \(error)")
        }
        let key = try KDF.Insecure.PBKDF2.deriveKey(
            from: Array(password.utf8), salt: parsed.salt, using: parsed.prf,
            outputByteCount: parsed.keyLength, unsafeUncheckedRounds: parsed.iterations)
        let wrongPassword = AutoSSLError.general(
            "the key could not be decrypted: wrong password or damaged key file")
        let plaintext: Data
        do {
            plaintext = try AES._CBC.decrypt(parsed.ciphertext, using: key, iv: try AES._CBC.IV(ivBytes: parsed.iv))
        } catch {
            throw wrongPassword
        }
        // CBC has no integrity check: a wrong password can still unpad cleanly, so the result must parse.
        guard (try? DER.parse(Array(plaintext))) != nil, (try? SigningKey(derRepresentation: plaintext)) != nil else {
            throw wrongPassword
        }
        return Array(plaintext)
    }

    /// Convenience: decrypt and load the key.
    public static func decryptKey(pem: String, password: String) throws -> SigningKey {
        try SigningKey(derRepresentation: try decrypt(pem: pem, password: password))
    }

    /// Iteration count of an encrypted key file, without decrypting it.
    public static func iterations(pem: String) throws -> Int {
        try Parsed(der: try PEMDocument(pemString: pem).derBytes).iterations
    }

    struct Parsed {
        var salt: [UInt8] = []
        var iterations = 0
        var keyLength = 32
        var prf: KDF.Insecure.PBKDF2.HashFunction = .insecureSHA1
        var iv: [UInt8] = []
        var ciphertext: [UInt8] = []

        init(der: [UInt8]) throws {
            let root = try DER.parse(der)
            try DER.sequence(root, identifier: .sequence) { nodes in
                let algorithmNode = nodes.next()
                guard let algorithmNode else { throw Self.unsupported("missing algorithm") }
                try DER.sequence(algorithmNode, identifier: .sequence) { algorithm in
                    guard let oidNode = algorithm.next() else { throw Self.unsupported("missing algorithm") }
                    let oid = try ASN1ObjectIdentifier(derEncoded: oidNode)
                    guard oid == EncryptedPrivateKey.pbes2OID else {
                        throw Self.unsupported("encryption scheme \(oid) (only PBES2 is supported)")
                    }
                    guard let paramsNode = algorithm.next() else { throw Self.unsupported("missing PBES2 parameters") }
                    try DER.sequence(paramsNode, identifier: .sequence) { params in
                        guard let kdfNode = params.next(), let schemeNode = params.next() else {
                            throw Self.unsupported("incomplete PBES2 parameters")
                        }
                        try self.parseKDF(kdfNode)
                        try self.parseScheme(schemeNode)
                    }
                }
                guard let dataNode = nodes.next() else { throw Self.unsupported("missing encrypted data") }
                self.ciphertext = Array(try ASN1OctetString(derEncoded: dataNode).bytes)
            }
        }

        private mutating func parseKDF(_ node: ASN1Node) throws {
            try DER.sequence(node, identifier: .sequence) { kdf in
                guard let oidNode = kdf.next() else { throw Self.unsupported("missing KDF") }
                let oid = try ASN1ObjectIdentifier(derEncoded: oidNode)
                guard oid == EncryptedPrivateKey.pbkdf2OID else {
                    throw Self.unsupported("key derivation \(oid) (only PBKDF2 is supported)")
                }
                guard let paramsNode = kdf.next() else { throw Self.unsupported("missing PBKDF2 parameters") }
                try DER.sequence(paramsNode, identifier: .sequence) { params in
                    guard let saltNode = params.next(), let iterNode = params.next() else {
                        throw Self.unsupported("incomplete PBKDF2 parameters")
                    }
                    self.salt = Array(try ASN1OctetString(derEncoded: saltNode).bytes)
                    self.iterations = try Int(derEncoded: iterNode)
                    guard (1...EncryptedPrivateKey.maximumIterations).contains(self.iterations) else {
                        throw Self.unsupported("PBKDF2 iteration count \(self.iterations)")
                    }
                    while let next = params.next() {
                        if next.identifier == .integer {
                            self.keyLength = try Int(derEncoded: next)
                        } else if next.identifier == .sequence {
                            try DER.sequence(next, identifier: .sequence) { prf in
                                guard let prfOIDNode = prf.next() else { throw Self.unsupported("missing PRF") }
                                let prfOID = try ASN1ObjectIdentifier(derEncoded: prfOIDNode)
                                switch prfOID {
                                case EncryptedPrivateKey.hmacSHA1OID: self.prf = .insecureSHA1
                                case EncryptedPrivateKey.hmacSHA256OID: self.prf = .sha256
                                case EncryptedPrivateKey.hmacSHA384OID: self.prf = .sha384
                                case EncryptedPrivateKey.hmacSHA512OID: self.prf = .sha512
                                default: throw Self.unsupported("PBKDF2 PRF \(prfOID)")
                                }
                                _ = prf.next()  // NULL parameters, if present
                            }
                        }
                    }
                }
            }
        }

        private mutating func parseScheme(_ node: ASN1Node) throws {
            try DER.sequence(node, identifier: .sequence) { scheme in
                guard let oidNode = scheme.next(), let ivNode = scheme.next() else {
                    throw Self.unsupported("incomplete encryption scheme")
                }
                let oid = try ASN1ObjectIdentifier(derEncoded: oidNode)
                let expectedKeyLength: Int
                switch oid {
                case EncryptedPrivateKey.aes128CBCOID: expectedKeyLength = 16
                case EncryptedPrivateKey.aes192CBCOID: expectedKeyLength = 24
                case EncryptedPrivateKey.aes256CBCOID: expectedKeyLength = 32
                default: throw Self.unsupported("cipher \(oid) (AES-CBC expected)")
                }
                self.keyLength = expectedKeyLength
                self.iv = Array(try ASN1OctetString(derEncoded: ivNode).bytes)
                guard self.iv.count == 16 else { throw Self.unsupported("IV length \(self.iv.count)") }
            }
        }

        static func unsupported(_ what: String) -> AutoSSLError {
            AutoSSLError.general("unsupported encrypted key: \(what)")
        }
    }
}
