import AutoSSLConfig
import AutoSSLCore
import AutoSSLIO
import AutoSSLStore
import Foundation

extension CAStatusReport {
    /// Where the CA's records are and, for a database shared by replicas, which replicas recorded a
    /// heartbeat and when.
    public struct DatabaseReport: Codable, Sendable {
        public struct Replica: Codable, Sendable {
            public var name: String
            public var addresses: [String]
            public var version: String
            public var startedAt: Date
            public var lastSeen: Date
            /// Seen within `aliveWithin` seconds.
            public var alive: Bool

            enum CodingKeys: String, CodingKey {
                case name, addresses, version, alive
                case startedAt = "started_at"
                case lastSeen = "last_seen"
            }
        }

        /// "sqlite" or "postgresql".
        public var kind: String
        public var location: String
        /// "ok", or why the database could not be read.
        public var state: String
        /// nil for SQLite (one machine, no replicas).
        public var replicas: [Replica]?
        /// The newest administrative changes made on any replica (nil for SQLite: see the audit log).
        public var adminEvents: [AdminEvent]?

        enum CodingKeys: String, CodingKey {
            case kind, location, state, replicas
            case adminEvents = "admin_events"
        }

        /// A replica whose last heartbeat is older than this (several missed beats) is not alive.
        public static let aliveWithin: TimeInterval = 30

        /// Reads the database named in `settings` (only a shared one is opened: SQLite has nothing to report).
        public static func load(_ settings: CASettings, directories: Directories, now: Date = Date()) async -> DatabaseReport {
            guard let shared = settings.database else {
                return DatabaseReport(
                    kind: "sqlite", location: settings.paths.databaseDir + "/auto-ssl.sqlite", state: "ok", replicas: nil, adminEvents: nil)
            }
            var report = DatabaseReport(kind: "postgresql", location: shared.displayURL, state: "ok", replicas: [], adminEvents: [])
            do {
                let database = try await AuthorityLoader(directories: directories).openDatabase(settings)
                defer { Task { try? await database.close() } }
                let heartbeats = try await database.replicated?.replicas() ?? []
                report.adminEvents = try await database.replicated?.adminEvents(limit: 10)
                report.replicas = heartbeats.map {
                    Replica(
                        name: $0.name, addresses: $0.addresses, version: $0.version, startedAt: $0.startedAt, lastSeen: $0.lastSeen,
                        alive: now.timeIntervalSince($0.lastSeen) <= aliveWithin)
                }
            } catch {
                report.state = "unreachable: " + ((error as? AutoSSLError)?.message ?? StoreFailureWords.describe(error))
            }
            return report
        }
    }
}
