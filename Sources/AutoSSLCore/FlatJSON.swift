import Foundation

/// A fast reader for the small, flat JSON objects on the issuance path: the `/sign` body and a
/// one-time token's header and claims. `JSONDecoder` costs more than the rest of the request
/// parsing together (Codable containers, boxing, runtime metadata), and it runs three times per
/// certificate.
///
/// It reads one object whose values are strings, numbers, booleans, null or arrays of strings, and
/// returns nil for anything else (nested objects, duplicate keys, invalid UTF-8, numbers out of
/// range). Callers then fall back to `JSONDecoder`, so this fast path never changes what is
/// accepted or the error a client sees; it only answers the common case sooner.
public enum FlatJSON {
    public enum Value: Equatable, Sendable {
        case string(String)
        case number(Double)
        case bool(Bool)
        case null
        case strings([String])
    }

    public static func object(_ data: Data) -> [String: Value]? {
        data.withUnsafeBytes { (raw: UnsafeRawBufferPointer) in object(raw.bindMemory(to: UInt8.self)) }
    }

    public static func object(_ bytes: [UInt8]) -> [String: Value]? {
        bytes.withUnsafeBufferPointer { object($0) }
    }

    public static func object(_ bytes: UnsafeBufferPointer<UInt8>) -> [String: Value]? {
        var reader = Reader(bytes: bytes)
        return reader.readDocument()
    }

    /// An array of such objects (the ACME store keeps an order's identifiers so), nil for
    /// anything else, with the same fallback rule.
    public static func objects(_ bytes: UnsafeBufferPointer<UInt8>) -> [[String: Value]]? {
        var reader = Reader(bytes: bytes)
        return reader.readObjectsDocument()
    }

    public static func objects(_ text: String) -> [[String: Value]]? {
        withUTF8(text) { objects($0) }
    }

    /// An array of strings (an ACME account's contacts as stored), nil for anything else, with
    /// the same fallback rule.
    public static func strings(_ bytes: UnsafeBufferPointer<UInt8>) -> [String]? {
        var reader = Reader(bytes: bytes)
        return reader.readStringsDocument()
    }

    public static func strings(_ text: String) -> [String]? {
        withUTF8(text) { strings($0) }
    }

    private static func withUTF8<T>(_ text: String, _ body: (UnsafeBufferPointer<UInt8>) -> T) -> T {
        var text = text
        return text.withUTF8(body)
    }

    private struct Reader {
        let bytes: UnsafeBufferPointer<UInt8>
        var index = 0

        init(bytes: UnsafeBufferPointer<UInt8>) {
            self.bytes = bytes
        }

        var current: UInt8? { index < bytes.count ? bytes[index] : nil }

        mutating func skipWhitespace() {
            while index < bytes.count {
                switch bytes[index] {
                case 0x20, 0x09, 0x0A, 0x0D: index += 1
                default: return
                }
            }
        }

        mutating func consume(_ byte: UInt8) -> Bool {
            guard current == byte else { return false }
            index += 1
            return true
        }

        mutating func readDocument() -> [String: Value]? {
            skipWhitespace()
            guard let object = readObject() else { return nil }
            return atEnd(object)
        }

        mutating func readObjectsDocument() -> [[String: Value]]? {
            skipWhitespace()
            guard consume(0x5B) else { return nil }  // [
            var objects: [[String: Value]] = []
            skipWhitespace()
            if consume(0x5D) { return atEnd(objects) }  // ]
            while true {
                skipWhitespace()
                guard let object = readObject() else { return nil }
                objects.append(object)
                skipWhitespace()
                if consume(0x2C) { continue }  // ,
                guard consume(0x5D) else { return nil }
                return atEnd(objects)
            }
        }

        mutating func readStringsDocument() -> [String]? {
            skipWhitespace()
            guard consume(0x5B), let strings = readStrings() else { return nil }  // [
            return atEnd(strings)
        }

