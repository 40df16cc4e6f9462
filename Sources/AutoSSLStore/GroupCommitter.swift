import Foundation
import GRDB
import Logging

/// Group commit: writes submitted while a transaction is being made durable wait and then share the
/// next transaction. Each write runs in its own savepoint, so one that fails (a replayed token, say)
/// is rolled back alone and reports its own error while the others in the batch commit.
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
            let operations = batch.map(\.operation)
            let outcomes: [Result<Void, any Error>]
            do {
                outcomes = try await pool.write { db -> [Result<Void, any Error>] in
                    var results: [Result<Void, any Error>] = []
                    results.reserveCapacity(operations.count)
                    for operation in operations {
                        var failure: (any Error)?
                        try db.inSavepoint {
                            do {
                                try operation(db)
                                return .commit
                            } catch {
                                failure = error
                                return .rollback
                            }
                        }
                        results.append(failure.map { .failure($0) } ?? .success(()))
                    }
                    return results
                }
            } catch {
                // The commit itself failed (disk full, I/O error): nothing in the batch is durable.
                logger.error("database commit failed: \(error)")
                outcomes = Array(repeating: .failure(error), count: batch.count)
            }
            for (item, outcome) in zip(batch, outcomes) {
                item.continuation.resume(with: outcome)
            }
        }
        flushing = false
    }
}
