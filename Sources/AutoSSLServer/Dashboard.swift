import AutoSSLCA
import AutoSSLConfig
import AutoSSLCore
import AutoSSLStore
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore

/// Who may see `/dashboard`: `dashboard_allow` in config.yaml, loopback only when unset.
struct DashboardAccess: Sendable, Equatable {
    static let loopback = ["127.0.0.0/8", "::1/128"]

    let ranges: [IPRange]

    /// Throws naming the entry that is not a CIDR range.
    init(allow: [String]?) throws {
        ranges = try (allow ?? Self.loopback).map { entry in
            do {
                return try IPRange(parsing: entry)
            } catch let error as AutoSSLError {
                throw AutoSSLError.invalidArgument("dashboard_allow in config.yaml: \(error.message)", hint: error.hint)
            }
        }
    }

    /// Whether a client at `remote` (the socket's address, IPv4-mapped IPv6 read as IPv4) may look.
    func allows(_ remote: String?) -> Bool {
        guard let remote, var address = IPAddress(remote) else { return false }
        if address.bytes.count == 16, address.bytes.prefix(12) == [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF],
           let v4 = IPAddress(bytes: Array(address.bytes.suffix(4))) {
            address = v4
        }
        return ranges.contains { $0.contains(address) }
    }
}

/// What the dashboard shows, computed at most once per `DashboardCache.refreshInterval`.
struct DashboardSnapshot: Sendable {
    var generatedAt: Date
    var caName: String
    var fingerprint: String
    var database: DatabaseHealth.State
    /// Nil when the records could not be read (the reason in `fleetError`).
    var fleet: [FleetEntry]?
    var fleetError: String?
    /// Nil on a CA without replicas (SQLite).
    var replicas: [ReplicaHeartbeat]?
    var backup: BackupObservation?
    var activity: RecentActivity
}

/// The snapshot, refreshed at most every `refreshInterval` however many ask (concurrent requests
/// share one refresh), like `MetricsExporter`.
actor DashboardCache {
    static let refreshInterval: Duration = .seconds(5)

    let authority: Authority
    let databaseHealth: DatabaseHealth
    let backup: @Sendable () -> BackupObservation?
    let replicas: @Sendable () async -> [ReplicaHeartbeat]?
    let logger: Logger
    private var cached: (at: ContinuousClock.Instant, snapshot: DashboardSnapshot)?
    private var refreshing: Task<DashboardSnapshot, Never>?

    init(
        authority: Authority, databaseHealth: DatabaseHealth, backup: @escaping @Sendable () -> BackupObservation?,
        replicas: @escaping @Sendable () async -> [ReplicaHeartbeat]?, logger: Logger
    ) {
        self.authority = authority
        self.databaseHealth = databaseHealth
        self.backup = backup
        self.replicas = replicas
        self.logger = logger
    }

    func snapshot() async -> DashboardSnapshot {
        if let cached, ContinuousClock.now - cached.at < Self.refreshInterval { return cached.snapshot }
        let task = refreshing ?? Task { await self.compute() }
        refreshing = task
        let snapshot = await task.value
        refreshing = nil
        cached = (.now, snapshot)
        return snapshot
    }

    private func compute() async -> DashboardSnapshot {
        let now = Date()
        var fleet: [FleetEntry]?
        var fleetError: String?
        do {
            fleet = try await authority.fleet(now: now)
        } catch {
            fleetError = "the certificate records could not be read: \(error)"
            logger.warning("dashboard: \(fleetError ?? "")")
        }
        let activity = await Task.detached { [authority] in authority.recentActivity() }.value
        return DashboardSnapshot(
            generatedAt: now, caName: authority.settings.name, fingerprint: authority.rootFingerprint,
            database: databaseHealth.current, fleet: fleet, fleetError: fleetError, replicas: await replicas(), backup: backup(),
            activity: activity)
    }
}

/// `GET /dashboard`: read-only, server-rendered, no script, no external resource.
struct DashboardService: Sendable {
    /// The query string is at most this long (a name filter and a state fit easily).
    static let maximumQueryLength = 1_024

    let access: DashboardAccess
    let cache: DashboardCache

    static func page(_ status: HTTPResponse.Status, _ html: String) -> Response {
        Response(status: status, headers: HTMLHeaders.fields, body: .init(byteBuffer: ByteBuffer(string: html)))
    }

    func respond(_ request: Request, remote: String?) async -> Response {
        guard access.allows(remote) else {
            return Self.page(.forbidden, DashboardPage.message(
                title: "Forbidden", text: "This address may not see the dashboard (dashboard_allow in the CA's config.yaml)."))
        }
        let query = request.uri.query ?? ""
        guard query.utf8.count <= Self.maximumQueryLength else {
            return Self.page(.badRequest, DashboardPage.message(title: "Bad request", text: "The query is too long."))
        }
        let parameters = request.uri.queryParameters
        let stateText = parameters["state"].map(String.init) ?? ""
        let nameText = parameters["name"].map(String.init) ?? ""
        let filter: FleetFilter
        do {
            filter = try FleetFilter(state: stateText, name: nameText)
        } catch let error as AutoSSLError {
            return Self.page(.badRequest, DashboardPage.message(
                title: "Bad request", text: error.message + (error.hint.map { " (\($0))" } ?? "")))
        } catch {
            return Self.page(.badRequest, DashboardPage.message(title: "Bad request", text: "The filter is not valid."))
        }
        let snapshot = await cache.snapshot()
        return Self.page(.ok, DashboardPage.html(snapshot, filter: filter))
    }
}
