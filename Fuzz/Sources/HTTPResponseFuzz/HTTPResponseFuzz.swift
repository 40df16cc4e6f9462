import AutoSSLWire
import Foundation
import FuzzSupport

/// The http-01 validation's response reader: `HTTPAnswer.decode` runs the bytes through the same
/// handlers a validation uses (byte limit, NIO's llhttp response decoder, the collector) on an
/// embedded channel. Nothing may crash, and an answer stays within the limits: body and header
/// sizes, header count, and a status code of three digits.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ start: UnsafeRawPointer, _ count: Int) -> CInt {
    let bytes = Fuzz.bytes(start, count)
    for limits in [HTTPAnswer.Limits(), small] {
        guard case .success(let answer) = HTTPAnswer.decode(bytes, limits: limits) else { continue }
        // Three digits, as llhttp reads them ("020" is 20; the validator wants 200 anyway).
        Fuzz.require((0...999).contains(answer.status), "status \(answer.status)")
        Fuzz.require(answer.body.count <= limits.maximumBodyBytes && answer.body.count <= bytes.count,
                     "a body of \(answer.body.count) bytes from \(bytes.count)")
        Fuzz.require(answer.headers.count <= limits.maximumHeaderCount, "\(answer.headers.count) headers")
        Fuzz.require(answer.headers.keys.allSatisfy { $0 == $0.lowercased() }, "a header name not in lower case")
    }
    return 0
}

/// Limits small enough that the fuzzer reaches each of them with short inputs.
let small: HTTPAnswer.Limits = {
    var limits = HTTPAnswer.Limits()
    limits.maximumBytes = 600
    limits.maximumBodyBytes = 64
    limits.maximumHeaderBytes = 200
    limits.maximumHeaderCount = 4
    return limits
}()
