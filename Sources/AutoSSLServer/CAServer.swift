import AutoSSLCA
import AutoSSLConfig
import AutoSSLCore
import AutoSSLHost
import AutoSSLMetrics
import AutoSSLStore
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdCore
import HummingbirdTLS
import Logging
import NIOCore
import NIOHTTP1
import NIOSSL
import ServiceLifecycle
import X509

#if canImport(Glibc)
import Glibc
#endif

/// Request context that remembers who is asking, for the audit log and the rate limiter.
public struct CARequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    public let remoteAddress: String?
    /// The connection, for the client certificate presented over mutual TLS.
    public let channel: any Channel

    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        remoteAddress = source.channel.remoteAddress?.ipAddress
        channel = source.channel
    }

    /// The certificate the client presented (already verified by the TLS stack against our CAs), if any.
    func peerCertificate() async -> Certificate? {
        guard let peer = try? await channel.nioSSL_peerCertificate().get(),
              let der = try? peer.toDERBytes() else { return nil }
        return try? Certificate(derEncoded: der)
    }

    /// Bodies are capped at 1 MiB (HTTP 413 beyond).
    public var maxUploadSize: Int { CAServer.maximumBodySize }
}

/// An error with the JSON body step-ca clients expect: {"status": N, "message": "..."}.
struct APIError: HTTPResponseError {
    let status: HTTPResponse.Status
    let message: String
    var headers: HTTPFields = [:]

    /// `{"status": N, "message": "..."}`
    var jsonBody: String { #"{"status":\#(status.code),"message":\#(jsonString(message))}"# }

    func response(from request: Request, context: some RequestContext) throws -> Response {
        var fields = headers
        fields[.contentType] = "application/json"
        return Response(status: status, headers: fields, body: .init(byteBuffer: ByteBuffer(string: jsonBody)))
    }
}

func jsonString(_ text: String) -> String {
    let data = (try? JSONEncoder().encode(text)) ?? Data("\"\"".utf8)
    return String(decoding: data, as: UTF8.self)
}

/// Turns every error into the JSON error shape and keeps internal details out of responses.
struct JSONErrorMiddleware<Context: RequestContext>: RouterMiddleware {
    let logger: Logger

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch {
            throw apiError(for: error, logger: logger)
        }
    }
}

/// The JSON error a client gets for `error`: the authority's and our own messages as they are,
/// internal failures as a generic 500 (details only in the log).
/// Errors that are the client's doing while its request is read: a body that is not valid HTTP/1.1
/// framing (a bad chunk size, say), or a connection closed half-way. Nothing went wrong in the CA,
/// so they are 400s and not logged as internal errors. The text says what was wrong.
func clientFault(_ error: any Error) -> String? {
    if let parserError = error as? HTTPParserError {
        return "the request is not valid HTTP/1.1 (\(parserError))"
    }
    if error is NIOHTTPDecoderError {
        return "the request is not valid HTTP/1.1"
    }
    if let sslError = error as? NIOSSLError, case .uncleanShutdown = sslError {
        return "the connection closed before the request was complete"
    }
    if let channelError = error as? ChannelError {
        switch channelError {
        case .eof, .ioOnClosedChannel, .alreadyClosed, .inputClosed, .outputClosed:
            return "the connection closed before the request was complete"
        default:
            return nil
        }
    }
    return nil
}

func apiError(for error: any Error, logger: Logger) -> APIError {
    if let fault = clientFault(error) {
        logger.debug("request refused: \(fault)")
        return APIError(status: .badRequest, message: fault)
    }
    switch error {
    case let error as APIError:
        return error
    case let error as AuthorityError:
        return APIError(status: error.kind.httpStatus, message: error.message)
    case let error as HTTPError:
        let message: String
        switch error.status {
        case .contentTooLarge: message = "the request body exceeds \(CAServer.maximumBodySize) bytes"
        case .notFound: message = "not found"
        default: message = error.body ?? error.status.reasonPhrase
        }
        return APIError(status: error.status, message: message)
    case let error as AutoSSLError:
        return APIError(status: .badRequest, message: error.message)
    case StoreError.unavailable(let reason):
        return APIError(status: .serviceUnavailable, message: "the CA cannot write its database right now (\(reason)); try again later")
    default:
        logger.error("internal error: \(error)")
        return APIError(status: .internalServerError, message: "internal error; see the CA's log")
    }
}

