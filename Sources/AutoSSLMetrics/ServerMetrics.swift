import Prometheus

/// What an application server reports after every `server renew` run (and after enrollment), for
/// node exporter's textfile collector: a snapshot of the enrolled certificate and of its renewals.
/// The families are defined here and only here; the alert rules in `contrib/prometheus` use them.
///
/// Times are seconds since 1970. A value that is not known (no certificate readable, no attempt
/// yet) is left out rather than written as 0, so an alert on it cannot fire on a made-up time.
public struct ServerMetrics: Sendable, Equatable {
    /// The `certificate` label: the certificate's first name (its subject CN).
    public var certificate: String
    /// When this run happened.
    public var run: Double
    /// The installed certificate's notAfter; nil when it cannot be read.
    public var expiry: Double?
    /// The installed certificate's renewal point; nil when it cannot be read.
    public var renewalDue: Double?
    /// The last attempt recorded (enrolled, renewed, skipped while suspended, failed).
    public var lastAttempt: Double?
    /// The last attempt that got a certificate (enrollment or renewal).
    public var lastSuccess: Double?
    public var failuresInARow: Int
    public var suspended: Bool
    /// The installed certificate is known to be revoked.
    public var revoked: Bool
    /// What `server status` calls healthy: a certificate installed, readable, not expired, not revoked.
    public var healthy: Bool

    public init(
        certificate: String, run: Double, expiry: Double?, renewalDue: Double?, lastAttempt: Double?, lastSuccess: Double?,
        failuresInARow: Int, suspended: Bool, revoked: Bool, healthy: Bool
    ) {
        self.certificate = certificate
        self.run = run
        self.expiry = expiry
        self.renewalDue = renewalDue
        self.lastAttempt = lastAttempt
        self.lastSuccess = lastSuccess
        self.failuresInARow = failuresInARow
        self.suspended = suspended
        self.revoked = revoked
        self.healthy = healthy
    }

    /// The text exposition (Prometheus format 0.0.4, which node exporter's textfile collector reads):
    /// HELP and TYPE lines, one gauge per family, each labelled with `certificate`.
    public func exposition() -> [UInt8] {
        let registry = PrometheusCollectorRegistry()
        let labels = [("certificate", certificate)]
        func gauge(_ descriptor: MetricNameDescriptor, _ value: Double?) {
            guard let value, value.isFinite else { return }
            registry.makeGauge(descriptor: descriptor, labels: labels).set(value)
        }
        gauge(Self.expiryDescriptor, expiry)
        gauge(Self.renewalDueDescriptor, renewalDue)
        gauge(Self.lastRunDescriptor, run)
        gauge(Self.lastAttemptDescriptor, lastAttempt)
        gauge(Self.lastSuccessDescriptor, lastSuccess)
        gauge(Self.failuresDescriptor, Double(max(failuresInARow, 0)))
        gauge(Self.suspendedDescriptor, suspended ? 1 : 0)
        gauge(Self.revokedDescriptor, revoked ? 1 : 0)
        gauge(Self.healthyDescriptor, healthy ? 1 : 0)
        return registry.emitToBuffer()
    }

    // MARK: - Families (computed: the library's descriptor type is not Sendable)

    static func descriptor(_ name: String, _ unit: String, _ help: String) -> MetricNameDescriptor {
        MetricNameDescriptor(namespace: "auto_ssl", subsystem: "server", metricName: name, unitName: unit, helpText: help)
    }

    static var expiryDescriptor: MetricNameDescriptor {
        descriptor("certificate_expiry", "timestamp_seconds", "When the installed certificate expires (absent when it cannot be read).")
    }
    static var renewalDueDescriptor: MetricNameDescriptor {
        descriptor("renewal_due", "timestamp_seconds", "When the installed certificate reaches its renewal point (2/3 of its lifetime unless configured).")
    }
    static var lastRunDescriptor: MetricNameDescriptor {
        descriptor("renewal_last_run", "timestamp_seconds", "When auto-ssl server renew last ran (due or not, suspended, failed: every run).")
    }
    static var lastAttemptDescriptor: MetricNameDescriptor {
        descriptor("renewal_last_attempt", "timestamp_seconds", "When the last renewal attempt was recorded (enrolled, renewed, skipped while suspended, failed).")
    }
    static var lastSuccessDescriptor: MetricNameDescriptor {
        descriptor("renewal_last_success", "timestamp_seconds", "When a certificate was last obtained (enrollment or renewal).")
    }
    static var failuresDescriptor: MetricNameDescriptor {
        descriptor("renewal_failures_in_a_row", "", "Renewal attempts that failed since the last one that worked.")
    }
    static var suspendedDescriptor: MetricNameDescriptor {
        descriptor("renewal_suspended", "", "1 while scheduled renewals are suspended (auto-ssl server suspend, or after a revocation), else 0.")
    }
    static var revokedDescriptor: MetricNameDescriptor {
        descriptor("certificate_revoked", "", "1 when the installed certificate is known to be revoked (it cannot be renewed), else 0.")
    }
    static var healthyDescriptor: MetricNameDescriptor {
        descriptor("certificate_healthy", "", "1 when a certificate is installed, readable, not expired and not revoked (auto-ssl server status exits 0), else 0.")
    }
}
