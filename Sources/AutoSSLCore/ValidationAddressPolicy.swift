/// Which addresses ACME validation may connect to. Validation makes the CA open connections on
/// behalf of whoever holds an ACME account, so by default it refuses the addresses that would turn
/// it into a probe of the CA's own machine: loopback, link-local, multicast, unspecified and
/// broadcast addresses, and the CA's own addresses. An operator opens ranges deliberately
/// (`--validation-allow CIDR`).
public struct ValidationAddressPolicy: Sendable, Equatable {
    public var allowed: [IPRange]
    public var ownAddresses: Set<IPAddress>

    public init(allowed: [IPRange] = [], ownAddresses: Set<IPAddress> = []) {
        self.allowed = allowed
        self.ownAddresses = ownAddresses
    }

    /// Why `address` may not be used, or nil when it may. IPv4-mapped IPv6 addresses are judged as
    /// the IPv4 address they carry.
    public func refusal(for address: IPAddress) -> String? {
        let ip = Self.unmapped(address)
        if allowed.contains(where: { $0.contains(ip) || $0.contains(address) }) { return nil }
        if let kind = Self.specialKind(ip) { return "\(ip) is a \(kind) address" }
        if ownAddresses.contains(ip) || ownAddresses.contains(address) { return "\(ip) is one of the CA's own addresses" }
        return nil
    }

    /// ::ffff:a.b.c.d → a.b.c.d; anything else unchanged.
    public static func unmapped(_ address: IPAddress) -> IPAddress {
        let bytes = address.bytes
        guard bytes.count == 16, bytes.prefix(10).allSatisfy({ $0 == 0 }), bytes[10] == 0xFF, bytes[11] == 0xFF,
              let v4 = IPAddress(bytes: Array(bytes.suffix(4))) else { return address }
        return v4
    }

    /// The reserved kinds refused by default.
    static func specialKind(_ ip: IPAddress) -> String? {
        let b = ip.bytes
        if b.count == 4 {
            if b[0] == 127 { return "loopback" }
            if b[0] == 0 { return "unspecified (0.0.0.0/8)" }
            if b[0] == 169 && b[1] == 254 { return "link-local" }
            if b[0] >= 224 && b[0] <= 239 { return "multicast" }
            if b.allSatisfy({ $0 == 255 }) { return "broadcast" }
            return nil
        }
        guard b.count == 16 else { return "malformed" }
        if b.prefix(15).allSatisfy({ $0 == 0 }) {
            if b[15] == 1 { return "loopback" }
            if b[15] == 0 { return "unspecified" }
        }
        if b[0] == 0xFE && b[1] & 0xC0 == 0x80 { return "link-local" }
        if b[0] == 0xFF { return "multicast" }
        return nil
    }
}
