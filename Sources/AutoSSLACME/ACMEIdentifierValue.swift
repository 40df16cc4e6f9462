import AutoSSLCore
import AutoSSLStore
import Foundation

/// An ACME identifier after checking: a DNS name (possibly a wildcard) or an IP address (RFC 8738).
public enum ACMEIdentifierValue: Sendable, Equatable {
    case dns(String)
    case ip(IPAddress)

    /// Checks an identifier a client sent (or one stored).
    public init(_ identifier: ACMEIdentifier) throws {
        switch identifier.type {
        case "dns":
            // lego 4.9 sends IP addresses as "dns" identifiers; treat them as the IP identifiers they are (RFC 8738).
            if let address = IPAddress(identifier.value) {
                self = .ip(address)
                return
            }
            if identifier.value.hasPrefix("*.") {
                // A wildcard covers one label under a domain that must itself be a valid name.
                let base = String(identifier.value.dropFirst(2))
                guard !base.contains("*"), case .dns(let name)? = try? SubjectName(parsing: base) else {
                    throw ACMEProblem(.rejectedIdentifier, "\(identifier.value) is not a valid wildcard name (*.domain)")
                }
                self = .dns("*." + name)
                return
            }
            guard case .dns(let name)? = try? SubjectName(parsing: identifier.value) else {
                throw ACMEProblem(.rejectedIdentifier, "\(identifier.value) is not a valid DNS name")
            }
            self = .dns(name)
        case "ip":
            guard let address = IPAddress(identifier.value) else {
                throw ACMEProblem(.rejectedIdentifier, "\(identifier.value) is not an IP address")
            }
            self = .ip(address)
        default:
            throw ACMEProblem(.unsupportedIdentifier, "identifier type \(identifier.type) is not supported (dns, ip)")
        }
    }

    public var value: String {
        switch self {
        case .dns(let name): return name
        case .ip(let address): return address.description
        }
    }

    public var subjectName: SubjectName {
        switch self {
        case .dns(let name): return .dns(name)
        case .ip(let address): return .ip(address)
        }
    }

    public var isWildcard: Bool {
        if case .dns(let name) = self { return name.hasPrefix("*.") }
        return false
    }

    /// The Host header for http-01 (IPv6 in brackets).
    public var hostHeader: String {
        switch self {
        case .dns(let name): return name
        case .ip(let address): return address.isIPv4 ? address.description : "[\(address.description)]"
        }
    }

    /// SNI for tls-alpn-01: the name, or the reverse-mapping name for an IP (RFC 8738 §6).
    public var tlsServerName: String {
        switch self {
        case .dns(let name):
            return name
        case .ip(let address):
            if address.isIPv4 { return address.bytes.reversed().map(String.init).joined(separator: ".") + ".in-addr.arpa" }
            let nibbles = address.bytes.flatMap { [String($0 >> 4, radix: 16), String($0 & 0x0F, radix: 16)] }
            return nibbles.reversed().joined(separator: ".") + ".ip6.arpa"
        }
    }
}
