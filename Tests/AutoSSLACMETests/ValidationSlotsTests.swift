@testable import AutoSSLACME
import Foundation
import Synchronization
import Testing

/// The validation slots are shared fairly: one account holds at most half of them, and an
/// account that queued hundreds of attempts does not make another account wait behind them all.
final class StartedLog: Sendable {
    let items = Mutex<[String]>([])
}

@Suite struct ValidationSlotsTests {
    /// Waits (briefly, without a thread blocked) until `condition` holds.
    func eventually(_ condition: () async -> Bool) async -> Bool {
        for _ in 0..<500 {
            if await condition() { return true }
            try? await Task.sleep(for: .milliseconds(2))
        }
        return false
    }

    @Test func anAccountHoldsAtMostHalfAndAnotherIsServedBeforeItsQueue() async throws {
        let slots = ValidationSlots(limit: 8)
        let started = StartedLog()
        // The busy account asks for 4 (its share) plus 20 more.
        for _ in 0..<4 { await slots.acquire(account: "busy") }
        var queued: [Task<Void, Never>] = []
        for index in 0..<20 {
            queued.append(Task {
                await slots.acquire(account: "busy")
                started.items.withLock { $0.append("busy-\(index)") }
            })
        }
        #expect(await eventually { await slots.state.waitingAttempts == 20 })
        #expect(await slots.state.inUse == 4, "the busy account's queue waits although slots are free")
        // Another account gets a slot at once, the free half being there for others.
        await slots.acquire(account: "other")
        #expect(await slots.state.inUse == 5)
        // Fill the rest with a third account; then one that arrives waits...
        for _ in 0..<3 { await slots.acquire(account: "third") }
        let late = Task {
            await slots.acquire(account: "late")
            started.items.withLock { $0.append("late") }
        }
        #expect(await eventually { await slots.state.waitingAccounts == 2 })
        // ...and the next slot given back goes to it, not to the busy account's queue (which is at
        // its share anyway, and behind it in turn once below).
        await slots.release(account: "third")
        #expect(await eventually { started.items.withLock { $0 } == ["late"] })
        // A slot the busy account gives back goes to its own next attempt.
        await slots.release(account: "busy")
        #expect(await eventually {
            let now = started.items.withLock { $0 }
            return now.count == 2 && now[0] == "late" && now[1].hasPrefix("busy-")
        })
        // Everything given back: every queued attempt runs, and the slots are all free at the end.
        await slots.release(account: "late")
        await slots.release(account: "other")
        for _ in 0..<2 { await slots.release(account: "third") }
        for _ in 0..<19 { await slots.release(account: "busy") }
        await late.value
        for task in queued { await task.value }
        #expect(started.items.withLock { $0.count } == 21)
        let end = await slots.state
        #expect(end.inUse == 4 && end.waitingAccounts == 0)
        for _ in 0..<4 { await slots.release(account: "busy") }
        #expect(await slots.state.inUse == 0)
    }
}

/// The validations in progress are bounded in all and per account, and a release without a
/// place gives nothing back.
@Suite struct ValidationsInProgressTests {
    @Test func anAccountHoldsAtMostItsShareAndTheTotalIsBounded() {
        let counter = ValidationsInProgress(limit: 5, perAccount: 2)
        #expect(counter.take(account: "a") == nil && counter.take(account: "a") == nil)
        #expect(counter.take(account: "a") == .accountFull(perAccount: 2))
        #expect(counter.take(account: "b") == nil && counter.take(account: "b") == nil && counter.take(account: "c") == nil)
        #expect(counter.take(account: "d") == .full(limit: 5))
        counter.release(account: "a")
        #expect(counter.held() == 4 && counter.held(by: "a") == 1)
        #expect(counter.take(account: "d") == nil)
        // "e" holds nothing: its release must not free a place that another account holds.
        counter.release(account: "e")
        #expect(counter.held() == 5 && counter.take(account: "e") == .full(limit: 5))
    }
}
