import HTTPTypes
import HummingbirdCore
import Logging
import NIOCore
import NIOHTTP1
import NIOHTTPTypes
import NIOSSL
import NIOTLS
import Synchronization

/// Bounds on the connections `ca serve` keeps, so that no one source can hold the CA: a cap in
/// total and per source address, and a deadline for the TLS handshake. (The HTTP layer adds an
/// idle timeout and header size limits; see `CAServer.run`.)
public struct ConnectionLimits: Sendable, Equatable {
    /// Open connections in total, all sources together.
    public var maximumConnections = 4_096
    /// Open connections from one source address.
    public var maximumPerSource = 128
    /// Time from accepting a connection to a finished TLS handshake.
    public var handshakeTimeout: TimeAmount = .seconds(10)
    /// Time a keep-alive connection may sit between requests, and also the most a request's head
    /// may take to arrive in full (from the connection's start or the previous answer), however
    /// its bytes trickle in.
    public var idleTimeout: TimeAmount = .seconds(60)
    /// The most a request may take from its head to the end of its body (a body of 1 MiB at
    /// 35 KB/s). The idle timeout alone starts again with every part of a body that arrives, so a
    /// client sending a byte every few seconds could hold a connection (and its place under the
    /// caps) for ever.
    public var requestTimeout: TimeAmount = .seconds(30)

    public init() {}
}

/// Counts open connections per source address and in total.
final class ConnectionCounter: Sendable {
    private struct State {
        var total = 0
        var bySource: [String: Int] = [:]
    }

    private let state = Mutex(State())
    let limits: ConnectionLimits

    init(limits: ConnectionLimits) {
        self.limits = limits
    }

    /// Takes a place for `source`, or says why there is none.
    func admit(_ source: String) -> String? {
        state.withLock { state in
            if state.total >= limits.maximumConnections { return "the CA has \(limits.maximumConnections) open connections" }
            let mine = state.bySource[source, default: 0]
            if mine >= limits.maximumPerSource { return "\(source) has \(limits.maximumPerSource) open connections" }
            state.total += 1
            state.bySource[source] = mine + 1
            return nil
        }
    }

    func release(_ source: String) {
        state.withLock { state in
            state.total -= 1
            let left = state.bySource[source, default: 1] - 1
            state.bySource[source] = left > 0 ? left : nil
        }
    }

    var open: Int { state.withLock { $0.total } }
}

/// First in every connection's pipeline: admits or closes it, and, on a TLS listener, closes it
/// when its TLS handshake has not finished in time. On a plain HTTP listener (CRL and OCSP,
/// metrics) only the caps apply; the HTTP layer's idle timeout bounds a silent connection.
final class ConnectionGuardHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundOut = ByteBuffer
    private let counter: ConnectionCounter
    private let logger: Logger
    private let tls: Bool
    private var source: String?
    private var handshakeTimer: Scheduled<Void>?
    private var sawFirstBytes = false

    init(counter: ConnectionCounter, logger: Logger, tls: Bool = true) {
        self.counter = counter
        self.logger = logger
        self.tls = tls
        // A plain listener has no handshake to wait for and nothing to tell its clients.
        sawFirstBytes = !tls
    }

    func handlerAdded(context: ChannelHandlerContext) {
        let source = context.channel.remoteAddress?.ipAddress ?? "unknown"
        if let refusal = counter.admit(source) {
            logger.warning("connection from \(source) refused: \(refusal)")
            context.close(promise: nil)
            return
        }
        self.source = source
        guard tls else { return }
        let deadline = counter.limits.handshakeTimeout
        handshakeTimer = context.eventLoop.assumeIsolated().scheduleTask(in: deadline) {
            context.close(promise: nil)
        }
    }

    /// A TLS connection starts with a handshake record (0x16); one that starts with a capital
    /// letter is a plain HTTP request (`GET /…`) sent to the HTTPS port. It gets a short plain
    /// answer that says so, instead of a TLS error the browser or curl shows as an empty reply.
    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if !sawFirstBytes {
            sawFirstBytes = true
            let buffer = unwrapInboundIn(data)
            if let first = buffer.getInteger(at: buffer.readerIndex, as: UInt8.self), (0x41...0x5A).contains(first) {
                let port = context.channel.localAddress?.port.map { ":\($0)" } ?? ""
                let host = context.channel.localAddress?.ipAddress.map { $0.contains(":") ? "[\($0)]" : $0 } ?? "this-ca"
                let body = "This is the auto-ssl CA's HTTPS port: use https://\(host)\(port)/ (plain HTTP is not served).\n"
                let response = "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: \(body.utf8.count)\r\nConnection: close\r\n\r\n" + body
                let written = context.eventLoop.makePromise(of: Void.self)
                context.writeAndFlush(wrapOutboundOut(context.channel.allocator.buffer(string: response)), promise: written)
                let bound = NIOLoopBound(context, eventLoop: context.eventLoop)
                written.futureResult.whenComplete { _ in bound.value.close(promise: nil) }
                return
            }
        }
        context.fireChannelRead(data)
    }

    /// The TLS handshake finished (told by `HandshakeNotifier`, which sits after the TLS handler).
    func handshakeCompleted() {
        handshakeTimer?.cancel()
        handshakeTimer = nil
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        releasePlace()
    }

    func channelInactive(context: ChannelHandlerContext) {
        releasePlace()
        context.fireChannelInactive()
    }

    /// Gives the connection's place back, once (whichever of the two callbacks comes first).
    private func releasePlace() {
        handshakeTimer?.cancel()
        handshakeTimer = nil
        if let source {
            counter.release(source)
            self.source = nil
        }
    }
}

