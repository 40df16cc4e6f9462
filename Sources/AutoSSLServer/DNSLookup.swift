import AutoSSLCore
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A small DNS client for ACME validation: A, AAAA and TXT over UDP (RFC 1035) against one server,
/// the provisioner's `--resolver` or the first nameserver of /etc/resolv.conf. Nothing in our
/// packages resolves TXT records, and validation must be able to use a test DNS server.
public struct DNSLookup: Sendable {
    public enum RecordType: UInt16, Sendable {
        case a = 1
        case txt = 16
        case aaaa = 28
    }

    public struct Failure: Error, CustomStringConvertible, Sendable {
        public var description: String
    }

    public let server: String
    public let port: Int
    public var timeout: TimeInterval = 5

    public init(server: String, port: Int) {
        self.server = server
        self.port = port
    }

    /// `host:port` (IPv6 in brackets), or nil for the system's first nameserver.
    public static func resolver(_ setting: String?) throws -> DNSLookup {
        if let setting, !setting.isEmpty {
            let address = try ListenAddress(parsing: setting)
            return DNSLookup(server: address.host, port: address.port)
        }
        let conf = (try? String(contentsOfFile: "/etc/resolv.conf", encoding: .utf8)) ?? ""
        for line in conf.split(separator: "\n") {
            let fields = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
            if fields.count >= 2, fields[0] == "nameserver" { return DNSLookup(server: String(fields[1]), port: 53) }
        }
        return DNSLookup(server: "127.0.0.1", port: 53)
    }

    /// The records' data: for TXT each record's strings joined, for A/AAAA the address text.
    public func lookup(_ name: String, _ type: RecordType) throws -> [String] {
        var generator = SystemRandomNumberGenerator()
        let id = UInt16.random(in: 0...UInt16.max, using: &generator)
        let query = try Self.query(id: id, name: name, type: type)
        let response = try exchange(query)
        return try Self.parse(response, id: id, type: type)
    }

    static func query(id: UInt16, name: String, type: RecordType) throws -> [UInt8] {
        var bytes: [UInt8] = [UInt8(id >> 8), UInt8(id & 0xFF), 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]
        for label in name.split(separator: ".") {
            let utf8 = Array(label.utf8)
            guard !utf8.isEmpty, utf8.count < 64 else { throw Failure(description: "\"\(name)\" is not a valid DNS name") }
            bytes.append(UInt8(utf8.count))
            bytes += utf8
        }
        bytes += [0, UInt8(type.rawValue >> 8), UInt8(type.rawValue & 0xFF), 0, 1]
        return bytes
    }

    static func parse(_ message: [UInt8], id: UInt16, type: RecordType) throws -> [String] {
        guard message.count >= 12, UInt16(message[0]) << 8 | UInt16(message[1]) == id else {
            throw Failure(description: "the DNS answer does not match the query")
        }
        let rcode = message[3] & 0x0F
        if rcode == 3 { return [] }  // NXDOMAIN
        guard rcode == 0 else { throw Failure(description: "the DNS server answered with error code \(rcode)") }
        let questions = Int(message[4]) << 8 | Int(message[5])
        let answers = Int(message[6]) << 8 | Int(message[7])
        var index = 12
        func skipName() throws {
            while true {
                guard index < message.count else { throw Failure(description: "truncated DNS answer") }
                let length = message[index]
                if length & 0xC0 == 0xC0 { index += 2; return }
                index += 1
                if length == 0 { return }
                index += Int(length)
            }
        }
        for _ in 0..<questions {
            try skipName()
            index += 4
        }
        var results: [String] = []
        for _ in 0..<answers {
            try skipName()
            guard index + 10 <= message.count else { throw Failure(description: "truncated DNS answer") }
            let recordType = UInt16(message[index]) << 8 | UInt16(message[index + 1])
            let length = Int(message[index + 8]) << 8 | Int(message[index + 9])
            index += 10
            guard index + length <= message.count else { throw Failure(description: "truncated DNS answer") }
            let data = Array(message[index..<index + length])
            index += length
            guard recordType == type.rawValue else { continue }
            switch type {
            case .txt:
                var text: [UInt8] = []
                var cursor = 0
                while cursor < data.count {
                    let count = Int(data[cursor])
                    cursor += 1
                    text += data[cursor..<min(cursor + count, data.count)]
                    cursor += count
                }
                results.append(String(decoding: text, as: UTF8.self))
            case .a, .aaaa:
                if let address = IPAddress(bytes: data) { results.append(address.description) }
            }
        }
        return results
    }

    func exchange(_ query: [UInt8]) throws -> [UInt8] {
        guard let address = IPAddress(server) else { throw Failure(description: "the resolver \(server) must be an IP address") }
        let family = address.isIPv4 ? AF_INET : AF_INET6
        let fd = socket(family, Int32(SOCK_DGRAM.rawValue), 0)
        guard fd >= 0 else { throw Failure(description: "could not open a UDP socket") }
        defer { close(fd) }
        var time = timeval(tv_sec: Int(timeout), tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &time, socklen_t(MemoryLayout<timeval>.size))
        let connected = SocketAddress.withSockaddr(address, port: port) { pointer, length in connect(fd, pointer, length) }
        guard connected == 0 else { throw Failure(description: "could not reach the DNS server \(server):\(port)") }
        for _ in 0..<2 {
            _ = query.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, 0) }
            var buffer = [UInt8](repeating: 0, count: 4096)
            let received = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if received > 0 { return Array(buffer[0..<received]) }
        }
        throw Failure(description: "no answer from the DNS server \(server):\(port)")
    }
}

/// sockaddr construction for the blocking sockets validation uses.
enum SocketAddress {
    static func withSockaddr<T>(_ address: IPAddress, port: Int, _ body: (UnsafePointer<sockaddr>, socklen_t) -> T) -> T {
        if address.isIPv4 {
            var storage = sockaddr_in()
            storage.sin_family = sa_family_t(AF_INET)
            storage.sin_port = in_port_t(UInt16(port).bigEndian)
            withUnsafeMutableBytes(of: &storage.sin_addr) { $0.copyBytes(from: address.bytes) }
            return withUnsafePointer(to: &storage) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
        }
        var storage = sockaddr_in6()
        storage.sin6_family = sa_family_t(AF_INET6)
        storage.sin6_port = in_port_t(UInt16(port).bigEndian)
        withUnsafeMutableBytes(of: &storage.sin6_addr) { $0.copyBytes(from: address.bytes) }
        return withUnsafePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, socklen_t(MemoryLayout<sockaddr_in6>.size)) }
        }
    }
}
