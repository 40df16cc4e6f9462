import Foundation
import Synchronization

/// How many audit lines a source address may cause with requests the CA refused before reading
/// them (rate-limited, too large, malformed): at most `perWindow` a minute each. Anyone can send
/// such requests, and a line for each would let them fill the CA's disk (and journal); the
/// metrics still count every one. When a new minute starts, its first line says how many were
/// left out in the one before.
final class AuditThrottle: Sendable {
    struct Slot {
        var windowStart: Date
        var written: Int
        var leftOut: Int
    }

    let perWindow: Int
    let window: TimeInterval
    /// Sources remembered at once; past that, those whose minute is over are forgotten (and if
    /// none is, all of them: the cost is a few more lines, never a missed refusal in the metrics).
    let maximumSources: Int
    private let slots = Mutex<[String: Slot]>([:])

    init(perWindow: Int = 10, window: TimeInterval = 60, maximumSources: Int = 10_000) {
        self.perWindow = perWindow
        self.window = window
        self.maximumSources = maximumSources
    }

    /// Nil when this line is to be left out; otherwise how many lines from `source` were left
    /// out in its previous minute.
    func admit(_ source: String, now: Date = Date()) -> Int? {
        slots.withLock { slots in
            if slots[source] == nil, slots.count >= maximumSources {
                slots = slots.filter { now.timeIntervalSince($0.value.windowStart) < window }
                if slots.count >= maximumSources { slots.removeAll() }
            }
            guard var slot = slots[source], now.timeIntervalSince(slot.windowStart) < window, now >= slot.windowStart else {
                let leftOut = slots[source]?.leftOut ?? 0
                slots[source] = Slot(windowStart: now, written: 1, leftOut: 0)
                return leftOut
            }
            guard slot.written < perWindow else {
                slot.leftOut += 1
                slots[source] = slot
                return nil
            }
            slot.written += 1
            slots[source] = slot
            return 0
        }
    }
}