        /// `value` when only whitespace is left.
        mutating func atEnd<T>(_ value: T) -> T? {
            skipWhitespace()
            return index == bytes.count ? value : nil
        }

        /// One object, from its `{` to its `}`.
        mutating func readObject() -> [String: Value]? {
            guard consume(0x7B) else { return nil }  // {
            var members: [String: Value] = [:]
            skipWhitespace()
            if consume(0x7D) { return members }  // }
            while true {
                skipWhitespace()
                guard consume(0x22), let key = readStringBody() else { return nil }
                skipWhitespace()
                guard consume(0x3A) else { return nil }  // :
                skipWhitespace()
                guard let value = readValue() else { return nil }
                // Duplicate keys are ambiguous; leave them to JSONDecoder's rules.
                guard members.updateValue(value, forKey: key) == nil else { return nil }
                skipWhitespace()
                if consume(0x2C) { continue }  // ,
                guard consume(0x7D) else { return nil }
                return members
            }
        }

        /// The strings of an array whose `[` was just read, up to its `]`.
        mutating func readStrings() -> [String]? {
            var strings: [String] = []
            skipWhitespace()
            if consume(0x5D) { return strings }  // ]
            while true {
                skipWhitespace()
                guard consume(0x22), let string = readStringBody() else { return nil }
                strings.append(string)
                skipWhitespace()
                if consume(0x2C) { continue }  // ,
                guard consume(0x5D) else { return nil }
                return strings
            }
        }

        mutating func readValue() -> Value? {
            guard let byte = current else { return nil }
            switch byte {
            case 0x22:
                index += 1
                return readStringBody().map(Value.string)
            case 0x5B:  // [
                index += 1
                return readStrings().map(Value.strings)
            case 0x74: return readLiteral("true") ? .bool(true) : nil
            case 0x66: return readLiteral("false") ? .bool(false) : nil
            case 0x6E: return readLiteral("null") ? .null : nil
            case 0x2D, 0x30...0x39: return readNumber()
            default: return nil
            }
        }

        mutating func readLiteral(_ word: StaticString) -> Bool {
            let count = word.utf8CodeUnitCount
            guard bytes.count - index >= count else { return false }
            for offset in 0..<count where bytes[index + offset] != word.utf8Start[offset] { return false }
            index += count
            return true
        }

