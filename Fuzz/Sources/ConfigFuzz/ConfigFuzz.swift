@testable import AutoSSLConfig
import Foundation
import FuzzSupport
import Yams

/// What reads config.yaml: `AutoSSLConfiguration.decode` (every CA command, `ca serve`, and the
/// copy inside a backup that `ca restore` reads) through `YAMLExpansion` and Yams. Whatever the
/// text, it returns or throws within libFuzzer's time and memory limits (-timeout=30,
/// -rss_limit_mb=2048): no integer read as base 60 past `Int`, no expansion of aliases without
/// end. Differential: on a text `YAMLExpansion` lets through, the tree Yams composes has no more
/// values than it counted, and is no deeper than its limit.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ start: UnsafeRawPointer, _ count: Int) -> CInt {
    let text = Fuzz.text(Fuzz.bytes(start, count))
    let limits = AutoSSLConfiguration.expansionLimits
    _ = try? AutoSSLConfiguration.decode(text)
    guard let values = YAMLExpansion.values(text, limits: limits) else { return 0 }
    Fuzz.require(values <= limits.values, "counted \(values) values, past the limit")
    guard let root = try? Parser(yaml: text, resolver: .basic, encoding: .utf8).singleRoot() else { return 0 }
    var composed = 0
    var deepest = 0
    func visit(_ node: Node, depth: Int) {
        composed += 1
        guard composed <= values + 1 else { return }
        switch node {
        case .scalar, .alias:
            break
        case .mapping(let mapping):
            deepest = max(deepest, depth)
            for pair in mapping { visit(pair.key, depth: depth + 1); visit(pair.value, depth: depth + 1) }
        case .sequence(let sequence):
            deepest = max(deepest, depth)
            for element in sequence { visit(element, depth: depth + 1) }
        }
    }
    visit(root, depth: 1)
    Fuzz.require(composed <= values, "Yams composed more than the \(values) values counted")
    Fuzz.require(deepest <= limits.depth, "Yams composed values \(deepest) deep, past the limit")
    return 0
}
