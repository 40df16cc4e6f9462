import AutoSSLCA
import AutoSSLCore
import AutoSSLMetrics
import Foundation
import Hummingbird
import HummingbirdCore
import HummingbirdTLS
import Logging
import NIOCore
import ServiceLifecycle

/// The last backup run as `ca serve` reads it (from the file `ca backup` writes), for the gauges.
public struct BackupObservation: Sendable {
    public var lastRun: Date?
    public var lastRunSucceeded: Bool?
    public var lastSuccess: Date?

    public init(lastRun: Date?, lastRunSucceeded: Bool?, lastSuccess: Date?) {
        self.lastRun = lastRun
        self.lastRunSucceeded = lastRunSucceeded
        self.lastSuccess = lastSuccess
    }
}

/// Answers scrapes: the gauges that need the database are computed at most once per
/// `refreshInterval`, however often (and however many scrapers) ask; concurrent scrapes share one
/// computation. A database that does not answer leaves the last values and sets
/// `auto_ssl_database_up` to 0.
actor MetricsExporter {
    static let refreshInterval: Duration = .seconds(5)

    let authority: Authority
    let databaseHealth: DatabaseHealth
    let backup: @Sendable () -> BackupObservation?
    let logger: Logger
    private var refreshedAt: ContinuousClock.Instant?
    private var refreshing: Task<Void, Never>?

    init(authority: Authority, databaseHealth: DatabaseHealth, backup: @escaping @Sendable () -> BackupObservation?, logger: Logger) {
        self.authority = authority
        self.databaseHealth = databaseHealth
        self.backup = backup
        self.logger = logger
    }

    func exposition() async -> [UInt8] {
        if refreshedAt.map({ ContinuousClock.now - $0 >= Self.refreshInterval }) ?? true {
            let task = refreshing ?? Task { await refresh() }
            refreshing = task
            await task.value
            refreshing = nil
        }
        return authority.metrics.exposition()
    }

    private func refresh() async {
        let metrics = authority.metrics
        var databaseUp = true
        if case .unavailable = databaseHealth.current { databaseUp = false }
        do {
            try await authority.refreshMetrics()
        } catch {
            databaseUp = false
            logger.warning("metrics: could not read the certificate records: \(error)")
        }
        metrics.setDatabaseUp(databaseUp)
        if let backup = backup() {
            metrics.setBackup(
                lastRun: backup.lastRun?.timeIntervalSince1970, lastRunSucceeded: backup.lastRunSucceeded,
                lastSuccess: backup.lastSuccess?.timeIntervalSince1970)
        }
        refreshedAt = .now
    }
}

/// `metrics_address` in config.yaml: `GET /metrics` in Prometheus' text format and nothing else, on
/// its own listener (plain HTTP, or HTTPS with the CA's own certificate when `metrics_tls` is set),
/// so it can stay on loopback or a management network while the CA's API faces the clients.
enum MetricsListener {
    static func service(
        server: CAServer, exporter: MetricsExporter, address: ListenAddress, tls: Bool,
        onRunning: @escaping @Sendable (String) async -> Void, logger: Logger
    ) throws -> any Service {
        let router = Router(context: BasicRequestContext.self)
        router.middlewares.add(JSONErrorMiddleware(logger: logger))
        router.get("metrics") { _, _ in
            Response(
                status: .ok, headers: [.contentType: CAMetrics.contentType],
                body: .init(byteBuffer: ByteBuffer(bytes: await exporter.exposition())))
        }
        let host = address.host.isEmpty ? "0.0.0.0" : address.host
        // Its own connection caps (the HTTPS listener's figures), and with TLS a deadline for the
        // handshake, as on the HTTPS listener.
        let counter = ConnectionCounter(limits: server.connectionLimits)
        let http = server.http1Configuration(handlers: tls ? [HandshakeNotifier()] : [])
        let scheme = tls ? "https" : "http"
        let bind = BindAddress.hostname(host, port: address.port)
        let running: @Sendable (any Channel) async -> Void = { channel in
            let port = channel.localAddress?.port ?? address.port
            await onRunning("\(scheme)://\(ListenAddress(host: host, port: port))/metrics (Prometheus)")
        }
        if tls {
            let tlsConfiguration = try server.identity.tlsConfiguration()
            return try Listener.service(
                router: router,
                server: HTTPServerBuilder { responder in
                    GuardedChildChannel(
                        base: try TLSChannel(HTTP1Channel(responder: responder, configuration: http), tlsConfiguration: tlsConfiguration),
                        counter: counter, logger: logger)
                },
                address: bind, onRunning: running, logger: logger)
        }
        return try Listener.service(
            router: router,
            server: HTTPServerBuilder { responder in
                GuardedChildChannel(base: HTTP1Channel(responder: responder, configuration: http), counter: counter, logger: logger, tls: false)
            },
            address: bind, onRunning: running, logger: logger)
    }
}

/// Times every routed request by route (`/sign` on the fast path is timed there).
struct RequestMetricsMiddleware<Context: RequestContext>: RouterMiddleware {
    let metrics: CAMetrics

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let started = ContinuousClock.now
        defer { metrics.request(Self.route(of: request.uri.path), duration: .now - started) }
        return try await next(request, context)
    }

    /// The route a path belongs to: its first segment (after `/1.0`), from a fixed list.
    static func route(of path: String) -> CAMetrics.Route {
        var segments = path.split(separator: "/", maxSplits: 2, omittingEmptySubsequences: true)
        if segments.first == "1.0" { segments.removeFirst() }
        guard let first = segments.first else { return .trust }
        switch first {
        case "sign": return .sign
        case "renew": return .renew
        case "revoke": return .revoke
        case "crl": return .crl
        case "ocsp": return .ocsp
        case "roots", "roots.pem", "roots.der", "root": return .roots
        case "health": return .health
        case "provisioners": return .provisioners
        case "acme": return .acme
        case "trust": return .trust
        case "dashboard": return .dashboard
        default: return .other
        }
    }
}
