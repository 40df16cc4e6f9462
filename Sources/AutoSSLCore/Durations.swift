import Foundation

/// Go-style durations ("168h", "30m", "1h30m", "90s", "1.5h") plus day units ("7d").
/// Values are whole seconds: certificate lifetimes have no use for anything finer.
public struct CertificateDuration: Hashable, Comparable, Sendable, CustomStringConvertible {
    public let seconds: Int64

    public init(seconds: Int64) {
        self.seconds = seconds
    }

    public static func days(_ d: Int64) -> CertificateDuration { .init(seconds: d * 86_400) }
    public static func hours(_ h: Int64) -> CertificateDuration { .init(seconds: h * 3_600) }
    public static func minutes(_ m: Int64) -> CertificateDuration { .init(seconds: m * 60) }

    public static func < (lhs: Self, rhs: Self) -> Bool { lhs.seconds < rhs.seconds }

    /// Parses a duration; an empty string, a missing unit, a negative value or an unknown unit is an error.
    public init(parsing text: String) throws {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        guard !trimmed.isEmpty else {
            throw AutoSSLError.invalidArgument("empty duration", hint: "use a form like 168h, 30m, 7d or 1h30m")
        }
        var total: Double = 0
        var index = trimmed.startIndex
        while index < trimmed.endIndex {
            let numberStart = index
            while index < trimmed.endIndex, trimmed[index].isASCII, trimmed[index].isNumber || trimmed[index] == "." {
                index = trimmed.index(after: index)
            }
            let numberText = trimmed[numberStart..<index]
            guard !numberText.isEmpty, let value = Double(numberText), value.isFinite else {
                throw Self.malformed(text)
            }
            let unitStart = index
            while index < trimmed.endIndex, trimmed[index].isLetter {
                index = trimmed.index(after: index)
            }
            let unitSeconds: Double
            switch trimmed[unitStart..<index] {
            case "d": unitSeconds = 86_400
            case "h": unitSeconds = 3_600
            case "m": unitSeconds = 60
            case "s": unitSeconds = 1
            default: throw Self.malformed(text)
            }
            total += value * unitSeconds
        }
        // Ten years is far beyond anything a certificate of ours may live; the bound keeps Int64 safe.
        guard total <= 3_650 * 86_400 else {
            throw AutoSSLError.invalidArgument("duration \"\(text)\" is too long", hint: "durations are limited to 3650d")
        }
        self.seconds = Int64(total.rounded())
    }

    private static func malformed(_ text: String) -> AutoSSLError {
        .invalidArgument(
            "invalid duration \"\(text)\"",
            hint: "use a number followed by d, h, m or s, e.g. 168h, 30m, 7d or 1h30m")
    }

    /// The shortest Go-style rendering: "168h", "30m", "1h30m", "45s", "0s".
    public var description: String {
        if seconds == 0 { return "0s" }
        var rest = seconds
        var parts = ""
        let hours = rest / 3_600
        rest %= 3_600
        let minutes = rest / 60
        rest %= 60
        if hours > 0 { parts += "\(hours)h" }
        if minutes > 0 { parts += "\(minutes)m" }
        if rest > 0 { parts += "\(rest)s" }
        return parts
    }

    /// A human form for messages: "7 days", "30 days", "5 minutes", "1h30m".
    public var humanReadable: String {
        if seconds % 86_400 == 0 {
            let d = seconds / 86_400
            return d == 1 ? "1 day" : "\(d) days"
        }
        if seconds % 3_600 == 0 {
            let h = seconds / 3_600
            return h == 1 ? "1 hour" : "\(h) hours"
        }
        if seconds % 60 == 0, seconds < 3_600 {
            let m = seconds / 60
            return m == 1 ? "1 minute" : "\(m) minutes"
        }
        return description
    }
}
