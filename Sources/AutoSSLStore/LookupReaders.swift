import Foundation
import GRDB
import Synchronization

/// The read-only connections that `lookupOne` reads on, each used by one lookup at a time.
///
/// A lookup through GRDB's pool pays, besides the SQL, a dispatch barrier, a semaphore, a dispatch
/// group, a lock, a key path and a `PRAGMA schema_version` query per call: about 3 % of the
/// server's CPU under ACME load, more than some of the lookups themselves (docs/benchmarks.md).
/// Taking one of these connections costs two uncontended lock operations. The schema check is
/// not needed here: the schema changes only in the migrations, which run before the store opens
/// any of these connections.
///
/// Connections open on first use, up to `maximum`; a lookup that finds them all busy reads through
/// the pool, so lookups never wait for each other here.
final class LookupReaders: Sendable {
    private let path: String
    private let configuration: Configuration
    private let maximum: Int

    private struct State {
        var idle: [DatabaseQueue] = []
        var opened = 0
        /// Connections a look-up holds now.
        var inUse = 0
        var closed = false
    }

    private let state = Mutex(State())

    /// `configuration`: the store's, which the readers take read-only (as GRDB's pool readers).
    init(path: String, configuration: Configuration, maximum: Int) {
        var configuration = configuration
        // A read-only connection waits on a lock (a checkpoint's, a recovery's) as the store's
        // `busyMode` says.
        configuration.readonly = true
        configuration.allowsUnsafeTransactions = false
        self.path = path
        self.configuration = configuration
        self.maximum = maximum
    }

    /// How many connections are open or opening, for tests.
    var opened: Int { state.withLock { $0.opened } }

    private enum Take {
        case reader(DatabaseQueue)
        case open
        case pool
    }

    /// Runs `body` on an idle connection, or on a pool reader when none is free.
    func read<T>(orThrough pool: DatabasePool, _ body: (Database) throws -> T) throws -> T {
        let take: Take = state.withLock { state in
            if state.closed { return .pool }
            if let reader = state.idle.popLast() {
                state.inUse += 1
                return .reader(reader)
            }
            guard state.opened < maximum else { return .pool }
            state.opened += 1
            state.inUse += 1
            return .open
        }
        let reader: DatabaseQueue
        switch take {
        case .pool:
            return try pool.unsafeRead(body)
        case .reader(let idle):
            reader = idle
        case .open:
            do {
                reader = try DatabaseQueue(path: path, configuration: configuration)
            } catch {
                state.withLock { state in
                    state.opened -= 1
                    state.inUse -= 1
                }
                throw error
            }
        }
        defer { giveBack(reader) }
        return try reader.unsafeRead(body)
    }

    private func giveBack(_ reader: DatabaseQueue) {
        let keep = state.withLock { state in
            if state.closed { return false }
            state.idle.append(reader)
            state.inUse -= 1
            return true
        }
        guard !keep else { return }
        try? reader.close()
        state.withLock { state in
            state.opened -= 1
            state.inUse -= 1
        }
    }

    /// Closes every connection, waiting for the look-ups that hold one (microseconds each), so
    /// that no connection reads the file once this returns (a migration removes the database's
    /// files after closing the store). Later look-ups read through the pool, closed with the
    /// store, so they fail as any read of a closed store does.
    func close() {
        closeIdle(andRefuseMore: true)
        while state.withLock({ $0.inUse > 0 }) { usleep(1_000) }
    }

    /// Closes the idle connections, so that the next lookups open new ones (tests).
    func closeIdle(andRefuseMore refuse: Bool = false) {
        let idle = state.withLock { state in
            if refuse { state.closed = true }
            state.opened -= state.idle.count
            defer { state.idle = [] }
            return state.idle
        }
        for reader in idle { try? reader.close() }
    }
}
