import AutoSSLCA
import AutoSSLCore
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import NIOHTTPTypes

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Answers `POST /sign` (and `/1.0/sign`) in the connection's channel pipeline, right after HTTP
/// decoding, instead of passing it through Hummingbird's async request machinery: issuance is the
/// hot path, and that machinery cost about as much CPU per request as parsing and checking the CSR
/// (see docs/benchmarks.md). The work itself (rate limit, body limit, authority, audit, JSON errors)
/// is the same code the router uses; only the plumbing differs.
///
/// Everything else, and any `/sign` the fast path does not take (a query string, `Expect`,
/// `Connection: close`), goes to the router unchanged. Responses stay in request order on a
/// keep-alive connection: a `/sign` is taken only when no routed response is outstanding, and
/// requests arriving while one is answered are held (and reading pauses) until its response is
/// written.
final class SignFastPath: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    private enum State {
        /// Between requests.
        case idle
        /// A request handed to the router; its parts follow it there.
        case routing
        /// Reading a `/sign` body.
        case collecting(ByteBuffer, path: String)
        /// Reading and dropping a body whose answer is already known (too large, rate limited),
        /// with how many more bytes will be dropped before the connection is closed instead.
        case discarding(APIError, budget: Int)
        /// The answer went out with `Connection: close`; nothing more is read.
        case closing
        /// Waiting for the authority; then the response is written.
        case answering
    }

    private let endpoint: SignEndpoint
    private var state = State.idle
    /// Requests handed to the router whose responses have not been written completely.
    private var routedResponsesOutstanding = 0
    /// Inbound parts that arrived while a `/sign` was being answered, in order.
    private var held: [HTTPRequestPart] = []
    /// A read requested while answering, issued once the response is out.
    private var readDeferred = false
    /// A graceful-shutdown request that arrived while answering: passed on after the response, so
    /// the connection is not closed under an in-flight issuance.
    private var quiesceDeferred: Any?
    private var dateHeader = HTTPDate()

    init(endpoint: SignEndpoint) {
        self.endpoint = endpoint
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let part = unwrapInboundIn(data)
        if case .answering = state {
            held.append(part)
            return
        }
        handle(part, context: context)
    }

    private func handle(_ part: HTTPRequestPart, context: ChannelHandlerContext) {
        switch state {
        case .idle:
            guard case .head(let head) = part, routedResponsesOutstanding == 0, let path = Self.signPath(head) else {
                if case .head = part {
                    routedResponsesOutstanding += 1
                    state = .routing
                }
                context.fireChannelRead(wrapInboundOut(part))
                return
            }
            let remote = context.channel.remoteAddress?.ipAddress ?? "unknown"
            do {
                try endpoint.refuseIfRateLimited(remote)
                if let length = head.headerFields[.contentLength].flatMap(Int.init), length > SignEndpoint.maximumBodySize {
                    let refusal = apiError(for: endpoint.bodyTooLarge(remote: remote, path: path), logger: endpoint.logger)
                    // Reading a body that large only to drop it would let a client keep the
                    // connection busy at will: answer now and close.
                    guard length <= Self.discardLimit else { return respondAndClose(refusal, context: context) }
                    state = .discarding(refusal, budget: Self.discardLimit)
                    return
                }
                state = .collecting(context.channel.allocator.buffer(capacity: 2048), path: path)
            } catch {
                state = .discarding(apiError(for: error, logger: endpoint.logger), budget: Self.discardLimit)
            }
        case .routing:
            if case .end = part { state = .idle }
            context.fireChannelRead(wrapInboundOut(part))
        case .collecting(var buffer, let path):
            switch part {
            case .head:
                break  // cannot happen: the decoder ends a request before the next head
            case .body(var chunk):
                if buffer.readableBytes + chunk.readableBytes > SignEndpoint.maximumBodySize {
                    let remote = context.channel.remoteAddress?.ipAddress ?? "unknown"
                    state = .discarding(
                        apiError(for: endpoint.bodyTooLarge(remote: remote, path: path), logger: endpoint.logger), budget: Self.discardLimit)
                } else {
                    state = .idle  // drop the buffer's second reference before appending
                    buffer.writeBuffer(&chunk)
                    state = .collecting(buffer, path: path)
                }
            case .end:
                state = .answering
                answer(body: buffer, path: path, context: context)
            }
        case .discarding(let error, let budget):
            switch part {
            case .body(let chunk):
                let left = budget - chunk.readableBytes
                if left < 0 {
                    respondAndClose(error, context: context)
                } else {
                    state = .discarding(error, budget: left)
                }
            case .end:
                state = .answering
                respond(status: error.status, headers: error.headers, body: ByteBuffer(string: error.jsonBody), context: context)
            case .head:
                break
            }
        case .answering:
            held.append(part)
        case .closing:
            break
        }
    }

    /// At most this much of a refused request's body is read and dropped (so a pipelined request
    /// after it still gets its answer); beyond it the connection is answered and closed.
    static let discardLimit = 4 * SignEndpoint.maximumBodySize

    /// Answers with `Connection: close` and closes once it is written.
    private func respondAndClose(_ error: APIError, context: ChannelHandlerContext) {
        state = .closing
        held.removeAll()
        var fields = error.headers
        fields[.contentType] = "application/json"
        fields[.connection] = "close"
        let body = ByteBuffer(string: error.jsonBody)
        fields[.contentLength] = String(body.readableBytes)
        fields[.date] = dateHeader.now()
        context.write(wrapOutboundOut(.head(HTTPResponse(status: error.status, headerFields: fields))), promise: nil)
        context.write(wrapOutboundOut(.body(body)), promise: nil)
        let written = context.eventLoop.makePromise(of: Void.self)
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: written)
        let bound = NIOLoopBound(context, eventLoop: context.eventLoop)
        written.futureResult.whenComplete { _ in bound.value.close(promise: nil) }
    }

    /// The path if this request is one the fast path takes.
    static func signPath(_ head: HTTPRequest) -> String? {
        guard head.method == .post, let path = head.path, path == "/sign" || path == "/1.0/sign" else { return nil }
        guard head.headerFields[.expect] == nil else { return nil }  // the router handles 100-continue
        if let connection = head.headerFields[.connection], connection.lowercased().contains("close") { return nil }
        return path
    }

    private func answer(body: ByteBuffer, path: String, context: ChannelHandlerContext) {
        let remote = context.channel.remoteAddress?.ipAddress ?? "unknown"
        let endpoint = self.endpoint
        let bound = NIOLoopBound((handler: self, context: context), eventLoop: context.eventLoop)
        let started = ContinuousClock.now
        // Started on this channel's event loop, which (in `ca serve`) also runs the task.
        Task {
            let status: HTTPResponse.Status
            let headers: HTTPFields
            let bytes: ByteBuffer
            do {
                bytes = try await endpoint.countingFailures(remote: remote, path: path) {
                    try await endpoint.signedChain(body: body, remote: remote)
                }
                status = .created
                headers = [:]
            } catch {
                let refusal = apiError(for: error, logger: endpoint.logger)
                (status, headers, bytes) = (refusal.status, refusal.headers, ByteBuffer(string: refusal.jsonBody))
            }
            endpoint.authority.metrics.request(.sign, duration: .now - started)
            bound.eventLoop.execute {
                let (handler, context) = bound.value
                handler.respond(status: status, headers: headers, body: bytes, context: context)
            }
        }
    }

    /// Writes one complete response, then carries on with whatever arrived meanwhile.
    private func respond(status: HTTPResponse.Status, headers: HTTPFields, body: ByteBuffer, context: ChannelHandlerContext) {
        var fields = headers
        fields[.contentType] = "application/json"
        fields[.contentLength] = String(body.readableBytes)
        fields[.date] = dateHeader.now()
        context.write(wrapOutboundOut(.head(HTTPResponse(status: status, headerFields: fields))), promise: nil)
        context.write(wrapOutboundOut(.body(body)), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        state = .idle
        if let event = quiesceDeferred {
            quiesceDeferred = nil
            context.fireUserInboundEventTriggered(event)
        }
        if !held.isEmpty {
            while !held.isEmpty {
                if case .answering = state { break }
                handle(held.removeFirst(), context: context)
            }
            // The router's side (NIOAsyncChannel) hands reads on at read-complete.
            context.fireChannelReadComplete()
        }
        if readDeferred, !isAnswering {
            readDeferred = false
            context.read()
        }
    }

    private var isAnswering: Bool {
        if case .answering = state { return true }
        return !held.isEmpty
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        // The router finished a response: the next /sign may be answered here again.
        if case .end = unwrapOutboundIn(data) { routedResponsesOutstanding = max(0, routedResponsesOutstanding - 1) }
        context.write(data, promise: promise)
    }

    func read(context: ChannelHandlerContext) {
        // Reading goes on while an answer is pending until something arrives to be held: then
        // further pipelined requests wait in the socket, so at most one read's worth is buffered
        // here. (Pausing at every answer cost two epoll_ctl calls per request, and a client with
        // one request in flight sends nothing meanwhile.)
        if held.isEmpty {
            context.read()
        } else {
            readDeferred = true
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is ChannelShouldQuiesceEvent, isAnswering || Self.isReadingSign(state) {
            quiesceDeferred = event
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    private static func isReadingSign(_ state: State) -> Bool {
        switch state {
        case .collecting, .discarding: return true
        default: return false
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        held.removeAll()
        context.fireChannelInactive()
    }
}

/// The `Date` header value (RFC 9110 §5.6.7), formatted once per second.
struct HTTPDate {
    private var second: time_t = -1
    private var text = ""

    private static let days = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]
    private static let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]

    mutating func now() -> String {
        var seconds = time(nil)
        if seconds != second {
            second = seconds
            text = Self.format(&seconds)
        }
        return text
    }

    static func format(_ seconds: inout time_t) -> String {
        var parts = tm()
        gmtime_r(&seconds, &parts)
        func two(_ value: Int32) -> String { value < 10 ? "0\(value)" : "\(value)" }
        return "\(days[Int(parts.tm_wday)]), \(two(parts.tm_mday)) \(months[Int(parts.tm_mon)]) \(parts.tm_year + 1900) "
            + "\(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec)) GMT"
    }
}
