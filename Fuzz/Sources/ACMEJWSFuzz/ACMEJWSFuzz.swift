@testable import AutoSSLCore
import Crypto
import Foundation
import FuzzSupport

/// ACME request bodies: the flattened JWS (`ACMEJWS(body:)`), the JWK it may carry (to a key, its
/// normal form and RFC 7638 thumbprint, and signature verification), and the external account
/// binding. Nothing may crash, and a key read from a JWK must read back from its own normal form
/// to the same key. The fast readers of the body and the protected header (`FlatJSON`) must agree
/// with `JSONDecoder` on whatever they read.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ start: UnsafeRawPointer, _ count: Int) -> CInt {
    let data = Data(Fuzz.bytes(start, count))
    if let fast = ACMEJWS.fastWire(data) {
        let decoded = try? JSONDecoder().decode(ACMEJWS.Wire.self, from: data)
        Fuzz.require(decoded == fast, "the JWS members: FlatJSON \(fast), JSONDecoder \(String(describing: decoded))")
    }
    if let fast = ACMEJWS.fastHeader(data) {
        let decoded = try? JSONDecoder().decode(ACMEJWS.Header.self, from: data)
        Fuzz.require(decoded == fast, "the protected header: FlatJSON \(fast), JSONDecoder \(String(describing: decoded))")
    }
    if let jws = try? ACMEJWS(body: data) {
        if let jwk = jws.header.jwk, let key = try? ACMEAccountKey(jwk: jwk) {
            checkKey(key)
            _ = try? jws.verify(with: key)
        }
        _ = try? jws.verify(with: accountKey)
    }
    if let fields = try? JSONDecoder().decode(ACMEAccountKey.Fields.self, from: data), let key = try? ACMEAccountKey(jwk: fields) {
        checkKey(key)
    }
    _ = ACMEJWS.externalBindingKeyID(data)
    _ = try? ACMEJWS.verifyExternalBinding(data, accountKey: accountKey, url: "https://ca.test/acme/new-account") { _ in macKey }
    return 0
}

let accountKey = ACMEAccountKey.p256(P256.Signing.PrivateKey().publicKey)
let macKey = Data(repeating: 0x42, count: 32)

func checkKey(_ key: ACMEAccountKey) {
    let thumbprint = key.thumbprint
    Fuzz.require(thumbprint.utf8.count == 43, "thumbprint \(thumbprint)")
    let again = try? ACMEAccountKey(jwk: key.fields)
    Fuzz.require(again?.thumbprint == thumbprint, "the normal form \(key.fields) does not read back to the same key")
}
