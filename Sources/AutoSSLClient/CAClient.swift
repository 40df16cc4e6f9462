import AsyncHTTPClient
import AutoSSLCore
import AutoSSLWire
import Crypto
import Foundation
import NIOCore
import NIOFoundationCompat
import NIOPosix
import NIOSSL
import X509

/// Talks to an auto-ssl (or step-ca) CA. Trust starts from a fingerprint: the root is fetched once
/// without verification, its SHA-256 compared with the pin, and every later request verifies the
/// CA's TLS chain against that root only.
public final class CAClient: Sendable {
    public let baseURL: String
    public let root: Certificate
    public let rootFingerprint: String
    /// How patiently connections are made (see `CAConnectPolicy`).
    let policy: CAConnectPolicy
    private let http: HTTPClient

    /// The longest wait for one request's answer (connecting included).
    public static let timeout = TimeAmount.seconds(15)

    /// Downloads the root (first `/root/{fingerprint}`, then `/roots`) and checks it against `fingerprint`.
    public static func connect(url: String, fingerprint: String) async throws -> CAClient {
        let pinned = try Fingerprint.normalise(fingerprint)
        return try await CAFailover.run(try CAEndpoints([url])) { base, policy in
            try await connect(base: base, fingerprint: pinned, policy: policy)
        }.value
    }

    /// One URL's fingerprint bootstrap (`base` normalised, `fingerprint` normalised).
    static func connect(base: String, fingerprint: String, policy: CAConnectPolicy) async throws -> CAClient {
        let root = try await bootstrapRoot(base: base, fingerprint: fingerprint, policy: policy)
        try await checkHostName(base: base, root: root, policy: policy)
        return try CAClient(baseURL: base, root: root, policy: policy)
    }

    /// Tries the CA's URLs in turn (see `CAFailover`): at each, the fingerprint bootstrap, then
    /// `body`; the client is always shut down. The answer says which URL answered.
    public static func withConnection<T>(
        to endpoints: CAEndpoints, fingerprint: String, _ body: (CAClient) async throws -> T
    ) async throws -> CAAnswer<T> {
        let pinned = try Fingerprint.normalise(fingerprint)
        return try await CAFailover.run(endpoints) { base, policy in
            try await using(try await connect(base: base, fingerprint: pinned, policy: policy), body)
        }
    }

    /// Tries the URLs of a CA whose root is already pinned (after enrollment) in turn, running
    /// `body` with the first that answers; the client is always shut down.
    public static func withConnection<T>(
        to endpoints: CAEndpoints, pinnedRoot: Certificate, _ body: (CAClient) async throws -> T
    ) async throws -> CAAnswer<T> {
        try await CAFailover.run(endpoints) { base, policy in
            try await checkHostName(base: base, root: pinnedRoot, policy: policy)
            return try await using(try CAClient(baseURL: base, root: pinnedRoot, policy: policy), body)
        }
    }

    /// Runs `body` and always shuts the client down.
    static func using<T>(_ client: CAClient, _ body: (CAClient) async throws -> T) async throws -> T {
        do {
            let result = try await body(client)
            await client.shutdown()
            return result
        } catch {
            await client.shutdown()
            throw error
        }
    }

    init(baseURL: String, root: Certificate, policy: CAConnectPolicy = .patient) throws {
        self.baseURL = baseURL
        self.root = root
        self.rootFingerprint = try Fingerprint.sha256(of: root)
        self.policy = policy
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.minimumTLSVersion = .tlsv12
        tls.trustRoots = .certificates([try NIOSSLCertificate(bytes: try root.derBytes(), format: .der)])
        tls.certificateVerification = .fullVerification
        http = Self.httpClient(tls: tls, policy: policy)
    }

    /// An HTTP client that connects as `policy` says (connect timeout, retrying a failed connect or not).
    static func httpClient(tls: TLSConfiguration, policy: CAConnectPolicy) -> HTTPClient {
        var configuration = HTTPClient.Configuration(tlsConfiguration: tls)
        configuration.timeout.connect = policy.connectTimeout
        configuration.connectionPool.retryConnectionEstablishment = policy.retriesConnecting
        return HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
    }

    public func shutdown() async {
        try? await http.shutdown()
    }

    static func normalise(url: String) throws -> String {
        var text = url.trimmingCharacters(in: .whitespaces)
        while text.hasSuffix("/") { text.removeLast() }
        guard let parsed = URL(string: text), parsed.scheme == "https", parsed.host != nil else {
            throw AutoSSLError.invalidArgument(
                "\"\(url)\" is not an https URL of a CA", hint: "use the form https://ca.internal:9000")
        }
        return text
    }

