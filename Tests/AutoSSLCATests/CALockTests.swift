import AutoSSLCA
import AutoSSLCore
import Foundation
import Testing
import TestSupport

/// `ca serve` (shared) and `ca database migrate` (exclusive) exclude each other on one lock file,
/// without waiting; servers do not exclude each other; a released lock is free at once.
@Suite struct CALockTests {
    @Test func servingAndMigratingExcludeEachOther() throws {
        let directory = TemporaryDirectory()
        let path = directory.path + "/db/.serve.lock"
        let first = try CALock(path: path, mode: .serving)
        let second = try CALock(path: path, mode: .serving)
        #expect(fileMode(path) == 0o600)
        do {
            _ = try CALock(path: path, mode: .migrating)
            Issue.record("a migration got the lock while the CA runs")
        } catch let error as AutoSSLError {
            #expect(error.kind == .inUse)
            #expect(error.message == "the CA is running on this machine; stop it (systemctl stop auto-ssl-ca) and run again")
        }
        first.release()
        #expect(throws: AutoSSLError.self) { _ = try CALock(path: path, mode: .migrating) }
        second.release()
        let migration = try Self.once(path, .migrating)
        do {
            _ = try CALock(path: path, mode: .serving)
            Issue.record("the CA started during a migration")
        } catch let error as AutoSSLError {
            #expect(error.kind == .inUse && error.message.contains("being migrated"))
        }
        #expect(throws: AutoSSLError.self) { _ = try CALock(path: path, mode: .migrating) }
        migration.release()
        _ = try Self.once(path, .serving)
    }

    /// The lock, once free: a child process another test forks at that moment holds a copy of the
    /// descriptor until it executes its program (close-on-exec), which keeps the lock a little longer.
    static func once(_ path: String, _ mode: CALock.Mode) throws -> CALock {
        let deadline = Date().addingTimeInterval(10)
        while true {
            do {
                return try CALock(path: path, mode: mode)
            } catch let error as AutoSSLError where error.kind == .inUse && Date() < deadline {
                usleep(50_000)
            }
        }
    }
}
