
import Foundation

/// How the connection to PostgreSQL is protected, in libpq's words (`sslmode`).
public enum PostgresTLSMode: String, Sendable, Equatable, CaseIterable {
    /// Plain TCP. The default only for a server on this host (loopback).
    case disable
    /// TLS, but the server's certificate is not checked: a passive listener learns nothing, an
    /// active attacker on the path can still read and change everything.
    case require
    /// TLS with the server's certificate chained to the trusted roots, its name not checked.
    case verifyCA = "verify-ca"
    /// TLS with the chain and the host name (or IP address) of the URL checked. The default for
    /// every server that is not on this host.
    case verifyFull = "verify-full"

    /// Whether the server's certificate is checked against trusted roots.
    public var checksChain: Bool { self == .verifyCA || self == .verifyFull }
}

/// Where a CA's PostgreSQL database is: `postgres://USER@HOST[:PORT]/DATABASE[?sslmode=MODE&sslrootcert=FILE]`.
/// The password never travels in the URL (it would end up in argv, shell history and config.yaml): it
/// comes from a file (`--database-password-file`, or a `PGPASSFILE`-style line), read by the caller.
///
/// The connection is TLS with the server's certificate and name checked (`verify-full`) unless the
/// host is this machine's loopback, where it is plain TCP by default. `sslrootcert` names a PEM file
/// of the roots that sign the server's certificate (else the system's trusted roots are used).
public struct PostgresLocation: Sendable, Equatable, CustomStringConvertible {
    public var user: String
    public var host: String
    public var port: Int
    public var database: String
    public var tls: PostgresTLSMode
    /// An absolute path to a PEM file of trusted roots; nil: the system's roots.
    public var rootCertificateFile: String?

    public init(
        user: String, host: String, port: Int = 5432, database: String, tls: PostgresTLSMode? = nil, rootCertificateFile: String? = nil
    ) {
        self.user = user
        self.host = host
        self.port = port
        self.database = database
        self.tls = tls ?? Self.defaultTLS(host: host)
        self.rootCertificateFile = rootCertificateFile
    }

    /// `disable` for this machine's loopback (`localhost`, 127.0.0.0/8, `::1`), where the traffic
    /// never leaves the host; `verify-full` for every other host.
    public static func defaultTLS(host: String) -> PostgresTLSMode {
        isLoopback(host) ? .disable : .verifyFull
    }

    static func isLoopback(_ host: String) -> Bool {
        let name = host.lowercased()
        if name == "localhost" || name == "localhost." { return true }
        var v4 = in_addr()
        if inet_pton(AF_INET, name, &v4) == 1 {
            return UInt32(bigEndian: v4.s_addr) >> 24 == 127
        }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, name, &v6) == 1 {
            var loopback = in6_addr()
            _ = inet_pton(AF_INET6, "::1", &loopback)
            return withUnsafeBytes(of: &v6) { a in withUnsafeBytes(of: &loopback) { b in a.elementsEqual(b) } }
        }
        return false
    }

    /// Parses the URL form; anything unexpected is refused with what to write instead.
    public init(url text: String) throws {
        let form = "use postgres://USER@HOST[:PORT]/DATABASE[?sslmode=verify-full&sslrootcert=/PATH/TO/ROOTS.pem] (the password goes in a file, never in the URL)"
        // ASCII only: Foundation turns other letters in a host into punycode that may not read back.
        guard text.utf8.count <= 1024, text.utf8.allSatisfy({ $0 >= 0x20 && $0 < 0x7F }), let components = URLComponents(string: text),
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
        guard !database.isEmpty, !database.contains("/"), components.fragment == nil else {
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
        let (tls, rootCertificateFile) = try Self.parseTLS(components.percentEncodedQuery, host: host, form: form)
        self.init(user: user, host: host, port: port, database: database, tls: tls, rootCertificateFile: rootCertificateFile)
    }

    /// `sslmode` and `sslrootcert`, each at most once; nothing else (a `password=` is refused
    /// without being repeated). Written as used: no percent escapes.
    static func parseTLS(_ query: String?, host: String, form: String) throws -> (PostgresTLSMode, String?) {
        guard let query else { return (defaultTLS(host: host), nil) }
        var mode: PostgresTLSMode?
        var root: String?
        for item in query.split(separator: "&", omittingEmptySubsequences: false) {
            let parts = item.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let key = parts.first.map(String.init) ?? ""
            let value = parts.count == 2 ? String(parts[1]) : ""
            switch key {
            case "sslmode":
                guard mode == nil else {
                    throw AutoSSLError.invalidArgument("the PostgreSQL URL gives sslmode twice", hint: form)
                }
                if value == "prefer" || value == "allow" {
                    throw AutoSSLError.invalidArgument(
                        "sslmode=\(value) is not supported: it falls back to an unencrypted connection without telling anyone",
                        hint: "use sslmode=verify-full (with sslrootcert=FILE if the server's certificate is not signed by a system root), or sslmode=disable on a private network")
                }
                guard let parsed = PostgresTLSMode(rawValue: value) else {
                    throw AutoSSLError.invalidArgument(
                        "the PostgreSQL URL's sslmode must be disable, require, verify-ca or verify-full", hint: form)
                }
                mode = parsed
            case "sslrootcert":
                guard root == nil else {
                    throw AutoSSLError.invalidArgument("the PostgreSQL URL gives sslrootcert twice", hint: form)
                }
                let pathCharacters = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-/+,:@~")
                guard value == "system" || (value.hasPrefix("/") && value.utf8.count <= 512 && value.allSatisfy(pathCharacters.contains)
                    && !value.split(separator: "/").contains("..")) else {
                    throw AutoSSLError.invalidArgument(
                        "the PostgreSQL URL's sslrootcert must be an absolute path of letters, digits and _ . - / + , : @ ~ (or 'system')",
                        hint: "move or link the roots file to such a path, e.g. /etc/auto-ssl/postgres-roots.pem")
                }
                root = value
            default:
                // Not repeated: it could be a password.
                throw AutoSSLError.invalidArgument(
                    "the PostgreSQL URL may carry only sslmode and sslrootcert after '?'", hint: form)
            }
        }
        // Roots named without a mode (a file, or `system` for the system's) mean the checks they
        // are for, on any host.
        let effective = mode ?? (root != nil ? .verifyFull : defaultTLS(host: host))
        if let root, !effective.checksChain {
            throw AutoSSLError.invalidArgument(
                "the PostgreSQL URL names sslrootcert \(root) but sslmode=\(effective.rawValue) does not check the server's certificate",
                hint: "use sslmode=verify-full (or verify-ca) with sslrootcert")
        }
        return (effective, root == "system" ? nil : root)
    }

    /// The canonical URL, read back to an equal value: `sslmode` is written when it is not the
    /// host's default, `sslrootcert` when there is one.
    public var description: String {
        var text = "postgres://\(user)@\(host.contains(":") ? "[\(host)]" : host):\(port)/\(database)"
        var query: [String] = []
        if tls != Self.defaultTLS(host: host) { query.append("sslmode=\(tls.rawValue)") }
        if let rootCertificateFile { query.append("sslrootcert=\(rootCertificateFile)") }
        if !query.isEmpty { text += "?" + query.joined(separator: "&") }
        return text
    }
}
