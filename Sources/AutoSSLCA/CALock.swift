import AutoSSLConfig
import AutoSSLCore
import AutoSSLIO
import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Keeps `ca serve` and `ca database migrate` apart on this machine: an advisory `flock` on
/// `<database_dir>/.serve.lock`. `ca serve` holds it shared for as long as it runs; a migration
/// holds it exclusively. Neither waits: whoever comes second is refused at once with exit 7
/// (`FailureKind.inUse`). The kernel drops the lock when the process ends, however it ends, so a
/// crash never leaves the CA locked; the file itself stays (empty) and means nothing on its own.
public final class CALock: @unchecked Sendable {
    public enum Mode: Sendable {
        case serving
        case migrating
        /// `ca init --force`, `ca import --force`, `ca restore --force` and `ca reset`, which move the
        /// CA directory aside: a server still running would go on writing to the moved database.
        case replacing
        /// A change of provisioners or policy (shared, like a server): not while a migration copies
        /// the settings to another database, which would miss it.
        case administering
    }

    public let path: String
    private let held: FileLock

    /// The lock file of the CA whose database directory is `settings.paths.databaseDir`.
    public static func path(for settings: CASettings) -> String {
        settings.paths.databaseDir + "/.serve.lock"
    }

    /// Takes the lock for `ca serve` (shared; refused while a migration runs).
    public static func serving(_ settings: CASettings) throws -> CALock {
        try CALock(path: path(for: settings), mode: .serving)
    }

    /// Takes the lock for `ca database migrate` (exclusive; refused while the CA runs).
    public static func migrating(_ settings: CASettings) throws -> CALock {
        try CALock(path: path(for: settings), mode: .migrating)
    }

    public init(path: String, mode: Mode) throws {
        self.path = path
        guard let held = try FileLock.acquire(path, exclusive: mode == .migrating || mode == .replacing, wait: false) else {
            switch mode {
            case .serving:
                throw AutoSSLError(
                    .inUse, "the CA's database is being migrated (`auto-ssl ca database migrate` is running); the CA was not started",
                    hint: "start it again when the migration has finished (it holds \(path))")
            case .migrating:
                throw AutoSSLError(
                    .inUse, "the CA is running on this machine; stop it (systemctl stop auto-ssl-ca) and run again",
                    hint: "a running `auto-ssl ca serve` holds \(path); nothing was changed")
            case .administering:
                throw AutoSSLError(
                    .inUse, "the CA's database is being migrated (`auto-ssl ca database migrate` is running); nothing was changed",
                    hint: "run this again when the migration has finished (it holds \(path))")
            case .replacing:
                throw AutoSSLError(
                    .inUse,
                    "the CA is running on this machine (or its database is being migrated); stop it (systemctl stop auto-ssl-ca) before the CA is replaced or removed, and run again",
                    hint: "a running `auto-ssl ca serve` holds \(path) and would go on writing to the moved CA's database; nothing was changed")
            }
        }
        self.held = held
    }

    /// Gives the lock up now (it also goes when the value is released or the process ends).
    public func release() {
        held.release()
    }
}
