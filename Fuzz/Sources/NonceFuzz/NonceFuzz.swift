import AutoSSLCore
import Crypto
import Foundation
import FuzzSupport

/// The ACME nonce a client sends back in its JWS header, and the window that spends it.
/// - `ACMENonceFormat.open` reads any text without trapping; what it accepts is the canonical text
///   of the values it returns (so one nonce has one text).
/// - `NonceWindow` against a model (a set of unspent tickets): the input, byte by byte, issues a
///   ticket (high bit clear) or spends one a few tickets back (high bit set, the rest the
///   distance, reaching past the window and past the newest); both must agree on every answer.
let key = ACMENonceFormat.Key(SymmetricKey(data: Data(repeating: 7, count: 32)))  // the corpus's nonces are made with it

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ start: UnsafeRawPointer, _ count: Int) -> CInt {
    let bytes = Fuzz.bytes(start, count)
    let text = Fuzz.text(bytes)
    if let opened = try? ACMENonceFormat.open(text, key: key) {
        Fuzz.require(opened.text(key: key) == text, "\(text.debugDescription) accepted but not canonical")
    }

    let capacity: UInt64 = 64
    let window = NonceWindow(capacity: capacity)
    var next: UInt64 = 0
    var unspent = Set<UInt64>()
    for byte in bytes {
        if byte & 0x80 == 0 {
            let ticket = window.issue()
            Fuzz.require(ticket == next, "issued \(ticket), expected \(next)")
            unspent.insert(ticket)
            next += 1
            if next > capacity { unspent.remove(next - capacity - 1) }
        } else {
            let distance = UInt64(byte & 0x7F)
            let ticket = next &- 1 &- distance &+ 8  // up to 8 beyond the newest: never issued
            let expected = unspent.remove(ticket) != nil
            Fuzz.require(window.spend(ticket) == expected, "spend(\(ticket)) with next \(next): expected \(expected)")
        }
    }
    return 0
}
