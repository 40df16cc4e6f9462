import Foundation
import SwiftASN1
import X509

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// One name a certificate is valid for: a DNS name or an IP address, detected by its form.
public enum SubjectName: Hashable, Sendable, CustomStringConvertible, Codable {
    case dns(String)
    case ip(IPAddress)

    /// Classifies and validates a name the way users type it (`web01.internal`, `10.0.0.5`, `::1`).
    public init(parsing text: String) throws {
        // Names as machines send them (lower-case ASCII host names) skip the Unicode-aware trimming
        // and lower-casing, which cost more than the validation itself on the issuance path.
        // Only digits and dots could be an IPv4 literal (IPv6 needs a colon, which is not a plain byte).
        if text.utf8.allSatisfy(Self.isPlainHostByte), text.utf8.contains(where: { ($0 < 0x30 || $0 > 0x39) && $0 != 0x2E }) {
            guard Self.isValidDNSName(text) else {
                throw AutoSSLError.invalidArgument(
                    "\"\(text)\" is neither an IP address nor a valid DNS name",
                    hint: "DNS names use letters, digits and hyphens in dot-separated labels (e.g. web01.internal)")
            }
            self = .dns(text)
            return
        }
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        if let ip = IPAddress(trimmed) {
            self = .ip(ip)
            return
        }
        let lower = trimmed.lowercased()
        // Only digits and dots, yet not an address: a typo such as 10.0.0.256 or 1.2.3.4.5, which
        // would otherwise become a DNS name nobody meant.
        if !lower.isEmpty, lower.utf8.allSatisfy({ ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x2E }) {
            throw AutoSSLError.invalidArgument(
                "\"\(text)\" looks like an IPv4 address but is not one",
                hint: "an IPv4 address is four numbers from 0 to 255 separated by dots (e.g. 10.0.0.25)")
        }
        guard Self.isValidDNSName(lower) else {
            throw AutoSSLError.invalidArgument(
                "\"\(text)\" is neither an IP address nor a valid DNS name",
                hint: "DNS names use letters, digits and hyphens in dot-separated labels (e.g. web01.internal)")
        }
        self = .dns(lower)
    }

    public var description: String {
        switch self {
        case .dns(let name): return name
        case .ip(let address): return address.description
        }
    }

    public var generalName: GeneralName {
        switch self {
        case .dns(let name): return .dnsName(name)
        case .ip(let address): return .ipAddress(ASN1OctetString(contentBytes: ArraySlice(address.bytes)))
        }
    }

    public init?(generalName: GeneralName) {
        switch generalName {
        case .dnsName(let name): self = .dns(name.lowercased())
        case .ipAddress(let octets):
            guard let ip = IPAddress(bytes: Array(octets.bytes)) else { return nil }
            self = .ip(ip)
        default: return nil
        }
    }

    /// Lower-case letters, digits, hyphen, dot: a host name's bytes that need no normalising.
    static func isPlainHostByte(_ byte: UInt8) -> Bool {
        (byte >= 0x61 && byte <= 0x7A) || (byte >= 0x30 && byte <= 0x39) || byte == 0x2D || byte == 0x2E
    }

    /// RFC 1035/1123 host names, with one optional leading wildcard label.
    static func isValidDNSName(_ name: String) -> Bool {
        var utf8 = Substring(name).utf8
        guard !utf8.isEmpty, utf8.count <= 253 else { return false }
        if utf8.starts(with: "*.".utf8) { utf8 = utf8.dropFirst(2) }
        guard !utf8.isEmpty else { return false }
        // One pass over the bytes: labels of 1-63 letters, digits or inner hyphens.
        var labelLength = 0
        var previous: UInt8 = 0x2E
        for byte in utf8 {
            if byte == 0x2E {
                guard labelLength > 0, previous != 0x2D else { return false }
                labelLength = 0
            } else {
                guard (byte >= 0x61 && byte <= 0x7A) || (byte >= 0x30 && byte <= 0x39) || byte == 0x2D else { return false }
                if byte == 0x2D && labelLength == 0 { return false }
                labelLength += 1
                guard labelLength <= 63 else { return false }
            }
            previous = byte
        }
        guard labelLength > 0, previous != 0x2D else { return false }
        // The last label is never all digits (RFC 3696 §2): such a name is a mistyped address.
        return !utf8.reversed().prefix(while: { $0 != 0x2E }).allSatisfy { $0 >= 0x30 && $0 <= 0x39 }
    }

