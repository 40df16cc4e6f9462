@testable import AutoSSLServer
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

    /// Writes a whole answer.
    func answer(_ channel: EmbeddedChannel, _ status: HTTPResponse.Status = .created) throws {
        try channel.writeOutbound(HTTPResponsePart.head(HTTPResponse(status: status)))
        try channel.writeOutbound(HTTPResponsePart.end(nil))
    }

    /// Checks that the connection is still open `seconds` - 1 from now and closed 1 s later.
    func expectClosed(_ channel: EmbeddedChannel, in seconds: Int64, _ comment: Comment? = nil,
                      sourceLocation: SourceLocation = #_sourceLocation) {
        channel.embeddedEventLoop.advanceTime(by: .seconds(seconds - 1))
        #expect(channel.isActive, sourceLocation: sourceLocation)
        channel.embeddedEventLoop.advanceTime(by: .seconds(2))
        #expect(!channel.isActive, comment, sourceLocation: sourceLocation)
    }

    @Test func aBodyThatTricklesInIsClosed30SecondsAfterItsHead() throws {
        let channel = try connectedChannel()
        try channel.writeInbound(Self.head)
        for _ in 0..<2 {
            channel.embeddedEventLoop.advanceTime(by: .seconds(10))
            try channel.writeInbound(HTTPRequestPart.body(ByteBuffer(string: "x")))
        }
        expectClosed(channel, in: 10, "closed 30 s after the head, although a byte came 11 s ago")
    }

    @Test func noDeadlineRunsWhileTheAnswerIsMadeAndTheNextHeadHas60Seconds() throws {
        let channel = try connectedChannel()
        try channel.writeInbound(Self.head)
        try channel.writeInbound(HTTPRequestPart.end(nil))
        channel.embeddedEventLoop.advanceTime(by: .seconds(120))
        #expect(channel.isActive, "the CA may take its time to answer")
        try answer(channel)
        channel.embeddedEventLoop.advanceTime(by: .seconds(59))
        #expect(channel.isActive)
        // A head that arrives in time gets its own 30 s.
        try channel.writeInbound(Self.head)
        expectClosed(channel, in: 30)
    }

    /// Pipelined requests (Hummingbird reads on while it answers): no deadline while an earlier
    /// answer is in progress, and the next request's 30 s start when the answers before it are done.
    @Test func aPipelinedRequestGetsItsTimeOnlyOnceTheAnswersBeforeItAreDone() throws {
        let channel = try connectedChannel()
        try channel.writeInbound(Self.head)
        try channel.writeInbound(HTTPRequestPart.end(nil))
        try channel.writeInbound(Self.head)
        channel.embeddedEventLoop.advanceTime(by: .seconds(120))
        #expect(channel.isActive, "the first answer is still being made")
        try answer(channel)
        expectClosed(channel, in: 30, "the second request's body did not come within 30 s of the first answer")
    }

    /// An answer that comes before its request's body ended (a 413, say): the rest of the body
    /// and the next head have 60 s from that answer, not for ever.
    @Test func anEarlyAnswerLeavesTheRestOfTheBody60Seconds() throws {
        let channel = try connectedChannel()
        try channel.writeInbound(Self.head)
        try answer(channel, .contentTooLarge)
        for _ in 0..<5 {
            channel.embeddedEventLoop.advanceTime(by: .seconds(10))
            try channel.writeInbound(HTTPRequestPart.body(ByteBuffer(string: "x")))
        }
        expectClosed(channel, in: 10)
        #expect(RequestDeadlineHandler.deadline(unanswered: 2, reading: true) == .none)
        #expect(RequestDeadlineHandler.deadline(unanswered: 1, reading: false) == .none)
    }

    /// The wake-up is not moved for each request (it looks again when it fires), yet a busy
    /// connection is never cut short and an idle one is closed on time.
    @Test func aBusyKeepAliveConnectionKeepsItsDeadlinesExactly() throws {
        let channel = try connectedChannel()
        for _ in 0..<100 {
            channel.embeddedEventLoop.advanceTime(by: .seconds(1))
            try channel.writeInbound(Self.head)
            channel.embeddedEventLoop.advanceTime(by: .seconds(2))
            try channel.writeInbound(HTTPRequestPart.end(nil))
            try answer(channel)
        }
        #expect(channel.isActive, "300 s of requests, none late")
        // A head that comes 50 s after the last answer, then a body that trickles.
        channel.embeddedEventLoop.advanceTime(by: .seconds(50))
        try channel.writeInbound(Self.head)
        expectClosed(channel, in: 30, "30 s after the head, not 60 s after the last answer")
    }

    @Test func aConnectionWhoseFirstHeadNeverArrivesIsClosedAfter60Seconds() throws {
        let channel = try connectedChannel()
        expectClosed(channel, in: 60)
    }
}
