import Foundation
import Logging
import PostgresNIO
import _ConnectionPoolModule

/// Group commit on PostgreSQL: writes submitted while a transaction is being committed wait and
/// share the next one, so N concurrent issuances cost one commit (and one WAL flush on the server),
/// not N. A write that fails (a replayed token) aborts its transaction; it gets its error and the
/// rest of the batch is committed again without it. Every write returns only once its transaction
/// is committed.
actor PostgresCommitter {
    typealias Operation = @Sendable (PostgresConnection) async throws -> Void

    private struct Pending {
        let operation: Operation
        let continuation: CheckedContinuation<Void, any Error>
    }

    private let client: PostgresClient
    private let logger: Logger
    private var pending: [Pending] = []
    private var running = false
    private var closed = false
    /// Largest batch seen, for tests and benchmarks.
    private(set) var largestBatch = 0

    private let onCommit: (@Sendable (Int, Duration) -> Void)?

    init(client: PostgresClient, logger: Logger, onCommit: (@Sendable (Int, Duration) -> Void)? = nil) {
        self.client = client
        self.logger = logger
        self.onCommit = onCommit
    }

    func submit(_ operation: @escaping Operation) async throws {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            guard !closed else {
                continuation.resume(throwing: StoreError.unavailable("the certificate database is closed"))
                return
            }
            pending.append(Pending(operation: operation, continuation: continuation))
            if !running {
                running = true
                Task { await self.drain() }
            }
        }
    }

    func close() {
        closed = true
    }

    private func drain() async {
        while !pending.isEmpty {
            let batch = pending
            pending = []
            largestBatch = max(largestBatch, batch.count)
            let started = ContinuousClock.now
            let outcomes = await commit(batch.map(\.operation))
            if let onCommit { onCommit(batch.count, .now - started) }
            for (item, outcome) in zip(batch, outcomes) { item.continuation.resume(with: outcome) }
        }
        running = false
    }

    /// Marks which operation failed inside a transaction, so the batch can be retried without it.
    private struct OperationFailed: Error {
        let index: Int
        let error: any Error
    }

    private func commit(_ operations: [Operation]) async -> [Result<Void, any Error>] {
        var outcomes = [Result<Void, any Error>?](repeating: nil, count: operations.count)
        var remaining = Array(operations.indices)
        var transientRetries = 0
        while !remaining.isEmpty {
            let attempt = remaining
            do {
                let client = client
                let logger = logger
                try await PostgresDeadline.run {
                    try await client.withTransaction(logger: logger) { connection in
                        for index in attempt {
                            do {
                                try await operations[index](connection)
                            } catch {
                                throw OperationFailed(index: index, error: error)
                            }
                        }
                    }
                }
                for index in attempt { outcomes[index] = .success(()) }
                remaining = []
            } catch let transaction as PostgresTransactionError {
                if let failed = transaction.closureError as? OperationFailed, transaction.commitError == nil,
                   PostgresStoreErrors.isTransient(failed.error), transientRetries < 5 {
                    // A deadlock with another replica's transaction (their per-key locks taken in
                    // another order) or a serialization failure: the server rolled this one back;
                    // the same operations are tried again.
                    transientRetries += 1
                    logger.notice("database transaction retried after \(PostgresStoreErrors.map(failed.error))")
                } else if let failed = transaction.closureError as? OperationFailed, transaction.commitError == nil {
                    // The operation's own refusal (a replayed token) as it is; a connection that
                    // died under it (the server stopping) as `unavailable`, never an internal error.
                    outcomes[failed.index] = .failure(PostgresStoreErrors.map(failed.error))
                    remaining.removeAll { $0 == failed.index }
                } else {
                    // BEGIN or COMMIT failed (the server went away): nothing of this attempt is committed.
                    let error = PostgresStoreErrors.map(transaction.commitError ?? transaction.beginError ?? transaction)
                    logger.error("database commit failed: \(error)")
                    for index in attempt { outcomes[index] = .failure(error) }
                    remaining = []
                }
            } catch {
                let mapped = PostgresStoreErrors.map(error)
                logger.error("database commit failed: \(mapped)")
                for index in attempt { outcomes[index] = .failure(mapped) }
                remaining = []
            }
        }
        return outcomes.map { $0 ?? .failure(CancellationError()) }
    }
}

/// PostgreSQL failures that say nothing about the request become `StoreError.unavailable` in plain words.
enum PostgresStoreErrors {
    /// A deadlock (40P01) or serialization failure (40001): the transaction was rolled back and may
    /// simply be run again.
    static func isTransient(_ error: any Error) -> Bool {
        guard let psql = error as? PSQLError, psql.code == .server else { return false }
        let state = psql.serverInfo?[.sqlState] ?? ""
        return state == "40P01" || state == "40001"
    }

    static func map(_ error: any Error) -> any Error {
        if error is StoreError { return error }
        // The pool gave up creating connections (the server is down) or is shutting down.
        if error is ConnectionPoolError { return StoreError.unavailable("the PostgreSQL server cannot be reached") }
        if let psql = error as? PSQLError {
            switch psql.code {
            case .server:
                let state = psql.serverInfo?[.sqlState] ?? ""
                if state.hasPrefix("08") || state.hasPrefix("57") || state.hasPrefix("53") {
                    return StoreError.unavailable("the PostgreSQL server refused or dropped the connection (SQLSTATE \(state))")
                }
                if state == "25006" { return StoreError.unavailable("the PostgreSQL database is read-only (a standby?)") }
                return error
            case .connectionError, .serverClosedConnection, .clientClosedConnection, .uncleanShutdown, .poolClosed:
                return StoreError.unavailable("the PostgreSQL server cannot be reached")
            default:
                return error
            }
        }
        return error
    }

    /// The error that says what went wrong: a transaction's closure's own (a refusal, a server
    /// error), else a connection failure as `StoreError.unavailable`.
    static func unwrap(_ error: any Error) -> any Error {
        if let transaction = error as? PostgresTransactionError {
            if let closureError = transaction.closureError { return unwrap(closureError) }
            return map(transaction.beginError ?? transaction.commitError ?? transaction.rollbackError ?? transaction)
        }
        return map(error)
    }

    /// One call on the client (statements or a transaction), within the deadline, its failure unwrapped.
    static func call<T: Sendable>(_ client: PostgresClient, _ body: @escaping @Sendable (PostgresClient) async throws -> T) async throws -> T {
        do {
            return try await PostgresDeadline.run { try await body(client) }
        } catch {
            throw unwrap(error)
        }
    }

    static func isUniqueViolation(_ error: any Error) -> Bool {
        guard let psql = error as? PSQLError, psql.code == .server else { return false }
        return psql.serverInfo?[.sqlState] == "23505"
    }
}