/// After the HTTP decoder, on every listener: bounds the time a request may take to arrive. With
/// no request in flight, the next head must arrive in full within `idleTimeout` (of the
/// connection's start or the last answer); a request being read whose answers before it are all
/// done must end within `requestTimeout` (of its head, or of the last of those answers: while the
/// CA answers earlier requests it may stop reading). A connection past either is closed. No
/// deadline runs while the CA works on an answer, and pipelined requests are counted, so an answer
/// in progress is never cut short by them.
final class RequestDeadlineHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    enum Deadline: Equatable {
        case none, head, body
    }

    private let headTimeout: TimeAmount
    private let requestTimeout: TimeAmount
    /// Requests whose head arrived and whose answer is not finished (an answer may finish before
    /// its request's body does: a 413, say).
    private var unanswered = 0
    /// A request's head arrived and its end has not.
    private var reading = false
    private var armed = Deadline.none
    /// When the armed deadline runs out (nil while none is armed).
    private var expiry: NIODeadline?
    /// The pending wake-up and when it comes: never after `expiry`. A deadline that moves later
    /// leaves it as it is (it looks again when it fires), so a busy keep-alive connection
    /// schedules a timer about once per timeout rather than twice per request.
    private var timer: (task: Scheduled<Void>, at: NIODeadline)?

    init(limits: ConnectionLimits) {
        self.headTimeout = limits.idleTimeout
        self.requestTimeout = limits.requestTimeout
    }

    /// The deadline that applies in a state (also for tests).
    static func deadline(unanswered: Int, reading: Bool) -> Deadline {
        if unanswered == 0 { return .head }
        if reading && unanswered == 1 { return .body }
        return .none
    }

    func handlerAdded(context: ChannelHandlerContext) {
        update(context: context)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        timer?.task.cancel()
        timer = nil
        expiry = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head:
            unanswered += 1
            reading = true
            update(context: context)
        case .body: break
        case .end:
            reading = false
            update(context: context)
        }
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if case .end = unwrapOutboundIn(data) {
            unanswered = max(0, unanswered - 1)
            update(context: context)
        }
        context.write(data, promise: promise)
    }

    /// Arms the deadline the state calls for; one already running for the same reason goes on.
    private func update(context: ChannelHandlerContext) {
        let wanted = Self.deadline(unanswered: unanswered, reading: reading)
        guard wanted != armed else { return }
        armed = wanted
        let now = context.eventLoop.now
        switch wanted {
        case .none: expiry = nil
        case .head: expiry = now + headTimeout
        case .body: expiry = now + requestTimeout
        }
        guard let expiry else { return }
        if let timer, timer.at <= expiry { return }
        schedule(at: expiry, context: context)
    }

    private func schedule(at when: NIODeadline, context: ChannelHandlerContext) {
        timer?.task.cancel()
        let task = context.eventLoop.assumeIsolated().scheduleTask(deadline: when) { [self] in
            timer = nil
            guard let expiry else { return }
            if expiry <= context.eventLoop.now {
                context.close(promise: nil)
            } else {
                schedule(at: expiry, context: context)
            }
        }
        timer = (task, when)
    }
}

/// After the TLS handler: tells the connection's guard that the handshake is done.
final class HandshakeNotifier: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let tlsEvent = event as? TLSUserEvent, case .handshakeCompleted = tlsEvent,
           let guardHandler = try? context.pipeline.syncOperations.handler(type: ConnectionGuardHandler.self) {
            guardHandler.handshakeCompleted()
        }
        context.fireUserInboundEventTriggered(event)
    }
}

/// A child channel with the guard in front: TLS + HTTP/1 (`tls`: the TLS handshake has a
/// deadline, and `HandshakeNotifier` must be among the HTTP handlers), or plain HTTP/1.
struct GuardedChildChannel<Base: ServerChildChannel>: ServerChildChannel {
    typealias Value = Base.Value
    let base: Base
    let counter: ConnectionCounter
    let logger: Logger
    var tls = true

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        channel.eventLoop.makeCompletedFuture {
            try channel.pipeline.syncOperations.addHandler(ConnectionGuardHandler(counter: counter, logger: self.logger, tls: tls))
        }.flatMap {
            self.base.setup(channel: channel, logger: logger)
        }
    }

    func handle(value: Value, logger: Logger) async {
        await base.handle(value: value, logger: logger)
    }
}

#if canImport(Glibc)
import Glibc
#endif

enum OpenFileLimit {
    /// Raises the soft limit on open files to the hard limit (a shell's default soft limit of 1,024
    /// is below the connection cap); returns the limit in force.
    @discardableResult
    static func raiseToHardLimit() -> UInt64 {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return 0 }
        if limit.rlim_cur < limit.rlim_max {
            var raised = limit
            raised.rlim_cur = limit.rlim_max
            if setrlimit(Int32(RLIMIT_NOFILE.rawValue), &raised) == 0 { return UInt64(raised.rlim_cur) }
        }
        return UInt64(limit.rlim_cur)
    }
}
