import Foundation
import Synchronization

/// Slows down guessing: after `limit` authentication failures from one address within `window`,
/// that address is refused (HTTP 429) until its oldest failure leaves the window.
/// A lock rather than an actor: it is consulted on every request, and an actor hop per request
/// costs more than the check itself.
public final class FailureLimiter: Sendable {
    public let limit: Int
    public let window: TimeInterval
    /// Addresses remembered at most; past it, those whose last failure is oldest are forgotten.
    public let maximumAddresses: Int

    private struct State {
        var failures: [String: [Date]] = [:]
        /// The count of addresses at which aged-out ones are swept next: twice what is left after
        /// a sweep, so that a sweep's cost is spread over as many failures as it examines.
        var sweepAt: Int
    }

    private let state: Mutex<State>

    public init(limit: Int = 10, window: TimeInterval = 60, maximumAddresses: Int = 100_000) {
        self.limit = limit
        self.window = window
        self.maximumAddresses = max(maximumAddresses, 2)
        state = Mutex(State(sweepAt: min(10_000, self.maximumAddresses)))
    }

    /// Seconds to wait before trying again, or nil when the address may proceed.
    public func retryAfter(_ address: String, now: Date = Date()) -> Int? {
        state.withLock { state in
            // Fast path: an address that never failed (the common case) costs one lookup.
            guard state.failures[address] != nil else { return nil }
            let recent = Self.prune(&state.failures, address, now: now, window: window)
            guard recent.count >= limit, let oldest = recent.first else { return nil }
            return max(1, Int((oldest.addingTimeInterval(window).timeIntervalSince(now)).rounded(.up)))
        }
    }

    public func recordFailure(_ address: String, now: Date = Date()) {
        state.withLock { state in
            var recent = Self.prune(&state.failures, address, now: now, window: window)
            recent.append(now)
            // Only the last `limit` failures decide anything.
            if recent.count > limit { recent.removeFirst(recent.count - limit) }
            state.failures[address] = recent
            // Memory stays bounded when many addresses fail (an IPv6 network has plenty of them),
            // and each failure costs O(1) amortized: a sweep runs only once the count has doubled.
            guard state.failures.count >= state.sweepAt else { return }
            let cutoff = now.addingTimeInterval(-window)
            state.failures = state.failures.filter { ($0.value.last ?? .distantPast) > cutoff }
            if state.failures.count > maximumAddresses / 2 {
                let kept = state.failures.sorted { ($0.value.last ?? .distantPast) > ($1.value.last ?? .distantPast) }
                    .prefix(maximumAddresses / 2)
                state.failures = Dictionary(kept.map { ($0.key, $0.value) }, uniquingKeysWith: { first, _ in first })
            }
            state.sweepAt = min(max(10_000, state.failures.count * 2), maximumAddresses)
        }
    }

    /// The number of addresses remembered (for tests).
    var rememberedAddresses: Int { state.withLock { $0.failures.count } }

    /// The failures remembered for `address` (for tests).
    func recordedFailures(_ address: String) -> Int { state.withLock { $0.failures[address]?.count ?? 0 } }

    private static func prune(_ failures: inout [String: [Date]], _ address: String, now: Date, window: TimeInterval) -> [Date] {
        let recent = (failures[address] ?? []).filter { $0 > now.addingTimeInterval(-window) }
        failures[address] = recent.isEmpty ? nil : recent
        return recent
    }
}
