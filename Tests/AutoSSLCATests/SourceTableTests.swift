@testable import AutoSSLCA
import Foundation
import Testing

private struct Seen: SourceTableEntry, Equatable {
    var lastActive: Date
}

/// The per-source table behind `FailureLimiter` and `AuditThrottle`: however many sources there
/// are, it holds at most its capacity, and what it forgets first is what no longer matters.
@Suite struct SourceTableTests {
    let start = Date(timeIntervalSince1970: 1_800_000_000)

    @Test func memoryNeverExceedsTheCapacityHoweverManySources() {
        var table = SourceTable<Seen>(capacity: 100)
        var most = 0
        for index in 0..<10_000 {
            table.store(Seen(lastActive: start.addingTimeInterval(Double(index))), for: "s\(index)", liveAfter: .distantPast)
            most = max(most, table.count)
        }
        #expect(most <= 100)
        #expect(table["s9999"] != nil)
        #expect(table["s0"] == nil)
    }

    /// At the threshold, a sweep forgets what aged out, then keeps the most recently active half.
    @Test func aSweepForgetsWhatAgedOutAndKeepsTheMostRecentLiveHalf() {
        var table = SourceTable<Seen>(capacity: 100)
        for index in 0..<60 {
            table.store(Seen(lastActive: start.addingTimeInterval(Double(index))), for: "old\(index)", liveAfter: .distantPast)
        }
        for index in 0..<39 {
            table.store(Seen(lastActive: start.addingTimeInterval(1_000 + Double(index))), for: "new\(index)", liveAfter: .distantPast)
        }
        #expect(table.count == 99, "no sweep before the threshold")
        // The hundredth entry reaches it; old0...old30 are no longer live.
        table.store(Seen(lastActive: start.addingTimeInterval(2_000)), for: "last", liveAfter: start.addingTimeInterval(30))
        #expect(table.count == 50)
        #expect(table["last"] != nil)
        #expect((0..<39).allSatisfy { table["new\($0)"] != nil })
        #expect((50..<60).allSatisfy { table["old\($0)"] != nil }, "the most recent of the rest fill the half")
        #expect((0..<50).allSatisfy { table["old\($0)"] == nil }, "aged out, or live but less recent")
    }

    /// Sources active at the same instant are all equally recent; the one just stored still stays.
    @Test func theEntryJustStoredSurvivesItsOwnSweep() {
        var table = SourceTable<Seen>(capacity: 10)
        var kept = true
        for index in 0..<1_000 {
            table.store(Seen(lastActive: start), for: "s\(index)", liveAfter: .distantPast)
            kept = kept && table["s\(index)"] != nil
        }
        #expect(kept)
        #expect(table.count <= 10)
    }

    /// A sweep runs only once the count has doubled since the last one, so entries that aged out
    /// may linger until then (still within the capacity), and each insert stays cheap.
    @Test func sweepsWaitUntilTheCountHasDoubled() {
        let first = SourceTable<Seen>.minimumSweep
        var table = SourceTable<Seen>(capacity: 10 * first)
        for index in 0..<(first + first / 2) {
            table.store(Seen(lastActive: start), for: "a\(index)", liveAfter: .distantPast)
        }
        #expect(table.count == first + first / 2, "all live at the first sweep: all kept")
        // From now on every "a" entry is aged out, but the next sweep is due at twice the count
        // the first one left.
        let later = start.addingTimeInterval(100)
        for index in 0..<(first / 2 - 1) {
            table.store(Seen(lastActive: later), for: "b\(index)", liveAfter: start)
        }
        #expect(table.count == 2 * first - 1)
        #expect(table["a0"] != nil)
        table.store(Seen(lastActive: later), for: "b\(first / 2 - 1)", liveAfter: start)
        #expect(table.count == first / 2)
        #expect(table["a0"] == nil)
        #expect(table["b0"] != nil)
    }

    @Test func removeForgetsASource() {
        var table = SourceTable<Seen>(capacity: 10)
        table.store(Seen(lastActive: start), for: "a", liveAfter: .distantPast)
        table.remove("a")
        #expect(table["a"] == nil)
        #expect(table.count == 0)
    }
}
