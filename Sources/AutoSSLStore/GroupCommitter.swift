import Foundation
import GRDB
import Logging
import Synchronization

/// How the database writer thread treats the requests waiting on it. `ca serve` passes
/// `WriterOptions.serving(affinity:)`; every other command uses the defaults.
public struct WriterOptions: Sendable {
    /// The nice value the writer thread asks for when it starts (nil: inherit the process's).
    public var nice: Int32?
    /// Where committed writers are resumed (nil: on the writer thread).
    public var affinity: WaiterAffinity?
    /// Told after every commit of the certificate writer (SQLite and PostgreSQL alike): how many
    /// operations the transaction carried and how long it took. For metrics.
    public var onCommit: (@Sendable (_ operations: Int, _ duration: Duration) -> Void)?

    public init(
        nice: Int32? = nil, affinity: WaiterAffinity? = nil, onCommit: (@Sendable (_ operations: Int, _ duration: Duration) -> Void)? = nil
    ) {
        self.nice = nice
        self.affinity = affinity
        self.onCommit = onCommit
    }

    /// For a server whose requests wait on the writer: nice -10 (see `servingNice`) and the given affinity.
    public static func serving(affinity: WaiterAffinity?) -> WriterOptions {
        WriterOptions(nice: servingNice, affinity: affinity)
    }

    /// Every waiting issuance sits behind the writer's next commit, so when the writer is runnable
    /// it should run before request work: with the event loops busy, a writer at the default
    /// priority waits for its time slice while the requests queued behind it leave the cores idle
    /// (measured in docs/benchmarks.md). Nice -10 puts it ahead of the event loops, far from
    /// starving anything (the writer sleeps in fdatasync most of the time and uses about a seventh
    /// of a core at full load).
    public static let servingNice: Int32 = -10
}

/// Where the writer thread resumes waiting writers. For a process whose tasks run on event-loop
/// threads (`ca serve`): a waiter is then resumed on the loop it submitted from, so its response
/// is written without another thread hop.
public struct WaiterAffinity: Sendable {
    /// The executor the calling thread belongs to, if any.
    public var current: @Sendable () -> (any AnyObject & Sendable)?
    /// Runs `work` on that executor.
    public var run: @Sendable (any AnyObject & Sendable, @escaping @Sendable () -> Void) -> Void

    public init(
        current: @escaping @Sendable () -> (any AnyObject & Sendable)?,
        run: @escaping @Sendable (any AnyObject & Sendable, @escaping @Sendable () -> Void) -> Void
    ) {
        self.current = current
        self.run = run
    }
}

/// Group commit: writes submitted while a transaction is being made durable wait and then share the
/// next transaction. A write that fails (a replayed token, say) aborts the transaction; it gets its
/// error and the rest of the batch is committed again without it. Failures are rare, so the common
/// case costs one transaction and one fsync for the whole batch, with no per-write savepoints.
///
/// A write is submitted `durable` (the default) or not. A batch with a durable write commits with
/// `synchronous=FULL`: fsync of the WAL before the waiters resume. A batch of only non-durable
/// writes commits with `synchronous=NORMAL`: no fsync, so a power loss or a kernel crash can lose
/// it, but a crash of the process cannot (the WAL is written before the waiters resume), and it
/// becomes durable with the next durable commit (the WAL is one sequence, synced up to its end).
/// Non-durable is for states that the next step makes durable anyway, or that a client recovers
/// from by retrying (see docs/database.md); certificates, tokens, revocations and accounts are
/// durable.
///
/// The batches run on one dedicated writer thread that calls SQLite synchronously: a submitter pays
/// one lock and one wake-up, instead of an actor hop, a task and a dispatch-queue hop per write (which
/// cost more than the SQL itself under load). The thread starts on demand and ends after a second
/// without work, so an idle store holds no thread.
final class GroupCommitter: Sendable {
    /// One write. It may catch a constraint violation (which leaves the transaction open) and go
    /// on, and must let every other SQLite error through: after some of them SQLite has already
    /// ended the transaction (see `commit`).
    typealias Operation = @Sendable (Database) throws -> Void

    private struct Pending {
        let operation: Operation
        let continuation: CheckedContinuation<Void, any Error>
        /// The executor the submitter ran on, when `WaiterAffinity` names one.
        let home: (any AnyObject & Sendable)?
        /// Whether the batch must be on disk before this waiter resumes.
        let durable: Bool
    }

    private struct State {
        var pending: [Pending] = []
        var writerRunning = false
        var closed = false
        var largestBatch = 0
        var commits = CommitCounts()
        /// Whether the writer connection is known to be in `synchronous=FULL` (as opened): false
        /// only if setting it back after a relaxed batch failed.
        var synchronousFull = true
    }

