import Foundation
import Synchronization

/// A time limit on one database call. PostgreSQL that cannot be reached makes the connection pool
/// wait (for a connection that cannot be made) far longer than a client waits for an answer; with
/// this, the caller learns within seconds that the database is unavailable and answers 503.
///
/// The call itself is not awaited past the limit: it goes on in the background and ends with the
/// pool's own timeout. A write that commits after its caller gave up leaves a record whose
/// certificate was never handed out (the safe side: never a certificate without its record).
enum PostgresDeadline {
    static let defaultSeconds: Double = 5

    static func run<T: Sendable>(
        seconds: Double = defaultSeconds, _ work: @escaping @Sendable () async throws -> T
    ) async throws -> T {
        let outcome = Waiter<T>()
        return try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, any Error>) in
            outcome.set(continuation)
            let timer = Task {
                try? await Task.sleep(for: .milliseconds(Int(seconds * 1000)))
                guard !Task.isCancelled, let waiting = outcome.take() else { return }
                outcome.cancelWorker()
                waiting.resume(throwing: StoreError.unavailable(
                    "the PostgreSQL server did not answer within \(Int(seconds)) s (is it running and reachable?)"))
            }
            let worker = Task {
                let result: Result<T, any Error>
                do {
                    result = .success(try await work())
                } catch {
                    result = .failure(PostgresStoreErrors.map(error))
                }
                timer.cancel()
                outcome.take()?.resume(with: result)
            }
            outcome.setWorker(worker)
        }
    }
}

/// The one continuation of a deadline call, taken by whichever of the work and the timer ends first.
private final class Waiter<T: Sendable>: Sendable {
    private let continuation = Mutex<CheckedContinuation<T, any Error>?>(nil)
    private let worker = Mutex<Task<Void, Never>?>(nil)

    func setWorker(_ task: Task<Void, Never>) {
        worker.withLock { $0 = task }
    }

    func cancelWorker() {
        worker.withLock { $0 }?.cancel()
    }

    func set(_ value: CheckedContinuation<T, any Error>) {
        continuation.withLock { $0 = value }
    }

    func take() -> CheckedContinuation<T, any Error>? {
        continuation.withLock { $0.take() }
    }
}
