import AutoSSLClient
import AutoSSLCore
import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOFoundationCompat
import NIOSSL
import Synchronization
import X509

/// Load generator for `auto-ssl-bench sign`: many concurrent clients issuing certificates through
/// the real HTTPS API, each request with its own CSR and one-time token (prepared beforehand so
/// the measurement is the CA's work, not the client's key generation).
public struct SignBenchmark: Sendable {
    public struct Result: Sendable, Codable {
        public var requests: Int
        public var concurrency: Int
        public var succeeded: Int
        public var failed: Int
        public var seconds: Double
        public var certificatesPerSecond: Double
        public var p50Milliseconds: Double
        public var p90Milliseconds: Double
        public var p99Milliseconds: Double
        public var maxMilliseconds: Double
        public var firstError: String?

        enum CodingKeys: String, CodingKey {
            case requests, concurrency, succeeded, failed, seconds
            case certificatesPerSecond = "certificates_per_second"
            case p50Milliseconds = "p50_ms"
            case p90Milliseconds = "p90_ms"
            case p99Milliseconds = "p99_ms"
            case maxMilliseconds = "max_ms"
            case firstError = "first_error"
        }
    }

    public let client: CAClient
    public let provisioner: String
    public let key: ECJWK

    public init(client: CAClient, provisioner: String, key: ECJWK) {
        self.client = client
        self.provisioner = provisioner
        self.key = key
    }

    /// Request bodies ready to send: CSR + token for a distinct name each.
    public func prepare(count: Int) throws -> [ByteBuffer] {
        let csrKey = try SigningKey.generate(.p256)  // one key for all CSRs: the CA checks each CSR's signature anyway
        return try (0..<count).map { index in
            let names = [SubjectName.dns("bench-\(index).bench.internal")]
            let body: [String: String] = [
                "csr": try VerifiedCSR.make(names: names, key: csrKey),
                "ott": try client.signToken(provisioner: provisioner, key: key, names: names),
            ]
            return ByteBuffer(data: try JSONSerialization.data(withJSONObject: body))
        }
    }

    /// Sends the bodies over `concurrency` keep-alive HTTPS connections, each with one request in
    /// flight, and measures each request from the moment it is written to the end of its response.
    /// The generator runs on a single NIO event loop with no task hops (like wrk): on these shared
    /// cores, every microsecond it spends is taken from the CA being measured.
    /// `alsoTo`: more servers of the same CA (replicas, `https://host:port`); connections are spread
    /// over all of them in turn.
    public func run(bodies: [ByteBuffer], concurrency: Int, alsoTo replicas: [String] = []) async throws -> Result {
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.trustRoots = .certificates([try NIOSSLCertificate(bytes: try client.root.derBytes(), format: .der)])
        let context = try NIOSSLContext(configuration: tls)
        guard let url = URL(string: client.baseURL), let host = url.host, let port = url.port else {
            throw AutoSSLError.invalidArgument("the benchmark needs an https://host:port URL, not \(client.baseURL)")
        }
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        var targets = [(host: host, port: port)]
        for replica in replicas {
            guard let url = URL(string: replica), let host = url.host, let port = url.port else {
                throw AutoSSLError.invalidArgument("the benchmark needs https://host:port URLs, not \(replica)")
            }
            targets.append((host, port))
        }
        let queue = RequestQueue(bodies: bodies, host: "\(host):\(port)", path: "/1.0/sign")
        let start = ContinuousClock.now
        var outcomes: [EventLoopFuture<LoadConnectionHandler.Outcome>] = []
        for index in 0..<min(concurrency, bodies.count) {
            let target = targets[index % targets.count]
            let done = group.next().makePromise(of: LoadConnectionHandler.Outcome.self)
            let connected = ClientBootstrap(group: group)
                .channelOption(.socketOption(.tcp_nodelay), value: 1)
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(try NIOSSLClientHandler(context: context, serverHostname: nil))
                        try channel.pipeline.syncOperations.addHandler(RequestCoalescer())
                        try channel.pipeline.syncOperations.addHTTPClientHandlers()
                        try channel.pipeline.syncOperations.addHandler(LoadConnectionHandler(queue: queue, done: done))
                    }
                }
                .connect(host: target.host, port: target.port)
            connected.whenFailure { done.fail($0) }
            outcomes.append(done.futureResult)
        }
        var latencies: [Double] = []
        var failures = 0
        var firstError: String?
        for outcome in outcomes {
            do {
                let result = try await outcome.get()
                latencies += result.latencies
                failures += result.failures
                if firstError == nil { firstError = result.firstError }
            } catch {
                failures += 1
                if firstError == nil { firstError = "\(error)" }
            }
        }
        let elapsed = Self.milliseconds(ContinuousClock.now - start) / 1000
        try? await group.shutdownGracefully()
        latencies.sort()
        func percentile(_ p: Double) -> Double {
            guard !latencies.isEmpty else { return 0 }
            return latencies[min(latencies.count - 1, Int((Double(latencies.count) * p).rounded(.up)) - 1)]
        }
        return Result(
            requests: bodies.count, concurrency: concurrency, succeeded: latencies.count,
            failed: failures, seconds: elapsed,
            certificatesPerSecond: Double(latencies.count) / elapsed, p50Milliseconds: percentile(0.50),
            p90Milliseconds: percentile(0.90), p99Milliseconds: percentile(0.99), maxMilliseconds: latencies.last ?? 0,
            firstError: firstError)
    }

    public static func milliseconds(_ duration: Duration) -> Double {
        Double(duration.components.seconds) * 1000 + Double(duration.components.attoseconds) / 1e15
    }
}

