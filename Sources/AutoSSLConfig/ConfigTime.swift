import AutoSSLCore
import Foundation
import Yams

/// A time in config.yaml (`created_at`, `enrolled_at`, ...), read without Yams' own reader of
/// timestamps: that one compiles an ICU regular expression and builds an ICU Gregorian calendar
/// and time zone on first use, about 1.5 ms of every command that loads the file
/// (docs/benchmarks.md). The RFC 3339 form auto-ssl writes, `2026-11-30T17:11:48.068501592Z`, is
/// read here to the same `Date` Yams gives (the whole seconds, then the nanoseconds added); any
/// other YAML timestamp a person may have typed (`2026-11-30 17:11:48`, a date alone) still goes to
/// Yams. Written as before, by Yams.
@propertyWrapper
public struct ConfigTime: Codable, Equatable, Sendable {
    public var wrappedValue: Date

    public init(wrappedValue: Date) {
        self.wrappedValue = wrappedValue
    }

    public init(from decoder: Decoder) throws {
        let container = try decoder.singleValueContainer()
        guard let text = try? container.decode(String.self) else {
            // A decoder whose dates are not text (JSON with numeric dates) decodes them its way.
            wrappedValue = try container.decode(Date.self)
            return
        }
        guard let date = Self.parse(text) ?? Self.libraryParse(text) else {
            throw DecodingError.dataCorruptedError(
                in: container, debugDescription: "\"\(text)\" is not a time (write it as 2026-11-30T17:11:48Z)")
        }
        wrappedValue = date
    }

    public func encode(to encoder: Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(wrappedValue)
    }

    /// RFC 3339 with at most 9 fractional digits, to exactly the `Date` Yams makes of it; nil for
    /// other forms.
    static func parse(_ text: String) -> Date? {
        let bytes = Array(text.utf8)
        guard bytes.count <= Timestamp.maximumParsedLength else { return nil }
        guard let dot = bytes.firstIndex(of: 0x2E) else { return Timestamp.parse(text) }
        var end = dot + 1
        while end < bytes.count, (0x30...0x39).contains(bytes[end]) { end += 1 }
        let digits = end - dot - 1
        guard digits > 0, digits <= 9, let whole = Timestamp.parse(String(decoding: bytes[..<dot] + bytes[end...], as: UTF8.self)) else {
            return nil
        }
        var nanoseconds = 0
        for byte in bytes[(dot + 1)..<end] { nanoseconds = nanoseconds * 10 + Int(byte - 0x30) }
        for _ in digits..<9 { nanoseconds *= 10 }
        return nanoseconds == 0 ? whole : whole.addingTimeInterval(Double(nanoseconds) / 1_000_000_000.0)
    }

    /// Yams' reader of YAML timestamps.
    static func libraryParse(_ text: String) -> Date? {
        Date.construct(from: Node.Scalar(text))
    }
}
