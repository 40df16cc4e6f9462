import AutoSSLCore
import Foundation

/// What a command prints: errors and warnings on standard error, reports as JSON on standard output.
public enum Output {
    public static func standardError(_ text: String) {
        FileHandle.standardError.write(Data(text.utf8))
    }

    public static func error(_ error: AutoSSLError) {
        var text = "error: \(error.message)\n"
        if let hint = error.hint { text += "  \(hint)\n" }
        standardError(text)
    }

    public static func warning(_ text: String) {
        standardError("warning: \(text)\n")
    }

    public static func json(_ value: some Encodable) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        encoder.dateEncodingStrategy = .iso8601
        print(String(decoding: try encoder.encode(value), as: UTF8.self))
    }

    public static func date(_ date: Date) -> String {
        Timestamp.rfc3339(date)
    }
}