    static func bootstrapRoot(base: String, fingerprint: String, policy: CAConnectPolicy = .patient) async throws -> Certificate {
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.certificateVerification = .none  // nothing is trusted yet: the fingerprint check below is the trust
        let client = httpClient(tls: tls, policy: policy)
        do {
            var candidates: [Certificate] = []
            let (status, body) = try await get(client, base + "/root/" + fingerprint)
            if status == 200, let pem = (try? JSONSerialization.jsonObject(with: body) as? [String: Any])?["ca"] as? String {
                candidates.append(try Certificate(pemEncoded: pem))
            } else {
                let (rootsStatus, rootsBody) = try await get(client, base + "/roots")
                if unavailableStatuses.contains(rootsStatus) {
                    throw unavailable(url: base, status: rootsStatus, body: rootsBody, action: "send its roots")
                }
                guard rootsStatus == 200,
                      let crts = (try? JSONSerialization.jsonObject(with: rootsBody) as? [String: Any])?["crts"] as? [String] else {
                    // A path after host:port that the server does not know is a wrong URL, not a
                    // CA that is down: said so (exit 2), with the URL without it.
                    if rootsStatus == 404, let parsed = URLComponents(string: base), !parsed.path.isEmpty, parsed.path != "/" {
                        var root = parsed
                        root.path = ""
                        throw AutoSSLError.invalidArgument(
                            "\(base) did not answer like a CA (HTTP 404 for \(parsed.path)/roots)",
                            hint: "an auto-ssl CA answers at the root of its URL: try \(root.string ?? base)")
                    }
                    throw AutoSSLError(.network, "\(base) did not answer like a CA (HTTP \(rootsStatus) for /roots)")
                }
                candidates = try crts.map { try Certificate(pemEncoded: $0) }
            }
            try await client.shutdown()
            for candidate in candidates where try Fingerprint.sha256(of: candidate) == fingerprint {
                return candidate
            }
            let found = try candidates.map { try Fingerprint.sha256(of: $0) }
            throw AutoSSLError(
                .trustFailure,
                "the CA at \(base) is not the one you expect: its root fingerprint is \(found.joined(separator: ", ")), expected \(fingerprint)",
                hint: "check the fingerprint with `auto-ssl ca status` on the CA host; nothing was changed here")
        } catch {
            try? await client.shutdown()
            throw map(error, url: base)
        }
    }

    static func get(_ client: HTTPClient, _ url: String) async throws -> (Int, Data) {
        let response = try await client.execute(HTTPClientRequest(url: url), timeout: timeout)
        let body = try await Self.body(of: response, upTo: 1 << 20, from: url)
        return (Int(response.status.code), Data(buffer: body))
    }

    /// A response's body, at most `limit` bytes, complete within `timeout` of its head: the
    /// client's timeout ends when the head arrives, and a server that then sends a byte now and
    /// then would otherwise hold the command for ever.
    static func body(of response: HTTPClientResponse, upTo limit: Int, from url: String) async throws -> ByteBuffer {
        let seconds = timeout.nanoseconds / 1_000_000_000
        guard let body = try await TimeLimit.run(within: .seconds(seconds), { try await response.body.collect(upTo: limit) }) else {
            throw AutoSSLError(
                .network, "\(url) did not finish sending its answer within \(seconds) s",
                hint: "check that the URL is the CA's, and the network between this machine and it")
        }
        return body
    }

    /// A failure as the commands report it. A connection-level failure (see `connectionStage`)
    /// becomes a `CAConnectionFailure`, after which failover tries the next URL; anything else
    /// (a TLS peer that is not the CA, an unknown error) an `AutoSSLError` that stops there.
    static func map(_ error: any Error, url: String) -> any Error {
        if error is AutoSSLError || error is CAConnectionFailure { return error }
        let (described, words) = describe(error, url: url)
        guard let stage = connectionStage(of: error) else { return described }
        return CAConnectionFailure(url: url, stage: stage, words: words, error: described)
    }

    /// The error for one URL, and its words without the URL (for a list of URLs).
    static func describe(_ error: any Error, url: String) -> (error: AutoSSLError, words: String) {
        if let error = error as? AutoSSLError { return (error, error.message) }
        if let words = tlsWords(error) {
            return (AutoSSLError(.trustFailure, "TLS with \(url) failed: \(words)"), "TLS failed: \(words)")
        }
        let target = Self.target(of: url)
        let words = NetworkFailureWords.describe(error, target: target) ?? httpClientWords(error, target: target)
            ?? "no usable answer from \(target)"
        return (
            AutoSSLError(.network, "could not reach the CA at \(url): \(words)", hint: "check the URL, the network and that `auto-ssl ca serve` runs there"),
            words
        )
    }

