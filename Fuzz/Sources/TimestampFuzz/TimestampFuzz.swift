@testable import AutoSSLCore
import Foundation
import FuzzSupport

/// `Timestamp.parse`, which reads the times a client sends (`notBefore`/`notAfter` of `/sign`, an
/// ACME new-order, `cert issue --not-before`) and the audit log's times: whatever it accepts is a
/// finite time in years 1583 to 9999 that `Timestamp.rfc3339` writes and `parse` reads back to the
/// same second, from text no longer than `maximumParsedLength`.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ start: UnsafeRawPointer, _ count: Int) -> CInt {
    let text = Fuzz.text(Fuzz.bytes(start, count))
    guard let date = Timestamp.parse(text) else { return 0 }
    Fuzz.require(text.utf8.count <= Timestamp.maximumParsedLength, "accepted \(text.utf8.count) bytes")
    let seconds = date.timeIntervalSince1970
    Fuzz.require(seconds.isFinite && seconds >= -12_212_553_600 && seconds < 253_402_300_800, "\(text.debugDescription) read as \(seconds)")
    let written = Timestamp.rfc3339(date)
    let again = Timestamp.parse(written)
    Fuzz.require(again == Date(timeIntervalSince1970: seconds.rounded(.down)), "\(text.debugDescription) -> \(written) -> \(String(describing: again))")
    return 0
}
