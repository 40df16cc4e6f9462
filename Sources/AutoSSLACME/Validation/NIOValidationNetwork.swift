import AutoSSLCore
import AutoSSLHost
import AutoSSLWire
import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import NIOTLS
import X509

/// The real network for validation, on NIO: everything a responder sends is hostile input. Each
/// operation stops at the attempt's deadline; answers are read by NIO's HTTP/1 decoder with size
/// caps. Connections run on the event loop the validation task runs on (`loop`); blocking
/// look-ups run on threads of their own, never on an event loop.
public struct NIOValidationNetwork: ValidationNetwork {
    /// The event loop for validations that do not run on one (tests, tools): one thread.
    static let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)

    /// Where a validation's connection runs: the calling thread's event loop when it is one (in
    /// `ca serve`, tasks run on the loops that serve the CA), so that the connection's events and
    /// the task waiting on them stay on one thread instead of waking another twice per
    /// validation; otherwise the group above. Nothing a responder does can hold the loop: the
    /// socket is non-blocking, every read is capped (`HTTPAnswer.Limits`) and every step ends at
    /// the attempt's deadline.
    static var loop: any EventLoop {
        MultiThreadedEventLoopGroup.currentEventLoop ?? group.next()
    }

    public init() {}

    public func txtRecords(_ name: String, resolver: String?, deadline: ValidationDeadline) async throws -> [String] {
        let lookup = try DNSLookup.resolver(resolver)
        let left = try deadline.remaining("the TXT look-up")
        return try await Self.blocking { try lookup.lookup(name, .txt, within: left) }.map { String(decoding: $0, as: UTF8.self) }
    }

    public func addresses(of name: String, resolver: String?, deadline: ValidationDeadline) async throws -> [IPAddress] {
        guard let resolver else {
            return try await Self.blocking { NetworkAddresses.resolve(name) }
        }
        let lookup = try DNSLookup.resolver(resolver)
        let left = try deadline.remaining("resolving \(name)")
        let records = try await Self.blocking {
            (try lookup.lookup(name, .a, within: left)) + (try lookup.lookup(name, .aaaa, within: left))
        }
        return records.compactMap { IPAddress(bytes: $0) }
    }

    public func alpnCertificate(address: IPAddress, port: Int, serverName: String, deadline: ValidationDeadline) async throws -> Certificate {
        do {
            return try await Self.handshake(address: address, port: port, serverName: serverName, deadline: deadline, rsaKeyExchange: false)
        } catch let problem as ACMEProblem where problem.detail.contains("KEY_USAGE_BIT_INCORRECT") {
            // Some clients (lego) make an RSA challenge certificate whose key usage allows only
            // key encipherment, which BoringSSL refuses for signed key exchanges: use RSA key exchange.
            return try await Self.handshake(address: address, port: port, serverName: serverName, deadline: deadline, rsaKeyExchange: true)
        }
    }

    /// Runs blocking socket work on its own thread: never on the event loops that serve the CA.
    static func blocking<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            let thread = Thread { continuation.resume(with: Result { try work() }) }
            thread.name = "acme-validation"
            thread.start()
        }
    }

    /// One GET on the validation's event loop (`loop`): connect, optional TLS (no certificate checks: the
    /// content is what is checked), the request, and one answer read by NIO's HTTP/1 decoder, all
    /// within the attempt's deadline.
    public func get(_ request: HTTPGet, deadline: ValidationDeadline) async throws -> HTTPAnswer {
        let (address, port, tls, serverName, host, path) = (request.address, request.port, request.tls, request.serverName, request.host, request.path)
        guard (1...65_535).contains(port) else { throw ACMEProblem(.connection, "port \(port) is not a valid port") }
        let left = try deadline.remaining("fetching http\(tls ? "s" : "")://\(host)\(path)")
        let context: NIOSSLContext?
        if tls {
            var configuration = TLSConfiguration.makeClientConfiguration()
            configuration.certificateVerification = .none
            configuration.minimumTLSVersion = .tlsv12
            context = try NIOSSLContext(configuration: configuration)
        } else {
            context = nil
        }
        let loop = Self.loop
        let promise = loop.makePromise(of: HTTPAnswer.self)
        let timer = loop.scheduleTask(deadline: deadline.end) {
            promise.fail(ACMEProblem(.connection, "timeout: no complete answer from \(address):\(port) within \(deadline.seconds) s"))
        }
        defer { timer.cancel() }
        let bootstrap = ClientBootstrap(group: loop)
            .connectTimeout(left)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let context {
                        try channel.pipeline.syncOperations.addHandler(try NIOSSLClientHandler(context: context, serverHostname: serverName))
                    }
                    try channel.pipeline.syncOperations.addHandlers(HTTPAnswer.readingHandlers(
                        promise: promise, limits: HTTPAnswer.Limits(),
                        isBenign: { error in
                            // A server that closes without close_notify still sent a whole answer.
                            if let sslError = error as? NIOSSLError, case .uncleanShutdown = sslError { return true }
                            return false
                        }))
                }
            }
        let channel: any Channel
        do {
            channel = try await bootstrap.connect(to: try Self.socketAddress(address, port: port)).get()
        } catch {
            let problem = ACMEProblem(.connection, ValidationWords.plain(error, target: "\(address):\(port)"))
            promise.fail(problem)
            throw problem
        }
        promise.futureResult.whenComplete { _ in channel.close(promise: nil) }
        channel.write(HTTPClientRequestPart.head(HTTPAnswer.getRequest(host: host, path: path)), promise: nil)
        channel.writeAndFlush(HTTPClientRequestPart.end(nil), promise: nil)
        do {
            return try await promise.futureResult.get()
        } catch let problem as ACMEProblem {
            throw problem
        } catch {
            throw ACMEProblem(.connection, ValidationWords.plain(error, target: "\(address):\(port)"))
        }
    }

    /// The socket address of an address the policy already checked: connected to as it is, with no
    /// resolver and no Happy Eyeballs in between (what `connect(host:port:)` would add).
    static func socketAddress(_ address: IPAddress, port: Int) throws -> SocketAddress {
        try SocketAddress(ipAddress: address.description, port: port)
    }

    /// Connects with ALPN `acme-tls/1` and SNI, and returns the certificate the server presents.
    static func handshake(
        address: IPAddress, port: Int, serverName: String, deadline: ValidationDeadline, rsaKeyExchange: Bool
    ) async throws -> Certificate {
        guard (1...65_535).contains(port) else { throw ACMEProblem(.connection, "port \(port) is not a valid port") }
        let left = try deadline.remaining("the TLS handshake with \(address):\(port)")
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.certificateVerification = .none  // the certificate is self-signed by design; its content is checked
        tls.applicationProtocols = ["acme-tls/1"]
        tls.minimumTLSVersion = .tlsv12
        if rsaKeyExchange {
            tls.maximumTLSVersion = .tlsv12
            tls.cipherSuites = "AES128-GCM-SHA256:AES256-GCM-SHA384"
        }
        let context = try NIOSSLContext(configuration: tls)
        let collector = PeerCertificateCollector()
        let bootstrap = ClientBootstrap(group: Self.loop)
            .connectTimeout(left)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let handler = try NIOSSLClientHandler(context: context, serverHostname: serverName)
                    try channel.pipeline.syncOperations.addHandler(handler)
                    try channel.pipeline.syncOperations.addHandler(collector.handler(promise: channel.eventLoop.makePromise()))
                }
            }
        let channel: any Channel
        do {
            channel = try await bootstrap.connect(to: try Self.socketAddress(address, port: port)).get()
        } catch {
            throw ACMEProblem(.connection, ValidationWords.plain(error, target: "\(address):\(port)"))
        }
        defer { channel.close(promise: nil) }
        return try await collector.certificate(timeout: TimeInterval(left.nanoseconds) / 1e9)
    }}

