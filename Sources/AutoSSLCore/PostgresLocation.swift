
import Foundation

/// Where a CA's PostgreSQL database is: `postgres://USER@HOST[:PORT]/DATABASE`. The password never
/// travels in the URL (it would end up in argv, shell history and config.yaml): it comes from a
/// file (`--database-password-file`, or a `PGPASSFILE`-style line), read by the caller.
public struct PostgresLocation: Sendable, Equatable, CustomStringConvertible {
    public var user: String
    public var host: String
    public var port: Int
    public var database: String

    public init(user: String, host: String, port: Int = 5432, database: String) {
        self.user = user
        self.host = host
        self.port = port
        self.database = database
    }

    /// Parses the URL form; anything unexpected is refused with what to write instead.
    public init(url text: String) throws {
        let form = "use postgres://USER@HOST[:PORT]/DATABASE (the password goes in a file, never in the URL)"
        guard text.utf8.count <= 1024, let components = URLComponents(string: text),
              components.scheme == "postgres" || components.scheme == "postgresql" else {
            // Not repeated: it could carry a password.
            throw AutoSSLError.invalidArgument("the database URL is not a PostgreSQL URL", hint: form)
        }
        guard components.password == nil else {
            throw AutoSSLError.invalidArgument("the PostgreSQL URL carries a password", hint: form)
        }
        guard let user = components.user, !user.isEmpty, var host = components.host, !host.isEmpty else {
            throw AutoSSLError.invalidArgument("the PostgreSQL URL needs a user and a host", hint: form)
        }
        // Some Foundation versions keep an IPv6 literal's brackets in `host`.
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        guard !host.isEmpty else { throw AutoSSLError.invalidArgument("the PostgreSQL URL needs a user and a host", hint: form) }
        let database = String(components.path.drop(while: { $0 == "/" }))
        guard !database.isEmpty, !database.contains("/"), components.query == nil, components.fragment == nil else {
            throw AutoSSLError.invalidArgument("the PostgreSQL URL needs exactly one database name and nothing after it", hint: form)
        }
        // Plain names only: what is written is what is used, with nothing to escape or decode.
        let nameCharacters = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-")
        guard user.count <= 63, database.count <= 63, user.allSatisfy(nameCharacters.contains),
              database.allSatisfy(nameCharacters.contains) else {
            throw AutoSSLError.invalidArgument(
                "the PostgreSQL user and database names may use letters, digits, '_', '.' and '-' (at most 63 each)", hint: form)
        }
        guard host.count <= 253, host.allSatisfy({ nameCharacters.contains($0) || $0 == ":" }) else {
            throw AutoSSLError.invalidArgument("the PostgreSQL host must be a host name or an IP address", hint: form)
        }
        let port = components.port ?? 5432
        guard (1...65_535).contains(port) else {
            throw AutoSSLError.invalidArgument("the PostgreSQL port \(port) is out of range", hint: form)
        }
        self.init(user: user, host: host, port: port, database: database)
    }

    public var description: String { "postgres://\(user)@\(host.contains(":") ? "[\(host)]" : host):\(port)/\(database)" }
}