    /// AsyncHTTPClient's own failures in words (its timeouts, a connection closed under a request).
    static func httpClientWords(_ error: any Error, target: String) -> String? {
        for cause in [error] + NetworkFailureWords.causes(of: error, depth: 3) {
            guard let failure = cause as? HTTPClientError else { continue }
            switch failure {
            case .connectTimeout, .getConnectionFromPoolTimeout: return "no answer from \(target) (timeout while connecting)"
            case .tlsHandshakeTimeout: return "no TLS answer from \(target) (timeout during the handshake)"
            case .remoteConnectionClosed: return "\(target) closed the connection"
            case .readTimeout, .deadlineExceeded: return "no answer from \(target) in time"
            case .uncleanShutdown: return "\(target) closed the connection uncleanly"
            default: continue
            }
        }
        return nil
    }

    /// Whether `error` is a failure of the connection rather than an answer, and how far it got:
    /// nil for everything else. A TLS peer whose certificate does not verify is not a dead peer:
    /// it is a stop, like a fingerprint mismatch.
    static func connectionStage(of error: any Error) -> CAConnectionFailure.Stage? {
        let chain = [error] + NetworkFailureWords.causes(of: error, depth: 3)
        if chain.contains(where: { $0 is NIOSSLError || $0 is BoringSSLError }) {
            if chain.contains(where: { ($0 as? NIOSSLError) == .uncleanShutdown }) { return .interrupted }
            let text = chain.map { "\($0)" }.joined(separator: " ")
            // Something that is not a TLS server listens there: no CA answered.
            if text.contains("WRONG_VERSION_NUMBER") || text.contains("WRONG_SSL_VERSION") { return .notConnected }
            return nil
        }
        for cause in chain {
            if cause is NIOConnectionError || cause is SocketAddressError || cause is SocketAddressError.UnknownHost {
                return .notConnected
            }
            if let failure = cause as? IOError {
                switch failure.errnoCode {
                case ECONNREFUSED, ENETUNREACH, EHOSTUNREACH, EADDRNOTAVAIL, ENETDOWN, EHOSTDOWN: return .notConnected
                case ECONNRESET, ECONNABORTED, EPIPE, ETIMEDOUT: return .interrupted
                default: continue
                }
            }
            if let failure = cause as? ChannelError {
                switch failure {
                case .connectTimeout: return .notConnected
                case .eof, .ioOnClosedChannel, .alreadyClosed, .outputClosed, .inputClosed: return .interrupted
                default: continue
                }
            }
            if let failure = cause as? HTTPClientError {
                switch failure {
                case .connectTimeout, .tlsHandshakeTimeout, .socksHandshakeTimeout, .httpProxyHandshakeTimeout,
                     .getConnectionFromPoolTimeout:
                    return .notConnected
                case .remoteConnectionClosed, .readTimeout, .writeTimeout, .deadlineExceeded, .uncleanShutdown:
                    return .interrupted
                default: continue
                }
            }
        }
        return nil
    }

    /// Answers that say the CA is not there to answer: a proxy without a backend (502, 504) or a
    /// CA that cannot serve the request now (503, e.g. its database is unreachable).
    static let unavailableStatuses: Set<Int> = [502, 503, 504]

    /// An "unavailable" answer as a connection-level failure: failover tries the next URL.
    static func unavailable(url: String, status: Int, body: Data, action: String) -> CAConnectionFailure {
        let error = apiError(status: status, body: body, action: action)
        return CAConnectionFailure(
            url: url, stage: .unavailable, words: "unavailable (HTTP \(status)): \(answerMessage(body))", error: error)
    }

    /// `host:port` of a URL, for messages.
    static func target(of url: String) -> String {
        guard let components = URLComponents(string: url), let host = components.host else { return url }
        return host + ":" + String(components.port ?? 443)
    }