extension AuthorityError.Kind {
    var httpStatus: HTTPResponse.Status {
        switch self {
        case .badRequest: return .badRequest
        case .unauthorized: return .unauthorized
        case .forbidden, .revokedKey: return .forbidden
        case .notFound: return .notFound
        case .conflict: return .conflict
        case .unavailable: return .serviceUnavailable
        }
    }
}

/// The CA's HTTPS API (step-ca's shapes), on every configured address, with graceful shutdown on
/// SIGTERM/SIGINT and an in-process renewal of its own TLS certificate.
public final class CAServer: Sendable {
    public static let maximumBodySize = SignEndpoint.maximumBodySize

    let authority: Authority
    let identity: ServerIdentity
    /// `/sign` and the gate of every authenticated endpoint, shared with the pipeline handler.
    let signEndpoint: SignEndpoint
    let logger: Logger
    let reloadSettings: @Sendable () throws -> CASettings
    let acme: ACMEService?
    /// Caps and timeouts of the connections the server keeps.
    let connectionLimits: ConnectionLimits
    /// Whether the database answers, for `/health`.
    let databaseHealth: DatabaseHealth
    /// The last backup run, for the metrics (read from where `ca backup` records it).
    let backupObservation: @Sendable () -> BackupObservation?
    /// `/dashboard`, nil when `dashboard: false`.
    let dashboard: DashboardService?

    /// `reloadSettings` reads the configuration again; it runs every few seconds so
    /// `ca provisioner add|remove|password` take effect without a restart. `acmeDatabase` is the
    /// ACME state of the CA's database.
    public init(
        authority: Authority, acmeDatabase: any ACMEDatabase,
        reloadSettings: @escaping @Sendable () throws -> CASettings,
        connectionLimits: ConnectionLimits = ConnectionLimits(),
        databaseHealth: DatabaseHealth = DatabaseHealth(),
        backupObservation: @escaping @Sendable () -> BackupObservation? = { nil },
        replicas: @escaping @Sendable () async -> [ReplicaHeartbeat]? = { nil },
        logger: Logger = Logger(label: "auto-ssl.server")
    ) async throws {
        self.authority = authority
        if authority.settings.dashboard ?? true {
            dashboard = DashboardService(
                access: try DashboardAccess(allow: authority.settings.dashboardAllow),
                cache: DashboardCache(
                    authority: authority, databaseHealth: databaseHealth, backup: backupObservation, replicas: replicas, logger: logger))
        } else {
            dashboard = nil
        }
        self.databaseHealth = databaseHealth
        self.backupObservation = backupObservation
        self.connectionLimits = connectionLimits
        self.reloadSettings = reloadSettings
        acme = try await ACMEService(
            authority: authority, store: acmeDatabase, logger: logger)
        self.logger = logger
        self.signEndpoint = try SignEndpoint(authority: authority, logger: logger)
        self.identity = try await ServerIdentity(authority: authority, logger: logger)
    }

