import AsyncHTTPClient
import AutoSSLCore
import Crypto
import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import SwiftASN1
import Synchronization

/// Load generator for `auto-ssl-bench acme`: concurrent ACME clients (RFC 8555), each with its own
/// account (a P-256 key), issuing certificates one after another for a fixed time. Each issuance
/// is a whole one: new order, the authorization read, the http-01 challenge answered by
/// `HTTP01Responder` and validated by the CA for real, the authorization and the order polled
/// every 50 ms, finalize with a fresh P-256 CSR, the chain downloaded. Every request is a JWS the
/// CA verifies, with a nonce it issued.
public struct ACMEBenchmark: Sendable {
    public struct Result: Sendable, Codable {
        public var clients: Int
        public var issued: Int
        public var failed: Int
        public var seconds: Double
        public var certificatesPerSecond: Double
        /// Requests sent (every POST, nonce fetch and directory read), all clients together.
        public var requests: Int
        public var p50Milliseconds: Double
        public var p99Milliseconds: Double
        public var firstError: String?

        enum CodingKeys: String, CodingKey {
            case clients, issued, failed, seconds, requests
            case certificatesPerSecond = "certificates_per_second"
            case p50Milliseconds = "issuance_p50_ms"
            case p99Milliseconds = "issuance_p99_ms"
            case firstError = "first_error"
        }
    }

    public let directoryURL: String
    public let rootDER: [UInt8]
    /// The IP address every order asks for (the responder must listen on it).
    public let identifier: String
    public let pollInterval: Duration

    public init(directoryURL: String, rootDER: [UInt8], identifier: String = "127.0.0.1", pollInterval: Duration = .milliseconds(50)) {
        self.directoryURL = directoryURL
        self.rootDER = rootDER
        self.identifier = identifier
        self.pollInterval = pollInterval
    }

    /// Runs `clients` clients until `seconds` have passed (an issuance under way then is finished
    /// and counted). Each client's account is made before the clock starts.
    public func run(clients: Int, seconds: Double, responder: HTTP01Responder) async throws -> Result {
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.trustRoots = .certificates([try NIOSSLCertificate(bytes: rootDER, format: .der)])
        let http = HTTPClient(eventLoopGroup: MultiThreadedEventLoopGroup.singleton, configuration: .init(tlsConfiguration: tls))
        do {
            var sessions: [ACMESession] = []
            for _ in 0..<clients {
                var session = try await ACMESession(http: http, directoryURL: directoryURL)
                try await session.createAccount()
                sessions.append(session)
            }
            let start = ContinuousClock.now
            let deadline = start + .milliseconds(Int64(seconds * 1_000))
            let outcomes = await withTaskGroup(of: (latencies: [Double], failed: Int, requests: Int, error: String?).self) { group in
                for session in sessions {
                    group.addTask {
                        var session = session
                        var latencies: [Double] = []
                        var failed = 0
                        var firstError: String?
                        while ContinuousClock.now < deadline {
                            let began = ContinuousClock.now
                            do {
                                try await session.issue(identifier: identifier, responder: responder, pollInterval: pollInterval)
                                let elapsed = ContinuousClock.now - began
                                latencies.append(Double(elapsed.components.seconds) * 1_000 + Double(elapsed.components.attoseconds) / 1e15)
                            } catch {
                                failed += 1
                                if firstError == nil { firstError = "\(error)" }
                            }
                        }
                        return (latencies, failed, session.requests, firstError)
                    }
                }
                var all: [(latencies: [Double], failed: Int, requests: Int, error: String?)] = []
                for await outcome in group { all.append(outcome) }
                return all
            }
            let elapsed = ContinuousClock.now - start
            let wall = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
            let latencies = outcomes.flatMap(\.latencies).sorted()
            func percentile(_ p: Double) -> Double {
                latencies.isEmpty ? 0 : latencies[min(latencies.count - 1, Int(Double(latencies.count) * p))]
            }
            try await http.shutdown()
            return Result(
                clients: clients, issued: latencies.count, failed: outcomes.map(\.failed).reduce(0, +), seconds: wall,
                certificatesPerSecond: Double(latencies.count) / wall, requests: outcomes.map(\.requests).reduce(0, +),
                p50Milliseconds: percentile(0.5), p99Milliseconds: percentile(0.99), firstError: outcomes.lazy.compactMap(\.error).first)
        } catch {
            try? await http.shutdown()
            throw error
        }
    }
}

/// What went wrong in one issuance, for the benchmark's report.
struct ACMEBenchError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// One ACME client: its account key, its account URL once made, and the next nonce.
struct ACMESession: Sendable {
    struct Directory: Decodable {
        var newNonce: String
        var newAccount: String
        var newOrder: String
    }

    struct Order: Decodable {
        var status: String
        var authorizations: [String]
        var finalize: String
        var certificate: String?
    }

    struct Authorization: Decodable {
        struct Challenge: Decodable {
            var type: String
            var url: String
            var token: String?
        }
        var status: String
        var challenges: [Challenge]
    }

    struct Reply {
        var status: UInt
        var location: String?
        var body: Data
    }