    /// A TLS failure in plain words: what BoringSSL objected to (its reason, without file paths),
    /// nil for anything that is not TLS.
    public static func tlsWords(_ error: any Error) -> String? {
        let causes = [error] + NetworkFailureWords.causes(of: error, depth: 3)
        guard causes.contains(where: { $0 is NIOSSLError || $0 is BoringSSLError }) else { return nil }
        let text = causes.map { "\($0)" }.joined(separator: " ")
        if text.contains("CERTIFICATE_VERIFY_FAILED") {
            return "the server's certificate is not trusted here (it does not chain to the expected root, or it has expired)"
        }
        if text.contains("WRONG_VERSION_NUMBER") || text.contains("WRONG_SSL_VERSION") {
            return "the server does not speak TLS 1.2 or 1.3 there (is it an HTTPS port?)"
        }
        if text.contains("uncleanShutdown") {
            return "the server closed the connection during the TLS handshake"
        }
        // The reason names of BoringSSL's errors (e.g. SSLV3_ALERT_HANDSHAKE_FAILURE), nothing else.
        let reasons = text.split(whereSeparator: { !($0.isUppercase || $0 == "_" || $0.isNumber) })
            .filter { $0.count > 6 && $0.contains("_") }.map(String.init)
        return reasons.isEmpty ? "the TLS handshake failed" : "the TLS handshake failed (" + Array(Set(reasons)).sorted().joined(separator: ", ") + ")"
    }

    // MARK: - The URL's host name against the CA's certificate

    /// Refuses a URL whose host the CA's TLS certificate does not name (exit 6), listing the URLs it
    /// does answer to. NIOSSL alone accepts a DNS host whose resolved address is one of the
    /// certificate's IP names (`localhost` reaching a CA that names only 127.0.0.1); the CA would then
    /// refuse every token, whose audience is the URL, with a puzzling 401. An IP literal needs no
    /// extra look: NIOSSL already compares it with the certificate's IP names.
    static func checkHostName(base: String, root: Certificate, policy: CAConnectPolicy = .patient) async throws {
        guard let components = URLComponents(string: base), let rawHost = components.host else { return }
        let host = bareHost(rawHost)
        guard IPAddress(host) == nil else { return }
        let leaf = try await presentedCertificate(base: base, host: host, port: components.port ?? 443, root: root, policy: policy)
        guard !certificate(leaf, names: host) else { return }
        let names = leaf.subjectNames
        let urls = names.map { url(for: $0, port: components.port) }
        throw AutoSSLError(
            .trustFailure,
            "the CA's certificate does not name \(host), so it does not answer to \(base) (its names: \(names.map(\.description).joined(separator: ", ")))",
            hint: urls.isEmpty ? nil : "use one of the CA's URLs: \(urls.joined(separator: ", "))")
    }

    /// `host` without the brackets of an IPv6 literal.
    static func bareHost(_ host: String) -> String {
        host.hasPrefix("[") && host.hasSuffix("]") ? String(host.dropFirst().dropLast()) : host
    }

    /// Whether `host` (a DNS name or an IP literal) is one of `leaf`'s subject alternative names
    /// (DNS names case-insensitively; a `*.` name matches one leftmost label).
    static func certificate(_ leaf: Certificate, names host: String) -> Bool {
        let bare = bareHost(host)
        if let address = IPAddress(bare) { return leaf.subjectNames.contains(.ip(address)) }
        var wanted = bare.lowercased()
        if wanted.hasSuffix(".") { wanted.removeLast() }
        return leaf.subjectNames.contains { name in
            guard case .dns(let dns) = name else { return false }
            let candidate = dns.lowercased()
            if candidate == wanted { return true }
            guard candidate.hasPrefix("*."), let dot = wanted.firstIndex(of: ".") else { return false }
            return wanted[wanted.index(after: dot)...] == candidate.dropFirst(2) && wanted[..<dot].count > 0
        }
    }

    /// The URL a certificate name stands for, with the port the user gave.
    static func url(for name: SubjectName, port: Int?) -> String {
        var host = name.description
        if host.contains(":") { host = "[\(host)]" }
        return "https://" + host + (port.map { ":\($0)" } ?? "")
    }

