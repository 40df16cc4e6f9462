@testable import AutoSSLCore
import Foundation
import FuzzSupport
import SwiftASN1

/// FastPEM, the strict single-pass PEM reader of `/sign` CSRs, against swift-asn1's PEMDocument:
/// whatever the fast reader accepts, the library must accept with the same label and bytes.
/// `VerifiedCSR(pem:)`, which tries one then the other, must not crash.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ start: UnsafeRawPointer, _ count: Int) -> CInt {
    let text = Fuzz.text(Fuzz.bytes(start, count))
    for label in ["CERTIFICATE REQUEST", "CERTIFICATE"] {
        guard let fast = FastPEM.body(of: text, label: label) else { continue }
        let document = try? PEMDocument(pemString: text)
        Fuzz.require(document != nil, "PEMDocument refuses what FastPEM read as \(label) (\(fast.count) bytes)")
        Fuzz.require(document?.discriminator == label, "label \(String(describing: document?.discriminator)) vs \(label)")
        Fuzz.require(document?.derBytes == fast, "bytes differ: library \(document?.derBytes.count ?? -1), fast \(fast.count)")
    }
    _ = try? VerifiedCSR(pem: text)
    return 0
}
