import AutoSSLCore
import Foundation

/// Where a CA keeps its records when it is not the embedded SQLite file: a PostgreSQL database
/// shared by every replica of the CA. Only the location and the path of a password file are kept
/// here; the password itself never is.
public struct DatabaseSettings: Codable, Equatable, Sendable {
    /// `postgres://USER@HOST[:PORT]/DATABASE[?sslmode=MODE&sslrootcert=FILE]`, without a password.
    public var url: String
    /// A file (mode 0600) holding the database password, recorded by `ca init --database-password-file`
    /// or `ca database migrate`. Nil: the password comes from `PGPASSFILE` / `~/.pgpass`, or a systemd
    /// credential named `database-password`, or the server needs none.
    public var passwordFile: String?

    /// The URL as it may be shown or recorded: read back in its canonical form, so that a
    /// hand-edited URL that carries a password (or is not a PostgreSQL URL) is never repeated.
    public var displayURL: String {
        (try? PostgresLocation(url: url))?.description ?? "an invalid PostgreSQL URL (database.url in config.yaml)"
    }

    public init(url: String, passwordFile: String? = nil) {
        self.url = url
        self.passwordFile = passwordFile
    }

    enum CodingKeys: String, CodingKey {
        case url
        case passwordFile = "password_file"
    }
}
