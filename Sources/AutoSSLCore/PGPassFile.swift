import Foundation

/// The password lookup of libpq's password file (`PGPASSFILE`, default `~/.pgpass`): lines of
/// `hostname:port:database:username:password`, `*` matching anything in the first four fields,
/// `\:` and `\\` escaping, `#` starting a comment. The first matching line wins. The text is
/// treated as hostile: bounded, no trapping conversions, nothing of it repeated in errors.
public enum PGPassFile {
    /// Files larger than this are not password files; they are refused rather than scanned.
    public static let maximumBytes = 1 << 20

    /// The password for `location`, or nil when no line matches (or the text is not a password file).
    public static func password(for location: PostgresLocation, in text: String) -> String? {
        guard text.utf8.count <= maximumBytes else { return nil }
        for line in text.split(omittingEmptySubsequences: true, whereSeparator: { $0 == "\n" || $0 == "\r\n" || $0 == "\r" }) {
            if line.hasPrefix("#") { continue }
            guard let fields = split(line), fields.count == 5 else { continue }
            let wanted = [location.host, String(location.port), location.database, location.user]
            var matches = true
            for (field, value) in zip(fields.prefix(4), wanted) where field != "*" && field != value {
                matches = false
                break
            }
            if matches { return fields[4] }
        }
        return nil
    }

    /// Splits one line on its first four unescaped colons, undoing `\:` and `\\`.
    static func split(_ line: Substring) -> [String]? {
        var fields: [String] = []
        var current = ""
        var escaped = false
        for character in line {
            if escaped {
                current.append(character)
                escaped = false
            } else if character == "\\" {
                escaped = true
            } else if character == ":", fields.count < 4 {
                // The fifth field, the password, is the rest of the line, colons included.
                fields.append(current)
                current = ""
            } else {
                current.append(character)
            }
        }
        fields.append(current)
        return fields
    }
}