/// A result that is set once (later attempts are ignored) and awaited by any number of tasks:
/// how a channel handler on an event loop hands its outcome to the validation task.
final class OneShotResult<Value: Sendable>: @unchecked Sendable {
    private let lock = NSLock()
    private var result: Result<Value, any Error>?
    private var waiters: [CheckedContinuation<Value, any Error>] = []

    func finish(_ outcome: Result<Value, any Error>) {
        lock.lock()
        guard result == nil else {
            lock.unlock()
            return
        }
        result = outcome
        let pending = waiters
        waiters = []
        lock.unlock()
        for waiter in pending { waiter.resume(with: outcome) }
    }

    /// The value, or `timeoutError` once `timeout` has passed without one.
    func value(timeout: TimeInterval, timeoutError: @escaping @Sendable () -> any Error) async throws -> Value {
        let timer = Task {
            try await Task.sleep(nanoseconds: UInt64(timeout * 1_000_000_000))
            self.finish(.failure(timeoutError()))
        }
        defer { timer.cancel() }
        return try await withCheckedThrowingContinuation { continuation in
            lock.lock()
            if let result {
                lock.unlock()
                continuation.resume(with: result)
            } else {
                waiters.append(continuation)
                lock.unlock()
            }
        }
    }
}

/// Waits for the TLS handshake and hands out the peer's certificate and the negotiated protocol.
final class PeerCertificateCollector: @unchecked Sendable {
    private let outcome = OneShotResult<Certificate>()

    final class Handler: ChannelInboundHandler, @unchecked Sendable {
        typealias InboundIn = ByteBuffer
        let collector: PeerCertificateCollector

        init(collector: PeerCertificateCollector) {
            self.collector = collector
        }

        func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
            if let tlsEvent = event as? TLSUserEvent, case .handshakeCompleted(let negotiated) = tlsEvent {
                guard negotiated == "acme-tls/1" else {
                    collector.finish(.failure(ACMEProblem(.tls, "the server did not negotiate ALPN acme-tls/1")))
                    return
                }
                context.channel.nioSSL_peerCertificate().whenComplete { result in
                    switch result {
                    case .success(let peer?):
                        if let der = try? peer.toDERBytes(), let certificate = try? Certificate(derEncoded: der) {
                            self.collector.finish(.success(certificate))
                        } else {
                            self.collector.finish(.failure(ACMEProblem(.tls, "the tls-alpn-01 certificate could not be parsed")))
                        }
                    default:
                        self.collector.finish(.failure(ACMEProblem(.tls, "the server presented no certificate")))
                    }
                }
            }
            context.fireUserInboundEventTriggered(event)
        }

        func errorCaught(context: ChannelHandlerContext, error: any Error) {
            collector.finish(.failure(ACMEProblem(.tls, "TLS handshake failed: \(error)")))
            context.close(promise: nil)
        }

        func channelInactive(context: ChannelHandlerContext) {
            collector.finish(.failure(ACMEProblem(.tls, "the connection closed before the TLS handshake completed")))
            context.fireChannelInactive()
        }
    }

    func handler(promise: EventLoopPromise<Void>) -> Handler {
        promise.succeed(())
        return Handler(collector: self)
    }

    func finish(_ result: Result<Certificate, any Error>) { outcome.finish(result) }

    func certificate(timeout: TimeInterval) async throws -> Certificate {
        try await outcome.value(timeout: timeout) { ACMEProblem(.connection, "the TLS handshake timed out") }
    }
}

