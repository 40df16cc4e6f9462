import AutoSSLCore
import Foundation
import FuzzSupport

/// The certificate holder's x5c token (renewal and revocation): `X5CToken.verifySignature` (split,
/// base64url, header JSON, base64 DER certificates, signature with the leaf's key) and the claims
/// decoder, on the token's payload and on the input as JSON. Nothing may crash.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ start: UnsafeRawPointer, _ count: Int) -> CInt {
    let bytes = Fuzz.bytes(start, count)
    _ = try? JSONDecoder().decode(CertificateTokenClaims.self, from: Data(bytes))
    let token = Fuzz.text(bytes)
    if let verified = try? X5CToken.verifySignature(token) {
        Fuzz.require(!verified.chain.isEmpty && verified.chain.count <= 4, "chain of \(verified.chain.count)")
        _ = try? JSONDecoder().decode(CertificateTokenClaims.self, from: verified.payload)
    }
    // The payload is reached without a valid signature too, so mutations of the claims count.
    let parts = token.split(separator: ".", omittingEmptySubsequences: false)
    if parts.count == 3, let payload = Base64URL.decode(parts[1]) {
        _ = try? JSONDecoder().decode(CertificateTokenClaims.self, from: payload)
    }
    return 0
}
