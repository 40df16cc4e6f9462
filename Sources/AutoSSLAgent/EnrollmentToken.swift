import AutoSSLCore
import Foundation

/// A one-time enrollment token from `ca token create`, read on the server before it is sent: its
/// claims give the names and the provisioner, and a token that cannot work (expired, for other
/// names) is refused here with a clear message. The CA checks it again, signature included.
public struct EnrollmentToken: Sendable {
    public let text: String
    public let claims: ProvisionerTokenClaims

    /// Tokens are a few hundred bytes; anything much longer is not one.
    public static let maximumLength = 16 * 1024

    public init(text: String, now: Date = Date()) throws {
        let trimmed = text.trimmingCharacters(in: .whitespacesAndNewlines)
        guard trimmed.utf8.count <= Self.maximumLength, let parsed = try? JWT.parse(trimmed),
              let claims = try? ProvisionerTokenClaims.decode(parsed.payload) else {
            throw AutoSSLError.invalidArgument(
                "the token file does not hold an enrollment token", hint: "make one on the CA host with `auto-ssl ca token create --san NAME`")
        }
        guard !claims.sans.isEmpty else {
            throw AutoSSLError.invalidArgument("the token names no host (its sans are empty)", hint: "make it with `auto-ssl ca token create --san NAME`")
        }
        if claims.exp <= Int64(now.timeIntervalSince1970) {
            throw AutoSSLError.invalidArgument(
                "the token expired at \(Timestamp.rfc3339(Date(timeIntervalSince1970: TimeInterval(claims.exp))))",
                hint: "make a new one on the CA host with `auto-ssl ca token create`")
        }
        self.text = trimmed
        self.claims = claims
    }

    /// The names to enroll: the token's, in its order; `given` (from --san), if any, must be the same set.
    public func names(given: [SubjectName]?) throws -> [SubjectName] {
        let own: [SubjectName]
        do {
            own = try claims.sans.map(SubjectName.init(parsing:))
        } catch {
            throw AutoSSLError.invalidArgument("the token's names are not valid names")
        }
        if let given, Set(given) != Set(own) {
            throw AutoSSLError.invalidArgument(
                "the token is for \(own.map(\.description).joined(separator: ", ")), not \(given.map(\.description).joined(separator: ", "))",
                hint: "leave out --san to use the token's names, or make a token for these names")
        }
        return own
    }
}
