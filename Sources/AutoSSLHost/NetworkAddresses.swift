import AutoSSLCore
import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The machine's own addresses, for default CA addresses and certificate names.
public enum NetworkAddresses {
    /// Interfaces that belong to containers or virtual bridges, not to the machine's network identity.
    static let virtualInterfacePrefixes = [
        "docker", "br-", "veth", "virbr", "cni", "flannel", "cali", "lxcbr", "lxdbr", "podman", "kube", "tun", "wg",
        "vxlan", "tailscale", "zt",
    ]

    public static func isVirtual(interface name: String) -> Bool {
        virtualInterfacePrefixes.contains { name.hasPrefix($0) }
    }

    /// Non-loopback, non-link-local addresses of interfaces that are up, IPv4 first, in interface order.
    public static func primaryAddresses() -> [IPAddress] {
        var head: UnsafeMutablePointer<ifaddrs>?
        guard getifaddrs(&head) == 0, let first = head else { return [] }
        defer { freeifaddrs(head) }
        var v4: [IPAddress] = []
        var v6: [IPAddress] = []
        var cursor: UnsafeMutablePointer<ifaddrs>? = first
        while let entry = cursor {
            defer { cursor = entry.pointee.ifa_next }
            let flags = Int32(entry.pointee.ifa_flags)
            guard flags & Int32(IFF_UP) != 0, flags & Int32(IFF_LOOPBACK) == 0,
                  let address = entry.pointee.ifa_addr else { continue }
            let name = String(cString: entry.pointee.ifa_name)
            guard !isVirtual(interface: name) else { continue }
            guard let ip = ipAddress(address) else { continue }
            if ip.isIPv4 {
                if !ip.isLoopback, !(ip.bytes[0] == 169 && ip.bytes[1] == 254) { v4.append(ip) }
            } else if !ip.isLoopback, !(ip.bytes[0] == 0xFE && ip.bytes[1] & 0xC0 == 0x80) {
                // Skip link-local fe80::/10: it needs a zone and is useless in a certificate.
                v6.append(ip)
            }
        }
        return v4 + v6
    }

    /// Every address of every interface (up or not, loopback and virtual included): what "this
    /// machine" means when deciding where ACME validation may not connect.
    public static func allInterfaceAddresses() -> [IPAddress] {
        var head: UnsafeMutablePointer<ifaddrs>?
        guard getifaddrs(&head) == 0, let first = head else { return [] }
        defer { freeifaddrs(head) }
        var found: [IPAddress] = []
        var cursor: UnsafeMutablePointer<ifaddrs>? = first
        while let entry = cursor {
            defer { cursor = entry.pointee.ifa_next }
            if let address = entry.pointee.ifa_addr, let ip = ipAddress(address), !found.contains(ip) { found.append(ip) }
        }
        return found
    }

    /// The address a CA listens on and is reached at when the operator names none.
    public static func defaultCAHost() -> String {
        primaryAddresses().first?.description ?? "127.0.0.1"
    }

    public static func hostname() -> String {
        var buffer = [CChar](repeating: 0, count: 256)
        guard gethostname(&buffer, buffer.count) == 0 else { return "localhost" }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}

extension NetworkAddresses {
    /// A TCP port on 127.0.0.1 that was free a moment ago (the kernel picks it).
    public static func freeLoopbackPort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw AutoSSLError.general("could not create a socket") }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) } }
        guard bound == 0 else { throw AutoSSLError.general("no free loopback port") }
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        return Int(UInt16(bigEndian: address.sin_port))
    }
}

extension NetworkAddresses {
    /// The canonical name the resolver gives this host (its FQDN), if it differs from the short name.
    public static func fullyQualifiedHostname() -> String? {
        let short = hostname()
        var hints = addrinfo()
        hints.ai_flags = AI_CANONNAME
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var result: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(short, nil, &hints, &result) == 0, let first = result else { return nil }
        defer { freeaddrinfo(result) }
        guard let canonical = first.pointee.ai_canonname else { return nil }
        let name = String(cString: canonical)
        return name.contains(".") && name != short && IPAddress(name) == nil ? name.lowercased() : nil
    }

    /// The names a server's certificate gets when the operator names none: hostname, FQDN and the
    /// primary addresses (container bridges skipped). "localhost" never counts as the hostname.
    public static func defaultServerNames() -> [SubjectName] {
        var names: [SubjectName] = []
        func add(_ name: SubjectName?) {
            if let name, !names.contains(name) { names.append(name) }
        }
        let short = hostname().lowercased()
        if !short.isEmpty, short != "localhost" { add(try? SubjectName(parsing: short)) }
        if let fqdn = fullyQualifiedHostname() { add(try? SubjectName(parsing: fqdn)) }
        for address in primaryAddresses() { add(.ip(address)) }
        return names
    }
}

extension NetworkAddresses {
    /// The address in a sockaddr (IPv4 or IPv6), nil for other families.
    static func ipAddress(_ address: UnsafePointer<sockaddr>) -> IPAddress? {
        switch Int32(address.pointee.sa_family) {
        case AF_INET:
            return address.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { pointer in
                var addr = pointer.pointee.sin_addr
                return IPAddress(bytes: withUnsafeBytes(of: &addr) { Array($0) })
            }
        case AF_INET6:
            return address.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { pointer in
                var addr = pointer.pointee.sin6_addr
                return IPAddress(bytes: withUnsafeBytes(of: &addr) { Array($0) })
            }
        default:
            return nil
        }
    }

    /// The addresses the system resolver gives for `name` (blocking), in its order, without duplicates.
    public static func resolve(_ name: String) -> [IPAddress] {
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var result: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(name, nil, &hints, &result) == 0 else { return [] }
        defer { freeaddrinfo(result) }
        var addresses: [IPAddress] = []
        var cursor = result
        while let entry = cursor {
            defer { cursor = entry.pointee.ai_next }
            if let address = entry.pointee.ai_addr, let ip = ipAddress(address), !addresses.contains(ip) { addresses.append(ip) }
        }
        return addresses
    }
}
