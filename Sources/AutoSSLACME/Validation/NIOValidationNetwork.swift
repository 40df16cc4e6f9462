import AutoSSLCA
import AutoSSLCore
import AutoSSLHost
import AutoSSLWire
import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import NIOTLS
import SwiftASN1
import X509

#if canImport(Glibc)
import Glibc
#endif

/// Checks ACME challenges (RFC 8555 §8.3, §8.4; RFC 8737; RFC 8738) the way a careful CA does:
/// every address the name resolves to is tried until one answers correctly, and failures become
/// problem documents the client can show.
///
/// Everything a responder sends is hostile input: each attempt has one overall deadline (connect,
/// TLS, request and answer together), answers are read by NIO's HTTP/1 decoder with size caps,
/// the network work runs on its own event loop (`ValidationNetwork`) and its own threads (DNS),
/// never on the loops that serve the CA, and by default no connection goes to loopback, link-local,
/// multicast or unspecified addresses or to the CA's own (`ValidationAddressPolicy`).
struct ACMEValidator: Sendable {
    let provisioner: ACMEProvisionerSettings
    var addressPolicy = ValidationAddressPolicy()
    /// The budget of one attempt, whatever the responder does.
    var timeout: TimeInterval = 10

    static let acmeIdentifierOID: ASN1ObjectIdentifier = [1, 3, 6, 1, 5, 5, 7, 1, 31]

    func validate(type: String, identifier: ACMEIdentifierValue, token: String, keyAuthorization: String) async -> ACMEProblem? {
        let deadline = Deadline(seconds: timeout)
        do {
            switch type {
            case "http-01": try await http01(identifier, token: token, keyAuthorization: keyAuthorization, deadline: deadline)
            case "dns-01": try await dns01(identifier, keyAuthorization: keyAuthorization, deadline: deadline)
            case "tls-alpn-01": try await tlsALPN01(identifier, keyAuthorization: keyAuthorization, deadline: deadline)
            default: return ACMEProblem(.malformed, "unknown challenge type \(type)")
            }
            return nil
        } catch let problem as ACMEProblem {
            return problem
        } catch {
            return ACMEProblem(.connection, Self.plainWords(error))
        }
    }

    /// The end of one attempt.
    struct Deadline: Sendable {
        let end: NIODeadline
        let seconds: Int64

        init(seconds: TimeInterval) {
            let whole = Int64(max(1, min(seconds, 300)))
            self.seconds = whole
            self.end = .now() + .seconds(whole)
        }

        /// Time left, or a timeout problem when none is.
        func remaining(_ what: String) throws -> TimeAmount {
            let left = end - .now()
            guard left > .milliseconds(10) else {
                throw ACMEProblem(.connection, "timeout: \(what) did not finish within the \(seconds) s a validation attempt may take")
            }
            return left
        }
    }

    // MARK: - Addresses

    /// The addresses to connect to: the IP itself, or the name's A/AAAA records, less those the
    /// address policy refuses.
    func addresses(_ identifier: ACMEIdentifierValue, deadline: Deadline) async throws -> [IPAddress] {
        let found: [IPAddress]
        switch identifier {
        case .ip(let address):
            found = [address]
        case .dns(let name):
            if let resolver = provisioner.resolver {
                let lookup = try DNSLookup.resolver(resolver)
                let left = try deadline.remaining("resolving \(name)")
                let records = try await Self.blocking {
                    (try lookup.lookup(name, .a, within: left)) + (try lookup.lookup(name, .aaaa, within: left))
                }
                found = records.compactMap { IPAddress(bytes: $0) }
                guard !found.isEmpty else { throw ACMEProblem(.dns, "\(name) has no A or AAAA record at \(resolver)") }
            } else {
                found = try await Self.blocking { NetworkAddresses.resolve(name) }
                guard !found.isEmpty else { throw ACMEProblem(.dns, "\(name) does not resolve") }
            }
        }
        let usable = found.filter { addressPolicy.refusal(for: $0) == nil }
        guard !usable.isEmpty else {
            let reasons = found.compactMap { addressPolicy.refusal(for: $0) }
            throw ACMEProblem(
                .rejectedIdentifier,
                "validation does not connect to \(identifier.value): \(reasons.joined(separator: "; ")) (the CA operator can allow a range with --validation-allow)")
        }
        return usable
    }