    /// The leaf certificate the CA presents at `host:port`, its chain verified against `root` (the
    /// host name is checked by the caller, in words).
    static func presentedCertificate(
        base: String, host: String, port: Int, root: Certificate, policy: CAConnectPolicy = .patient
    ) async throws -> Certificate {
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.minimumTLSVersion = .tlsv12
        tls.trustRoots = .certificates([try NIOSSLCertificate(bytes: try root.derBytes(), format: .der)])
        tls.certificateVerification = .noHostnameVerification
        let context = try NIOSSLContext(configuration: tls)
        // Connecting and the handshake share one limit: the policy's connect timeout when it has one.
        let limit = policy.connectTimeout ?? timeout
        let handshakeDeadline = NIODeadline.now() + limit
        let bootstrap = ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connectTimeout(limit)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(try NIOSSLClientHandler(context: context, serverHostname: host))
                }
            }
        do {
            let channel = try await bootstrap.connect(host: host, port: port).get()
            defer { channel.close(promise: nil) }
            // A write completes only once the handshake did (NIOSSL holds it until then); a CA that
            // never finishes the handshake is cut off at the deadline, failing the write.
            let deadline = channel.eventLoop.scheduleTask(deadline: handshakeDeadline) { channel.close(promise: nil) }
            defer { deadline.cancel() }
            // The certificate is read on the event loop as the write completes, before the CA's
            // answer (or its closing the connection) can tear the pipeline down.
            let request = "GET /health HTTP/1.1\r\nHost: \(host)\r\n\r\n"
            let peer = try await channel.writeAndFlush(ByteBuffer(string: request)).flatMapThrowing {
                try channel.pipeline.syncOperations.nioSSL_peerCertificate()
            }.get()
            guard let der = try peer?.toDERBytes() else {
                throw AutoSSLError(.trustFailure, "the CA at \(base) presented no certificate")
            }
            return try Certificate(derEncoded: der)
        } catch {
            throw map(error, url: base)
        }
    }

    // MARK: - API

    public struct ProvisionerInfo: Sendable {
        public var name: String
        public var type: String
        public var kid: String?
        public var encryptedKey: String?
    }

    public func provisioners() async throws -> [ProvisionerInfo] {
        let (status, body) = try await request("GET", "/provisioners")
        if Self.unavailableStatuses.contains(status) {
            throw Self.unavailable(url: baseURL, status: status, body: body, action: "list its provisioners")
        }
        guard status == 200, let object = try? JSONSerialization.jsonObject(with: body) as? [String: Any],
              let list = object["provisioners"] as? [[String: Any]] else {
            throw AutoSSLError(.network, "unexpected answer from \(baseURL)/provisioners (HTTP \(status))")
        }
        return list.map { entry in
            ProvisionerInfo(
                name: entry["name"] as? String ?? "", type: entry["type"] as? String ?? "",
                kid: (entry["key"] as? [String: Any])?["kid"] as? String, encryptedKey: entry["encryptedKey"] as? String)
        }
    }

    /// Fetches the provisioner's encrypted key and decrypts it locally; the password never leaves this machine.
    public func provisionerKey(name: String, password: String) async throws -> ECJWK {
        guard let info = try await provisioners().first(where: { $0.name == name }) else {
            throw AutoSSLError.invalidArgument("the CA has no provisioner named \"\(name)\"")
        }
        guard info.type == "JWK", let encrypted = info.encryptedKey else {
            throw AutoSSLError.invalidArgument("provisioner \"\(name)\" is not a password (JWK) provisioner")
        }
        let plaintext: Data
        do {
            plaintext = try PasswordJWE.decrypt(encrypted, password: password)
        } catch {
            throw AutoSSLError(.trustFailure, "wrong provisioner password for \"\(name)\"", hint: "check the password and try again")
        }
        var jwk = try JSONDecoder().decode(ECJWK.self, from: plaintext)
        jwk.kid = jwk.kid ?? info.kid
        return jwk
    }

    /// A one-time token for `/sign`, valid for 5 minutes.
    public func signToken(provisioner: String, key: ECJWK, names: [SubjectName], now: Date = Date()) throws -> String {
        let claims = ProvisionerTokenClaims.oneTime(
            provisioner: provisioner, audience: [baseURL + "/1.0/sign"], names: names.map(\.description), lifetime: 300,
            rootFingerprint: rootFingerprint, now: now)
        return try JWT.sign(payload: claims, kid: key.kid ?? key.thumbprint, key: try key.privateKey())
    }

    public struct SignedChain: Sendable {
        public var leaf: Certificate
        public var chain: [Certificate]
        public var pemChain: String
    }

    public func sign(csrPEM: String, token: String, notAfter: String? = nil, notBefore: String? = nil) async throws -> SignedChain {
        // Read first: the answer is checked against its key, and a CSR that cannot be read must
        // not cost a one-time token and an issued certificate.
        guard let csrKey = try? CertificateSigningRequest(pemEncoded: csrPEM).publicKey else {
            throw AutoSSLError.invalidArgument("the certificate request to sign is not a readable PEM CSR")
        }
        var body: [String: Any] = ["csr": csrPEM, "ott": token]
        if let notAfter { body["notAfter"] = notAfter }
        if let notBefore { body["notBefore"] = notBefore }
        let (status, data) = try await request("POST", "/1.0/sign", body: try JSONSerialization.data(withJSONObject: body))
        guard status == 201 else { throw refusal(status: status, body: data, action: "sign the certificate") }
        return try parseChain(data, for: csrKey)
    }

    /// The chain must lead to the pinned root (defence in depth: the TLS channel already did).
    func verify(chain: [Certificate]) throws {
        guard chain.count >= 2 else { throw unverifiedChain("the CA returned an incomplete chain") }
        for (child, parent) in zip(chain, chain.dropFirst() + [root]) {
            guard child.issuer == parent.subject, parent.publicKey.isValidSignature(child.signature, for: child) else {
                throw unverifiedChain("the returned certificate chain does not verify against the pinned root")
            }
        }
    }

    /// The refusal of an answer that does not lead to the pinned root (exit 6). Its hint is final:
    /// the CA did not refuse anything, so a renewal's "enroll again" with the same fingerprint
    /// would fail the same way.
    func unverifiedChain(_ message: String) -> AutoSSLError {
        AutoSSLError(
            .trustFailure, message + "; nothing was written",
            hint: """
                the answer from \(baseURL) does not lead to the root this host trusts (fingerprint \(rootFingerprint)). \
                Check that the CA URL is the real CA's and not something in between (such as a proxy). If that CA \
                was set up again with a new root, enroll again with the fingerprint `auto-ssl ca status` shows there
                """,
            hintIsFinal: true)
    }

    static func apiError(status: Int, body: Data, action: String) -> AutoSSLError {
        let kind: FailureKind = status == 401 || status == 403 ? .trustFailure : (status >= 500 ? .network : .general)
        return AutoSSLError(kind, "the CA refused to \(action) (HTTP \(status)): \(answerMessage(body))")
    }

    /// The `message` of an API error body (else the body's start), at most 300 characters, control
    /// characters replaced: it comes from the network.
    static func answerMessage(_ body: Data) -> String {
        let message = (try? JSONSerialization.jsonObject(with: body) as? [String: Any])?["message"] as? String
            ?? String(decoding: body.prefix(300), as: UTF8.self)
        return String(String.UnicodeScalarView(message.unicodeScalars.prefix(300).map {
            $0.properties.generalCategory == .control ? "?" : $0
        }))
    }

    /// A non-success answer: "unavailable" ones (502, 503, 504) move failover on, any other is the
    /// CA's refusal and stops there.
    func refusal(status: Int, body: Data, action: String) -> any Error {
        if Self.unavailableStatuses.contains(status) {
            return Self.unavailable(url: baseURL, status: status, body: body, action: action)
        }
        return Self.apiError(status: status, body: body, action: action)
    }

    func request(_ method: String, _ path: String, body: Data? = nil, headers: [String: String] = [:]) async throws -> (Int, Data) {
        var request = HTTPClientRequest(url: baseURL + path)
        request.method = .init(rawValue: method)
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        if let body {
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(data: body))
        }
        do {
            let response = try await http.execute(request, timeout: Self.timeout)
            let data = try await Self.body(of: response, upTo: 4 << 20, from: baseURL + path)
            return (Int(response.status.code), Data(buffer: data))
        } catch {
            throw Self.map(error, url: baseURL)
        }
    }
}