    public func buildRouter() -> Router<CARequestContext> {
        let router = Router(context: CARequestContext.self)
        router.middlewares.add(RequestMetricsMiddleware(metrics: authority.metrics))
        router.middlewares.add(JSONErrorMiddleware(logger: logger))
        // A page for people on a new laptop: what this CA is and how to trust it.
        router.get("/") { request, _ in self.trustPage(request) }
        router.get("trust") { request, _ in self.trustPage(request) }
        if let dashboard {
            router.get("dashboard") { request, context in await dashboard.respond(request, remote: context.remoteAddress) }
        }
        for prefix in ["", "/1.0"] {
            let group = prefix.isEmpty ? router.group() : router.group(RouterPath(prefix))
            group.get("health") { _, _ in self.health() }
            group.get("roots") { _, _ in try self.roots() }
            group.get("roots.pem") { _, _ in
                Response(
                    status: .ok, headers: [.contentType: "application/x-pem-file"],
                    body: .init(byteBuffer: ByteBuffer(string: try self.authority.root.pemString())))
            }
            group.get("roots.der") { _, _ in
                Response(
                    status: .ok, headers: [.contentType: "application/pkix-cert", .contentDisposition: "attachment; filename=\"root_ca.cer\""],
                    body: .init(byteBuffer: ByteBuffer(bytes: try self.authority.root.derBytes())))
            }
            group.get("root/:sha") { _, context in try self.root(fingerprint: context.parameters.get("sha") ?? "") }
            group.get("provisioners") { _, _ in try self.provisioners() }
            group.post("sign") { request, context in try await self.sign(request, context: context) }
            group.post("renew") { request, context in try await self.renew(request, context: context) }
            group.post("revoke") { request, context in try await self.revoke(request, context: context) }
            group.get("crl") { request, _ in try await self.crl(request) }
            group.get("crl/:serial") { request, context in try await self.crl(request, issuerSerial: context.parameters.get("serial") ?? "") }
            OCSPRoutes.register(on: group, authority: authority)
            // Another method on a POST endpoint (a browser's GET /sign): 405 naming the right one, not 404.
            for path in ["sign", "renew", "revoke"] {
                for method in [HTTPRequest.Method.get, .head, .put, .delete, .patch] {
                    group.on(RouterPath(path), method: method) { _, _ -> Response in throw Self.methodNotAllowed(allowed: "POST") }
                }
            }
        }
        acme?.register(on: router)
        return router
    }

    /// 405 with `Allow` and the JSON error shape.
    static func methodNotAllowed(allowed: String) -> APIError {
        APIError(status: .methodNotAllowed, message: "this endpoint accepts \(allowed) only", headers: [.allow: allowed])
    }

    static func json(_ text: String, status: HTTPResponse.Status = .ok) -> Response {
        Response(
            status: status, headers: [.contentType: "application/json"],
            body: .init(byteBuffer: ByteBuffer(string: text)))
    }

