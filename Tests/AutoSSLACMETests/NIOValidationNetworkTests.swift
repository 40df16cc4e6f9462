@testable import AutoSSLACME
import AutoSSLCore
import Foundation
import NIOCore
import NIOPosix
import Testing
import TestSupport

/// The real (NIO) validation network against small hostile or unusual servers started here.
@Suite(.serialized) struct NIOValidationNetworkTests {
    /// A DNS server on UDP and TCP (same port): over UDP it answers with the TC bit and no records,
    /// over TCP with the TXT record, as a server with a large answer does.
    static let truncatingDNSServer = #"""
        import socket, struct, sys, threading
        port = int(sys.argv[1])
        def answer(query, truncated):
            ident, question = query[:2], query[12:]
            flags = 0x8380 if truncated else 0x8180
            header = ident + struct.pack(">HHHHH", flags, 1, 0 if truncated else 1, 0, 0)
            if truncated:
                return header + question
            text = b"the-key-authorization-digest"
            record = b"\xc0\x0c" + struct.pack(">HHIH", 16, 1, 60, len(text) + 1) + bytes([len(text)]) + text
            return header + question + record
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        udp.bind(("127.0.0.1", port))
        tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        tcp.bind(("127.0.0.1", port))
        tcp.listen(4)
        def serve_udp():
            while True:
                data, peer = udp.recvfrom(4096)
                udp.sendto(answer(data, True), peer)
        threading.Thread(target=serve_udp, daemon=True).start()
        print("ready", flush=True)
        while True:
            connection, _ = tcp.accept()
            connection.settimeout(5)
            length = struct.unpack(">H", connection.recv(2))[0]
            query = b""
            while len(query) < length:
                query += connection.recv(length - len(query))
            reply = answer(query, False)
            connection.sendall(struct.pack(">H", len(reply)) + reply)
            connection.close()
        """#

    @Test func aTruncatedUDPAnswerIsAskedAgainOverTCP() throws {
        let port = freeLoopbackPort()
        let server = Process()
        server.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        server.arguments = ["python3", "-c", Self.truncatingDNSServer, "\(port)"]
        let output = Pipe()
        server.standardOutput = output
        server.standardError = FileHandle.nullDevice
        server.standardInput = FileHandle.nullDevice
        try server.run()
        defer { server.terminate() }
        _ = output.fileHandleForReading.availableData  // "ready"
        let records = try DNSLookup(server: "127.0.0.1", port: port).lookup("_acme-challenge.example.test", .txt, within: .seconds(5))
        #expect(records == [Array("the-key-authorization-digest".utf8)])
    }

    @Test func aSilentDNSServerCostsOneDeadline() throws {
        let port = freeLoopbackPort()
        let silent = try Socket.udp(port: port)
        defer { close(silent) }
        let started = Date()
        #expect(throws: DNSLookup.Failure.self) {
            _ = try DNSLookup(server: "127.0.0.1", port: port).lookup("example.test", .a, within: .milliseconds(600))
        }
        #expect(Date().timeIntervalSince(started) < 3)
    }

    @Test func validationNamesTheKindOfFailureForARefusedConnection() async throws {
        let port = freeLoopbackPort()  // nothing listens there
        let validator = ChallengeValidator(
            http01Port: port, addressPolicy: ValidationAddressPolicy(allowed: [try IPRange(parsing: "127.0.0.0/8")]))
        let problem = await validator.validate(
            type: "http-01", identifier: .ip(IPAddress("127.0.0.1")!), token: "tok", keyAuthorization: "tok.thumb")
        #expect(problem?.kind == .connection && problem?.detail.contains("connection refused") == true, "\(String(describing: problem))")
        let refused = await ChallengeValidator(http01Port: port).validate(
            type: "http-01", identifier: .ip(IPAddress("127.0.0.1")!), token: "tok", keyAuthorization: "tok.thumb")
        #expect(refused?.kind == .rejectedIdentifier && refused?.detail.contains("loopback") == true, "\(String(describing: refused))")
    }

    /// In `ca serve` a validation's task runs on a serving event loop, and its connection stays on
    /// that loop; elsewhere (tools, tests) connections go to the validation group.
    @Test func aConnectionRunsOnTheCallersEventLoopWhenThereIsOne() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        for loop in group.makeIterator() {
            #expect(try await loop.submit { NIOValidationNetwork.loop === loop }.get())
        }
        let elsewhere = NIOValidationNetwork.loop
        #expect(group.makeIterator().allSatisfy { $0 !== elsewhere })
        #expect(try await elsewhere.submit { MultiThreadedEventLoopGroup.currentEventLoop === elsewhere }.get())
        try await group.shutdownGracefully()
    }
}

enum Socket {
    /// A bound UDP socket that never answers.
    static func udp(port: Int) throws -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0 else { throw TestFailure("bind") }
        return fd
    }
}
