import AutoSSLCore
import Foundation

/// How relying parties find revocation (`revocation:` in config.yaml): a plain-HTTP listener that
/// serves only the CRLs and the OCSP responder (RFC 5280 clients fetch CRLs over http://), and the
/// URLs written into every leaf. Each part is optional: without `crl_url` leaves carry no CRL
/// distribution point, without `ocsp_url` no OCSP URL, without `listen` the CRLs and OCSP are
/// served on the HTTPS addresses only.
public struct RevocationSettings: Codable, Equatable, Sendable {
    /// `host:port` of the plain-HTTP listener (GET /crl, GET /crl/{serial}, POST /ocsp, GET /ocsp/{request}).
    public var listen: ListenAddress?
    /// The CRL distribution point written into leaves.
    public var crlURL: String?
    /// The OCSP URL written into leaves (authority information access).
    public var ocspURL: String?

    public init(listen: ListenAddress? = nil, crlURL: String? = nil, ocspURL: String? = nil) {
        self.listen = listen
        self.crlURL = crlURL
        self.ocspURL = ocspURL
    }

    enum CodingKeys: String, CodingKey {
        case listen
        case crlURL = "crl_url"
        case ocspURL = "ocsp_url"
    }

    /// The URLs leaves carry, checked (a bad URL in config.yaml stops `ca serve` with the reason).
    public func pointers() throws -> RevocationPointers {
        try RevocationPointers(crlURL: crlURL, ocspURL: ocspURL)
    }

    /// The settings `ca init --revocation-address HOST:PORT` writes: the listener on that address,
    /// and `http://NAME:PORT/crl` and `http://NAME:PORT/ocsp` in leaves, NAME being `urlHost` (the
    /// name clients reach the CA by) or, when not given, the address's host.
    public static func serving(at address: ListenAddress, urlHost: String?) throws -> RevocationSettings {
        var host = urlHost ?? address.host
        guard !host.isEmpty, host != "0.0.0.0", host != "::" else {
            throw AutoSSLError.invalidArgument(
                "the revocation address \(address) listens on every interface, so it names no host for the URLs in certificates",
                hint: "add --revocation-url-host with the name clients reach the CA by, or give a specific address")
        }
        if host.contains(":") && !host.hasPrefix("[") { host = "[\(host)]" }
        let base = "http://\(host):\(address.port)"
        let settings = RevocationSettings(listen: address, crlURL: base + "/crl", ocspURL: base + "/ocsp")
        _ = try settings.pointers()
        return settings
    }
}
