import NIOCore
import NIOEmbedded
import NIOHTTP1

/// An HTTP response read from a server that may be hostile (an ACME http-01 responder): parsed by
/// NIO's `HTTPResponseDecoder` (llhttp), bounded in size, with plain-word failures.
public struct HTTPAnswer: Sendable, Equatable {
    public var status: Int
    /// Header names in lower case; the first value of each name.
    public var headers: [String: String]
    public var body: [UInt8]

    public init(status: Int, headers: [String: String], body: [UInt8]) {
        self.status = status
        self.headers = headers
        self.body = body
    }

    /// The limits of one answer. A key authorization is under 200 bytes; nothing legitimate comes
    /// near these.
    public struct Limits: Sendable, Equatable {
        /// Everything received on the connection (head and body, before decoding).
        public var maximumBytes: Int = 96 * 1024
        /// The decoded body.
        public var maximumBodyBytes: Int = 64 * 1024
        /// All header lines together, and their count.
        public var maximumHeaderBytes: Int = 16 * 1024
        public var maximumHeaderCount: Int = 100

        public init() {}

        var decoderLimits: NIOHTTPDecoderLimitConfiguration {
            var limits = NIOHTTPDecoderLimitConfiguration()
            limits.maxHeaderFieldSize = maximumHeaderBytes
            limits.maxHeaderListSize = maximumHeaderBytes
            limits.maxHeaderFieldCount = maximumHeaderCount
            return limits
        }
    }
}

/// Why an answer could not be read, in words a client can show.
public enum HTTPAnswerFailure: Error, Equatable, Sendable, CustomStringConvertible {
    case tooLarge(limit: Int)
    case malformed(String)
    case closedBeforeAnswer
    case timedOut(seconds: Int64)

    public var description: String {
        switch self {
        case .tooLarge(let limit): return "the answer is larger than \(limit) bytes"
        case .malformed(let detail): return "the answer is not valid HTTP/1.1 (\(detail))"
        case .closedBeforeAnswer: return "the connection closed before a complete answer"
        case .timedOut(let seconds): return "no complete answer within \(seconds) s"
        }
    }
}

/// Closes the connection once more than `limit` bytes have arrived, before they reach the decoder.
public final class InboundByteLimit: ChannelInboundHandler {
    public typealias InboundIn = ByteBuffer
    public typealias InboundOut = ByteBuffer
    private let limit: Int
    private var received = 0
    private let onExceeded: (HTTPAnswerFailure) -> Void

    public init(limit: Int, onExceeded: @escaping (HTTPAnswerFailure) -> Void) {
        self.limit = limit
        self.onExceeded = onExceeded
    }

    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = unwrapInboundIn(data)
        let (sum, overflow) = received.addingReportingOverflow(buffer.readableBytes)
        guard !overflow, sum <= limit else {
            received = limit &+ 1
            onExceeded(.tooLarge(limit: limit))
            context.close(promise: nil)
            return
        }
        received = sum
        context.fireChannelRead(data)
    }
}

/// Gathers one decoded response (`HTTPClientResponsePart`s) into an `HTTPAnswer` and completes
/// `promise` once: with the answer at its end, or with the first failure.
public final class HTTPAnswerCollector: ChannelInboundHandler {
    public typealias InboundIn = HTTPClientResponsePart
    private let promise: EventLoopPromise<HTTPAnswer>
    private let limits: HTTPAnswer.Limits
    /// Errors that do not spoil an answer already complete (e.g. TLS without close_notify).
    private let isBenign: (any Error) -> Bool
    private var head: HTTPResponseHead?
    private var body: [UInt8] = []
    private var done = false

    public init(promise: EventLoopPromise<HTTPAnswer>, limits: HTTPAnswer.Limits, isBenign: @escaping (any Error) -> Bool = { _ in false }) {
        self.promise = promise
        self.limits = limits
        self.isBenign = isBenign
    }