    /// Runs blocking socket work on its own thread: never on the event loops that serve the CA.
    static func blocking<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            let thread = Thread { continuation.resume(with: Result { try work() }) }
            thread.name = "acme-validation"
            thread.start()
        }
    }

    /// What went wrong on the network, in the words a client can act on: never a type name or an
    /// internal path.
    static func plainWords(_ error: any Error, target: String = "the responder") -> String {
        if let problem = error as? ACMEProblem { return problem.detail }
        if let failure = error as? HTTPAnswerFailure { return failure.description }
        if let failure = error as? DNSLookup.Failure { return failure.description }
        if let words = NetworkFailureWords.describe(error, target: target) { return words }
        if error is NIOSSLError || error is BoringSSLError { return "the TLS handshake failed" }
        return "connection failed"
    }

    // MARK: - http-01

    /// At most this many redirects are followed (as Let's Encrypt does).
    static let maximumRedirects = 10

    /// Fetches the key authorization from each address of the identifier, following redirects (to
    /// http on the http-01 port or https on the tls-alpn-01 port, 80 and 443 unless configured;
    /// https without certificate checks, as RFC 8555 §8.3 allows), and checks what it finds.
    func http01(_ identifier: ACMEIdentifierValue, token: String, keyAuthorization: String, deadline: Deadline) async throws {
        let port = provisioner.http01Port ?? 80
        let host = identifier.hostHeader
        let start = FetchTarget(https: false, host: host, port: port, path: "/.well-known/acme-challenge/" + token)
        var last: ACMEProblem?
        for address in try await addresses(identifier, deadline: deadline) {
            do {
                let (answer, url) = try await fetchFollowingRedirects(start, firstAddress: address, deadline: deadline)
                guard answer.status == 200 else {
                    throw ACMEProblem(.unauthorized, "\(url) answered HTTP \(answer.status) (from \(address))")
                }
                let text = String(decoding: answer.body, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
                guard text == keyAuthorization else {
                    throw ACMEProblem(.incorrectResponse, "wrong content: the key authorization served at \(url) is not the expected one (from \(address))")
                }
                return
            } catch let problem as ACMEProblem {
                last = Self.moreTelling(last, problem)
            } catch {
                last = Self.moreTelling(last, ACMEProblem(.connection, "could not fetch \(start.url): \(Self.plainWords(error, target: address.description))"))
            }
        }
        throw last ?? ACMEProblem(.connection, "no address to connect to for \(host)")
    }

    struct FetchTarget: Sendable, Equatable {
        var https: Bool
        var host: String
        var port: Int
        var path: String

        var url: String {
            let defaultPort = https ? 443 : 80
            return (https ? "https://" : "http://") + host + (port == defaultPort ? "" : ":\(port)") + path
        }
    }

    /// One GET after another while the answer is a redirect; the first to `firstAddress`, later ones
    /// to the first address of the redirect's host that answers (and that the policy allows).
    func fetchFollowingRedirects(_ start: FetchTarget, firstAddress: IPAddress, deadline: Deadline) async throws -> (HTTPAnswer, String) {
        var target = start
        var address: IPAddress? = firstAddress
        for hop in 0...Self.maximumRedirects {
            var candidates: [IPAddress]
            if let address {
                candidates = [address]
            } else if let ip = IPAddress(target.host) {
                candidates = try await addresses(.ip(ip), deadline: deadline)
            } else {
                guard case .dns(let name)? = try? SubjectName(parsing: target.host) else {
                    throw ACMEProblem(.unauthorized, "the redirect to \(target.url) names no valid host")
                }
                candidates = try await addresses(.dns(name), deadline: deadline)
            }
            var answer: HTTPAnswer?
            var failure: (any Error)?
            for candidate in candidates {
                do {
                    answer = try await fetch(target, address: candidate, deadline: deadline)
                    break
                } catch {
                    failure = error
                }
            }
            guard let answer else {
                throw ACMEProblem(.connection, "could not fetch \(target.url): \(failure.map { Self.plainWords($0) } ?? "no address")")
            }
            guard [301, 302, 303, 307, 308].contains(answer.status), let location = answer.headers["location"] else {
                return (answer, target.url)
            }
            guard hop < Self.maximumRedirects else {
                throw ACMEProblem(.unauthorized, "more than \(Self.maximumRedirects) redirects from \(start.url)")
            }
            target = try redirectTarget(location, from: target)
            address = nil
        }
        throw ACMEProblem(.unauthorized, "more than \(Self.maximumRedirects) redirects from \(start.url)")
    }

    /// Where a `Location` leads: absolute http(s) URLs on the validation ports, or a path on the same server.
    func redirectTarget(_ location: String, from current: FetchTarget) throws -> FetchTarget {
        guard location.utf8.count <= 2_048 else { throw ACMEProblem(.unauthorized, "the redirect's Location is longer than 2048 bytes") }
        if location.hasPrefix("/") {
            var next = current
            next.path = location
            return next
        }
        guard let url = URLComponents(string: location), let scheme = url.scheme?.lowercased(), let host = url.host, !host.isEmpty else {
            throw ACMEProblem(.unauthorized, "the redirect to \(location) is not an absolute http(s) URL")
        }
        let httpPort = provisioner.http01Port ?? 80
        let httpsPort = provisioner.tlsALPN01Port ?? 443
        let target: FetchTarget
        switch scheme {
        case "http": target = FetchTarget(https: false, host: host, port: url.port ?? 80, path: "")
        case "https": target = FetchTarget(https: true, host: host, port: url.port ?? 443, path: "")
        default: throw ACMEProblem(.unauthorized, "the redirect to \(location) is neither http nor https")
        }
        guard target.port == (target.https ? httpsPort : httpPort) else {
            throw ACMEProblem(
                .unauthorized,
                "the redirect to \(location) uses port \(target.port); validation follows redirects only to port \(httpPort) (http) and \(httpsPort) (https)")
        }
        var next = target
        next.host = host.hasPrefix("[") ? String(host.dropFirst().dropLast()) : host
        next.path = (url.percentEncodedPath.isEmpty ? "/" : url.percentEncodedPath) + (url.percentEncodedQuery.map { "?" + $0 } ?? "")
        return next
    }

    func fetch(_ target: FetchTarget, address: IPAddress, deadline: Deadline) async throws -> HTTPAnswer {
        let hostHeader = IPAddress(target.host).map { $0.isIPv4 ? $0.description : "[\($0.description)]" } ?? target.host
        let hostWithPort = hostHeader + (target.port == (target.https ? 443 : 80) ? "" : ":\(target.port)")
        if target.https {
            return try await Self.get(
                address: address, port: target.port, tls: true, serverName: IPAddress(target.host) == nil ? target.host : nil,
                host: hostWithPort, path: target.path, deadline: deadline)
        }
        let host = target.port == 80 || target.port == provisioner.http01Port ? hostHeader : hostWithPort
        return try await Self.get(address: address, port: target.port, tls: false, serverName: nil, host: host, path: target.path, deadline: deadline)
    }

    /// One GET on the validation event loop: connect, optional TLS (no certificate checks: the
    /// content is what is checked), the request, and one answer read by NIO's HTTP/1 decoder, all
    /// within the attempt's deadline.
    static func get(
        address: IPAddress, port: Int, tls: Bool, serverName: String?, host: String, path: String, deadline: Deadline
    ) async throws -> HTTPAnswer {
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
        let loop = ValidationNetwork.group.next()
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
            channel = try await bootstrap.connect(host: address.description, port: port).get()
        } catch {
            let problem = ACMEProblem(.connection, plainWords(error, target: "\(address):\(port)"))
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
            throw ACMEProblem(.connection, plainWords(error, target: "\(address):\(port)"))
        }
    }

    /// When several addresses fail, an answer that was wrong says more than an address that did not answer.
    static func moreTelling(_ current: ACMEProblem?, _ new: ACMEProblem) -> ACMEProblem {
        guard let current else { return new }
        let unreachable: Set<ACMEProblem.Kind> = [.connection, .tls, .dns]
        return unreachable.contains(current.kind) && !unreachable.contains(new.kind) ? new : current
    }

    // MARK: - dns-01

    func dns01(_ identifier: ACMEIdentifierValue, keyAuthorization: String, deadline: Deadline) async throws {
        guard case .dns(let name) = identifier else {
            throw ACMEProblem(.malformed, "dns-01 cannot validate an IP address")
        }
        let expected = ACMEChallengeValues.dnsTXT(keyAuthorization)
        let lookup = try DNSLookup.resolver(provisioner.resolver)
        let records: [String]
        do {
            let left = try deadline.remaining("the TXT look-up")
            records = try await Self.blocking { try lookup.lookup("_acme-challenge." + name, .txt, within: left) }
                .map { String(decoding: $0, as: UTF8.self) }
        } catch let problem as ACMEProblem {
            throw problem
        } catch {
            throw ACMEProblem(.dns, "TXT look-up of _acme-challenge.\(name) failed: \(Self.plainWords(error))")
        }
        guard records.contains(expected) else {
            throw ACMEProblem(
                .incorrectResponse,
                records.isEmpty ? "no TXT record at _acme-challenge.\(name)" : "wrong content: the TXT records at _acme-challenge.\(name) do not hold the expected value")
        }
    }

    // MARK: - tls-alpn-01

    func tlsALPN01(_ identifier: ACMEIdentifierValue, keyAuthorization: String, deadline: Deadline) async throws {
        let port = provisioner.tlsALPN01Port ?? 443
        let expected = ACMEChallengeValues.tlsALPNDigest(keyAuthorization)
        var last: ACMEProblem?
        for address in try await addresses(identifier, deadline: deadline) {
            do {
                let certificate: Certificate
                do {
                    certificate = try await Self.fetchALPNCertificate(
                        address: address, port: port, serverName: identifier.tlsServerName, deadline: deadline, rsaKeyExchange: false)
                } catch let problem as ACMEProblem where problem.detail.contains("KEY_USAGE_BIT_INCORRECT") {
                    // Some clients (lego) make an RSA challenge certificate whose key usage allows only
                    // key encipherment, which BoringSSL refuses for signed key exchanges: use RSA key exchange.
                    certificate = try await Self.fetchALPNCertificate(
                        address: address, port: port, serverName: identifier.tlsServerName, deadline: deadline, rsaKeyExchange: true)
                }
                try Self.checkALPNCertificate(certificate, identifier: identifier, digest: expected)
                return
            } catch let problem as ACMEProblem {
                last = Self.moreTelling(last, problem)
            } catch {
                last = Self.moreTelling(last, ACMEProblem(.tls, "TLS with \(address):\(port) (ALPN acme-tls/1) failed: \(Self.plainWords(error))"))
            }
        }
        throw last ?? ACMEProblem(.connection, "no address to connect to")
    }

    static func checkALPNCertificate(_ certificate: Certificate, identifier: ACMEIdentifierValue, digest: [UInt8]) throws {
        let names = certificate.subjectNames
        // Compared as text: some clients put an IP address into a dNSName (lego 4.9).
        guard names.count == 1, names[0].description == identifier.value else {
            throw ACMEProblem(.unauthorized, "the tls-alpn-01 certificate must name exactly \(identifier.value), it names \(names.map(\.description).joined(separator: ", "))")
        }
        guard let extensionValue = certificate.extensions.first(where: { $0.oid == acmeIdentifierOID }) else {
            throw ACMEProblem(.unauthorized, "the tls-alpn-01 certificate has no acmeIdentifier extension")
        }
        guard extensionValue.critical else {
            throw ACMEProblem(.unauthorized, "the acmeIdentifier extension must be critical")
        }
        guard let octets = try? ASN1OctetString(derEncoded: extensionValue.value), Array(octets.bytes) == digest else {
            throw ACMEProblem(.incorrectResponse, "the acmeIdentifier extension does not hold the key authorization's digest")
        }
    }

    /// Connects with ALPN `acme-tls/1` and SNI, and returns the certificate the server presents.
    static func fetchALPNCertificate(
        address: IPAddress, port: Int, serverName: String, deadline: Deadline, rsaKeyExchange: Bool
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
        let bootstrap = ClientBootstrap(group: ValidationNetwork.group)
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
            channel = try await bootstrap.connect(host: address.description, port: port).get()
        } catch {
            throw ACMEProblem(.connection, plainWords(error, target: "\(address):\(port)"))
        }
        defer { channel.close(promise: nil) }
        return try await collector.certificate(timeout: TimeInterval(left.nanoseconds) / 1e9)
    }
}

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

