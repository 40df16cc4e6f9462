import Foundation
import Synchronization

/// Slows down guessing: after `limit` authentication failures from one address within `window`,
/// that address is refused (HTTP 429) until its oldest failure leaves the window.
/// A lock rather than an actor: it is consulted on every request, and an actor hop per request
/// costs more than the check itself.
public final class FailureLimiter: Sendable {
    public let limit: Int
    public let window: TimeInterval
    private let failures = Mutex<[String: [Date]]>([:])

    public init(limit: Int = 10, window: TimeInterval = 60) {
        self.limit = limit
        self.window = window
    }

    /// Seconds to wait before trying again, or nil when the address may proceed.
    public func retryAfter(_ address: String, now: Date = Date()) -> Int? {
        failures.withLock { failures in
            // Fast path: an address that never failed (the common case) costs one lookup.
            guard failures[address] != nil else { return nil }
            let recent = Self.prune(&failures, address, now: now, window: window)
            guard recent.count >= limit, let oldest = recent.first else { return nil }
            return max(1, Int((oldest.addingTimeInterval(window).timeIntervalSince(now)).rounded(.up)))
        }
    }

    public func recordFailure(_ address: String, now: Date = Date()) {
        failures.withLock { failures in
            var recent = Self.prune(&failures, address, now: now, window: window)
            recent.append(now)
            failures[address] = recent
            // Keep memory bounded when many addresses fail once: drop entries that aged out.
            if failures.count > 10_000 {
                failures = failures.filter { !$0.value.isEmpty && $0.value.last! > now.addingTimeInterval(-window) }
            }
        }
    }

    private static func prune(_ failures: inout [String: [Date]], _ address: String, now: Date, window: TimeInterval) -> [Date] {
        let recent = (failures[address] ?? []).filter { $0 > now.addingTimeInterval(-window) }
        failures[address] = recent.isEmpty ? nil : recent
        return recent
    }
}
