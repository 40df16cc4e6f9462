import Synchronization

/// The validations that challenge POSTs started in this process and that have not finished (their
/// retries included), in all and per account. Both are bounded: the total, so that clients asking
/// faster than validation goes cannot pile up work without end, and each account's share of it,
/// so that one account cannot take every place and make every other account's challenge POST
/// answer 429 until its validations end.
///
/// A lock rather than an actor: it is consulted on the challenge POST's path, and holds two
/// integers' worth of work.
final class ValidationsInProgress: Sendable {
    /// Why a validation could not take a place.
    enum Refusal: Equatable, Sendable {
        /// The whole process holds `limit` already.
        case full(limit: Int)
        /// This account holds `perAccount` already.
        case accountFull(perAccount: Int)
    }

    let limit: Int
    let perAccount: Int
    private struct State {
        var total = 0
        var byAccount: [String: Int] = [:]
    }
    private let state = Mutex(State())

    init(limit: Int, perAccount: Int) {
        self.limit = max(1, limit)
        self.perAccount = min(max(1, perAccount), self.limit)
    }

    /// Takes a place for one of `account`'s validations, or says why there is none. A place taken
    /// is given back with `release(account:)`.
    func take(account: String) -> Refusal? {
        state.withLock { state in
            guard state.total < limit else { return .full(limit: limit) }
            let held = state.byAccount[account, default: 0]
            guard held < perAccount else { return .accountFull(perAccount: perAccount) }
            state.total += 1
            state.byAccount[account] = held + 1
            return nil
        }
    }

    func release(account: String) {
        state.withLock { state in
            let held = state.byAccount[account, default: 0]
            // An account without a place gives nothing back: the counts never go below zero.
            guard held > 0 else { return }
            state.byAccount[account] = held > 1 ? held - 1 : nil
            state.total -= 1
        }
    }

    /// Places taken, in all and by `account` (for tests).
    func held(by account: String? = nil) -> Int {
        state.withLock { state in account.map { state.byAccount[$0, default: 0] } ?? state.total }
    }
}
