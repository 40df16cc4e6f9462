import Prometheus
import Synchronization

/// Every metric `ca serve` exposes at `/metrics`: the families (names, help, labels, buckets) are
/// defined here and only here, so the alert rules in `contrib/prometheus` and the documentation
/// have one list to follow. Counters and histograms are updated as things happen; the gauges that
/// describe the whole CA (expiring names, CRL age, backups) are set by whoever computes them
/// (`ca serve` refreshes them at most every few seconds, when scraped).
///
/// Label values come from the CA's own vocabulary (provisioner names from its configuration, the
/// bounded enums below, names it issued certificates for), never from raw request bytes.
public final class CAMetrics: Sendable {
    public let registry: PrometheusCollectorRegistry

    public init(version: String, registry: PrometheusCollectorRegistry = PrometheusCollectorRegistry()) {
        self.registry = registry
        registry.makeGauge(descriptor: Self.buildInfo, labels: [("version", version)]).set(Double(1))
        rateLimited = registry.makeCounter(descriptor: Self.rateLimitedDescriptor)
        commitBatchSize = registry.makeValueHistogram(descriptor: Self.commitBatch, buckets: Self.batchBuckets)
        commitDuration = registry.makeDurationHistogram(descriptor: Self.commitLatency, buckets: Self.latencyBuckets)
        firstIssuanceCounter = registry.makeCounter(descriptor: Self.firstIssuances)
    }

    // MARK: - Operations

    /// What a certificate operation was.
    public enum Operation: String, Sendable, CaseIterable {
        case issue, renew, revoke
    }

    /// How it ended: done; refused (the request was not acceptable: authentication, policy,
    /// validity); failed (the CA could not do it: database unavailable, internal error).
    public enum Outcome: String, Sendable, CaseIterable {
        case ok, refused, failed
    }

    /// One certificate operation. `provisioner` is the provisioner that authorised it, or
    /// `unknown` when the request was refused before one was found.
    public func operation(_ operation: Operation, provisioner: String, outcome: Outcome) {
        operationCounters.collector(for: OperationKey(operation: operation, provisioner: provisioner, outcome: outcome)) {
            registry.makeCounter(
                descriptor: Self.operations,
                labels: [("operation", operation.rawValue), ("provisioner", provisioner), ("outcome", outcome.rawValue)])
        }.increment()
    }

    private struct OperationKey: Hashable, Sendable {
        var operation: Operation
        var provisioner: String
        var outcome: Outcome
    }

    private let operationCounters = Collectors<OperationKey, Counter>()

    /// Why a request failed to authenticate.
    public enum AuthFailure: String, Sendable, CaseIterable {
        /// The token is not a well-formed ES256 JWT.
        case malformedToken = "malformed_token"
        /// No provisioner has the key that signed it.
        case unknownKey = "unknown_key"
        case badSignature = "bad_signature"
        /// Its time window has passed, has not begun or is too long.
        case expiredToken = "token_time"
        case wrongAudience = "wrong_audience"
        /// A one-time token presented a second time.
        case replayedToken = "replayed_token"
        /// A certificate (mutual TLS or x5c) that this CA did not issue, or no credential at all.
        case certificate
        /// Anything else a token or certificate was refused for (claims, subject, names).
        case invalidCredential = "invalid_credential"
        /// An ACME request whose signature or account did not check out.
        case acme
    }

    public func authenticationFailed(_ reason: AuthFailure) {
        registry.makeCounter(descriptor: Self.authFailures, labels: [("reason", reason.rawValue)]).increment()
    }

    /// A request refused by the limiter after repeated authentication failures from its address.
    public func rateLimitedRequest() { rateLimited.increment() }
    private let rateLimited: Counter

    /// A name the CA had never issued a certificate for (the "unexpected issuance" signal).
    public func firstIssuance() { firstIssuanceCounter.increment() }
    private let firstIssuanceCounter: Counter

    // MARK: - Requests and the database

    /// The routes whose latency is measured (a bounded set: unknown paths are `other`).
    public enum Route: String, Sendable, CaseIterable {
        case sign, renew, revoke, crl, ocsp, roots, health, provisioners, acme, trust, dashboard, other
    }

    /// The time from a request's head to its response.
    public func request(_ route: Route, duration: Duration) {
        requestHistograms.collector(for: route) {
            registry.makeDurationHistogram(descriptor: Self.requestDuration, labels: [("route", route.rawValue)], buckets: Self.latencyBuckets)
        }.record(duration)
    }

    private let requestHistograms = Collectors<Route, DurationHistogram>()

    /// One database commit carrying `size` operations (group commit) that took `duration`.
    public func commit(size: Int, duration: Duration) {
        commitBatchSize.record(Double(size))
        commitDuration.record(duration)
    }

    private let commitBatchSize: ValueHistogram
    private let commitDuration: DurationHistogram

    // MARK: - ACME

    public enum OrderState: String, Sendable, CaseIterable {
        case created, valid, invalid
    }

