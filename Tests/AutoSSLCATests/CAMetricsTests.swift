import AutoSSLMetrics
import Foundation
import Testing

/// The per-event collectors are made once per label set and kept: repeated events add up on one
/// series, each label set has its own, and a series appears only once something was counted.
@Suite struct CAMetricsTests {
    static func lines(_ metrics: CAMetrics, _ prefix: String) -> [String] {
        String(decoding: metrics.exposition(), as: UTF8.self).split(separator: "\n").map(String.init).filter { $0.hasPrefix(prefix) }
    }

    @Test func repeatedEventsAddUpOnTheSeriesOfTheirLabels() {
        let metrics = CAMetrics(version: "test")
        #expect(Self.lines(metrics, "auto_ssl_acme_orders_total{").isEmpty)
        #expect(Self.lines(metrics, "auto_ssl_request_duration_seconds_count{").isEmpty)
        for _ in 0..<3 { metrics.acmeOrder(.created, provisioner: "acme/a") }
        metrics.acmeOrder(.created, provisioner: "acme/b")
        metrics.acmeOrder(.valid, provisioner: "acme/a")
        for _ in 0..<4 { metrics.request(.acme, duration: .milliseconds(2)) }
        metrics.request(.sign, duration: .milliseconds(1))
        for _ in 0..<2 { metrics.operation(.issue, provisioner: "admin", outcome: .ok) }
        metrics.operation(.issue, provisioner: "admin", outcome: .refused)
        metrics.acmeValidation(type: "http-01", valid: true)
        metrics.acmeValidation(type: "http-01", valid: true)
        metrics.acmeValidation(type: "dns-01", valid: false)

        let orders = Self.lines(metrics, "auto_ssl_acme_orders_total{")
        #expect(orders.count == 3, "\(orders)")
        #expect(orders.contains { $0.contains(#"provisioner="acme/a""#) && $0.contains(#"state="created""#) && $0.hasSuffix(" 3") })
        #expect(orders.contains { $0.contains(#"provisioner="acme/b""#) && $0.hasSuffix(" 1") })
        let requests = Self.lines(metrics, "auto_ssl_request_duration_seconds_count{")
        #expect(requests.count == 2 && requests.contains { $0.contains(#"route="acme""#) && $0.hasSuffix(" 4") }, "\(requests)")
        let operations = Self.lines(metrics, "auto_ssl_certificate_operations_total{")
        #expect(operations.count == 2 && operations.contains { $0.contains(#"outcome="ok""#) && $0.hasSuffix(" 2") }, "\(operations)")
        let validations = Self.lines(metrics, "auto_ssl_acme_validations_total{")
        #expect(validations.count == 2 && validations.contains { $0.contains(#"type="http-01""#) && $0.hasSuffix(" 2") }, "\(validations)")
    }
}
