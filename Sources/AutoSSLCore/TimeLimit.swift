import Foundation

/// Work that must finish within a time: a network read whose client timeout covers only part of
/// it (AsyncHTTPClient's ends when the response head arrives, so a body sent a byte now and then
/// would hold the caller for ever).
public enum TimeLimit {
    /// `body`'s value, or nil when it did not finish within `limit` (it is then cancelled).
    public static func run<T: Sendable>(within limit: Duration, _ body: @escaping @Sendable () async throws -> T) async throws -> T? {
        try await withThrowingTaskGroup(of: T?.self) { group in
            group.addTask { try await body() }
            group.addTask {
                try await Task.sleep(for: limit)
                return nil
            }
            defer { group.cancelAll() }
            return try await group.next() ?? nil
        }
    }
}