    /// How many batches were committed with and without an fsync, for tests.
    struct CommitCounts: Sendable, Equatable {
        var durable = 0
        var relaxed = 0
    }

    private let pool: DatabasePool
    private let logger: Logger
    /// The nice value the writer thread sets for itself when it starts (nil: inherit).
    private let writerNice: Int32?
    private let affinity: WaiterAffinity?
    private let onCommit: (@Sendable (Int, Duration) -> Void)?
    private let state = Mutex(State())
    /// Wakes the writer thread; signalled once per submission that finds it waiting.
    private let wakeup = DispatchSemaphore(value: 0)
    /// How long the writer thread waits for work before it ends.
    private static let idleTimeout: DispatchTimeInterval = .seconds(1)

    init(pool: DatabasePool, logger: Logger, options: WriterOptions = WriterOptions()) {
        self.pool = pool
        self.logger = logger
        self.writerNice = options.nice
        self.affinity = options.affinity
        self.onCommit = options.onCommit
    }

    /// Largest batch seen, for benchmarks and tests.
    var largestBatch: Int { state.withLock { $0.largestBatch } }

    /// Batches committed so far, with and without an fsync.
    var commitCounts: CommitCounts { state.withLock { $0.commits } }

    func submit(durable: Bool = true, _ operation: @escaping Operation) async throws {
        let home = affinity?.current()
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            let action: SubmitAction = state.withLock { state in
                if state.closed { return .refuse }
                state.pending.append(Pending(operation: operation, continuation: continuation, home: home, durable: durable))
                if state.writerRunning { return state.pending.count == 1 ? .wake : .none }
                state.writerRunning = true
                return .start
            }
            switch action {
            case .refuse: continuation.resume(throwing: DatabaseError(resultCode: .SQLITE_MISUSE, message: "the certificate database is closed"))
            case .wake: wakeup.signal()
            case .start: startWriter()
            case .none: break
            }
        }
    }

    private enum SubmitAction { case refuse, wake, start, none }

    /// Submits a write that produces a value (read inside the same transaction). If its batch is
    /// retried (another write in it failed), the operation runs again and its last value counts.
    func submit<T: Sendable>(durable: Bool = true, returning operation: @escaping @Sendable (Database) throws -> T) async throws -> T {
        let produced = Mutex<T?>(nil)
        try await submit(durable: durable) { db in
            let value = try operation(db)
            produced.withLock { $0 = value }
        }
        guard let value = produced.withLock({ $0 }) else {
            throw DatabaseError(resultCode: .SQLITE_INTERNAL, message: "a committed write left no result")
        }
        return value
    }

    /// Refuses new writes and waits until the writer has committed what was already submitted.
    func close() {
        state.withLock { $0.closed = true }
        wakeup.signal()
        while state.withLock({ $0.writerRunning }) { usleep(1_000) }
    }

    private func startWriter() {
        let thread = Thread { [self] in
            // Named from inside (set from outside, the name never reaches the kernel) for top -H
            // and /proc; the kernel keeps 15 bytes.
            Thread.current.name = Self.threadName
            if let writerNice { applyPriority(writerNice) }
            writerLoop()
        }
        thread.start()
    }

    /// Sets the calling thread's nice value (on Linux, `setpriority` with who = 0 applies to the
    /// calling thread only). Going below 0 needs CAP_SYS_NICE or an RLIMIT_NICE that allows it (the
    /// unit `ca install-service` writes sets LimitNICE); without either the writer keeps the
    /// process's priority, which costs throughput under load and nothing else.
    private func applyPriority(_ nice: Int32) {
        if setpriority(__priority_which_t(PRIO_PROCESS.rawValue), 0, nice) != 0 {
            let reason = String(cString: strerror(errno))
            Self.reportPriorityFailure.withLock { reported in
                guard !reported else { return }
                reported = true
                logger.warning(
                    "the database writer keeps the default priority (nice \(nice) refused: \(reason)); issuance works, with less throughput under load. Run as root or allow it with LimitNICE=\(nice) (the unit `auto-ssl ca install-service` writes does)")
            }
        }
    }

    static let threadName = "auto-ssl-writer"

    /// Said once per process, not once per writer thread start.
    private static let reportPriorityFailure = Mutex(false)

    private enum Step { case commit([Pending]), wait, exit }

    private func writerLoop() {
        var timedOut = false
        while true {
            let step: Step = state.withLock { state in
                if !state.pending.isEmpty {
                    let batch = state.pending
                    state.pending = []
                    state.largestBatch = max(state.largestBatch, batch.count)
                    return .commit(batch)
                }
                if state.closed || timedOut {
                    state.writerRunning = false
                    return .exit
                }
                return .wait
            }
            switch step {
            case .commit(let batch):
                timedOut = false
                let started = ContinuousClock.now
                let durable = batch.contains { $0.durable }
                let outcomes = commit(batch.map(\.operation), durable: durable)
                state.withLock { state in
                    if durable { state.commits.durable += 1 } else { state.commits.relaxed += 1 }
                }
                if let onCommit { onCommit(batch.count, .now - started) }
                resume(batch, with: outcomes)
            case .wait:
                // A stale signal (from a submission this loop already took) only costs one empty pass.
                timedOut = wakeup.wait(timeout: .now() + Self.idleTimeout) == .timedOut
            case .exit:
                return
            }
        }
    }

    /// Hands each waiter its outcome. Waiters that came from an executor named by `WaiterAffinity`
    /// are resumed there, all of one executor's in a single job: one wake-up per executor and batch
    /// instead of one per waiter, and each task continues where its connection lives.
    private func resume(_ batch: [Pending], with outcomes: [Result<Void, any Error>]) {
        guard let affinity else {
            for (item, outcome) in zip(batch, outcomes) { item.continuation.resume(with: outcome) }
            return
        }
        var groups: [ObjectIdentifier: (home: any AnyObject & Sendable, waiters: [(CheckedContinuation<Void, any Error>, Result<Void, any Error>)])] = [:]
        for (item, outcome) in zip(batch, outcomes) {
            guard let home = item.home else {
                item.continuation.resume(with: outcome)
                continue
            }
            groups[ObjectIdentifier(home), default: (home, [])].waiters.append((item.continuation, outcome))
        }
        for group in groups.values {
            let waiters = group.waiters
            affinity.run(group.home) {
                for (continuation, outcome) in waiters { continuation.resume(with: outcome) }
            }
        }
    }

    /// Marks which operation failed inside a transaction, so the batch can be retried without it.
    private struct OperationFailed: Error {
        let index: Int
        let error: any Error
    }

    /// Runs the operations in as few transactions as possible: one, unless some fail. A relaxed batch
    /// switches the writer connection to `synchronous=NORMAL` for its transaction and back to FULL
    /// right after, so every other write on that connection (housekeeping, tools) stays durable; if
    /// switching back fails, the next durable batch sets FULL first, and fails rather than commit
    /// without it.
    func commit(_ operations: [Operation], durable: Bool = true) -> [Result<Void, any Error>] {
        var outcomes = [Result<Void, any Error>?](repeating: nil, count: operations.count)
        var remaining = Array(operations.indices)
        while !remaining.isEmpty {
            let attempt = remaining
            do {
                try pool.writeWithoutTransaction { db in
                    // Not cached statements: SQLite applies a PRAGMA when it is prepared, and
                    // prepares it again on every run anyway.
                    if durable {
                        if !state.withLock({ $0.synchronousFull }) {
                            try db.execute(sql: "PRAGMA synchronous = FULL")
                            state.withLock { $0.synchronousFull = true }
                        }
                    } else {
                        state.withLock { $0.synchronousFull = false }
                        try db.execute(sql: "PRAGMA synchronous = NORMAL")
                    }
                    defer {
                        if !durable, (try? db.execute(sql: "PRAGMA synchronous = FULL")) != nil {
                            state.withLock { $0.synchronousFull = true }
                        }
                    }
                    // The transaction's own statements are cached (GRDB's `inTransaction` parses
                    // BEGIN and COMMIT each time). IMMEDIATE, as GRDB's: the write lock is taken
                    // (or waited for) at the start, never upgraded halfway through the batch.
                    try db.cached("BEGIN IMMEDIATE TRANSACTION").execute()
                    do {
                        for index in attempt {
                            do {
                                try operations[index](db)
                            } catch {
                                throw OperationFailed(index: index, error: error)
                            }
                            // SQLite ends a transaction by itself on some errors (a full disk, an
                            // I/O error, an interrupt). An operation that caught such an error and
                            // went on would leave the rest of the batch to run in autocommit, each
                            // statement on its own: that operation fails, the others are retried
                            // in a transaction of their own.
                            guard db.isInsideTransaction else {
                                throw OperationFailed(
                                    index: index, error: DatabaseError(resultCode: .SQLITE_ABORT, message: "the transaction was rolled back by SQLite"))
                            }
                        }
                        try db.cached("COMMIT TRANSACTION").execute()
                    } catch {
                        if db.isInsideTransaction { try? db.rollback() }
                        throw error
                    }
                }
                for index in attempt { outcomes[index] = .success(()) }
                remaining = []
            } catch let failed as OperationFailed {
                outcomes[failed.index] = .failure(failed.error)
                remaining.removeAll { $0 == failed.index }
            } catch {
                // The commit itself failed (disk full, I/O error): nothing of this attempt is durable.
                logger.error("database commit failed: \(error)")
                for index in attempt { outcomes[index] = .failure(error) }
                remaining = []
            }
        }
        return outcomes.map { $0 ?? .failure(CancellationError()) }
    }
}
