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
        let utf8 = text.utf8
        // Most values (serials, names, base64) need no escaping at all.
        if !utf8.contains(where: { $0 < 0x20 || $0 == 0x22 || $0 == 0x5C }) {
            return "\"" + text + "\""
        }
        let hex: StaticString = "0123456789abcdef"
        var out = [UInt8]()
        out.reserveCapacity(utf8.count + 16)
        out.append(0x22)
        for byte in utf8 {
            switch byte {
            case 0x22, 0x5C:
                out.append(0x5C)
                out.append(byte)
            case 0x0A:
                out.append(0x5C)
                out.append(0x6E)
            case 0x0D:
                out.append(0x5C)
                out.append(0x72)
            case 0x09:
                out.append(0x5C)
                out.append(0x74)
            case 0x00..<0x20:
                out.append(0x5C)
                out.append(0x75)
                out.append(0x30)
                out.append(0x30)
                out.append(hex.utf8Start[Int(byte >> 4)])
                out.append(hex.utf8Start[Int(byte & 0x0F)])
            default: out.append(byte)
            }
        }
        out.append(0x22)
        return String(decoding: out, as: UTF8.self)
    }

    /// `{"k1":v1,"k2":v2}` from already-encoded values, keys in the order given.
    public static func object(_ members: [(String, String)]) -> String {
        "{" + members.map { quote($0.0) + ":" + $0.1 }.joined(separator: ",") + "}"
    }

    public static func array(_ values: [String]) -> String {
        "[" + values.joined(separator: ",") + "]"
    }
}

public enum Timestamp {
    /// RFC 3339 in UTC: `2026-11-29T01:22:33Z`, or with milliseconds `2026-11-29T01:22:33.123Z`.
    public static func rfc3339(_ date: Date, milliseconds: Bool = false) -> String {
        let interval = date.timeIntervalSince1970
        var seconds = time_t(interval.rounded(.down))
        var parts = tm()
        gmtime_r(&seconds, &parts)
        func pad(_ value: Int32, _ width: Int) -> String {
            let text = String(value)
            return String(repeating: "0", count: max(0, width - text.count)) + text
        }
        var text = "\(pad(parts.tm_year + 1900, 4))-\(pad(parts.tm_mon + 1, 2))-\(pad(parts.tm_mday, 2))T"
            + "\(pad(parts.tm_hour, 2)):\(pad(parts.tm_min, 2)):\(pad(parts.tm_sec, 2))"
        if milliseconds {
            let millis = Int32(((interval - interval.rounded(.down)) * 1000).rounded(.down))
            text += "." + pad(min(millis, 999), 3)
        }
        return text + "Z"
    }
}
