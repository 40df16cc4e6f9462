import Foundation
import Synchronization

/// How many audit lines a source address may cause with requests the CA refused before reading
/// them (rate-limited, too large, malformed): at most `perWindow` a minute each. Anyone can send
/// such requests, and a line for each would let them fill the CA's disk (and journal); the
/// metrics still count every one. When a new minute starts, its first line says how many were
/// left out in the one before.
final class AuditThrottle: Sendable {
    struct Slot: SourceTableEntry {
        var windowStart: Date
        var written: Int
        var leftOut: Int
        /// A source matters while its minute lasts; after that, only an unreported `leftOut` is
        /// lost by forgetting it.
        var lastActive: Date { windowStart }
    }

    let perWindow: Int
    let window: TimeInterval
    /// Sources remembered at most (see `SourceTable`): when they fill up, those whose minute is
    /// over are forgotten, and if more than half remain, all but the half whose minutes started
    /// last. A source forgotten early gets a fresh share and its left-out count goes unreported:
    /// the cost is a few more lines, never a missed refusal in the metrics.
    let maximumSources: Int
    private let slots: Mutex<SourceTable<Slot>>

    init(perWindow: Int = 10, window: TimeInterval = 60, maximumSources: Int = 10_000) {
        self.perWindow = perWindow
        self.window = window
        self.maximumSources = max(maximumSources, 2)
        slots = Mutex(SourceTable(capacity: self.maximumSources))
    }

    /// Nil when this line is to be left out; otherwise how many lines from `source` were left
    /// out in its previous minute.
    func admit(_ source: String, now: Date = Date()) -> Int? {
        slots.withLock { slots in
            let cutoff = now.addingTimeInterval(-window)
            guard var slot = slots[source], slot.windowStart > cutoff, now >= slot.windowStart else {
                let leftOut = slots[source]?.leftOut ?? 0
                slots.store(Slot(windowStart: now, written: 1, leftOut: 0), for: source, liveAfter: cutoff)
                return leftOut
            }
            guard slot.written < perWindow else {
                slot.leftOut += 1
                slots.store(slot, for: source, liveAfter: cutoff)
                return nil
            }
            slot.written += 1
            slots.store(slot, for: source, liveAfter: cutoff)
            return 0
        }
    }

    /// The number of sources remembered (for tests).
    var rememberedSources: Int { slots.withLock { $0.count } }
}
