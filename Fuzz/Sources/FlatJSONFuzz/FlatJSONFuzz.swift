@testable import AutoSSLCore
import Foundation
import FuzzSupport

/// FlatJSON, the fast reader of `/sign` bodies, token headers and claims and the stores' JSON
/// columns, against Foundation: whatever it accepts, JSONDecoder (the fallback path) and
/// JSONSerialization must accept too, with the same members and values. Stepping aside (nil) is
/// always allowed.
///
/// Numbers are held to JSONDecoder's value: JSONSerialization reads a number of more than about
/// 17 digits as a Decimal whose `doubleValue` is not correctly rounded (1.00000000000000000001
/// gives 1.0000000000000004), where FlatJSON and JSONDecoder both give the nearest Double.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ start: UnsafeRawPointer, _ count: Int) -> CInt {
    let bytes = Fuzz.bytes(start, count)
    checkArrays(bytes)
    guard let fast = FlatJSON.object(bytes) else { return 0 }
    let data = Data(bytes)

    let serialized = try? JSONSerialization.jsonObject(with: data) as? [String: Any]
    Fuzz.require(serialized != nil, "JSONSerialization refuses what FlatJSON read: \(fast)")
    if let serialized {
        Fuzz.require(serialized.count == fast.count, "member count \(serialized.count) vs \(fast.count)")
        for (key, value) in fast {
            Fuzz.require(serialized[key].map { matches(value, $0) } ?? false,
                         "member \(key.debugDescription): FlatJSON \(value) vs JSONSerialization \(String(describing: serialized[key]))")
        }
    }

    let decoded = try? JSONDecoder().decode([String: DecodedValue].self, from: data)
    Fuzz.require(decoded != nil, "JSONDecoder refuses what FlatJSON read: \(fast)")
    if let decoded {
        Fuzz.require(decoded.count == fast.count, "member count \(decoded.count) vs \(fast.count)")
        for (key, value) in fast {
            Fuzz.require(decoded[key]?.value == value, "member \(key.debugDescription): FlatJSON \(value) vs JSONDecoder \(String(describing: decoded[key]))")
        }
    }
    return 0
}

/// Whether a fast-path value equals what JSONSerialization made of the same member.
func matches(_ value: FlatJSON.Value, _ foundation: Any) -> Bool {
    switch value {
    case .string(let string): return (foundation as? String) == string
    case .strings(let strings): return (foundation as? [String]) == strings
    case .null: return foundation is NSNull
    case .bool(let bool): return (foundation as? Bool) == bool && !(foundation is String)
    case .number: return foundation is NSNumber  // the value: see above
    }
}

/// A member as the Codable path reads it (the types FlatJSON knows, tried in turn).
struct DecodedValue: Decodable, CustomStringConvertible {
    var value: FlatJSON.Value

    init(from decoder: Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() {
            value = .null
        } else if let string = try? container.decode(String.self) {
            value = .string(string)
        } else if let bool = try? container.decode(Bool.self) {
            value = .bool(bool)
        } else if let number = try? container.decode(Double.self) {
            value = .number(number)
        } else {
            value = .strings(try container.decode([String].self))
        }
    }

    var description: String { "\(value)" }
}

/// The top-level arrays (of strings; of flat objects) against JSONDecoder and JSONSerialization.
func checkArrays(_ bytes: [UInt8]) {
    let data = Data(bytes)
    if let strings = bytes.withUnsafeBufferPointer({ FlatJSON.strings($0) }) {
        let decoded = try? JSONDecoder().decode([String].self, from: data)
        Fuzz.require(decoded == strings, "strings: FlatJSON \(strings) vs JSONDecoder \(String(describing: decoded))")
    }
    if let objects = bytes.withUnsafeBufferPointer({ FlatJSON.objects($0) }) {
        let serialized = try? JSONSerialization.jsonObject(with: data) as? [[String: Any]]
        Fuzz.require(serialized?.count == objects.count, "objects: FlatJSON read \(objects.count), JSONSerialization \(String(describing: serialized?.count))")
        if let serialized, serialized.count == objects.count {
            for (object, foundation) in zip(objects, serialized) {
                Fuzz.require(foundation.count == object.count, "object member count \(foundation.count) vs \(object.count)")
                for (key, value) in object {
                    Fuzz.require(foundation[key].map { matches(value, $0) } ?? false, "object member \(key.debugDescription): \(value)")
                }
            }
        }
        let decoded = try? JSONDecoder().decode([[String: DecodedValue]].self, from: data)
        Fuzz.require(decoded?.count == objects.count, "objects: JSONDecoder refuses what FlatJSON read")
        if let decoded, decoded.count == objects.count {
            for (object, members) in zip(objects, decoded) {
                Fuzz.require(members.count == object.count && object.allSatisfy { members[$0.key]?.value == $0.value }, "objects: JSONDecoder reads \(members) for \(object)")
            }
        }
    }
}
