import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Small, allocation-light text encoders for the hot path (every issuance writes an audit line
/// and a JSON response; Foundation's formatters and JSONSerialization dominated the profile).
public enum JSONText {
    /// A JSON string literal (RFC 8259 §7), quotes included.
    public static func quote(_ text: String) -> String {
        // Most values (serials, names, base64) need no escaping at all.
        if !text.utf8.contains(where: JSONWriter.needsEscape) {
            return "\"" + text + "\""
        }
        var writer = JSONWriter(capacity: text.utf8.count + 16)
        writer.string(text)
        return String(decoding: writer.bytes, as: UTF8.self)
    }

    /// `{"k1":v1,"k2":v2}` from already-encoded values, keys in the order given.
    public static func object(_ members: [(String, String)]) -> String {
        "{" + members.map { quote($0.0) + ":" + $0.1 }.joined(separator: ",") + "}"
    }

    public static func array(_ values: [String]) -> String {
        "[" + values.joined(separator: ",") + "]"
    }
}

/// Builds JSON text directly in a byte buffer: no intermediate strings per member, which is what
/// an audit line per issuance used to cost.
public struct JSONWriter {
    public private(set) var bytes: [UInt8] = []

    public init(capacity: Int = 256) {
        bytes.reserveCapacity(capacity)
    }

    static func needsEscape(_ byte: UInt8) -> Bool { byte < 0x20 || byte == 0x22 || byte == 0x5C }

    /// Text that is already JSON (punctuation, keys known not to need escaping).
    public mutating func raw(_ text: StaticString) {
        bytes.append(contentsOf: UnsafeBufferPointer(start: text.utf8Start, count: text.utf8CodeUnitCount))
    }

    public mutating func raw(_ text: String) {
        bytes.append(contentsOf: text.utf8)
    }

    /// A JSON string literal, quotes included, escaped as RFC 8259 §7 requires.
    public mutating func string(_ text: String) {
        bytes.append(0x22)
        var text = text
        text.withUTF8 { utf8 in
            guard utf8.contains(where: Self.needsEscape) else {
                bytes.append(contentsOf: utf8)
                return
            }
            let hex: StaticString = "0123456789abcdef"
            for byte in utf8 {
                switch byte {
                case 0x22, 0x5C: bytes.append(0x5C); bytes.append(byte)
                case 0x0A: bytes.append(0x5C); bytes.append(0x6E)
                case 0x0D: bytes.append(0x5C); bytes.append(0x72)
                case 0x09: bytes.append(0x5C); bytes.append(0x74)
                case 0x00..<0x20:
                    bytes.append(contentsOf: [0x5C, 0x75, 0x30, 0x30])
                    bytes.append(hex.utf8Start[Int(byte >> 4)])
                    bytes.append(hex.utf8Start[Int(byte & 0x0F)])
                default: bytes.append(byte)
                }
            }
        }
        bytes.append(0x22)
    }

    /// `["a","b"]`
    public mutating func array(_ values: [String]) {
        bytes.append(0x5B)
        for (index, value) in values.enumerated() {
            if index > 0 { bytes.append(0x2C) }
            string(value)
        }
        bytes.append(0x5D)
    }

    /// An RFC 3339 time as a JSON string.
    public mutating func timestamp(_ date: Date, milliseconds: Bool) {
        bytes.append(0x22)
        Timestamp.append(date, milliseconds: milliseconds, to: &bytes)
        bytes.append(0x22)
    }
}

public enum Timestamp {
    /// The longest text `parse` looks at (RFC 3339 with nanoseconds and an offset is 35 bytes).
    public static let maximumParsedLength = 64

    /// Reads an RFC 3339 time (`2026-11-29T01:22:33Z`, fractional seconds and `+01:00`-style
    /// offsets allowed): the shape is checked here (four-digit year, two-digit fields, nothing
    /// after the zone), the values by Foundation's `ISO8601FormatStyle`; nil for anything else.
    public static func parse(_ text: String) -> Date? {
        guard hasRFC3339Shape(Array(text.utf8)),
              let date = try? Date.ISO8601FormatStyle(includingFractionalSeconds: true).parse(text),
              (earliest..<latest).contains(date.timeIntervalSince1970) else { return nil }
        return date
    }

    /// 1583-01-01T00:00:00Z and 10000-01-01T00:00:00Z: the first whole Gregorian year, and the
    /// end of the years RFC 3339 can write, in UTC.
    static let earliest: TimeInterval = -12_212_553_600
    static let latest: TimeInterval = 253_402_300_800

    /// `DDDD-DD-DDTDD:DD:DD`, then `.` and 1 to 9 digits optionally, then `Z` or `+DD:DD`/`-DD:DD`.
    static func hasRFC3339Shape(_ bytes: [UInt8]) -> Bool {
        guard bytes.count >= 20, bytes.count <= maximumParsedLength else { return false }
        func digits(_ range: Range<Int>) -> Bool { range.allSatisfy { $0 < bytes.count && (0x30...0x39).contains(bytes[$0]) } }
        guard digits(0..<4), bytes[4] == 0x2D, digits(5..<7), bytes[7] == 0x2D, digits(8..<10), bytes[10] == 0x54,
              digits(11..<13), bytes[13] == 0x3A, digits(14..<16), bytes[16] == 0x3A, digits(17..<19) else { return false }
        func number(_ range: Range<Int>) -> Int { range.reduce(0) { $0 * 10 + Int(bytes[$1] - 0x30) } }
        // Foundation would roll 26:00 or February 30 over into the next day or month.
        let year = number(0..<4), month = number(5..<7), day = number(8..<10)
        let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
        let monthDays = [31, leap ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]
        // From 1583 on: before the Gregorian calendar, Foundation counts Julian days where
        // `rfc3339` (gmtime) counts proleptic Gregorian ones; no certificate needs such a time.
        guard year >= 1583, (1...12).contains(month), (1...monthDays[month - 1]).contains(day),
              number(11..<13) <= 23, number(14..<16) <= 59, number(17..<19) <= 59 else { return false }
        var index = 19
        if bytes[index] == 0x2E {
            let start = index + 1
            index = start
            while index < bytes.count, (0x30...0x39).contains(bytes[index]) { index += 1 }
            guard (1...9).contains(index - start), index < bytes.count else { return false }
        }
        if bytes[index] == 0x5A { return index + 1 == bytes.count }
        guard bytes[index] == 0x2B || bytes[index] == 0x2D, bytes.count == index + 6 else { return false }
        return digits((index + 1)..<(index + 3)) && bytes[index + 3] == 0x3A && digits((index + 4)..<(index + 6))
            && number((index + 1)..<(index + 3)) <= 23 && number((index + 4)..<(index + 6)) <= 59
    }

    /// `20261129T012233Z`: the basic form, for names of files and directories.
    public static func compact(_ date: Date) -> String {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(20)
        append(date, milliseconds: false, to: &bytes)
        return String(decoding: bytes.filter { $0 != 0x2D && $0 != 0x3A }, as: UTF8.self)
    }

    /// RFC 3339 in UTC: `2026-11-29T01:22:33Z`, or with milliseconds `2026-11-29T01:22:33.123Z`.
    public static func rfc3339(_ date: Date, milliseconds: Bool = false) -> String {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(24)
        append(date, milliseconds: milliseconds, to: &bytes)
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Appends the RFC 3339 form of `date` (UTC) as ASCII digits.
    public static func append(_ date: Date, milliseconds: Bool, to bytes: inout [UInt8]) {
        // A date read from a file or a database row can be anything a Double holds: NaN and
        // infinities become the epoch, and the rest is held to years 1 through 9999, so that the
        // conversion to time_t cannot trap.
        let raw = date.timeIntervalSince1970
        let interval = raw.isFinite ? min(max(raw, -62_135_596_800), 253_402_300_799) : 0
        var seconds = time_t(interval.rounded(.down))
        var parts = tm()
        gmtime_r(&seconds, &parts)
        func digits(_ value: Int32, _ width: Int) {
            // At least `width` digits; years beyond 9999 keep all of theirs.
            var value = Int(value)
            if value < 0 {
                bytes.append(0x2D)
                value = -value
            }
            var divisor = 1
            var count = 1
            while divisor <= value / 10 {
                divisor *= 10
                count += 1
            }
            for _ in count..<max(count, width) { bytes.append(0x30) }
            while divisor > 0 {
                bytes.append(UInt8(0x30 + (value / divisor) % 10))
                divisor /= 10
            }
        }
        digits(parts.tm_year + 1900, 4)
        bytes.append(0x2D)
        digits(parts.tm_mon + 1, 2)
        bytes.append(0x2D)
        digits(parts.tm_mday, 2)
        bytes.append(0x54)
        digits(parts.tm_hour, 2)
        bytes.append(0x3A)
        digits(parts.tm_min, 2)
        bytes.append(0x3A)
        digits(parts.tm_sec, 2)
        if milliseconds {
            let millis = Int32(((interval - interval.rounded(.down)) * 1000).rounded(.down))
            bytes.append(0x2E)
            digits(min(millis, 999), 3)
        }
        bytes.append(0x5A)
    }
}
