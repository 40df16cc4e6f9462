import AutoSSLACME
import AutoSSLCA
import AutoSSLConfig
import AutoSSLCore
import AutoSSLStore
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore

/// The ACME routes at /acme/{provisioner}/...: HTTP in and out, nothing else. Each route parses
/// the request (body within the size cap, Content-Type, the `:id`), calls the `ACMEAuthority`
/// (module AutoSSLACME, where the rules are), and sends its reply with the headers every ACME
/// response carries: Replay-Nonce, the directory Link, Cache-Control: no-store.
final class ACMEService: Sendable {
    let acme: ACMEAuthority
    let logger: Logger

    static let retention = ACMEAuthority.retention
    static let replayNonce = HTTPField.Name("Replay-Nonce")!
    static let link = HTTPField.Name("Link")!

    init(authority: Authority, store: any ACMEDatabase, logger: Logger) async throws {
        self.acme = try await ACMEAuthority(authority: authority, database: store, logger: logger)
        self.logger = logger
    }

    /// The ACME state (for the server's housekeeping).
    var store: any ACMEDatabase { acme.database }
    func resumeValidations() {
        acme.resumeValidations()
    }

    func recoverStaleWork() async {
        await acme.recoverStaleWork()
    }

    typealias Operation = @Sendable (ACMEAuthority) -> @Sendable (ACMERequest) async throws -> ACMEReply

    /// The POST routes under /acme/{provisioner}/, for the router and for `FastPath` alike.
    static let postRoutes: [(path: String, operation: Operation)] = [
        ("new-account", { acme in { try await acme.newAccount($0) } }),
        ("new-order", { acme in { try await acme.newOrder($0) } }),
        ("key-change", { acme in { try await acme.keyChange($0) } }),
        ("revoke-cert", { acme in { try await acme.revokeCertificate($0) } }),
        ("account/:id", { acme in { try await acme.account($0) } }),
        ("account/:id/orders", { acme in { try await acme.accountOrders($0) } }),
        ("order/:id", { acme in { try await acme.order($0) } }),
        ("order/:id/finalize", { acme in { try await acme.finalize($0) } }),
        ("authz/:id", { acme in { try await acme.authorization($0) } }),
        ("chall/:id", { acme in { try await acme.challenge($0) } }),
        ("cert/:id", { acme in { try await acme.certificate($0) } }),
    ]

    func register(on router: Router<CARequestContext>) {
        let group = router.group("acme/:provisioner")
        group.get("directory") { request, context in await self.respond(request, context) { try self.acme.directory($0) } }
        group.head("new-nonce") { request, context in await self.respond(request, context) { _ in .empty(200) } }
        group.get("new-nonce") { request, context in await self.respond(request, context) { _ in .empty(204) } }
        for (path, operation) in Self.postRoutes {
            group.post(RouterPath(path)) { request, context in
                await self.respond(request, context) { endpoint in
                    let body: ByteBuffer
                    do {
                        body = try await request.body.collect(upTo: CAServer.maximumBodySize)
                    } catch is NIOTooManyBytesError {
                        throw Self.bodyTooLarge
                    }
                    return try await self.post(operation, endpoint: endpoint, body: body, contentType: request.headers[.contentType])
                }
            }
            // RFC 8555 §6.3: resources are read with POST-as-GET, never GET; another method gets a
            // problem document (with a nonce and the directory link) and 405, not the API's plain 404.
            for method in [HTTPRequest.Method.get, .head, .put, .delete, .patch] {
                group.on(RouterPath(path), method: method) { request, context in
                    await self.methodNotAllowed(request, context, allow: "POST", hint: "read it with a POST-as-GET (an empty payload)")
                }
            }
        }
        for method in [HTTPRequest.Method.post, .put, .delete, .patch] {
            group.on("directory", method: method) { request, context in
                await self.methodNotAllowed(request, context, allow: "GET", hint: "fetch it with GET")
            }
        }
    }

    /// 405 for a method an ACME resource does not take, as a problem document with `Allow`.
    func methodNotAllowed(_ request: Request, _ context: CARequestContext, allow: String, hint: String) async -> Response {
        var response = await respond(request, context) { _ in
            throw ACMEProblem(.malformed, "\(request.method.rawValue) is not allowed here; \(hint)", status: 405)
        }
        response.headers[.allow] = allow
        return response
    }

    static let bodyTooLarge = ACMEProblem(.malformed, "the request body exceeds \(CAServer.maximumBodySize) bytes", status: 413)

    /// An authenticated POST: the JWS checked, then the route's operation.
    func post(_ operation: Operation, endpoint: ACMEEndpoint, body: ByteBuffer, contentType: String?) async throws -> ACMEReply {
        let authenticated = try await acme.authenticate(endpoint, body: Data(buffer: body), contentType: contentType)
        return try await operation(acme)(authenticated)
    }

    /// A POST that `FastPath` answers in the channel pipeline: which route, for which provisioner.
    struct PostTarget: Sendable {
        let provisioner: String
        /// The route's pattern in `postRoutes` ("order/:id").
        let route: String
        let operation: Operation
        let id: String?
        let path: String
    }

