import AutoSSLConfig
import AutoSSLCore
import AutoSSLIO
import AutoSSLStore
import Foundation
import Logging
import Synchronization

/// Whether the CA's database answered lately, as `/health` reports it. Updated by the replica's
/// heartbeat (every few seconds on a shared database); a CA on SQLite is always `ok` here (its
/// write failures are reported per request).
public final class DatabaseHealth: Sendable {
    public enum State: Sendable, Equatable {
        case ok
        /// Since when, and why.
        case unavailable(since: Date, reason: String)
    }

    private let state = Mutex<State>(.ok)

    public init() {}

    public var current: State { state.withLock { $0 } }

    public func answered() {
        state.withLock { $0 = .ok }
    }

    public func failed(_ reason: String, now: Date = Date()) {
        state.withLock { current in
            if case .unavailable(let since, _) = current {
                current = .unavailable(since: since, reason: reason)
            } else {
                current = .unavailable(since: now, reason: reason)
            }
        }
    }
}

/// A replica of a CA on a shared database, while `ca serve` runs: checks at start that the
/// database belongs to this CA, then records a heartbeat every few seconds (which `ca status` lists
/// and which tells `/health` whether the database answers) and keeps the provisioners and policy
/// equal to the database's.
public struct ReplicaPresence: Sendable {
    public static let heartbeatInterval: Duration = .seconds(5)

    let state: any ReplicatedState
    let replica: ReplicaHeartbeat
    let sync: SharedSettingsSync
    let authority: Authority
    public let health: DatabaseHealth
    let logger: Logger

    /// Nil for a database without replicas (SQLite). Throws when the database belongs to another CA.
    public static func join(
        _ database: CADatabase, authority: Authority, replicaName: String, version: String, directories: Directories,
        health: DatabaseHealth, logger: Logger = Logger(label: "auto-ssl.replica"), now: Date = Date()
    ) async throws -> ReplicaPresence? {
        guard let state = database.replicated else { return nil }
        do {
            try await state.bind(rootFingerprint: authority.rootFingerprint, caName: authority.settings.name, now: now)
        } catch StoreError.retired(let since) {
            throw AutoSSLError.general(
                "the database \(database.location) was marked as left by this CA on \(since) by `ca database migrate --to sqlite`: either that migration finished on another machine, which now holds the records in SQLite, or it was interrupted; this replica was not started",
                hint: "if the migration finished elsewhere, run the CA from that machine; if it was interrupted (nothing holds the records in SQLite), run `auto-ssl ca database migrate --to sqlite` again here: it copies the records again and finishes")
        } catch StoreError.belongsToAnotherCA(let other) {
            throw AutoSSLError.general(
                "the database \(database.location) belongs to another CA (root \(other)), not to this one (root \(authority.rootFingerprint)); nothing was changed",
                hint: "point this CA at its own database (`database.url` in config.yaml), or set up this machine as a replica of that CA with `auto-ssl ca replica add`")
        }
        let replica = ReplicaHeartbeat(
            name: replicaName, addresses: authority.settings.addresses.map(\.description), version: version, startedAt: now,
            lastSeen: now)
        try await state.heartbeat(replica)
        let presence = ReplicaPresence(
            state: state, replica: replica, sync: SharedSettingsSync(directories: directories), authority: authority, health: health,
            logger: logger)
        try await presence.learnReplicas()
        return presence
    }

    /// Every replica's last heartbeat (for the dashboard).
    public func replicas() async throws -> [ReplicaHeartbeat] {
        try await state.replicas()
    }

    /// The other replicas' addresses become accepted token audiences.
    func learnReplicas() async throws {
        // Replicas seen within the hour: a decommissioned replica's address stops being accepted.
        let now = Date()
        authority.acceptAudiences(
            ofReplicas: try await state.replicas().filter { now.timeIntervalSince($0.lastSeen) < 3600 }.flatMap(\.addresses))
    }

    /// Heartbeats and settings, until cancelled.
    public func run() async {
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await sync.follow(state) }
            group.addTask {
                var replica = self.replica
                while !Task.isCancelled {
                    try? await Task.sleep(for: Self.heartbeatInterval)
                    if Task.isCancelled { break }
                    replica.lastSeen = Date()
                    do {
                        try await state.heartbeat(replica)
                        if let since = try await state.retiredAt() {
                            // The records moved to SQLite elsewhere: issuing here would split the CA in two.
                            logger.critical("the CA left this database on \(since) (`ca database migrate --to sqlite`); stopping")
                            await leave()
                            exit(ExitStatus.retired)
                        }
                        try await learnReplicas()
                        if case .unavailable = health.current { logger.notice("the database answers again") }
                        health.answered()
                    } catch {
                        let reason = StoreFailureWords.describe(error)
                        if case .ok = health.current { logger.error("the database does not answer: \(reason)") }
                        health.failed(reason)
                    }
                }
            }
            await group.waitForAll()
        }
        await leave()
    }

    /// Stopped on purpose: not listed as down, and not in the way of `ca database migrate`.
    public func leave() async {
        try? await state.leave(name: replica.name)
    }

    /// Refuses when a replica recorded a heartbeat within the last `within` seconds: moving the
    /// records away from the shared database while a replica still writes to it would lose writes.
    public static func checkNoneAlive(_ state: any ReplicatedState, within: TimeInterval = 15, now: Date = Date()) async throws {
        let alive = try await state.replicas().filter { now.timeIntervalSince($0.lastSeen) <= within }
        guard alive.isEmpty else {
            throw AutoSSLError(
                .inUse,
                "replicas of this CA are running on the shared database (\(alive.map(\.name).joined(separator: ", "))); nothing was changed",
                hint: "stop `ca serve` on every replica (systemctl stop auto-ssl-ca), then run again")
        }
    }
}

/// A store failure in words for logs and `/health`.
enum StoreFailureWords {
    static func describe(_ error: any Error) -> String {
        if case StoreError.unavailable(let reason) = error { return reason }
        if let error = error as? AutoSSLError { return error.message }
        return "\(error)"
    }
}

enum ExitStatus {
    /// `ca serve` stopped because its shared database was retired (the general failure code).
    static let retired: Int32 = 1
}
