import Dispatch
import GRDB

extension DatabaseReader {
    /// A read that may return many rows or scan a table, run on a Dispatch worker so that it never
    /// blocks an event loop. Every read of the SQLite store is either this or a lookup on the
    /// calling thread (`SQLiteCertificateStore.lookup`), both through GRDB's synchronous read, so a
    /// reader connection is always given back before its caller resumes. GRDB's asynchronous read
    /// gives it back only after the caller has resumed, on the caller's executor: with lookups
    /// blocking an event loop until a reader is free, readers held that way could wait for the
    /// very event loop that waits for them (a deadlock seen once under lego's concurrent requests).
    func readOnWorker<T: Sendable>(_ body: @escaping @Sendable (Database) throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            DispatchQueue.global().async {
                continuation.resume(with: Result { try self.read(body) })
            }
        }
    }
}
