import Foundation

/// A CIDR range such as 10.0.0.0/8 or fd00::/8, for issuance policy.
public struct IPRange: Hashable, Sendable, CustomStringConvertible, Codable {
    public let network: IPAddress
    public let prefixLength: Int

    public init(parsing text: String) throws {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard let address = IPAddress(String(parts[0])) else {
            throw AutoSSLError.invalidArgument("\"\(text)\" is not an IP range", hint: "use CIDR form, e.g. 10.0.0.0/8 or fd00::/8")
        }
        let maxLength = address.bytes.count * 8
        let length: Int
        if parts.count == 1 {
            length = maxLength
        } else if parts.count == 2, let value = Int(parts[1]), (0...maxLength).contains(value) {
            length = value
        } else {
            throw AutoSSLError.invalidArgument("\"\(text)\" has an invalid prefix length", hint: "IPv4 allows /0-/32, IPv6 /0-/128")
        }
        self.prefixLength = length
        self.network = IPAddress(bytes: Self.mask(address.bytes, length))!
    }

    public func contains(_ address: IPAddress) -> Bool {
        address.bytes.count == network.bytes.count && Self.mask(address.bytes, prefixLength) == network.bytes
    }

    static func mask(_ bytes: [UInt8], _ length: Int) -> [UInt8] {
        bytes.enumerated().map { index, byte in
            let bitsBefore = index * 8
            if length >= bitsBefore + 8 { return byte }
            if length <= bitsBefore { return 0 }
            return byte & UInt8(truncatingIfNeeded: 0xFF << (8 - (length - bitsBefore)))
        }
    }

    public var description: String { "\(network)/\(prefixLength)" }

    public init(from decoder: Decoder) throws {
        self = try IPRange(parsing: try decoder.singleValueContainer().decode(String.self))
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(description)
    }
}
