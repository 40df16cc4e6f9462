import AutoSSLCA
import AutoSSLCore
import AutoSSLHost
import Foundation
import NIOCore
import NIOPosix
import NIOSSL
import NIOTLS
import SwiftASN1
import X509

#if canImport(Glibc)
import Glibc
#endif

/// Checks ACME challenges (RFC 8555 §8.3, §8.4; RFC 8737; RFC 8738) the way a careful CA does:
/// every address the name resolves to is tried until one answers correctly, with timeouts, and
/// failures become problem documents the client can show.
struct ACMEValidator: Sendable {
    let provisioner: ACMEProvisionerSettings
    var timeout: TimeInterval = 10

    static let acmeIdentifierOID: ASN1ObjectIdentifier = [1, 3, 6, 1, 5, 5, 7, 1, 31]

    func validate(type: String, identifier: ACMEIdentifierValue, token: String, keyAuthorization: String) async -> ACMEProblem? {
        do {
            switch type {
            case "http-01": try await http01(identifier, token: token, keyAuthorization: keyAuthorization)
            case "dns-01": try await dns01(identifier, keyAuthorization: keyAuthorization)
            case "tls-alpn-01": try await tlsALPN01(identifier, keyAuthorization: keyAuthorization)
            default: return ACMEProblem(.malformed, "unknown challenge type \(type)")
            }
            return nil
        } catch let problem as ACMEProblem {
            return problem
        } catch {
            return ACMEProblem(.connection, "\(error)")
        }
    }

    // MARK: - Addresses

    /// The addresses to connect to: the IP itself, or the name's A/AAAA records.
    func addresses(_ identifier: ACMEIdentifierValue) async throws -> [IPAddress] {
        switch identifier {
        case .ip(let address):
            return [address]
        case .dns(let name):
            if let resolver = provisioner.resolver {
                let lookup = try DNSLookup.resolver(resolver)
                let found = try await Self.blocking {
                    (try lookup.lookup(name, .a)) + (try lookup.lookup(name, .aaaa))
                }.compactMap(IPAddress.init)
                guard !found.isEmpty else { throw ACMEProblem(.dns, "\(name) has no A or AAAA record at \(resolver)") }
                return found
            }
            let found = try await Self.blocking { NetworkAddresses.resolve(name) }
            guard !found.isEmpty else { throw ACMEProblem(.dns, "\(name) does not resolve") }
            return found
        }
    }