    /// The most a reply may hold (a chain is a few KiB).
    static let maximumReplyBytes = 1 << 20
    static let requestTimeout = TimeAmount.seconds(30)
    /// How long a poll may wait for an authorization or an order to leave pending/processing.
    static let pollLimit = Duration.seconds(30)

    let http: HTTPClient
    let directory: Directory
    let key = P256.Signing.PrivateKey()
    let jwk: String
    /// RFC 7638 thumbprint of `jwk`, for key authorizations.
    let thumbprint: String
    var accountURL: String?
    var nonce: String?
    private(set) var requests = 0

    init(http: HTTPClient, directoryURL: String) async throws {
        self.http = http
        let raw = Array(key.publicKey.rawRepresentation)  // x || y
        let x = Base64URL.encode(Array(raw[0..<32]))
        let y = Base64URL.encode(Array(raw[32..<64]))
        // Members in lexicographic order: this is also the thumbprint's input (RFC 7638 §3).
        jwk = #"{"crv":"P-256","kty":"EC","x":"\#(x)","y":"\#(y)"}"#
        thumbprint = Base64URL.encode(Array(SHA256.hash(data: Array(jwk.utf8))))
        var request = HTTPClientRequest(url: directoryURL)
        request.method = .GET
        let response = try await http.execute(request, timeout: Self.requestTimeout)
        let body = try await response.body.collect(upTo: Self.maximumReplyBytes)
        guard response.status == .ok else { throw ACMEBenchError("the directory \(directoryURL) answered \(response.status)") }
        directory = try JSONDecoder().decode(Directory.self, from: Data(buffer: body))
        requests = 1
    }

