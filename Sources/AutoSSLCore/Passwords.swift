import Foundation

/// Rules for the secrets an operator chooses or we generate.
public enum Passwords {
    public static let minimumLength = 16

    /// Refuses passwords that are too short, with a message that says what to do (never echoes the secret).
    public static func validate(_ password: String, purpose: String) throws {
        guard password.count >= minimumLength else {
            throw AutoSSLError.invalidArgument(
                "the \(purpose) is too short (\(password.count) characters; at least \(minimumLength) are required)",
                hint: "choose a longer passphrase, or omit the password option with --non-interactive to have one generated")
        }
        guard !password.contains("\n"), !password.contains("\0") else {
            throw AutoSSLError.invalidArgument("the \(purpose) must be a single line")
        }
    }

    /// 32 characters from a 62-character alphabet (about 190 bits), drawn from the system CSPRNG
    /// without modulo bias.
    public static func generate(length: Int = 32) -> String {
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")
        var rng = SystemRandomNumberGenerator()
        return String((0..<length).map { _ in alphabet[Int.random(in: 0..<alphabet.count, using: &rng)] })
    }

    /// What a password file holds: its first line, without the line ending.
    public static func fromFileContents(_ contents: String) -> String {
        // Character-wise split: "\r\n" is one Character in Swift, and isNewline covers it.
        String(contents.split(maxSplits: 1, omittingEmptySubsequences: false, whereSeparator: \.isNewline).first ?? "")
    }
}