    /// `{"status":"ok"}`, or 503 with `{"status":"degraded",...}` while the database does not answer:
    /// issuance is refused then, but roots and the last CRL are still served. A load balancer that
    /// checks /health sends requests to the replicas that can issue.
    func health() -> Response {
        switch databaseHealth.current {
        case .ok:
            return Self.json(#"{"status":"ok"}"#)
        case .unavailable(let since, let reason):
            let body = #"{"status":"degraded","database":"unavailable","since":"# + jsonString(Timestamp.rfc3339(since))
                + #","reason":"# + jsonString(reason) + "}"
            return Self.json(body, status: .serviceUnavailable)
        }
    }

    static func jsonObject(_ object: [String: Any], status: HTTPResponse.Status = .ok) throws -> Response {
        // Foundation stops the process (rather than throwing) on some invalid objects.
        guard JSONSerialization.isValidJSONObject(object) else { throw AutoSSLError.general("the response is not valid JSON") }
        let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])
        return json(String(decoding: data, as: UTF8.self), status: status)
    }

    func trustPage(_ request: Request) -> Response {
        let host = request.head.authority ?? authority.settings.addresses.first?.description ?? "ca"
        let url = "https://" + host
        return Response(status: .ok, headers: HTMLHeaders.fields, body: .init(byteBuffer: ByteBuffer(
            string: TrustPage.html(caName: authority.settings.name, fingerprint: authority.rootFingerprint, url: url))))
    }

    func roots() throws -> Response {
        try Self.jsonObject(["crts": [try authority.root.pemString()]])
    }

    func root(fingerprint: String) throws -> Response {
        let lower = fingerprint.lowercased()
        guard lower.count == 64, lower.allSatisfy(\.isHexDigit) else {
            throw APIError(status: .badRequest, message: "a root is addressed by its SHA-256 fingerprint: 64 hexadecimal characters")
        }
        guard lower == authority.rootFingerprint else {
            throw APIError(status: .notFound, message: "no root with fingerprint \(lower)")
        }
        return try Self.jsonObject(["ca": try authority.root.pemString()])
    }

    func provisioners() throws -> Response {
        let list: [[String: Any]] = try authority.provisioners.jwk.map { provisioner in
            let key = try JSONSerialization.jsonObject(with: Data(try provisioner.publicJWK.jsonString().utf8))
            return ["type": "JWK", "name": provisioner.name, "key": key, "encryptedKey": provisioner.encryptedKey]
        }
        return try Self.jsonObject(["provisioners": list, "nextCursor": ""])
    }

    /// Applies the rate limit, reads the body (at most 1 MiB) and remembers authentication failures.
    func authenticated<T>(
        _ request: Request, context: CARequestContext, _ body: (ByteBuffer, String) async throws -> T
    ) async throws -> T {
        let remote = context.remoteAddress ?? "unknown"
        try signEndpoint.refuseIfRateLimited(remote)
        let path = request.uri.path
        if let length = request.headers[.contentLength].flatMap(Int.init), length > Self.maximumBodySize {
            throw signEndpoint.bodyTooLarge(remote: remote, path: path)
        }
        let buffer: ByteBuffer
        do {
            buffer = try await request.body.collect(upTo: Self.maximumBodySize)
        } catch is NIOTooManyBytesError {
            throw signEndpoint.bodyTooLarge(remote: remote, path: path)
        }
        return try await signEndpoint.countingFailures(remote: remote, path: path) { try await body(buffer, remote) }
    }

    func chainResponse(_ issued: IssuedCertificate) throws -> Response {
        Response(status: .created, headers: [.contentType: "application/json"], body: .init(byteBuffer: signEndpoint.chainBody(issued)))
    }

    func renew(_ request: Request, context: CARequestContext) async throws -> Response {
        try await authenticated(request, context: context) { _, remote in
            let proof: PossessionProof
            if let authorization = request.headers[.authorization], authorization.lowercased().hasPrefix("bearer ") {
                proof = .x5cToken(String(authorization.dropFirst(7)).trimmingCharacters(in: .whitespaces))
            } else if let certificate = await context.peerCertificate() {
                try refuseIfAPageCouldHaveSent(request, remote: remote)
                proof = .mutualTLS(certificate)
            } else {
                throw authority.refuse(
                    .unauthorized, "renewal needs the current certificate: present it over mutual TLS or as an x5c bearer token",
                    remote: remote, authFailure: true, failure: .certificate)
            }
            return try chainResponse(try await authority.renew(proof, remote: remote))
        }
    }

    static let secFetchSite = HTTPField.Name("Sec-Fetch-Site")!

    /// A browser sends a client certificate it holds with any request a page makes, other sites'
    /// pages included, and CORS lets a page POST a form, text/plain or multipart body without asking
    /// the CA first. So a certificate presented over mutual TLS is taken as the holder's word only
    /// on a request no page could have sent by itself: no `Origin` (browsers add it to every
    /// cross-origin request and every POST), no `Sec-Fetch-Site` other than `none` (a user's own
    /// navigation), and a body that is not one of those three kinds. Programs (auto-ssl, step,
    /// curl with `Content-Type: application/json`) send none of them. Refused: 403, audited.
    func refuseIfAPageCouldHaveSent(_ request: Request, remote: String) throws {
        var reason: String?
        if request.headers[.origin] != nil {
            reason = "it carries an Origin header"
        } else if let site = request.headers[Self.secFetchSite], site.lowercased() != "none" {
            reason = "it carries a Sec-Fetch-Site header from a browser"
        } else if let type = request.headers[.contentType] {
            let media = type.split(separator: ";", maxSplits: 1).first.map { $0.trimmingCharacters(in: .whitespaces).lowercased() } ?? ""
            if ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data"].contains(media) {
                reason = "its body is \(media), which any web page may send to another site"
            }
        }
        guard let reason else { return }
        throw authority.refuse(
            .forbidden,
            "a certificate presented over mutual TLS is not accepted on a request a web page could have sent: \(reason); "
                + "send the request from a program, without Origin or Sec-Fetch-Site headers, with Content-Type: application/json or no body",
            remote: remote)
    }

    struct RevokeBody: Decodable {
        var serial: String
        var reasonCode: Int?
        var reason: String?
        var passive: Bool?
        var ott: String?
    }

    func revoke(_ request: Request, context: CARequestContext) async throws -> Response {
        try await authenticated(request, context: context) { buffer, remote in
            let body = try SignEndpoint.decode(
                RevokeBody.self, buffer,
                expected: "JSON with \"serial\" (decimal string) and optional \"reasonCode\", \"reason\", \"passive\", \"ott\"")
            guard body.passive ?? true else {
                throw APIError(status: .badRequest, message: "only passive revocation (CRL, refused renewal) is supported; send \"passive\": true")
            }
            var token = body.ott
            if token == nil, let authorization = request.headers[.authorization], authorization.lowercased().hasPrefix("bearer ") {
                token = String(authorization.dropFirst(7)).trimmingCharacters(in: .whitespaces)
            }
            let presented = token == nil ? await context.peerCertificate() : nil
            if presented != nil { try refuseIfAPageCouldHaveSent(request, remote: remote) }
            let outcome = try await authority.revoke(.init(
                serial: body.serial, reasonCode: body.reasonCode ?? 0, reason: body.reason ?? "", token: token,
                presented: presented, remote: remote))
            // Asking again is not an error (a client that lost the answer retries), but says so; a
            // key cut off now and the certificates revoked with it for having that key are named
            // (hex serials). `already_revoked` means nothing changed (what clients of earlier
            // versions take it for); a certificate revoked before whose key is cut off now is
            // `previously_revoked`.
            var answer = #"{"status":"ok""#
            if outcome.changedNothing {
                answer += #","already_revoked":true"#
            } else if outcome.alreadyRevoked {
                answer += #","previously_revoked":true"#
            }
            if outcome.keyRevoked { answer += #","key_revoked":true"# }
            if !outcome.alsoRevoked.isEmpty {
                let also = outcome.alsoRevoked.filter { $0.allSatisfy(\.isHexDigit) }.map { "\"\($0)\"" }.joined(separator: ",")
                answer += #","also_revoked":["# + also + "]"
            }
            return Self.json(answer + "}")
        }
    }

    /// The current intermediate's CRL, or (with `issuerSerial`) the CRL of an intermediate named by
    /// its serial in hex: the current one or one archived by `ca rotate-intermediate`.
    func crl(_ request: Request, issuerSerial: String? = nil) async throws -> Response {
        var publisher = authority.crl
        if issuerSerial?.lowercased() == "root" {
            guard let rootCRL = authority.rootCRL else {
                throw APIError(status: .notFound, message: "this CA's root has no CRL yet (made by an earlier version, or imported without its root key); it has one after its first `ca rotate-intermediate --compromised`")
            }
            return Self.crlResponse(rootCRL, request: request)
        }
        if let issuerSerial {
            let serial = issuerSerial.lowercased().filter { $0 != ":" }
            if serial == authority.intermediate.serialNumber.hexString {
                publisher = authority.crl
            } else if let previous = authority.previousCRLs[serial] {
                publisher = previous
            } else {
                throw APIError(
                    status: .notFound,
                    message: "no CRL for an intermediate with serial \(issuerSerial) (known: \(([authority.intermediate.serialNumber.hexString] + authority.previousCRLs.keys.sorted()).joined(separator: ", ")))")
            }
        }
        return Self.crlResponse(try await publisher.current(), request: request)
    }

    /// A CRL as DER, or as PEM with `?pem`.
    static func crlResponse(_ der: [UInt8], request: Request) -> Response {
        if request.uri.queryParameters["pem"] != nil || request.uri.query?.split(separator: "&").contains("pem") == true {
            return Response(
                status: .ok, headers: [.contentType: "application/x-pem-file"],
                body: .init(byteBuffer: ByteBuffer(string: CRLBuilder.pem(der))))
        }
        return Response(
            status: .ok, headers: [.contentType: "application/pkix-crl"], body: .init(byteBuffer: ByteBuffer(bytes: der)))
    }

    func sign(_ request: Request, context: CARequestContext) async throws -> Response {
        try await authenticated(request, context: context) { buffer, remote in
            Response(
                status: .created, headers: [.contentType: "application/json"],
                body: .init(byteBuffer: try await signEndpoint.signedChain(body: buffer, remote: remote)))
        }
    }

    /// A client certificate is accepted at the handshake when one of this CA's intermediates (current
    /// or archived) signed it, even if it has expired: the authority then decides, with the renewal
    /// grace window, what the certificate may still do. Anything else fails the handshake.
    static func verifyClientChain(_ certificates: [NIOSSLCertificate], authority: Authority) -> NIOSSLVerificationResult {
        guard let first = certificates.first, let der = try? first.toDERBytes(),
              let leaf = try? Certificate(derEncoded: der) else { return .failed }
        return authority.isIssuedByThisCA(leaf) ? .certificateVerified : .failed
    }

    /// Checks that every configured address can be bound now (and releases it at once), so that a
    /// port in use is reported, naming the address, before the CA issues its own TLS certificate.
    public static func checkAddressesAreFree(_ addresses: [ListenAddress]) throws {
        for address in addresses {
            let host = address.host.isEmpty ? "0.0.0.0" : address.host
            guard let ip = IPAddress(host) else { continue }  // a host name: the bind itself will tell
            let fd = socket(ip.isIPv4 ? AF_INET : AF_INET6, Int32(SOCK_STREAM.rawValue), 0)
            guard fd >= 0 else { continue }
            defer { close(fd) }
            var one: Int32 = 1
            setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
            guard let port = UInt16(exactly: address.port) else {
                throw AutoSSLError.invalidArgument("cannot listen on \(address): \(address.port) is not a port")
            }
            let bound = Sockaddr.with(ip, port: port) { bind(fd, $0, $1) }
            if bound != 0 {
                let reason = errno == EADDRINUSE ? "the address is already in use (is another `auto-ssl ca serve` or another server running?)"
                    : errno == EACCES ? "permission denied (ports below 1024 need root or CAP_NET_BIND_SERVICE)"
                    : errno == EADDRNOTAVAIL ? "this machine has no such address"
                    : String(cString: strerror(errno))
                throw AutoSSLError.general("cannot listen on \(address): \(reason)")
            }
        }
    }

    /// HTTP/1 as every listener of the CA speaks it: the connections' idle timeout, the deadlines
    /// for a request to arrive (`RequestDeadlineHandler`) and the header limits (100 lines, 16 KiB
    /// each, 32 KiB in all), with `handlers` after the decoder.
    func http1Configuration(handlers: @autoclosure @escaping @Sendable () -> [any RemovableChannelHandler] = [])
        -> HTTP1Channel.Configuration
    {
        let limits = connectionLimits
        return HTTP1Channel.Configuration(
            additionalChannelHandlers: [RequestDeadlineHandler(limits: limits)] + handlers(),
            idleTimeout: connectionLimits.idleTimeout,
            httpDecoderConfiguration: .init(maxHeaderFieldSize: 16 * 1024, maxHeaderListSize: 32 * 1024, maxHeaderFieldCount: 100))
    }

    /// How long in-flight requests may take to finish once `ca serve` is told to stop.
    public static let shutdownGrace: Duration = .seconds(30)

    /// Runs until SIGTERM/SIGINT: stops accepting, lets in-flight requests finish (at most
    /// ``shutdownGrace``), audits the stop.
    public func run(onRunning: @escaping @Sendable (String) async -> Void = { _ in }) async throws {
        let router = buildRouter()
        let tls = try identity.tlsConfiguration()
        OpenFileLimit.raiseToHardLimit()
        let counter = ConnectionCounter(limits: connectionLimits)
        // Every connection: the guard (caps, handshake deadline), TLS (client certificates checked
        // by `verifyClientChain`), HTTP/1 with an idle timeout and header limits, then /sign and the
        // ACME POSTs in the pipeline (FastPath, after the idle-timeout handler) and everything else
        // through the router.
        let http = http1Configuration(handlers: [HandshakeNotifier()])
        let (signEndpoint, acme) = (self.signEndpoint, self.acme)
        let tlsChannel = TLSChannelConfiguration(
            tlsConfiguration: tls,
            customVerificationCallback: { [authority] certificates, promise in
                promise.succeed(Self.verifyClientChain(certificates, authority: authority))
            })
        let logger = self.logger
        let server = HTTPServerBuilder { responder in
            GuardedChildChannel(
                base: try TLSChannel(
                    FastPathChildChannel(
                        base: HTTP1Channel(responder: responder, configuration: http),
                        makeFastPath: { FastPath(endpoint: signEndpoint, acme: acme) }),
                    configuration: tlsChannel),
                counter: counter, logger: logger)
        }
        var services: [any Service] = []
        for address in authority.settings.addresses {
            let host = address.host.isEmpty ? "0.0.0.0" : address.host
            let listener = try Listener.service(
                router: router,
                server: server,
                address: .hostname(host, port: address.port),
                onRunning: { [authority] channel in
                    let port = channel.localAddress?.port ?? address.port
                    let listening = ListenAddress(host: host, port: port)
                    // Written once the socket is bound, so the audit log never claims an address
                    // the CA could not take.
                    authority.record(.started(listening: listening.description))
                    await onRunning("https://\(listening)")
                },
                logger: logger)
            services.append(listener)
        }
        if let address = authority.settings.metricsAddress {
            let exporter = MetricsExporter(
                authority: authority, databaseHealth: databaseHealth, backup: backupObservation, logger: logger)
            services.append(try MetricsListener.service(
                server: self, exporter: exporter, address: address, tls: authority.settings.metricsTLS ?? false,
                onRunning: onRunning, logger: logger))
        }
        // From now on the first certificate for a name not issued before is counted and audited.
        try await authority.watchFirstIssuances()
        if let address = authority.settings.revocation?.listen {
            services.append(try RevocationListener.service(server: self, address: address, onRunning: onRunning, logger: logger))
        }
        services.append(MaintenanceService(
            identity: identity, authority: authority, reloadSettings: reloadSettings,
            acme: acme, logger: logger))
        acme?.resumeValidations()
        // One group for every listener and the housekeeping: a signal reaches each directly. Requests in
        // flight get `shutdownGrace` to finish; then they are cancelled, so a client that never
        // finishes cannot keep the CA from stopping (systemd's own stop timeout is 90 s).
        var configuration = ServiceGroupConfiguration(services: services, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
        configuration.maximumGracefulShutdownDuration = Self.shutdownGrace
        let group = ServiceGroup(configuration: configuration)
        do {
            try await group.run()
        } catch {
            authority.record(.stopped(reason: "error: \(error)"))
            throw error
        }
        authority.record(.stopped(reason: "shutdown signal"))
    }
}

/// Housekeeping while serving: pick up provisioner changes, renew the listener's certificate before
/// it expires, and forget token ids whose tokens can no longer be used.
struct MaintenanceService: Service {
    let identity: ServerIdentity
    let authority: Authority
    let reloadSettings: @Sendable () throws -> CASettings
    let acme: ACMEService?
    let logger: Logger
    static let interval: Duration = .seconds(2)

    func run() async throws {
        var lastPurge = Date.distantPast
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: Self.interval) }
            if Task.isShuttingDownGracefully || Task.isCancelled { break }
            do {
                if try authority.reloadProvisioners(from: try reloadSettings()) {
                    let current = authority.provisioners
                    logger.notice(
                        "provisioners reloaded: \((current.jwk.map(\.name) + current.acme.map(\.label)).joined(separator: ", "))")
                }
            } catch {
                logger.error("could not reload provisioners (keeping the current ones): \(error)")
            }
            do {
                try await identity.renewIfDue()
                try await authority.refreshCRLsIfChanged()
                if Date().timeIntervalSince(lastPurge) > 60 {
                    _ = try await authority.purgeExpiredTokens()
                    _ = try await acme?.store.purge(expiredBefore: Date().addingTimeInterval(-ACMEService.retention))
                    await acme?.recoverStaleWork()
                    lastPurge = Date()
                }
            } catch {
                logger.error("maintenance failed: \(error)")
            }
        }
    }
}
