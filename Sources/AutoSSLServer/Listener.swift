import Foundation
import Hummingbird
import HummingbirdCore
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import ServiceLifecycle
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// One listening socket of `ca serve` (HTTPS API, `/metrics`, CRL and OCSP): Hummingbird's HTTP
/// server answering from a router, run as one service of the CA's single `ServiceGroup`.
///
/// Why not Hummingbird's `Application`: every `Application` runs a nested `ServiceGroup` of its own
/// with a date-header ticker built on swift-service-lifecycle's `cancelOnGracefulShutdown()` (an
/// AsyncAlgorithms `merge`). With two or three listeners, `ca serve` ran as many nested groups and
/// tickers, and a SIGTERM while Prometheus was scraping once left an event-loop thread blocked inside
/// that merge's lock: the process never exited. Here there is one group, whose graceful shutdown
/// reaches each server directly, and the `Date` header comes from ``HTTPDateHeader`` (no task, no
/// timer).
enum Listener {
    /// The server for `router` on `address`; `onRunning` is called once the socket is bound.
    static func service<Context: RequestContext>(
        router: Router<Context>,
        server: HTTPServerBuilder,
        address: BindAddress,
        onRunning: @escaping @Sendable (any Channel) async -> Void,
        logger: Logger
    ) throws -> any Service where Context.Source == ApplicationRequestContextSource {
        let responder = router.buildResponder()
        return try server.buildServer(
            configuration: ServerConfiguration(address: address),
            eventLoopGroup: MultiThreadedEventLoopGroup.singleton,
            logger: logger,
            responder: { request, writer, channel in
                let context = Context(source: ApplicationRequestContextSource(channel: channel, logger: logger))
                var response: Response
                do {
                    response = try await responder.respond(to: request, context: context)
                } catch let error as HTTPParserError {
                    throw error
                } catch {
                    // The routers' JSONErrorMiddleware answers every error it knows; anything that
                    // reaches here is a bug, answered without details.
                    logger.error("unanswered error on \(request.uri.path): \(error)")
                    response = Response(status: .internalServerError)
                }
                response.headers[.date] = HTTPDateHeader.now()
                do {
                    try await writer.write(response: response.head, body: response.body)
                } catch is HTTPParserError {
                    // Not rethrown as a parse error: the connection handler would answer it a
                    // second time. Any other error closes the connection.
                    throw ResponseNotWritten()
                }
            },
            onServerRunning: onRunning)
    }
}

/// A response could not be written; the connection is closed.
struct ResponseNotWritten: Error {}

/// The `Date` response header (RFC 9110 §5.6.7, IMF-fixdate), formatted at most once per second
/// and shared by every listener.
enum HTTPDateHeader {
    private static let cache = Mutex<(second: Int, text: String)>((-1, ""))
    private static let days = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]
    private static let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]

    static func now() -> String {
        let second = time(nil)
        if let cached = cache.withLock({ $0.second == second ? $0.text : nil }) { return cached }
        let text = format(second)
        cache.withLock { $0 = (second, text) }
        return text
    }

    /// `second` (seconds since 1970, UTC) as e.g. `Sun, 06 Nov 1994 08:49:37 GMT`.
    static func format(_ second: Int) -> String {
        var clock = time_t(second)
        var parts = tm()
        guard gmtime_r(&clock, &parts) != nil,
              days.indices.contains(Int(parts.tm_wday)), months.indices.contains(Int(parts.tm_mon))
        else { return "" }
        func two(_ value: Int32) -> String { value < 10 ? "0\(value)" : "\(value)" }
        return "\(days[Int(parts.tm_wday)]), \(two(parts.tm_mday)) \(months[Int(parts.tm_mon)]) \(parts.tm_year + 1900) "
            + "\(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec)) GMT"
    }
}