        /// RFC 8259 §6 number grammar, then the platform's correctly rounded conversion. Steps
        /// aside wherever JSONDecoder refuses a number the grammar allows: one that overflows to
        /// infinity, one with a nonzero digit that underflows to zero (`1e-400`), and some zeros
        /// written with an exponent (`0e1`, `0.00e5`, `-0.0e1`; which ones depends on the length),
        /// so for simplicity every zero with an exponent.
        mutating func readNumber() -> Value? {
            let start = index
            _ = consume(0x2D)
            guard let first = current, first >= 0x30 && first <= 0x39 else { return nil }
            index += 1
            if first != 0x30 { skipDigits() }
            if consume(0x2E) {
                guard readDigits() else { return nil }
            }
            let nonzero = bytes[start..<index].contains { $0 >= 0x31 && $0 <= 0x39 }
            let hasExponent = current == 0x65 || current == 0x45
            if hasExponent {
                index += 1
                if current == 0x2B || current == 0x2D { index += 1 }
                guard readDigits() else { return nil }
            }
            let text = String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<index]), as: UTF8.self)
            guard let number = Double(text), number.isFinite, number != 0 || !(nonzero || hasExponent) else { return nil }
            return .number(number)
        }

        mutating func skipDigits() {
            while let byte = current, byte >= 0x30 && byte <= 0x39 { index += 1 }
        }

        mutating func readDigits() -> Bool {
            let start = index
            skipDigits()
            return index > start
        }

        /// The rest of a string after its opening quote, unescaped; nil for invalid JSON or UTF-8.
        mutating func readStringBody() -> String? {
            let start = index
            // Common case: no escapes, so the bytes are the string.
            while index < bytes.count {
                let byte = bytes[index]
                if byte == 0x22 {
                    let string = String(validating: UnsafeBufferPointer(rebasing: bytes[start..<index]), as: UTF8.self)
                    index += 1
                    return string
                }
                if byte == 0x5C { break }
                if byte < 0x20 { return nil }
                index += 1
            }
            guard index < bytes.count else { return nil }
            var out = [UInt8]()
            out.reserveCapacity(bytes.count - start)
            out.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[start..<index]))
            while index < bytes.count {
                // Copy the run of plain bytes up to the next quote, backslash or control byte at once
                // (a PEM in a JSON string is 64-byte lines between "\n" escapes).
                let runStart = index
                while index < bytes.count, bytes[index] != 0x22, bytes[index] != 0x5C, bytes[index] >= 0x20 { index += 1 }
                if index > runStart { out.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[runStart..<index])) }
                guard index < bytes.count else { return nil }
                let byte = bytes[index]
                index += 1
                switch byte {
                case 0x22:
                    return String(validating: out, as: UTF8.self)
                case 0x5C:
                    guard let escaped = current else { return nil }
                    index += 1
                    switch escaped {
                    case 0x22, 0x5C, 0x2F: out.append(escaped)
                    case 0x62: out.append(0x08)
                    case 0x66: out.append(0x0C)
                    case 0x6E: out.append(0x0A)
                    case 0x72: out.append(0x0D)
                    case 0x74: out.append(0x09)
                    case 0x75:
                        guard let scalar = readUnicodeEscape() else { return nil }
                        out.append(contentsOf: String(Character(scalar)).utf8)
                    default: return nil
                    }
                case 0x00..<0x20:
                    return nil
                default:
                    out.append(byte)
                }
            }
            return nil
        }

        /// `XXXX` after `\u`, combining a surrogate pair; nil for a lone surrogate.
        mutating func readUnicodeEscape() -> Unicode.Scalar? {
            guard let high = readHex4() else { return nil }
            if (0xD800...0xDBFF).contains(high) {
                guard consume(0x5C), consume(0x75), let low = readHex4(), (0xDC00...0xDFFF).contains(low) else { return nil }
                return Unicode.Scalar(0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00))
            }
            return Unicode.Scalar(high)
        }

        mutating func readHex4() -> UInt32? {
            guard bytes.count - index >= 4 else { return nil }
            var value: UInt32 = 0
            for _ in 0..<4 {
                let byte = bytes[index]
                let digit: UInt8
                switch byte {
                case 0x30...0x39: digit = byte - 0x30
                case 0x61...0x66: digit = byte - 0x61 + 10
                case 0x41...0x46: digit = byte - 0x41 + 10
                default: return nil
                }
                value = value << 4 | UInt32(digit)
                index += 1
            }
            return value
        }
    }
}

extension Dictionary where Key == String, Value == FlatJSON.Value {
    /// A required string member (nil when absent or of another type).
    public func string(_ key: String) -> String? {
        if case .string(let value)? = self[key] { return value }
        return nil
    }

    /// An optional string member: `.some(nil)` when absent or null, nil when of another type.
    public func optionalString(_ key: String) -> String?? {
        switch self[key] {
        case nil, .null?: return .some(nil)
        case .string(let value)?: return .some(value)
        default: return nil
        }
    }

    public func number(_ key: String) -> Double? {
        if case .number(let value)? = self[key] { return value }
        return nil
    }

    public func optionalNumber(_ key: String) -> Double?? {
        switch self[key] {
        case nil, .null?: return .some(nil)
        case .number(let value)?: return .some(value)
        default: return nil
        }
    }

    public func optionalStrings(_ key: String) -> [String]?? {
        switch self[key] {
        case nil, .null?: return .some(nil)
        case .strings(let value)?: return .some(value)
        default: return nil
        }
    }
}
