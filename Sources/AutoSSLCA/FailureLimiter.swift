import Foundation

/// Slows down guessing: after `limit` authentication failures from one address within `window`,
/// that address is refused (HTTP 429) until its oldest failure leaves the window.
public actor FailureLimiter {
    public let limit: Int
    public let window: TimeInterval
    private var failures: [String: [Date]] = [:]

    public init(limit: Int = 10, window: TimeInterval = 60) {
        self.limit = limit
        self.window = window
    }

    /// Seconds to wait before trying again, or nil when the address may proceed.
    public func retryAfter(_ address: String, now: Date = Date()) -> Int? {
        let recent = prune(address, now: now)
        guard recent.count >= limit, let oldest = recent.first else { return nil }
        return max(1, Int((oldest.addingTimeInterval(window).timeIntervalSince(now)).rounded(.up)))
    }

    public func recordFailure(_ address: String, now: Date = Date()) {
        var recent = prune(address, now: now)
        recent.append(now)
        failures[address] = recent
        // Keep memory bounded when many addresses fail once: drop entries that aged out.
        if failures.count > 10_000 {
            failures = failures.filter { !$0.value.isEmpty && $0.value.last! > now.addingTimeInterval(-window) }
        }
    }

    private func prune(_ address: String, now: Date) -> [Date] {
        let recent = (failures[address] ?? []).filter { $0 > now.addingTimeInterval(-window) }
        failures[address] = recent.isEmpty ? nil : recent
        return recent
    }
}
