@testable import AutoSSLCore
import Crypto
import Foundation
import FuzzSupport

/// The provisioner token reader: `JWT.parse`, its base64url decoder and the header and claims
/// decoders. Differential where two paths exist: the FlatJSON-first decoders against JSONDecoder
/// alone, and Base64URL against Foundation's base64 decoder. Signature checking must not crash.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ start: UnsafeRawPointer, _ count: Int) -> CInt {
    let bytes = Fuzz.bytes(start, count)
    let data = Data(bytes)
    // The input as a header or claims document (the decoders see JSON after base64url).
    checkHeader(data)
    checkClaims(data)
    // The input as a token.
    let token = Fuzz.text(bytes)
    for part in token.split(separator: ".", omittingEmptySubsequences: false).prefix(4) {
        let fast = Base64URL.decode(part)
        let reference = foundationBase64URL(part)
        Fuzz.require(fast == reference, "Base64URL \(String(describing: fast)) vs Foundation \(String(describing: reference)) for \(part.debugDescription)")
    }
    guard let parsed = try? JWT.parse(token) else { return 0 }
    _ = JWT.verifyES256(parsed, key: verifier)
    checkClaims(parsed.payload)
    return 0
}

let verifier = P256.Signing.PrivateKey().publicKey

func checkHeader(_ data: Data) {
    let fast = JWT.Header.decode(data)
    let reference = try? JSONDecoder().decode(JWT.Header.self, from: data)
    Fuzz.require(fast == reference, "header: FlatJSON path \(String(describing: fast)) vs JSONDecoder \(String(describing: reference))")
}

func checkClaims(_ data: Data) {
    let fast = try? ProvisionerTokenClaims.decode(data)
    let reference = try? JSONDecoder().decode(ProvisionerTokenClaims.self, from: data)
    Fuzz.require(fast == reference, "claims: FlatJSON path \(String(describing: fast)) vs JSONDecoder \(String(describing: reference))")
}

/// Unpadded base64url through Foundation: only the URL-safe alphabet, then the standard decoder.
func foundationBase64URL(_ text: Substring) -> Data? {
    var standard = ""
    for character in text.unicodeScalars {
        switch character {
        case "A"..."Z", "a"..."z", "0"..."9": standard.unicodeScalars.append(character)
        case "-": standard.append("+")
        case "_": standard.append("/")
        default: return nil
        }
    }
    guard standard.count % 4 != 1 else { return nil }
    standard += String(repeating: "=", count: (4 - standard.count % 4) % 4)
    return Data(base64Encoded: standard)
}