    /// An ACME order entering `state`.
    public func acmeOrder(_ state: OrderState, provisioner: String) {
        acmeOrderCounters.collector(for: OrderKey(state: state, provisioner: provisioner)) {
            registry.makeCounter(descriptor: Self.acmeOrders, labels: [("provisioner", provisioner), ("state", state.rawValue)])
        }.increment()
    }

    private struct OrderKey: Hashable, Sendable {
        var state: OrderState
        var provisioner: String
    }

    private let acmeOrderCounters = Collectors<OrderKey, Counter>()

    /// A challenge validation that ended. `type` is the challenge type (http-01, dns-01, tls-alpn-01).
    public func acmeValidation(type: String, valid: Bool) {
        acmeValidationCounters.collector(for: ValidationKey(type: type, valid: valid)) {
            registry.makeCounter(descriptor: Self.acmeValidations, labels: [("type", type), ("outcome", valid ? "valid" : "invalid")])
        }.increment()
    }

    private struct ValidationKey: Hashable, Sendable {
        var type: String
        var valid: Bool
    }

    private let acmeValidationCounters = Collectors<ValidationKey, Counter>()

    // MARK: - The state of the CA (gauges)

    /// What the CA's records say now, computed from the database at most every few seconds.
    public struct Overview: Sendable, Equatable {
        /// Names whose newest certificate has passed its renewal point and not been renewed, with
        /// that certificate's expiry (seconds since 1970). Expired ones stay here for a week.
        public var overdue: [(name: String, expiry: Double)]
        /// Of those, the names whose newest certificate expires within 24 hours (or has expired).
        public var expiringSoon: Int
        /// Certificates not yet expired and not revoked.
        public var valid: Int

        public init(overdue: [(name: String, expiry: Double)], expiringSoon: Int, valid: Int) {
            self.overdue = overdue
            self.expiringSoon = expiringSoon
            self.valid = valid
        }

        public static func == (lhs: Overview, rhs: Overview) -> Bool {
            lhs.expiringSoon == rhs.expiringSoon && lhs.valid == rhs.valid
                && lhs.overdue.map(\.name) == rhs.overdue.map(\.name) && lhs.overdue.map(\.expiry) == rhs.overdue.map(\.expiry)
        }
    }

    /// At most this many names get their own `auto_ssl_renewal_overdue` series; the count covers all.
    public static let overdueSeriesLimit = 100

    public func setOverview(_ overview: Overview) {
        registry.makeGauge(descriptor: Self.namesOverdue).set(Double(overview.overdue.count))
        registry.makeGauge(descriptor: Self.namesExpiringSoon).set(Double(overview.expiringSoon))
        registry.makeGauge(descriptor: Self.validCertificates).set(Double(overview.valid))
        let shown = overview.overdue.prefix(Self.overdueSeriesLimit)
        overdueSeries.withLock { series in
            var current: [String: Gauge] = [:]
            for entry in shown {
                let gauge = series[entry.name] ?? registry.makeGauge(descriptor: Self.renewalOverdue, labels: [("name", entry.name)])
                gauge.set(entry.expiry)
                current[entry.name] = gauge
            }
            for (name, gauge) in series where current[name] == nil { registry.unregisterGauge(gauge) }
            series = current
        }
    }

    private let overdueSeries = Mutex<[String: Gauge]>([:])

    public enum CACertificate: String, Sendable {
        case root, intermediate
    }

    /// When the root or the current intermediate expires (seconds since 1970).
    public func setExpiry(of certificate: CACertificate, at seconds: Double) {
        registry.makeGauge(descriptor: Self.caExpiry, labels: [("certificate", certificate.rawValue)]).set(seconds)
    }

    /// Seconds since the current CRL was signed.
    public func setCRLAge(seconds: Double) {
        registry.makeGauge(descriptor: Self.crlAge).set(seconds)
    }

    /// The last backup run (`ca backup`, by hand or by the timer): when, and whether it worked;
    /// and the last that worked. Unknown times are not set.
    public func setBackup(lastRun: Double?, lastRunSucceeded: Bool?, lastSuccess: Double?) {
        if let lastRun { registry.makeGauge(descriptor: Self.backupLastRun).set(lastRun) }
        if let lastRunSucceeded { registry.makeGauge(descriptor: Self.backupLastRunSuccess).set(Double(lastRunSucceeded ? 1 : 0)) }
        if let lastSuccess { registry.makeGauge(descriptor: Self.backupLastSuccess).set(lastSuccess) }
    }

    /// 1 while the database answers, 0 while it does not (issuance is refused then).
    public func setDatabaseUp(_ up: Bool) {
        registry.makeGauge(descriptor: Self.databaseUp).set(Double(up ? 1 : 0))
    }

    /// How long computing the gauges from the database took.
    public func setRefreshDuration(_ duration: Duration) {
        let parts = duration.components
        registry.makeGauge(descriptor: Self.refreshDuration).set(Double(parts.seconds) + Double(parts.attoseconds) / 1e18)
    }

