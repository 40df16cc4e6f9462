import AutoSSLCA
import AutoSSLMetrics
import AutoSSLStore
import Foundation
import Testing

/// The rule behind `auto_ssl_names_renewal_overdue` and `auto_ssl_names_expiring_soon`.
@Suite struct CAOverviewTests {
    let now = Date(timeIntervalSince1970: 2_000_000_000)
    let week: TimeInterval = 7 * 86_400

    /// A 7-day certificate for `names` issued `age` seconds before `now`.
    func certificate(_ names: [String], age: TimeInterval, revoked: Bool = false) -> CertificateLifetime {
        CertificateLifetime(names: names, notBefore: now.addingTimeInterval(-age), notAfter: now.addingTimeInterval(week - age), revoked: revoked)
    }

    @Test func aNameIsOverdueOnlyWhenItsNewestCertificateIsPastThreeQuartersOfItsLifetime() {
        let overview = CAOverview.compute([
            certificate(["renewed.internal"], age: 6 * 86_400),  // old one, but renewed since
            certificate(["renewed.internal"], age: 86_400),
            certificate(["fresh.internal"], age: 4 * 86_400),  // past 2/3 (4.67 d)? no: 4 d
            certificate(["late.internal", "10.0.0.1"], age: 5.5 * 86_400),  // past 3/4 (5.25 d)
        ], now: now)
        #expect(overview.overdue.map(\.name).sorted() == ["10.0.0.1", "late.internal"])
        #expect(overview.expiringSoon == 0)
        #expect(overview.valid == 4)
    }

    @Test func expiringSoonCountsOverdueNamesWithinADayOfExpiryOrAlreadyExpired() {
        let overview = CAOverview.compute([
            certificate(["soon.internal"], age: 6.5 * 86_400),
            certificate(["expired.internal"], age: 8 * 86_400),
            certificate(["revoked.internal"], age: 6.9 * 86_400, revoked: true),
        ], now: now)
        #expect(overview.overdue.map(\.name) == ["expired.internal", "soon.internal"], "the soonest to expire first")
        #expect(overview.expiringSoon == 2)
        #expect(overview.valid == 1, "expired and revoked certificates are not valid")
    }

    @Test func aRevokedNewestCertificateIsNotOverdue() {
        let overview = CAOverview.compute([
            certificate(["ended.internal"], age: 6 * 86_400, revoked: true),
        ], now: now)
        #expect(overview.overdue.isEmpty)
    }

    @Test func theGaugesKeepAtMostAHundredNamedSeriesAndDropNamesThatRecovered() {
        let metrics = CAMetrics(version: "test")
        let many = (0..<150).map { certificate(["n\($0).internal"], age: 6 * 86_400) }
        metrics.setOverview(CAOverview.compute(many, now: now))
        var text = String(decoding: metrics.exposition(), as: UTF8.self)
        #expect(text.contains("auto_ssl_names_renewal_overdue 150"))
        #expect(text.split(separator: "\n").filter { $0.hasPrefix("auto_ssl_renewal_overdue_expiry_timestamp_seconds{") }.count == 100)
        metrics.setOverview(CAOverview.compute([certificate(["n1.internal"], age: 6 * 86_400)], now: now))
        text = String(decoding: metrics.exposition(), as: UTF8.self)
        let series = text.split(separator: "\n").filter { $0.hasPrefix("auto_ssl_renewal_overdue_expiry_timestamp_seconds{") }
        #expect(series.count == 1 && series[0].contains(#"name="n1.internal""#), "\(series)")
    }
}
