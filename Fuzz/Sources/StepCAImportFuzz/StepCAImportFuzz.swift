import AutoSSLCore
import Foundation
import FuzzSupport

/// What `ca import` reads from a step-ca directory before anything else: its CA keys in OpenSSL's
/// traditional encrypted PEM (and the other key formats `CAKeyFile` accepts), and config/ca.json.
/// The first byte chooses the reader; the rest is the file. Nothing may crash; a key that opens
/// must be a key, and a ca.json that parses keeps within its bounds.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ start: UnsafeRawPointer, _ count: Int) -> CInt {
    let bytes = Fuzz.bytes(start, count)
    guard let selector = bytes.first else { return 0 }
    let file = Array(bytes.dropFirst())
    if selector & 1 == 0 {
        let text = Fuzz.text(file)
        if let block = try? LegacyEncryptedPEM.parse(text) {
            Fuzz.require(block.cipher == nil || (block.iv.count == 16 && block.body.count % 16 == 0), "an encrypted block of the wrong shape")
            if let der = try? LegacyEncryptedPEM.decrypt(block, password: password) {
                Fuzz.require(!der.isEmpty && der.count <= block.body.count, "\(der.count) bytes of key from \(block.body.count)")
            }
        }
        _ = try? CAKeyFile.open(pem: text, password: password)
    } else if let config = try? StepCAConfig.parse(file) {
        Fuzz.require(!config.roots.isEmpty && config.provisioners.count <= StepCAConfig.maximumProvisioners, "a ca.json out of bounds was accepted")
        for provisioner in config.provisioners {
            if case .jwk(let jwk) = provisioner, let encrypted = jwk.encryptedKey { _ = StepCAConfig.jweParameters(encrypted) }
        }
    }
    return 0
}

/// The password the seed keys were encrypted with (Fuzz/make-corpus).
let password = "fuzzing passphrase 0123456789"