    /// Runs blocking socket work on its own thread: never on the cooperative pool (two threads on a
    /// 2-core machine), whose starvation would stall every request of the CA.
    static func blocking<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            let thread = Thread { continuation.resume(with: Result { try work() }) }
            thread.name = "acme-validation"
            thread.start()
        }
    }

    // MARK: - http-01

    /// At most this many redirects are followed (as Let's Encrypt does).
    static let maximumRedirects = 10

    /// Fetches the key authorization from each address of the identifier, following redirects (to
    /// http on the http-01 port or https on the tls-alpn-01 port, 80 and 443 unless configured;
    /// https without certificate checks, as RFC 8555 §8.3 allows), and checks what it finds.
    func http01(_ identifier: ACMEIdentifierValue, token: String, keyAuthorization: String) async throws {
        let port = provisioner.http01Port ?? 80
        let host = identifier.hostHeader
        let start = FetchTarget(https: false, host: host, port: port, path: "/.well-known/acme-challenge/" + token)
        var last: ACMEProblem?
        for address in try await addresses(identifier) {
            do {
                let (answer, url) = try await fetchFollowingRedirects(start, firstAddress: address)
                guard answer.status == 200 else {
                    throw ACMEProblem(.unauthorized, "\(url) answered HTTP \(answer.status) (from \(address))")
                }
                let text = String(decoding: answer.body, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
                guard text == keyAuthorization else {
                    throw ACMEProblem(.incorrectResponse, "the key authorization served at \(url) is wrong (from \(address))")
                }
                return
            } catch let problem as ACMEProblem {
                last = Self.moreTelling(last, problem)
            } catch {
                last = Self.moreTelling(last, ACMEProblem(.connection, "could not fetch \(start.url) from \(address): \(error)"))
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
    /// to the first address of the redirect's host that answers.
    func fetchFollowingRedirects(_ start: FetchTarget, firstAddress: IPAddress) async throws -> (HTTPAnswer, String) {
        var target = start
        var address: IPAddress? = firstAddress
        for hop in 0...Self.maximumRedirects {
            var candidates: [IPAddress]
            if let address {
                candidates = [address]
            } else if let ip = IPAddress(target.host) {
                candidates = [ip]
            } else {
                guard case .dns(let name)? = try? SubjectName(parsing: target.host) else {
                    throw ACMEProblem(.unauthorized, "the redirect to \(target.url) names no valid host")
                }
                candidates = try await addresses(.dns(name))
            }
            var answer: HTTPAnswer?
            var failure: (any Error)?
            for candidate in candidates {
                do {
                    answer = try await fetch(target, address: candidate)
                    break
                } catch {
                    failure = error
                }
            }
            guard let answer else {
                throw ACMEProblem(.connection, "could not fetch \(target.url): \(failure.map { "\($0)" } ?? "no address")")
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

    func fetch(_ target: FetchTarget, address: IPAddress) async throws -> HTTPAnswer {
        let hostHeader = IPAddress(target.host).map { $0.isIPv4 ? $0.description : "[\($0.description)]" } ?? target.host
        let hostWithPort = hostHeader + (target.port == (target.https ? 443 : 80) ? "" : ":\(target.port)")
        if target.https {
            return try await Self.httpsGet(
                address: address, port: target.port, serverName: IPAddress(target.host) == nil ? target.host : nil, host: hostWithPort,
                path: target.path, timeout: timeout)
        }
        let (host, port, path) = (target.port == 80 || target.port == provisioner.http01Port ? hostHeader : hostWithPort, target.port, target.path)
        return try await Self.blocking { [timeout] in
            try Self.httpGet(address: address, port: port, host: host, path: path, timeout: timeout)
        }
    }

    /// GET over TLS without certificate checks (the challenge's content is what is checked).
    static func httpsGet(
        address: IPAddress, port: Int, serverName: String?, host: String, path: String, timeout: TimeInterval
    ) async throws -> HTTPAnswer {
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.certificateVerification = .none
        tls.minimumTLSVersion = .tlsv12
        let context = try NIOSSLContext(configuration: tls)
        let request = "GET \(path) HTTP/1.1\r\nHost: \(host)\r\nUser-Agent: auto-ssl-acme-validator\r\nAccept: */*\r\nConnection: close\r\n\r\n"
        let collector = HTTPResponseCollector()
        let bootstrap = ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connectTimeout(.seconds(Int64(timeout)))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(try NIOSSLClientHandler(context: context, serverHostname: serverName))
                    try channel.pipeline.syncOperations.addHandler(collector.handler())
                }
            }
        let channel = try await bootstrap.connect(host: address.description, port: port).get()
        defer { channel.close(promise: nil) }
        try await channel.writeAndFlush(ByteBuffer(string: request)).get()
        let bytes = try await collector.response(timeout: timeout)
        guard let answer = parseHTTP(bytes) else { throw SocketFailure(description: "no HTTP response over TLS") }
        return answer
    }

    /// When several addresses fail, an answer that was wrong says more than an address that did not answer.
    static func moreTelling(_ current: ACMEProblem?, _ new: ACMEProblem) -> ACMEProblem {
        guard let current else { return new }
        let unreachable: Set<ACMEProblem.Kind> = [.connection, .tls, .dns]
        return unreachable.contains(current.kind) && !unreachable.contains(new.kind) ? new : current
    }

    struct SocketFailure: Error, CustomStringConvertible {
        var description: String
    }

    /// A minimal HTTP/1.1 GET over a blocking socket: the validation request is tiny, and the Host
    /// header must be the identifier while the connection goes to the resolved address.
    static func httpGet(address: IPAddress, port: Int, host: String, path: String, timeout: TimeInterval) throws -> HTTPAnswer {
        let fd = socket(address.isIPv4 ? AF_INET : AF_INET6, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw SocketFailure(description: "no socket") }
        defer { close(fd) }
        var time = timeval(tv_sec: Int(timeout), tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &time, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &time, socklen_t(MemoryLayout<timeval>.size))
        let connected = SocketAddress.withSockaddr(address, port: port) { connect(fd, $0, $1) }
        guard connected == 0 else { throw SocketFailure(description: "connection refused or timed out (\(String(cString: strerror(errno))))") }
        let request = "GET \(path) HTTP/1.1\r\nHost: \(host)\r\nUser-Agent: auto-ssl-acme-validator\r\nAccept: */*\r\nConnection: close\r\n\r\n"
        let sent = Array(request.utf8).withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        guard sent > 0 else { throw SocketFailure(description: "could not send the request") }
        var response: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 16_384)
        while response.count < 1 << 16 {
            let count = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if count <= 0 { break }
            response += buffer[0..<count]
            if let parsed = parseHTTP(response), parsed.complete { return parsed }
        }
        guard let parsed = parseHTTP(response) else { throw SocketFailure(description: "no HTTP response") }
        return parsed
    }

    static func parseHTTP(_ data: [UInt8]) -> HTTPAnswer? {
        let separator: [UInt8] = [13, 10, 13, 10]
        guard let end = (0..<max(0, data.count - 3)).first(where: { Array(data[$0..<$0 + 4]) == separator }) else { return nil }
        let head = String(decoding: data[0..<end], as: UTF8.self)
        let lines = head.components(separatedBy: "\r\n")
        let statusFields = lines.first?.split(separator: " ") ?? []
        guard statusFields.count >= 2, let status = Int(statusFields[1]) else { return nil }
        var headers: [String: String] = [:]
        for line in lines.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        var body = Array(data[(end + 4)...])
        if headers["transfer-encoding"]?.lowercased().contains("chunked") == true {
            var decoded: [UInt8] = []
            var index = 0
            while true {
                guard let lineEnd = (index..<max(index, body.count - 1)).first(where: { body[$0] == 13 && body[$0 + 1] == 10 }) else {
                    return HTTPAnswer(status: status, headers: headers, body: decoded, complete: false)
                }
                let sizeText = String(decoding: body[index..<lineEnd], as: UTF8.self).split(separator: ";").first ?? ""
                guard let size = Int(sizeText.trimmingCharacters(in: .whitespaces), radix: 16) else {
                    return HTTPAnswer(status: status, headers: headers, body: decoded, complete: true)
                }
                if size == 0 { return HTTPAnswer(status: status, headers: headers, body: decoded, complete: true) }
                let start = lineEnd + 2
                guard start + size <= body.count else { return HTTPAnswer(status: status, headers: headers, body: decoded, complete: false) }
                decoded += body[start..<start + size]
                index = start + size + 2
            }
        }
        if let length = headers["content-length"].flatMap(Int.init) {
            if body.count >= length { body = Array(body.prefix(length)); return HTTPAnswer(status: status, headers: headers, body: body, complete: true) }
            return HTTPAnswer(status: status, headers: headers, body: body, complete: false)
        }
        return HTTPAnswer(status: status, headers: headers, body: body, complete: false)
    }

    struct HTTPAnswer: Sendable {
        var status: Int
        /// Lower-case names.
        var headers: [String: String]
        var body: [UInt8]
        var complete: Bool
    }

    // MARK: - dns-01

    func dns01(_ identifier: ACMEIdentifierValue, keyAuthorization: String) async throws {
        guard case .dns(let name) = identifier else {
            throw ACMEProblem(.malformed, "dns-01 cannot validate an IP address")
        }
        let expected = ACMEChallengeValues.dnsTXT(keyAuthorization)
        let lookup = try DNSLookup.resolver(provisioner.resolver)
        let records: [String]
        do {
            records = try await Self.blocking { try lookup.lookup("_acme-challenge." + name, .txt) }
        } catch {
            throw ACMEProblem(.dns, "TXT look-up of _acme-challenge.\(name) failed: \(error)")
        }
        guard records.contains(expected) else {
            throw ACMEProblem(
                .incorrectResponse,
                records.isEmpty ? "no TXT record at _acme-challenge.\(name)" : "the TXT records at _acme-challenge.\(name) do not hold the expected value")
        }
    }

    // MARK: - tls-alpn-01

    func tlsALPN01(_ identifier: ACMEIdentifierValue, keyAuthorization: String) async throws {
        let port = provisioner.tlsALPN01Port ?? 443
        let expected = ACMEChallengeValues.tlsALPNDigest(keyAuthorization)
        var last: ACMEProblem?
        for address in try await addresses(identifier) {
            do {
                let certificate: Certificate
                do {
                    certificate = try await Self.fetchALPNCertificate(
                        address: address, port: port, serverName: identifier.tlsServerName, timeout: timeout, rsaKeyExchange: false)
                } catch let problem as ACMEProblem where problem.detail.contains("KEY_USAGE_BIT_INCORRECT") {
                    // Some clients (lego) make an RSA challenge certificate whose key usage allows only
                    // key encipherment, which BoringSSL refuses for signed key exchanges: use RSA key exchange.
                    certificate = try await Self.fetchALPNCertificate(
                        address: address, port: port, serverName: identifier.tlsServerName, timeout: timeout, rsaKeyExchange: true)
                }
                try Self.checkALPNCertificate(certificate, identifier: identifier, digest: expected)
                return
            } catch let problem as ACMEProblem {
                last = Self.moreTelling(last, problem)
            } catch {
                last = Self.moreTelling(last, ACMEProblem(.tls, "TLS with \(address):\(port) (ALPN acme-tls/1) failed: \(error)"))
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
        address: IPAddress, port: Int, serverName: String, timeout: TimeInterval, rsaKeyExchange: Bool
    ) async throws -> Certificate {
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
        let bootstrap = ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connectTimeout(.seconds(Int64(timeout)))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let handler = try NIOSSLClientHandler(context: context, serverHostname: serverName)
                    try channel.pipeline.syncOperations.addHandler(handler)
                    try channel.pipeline.syncOperations.addHandler(collector.handler(promise: channel.eventLoop.makePromise()))
                }
            }
        let channel = try await bootstrap.connect(host: address.description, port: port).get()
        defer { channel.close(promise: nil) }
        return try await collector.certificate(timeout: timeout)
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

/// Collects a whole HTTP response (the server closes the connection: `Connection: close`).
final class HTTPResponseCollector: @unchecked Sendable {
    private let lock = NSLock()
    private var bytes: [UInt8] = []
    private let outcome = OneShotResult<[UInt8]>()

    final class Handler: ChannelInboundHandler, @unchecked Sendable {
        typealias InboundIn = ByteBuffer
        let collector: HTTPResponseCollector

        init(collector: HTTPResponseCollector) {
            self.collector = collector
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            var buffer = unwrapInboundIn(data)
            collector.append(buffer.readBytes(length: buffer.readableBytes) ?? [])
        }

        func errorCaught(context: ChannelHandlerContext, error: any Error) {
            // A server that closes without close_notify still sent a whole answer.
            if let sslError = error as? NIOSSLError, case .uncleanShutdown = sslError {
                return
            }
            collector.outcome.finish(.failure(error))
            context.close(promise: nil)
        }

        func channelInactive(context: ChannelHandlerContext) {
            collector.finishWithBytes()
            context.fireChannelInactive()
        }
    }

    func handler() -> Handler { Handler(collector: self) }

    func append(_ more: [UInt8]) {
        lock.lock()
        bytes += more
        let complete = bytes.count > 1 << 16 || (ACMEValidator.parseHTTP(bytes)?.complete ?? false)
        lock.unlock()
        if complete { finishWithBytes() }
    }

    func finishWithBytes() {
        lock.lock()
        let collected = bytes
        lock.unlock()
        outcome.finish(
            collected.isEmpty ? .failure(ACMEValidator.SocketFailure(description: "the connection closed without an answer")) : .success(collected))
    }

    func response(timeout: TimeInterval) async throws -> [UInt8] {
        try await outcome.value(timeout: timeout) { ACMEValidator.SocketFailure(description: "no answer over TLS within \(timeout) s") }
    }
}
