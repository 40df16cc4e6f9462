import Foundation
import Synchronization

/// Slows down guessing: after `limit` authentication failures from one address within `window`,
/// that address is refused (HTTP 429) until its oldest failure leaves the window.
/// A lock rather than an actor: it is consulted on every request, and an actor hop per request
/// costs more than the check itself.
public final class FailureLimiter: Sendable {
    public let limit: Int
    public let window: TimeInterval
    /// Addresses remembered at most (see `SourceTable`): when they fill up, those whose failures
    /// have all left the window are forgotten, and if more than half remain, all but the half that
    /// failed last.
    public let maximumAddresses: Int

    /// The failures of one address, oldest first: at most the last `limit`, since only those
    /// decide anything.
    private struct Failures: SourceTableEntry {
        var times: [Date]
        var lastActive: Date { times.last ?? .distantPast }

        /// The failures still in the window that ends now.
        func recent(after cutoff: Date) -> [Date] { times.filter { $0 > cutoff } }
    }

    private let state: Mutex<SourceTable<Failures>>

    public init(limit: Int = 10, window: TimeInterval = 60, maximumAddresses: Int = 100_000) {
        self.limit = limit
        self.window = window
        self.maximumAddresses = max(maximumAddresses, 2)
        state = Mutex(SourceTable(capacity: self.maximumAddresses))
    }

    /// Seconds to wait before trying again, or nil when the address may proceed.
    public func retryAfter(_ address: String, now: Date = Date()) -> Int? {
        state.withLock { table in
            // Fast path: an address that never failed (the common case) costs one lookup.
            guard let failures = table[address] else { return nil }
            let cutoff = now.addingTimeInterval(-window)
            let recent = failures.recent(after: cutoff)
            // What has left the window is forgotten here too, not only in the table's sweeps.
            if recent.isEmpty {
                table.remove(address)
            } else if recent.count < failures.times.count {
                table.store(Failures(times: recent), for: address, liveAfter: cutoff)
            }
            guard recent.count >= limit, let oldest = recent.first else { return nil }
            return max(1, Int((oldest.addingTimeInterval(window).timeIntervalSince(now)).rounded(.up)))
        }
    }

    public func recordFailure(_ address: String, now: Date = Date()) {
        state.withLock { table in
            let cutoff = now.addingTimeInterval(-window)
            var recent = table[address]?.recent(after: cutoff) ?? []
            recent.append(now)
            // Only the last `limit` failures decide anything.
            if recent.count > limit { recent.removeFirst(recent.count - limit) }
            // Memory stays bounded however many addresses fail (an IPv6 network has plenty of them).
            table.store(Failures(times: recent), for: address, liveAfter: cutoff)
        }
    }

    /// The number of addresses remembered (for tests).
    var rememberedAddresses: Int { state.withLock { $0.count } }

    /// The failures remembered for `address` (for tests).
    func recordedFailures(_ address: String) -> Int { state.withLock { $0[address]?.times.count ?? 0 } }
}
