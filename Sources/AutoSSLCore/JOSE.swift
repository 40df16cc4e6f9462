import Crypto
import Foundation
import _CryptoExtras

/// base64url without padding (RFC 7515 §2).
public enum Base64URL {
    /// Unpadded base64url (RFC 4648 §5), written in one pass (a nonce, a thumbprint or a JWS part
    /// on every ACME request); checked against Foundation's encoder in `Base64URLTests`.
    public static func encode(_ bytes: some DataProtocol) -> String {
        if let encoded = bytes.withContiguousStorageIfAvailable(encode(contiguous:)) { return encoded }
        return Array(bytes).withUnsafeBufferPointer(encode(contiguous:))
    }

    private static let alphabet: [UInt8] = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8)

    static func encode(contiguous input: UnsafeBufferPointer<UInt8>) -> String {
        let (groups, remainder) = input.count.quotientAndRemainder(dividingBy: 3)
        let length = groups * 4 + (remainder == 0 ? 0 : remainder + 1)
        return alphabet.withUnsafeBufferPointer { table in
            String(unsafeUninitializedCapacity: length) { out in
                var written = 0
                var index = 0
                while index + 3 <= input.count {
                    let bits = UInt32(input[index]) << 16 | UInt32(input[index + 1]) << 8 | UInt32(input[index + 2])
                    out[written] = table[Int(bits >> 18)]
                    out[written + 1] = table[Int(bits >> 12 & 0x3F)]
                    out[written + 2] = table[Int(bits >> 6 & 0x3F)]
                    out[written + 3] = table[Int(bits & 0x3F)]
                    written += 4
                    index += 3
                }
                if remainder > 0 {
                    let bits = UInt32(input[index]) << 16 | (remainder == 2 ? UInt32(input[index + 1]) << 8 : 0)
                    out[written] = table[Int(bits >> 18)]
                    out[written + 1] = table[Int(bits >> 12 & 0x3F)]
                    written += 2
                    if remainder == 2 {
                        out[written] = table[Int(bits >> 6 & 0x3F)]
                        written += 1
                    }
                }
                return written
            }
        }
    }

    public static func decode(_ text: some StringProtocol) -> Data? {
        decode(bytes: text.utf8)
    }

    public static func decode(_ utf8: Substring.UTF8View) -> Data? {
        decode(bytes: utf8)
    }

    static func decode(bytes utf8: some Collection<UInt8>) -> Data? {
        if let decoded = utf8.withContiguousStorageIfAvailable(decode(contiguous:)) { return decoded }
        return Array(utf8).withUnsafeBufferPointer(decode(contiguous:))
    }

    /// Alphabet position of each byte, 0xFF for bytes outside the base64url alphabet.
    private static let alphabetIndex: [UInt8] = {
        var table = [UInt8](repeating: 0xFF, count: 256)
        for (index, byte) in "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8.enumerated() {
            table[Int(byte)] = UInt8(index)
        }
        return table
    }()

    /// Unpadded base64url (RFC 4648 §5), decoded in one pass. Like Foundation's decoder (which this
    /// replaced on the token path), it ignores the unused low bits of a final partial group.
    static func decode(contiguous input: UnsafeBufferPointer<UInt8>) -> Data? {
        let remainder = input.count % 4
        guard remainder != 1 else { return nil }
        var output = Data(count: input.count / 4 * 3 + (remainder == 0 ? 0 : remainder - 1))
        let valid = alphabetIndex.withUnsafeBufferPointer { table in
            output.withUnsafeMutableBytes { raw -> Bool in
                let out = raw.bindMemory(to: UInt8.self)
                var written = 0
                var index = 0
                while index + 4 <= input.count {
                    let a = table[Int(input[index])], b = table[Int(input[index + 1])]
                    let c = table[Int(input[index + 2])], d = table[Int(input[index + 3])]
                    guard (a | b | c | d) & 0xC0 == 0 else { return false }
                    out[written] = a << 2 | b >> 4
                    out[written + 1] = b << 4 | c >> 2
                    out[written + 2] = c << 6 | d
                    written += 3
                    index += 4
                }
                if remainder >= 2 {
                    let a = table[Int(input[index])], b = table[Int(input[index + 1])]
                    let c = remainder == 3 ? table[Int(input[index + 2])] : 0
                    guard (a | b | c) & 0xC0 == 0 else { return false }
                    out[written] = a << 2 | b >> 4
                    if remainder == 3 { out[written + 1] = b << 4 | c >> 2 }
                }
                return true
            }
        }
        return valid ? output : nil
    }
}

/// An EC P-256 JSON Web Key (RFC 7517/7518), the provisioner key type.
public struct ECJWK: Codable, Equatable, Sendable {
    public var kty: String = "EC"
    public var crv: String = "P-256"
    public var x: String
    public var y: String
    public var d: String?
    public var kid: String?
    public var use: String?
    public var alg: String?

    public init(publicKey: P256.Signing.PublicKey) {
        let raw = publicKey.rawRepresentation  // x || y, 32 bytes each
        self.x = Base64URL.encode(raw.prefix(32))
        self.y = Base64URL.encode(raw.suffix(32))
        self.use = "sig"
        self.alg = "ES256"
        self.kid = thumbprint
    }

    public init(privateKey: P256.Signing.PrivateKey) {
        self.init(publicKey: privateKey.publicKey)
        self.d = Base64URL.encode(privateKey.rawRepresentation)
    }

    /// A new P-256 key pair from the system CSPRNG, as a private JWK.
    public static func generatePrivate() -> ECJWK {
        ECJWK(privateKey: P256.Signing.PrivateKey())
    }

