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

    func register(on router: Router<CARequestContext>) {
        let group = router.group("acme/:provisioner")
        group.get("directory") { request, context in await self.respond(request, context) { try self.acme.directory($0) } }
        group.head("new-nonce") { request, context in await self.respond(request, context) { _ in .empty(200) } }
        group.get("new-nonce") { request, context in await self.respond(request, context) { _ in .empty(204) } }
        let routes: [(String, Operation)] = [
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
        for (path, operation) in routes {
            group.post(RouterPath(path)) { request, context in
                await self.respond(request, context) { endpoint in
                    let body: ByteBuffer
                    do {
                        body = try await request.body.collect(upTo: CAServer.maximumBodySize)
                    } catch is NIOTooManyBytesError {
                        throw ACMEProblem(.malformed, "the request body exceeds \(CAServer.maximumBodySize) bytes", status: 413)
                    }
                    let authenticated = try await self.acme.authenticate(
                        endpoint, body: Data(buffer: body), contentType: request.headers[.contentType])
                    return try await operation(self.acme)(authenticated)
                }
            }
        }
    }

    /// Runs one route and turns its reply, or its error, into the response.
    func respond(_ request: Request, _ context: CARequestContext, _ body: (ACMEEndpoint) async throws -> ACMEReply) async -> Response {
        let name = context.parameters.get("provisioner") ?? ""
        let host = request.head.authority
        let reply: ACMEReply
        if let endpoint = acme.endpoint(
            provisioner: name, host: host, path: request.uri.path, id: context.parameters.get("id"), remote: context.remoteAddress) {
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
        return response(reply, base: acme.base(host: host, provisioner: name))
    }

    func response(_ reply: ACMEReply, base: String) -> Response {
        var headers: HTTPFields = [:]
        if let contentType = reply.contentType { headers[.contentType] = contentType }
        if let location = reply.location { headers[.location] = location }
        if let seconds = reply.retryAfter { headers[.retryAfter] = String(seconds) }
        headers[Self.replayNonce] = acme.makeNonce()
        for link in reply.links { headers.append(HTTPField(name: Self.link, value: link)) }
        headers.append(HTTPField(name: Self.link, value: "<\(base)/directory>;rel=\"index\""))
        headers[.cacheControl] = "no-store"
        return Response(status: .init(code: reply.status), headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: reply.body)))
    }
}