    mutating func createAccount() async throws {
        let reply = try await post(directory.newAccount, payload: #"{"termsOfServiceAgreed":true}"#)
        guard reply.status == 201 || reply.status == 200, let location = reply.location else {
            throw ACMEBenchError("new-account answered \(reply.status): \(String(decoding: reply.body, as: UTF8.self))")
        }
        accountURL = location
    }

    /// One whole issuance for `identifier`.
    mutating func issue(identifier: String, responder: HTTP01Responder, pollInterval: Duration) async throws {
        let created = try await post(directory.newOrder, payload: #"{"identifiers":[{"type":"ip","value":"\#(identifier)"}]}"#)
        guard created.status == 201, let orderURL = created.location else {
            throw ACMEBenchError("new-order answered \(created.status): \(String(decoding: created.body, as: UTF8.self))")
        }
        var order = try JSONDecoder().decode(Order.self, from: created.body)
        for authorizationURL in order.authorizations {
            let authorization = try JSONDecoder().decode(Authorization.self, from: try await postAsGet(authorizationURL).body)
            guard authorization.status != "valid" else { continue }
            guard let challenge = authorization.challenges.first(where: { $0.type == "http-01" }), let token = challenge.token else {
                throw ACMEBenchError("the authorization offers no http-01 challenge")
            }
            responder.answer(token: token, with: token + "." + thumbprint)
            defer { responder.forget(token: token) }
            let answered = try await post(challenge.url, payload: "{}")
            guard answered.status == 200 else {
                throw ACMEBenchError("the challenge answered \(answered.status): \(String(decoding: answered.body, as: UTF8.self))")
            }
            let final = try await poll(authorizationURL, interval: pollInterval) { (try JSONDecoder().decode(Authorization.self, from: $0)).status }
            guard final == "valid" else { throw ACMEBenchError("the authorization is \(final)") }
        }
        let csrKey = try SigningKey.generate(.p256)
        guard let ip = IPAddress(identifier) else { throw ACMEBenchError("\(identifier) is not an IP address") }
        let der = try PEMDocument(pemString: try VerifiedCSR.make(names: [.ip(ip)], key: csrKey)).derBytes
        let finalized = try await post(order.finalize, payload: #"{"csr":"\#(Base64URL.encode(der))"}"#)
        guard finalized.status == 200 else {
            throw ACMEBenchError("finalize answered \(finalized.status): \(String(decoding: finalized.body, as: UTF8.self))")
        }
        var last = Data()
        let status = try await poll(orderURL, interval: pollInterval) { body in
            last = body
            return try JSONDecoder().decode(Order.self, from: body).status
        }
        order = try JSONDecoder().decode(Order.self, from: last)
        guard status == "valid", let certificateURL = order.certificate else { throw ACMEBenchError("the order is \(status)") }
        let chain = try await postAsGet(certificateURL)
        guard chain.status == 200, String(decoding: chain.body, as: UTF8.self).contains("-----BEGIN CERTIFICATE-----") else {
            throw ACMEBenchError("the certificate download answered \(chain.status)")
        }
    }

    /// POST-as-GET `url` every `interval` until `status` reads something other than pending or
    /// processing; returns that.
    mutating func poll(_ url: String, interval: Duration, status: (Data) throws -> String) async throws -> String {
        let limit = ContinuousClock.now + Self.pollLimit
        while true {
            let reply = try await postAsGet(url)
            guard reply.status == 200 else { throw ACMEBenchError("\(url) answered \(reply.status)") }
            let current = try status(reply.body)
            if current != "pending" && current != "processing" { return current }
            guard ContinuousClock.now < limit else { throw ACMEBenchError("\(url) still \(current) after \(Self.pollLimit)") }
            try await Task.sleep(for: interval)
        }
    }

    mutating func postAsGet(_ url: String) async throws -> Reply {
        try await post(url, payload: nil)
    }

    /// A JWS POST (RFC 8555 §6.2): `jwk` until the account exists, then `kid`. A badNonce answer
    /// is retried once with the nonce it carries, as clients do.
    mutating func post(_ url: String, payload: String?) async throws -> Reply {
        var reply = try await send(url, payload: payload)
        if reply.status == 400, String(decoding: reply.body, as: UTF8.self).contains("badNonce") {
            reply = try await send(url, payload: payload)
        }
        return reply
    }

    private mutating func send(_ url: String, payload: String?) async throws -> Reply {
        let nonce = try await takeNonce()
        let identity = accountURL.map { #""kid":"\#($0)""# } ?? #""jwk":\#(jwk)"#
        let protected = Base64URL.encode(Array(#"{"alg":"ES256",\#(identity),"nonce":"\#(nonce)","url":"\#(url)"}"#.utf8))
        let encodedPayload = payload.map { Base64URL.encode(Array($0.utf8)) } ?? ""
        let signature = try key.signature(for: Array((protected + "." + encodedPayload).utf8))
        let body = #"{"protected":"\#(protected)","payload":"\#(encodedPayload)","signature":"\#(Base64URL.encode(Array(signature.rawRepresentation)))"}"#
        var request = HTTPClientRequest(url: url)
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/jose+json")
        request.body = .bytes(ByteBuffer(string: body))
        requests += 1
        let response = try await http.execute(request, timeout: Self.requestTimeout)
        let collected = try await response.body.collect(upTo: Self.maximumReplyBytes)
        self.nonce = response.headers.first(name: "Replay-Nonce")
        return Reply(status: response.status.code, location: response.headers.first(name: "Location"), body: Data(buffer: collected))
    }

    private mutating func takeNonce() async throws -> String {
        if let nonce {
            self.nonce = nil
            return nonce
        }
        var request = HTTPClientRequest(url: directory.newNonce)
        request.method = .HEAD
        requests += 1
        let response = try await http.execute(request, timeout: Self.requestTimeout)
        _ = try await response.body.collect(upTo: Self.maximumReplyBytes)
        guard let nonce = response.headers.first(name: "Replay-Nonce") else { throw ACMEBenchError("new-nonce gave no Replay-Nonce") }
        return nonce
    }
}

/// The http-01 responder (RFC 8555 §8.3): answers `GET /.well-known/acme-challenge/TOKEN` with the
/// key authorization a client registered, 404 for anything else.
public final class HTTP01Responder: Sendable {
    private let answers: Answers
    private let channel: any Channel
    public var port: Int { channel.localAddress?.port ?? 0 }

    private init(answers: Answers, channel: any Channel) {
        self.answers = answers
        self.channel = channel
    }

    public static func start(host: String = "127.0.0.1", port: Int) async throws -> HTTP01Responder {
        let answers = Answers()
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.pipeline.configureHTTPServerPipeline().flatMap {
                    channel.pipeline.addHandler(Handler(answers: answers))
                }
            }
            .bind(host: host, port: port).get()
        return HTTP01Responder(answers: answers, channel: channel)
    }

    func answer(token: String, with keyAuthorization: String) {
        answers.table.withLock { $0[token] = keyAuthorization }
    }

    func forget(token: String) {
        _ = answers.table.withLock { $0.removeValue(forKey: token) }
    }

    public func close() async {
        try? await channel.close()
    }

    /// Token → key authorization, shared by the responder and its connections' handlers.
    final class Answers: Sendable {
        let table = Mutex<[String: String]>([:])

        func keyAuthorization(path: String) -> String? {
            let prefix = "/.well-known/acme-challenge/"
            guard path.hasPrefix(prefix) else { return nil }
            let token = String(path.dropFirst(prefix.count))
            return table.withLock { $0[token] }
        }
    }

    final class Handler: ChannelInboundHandler, Sendable {
        typealias InboundIn = HTTPServerRequestPart
        typealias OutboundOut = HTTPServerResponsePart
        let answers: Answers

        init(answers: Answers) {
            self.answers = answers
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            guard case .head(let head) = unwrapInboundIn(data) else { return }
            let answer = answers.keyAuthorization(path: head.uri)
            let body = ByteBuffer(string: answer ?? "")
            var headers = HTTPHeaders()
            headers.add(name: "Content-Length", value: String(body.readableBytes))
            headers.add(name: "Content-Type", value: "application/octet-stream")
            let response = HTTPResponseHead(version: head.version, status: answer == nil ? .notFound : .ok, headers: headers)
            context.write(wrapOutboundOut(.head(response)), promise: nil)
            context.write(wrapOutboundOut(.body(.byteBuffer(body))), promise: nil)
            context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        }
    }
}