/// Joins what the HTTP encoder writes for one request (head, body) into one buffer at flush, so a
/// request leaves as one TLS record, as clients that buffer their writes (Go's, curl's) send it.
final class RequestCoalescer: ChannelOutboundHandler, RemovableChannelHandler {
    typealias OutboundIn = IOData
    typealias OutboundOut = IOData

    private var pending: ByteBuffer?
    private var promises: [EventLoopPromise<Void>] = []

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        guard case .byteBuffer(var buffer) = unwrapOutboundIn(data) else {
            flushPending(context: context)
            context.write(data, promise: promise)
            return
        }
        if pending == nil {
            pending = buffer
        } else {
            pending!.writeBuffer(&buffer)
        }
        if let promise { promises.append(promise) }
    }

    func flush(context: ChannelHandlerContext) {
        flushPending(context: context)
        context.flush()
    }

    private func flushPending(context: ChannelHandlerContext) {
        guard let buffer = pending else { return }
        pending = nil
        let waiting = promises
        promises = []
        let promise: EventLoopPromise<Void>? = waiting.isEmpty ? nil : context.eventLoop.makePromise()
        if let promise {
            promise.futureResult.whenComplete { result in
                for each in waiting { each.completeWith(result) }
            }
        }
        context.write(wrapOutboundOut(.byteBuffer(buffer)), promise: promise)
    }
}

/// The request bodies and the index of the next one to send, shared by the connections.
final class RequestQueue: Sendable {
    let bodies: [ByteBuffer]
    let head: HTTPRequestHead
    private let next = Atomic<Int>(0)

    init(bodies: [ByteBuffer], host: String, path: String) {
        self.bodies = bodies
        var head = HTTPRequestHead(version: .http1_1, method: .POST, uri: path)
        head.headers.add(name: "Host", value: host)
        head.headers.add(name: "Content-Type", value: "application/json")
        self.head = head
    }

    func take() -> ByteBuffer? {
        let index = next.wrappingAdd(1, ordering: .relaxed).oldValue
        return index < bodies.count ? bodies[index] : nil
    }
}

/// One keep-alive connection of the load generator: sends a request, reads the whole response,
/// records its latency, sends the next, until the queue is empty.
final class LoadConnectionHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPClientResponsePart
    typealias OutboundOut = HTTPClientRequestPart

    struct Outcome: Sendable {
        var latencies: [Double] = []
        var failures = 0
        var firstError: String?
    }

    private let queue: RequestQueue
    private let done: EventLoopPromise<Outcome>
    private var outcome = Outcome()
    private var status: HTTPResponseStatus = .ok
    private var body = ByteBuffer()
    private var sentAt = ContinuousClock.now
    private var finished = false

    init(queue: RequestQueue, done: EventLoopPromise<Outcome>) {
        self.queue = queue
        self.done = done
    }

    func channelActive(context: ChannelHandlerContext) {
        sendNext(context: context)
    }

    private func sendNext(context: ChannelHandlerContext) {
        guard let next = queue.take() else {
            finish()
            context.close(promise: nil)
            return
        }
        var head = queue.head
        head.headers.add(name: "Content-Length", value: String(next.readableBytes))
        sentAt = ContinuousClock.now
        context.write(wrapOutboundOut(.head(head)), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(next))), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            status = head.status
            body.clear()
        case .body(var part):
            body.writeBuffer(&part)
        case .end:
            if status == .created {
                outcome.latencies.append(SignBenchmark.milliseconds(ContinuousClock.now - sentAt))
            } else {
                outcome.failures += 1
                if outcome.firstError == nil {
                    outcome.firstError = "HTTP \(status.code): \(String(buffer: body).prefix(200))"
                }
            }
            sendNext(context: context)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        outcome.failures += 1
        if outcome.firstError == nil { outcome.firstError = "\(error)" }
        finish()
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        // Closed by the server before the queue was drained.
        if !finished {
            outcome.failures += 1
            if outcome.firstError == nil { outcome.firstError = "the server closed the connection" }
        }
        finish()
    }

    private func finish() {
        guard !finished else { return }
        finished = true
        done.succeed(outcome)
    }
}
