import Crypto
import Foundation
import _CryptoExtras

/// The file format of `openssl enc -aes-256-cbc -pbkdf2 -md sha256 -iter N -salt`:
/// "Salted__" ‖ salt(8) ‖ AES-256-CBC(data), key ‖ iv = PBKDF2-HMAC-SHA256(passphrase, salt, N, 48).
/// Backups use it so an administrator can always recover them with openssl alone.
public enum OpenSSLEnc {
    public static let defaultIterations = 600_000
    static let magic = Array("Salted__".utf8)

    public static func encrypt(_ plaintext: [UInt8], passphrase: String, iterations: Int = defaultIterations) throws -> [UInt8] {
        let salt = SecureRandom.bytes(8)
        let (key, iv) = try derive(passphrase: passphrase, salt: salt, iterations: iterations)
        let ciphertext = try AES._CBC.encrypt(plaintext, using: key, iv: iv)
        return magic + salt + Array(ciphertext)
    }

    /// A wrong passphrase usually fails the padding check; when it does not, the caller's integrity
    /// check (the backup manifest) catches it.
    public static func decrypt(_ data: [UInt8], passphrase: String, iterations: Int = defaultIterations) throws -> [UInt8] {
        guard data.count >= 32, Array(data.prefix(8)) == magic, (data.count - 16) % 16 == 0 else {
            throw AutoSSLError.general("the file is not in openssl enc format (\"Salted__\" header missing or length wrong)")
        }
        guard (1...10_000_000).contains(iterations) else { throw AutoSSLError.invalidArgument("invalid iteration count \(iterations)") }
        let (key, iv) = try derive(passphrase: passphrase, salt: Array(data[8..<16]), iterations: iterations)
        do {
            return Array(try AES._CBC.decrypt(data[16...], using: key, iv: iv))
        } catch {
            throw AutoSSLError.general("the backup could not be decrypted: wrong passphrase, wrong iteration count, or a damaged file")
        }
    }

    static func derive(passphrase: String, salt: [UInt8], iterations: Int) throws -> (SymmetricKey, AES._CBC.IV) {
        let material = try KDF.Insecure.PBKDF2.deriveKey(
            from: Array(passphrase.utf8), salt: salt, using: .sha256, outputByteCount: 48, unsafeUncheckedRounds: iterations)
        let bytes = material.withUnsafeBytes { Array($0) }
        return (SymmetricKey(data: bytes[0..<32]), try AES._CBC.IV(ivBytes: bytes[32..<48]))
    }
}