/// An ACME identifier after checking: a DNS name or an IP address (RFC 8738).
enum ACMEIdentifierValue: Sendable, Equatable {
    case dns(String)
    case ip(IPAddress)

    var value: String {
        switch self {
        case .dns(let name): return name
        case .ip(let address): return address.description
        }
    }

    var subjectName: SubjectName {
        switch self {
        case .dns(let name): return .dns(name)
        case .ip(let address): return .ip(address)
        }
    }

    var isWildcard: Bool {
        if case .dns(let name) = self { return name.hasPrefix("*.") }
        return false
    }

    /// The Host header for http-01 (IPv6 in brackets).
    var hostHeader: String {
        switch self {
        case .dns(let name): return name
        case .ip(let address): return address.isIPv4 ? address.description : "[\(address.description)]"
        }
    }

    /// SNI for tls-alpn-01: the name, or the reverse-mapping name for an IP (RFC 8738 §6).
    var tlsServerName: String {
        switch self {
        case .dns(let name):
            return name
        case .ip(let address):
            if address.isIPv4 { return address.bytes.reversed().map(String.init).joined(separator: ".") + ".in-addr.arpa" }
            let nibbles = address.bytes.flatMap { [String($0 >> 4, radix: 16), String($0 & 0x0F, radix: 16)] }
            return nibbles.reversed().joined(separator: ".") + ".ip6.arpa"
        }
    }
}

/// The event loop validation's connections run on: one thread of its own, so that a slow or hostile
/// responder never holds a loop that serves the CA.
enum ValidationNetwork {
    static let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
}