    /// `postRoutes`' patterns split at "/", once.
    static let postRouteParts = postRoutes.map { $0.path.split(separator: "/") }

    /// The POST route `path` names, when it is one of `postRoutes` in its plain form (no query, no
    /// percent-encoding, no empty segment); anything else is left to the router, which answers it
    /// the same way or with its 404/405.
    static func postTarget(path: String) -> PostTarget? {
        guard path.hasPrefix("/acme/"), path.utf8.count <= 512,
              !path.utf8.contains(where: { $0 == UInt8(ascii: "?") || $0 == UInt8(ascii: "%") || $0 == UInt8(ascii: "#") }) else { return nil }
        let segments = path.utf8.split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: false).dropFirst(2)
        guard segments.count >= 2, !segments.contains(where: \.isEmpty), let provisioner = segments.first.map({ String(decoding: $0, as: UTF8.self) }) else {
            return nil
        }
        let rest = Array(segments.dropFirst())
        for ((pattern, operation), parts) in zip(postRoutes, postRouteParts) {
            guard parts.count == rest.count else { continue }
            var id: String?
            var matched = true
            for (part, segment) in zip(parts, rest) {
                if part == ":id" {
                    id = String(decoding: segment, as: UTF8.self)
                } else if !part.utf8.elementsEqual(segment) {
                    matched = false
                    break
                }
            }
            if matched { return PostTarget(provisioner: provisioner, route: pattern, operation: operation, id: id, path: path) }
        }
        return nil
    }

    /// Answers a POST taken by `FastPath`: the same reply, headers and body as through the router.
    func answer(_ target: PostTarget, host: String?, remote: String?, body: ByteBuffer, contentType: String?) async -> (HTTPResponse.Status, HTTPFields, ByteBuffer) {
        let reply = await reply(provisioner: target.provisioner, host: host, path: target.path, id: target.id, remote: remote) { endpoint in
            try await self.post(target.operation, endpoint: endpoint, body: body, contentType: contentType)
        }
        return parts(of: reply, provisioner: target.provisioner, host: host)
    }

    /// A reply as `FastPath` writes it: status, every header the router's response carries, body.
    func parts(of reply: ACMEReply, provisioner: String, host: String?) -> (HTTPResponse.Status, HTTPFields, ByteBuffer) {
        (.init(code: reply.status), headers(for: reply, base: acme.base(host: host, provisioner: provisioner)), ByteBuffer(bytes: reply.body))
    }

    /// Runs one route and turns its reply, or its error, into the response.
    func respond(_ request: Request, _ context: CARequestContext, _ body: (ACMEEndpoint) async throws -> ACMEReply) async -> Response {
        let name = context.parameters.get("provisioner") ?? ""
        let host = request.head.authority
        let reply = await reply(provisioner: name, host: host, path: request.uri.path, id: context.parameters.get("id"), remote: context.remoteAddress, body)
        return response(reply, base: acme.base(host: host, provisioner: name))
    }

    /// The reply of one route, its errors turned into problem documents.
    func reply(
        provisioner name: String, host: String?, path: String, id: String?, remote: String?, _ body: (ACMEEndpoint) async throws -> ACMEReply
    ) async -> ACMEReply {
        let reply: ACMEReply
        if let endpoint = acme.endpoint(provisioner: name, host: host, path: path, id: id, remote: remote) {
            do {
                reply = try await body(endpoint)
            } catch {
                if let problem = ACMEAuthority.problem(for: error) {
                    // An ACME request whose JWS, key or account did not check out (a refusal by the
                    // authority was counted where it was made).
                    if [.unauthorized, .badSignatureAlgorithm, .badPublicKey].contains(problem.kind), !(error is AuthorityError) {
                        acme.authority.metrics.authenticationFailed(.acme)
                    }
                    reply = .problem(problem)
                } else if let fault = clientFault(error) {
                    reply = .problem(ACMEProblem(.malformed, fault))
                } else {
                    logger.error("ACME internal error: \(error)")
                    reply = .problem(ACMEProblem(.serverInternal, "internal error; see the CA's log"))
                }
            }
        } else {
            reply = .problem(ACMEProblem(.malformed, "no ACME provisioner named \"\(name)\" here", status: 404))
        }
        return reply
    }

    func response(_ reply: ACMEReply, base: String) -> Response {
        Response(status: .init(code: reply.status), headers: headers(for: reply, base: base), body: .init(byteBuffer: ByteBuffer(bytes: reply.body)))
    }

    /// The headers of a reply: its own, a fresh nonce, the directory link, no caching.
    func headers(for reply: ACMEReply, base: String) -> HTTPFields {
        var headers: HTTPFields = [:]
        if let contentType = reply.contentType { headers[.contentType] = contentType }
        if let location = reply.location { headers[.location] = location }
        if let seconds = reply.retryAfter { headers[.retryAfter] = String(seconds) }
        headers[Self.replayNonce] = acme.makeNonce()
        for link in reply.links { headers.append(HTTPField(name: Self.link, value: link)) }
        headers.append(HTTPField(name: Self.link, value: "<\(base)/directory>;rel=\"index\""))
        headers[.cacheControl] = "no-store"
        return headers
    }
}