    /// RFC 7638 thumbprint: SHA-256 over the required members in lexicographic order, base64url.
    public var thumbprint: String {
        let canonical = "{\"crv\":\"\(crv)\",\"kty\":\"\(kty)\",\"x\":\"\(x)\",\"y\":\"\(y)\"}"
        return Base64URL.encode(Data(SHA256.hash(data: Data(canonical.utf8))))
    }

    /// The same key without its private part.
    public var publicOnly: ECJWK {
        var copy = self
        copy.d = nil
        return copy
    }

    public func publicKey() throws -> P256.Signing.PublicKey {
        guard kty == "EC", crv == "P-256", let x = Base64URL.decode(x), let y = Base64URL.decode(y),
              x.count == 32, y.count == 32 else {
            throw AutoSSLError.general("the JWK is not a valid EC P-256 public key")
        }
        return try P256.Signing.PublicKey(rawRepresentation: x + y)
    }

    public func privateKey() throws -> P256.Signing.PrivateKey {
        guard let d, let raw = Base64URL.decode(d), raw.count == 32 else {
            throw AutoSSLError.general("the JWK has no valid private part")
        }
        let key = try P256.Signing.PrivateKey(rawRepresentation: raw)
        guard key.publicKey.rawRepresentation == (try publicKey().rawRepresentation) else {
            throw AutoSSLError.general("the JWK's private part does not match its public part")
        }
        return key
    }

    /// Compact JSON with sorted keys (stable output for files and tests).
    public func jsonString() throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return String(decoding: try encoder.encode(self), as: UTF8.self)
    }
}

/// Compact JWE with `alg` PBES2-HS256+A128KW and `enc` A256GCM (RFC 7516/7518 §4.8): how a
/// provisioner's private key travels and rests, decryptable by any JOSE library with the password.
public enum PasswordJWE {
    public static let defaultIterations = 600_000
    /// Upper bound accepted when decrypting, so a hostile JWE cannot pin the CPU.
    public static let maximumIterations = 10_000_000

    struct Header: Codable {
        var alg: String
        var enc: String
        var p2s: String
        var p2c: Int
        var cty: String?
    }

    public static func encrypt(
        _ plaintext: Data, password: String, iterations: Int = defaultIterations, contentType: String? = "jwk+json"
    ) throws -> String {
        guard iterations >= 210_000 else {
            throw AutoSSLError.general("refusing to encrypt with fewer than 210,000 PBKDF2 iterations")
        }
        let saltInput = SecureRandom.bytes(16)
        let header = Header(
            alg: "PBES2-HS256+A128KW", enc: "A256GCM", p2s: Base64URL.encode(saltInput), p2c: iterations,
            cty: contentType)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let protectedHeader = Base64URL.encode(try encoder.encode(header))

        let kek = try keyEncryptionKey(password: password, saltInput: saltInput, iterations: iterations)
        let cek = SymmetricKey(size: .bits256)
        let wrappedKey = try AES.KeyWrap.wrap(cek, using: kek)
        let nonce = AES.GCM.Nonce()
        let sealed = try AES.GCM.seal(plaintext, using: cek, nonce: nonce, authenticating: Data(protectedHeader.utf8))
        return [
            protectedHeader,
            Base64URL.encode(wrappedKey),
            Base64URL.encode(Data(nonce)),
            Base64URL.encode(sealed.ciphertext),
            Base64URL.encode(sealed.tag),
        ].joined(separator: ".")
    }

    public static func decrypt(_ compact: String, password: String) throws -> Data {
        let parts = compact.trimmingCharacters(in: .whitespacesAndNewlines).split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 5,
              let headerBytes = Base64URL.decode(parts[0]),
              let wrappedKey = Base64URL.decode(parts[1]),
              let iv = Base64URL.decode(parts[2]),
              let ciphertext = Base64URL.decode(parts[3]),
              let tag = Base64URL.decode(parts[4]),
              let header = try? JSONDecoder().decode(Header.self, from: headerBytes) else {
            throw AutoSSLError.general("the encrypted key is not a valid compact JWE")
        }
        guard header.alg == "PBES2-HS256+A128KW", header.enc == "A256GCM" else {
            throw AutoSSLError.general("unsupported JWE algorithms \(header.alg)/\(header.enc)")
        }
        guard (1_000...maximumIterations).contains(header.p2c), let saltInput = Base64URL.decode(header.p2s),
              saltInput.count >= 8 else {
            throw AutoSSLError.general("the JWE's PBES2 parameters are out of range")
        }
        let kek = try keyEncryptionKey(password: password, saltInput: Array(saltInput), iterations: header.p2c)
        let wrong = AutoSSLError.general("the encrypted key could not be decrypted: wrong password or damaged data")
        do {
            let cek = try AES.KeyWrap.unwrap(wrappedKey, using: kek)
            let box = try AES.GCM.SealedBox(nonce: try AES.GCM.Nonce(data: iv), ciphertext: ciphertext, tag: tag)
            return try AES.GCM.open(box, using: cek, authenticating: Data(parts[0].utf8))
        } catch {
            throw wrong
        }
    }

    /// RFC 7518 §4.8.1.1: salt = UTF8(alg) || 0x00 || p2s; PBKDF2-HMAC-SHA256 → 16-byte A128KW key.
    static func keyEncryptionKey(password: String, saltInput: [UInt8], iterations: Int) throws -> SymmetricKey {
        let salt = Array("PBES2-HS256+A128KW".utf8) + [0] + saltInput
        return try KDF.Insecure.PBKDF2.deriveKey(
            from: Array(password.utf8), salt: salt, using: .sha256, outputByteCount: 16,
            unsafeUncheckedRounds: iterations)
    }
}
