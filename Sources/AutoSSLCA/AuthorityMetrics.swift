import AutoSSLMetrics
import AutoSSLStore
import Foundation
import Logging
import Synchronization

/// What the authority reports to `CAMetrics`: the outcome of every certificate operation, the first
/// issuance for a name, and the gauges computed from its records.
extension Authority {
    /// Counts one certificate operation by its outcome. `provisioner` is read when the work ends, so
    /// the work can name the provisioner once it knows it.
    func counted<T>(
        _ operation: CAMetrics.Operation, provisioner: ProvisionerLabel,
        outcome success: (T) -> CAMetrics.Outcome = { _ in .ok }, _ work: () async throws -> T
    ) async throws -> T {
        do {
            let result = try await work()
            metrics.operation(operation, provisioner: provisioner.name, outcome: success(result))
            return result
        } catch {
            metrics.operation(operation, provisioner: provisioner.name, outcome: Self.outcome(of: error))
            throw error
        }
    }

    /// Refusals are the requester's (authentication, policy, a bad request); the rest is the CA's
    /// failure (its database unavailable, an internal error).
    static func outcome(of error: any Error) -> CAMetrics.Outcome {
        guard let refusal = error as? AuthorityError, refusal.kind != .unavailable else { return .failed }
        return .refused
    }

    /// Tells the first-issuance watch about a durable issuance (after the response is on its way:
    /// the check never delays a certificate).
    func noteIssued(names: [String], serial: String, provisioner: String, remote: String?, now: Date) {
        let unseen = firstIssuances.unseen(names)
        guard !unseen.isEmpty else { return }
        Task { [self] in
            for name in unseen {
                // Another replica may have issued for it since this one started.
                if replicated != nil, (try? await store.hasIssued(name: name, otherThan: serial)) ?? false { continue }
                metrics.firstIssuance()
                audit.record(.init(
                    "certificate.first-issuance", time: now, serial: serial, sans: [name], provisioner: provisioner, remote: remote,
                    detail: "the first certificate this CA issued for \(name)"))
            }
        }
    }

    /// Sets the gauges that describe the CA from its records: names overdue for renewal or
    /// expiring, valid certificates, the CA certificates' expiry and the CRL's age.
    public func refreshMetrics(now: Date = Date()) async throws {
        let started = ContinuousClock.now
        let lifetimes = try await store.lifetimes(notExpiredBefore: now.addingTimeInterval(-CAOverview.expiredRetention))
        metrics.setOverview(CAOverview.compute(lifetimes, now: now))
        metrics.setExpiry(of: .root, at: root.notValidAfter.timeIntervalSince1970)
        metrics.setExpiry(of: .intermediate, at: intermediate.notValidAfter.timeIntervalSince1970)
        // The CRL is made when first asked for (or due): make sure there is one to give the age of.
        _ = try await crl.current(now: now)
        if let signed = await crl.generatedAt { metrics.setCRLAge(seconds: max(0, now.timeIntervalSince(signed))) }
        metrics.setRefreshDuration(.now - started)
    }
}

/// The provisioner an operation is counted under, named by the operation once it knows it.
final class ProvisionerLabel: @unchecked Sendable {
    var name = "unknown"
    init(_ name: String = "unknown") { self.name = name }
}

/// Names this CA has issued for, so the first certificate for a new name is noticed. Filled from the
/// database when the CA starts; a name missing from it is new on this replica (and, once the
/// database confirms it on PostgreSQL, new to the CA).
///
/// A name is kept as its 64-bit hash (Swift's `Hasher`: SipHash with a key drawn at process
/// start, so no client can choose names that collide): 8 bytes each instead of the name itself,
/// which made the memory of a CA grow by about 100 bytes for every name it ever issued for
/// (12 MiB after 115,000 names; docs/benchmarks.md). Two names sharing a hash (about one chance in
/// 10^8 for a million names) would only leave the second one's first issuance unreported.
final class FirstIssuanceWatch: Sendable {
    private let known = Mutex<Set<Int>?>(nil)

