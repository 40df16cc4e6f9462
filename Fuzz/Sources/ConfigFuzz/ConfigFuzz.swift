@testable import AutoSSLConfig
import Foundation
import FuzzSupport

/// What reads config.yaml: `AutoSSLConfiguration.decode` (every CA command, `ca serve`, and the
/// copy inside a backup that `ca restore` reads) through `YAMLExpansion` and Yams. Whatever the
/// text, it returns or throws within libFuzzer's time and memory limits (-timeout=30,
/// -rss_limit_mb=2048): no integer read as base 60 past `Int`, no expansion of aliases without
/// end. A text `YAMLExpansion` refuses is never read, and one it lets through is under the limit.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ start: UnsafeRawPointer, _ count: Int) -> CInt {
    let text = Fuzz.text(Fuzz.bytes(start, count))
    let limit = AutoSSLConfiguration.maximumExpandedNodes
    let values = YAMLExpansion.values(text, limit: limit)
    if let values { Fuzz.require(values <= limit, "counted \(values) values, past the limit \(limit)") }
    let read = (try? AutoSSLConfiguration.decode(text)) != nil
    Fuzz.require(!read || values != nil, "read a text of more than \(limit) values once expanded")
    return 0
}
