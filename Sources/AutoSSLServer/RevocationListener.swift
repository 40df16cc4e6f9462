import AutoSSLCA
import AutoSSLCore
import Foundation
import Hummingbird
import HummingbirdCore
import Logging
import NIOCore
import NIOHTTPTypes
import ServiceLifecycle

/// The OCSP routes (RFC 6960 appendix A): `POST /ocsp` with the DER request as the body, and
/// `GET /ocsp/{request}` with it base64- and URL-encoded in the path. The answer is always 200 with
/// `application/ocsp-response`: errors are OCSP error responses (`malformedRequest` for anything
/// that is not a readable request, including bodies over `OCSP.maximumRequestBytes`).
enum OCSPRoutes {
    static let contentType = "application/ocsp-response"

    static func register<Context: RequestContext>(on group: RouterGroup<Context>, authority: Authority) {
        group.post("ocsp") { request, _ in
            let body: ByteBuffer
            do {
                body = try await request.body.collect(upTo: OCSP.maximumRequestBytes)
            } catch {
                return answer(OCSP.errorResponse(.malformedRequest))
            }
            return answer(await authority.ocsp.respond(toDER: Array(buffer: body)))
        }
        group.get("ocsp/**") { request, _ in
            // The raw path after /ocsp/: base64 may contain "/", so it is not one path parameter.
            let path = request.uri.path
            guard let range = path.range(of: "/ocsp/") else { return answer(OCSP.errorResponse(.malformedRequest)) }
            return answer(await authority.ocsp.respond(toGetPath: path[range.upperBound...]))
        }
        for method in [HTTPRequest.Method.put, .delete, .patch] {
            group.on("ocsp", method: method) { _, _ -> Response in
                Response(status: .methodNotAllowed, headers: [.allow: "GET, POST"])
            }
        }
    }

    /// A signed answer may be cached for its lifetime; an error answer (malformedRequest,
    /// tryLater, ...) is about the request, not a certificate, and is not cached.
    static func answer(_ bytes: [UInt8]) -> Response {
        let caching = OCSP.isErrorResponse(bytes) ? "no-store" : "max-age=\(Int(OCSPResponder.cacheLifetime)), public, no-transform"
        return Response(
            status: .ok, headers: [.contentType: contentType, .cacheControl: caching],
            body: .init(byteBuffer: ByteBuffer(bytes: bytes)))
    }
}

/// The plain-HTTP listener of `revocation.listen` in config.yaml: CRLs (`/crl`, `/crl/{serial}`) and
/// OCSP (`/ocsp`) only, because RFC 5280 clients fetch CRLs and OCSP over http:// (the answers are
/// signed, so TLS adds nothing, and a client checking revocation cannot depend on TLS to this CA).
/// Nothing else is served there: no issuance, no roots, no provisioners.
enum RevocationListener {
    /// Header limits and idle timeout as on the HTTPS listener.
    static func service(
        server: CAServer, address: ListenAddress, onRunning: @escaping @Sendable (String) async -> Void, logger: Logger
    ) throws -> any Service {
        let router = Router(context: BasicRequestContext.self)
        router.middlewares.add(JSONErrorMiddleware(logger: logger))
        for prefix in ["", "/1.0"] {
            let group = prefix.isEmpty ? router.group() : router.group(RouterPath(prefix))
            group.get("crl") { request, _ in try await server.crl(request) }
            group.get("crl/:serial") { request, context in try await server.crl(request, issuerSerial: context.parameters.get("serial") ?? "") }
            OCSPRoutes.register(on: group, authority: server.authority)
        }
        let host = address.host.isEmpty ? "0.0.0.0" : address.host
        let http = server.http1Configuration(handlers: [CloseAfterAnswerHandler()])
        // Its own caps (the HTTPS listener's figures): a flood of this public port is refused
        // here before it uses up the descriptors the HTTPS listener needs too.
        let counter = ConnectionCounter(limits: server.connectionLimits)
        return try Listener.service(
            router: router,
            server: HTTPServerBuilder { responder in
                GuardedChildChannel(base: HTTP1Channel(responder: responder, configuration: http), counter: counter, logger: logger, tls: false)
            },
            address: .hostname(host, port: address.port),
            onRunning: { channel in
                let port = channel.localAddress?.port ?? address.port
                await onRunning("http://\(ListenAddress(host: host, port: port)) (CRL and OCSP)")
            },
            logger: logger)
    }
}

/// Every request on the revocation listener gets `Connection: close`: one answer per connection.
/// Hummingbird keeps a connection open unless the request says `close` (it does not see the HTTP
/// version), and HTTP/1.0 OCSP clients such as nginx's stapling read the answer until the
/// connection closes. Revocation clients make one request at a time, so nothing is lost, and no
/// client can keep idle connections open on this port.
final class CloseAfterAnswerHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if case .head(var head) = unwrapInboundIn(data) {
            head.headerFields[.connection] = "close"
            context.fireChannelRead(wrapInboundOut(.head(head)))
            return
        }
        context.fireChannelRead(data)
    }
}
