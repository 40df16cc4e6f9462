import Foundation
import GRDB
import Logging

/// Group commit: writes submitted while a transaction is being made durable wait and then share the
/// next transaction. A write that fails (a replayed token, say) aborts the transaction; it gets its
/// error and the rest of the batch is committed again without it. Failures are rare, so the common
/// case costs one transaction and one fsync for the whole batch, with no per-write savepoints.
actor GroupCommitter {
    typealias Operation = @Sendable (Database) throws -> Void

    private struct Pending {
        let operation: Operation
        let continuation: CheckedContinuation<Void, any Error>
    }

    private let pool: DatabasePool
    private let logger: Logger
    private var pending: [Pending] = []
    private var flushing = false
    /// Largest batch seen, for benchmarks and tests.
    private(set) var largestBatch = 0

    init(pool: DatabasePool, logger: Logger) {
        self.pool = pool
        self.logger = logger
    }

    func submit(_ operation: @escaping Operation) async throws {
        try await withCheckedThrowingContinuation { continuation in
            pending.append(Pending(operation: operation, continuation: continuation))
            if !flushing {
                flushing = true
                Task { await self.flushUntilEmpty() }
            }
        }
    }

    private func flushUntilEmpty() async {
        while !pending.isEmpty {
            let batch = pending
            pending = []
            largestBatch = max(largestBatch, batch.count)
            let outcomes = await commit(batch.map(\.operation))
            for (item, outcome) in zip(batch, outcomes) {
                item.continuation.resume(with: outcome)
            }
        }
        flushing = false
    }
}

extension GroupCommitter {
    /// Marks which operation failed inside a transaction, so the batch can be retried without it.
    private struct OperationFailed: Error {
        let index: Int
        let error: any Error
    }

    /// Runs the operations in as few transactions as possible: one, unless some fail.
    func commit(_ operations: [Operation]) async -> [Result<Void, any Error>] {
        var outcomes = [Result<Void, any Error>?](repeating: nil, count: operations.count)
        var remaining = Array(operations.indices)
        while !remaining.isEmpty {
            let attempt = remaining
            do {
                try await pool.write { db in
                    for index in attempt {
                        do {
                            try operations[index](db)
                        } catch {
                            throw OperationFailed(index: index, error: error)
                        }
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
