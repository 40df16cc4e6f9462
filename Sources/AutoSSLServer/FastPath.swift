import AutoSSLACME
import AutoSSLCA
import AutoSSLCore
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdCore
import Logging
import NIOCore
import NIOHTTPTypes

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Answers the hot requests in the connection's channel pipeline, right after HTTP decoding,
/// instead of passing them through Hummingbird's async request machinery, which cost about as much
/// CPU per request as parsing and checking a CSR (see docs/benchmarks.md):
/// - `POST /sign` (and `/1.0/sign`): issuance;
/// - the ACME POSTs (`ACMEService.postRoutes`: new order, POST-as-GET of orders, authorizations
///   and certificates, challenges, finalize, ...) with a `Content-Length` within the body limit.
/// The work itself (rate limit, body limit, authority, audit, JSON errors, ACME problem documents
/// and headers) is the same code the router uses; only the plumbing differs.
///
/// Everything else, and any such request the fast path does not take (a query string, `Expect`,
/// `Connection: close`, an ACME body without a length), goes to the router unchanged. Responses
/// stay in request order on a keep-alive connection: a request is taken only when no routed
/// response is outstanding, and requests arriving while one is answered are held (and reading
/// pauses) until its response is written. So are the end of the input and errors (a half-close,
/// a pipelined request the decoder refused): they reach the router after the answer is out.
///
/// It sits after Hummingbird's `HTTPConnectionStateHandler` (``FastPathChildChannel``), which
/// therefore sees every request and response: the idle timeout and a graceful shutdown count the
/// requests answered here as they count the router's.
final class FastPath: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    /// What a request taken here is.
    private enum Target {
        case sign(path: String)
        case acme(ACMEService.PostTarget, host: String?, contentType: String?)
    }

    /// A response ready to be written (`Content-Length` and `Date` are added then).
    struct Prepared {
        var status: HTTPResponse.Status
        var headers: HTTPFields
        var body: ByteBuffer

        init(status: HTTPResponse.Status, headers: HTTPFields, body: ByteBuffer) {
            self.status = status
            self.headers = headers
            self.body = body
        }

        /// A `/sign` refusal: `{"status", "message"}` as JSON.
        init(_ error: APIError) {
            var fields = error.headers
            fields[.contentType] = "application/json"
            self.init(status: error.status, headers: fields, body: ByteBuffer(string: error.jsonBody))
        }
    }

    private enum State {
        /// Between requests.
        case idle
        /// A request handed to the router; its parts follow it there.
        case routing
        /// Reading the body of a request taken here.
        case collecting(ByteBuffer, Target)
        /// Reading and dropping a body whose answer is already known (too large, rate limited),
        /// with how many more bytes will be dropped before the connection is closed instead.
        case discarding(Prepared, budget: Int)
        /// The answer went out with `Connection: close`; nothing more is read.
        case closing
        /// Waiting for the authority; then the response is written.
        case answering
    }

    private let endpoint: SignEndpoint
    /// The ACME routes, when the CA serves ACME.
    private let acme: ACMEService?
    private var state = State.idle
    /// Requests handed to the router whose responses have not been written completely.
    private var routedResponsesOutstanding = 0
    /// What arrived while a request was being answered here, in order.
    private enum Held {
        case part(HTTPRequestPart)
        case inputClosed
        case error(any Error)
    }

    /// Held inbound parts and events; `held[heldNext...]` are still to be handled.
    private var held: [Held] = []
    private var heldNext = 0
    /// Handling held parts: an answer given meanwhile does not start a second (nested) round.
    private var draining = false
    /// A read requested while answering, issued once the response is out.
    private var readDeferred = false
    private var dateHeader = HTTPDate()

    private var hasHeld: Bool { heldNext < held.count }

    private func dropHeld() {
        held.removeAll()
        heldNext = 0
    }

    init(endpoint: SignEndpoint, acme: ACMEService? = nil) {
        self.endpoint = endpoint
        self.acme = acme
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let part = unwrapInboundIn(data)
        if case .answering = state {
            held.append(.part(part))
            return
        }
        handle(part, context: context)
    }

    private func handle(_ part: HTTPRequestPart, context: ChannelHandlerContext) {
        switch state {
        case .idle:
            guard case .head(let head) = part, routedResponsesOutstanding == 0, let target = target(of: head) else {
                if case .head = part {
                    routedResponsesOutstanding += 1
                    state = .routing
                }
                context.fireChannelRead(wrapInboundOut(part))
                return
            }
            guard case .sign(let path) = target else {
                state = .collecting(context.channel.allocator.buffer(capacity: 1024), target)
                return
            }
            let remote = context.channel.remoteAddress?.ipAddress ?? "unknown"
            let declaredLength = head.headerFields[.contentLength].flatMap(Int.init)
            do {
                try endpoint.refuseIfRateLimited(remote)
                if let length = declaredLength, length > SignEndpoint.maximumBodySize {
                    let refusal = Prepared(apiError(for: endpoint.bodyTooLarge(remote: remote, path: path), logger: endpoint.logger))
                    return refuse(refusal, declaredLength: length, context: context)
                }
                state = .collecting(context.channel.allocator.buffer(capacity: 2048), target)
            } catch {
                refuse(Prepared(apiError(for: error, logger: endpoint.logger)), declaredLength: declaredLength, context: context)
            }
        case .routing:
            if case .end = part { state = .idle }
            context.fireChannelRead(wrapInboundOut(part))
        case .collecting(var buffer, let target):
            switch part {
            case .head:
                break  // cannot happen: the decoder ends a request before the next head
            case .body(var chunk):
                if buffer.readableBytes + chunk.readableBytes > SignEndpoint.maximumBodySize {
                    switch target {
                    case .sign(let path):
                        let remote = context.channel.remoteAddress?.ipAddress ?? "unknown"
                        refuse(
                            Prepared(apiError(for: endpoint.bodyTooLarge(remote: remote, path: path), logger: endpoint.logger)),
                            declaredLength: nil, context: context)
                    case .acme(let route, let host, _):
                        // Cannot happen (the declared length was within the limit and the decoder
                        // holds the body to it); answered as the router would, and closed.
                        respondAndClose(acmeProblem(ACMEService.bodyTooLarge, route: route, host: host), context: context)
                    }
                } else {
                    state = .idle  // drop the buffer's second reference before appending
                    buffer.writeBuffer(&chunk)
                    state = .collecting(buffer, target)
                }
            case .end:
                state = .answering
                switch target {
                case .sign(let path): answer(body: buffer, path: path, context: context)
                case .acme(let route, let host, let contentType): answer(route, host: host, contentType: contentType, body: buffer, context: context)
                }
            }
        case .discarding(let refusal, let budget):
            switch part {
            case .body(let chunk):
                let left = budget - chunk.readableBytes
                if left < 0 {
                    respondAndClose(refusal, context: context)
                } else {
                    state = .discarding(refusal, budget: left)
                }
            case .end:
                state = .answering
                respond(refusal, context: context)
            case .head:
                break
            }
        case .answering:
            held.append(.part(part))
        case .closing:
            break
        }
    }

    /// At most this much of a refused request's body is read and dropped (so a pipelined request
    /// after it still gets its answer); beyond it the connection is answered and closed.
    static let discardLimit = 4 * SignEndpoint.maximumBodySize

    /// A request refused from its head: its body is read and dropped so the connection stays
    /// usable, unless it declares more than is ever dropped (reading that much only to drop it
    /// would let a client keep the connection busy at will): then it is answered now and closed.
    private func refuse(_ refusal: Prepared, declaredLength: Int?, context: ChannelHandlerContext) {
        if let length = declaredLength, length > Self.discardLimit { return respondAndClose(refusal, context: context) }
        state = .discarding(refusal, budget: Self.discardLimit)
    }

    /// Answers with `Connection: close` and closes once it is written.
    private func respondAndClose(_ refusal: Prepared, context: ChannelHandlerContext) {
        state = .closing
        dropHeld()
        var fields = refusal.headers
        fields[.connection] = "close"
        fields[.contentLength] = String(refusal.body.readableBytes)
        fields[.date] = dateHeader.now()
        context.write(wrapOutboundOut(.head(HTTPResponse(status: refusal.status, headerFields: fields))), promise: nil)
        context.write(wrapOutboundOut(.body(refusal.body)), promise: nil)
        let written = context.eventLoop.makePromise(of: Void.self)
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: written)
        let bound = NIOLoopBound(context, eventLoop: context.eventLoop)
        written.futureResult.whenComplete { _ in bound.value.close(promise: nil) }
    }

    /// Whether a Connection field carries the `close` option (RFC 9112 §9.6), in any case, among
    /// the comma-separated options. Byte by byte: Foundation's substring search, which
    /// `String.contains` resolves to here, cost 0.4 % of the server's CPU under ACME load.
    static func asksToClose(_ connection: String) -> Bool {
        func isSpace(_ byte: UInt8) -> Bool { byte == 0x20 || byte == 0x09 }
        for option in connection.utf8.split(separator: UInt8(ascii: ",")) {
            var token = option
            while let first = token.first, isSpace(first) { token = token.dropFirst() }
            while let last = token.last, isSpace(last) { token = token.dropLast() }
            // ASCII letters only: OR-ing 0x20 lowercases them, and leaves no other byte equal to one.
            if token.count == closeOption.count, zip(token, closeOption).allSatisfy({ ($0 | 0x20) == $1 }) { return true }
        }
        return false
    }

    private static let closeOption = Array("close".utf8)

    /// What this request is, if the fast path takes it.
    private func target(of head: HTTPRequest) -> Target? {
        guard head.method == .post, let path = head.path else { return nil }
        // The fields by name without joining their values into a new string (the subscript's way).
        let fields = head.headerFields
        guard !fields.contains(.expect) else { return nil }  // the router handles 100-continue
        if fields[values: .connection].contains(where: Self.asksToClose) { return nil }
        if path == "/sign" || path == "/1.0/sign" { return .sign(path: path) }
        // ACME: only with one declared length, within the limit (the router refuses the rest).
        let lengths = fields[values: .contentLength]
        guard acme != nil, path.hasPrefix("/acme/"), lengths.count == 1, let length = Int(lengths[0]),
              length <= CAServer.maximumBodySize, let route = ACMEService.postTarget(path: path) else { return nil }
        return .acme(route, host: head.authority, contentType: head.headerFields[.contentType])
    }

    private func answer(body: ByteBuffer, path: String, context: ChannelHandlerContext) {
        let remote = context.channel.remoteAddress?.ipAddress ?? "unknown"
        let endpoint = self.endpoint
        let bound = NIOLoopBound((handler: self, context: context), eventLoop: context.eventLoop)
        let started = ContinuousClock.now
        // Started on this channel's event loop, which (in `ca serve`) also runs the task.
        Task {
            let prepared: Prepared
            do {
                let bytes = try await endpoint.countingFailures(remote: remote, path: path) {
                    try await endpoint.signedChain(body: body, remote: remote)
                }
                prepared = Prepared(status: .created, headers: [.contentType: "application/json"], body: bytes)
            } catch {
                prepared = Prepared(apiError(for: error, logger: endpoint.logger))
            }
            endpoint.authority.metrics.request(.sign, duration: .now - started)
            bound.eventLoop.execute {
                let (handler, context) = bound.value
                handler.respond(prepared, context: context)
            }
        }
    }

    /// An ACME POST: `ACMEService` authenticates it and runs its route, as it does for the router.
    private func answer(_ route: ACMEService.PostTarget, host: String?, contentType: String?, body: ByteBuffer, context: ChannelHandlerContext) {
        guard let acme else { return }
        let remote = context.channel.remoteAddress?.ipAddress
        let bound = NIOLoopBound((handler: self, context: context), eventLoop: context.eventLoop)
        let started = ContinuousClock.now
        Task {
            let (status, headers, bytes) = await acme.answer(route, host: host, remote: remote, body: body, contentType: contentType)
            acme.acme.authority.metrics.request(.acme, duration: .now - started)
            bound.eventLoop.execute {
                let (handler, context) = bound.value
                handler.respond(Prepared(status: status, headers: headers, body: bytes), context: context)
            }
        }
    }

    /// An ACME problem as the route would answer it.
    private func acmeProblem(_ problem: ACMEProblem, route: ACMEService.PostTarget, host: String?) -> Prepared {
        guard let acme else { return Prepared(APIError(status: .contentTooLarge, message: problem.detail)) }
        let (status, headers, body) = acme.parts(of: .problem(problem), provisioner: route.provisioner, host: host)
        return Prepared(status: status, headers: headers, body: body)
    }

    /// Writes one complete response, then carries on with whatever arrived meanwhile.
    private func respond(_ prepared: Prepared, context: ChannelHandlerContext) {
        var fields = prepared.headers
        fields[.contentLength] = String(prepared.body.readableBytes)
        fields[.date] = dateHeader.now()
        context.write(wrapOutboundOut(.head(HTTPResponse(status: prepared.status, headerFields: fields))), promise: nil)
        context.write(wrapOutboundOut(.body(prepared.body)), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        state = .idle
        drainHeld(context: context)
    }

    /// Handles what was held, in order, until a request is being answered again. One loop, not a
    /// recursion: a held request answered at once (a refusal) writes its response and returns here.
    private func drainHeld(context: ChannelHandlerContext) {
        guard !draining else { return }
        draining = true
        defer { draining = false }
        var handedOn = false
        while hasHeld {
            if case .answering = state { break }
            let next = held[heldNext]
            heldNext += 1
            if !hasHeld { dropHeld() }
            handedOn = true
            switch next {
            case .part(let part): handle(part, context: context)
            case .inputClosed: context.fireUserInboundEventTriggered(ChannelEvent.inputClosed)
            case .error(let error): context.fireErrorCaught(error)
            }
        }
        // The router's side (NIOAsyncChannel) hands reads on at read-complete.
        if handedOn { context.fireChannelReadComplete() }
        if readDeferred, !isAnswering {
            readDeferred = false
            context.read()
        }
    }

    private var isAnswering: Bool {
        if case .answering = state { return true }
        return hasHeld
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
        if hasHeld {
            readDeferred = true
        } else {
            context.read()
        }
    }

    /// The end of the input waits behind an answer in flight and what is held: the router ends
    /// the connection's request stream when it sees it, and would close or half-close the
    /// connection under the answer.
    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let channelEvent = event as? ChannelEvent, channelEvent == .inputClosed, isAnswering {
            held.append(.inputClosed)
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    /// An error (a pipelined request the decoder refused, a TLS close without close_notify) waits
    /// likewise: the router answers it with 400 and closes.
    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if isAnswering {
            held.append(.error(error))
            return
        }
        context.fireErrorCaught(error)
    }

    func channelInactive(context: ChannelHandlerContext) {
        dropHeld()
        context.fireChannelInactive()
    }
}

/// HTTP/1 with ``FastPath`` placed right after Hummingbird's `HTTPConnectionStateHandler`: there
/// the state handler sees the requests answered in the pipeline (its idle timeout does not close a
/// busy connection, and a graceful shutdown waits for their answers), and the router still gets
/// everything else.
struct FastPathChildChannel<Base: ServerChildChannel>: ServerChildChannel {
    typealias Value = Base.Value
    let base: Base
    let makeFastPath: @Sendable () -> FastPath

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        base.setup(channel: channel, logger: logger).flatMapThrowing { value in
            try FastPath.install(makeFastPath(), in: channel.pipeline.syncOperations)
            return value
        }
    }

    func handle(value: Value, logger: Logger) async {
        await base.handle(value: value, logger: logger)
    }
}

extension FastPath {
    /// Adds `fastPath` after the pipeline's `HTTPConnectionStateHandler` (which HTTP/1 setup adds).
    static func install(_ fastPath: FastPath, in pipeline: ChannelPipeline.SynchronousOperations) throws {
        let stateHandler = try pipeline.handler(type: HTTPConnectionStateHandler.self)
        try pipeline.addHandler(fastPath, position: .after(stateHandler))
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
