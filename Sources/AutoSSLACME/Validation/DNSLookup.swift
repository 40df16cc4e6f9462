import AutoSSLCore
import AutoSSLHost
import AutoSSLWire
import Foundation
import NIOCore

#if canImport(Glibc)
import Glibc
#endif

/// A small DNS client for ACME validation: A, AAAA and TXT against one server, the provisioner's
/// `--resolver` or the first nameserver of /etc/resolv.conf, over UDP and again over TCP when the
/// answer is truncated (RFC 1035 §4.2, RFC 7766). Nothing in our packages resolves TXT records, and
/// validation must be able to use a test DNS server. Messages are built and read by `DNSMessage`,
/// which checks the ID, the QR bit and the question; this type only moves bytes, on blocking
/// sockets with timeouts, on the validation's own threads.
public struct DNSLookup: Sendable {
    public typealias RecordType = DNSMessage.RecordType

    public struct Failure: Error, CustomStringConvertible, Sendable {
        public var description: String
    }

    public let server: String
    public let port: Int

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

    /// The records' data (TXT: each record's strings joined; A/AAAA: the address bytes); empty for
    /// a name that does not exist. Gives up after `within` in all.
    public func lookup(_ name: String, _ type: RecordType, within: TimeAmount) throws -> [[UInt8]] {
        let end = NIODeadline.now() + within
        var generator = SystemRandomNumberGenerator()
        let id = UInt16.random(in: 0...UInt16.max, using: &generator)
        let query = try Self.checked { try DNSMessage.query(id: id, name: name, type: type) }
        var answer = try Self.checked { try DNSMessage.parseResponse(try exchangeUDP(query, until: end), id: id, name: name, type: type) }
        if answer.truncated {
            answer = try Self.checked { try DNSMessage.parseResponse(try exchangeTCP(query, until: end), id: id, name: name, type: type) }
        }
        return answer.records
    }

    static func checked<T>(_ work: () throws -> T) throws -> T {
        do {
            return try work()
        } catch let failure as DNSMessage.Failure {
            throw Failure(description: failure.description)
        }
    }

    /// Seconds and microseconds left until `end` (at least 1 ms), for SO_RCVTIMEO.
    static func timeLeft(_ end: NIODeadline) throws -> timeval {
        let left = (end - .now()).nanoseconds
        guard left > 1_000_000 else { throw Failure(description: "timeout: no answer from the DNS server in time") }
        return timeval(tv_sec: Int(left / 1_000_000_000), tv_usec: Int((left % 1_000_000_000) / 1_000))
    }

    func socketTo(_ kind: Int32) throws -> Int32 {
        guard let address = IPAddress(server) else { throw Failure(description: "the resolver \(server) must be an IP address") }
        guard (1...65_535).contains(port) else { throw Failure(description: "the resolver's port \(port) is not a valid port") }
        let fd = socket(address.isIPv4 ? AF_INET : AF_INET6, kind, 0)
        guard fd >= 0 else { throw Failure(description: "could not open a socket for DNS") }
        return fd
    }

    func setTimeout(_ fd: Int32, until end: NIODeadline) throws {
        var time = try Self.timeLeft(end)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &time, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &time, socklen_t(MemoryLayout<timeval>.size))
    }

    func connectSocket(_ fd: Int32) throws {
        guard let address = IPAddress(server), (1...65_535).contains(port) else { throw Failure(description: "invalid resolver \(server):\(port)") }
        let connected = Sockaddr.with(address, port: UInt16(port)) { pointer, length in connect(fd, pointer, length) }
        guard connected == 0 else { throw Failure(description: "could not reach the DNS server \(server):\(port)") }
    }

    /// Up to two tries over UDP; datagrams that are not the answer (another ID) are skipped.
    func exchangeUDP(_ query: [UInt8], until end: NIODeadline) throws -> [UInt8] {
        let fd = try socketTo(Int32(SOCK_DGRAM.rawValue))
        defer { close(fd) }
        try setTimeout(fd, until: end)
        try connectSocket(fd)
        for _ in 0..<2 {
            _ = query.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, 0) }
            var buffer = [UInt8](repeating: 0, count: 4096)
            try setTimeout(fd, until: end)
            let received = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if received >= 2, received <= buffer.count, buffer[0] == query[0], buffer[1] == query[1] {
                return Array(buffer.prefix(received))
            }
        }
        throw Failure(description: "no answer from the DNS server \(server):\(port)")
    }

    /// One query over TCP: two length bytes, then the message (at most 64 KiB).
    func exchangeTCP(_ query: [UInt8], until end: NIODeadline) throws -> [UInt8] {
        let fd = try socketTo(Int32(SOCK_STREAM.rawValue))
        defer { close(fd) }
        try setTimeout(fd, until: end)
        try connectSocket(fd)
        let framed = [UInt8(query.count >> 8), UInt8(query.count & 0xFF)] + query
        let sent = framed.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        guard sent == framed.count else { throw Failure(description: "could not send the DNS query over TCP") }
        func read(_ count: Int) throws -> [UInt8] {
            var result: [UInt8] = []
            var buffer = [UInt8](repeating: 0, count: min(count, 16_384))
            while result.count < count {
                try setTimeout(fd, until: end)
                let wanted = min(buffer.count, count - result.count)
                let received = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, wanted, 0) }
                guard received > 0, received <= wanted else { throw Failure(description: "the DNS server closed the TCP connection early") }
                result += buffer.prefix(received)
            }
            return result
        }
        let length = try read(2)
        let size = Int(length[0]) << 8 | Int(length[1])
        guard size >= 12 else { throw Failure(description: "the DNS answer over TCP is too short") }
        return try read(size)
    }
}
