import Foundation

/// What a `SourceTable` needs to know of an entry: when its source last did something that counts.
/// An entry is live while that lies within its owner's window; when the table must forget live
/// entries too, it keeps those whose `lastActive` is latest.
protocol SourceTableEntry {
    var lastActive: Date { get }
}

/// Per-source state (a client's authentication failures, a source's audit lines) keyed by
/// address, in bounded memory. Anyone can send requests from many addresses (an IPv6 network has
/// plenty of them), so a table that remembered each one would grow without end; this one holds at
/// most `capacity` entries. What an entry counts, and when it stops mattering, is its owner's
/// business; the table only forgets.
///
/// It forgets in sweeps rather than one entry per insert, since finding the least recent entry
/// would take a scan each time. A sweep runs when the count reaches a threshold: it forgets the
/// entries that are no longer live, and if more than half of `capacity` are still live, all but
/// the most recently active half. The next threshold is twice the count a sweep leaves (at least
/// `minimumSweep`, at most `capacity`), so a sweep examines at most twice as many entries as were
/// added since the one before: an insert costs O(1) amortized, O(log n) when a sweep has to sort a
/// table that is more than half full of live entries.
///
/// Not thread-safe: its owner keeps it under a lock, together with whatever else that lock guards.
struct SourceTable<Entry: SourceTableEntry> {
    /// The fewest entries at which a sweep runs (unless `capacity` is smaller): below it, the
    /// memory a sweep would free is not worth the sweeps.
    static var minimumSweep: Int { 10_000 }

    /// Entries held at most; at least 2, so that keeping half keeps one.
    let capacity: Int
    private var entries: [String: Entry] = [:]
    /// The count at which the next sweep runs; between calls always above `entries.count`, so
    /// `entries.count` never exceeds `capacity`.
    private var sweepAt: Int

    init(capacity: Int) {
        self.capacity = max(capacity, 2)
        sweepAt = min(Self.minimumSweep, self.capacity)
    }

    /// The number of sources remembered.
    var count: Int { entries.count }

    subscript(_ source: String) -> Entry? { entries[source] }

    /// Forgets `source`, e.g. once nothing of it is left in its owner's window.
    mutating func remove(_ source: String) {
        entries[source] = nil
    }

    /// Remembers `entry` for `source`. When that brings the count to the threshold, a sweep runs:
    /// entries whose `lastActive` is not after `cutoff` are forgotten, then, if more than half of
    /// `capacity` remain, all but the most recently active half. A live `entry` always survives its
    /// own sweep, even when others were active at the same instant.
    mutating func store(_ entry: Entry, for source: String, liveAfter cutoff: Date) {
        entries[source] = entry
        guard entries.count >= sweepAt else { return }
        sweep(keeping: source, liveAfter: cutoff)
    }

    private mutating func sweep(keeping source: String, liveAfter cutoff: Date) {
        entries = entries.filter { $0.value.lastActive > cutoff }
        let half = capacity / 2
        if entries.count > half {
            let kept = entries.removeValue(forKey: source)
            let recent = entries.sorted { $0.value.lastActive > $1.value.lastActive }.prefix(kept == nil ? half : half - 1)
            entries = Dictionary(uniqueKeysWithValues: recent.map { ($0.key, $0.value) })
            if let kept { entries[source] = kept }
        }
        sweepAt = min(max(Self.minimumSweep, entries.count * 2), capacity)
    }
}