extension CAClient {
    /// Whether a CA answers `/health` at `url` over TLS that verifies against `root`.
    public static func isHealthy(url: String, root: Certificate) async -> Bool {
        guard let client = try? CAClient(baseURL: try normalise(url: url), root: root) else { return false }
        defer { Task { await client.shutdown() } }
        guard let (status, body) = try? await client.request("GET", "/health") else { return false }
        return status == 200 && String(decoding: body, as: UTF8.self).contains("\"ok\"")
    }
}

// MARK: - Renewal and revocation

extension CAClient {
    /// How a holder authenticates with its certificate.
    public enum HolderAuthentication: String, Sendable, CaseIterable {
        /// Mutual TLS with the certificate on the connection.
        case mtls
        /// A bearer token signed by the certificate's key with the chain in `x5c`.
        case token
    }

    /// A short-lived token signed by the certificate's key, for `/renew` or `/revoke`.
    public func certificateToken(chain: [Certificate], key: SigningKey, path: String, now: Date = Date()) throws -> String {
        let issued = Int64(now.timeIntervalSince1970)
        let jti = Hex.encode(SecureRandom.bytes(16))
        let subject = chain[0].commonName ?? chain[0].subjectNames.first?.description ?? ""
        let claims = CertificateTokenClaims(
            aud: [baseURL + "/1.0" + path], sub: subject, nbf: issued, iat: issued, exp: issued + 300, jti: jti)
        return try X5CToken.sign(payload: claims, chain: chain, key: key)
    }