    /// Before `load`, nothing is reported: the CA does not yet know which names are new.
    func load(_ names: some Sequence<String>) {
        var hashes = Set<Int>()
        for name in names { hashes.insert(name.hashValue) }
        known.withLock { $0 = hashes }
    }

    /// The names not seen before, now remembered.
    func unseen(_ names: [String]) -> [String] {
        known.withLock { known in
            guard known != nil else { return [] }
            return names.filter { known?.insert($0.hashValue).inserted == true }
        }
    }
}

/// The rule behind the renewal gauges and the fleet view (`Fleet`, `ca fleet`, the dashboard).
public enum CAOverview {
    /// Servers renew at 2/3 of the lifetime; a name is overdue once its newest certificate is past
    /// 3/4 (a margin for the renewal timer's schedule: 14 hours of a 7-day certificate).
    public static let overdueFraction = 0.75
    /// Expired certificates count for this long (a server that stopped a week ago is decommissioned
    /// or forgotten; its alert should not ring forever).
    public static let expiredRetention: TimeInterval = 7 * 86_400
    /// "Expiring soon": within this.
    public static let soon: TimeInterval = 86_400

    /// The newest (by notBefore) of `items`; nil when there are none.
    public static func newest<Item>(_ items: [Item], lifetime: (Item) -> CertificateLifetime) -> Item? {
        var newest: Item?
        for item in items {
            if let current = newest, lifetime(current).notBefore >= lifetime(item).notBefore { continue }
            newest = item
        }
        return newest
    }

    /// For each name, its newest certificate (by notBefore).
    public static func newestPerName(_ lifetimes: [CertificateLifetime]) -> [String: CertificateLifetime] {
        var newest: [String: CertificateLifetime] = [:]
        for lifetime in lifetimes {
            for name in lifetime.names {
                if let current = newest[name], current.notBefore >= lifetime.notBefore { continue }
                newest[name] = lifetime
            }
        }
        return newest
    }

    /// The point past which a certificate with no newer one is overdue.
    public static func renewalPoint(of lifetime: CertificateLifetime) -> Date {
        lifetime.notBefore.addingTimeInterval(lifetime.notAfter.timeIntervalSince(lifetime.notBefore) * overdueFraction)
    }

    /// The state of a newest certificate: revoked ones were ended on purpose and are not overdue;
    /// otherwise it is overdue past `overdueFraction` of its lifetime, expiring when that leaves
    /// less than `soon`, expired past notAfter.
    public static func state(of lifetime: CertificateLifetime, now: Date) -> FleetState {
        if lifetime.revoked { return .revoked }
        guard now > renewalPoint(of: lifetime) else { return .healthy }
        if lifetime.notAfter <= now { return .expired }
        return lifetime.notAfter.timeIntervalSince(now) < soon ? .expiring : .renewalOverdue
    }

    /// For each name, its newest certificate's state: overdue names (expiring and expired ones
    /// included), how many of them expire within `soon` (or did), and the valid certificates.
    public static func compute(_ lifetimes: [CertificateLifetime], now: Date) -> CAMetrics.Overview {
        let valid = lifetimes.filter { !$0.revoked && $0.notAfter > now }.count
        var overdue: [(name: String, expiry: Double)] = []
        var expiringSoon = 0
        for (name, lifetime) in newestPerName(lifetimes) {
            switch state(of: lifetime, now: now) {
            case .healthy, .revoked: continue
            case .renewalOverdue: break
            case .expiring, .expired: expiringSoon += 1
            }
            overdue.append((name, lifetime.notAfter.timeIntervalSince1970))
        }
        // The soonest to expire first (they matter most when only some get their own series).
        overdue.sort { $0.expiry != $1.expiry ? $0.expiry < $1.expiry : $0.name < $1.name }
        return CAMetrics.Overview(overdue: overdue, expiringSoon: expiringSoon, valid: valid)
    }
}

extension Authority {
    /// Loads the names already issued for, so that from now on the first certificate for a new
    /// name is counted and audited (`certificate.first-issuance`). For `ca serve`.
    public func watchFirstIssuances() async throws {
        firstIssuances.load(try await store.issuedNames())
    }
}