    public init(from decoder: Decoder) throws {
        let container = try decoder.singleValueContainer()
        self = try SubjectName(parsing: try container.decode(String.self))
    }

    public func encode(to encoder: Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }
}

/// An IPv4 or IPv6 address in network byte order.
public struct IPAddress: Hashable, Sendable, CustomStringConvertible {
    public let bytes: [UInt8]

    public init?(bytes: [UInt8]) {
        guard bytes.count == 4 || bytes.count == 16 else { return nil }
        self.bytes = bytes
    }

    /// Parses dotted IPv4 or textual IPv6 (brackets allowed); nil for anything else.
    public init?(_ text: String) {
        var text = text
        if text.hasPrefix("["), text.hasSuffix("]") { text = String(text.dropFirst().dropLast()) }
        // inet_pton reads a C string: a NUL would end it early ("10.0.0.5\0junk" would pass).
        guard !text.utf8.contains(0), text.utf8.count <= 64 else { return nil }
        var v4 = in_addr()
        if text.withCString({ inet_pton(AF_INET, $0, &v4) }) == 1 {
            self.bytes = withUnsafeBytes(of: &v4) { Array($0) }
            return
        }
        var v6 = in6_addr()
        if text.withCString({ inet_pton(AF_INET6, $0, &v6) }) == 1 {
            self.bytes = withUnsafeBytes(of: &v6) { Array($0) }
            return
        }
        return nil
    }

    public var isIPv4: Bool { bytes.count == 4 }

    /// 0.0.0.0 or `::`: every address of the machine, when listening.
    public var isUnspecified: Bool { bytes.allSatisfy { $0 == 0 } }

    public var isLoopback: Bool {
        if isIPv4 { return bytes[0] == 127 }
        return bytes == Array(repeating: 0, count: 15) + [1]
    }

    public var description: String {
        var buffer = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
        var copy = bytes
        let family = isIPv4 ? AF_INET : AF_INET6
        let result = copy.withUnsafeMutableBytes { raw in
            inet_ntop(family, raw.baseAddress, &buffer, socklen_t(buffer.count))
        }
        guard result != nil else { return Hex.encode(bytes) }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}

/// `host:port` as given to `--address`. An empty host (":9000") means every interface.
public struct ListenAddress: Hashable, Sendable, CustomStringConvertible, Codable {
    public let host: String
    public let port: Int

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    public init(parsing text: String) throws {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        let host: Substring
        let portText: Substring
        if trimmed.hasPrefix("[") {
            guard let close = trimmed.firstIndex(of: "]"),
                  trimmed.index(after: close) < trimmed.endIndex,
                  trimmed[trimmed.index(after: close)] == ":" else {
                throw Self.malformed(text)
            }
            host = trimmed[trimmed.index(after: trimmed.startIndex)..<close]
            portText = trimmed[trimmed.index(close, offsetBy: 2)...]
        } else {
            guard let colon = trimmed.lastIndex(of: ":") else { throw Self.malformed(text) }
            host = trimmed[..<colon]
            portText = trimmed[trimmed.index(after: colon)...]
            if host.contains(":") { throw Self.malformed(text) }  // bare IPv6 needs brackets
        }
        guard let port = Int(portText), (1...65_535).contains(port) else {
            throw AutoSSLError.invalidArgument(
                "invalid port in address \"\(text)\"", hint: "the port must be a number from 1 to 65535")
        }
        if !host.isEmpty {
            _ = try SubjectName(parsing: String(host))
        }
        self.host = String(host).lowercased()
        self.port = port
    }

    private static func malformed(_ text: String) -> AutoSSLError {
        .invalidArgument(
            "invalid address \"\(text)\"",
            hint: "use host:port, e.g. 10.0.0.5:9000, ca.internal:9000, [fd00::5]:9000 or :9000")
    }

    /// The name this address contributes to the CA's TLS certificate, if any.
    public var subjectName: SubjectName? {
        host.isEmpty ? nil : try? SubjectName(parsing: host)
    }

    public var description: String {
        host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
    }

    /// https URL base for this address.
    public var urlString: String {
        let h = host.isEmpty ? "localhost" : host
        let hostPart = h.contains(":") ? "[\(h)]" : h
        return "https://\(hostPart):\(port)"
    }

    public init(from decoder: Decoder) throws {
        self = try ListenAddress(parsing: try decoder.singleValueContainer().decode(String.self))
    }

    public func encode(to encoder: Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }
}