    /// The text exposition (Prometheus format 0.0.4).
    public func exposition() -> [UInt8] { registry.emitToBuffer() }

    public static let contentType = "text/plain; version=0.0.4; charset=utf-8"

    // MARK: - Families
    // (MetricNameDescriptor is a struct of immutable strings that the library does not mark Sendable.)

    static func descriptor(_ name: String, _ unit: String, _ help: String) -> MetricNameDescriptor {
        MetricNameDescriptor(namespace: "auto_ssl", metricName: name, unitName: unit, helpText: help)
    }

    nonisolated(unsafe) static let buildInfo = descriptor("build", "info", "The running auto-ssl's version.")
    nonisolated(unsafe) static let operations = descriptor(
        "certificate_operations", "total", "Certificate issuances, renewals and revocations by provisioner and outcome (ok, refused, failed).")
    nonisolated(unsafe) static let authFailures = descriptor("authentication_failures", "total", "Requests refused because their credential did not authenticate, by reason.")
    nonisolated(unsafe) static let rateLimitedDescriptor = descriptor("rate_limited_requests", "total", "Requests refused after repeated authentication failures from their address.")
    nonisolated(unsafe) static let firstIssuances = descriptor(
        "first_issuances", "total", "Certificates issued for a name this CA had never issued for before (each is also an audit line).")
    nonisolated(unsafe) static let requestDuration = descriptor("request_duration", "seconds", "Time to answer a request, by route.")
    nonisolated(unsafe) static let commitBatch = descriptor("commit_batch", "size", "Operations carried by one database commit (group commit).")
    nonisolated(unsafe) static let commitLatency = descriptor("commit_duration", "seconds", "Time one database commit took.")
    nonisolated(unsafe) static let acmeOrders = descriptor("acme_orders", "total", "ACME orders entering a state (created, valid, invalid).")
    nonisolated(unsafe) static let acmeValidations = descriptor("acme_validations", "total", "ACME challenge validations by type and outcome.")
    nonisolated(unsafe) static let namesOverdue = descriptor(
        "names_renewal_overdue", "", "Names whose newest certificate passed its renewal point (2/3 of its lifetime) without a renewal.")
    nonisolated(unsafe) static let namesExpiringSoon = descriptor(
        "names_expiring_soon", "", "Names whose newest certificate expires within 24 hours (or expired in the last week) without a renewal.")
    nonisolated(unsafe) static let validCertificates = descriptor("certificates_valid", "", "Certificates not yet expired and not revoked.")
    nonisolated(unsafe) static let renewalOverdue = descriptor(
        "renewal_overdue_expiry", "timestamp_seconds", "For each name overdue for renewal (at most 100): when its newest certificate expires.")
    nonisolated(unsafe) static let caExpiry = descriptor("ca_certificate_expiry", "timestamp_seconds", "When the root and the current intermediate expire.")
    nonisolated(unsafe) static let crlAge = descriptor("crl_age", "seconds", "Seconds since the current CRL was signed.")
    nonisolated(unsafe) static let backupLastRun = descriptor("backup_last_run", "timestamp_seconds", "When the last backup ran.")
    nonisolated(unsafe) static let backupLastRunSuccess = descriptor("backup_last_run_success", "", "1 if the last backup worked, 0 if it failed.")
    nonisolated(unsafe) static let backupLastSuccess = descriptor("backup_last_success", "timestamp_seconds", "When the last backup that worked ran.")
    nonisolated(unsafe) static let databaseUp = descriptor("database_up", "", "1 while the CA's database answers, 0 while it does not.")
    nonisolated(unsafe) static let refreshDuration = descriptor("metrics_refresh", "seconds", "Time the last computation of the database gauges took.")

    /// 0.5 ms to 10 s.
    static let latencyBuckets: [Duration] = [
        .microseconds(500), .milliseconds(1), .milliseconds(2), .milliseconds(5), .milliseconds(10), .milliseconds(25),
        .milliseconds(50), .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1), .seconds(2.5), .seconds(5), .seconds(10),
    ]
    static let batchBuckets: [Double] = [1, 2, 4, 8, 16, 32, 64, 128]
}

/// The collectors of one labelled family already made, by their label values. The registry's
/// `make` validates the name and the labels and looks them up under its lock on every call, which
/// cost about 1 % of the server's CPU under ACME load when done for every request; a collector
/// found here costs one uncontended lock and a hash of the key. The keys come from the same
/// bounded vocabulary as the labels, so this holds no more than the registry does.
final class Collectors<Key: Hashable & Sendable, Collector: Sendable>: Sendable {
    private let made = Mutex<[Key: Collector]>([:])

    /// The collector for `key`; `make` (the registry's, which returns the same collector for the
    /// same labels every time) runs the first time only.
    func collector(for key: Key, make: () -> Collector) -> Collector {
        if let found = made.withLock({ $0[key] }) { return found }
        let collector = make()
        made.withLock { $0[key] = collector }
        return collector
    }
}
