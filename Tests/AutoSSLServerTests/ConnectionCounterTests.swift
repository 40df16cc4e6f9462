@testable import AutoSSLServer
import AutoSSLCore
import HTTPTypes
import NIOCore
import NIOEmbedded
import NIOHTTPTypes
import Testing

/// The server's connection caps.
@Suite struct ConnectionCounterTests {
    @Test func connectionCounterCapsEachSourceAndTheTotal() {
        var limits = ConnectionLimits()
        limits.maximumConnections = 5
        limits.maximumPerSource = 2
        let counter = ConnectionCounter(limits: limits)
        #expect(counter.admit("a") == nil && counter.admit("a") == nil)
        #expect(counter.admit("a") != nil)
        #expect(counter.admit("b") == nil && counter.admit("b") == nil && counter.admit("c") == nil)
        #expect(counter.admit("d") != nil)
        counter.release("a")
        #expect(counter.admit("a") == nil)
        #expect(counter.open == 5)
    }

    /// An IPv6 host usually has a whole /64: its addresses share one source's cap.
    @Test func ipv6SourcesCountByTheirSlash64AndMappedIPv4AsItself() {
        #expect(SourceAddress.group("2001:db8:1:2:aaaa::1") == "2001:db8:1:2::/64")
        #expect(SourceAddress.group("2001:db8:1:2:ffff:ffff:ffff:fffe") == "2001:db8:1:2::/64")
        #expect(SourceAddress.group("2001:db8:1:3::1") == "2001:db8:1:3::/64")
        #expect(SourceAddress.group("::ffff:192.0.2.7") == "192.0.2.7")
        #expect(SourceAddress.group("192.0.2.7") == "192.0.2.7")
        #expect(SourceAddress.group("::1") == "0:0:0:0::/64")
        #expect(SourceAddress.group(nil) == "unknown")
        #expect(SourceAddress.group("not:an:address::zz") == "not:an:address::zz")
    }
}

/// The deadlines for a request to arrive: the idle timeout starts again with every byte, so these
/// bound the whole of a request however slowly it trickles in.
@Suite struct RequestDeadlineTests {
    func connectedChannel() throws -> EmbeddedChannel {
        var limits = ConnectionLimits()
        limits.idleTimeout = .seconds(60)
        limits.requestTimeout = .seconds(30)
        let channel = EmbeddedChannel(handler: RequestDeadlineHandler(limits: limits))
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        return channel
    }

    static let head = HTTPRequestPart.head(HTTPRequest(method: .post, scheme: nil, authority: "ca", path: "/sign"))

    @Test func aBodyThatTricklesInIsClosed30SecondsAfterItsHead() throws {
        let channel = try connectedChannel()
        try channel.writeInbound(Self.head)
        for _ in 0..<2 {
            channel.embeddedEventLoop.advanceTime(by: .seconds(10))
            try channel.writeInbound(HTTPRequestPart.body(ByteBuffer(string: "x")))
        }
        channel.embeddedEventLoop.advanceTime(by: .seconds(9))
        #expect(channel.isActive)
        channel.embeddedEventLoop.advanceTime(by: .seconds(2))
        #expect(!channel.isActive, "closed 30 s after the head, although a byte came 11 s ago")
    }

    @Test func noDeadlineRunsWhileTheAnswerIsMadeAndTheNextHeadHas60Seconds() throws {
        let channel = try connectedChannel()
        try channel.writeInbound(Self.head)
        try channel.writeInbound(HTTPRequestPart.end(nil))
        channel.embeddedEventLoop.advanceTime(by: .seconds(120))
        #expect(channel.isActive, "the CA may take its time to answer")
        try channel.writeOutbound(HTTPResponsePart.head(HTTPResponse(status: .created)))
        try channel.writeOutbound(HTTPResponsePart.end(nil))
        channel.embeddedEventLoop.advanceTime(by: .seconds(59))
        #expect(channel.isActive)
        // A head that arrives in time gets its own 30 s.
        try channel.writeInbound(Self.head)
        channel.embeddedEventLoop.advanceTime(by: .seconds(29))
        #expect(channel.isActive)
        channel.embeddedEventLoop.advanceTime(by: .seconds(2))
        #expect(!channel.isActive)
    }

    @Test func aConnectionWhoseFirstHeadNeverArrivesIsClosedAfter60Seconds() throws {
        let channel = try connectedChannel()
        channel.embeddedEventLoop.advanceTime(by: .seconds(59))
        #expect(channel.isActive)
        channel.embeddedEventLoop.advanceTime(by: .seconds(2))
        #expect(!channel.isActive)
    }
}
