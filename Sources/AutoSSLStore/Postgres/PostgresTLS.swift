import AutoSSLCore
import Foundation
import NIOSSL
import PostgresNIO

/// The TLS side of a PostgreSQL connection, from the URL's `sslmode` and `sslrootcert`
/// (`PostgresLocation`): what PostgresNIO is given, and the failures of a handshake in words.
enum PostgresTLS {
    /// A roots file larger than this is not a roots file.
    static let maximumRootsBytes = 1 << 20

    /// What the probe connection and the pool are given: `disable`, or TLS 1.2+ required with the
    /// checks the mode asks for. The roots file is read here, once per open; a missing, unreadable
    /// or empty one is an error that names it.
    struct Settings {
        let connection: PostgresConnection.Configuration.TLS
        let client: PostgresClient.Configuration.TLS
    }

    static func configuration(for location: PostgresLocation) throws -> Settings {
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.minimumTLSVersion = .tlsv12
        switch location.tls {
        case .disable: return Settings(connection: .disable, client: .disable)
        case .require: tls.certificateVerification = .none
        case .verifyCA: tls.certificateVerification = .noHostnameVerification
        case .verifyFull: tls.certificateVerification = .fullVerification
        }
        if let file = location.rootCertificateFile {
            tls.trustRoots = .certificates(try readRoots(file))
        } else {
            tls.trustRoots = .default
        }
        do {
            return Settings(connection: .require(try NIOSSLContext(configuration: tls)), client: .require(tls))
        } catch {
            throw AutoSSLError(
                .general, "could not set up TLS for PostgreSQL at \(location): \(error)",
                hint: "check sslrootcert in the database URL, or the system's trusted roots (/etc/ssl/certs)")
        }
    }

    /// The PEM certificates of a roots file: a regular file of at most 1 MiB (links are followed,
    /// as for any file in /etc/ssl), one certificate at least.
    static func readRoots(_ path: String) throws -> [NIOSSLCertificate] {
        let hint = "sslrootcert in the database URL must name a readable PEM file of the certificates that sign the PostgreSQL server's certificate"
            + " (the service sees no /home, /root, /run/user or private /tmp: keep it in /etc/auto-ssl)"
        let descriptor = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY)
        guard descriptor >= 0 else {
            throw AutoSSLError(.invalidArguments, "cannot read the PostgreSQL roots file \(path): \(String(cString: strerror(errno)))", hint: hint)
        }
        let handle = FileHandle(fileDescriptor: descriptor, closeOnDealloc: true)
        var status = stat()
        guard fstat(descriptor, &status) == 0, (status.st_mode & S_IFMT) == S_IFREG else {
            throw AutoSSLError(.invalidArguments, "the PostgreSQL roots file \(path) is not a regular file", hint: hint)
        }
        let bytes: Data
        do {
            bytes = try handle.read(upToCount: maximumRootsBytes + 1) ?? Data()
        } catch {
            throw AutoSSLError(.invalidArguments, "cannot read the PostgreSQL roots file \(path): \(error.localizedDescription)", hint: hint)
        }
        guard bytes.count <= maximumRootsBytes else {
            throw AutoSSLError(.invalidArguments, "the PostgreSQL roots file \(path) is larger than 1 MiB", hint: hint)
        }
        guard bytes.range(of: Data("-----BEGIN CERTIFICATE-----".utf8)) != nil else {
            throw AutoSSLError(.invalidArguments, "the PostgreSQL roots file \(path) holds no PEM certificate", hint: hint)
        }
        let certificates: [NIOSSLCertificate]
        do {
            certificates = try NIOSSLCertificate.fromPEMBytes(Array(bytes))
        } catch {
            throw AutoSSLError(
                .invalidArguments, "the PostgreSQL roots file \(path) holds a PEM certificate that does not parse (\(error))", hint: hint)
        }
        guard !certificates.isEmpty else {
            throw AutoSSLError(.invalidArguments, "the PostgreSQL roots file \(path) holds no PEM certificate", hint: hint)
        }
        return certificates
    }

    /// A TLS failure in words, or nil when the error is not about TLS.
    static func describe(_ error: any Error, location: PostgresLocation) -> String? {
        if let psql = error as? PSQLError {
            if psql.code == .sslUnsupported {
                return "the server does not offer TLS, and sslmode=\(location.tls.rawValue) requires it (ssl = on in postgresql.conf, or sslmode=disable on a private network)"
            }
            if let underlying = psql.underlying { return describe(underlying, location: location) }
            return nil
        }
        if let extra = error as? NIOSSLExtraError, extra == .failedToValidateHostname || extra == .serverHostnameImpossibleToMatch {
            return "the server's certificate is not for \(location.host) (its subject alternative names must include the host of the database URL)"
        }
        if let ssl = error as? NIOSSLError {
            switch ssl {
            case .handshakeFailed(let reasons):
                let text = "\(reasons)"
                if text.contains("CERTIFICATE_VERIFY_FAILED") {
                    return location.rootCertificateFile.map {
                        "the server's certificate is not signed by a root in \($0) (or has expired)"
                    } ?? "the server's certificate is not signed by a root the system trusts (or has expired); name its root with sslrootcert=FILE"
                }
                return "the TLS handshake failed: \(text)"
            default:
                return "TLS failed: \(ssl)"
            }
        }
        return nil
    }
}