    public func fail(_ failure: HTTPAnswerFailure) {
        guard !done else { return }
        done = true
        promise.fail(failure)
    }

    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !done else { return }
        switch unwrapInboundIn(data) {
        case .head(let responseHead):
            head = responseHead
        case .body(let buffer):
            guard buffer.readableBytes <= limits.maximumBodyBytes - body.count else {
                fail(.tooLarge(limit: limits.maximumBodyBytes))
                context.close(promise: nil)
                return
            }
            body += buffer.readableBytesView
        case .end:
            guard let head else {
                fail(.malformed("a response without a status line"))
                return
            }
            var headers: [String: String] = [:]
            for (name, value) in head.headers where headers[name.lowercased()] == nil {
                headers[name.lowercased()] = value
            }
            done = true
            promise.succeed(HTTPAnswer(status: Int(head.status.code), headers: headers, body: body))
            context.close(promise: nil)
        }
    }

    public func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if isBenign(error) { return }
        if let failure = error as? HTTPAnswerFailure {
            fail(failure)
        } else if let parserError = error as? HTTPParserError, parserError == .invalidEOFState {
            fail(.closedBeforeAnswer)
        } else if error is HTTPParserError || error is NIOHTTPDecoderError {
            fail(.malformed("\(error)"))
        } else {
            // Anything else on the connection (reset, TLS): no answer came.
            fail(.closedBeforeAnswer)
        }
        context.close(promise: nil)
    }

    public func channelInactive(context: ChannelHandlerContext) {
        fail(.closedBeforeAnswer)
        context.fireChannelInactive()
    }

    public func handlerRemoved(context: ChannelHandlerContext) {
        fail(.closedBeforeAnswer)
    }
}

extension HTTPAnswer {
    /// The handlers that read one answer to a GET, in order, after any TLS handler: the byte limit,
    /// the request encoder, NIO's response decoder and the collector.
    public static func readingHandlers(
        promise: EventLoopPromise<HTTPAnswer>, limits: HTTPAnswer.Limits, isBenign: @escaping (any Error) -> Bool = { _ in false }
    ) -> [any ChannelHandler] {
        let collector = HTTPAnswerCollector(promise: promise, limits: limits, isBenign: isBenign)
        return [
            InboundByteLimit(limit: limits.maximumBytes) { collector.fail($0) },
            HTTPRequestEncoder(),
            ByteToMessageHandler(HTTPResponseDecoder(
                leftOverBytesStrategy: .dropBytes, informationalResponseStrategy: .drop, limitConfiguration: limits.decoderLimits)),
            collector,
        ]
    }

    /// The head of the GET a validation sends.
    public static func getRequest(host: String, path: String) -> HTTPRequestHead {
        var head = HTTPRequestHead(version: .http1_1, method: .GET, uri: path)
        head.headers.add(name: "Host", value: host)
        head.headers.add(name: "User-Agent", value: "auto-ssl-acme-validator")
        head.headers.add(name: "Accept", value: "*/*")
        head.headers.add(name: "Connection", value: "close")
        return head
    }

    /// Reads `bytes` as the whole answer to a GET through the same handlers a validation uses
    /// (on an embedded channel, without a network): for tests and fuzzing.
    public static func decode(_ bytes: [UInt8], limits: HTTPAnswer.Limits = .init()) -> Result<HTTPAnswer, HTTPAnswerFailure> {
        let channel = EmbeddedChannel()
        let promise = channel.eventLoop.makePromise(of: HTTPAnswer.self)
        let box = OutcomeBox()
        promise.futureResult.whenComplete { result in
            box.outcome = result.mapError { ($0 as? HTTPAnswerFailure) ?? .malformed("\($0)") }
        }
        do {
            try channel.pipeline.syncOperations.addHandlers(readingHandlers(promise: promise, limits: limits))
            try channel.writeOutbound(HTTPClientRequestPart.head(getRequest(host: "example.test", path: "/")))
            try channel.writeOutbound(HTTPClientRequestPart.end(nil))
            _ = try channel.readOutbound(as: ByteBuffer.self)
            var buffer = channel.allocator.buffer(capacity: bytes.count)
            buffer.writeBytes(bytes)
            try channel.writeInbound(buffer)
        } catch {
            if box.outcome == nil { box.outcome = .failure(.malformed("\(error)")) }
        }
        // Accepting an already closed channel matters: `finish()` would throw before running the
        // loop's pending work, leaving the pipeline (and the memory it holds) in place.
        _ = try? channel.finish(acceptAlreadyClosed: true)
        return box.outcome ?? .failure(.closedBeforeAnswer)
    }

    /// Everything happens on the embedded loop, on this thread.
    private final class OutcomeBox: @unchecked Sendable {
        var outcome: Result<HTTPAnswer, HTTPAnswerFailure>?
    }
}