    /// An HTTP client that presents `chain`/`key` for mutual TLS, trusting only the pinned root.
    func mutualTLSClient(chain: [Certificate], key: SigningKey) throws -> HTTPClient {
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.minimumTLSVersion = .tlsv12
        tls.trustRoots = .certificates([try NIOSSLCertificate(bytes: try root.derBytes(), format: .der)])
        tls.certificateVerification = .fullVerification
        tls.certificateChain = try chain.map { .certificate(try NIOSSLCertificate(bytes: try $0.derBytes(), format: .der)) }
        tls.privateKey = .privateKey(try NIOSSLPrivateKey(bytes: key.pkcs8DERRepresentation, format: .der))
        return Self.httpClient(tls: tls, policy: policy)
    }

    func holderRequest(
        _ path: String, body: Data?, chain: [Certificate], key: SigningKey, method: HolderAuthentication
    ) async throws -> (Int, Data) {
        switch method {
        case .token:
            let token = try certificateToken(chain: chain, key: key, path: path)
            return try await request("POST", "/1.0" + path, body: body ?? Data(), headers: ["Authorization": "Bearer " + token])
        case .mtls:
            let client = try mutualTLSClient(chain: chain, key: key)
            var request = HTTPClientRequest(url: baseURL + "/1.0" + path)
            request.method = .POST
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(data: body ?? Data()))
            do {
                let response = try await client.execute(request, timeout: Self.timeout)
                let data = try await Self.body(of: response, upTo: 4 << 20, from: baseURL + "/1.0" + path)
                try? await client.shutdown()
                return (Int(response.status.code), Data(buffer: data))
            } catch {
                try? await client.shutdown()
                throw Self.map(error, url: baseURL)
            }
        }
    }

    /// Renews `chain[0]`, proving possession with `key`; the key stays the same.
    public func renew(chain: [Certificate], key: SigningKey, method: HolderAuthentication) async throws -> SignedChain {
        let (status, data) = try await holderRequest("/renew", body: nil, chain: chain, key: key, method: method)
        guard status == 201 else { throw refusal(status: status, body: data, action: "renew the certificate") }
        return try parseChain(data, for: key.publicKey)
    }

    /// Revokes `chain[0]`, authenticated by the certificate itself.
    /// What the CA said a revocation did (absent from step-ca's answers: nothing more than "ok").
    public struct RevokeAnswer: Sendable, Equatable {
        /// Revoked before (its record is unchanged).
        public var alreadyRevoked: Bool
        /// Revoked with it for having the same key (hex serials).
        public var alsoRevoked: [String]
        /// The key was cut off by this revocation: no certificate is issued or renewed with it again.
        public var keyRevoked: Bool = false

        /// Nothing changed at the CA.
        public var changedNothing: Bool { alreadyRevoked && alsoRevoked.isEmpty && !keyRevoked }

        public init(alreadyRevoked: Bool, alsoRevoked: [String], keyRevoked: Bool = false) {
            self.alreadyRevoked = alreadyRevoked
            self.alsoRevoked = alsoRevoked
            self.keyRevoked = keyRevoked
        }
    }

    /// Revokes the holder's certificate.
    @discardableResult
    public func revoke(chain: [Certificate], key: SigningKey, method: HolderAuthentication, reasonCode: Int, reason: String) async throws -> RevokeAnswer {
        let body = try JSONSerialization.data(withJSONObject: [
            "serial": SerialText.decimal(fromHex: chain[0].serialNumber.hexString), "reasonCode": reasonCode, "reason": reason,
            "passive": true,
        ] as [String: Any])
        let (status, data) = try await holderRequest("/revoke", body: body, chain: chain, key: key, method: method)
        guard status == 200 else { throw refusal(status: status, body: data, action: "revoke the certificate") }
        return Self.revokeAnswer(data)
    }

    /// The `/revoke` answer's `already_revoked` (nothing changed) or `previously_revoked` (revoked
    /// before, its key cut off now), `key_revoked` and `also_revoked`, when there.
    static func revokeAnswer(_ data: Data) -> RevokeAnswer {
        let object = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any]
        let also = (object?["also_revoked"] as? [String] ?? []).filter { !$0.isEmpty && $0.count <= 64 && $0.allSatisfy(\.isHexDigit) }
        return RevokeAnswer(
            alreadyRevoked: object?["already_revoked"] as? Bool == true || object?["previously_revoked"] as? Bool == true,
            alsoRevoked: Array(also.prefix(1_000)),
            keyRevoked: object?["key_revoked"] as? Bool == true)
    }

    /// Revokes any serial with a provisioner token (`sub` = the serial).
    @discardableResult
    public func revoke(serialDecimal: String, provisioner: String, key: ECJWK, reasonCode: Int, reason: String, now: Date = Date()) async throws -> RevokeAnswer {
        let issued = Int64(now.timeIntervalSince1970)
        let claims = ProvisionerTokenClaims(
            iss: provisioner, aud: [baseURL + "/1.0/revoke"], sub: serialDecimal, sans: [], nbf: issued, iat: issued,
            exp: issued + 300, jti: Hex.encode(SecureRandom.bytes(16)), sha: rootFingerprint)
        let token = try JWT.sign(payload: claims, kid: key.kid ?? key.thumbprint, key: try key.privateKey())
        let body = try JSONSerialization.data(withJSONObject: [
            "serial": serialDecimal, "reasonCode": reasonCode, "reason": reason, "passive": true, "ott": token,
        ] as [String: Any])
        let (status, data) = try await request("POST", "/1.0/revoke", body: body)
        guard status == 200 else { throw refusal(status: status, body: data, action: "revoke the certificate") }
        return Self.revokeAnswer(data)
    }

    /// The current CRL (DER).
    public func crl() async throws -> [UInt8] {
        let (status, data) = try await request("GET", "/1.0/crl")
        guard status == 200 else { throw refusal(status: status, body: data, action: "send its CRL") }
        return Array(data)
    }

    /// The chain of a `/sign` or `/renew` answer: it must lead to the pinned root and be for `key`
    /// (the CSR's, the holder's), or the caller would write a certificate and key that do not go
    /// together (and a web server reloaded with them fails).
    func parseChain(_ data: Data, for key: Certificate.PublicKey) throws -> SignedChain {
        guard let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
              let chainPEMs = object["certChain"] as? [String], !chainPEMs.isEmpty else {
            throw AutoSSLError(.network, "the CA's answer has no certificate chain")
        }
        let chain = try chainPEMs.map { try Certificate(pemEncoded: $0) }
        try verify(chain: chain)
        guard chain[0].publicKey == key else { throw Self.certificateForAnotherKey(url: baseURL) }
        return SignedChain(leaf: chain[0], chain: chain, pemChain: try chain.map { try $0.pemString() }.joined())
    }

    /// The refusal of an answer whose certificate is for another key than the one asked for (exit
    /// 6). Its hint is final: the CA did not refuse, so its callers' advice for a refusal ("enroll
    /// again", for `server renew` and `server enroll --adopt`) would be wrong.
    static func certificateForAnotherKey(url: String) -> AutoSSLError {
        AutoSSLError(
            .trustFailure, "the CA returned a certificate for a different key; nothing was written",
            hint: """
                the CA at \(url), or something between it and this host (such as a proxy), answered with a \
                certificate for another key than the one asked for; no certificate or key file was changed. \
                Check that the CA URL (--ca-url, or for a renewal those recorded at enrollment, which \
                `auto-ssl server set-ca-url` changes) is the real CA's, look for this request in the CA's audit log \
                (audit.log in its data directory), and try again
                """,
            hintIsFinal: true)
    }
}

extension CAClient {
    /// Whether `url` answers over TLS verified with the operating system's trust store alone.
    /// `failure` says why not: trust (the certificate is not trusted), network (no answer), or
    /// general (an answer other than 200, or not an https URL).
    public static func verifiesWithSystemTrust(url: String) async -> (ok: Bool, detail: String, failure: FailureKind?) {
        guard let base = try? normalise(url: url) else { return (false, "not an https URL", .invalidArguments) }
        let http = HTTPClient(eventLoopGroupProvider: .singleton, configuration: .init(tlsConfiguration: .makeClientConfiguration()))
        defer { Task { try? await http.shutdown() } }
        do {
            let response = try await http.execute(HTTPClientRequest(url: base + "/health"), timeout: timeout)
            _ = try await body(of: response, upTo: 1 << 16, from: base + "/health")
            return (response.status.code == 200, "HTTP \(response.status.code)", response.status.code == 200 ? nil : .general)
        } catch {
            if tlsWords(error) != nil {
                return (false, "the CA's certificate is not trusted by this machine's store (`auto-ssl client trust` installs its root)", .trustFailure)
            }
            return (false, NetworkFailureWords.describe(error, target: target(of: base)) ?? "no usable answer from \(target(of: base))", .network)
        }
    }
}
