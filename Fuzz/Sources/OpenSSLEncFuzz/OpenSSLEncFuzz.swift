import AutoSSLCore
import Foundation
import FuzzSupport

/// The backup file's outer layer, `openssl enc` (Salted__, salt, AES-256-CBC with PKCS#7 padding),
/// decrypted with a fixed passphrase and one PBKDF2 round (the real count only slows the run).
/// Nothing may crash, and a plaintext is the ciphertext less 1 to 16 bytes of padding.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ start: UnsafeRawPointer, _ count: Int) -> CInt {
    let bytes = Fuzz.bytes(start, count)
    guard let plaintext = try? OpenSSLEnc.decrypt(bytes, passphrase: passphrase, iterations: 1) else { return 0 }
    let ciphertext = bytes.count - 16
    Fuzz.require(plaintext.count >= ciphertext - 16 && plaintext.count < ciphertext,
                 "\(plaintext.count) bytes of plaintext from \(ciphertext) of ciphertext")
    return 0
}

let passphrase = "fuzzing passphrase 0123456789"
