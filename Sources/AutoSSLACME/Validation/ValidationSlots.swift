/// A counting semaphore for concurrent validation attempts (never blocks a thread): validation
/// opens connections from the CA's network, and a client must not be able to make it open
/// thousands at once. It is fair between accounts: one account holds at most half of the slots,
/// and waiting accounts are served in turn (each account's own attempts in order), so an account
/// that asks for hundreds of validations against hosts that never answer delays another
/// account's validation by at most one attempt's deadline, not by its whole queue.
actor ValidationSlots {
    private let limit: Int
    private let perAccount: Int
    private var inUse = 0
    private var running: [String: Int] = [:]
    private var waiting: [String: [CheckedContinuation<Void, Never>]] = [:]
    /// The accounts with waiting attempts, in the order they are served (each at most once).
    private var turns: [String] = []

    init(limit: Int) {
        self.limit = max(1, limit)
        self.perAccount = max(1, limit / 2)
    }

    func acquire(account: String) async {
        if inUse < limit, running[account, default: 0] < perAccount, waiting[account] == nil {
            take(account)
            return
        }
        await withCheckedContinuation { continuation in
            if waiting[account] == nil { turns.append(account) }
            waiting[account, default: []].append(continuation)
        }
    }

    func release(account: String) {
        inUse -= 1
        let left = running[account, default: 1] - 1
        running[account] = left > 0 ? left : nil
        dispatch()
    }

    /// Slots taken, accounts waiting and attempts waiting (for tests).
    var state: (inUse: Int, waitingAccounts: Int, waitingAttempts: Int) {
        (inUse, turns.count, waiting.values.reduce(0) { $0 + $1.count })
    }

    private func take(_ account: String) {
        inUse += 1
        running[account, default: 0] += 1
    }

    /// Free slots go to the first account in turn that is under its share; it then goes to the
    /// back of the line if it has more attempts waiting.
    private func dispatch() {
        while inUse < limit, let index = turns.firstIndex(where: { running[$0, default: 0] < perAccount }) {
            // `turns` lists exactly the accounts with attempts waiting, so the queue has one.
            let account = turns.remove(at: index)
            guard var queue = waiting.removeValue(forKey: account), !queue.isEmpty else { continue }
            let next = queue.removeFirst()
            if !queue.isEmpty {
                waiting[account] = queue
                turns.append(account)
            }
            take(account)
            next.resume()
        }
    }
}
