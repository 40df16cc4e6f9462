import AutoSSLBackup
import AutoSSLCore
import AutoSSLHost
import Foundation
import Testing
import TestSupport

/// Keeping the newest N backups, through the destination protocol.
@Suite struct BackupRotationTests {
    static func names(_ count: Int, from start: Date = Date(timeIntervalSince1970: 1_796_000_000)) -> [String] {
        (0..<count).map { BackupRotation.fileName(at: start.addingTimeInterval(Double($0) * 86_400)) }
    }

    @Test func namesSortChronologicallyAndOnlyOursAreBackups() {
        let names = Self.names(3)
        #expect(BackupRotation.newestFirst(names.shuffled()) == names.reversed())
        #expect(names.allSatisfy(BackupRotation.isBackupName))
        for other in [
            "notes.txt", "auto-ssl-backup-.enc", "auto-ssl-backup-x.txt", "dir/auto-ssl-backup-1.enc", "auto-ssl-backup-a b.enc",
            "auto-ssl-backup-before-upgrade.enc", "auto-ssl-backup-20261203T091420Z-copy.enc", "auto-ssl-backup-2026120xT091420Z.enc",
            "auto-ssl-backup-20261203 091420Z.enc", "auto-ssl-backup-20261203T0914200.enc",
        ] {
            #expect(!BackupRotation.isBackupName(other), "\(other)")
        }
    }

    /// A backup named by hand sorts after every timestamped one; it must neither count as the
    /// newest nor be deleted, and the backup just written is kept even when a name from a clock
    /// that ran ahead sorts after it.
    @Test func rotationKeepsTheBackupJustWrittenAndIgnoresHandNamedOnes() async throws {
        let temporary = TemporaryDirectory("auto-ssl-rotation-named")
        let directory = FileDestination(directory: temporary.path)
        let made = Self.names(3)
        let ahead = BackupRotation.fileName(at: Date(timeIntervalSince1970: 1_796_000_000).addingTimeInterval(86_400 * 400))
        for name in made + [ahead, "auto-ssl-backup-before-upgrade.enc"] {
            try await directory.put(Array("backup".utf8), name: name)
        }
        let written = try #require(made.last)
        let pruned = try await BackupRotation.prune(directory, keep: 1, written: written)
        #expect(Set(pruned) == Set(made.dropLast() + [ahead]), "\(pruned)")
        let left = try FileManager.default.contentsOfDirectory(atPath: temporary.path).sorted()
        #expect(left == ["auto-ssl-backup-before-upgrade.enc", written].sorted())
    }

    @Test func aDirectoryKeepsTheNewestNAndNothingElseIsTouched() async throws {
        let temporary = TemporaryDirectory("auto-ssl-rotation")
        let directory = FileDestination(directory: temporary.path)
        let made = Self.names(5)
        for (index, name) in made.shuffled().enumerated() {
            #expect(try await directory.put(Array("backup \(index)".utf8), name: name) == temporary.file(name))
            #expect(fileMode(temporary.file(name)) == 0o600)
        }
        _ = try temporary.write("notes.txt", "keep me")
        _ = try temporary.write("auto-ssl-backup-manual.txt", "keep me too")
        #expect(Set(try await directory.list()) == Set(made))

        let pruned = try await BackupRotation.prune(directory, keep: 3, written: nil)
        #expect(pruned == Array(made.prefix(2).reversed()))
        let left = try FileManager.default.contentsOfDirectory(atPath: temporary.path).sorted()
        #expect(left == (Array(made.suffix(3)) + ["auto-ssl-backup-manual.txt", "notes.txt"]).sorted())
        // Nothing more to do; keep is at least one.
        #expect(try await BackupRotation.prune(directory, keep: 3, written: nil).isEmpty)
        #expect(try await BackupRotation.prune(directory, keep: 0, written: nil) == Array(made.suffix(3).prefix(2).reversed()))
        #expect(try await directory.list() == [made[4]])
    }

    @Test func filesRoundTripAndNamesCannotLeaveTheDirectory() async throws {
        let temporary = TemporaryDirectory("auto-ssl-rotation")
        let directory = FileDestination(directory: temporary.path + "/")
        #expect(directory.directory == temporary.path + "/")
        let bytes: [UInt8] = [0, 1, 2, 255]
        try await directory.put(bytes, name: "x.enc")
        #expect(try await directory.get("x.enc") == bytes)
        for name in ["", ".", "..", "../escape.enc", "a/b.enc"] {
            await #expect(throws: AutoSSLError.self, "\(name)") { try await directory.put(bytes, name: name) }
            await #expect(throws: AutoSSLError.self, "\(name)") { try await directory.delete(name) }
        }
        #expect(!FileManager.default.fileExists(atPath: temporary.path + "/../escape.enc"))
        do {
            _ = try await directory.get("missing.enc")
            Issue.record("a missing file was read")
        } catch let error as AutoSSLError {
            #expect(error.kind == .invalidArguments && error.message == temporary.path + "/missing.enc does not exist")
        }
        // A directory is a wrong argument too (exit 2); an empty file or /dev/null is not a backup (exit 1, like a damaged one).
        try FileManager.default.createDirectory(atPath: temporary.path + "/dir.enc", withIntermediateDirectories: false)
        try Data().write(to: URL(fileURLWithPath: temporary.path + "/empty.enc"))
        for (name, kind, words) in [
            ("dir.enc", FailureKind.invalidArguments, "is a directory"), ("empty.enc", .general, "is empty"),
        ] {
            do {
                _ = try await directory.get(name)
                Issue.record("\(name) was read as a backup")
            } catch let error as AutoSSLError {
                #expect(error.kind == kind && error.message.contains(words), "\(error)")
            }
        }
        do {
            _ = try await FileDestination(directory: "/dev/").get("null")
            Issue.record("/dev/null was read as a backup")
        } catch let error as AutoSSLError {
            #expect(error.kind == .general && error.message.contains("is empty"), "\(error)")
        }
    }

    @Test func aDestinationThatCannotListIsRefusedBeforeAnythingIsDeleted() async throws {
        let rsync = RsyncDestination(directory: "vault:/srv/", sshCommand: nil, runner: NoCommands())
        do {
            _ = try await BackupRotation.prune(rsync, keep: 1, written: nil)
            Issue.record("rsync was rotated")
        } catch let error as AutoSSLError {
            #expect(error.kind == .invalidArguments && error.message.contains("cannot rotate the backups in vault:/srv/"), "\(error)")
        }
    }

    @Test func rotationWorksThroughTheProtocolForAnyListingDestination() async throws {
        let memory = MemoryDestination()
        let made = Self.names(4)
        for name in made { try await memory.put([1], name: name) }
        try await memory.put([2], name: "someone-elses.enc")
        #expect(try await BackupRotation.prune(memory, keep: 2, written: nil) == [made[1], made[0]])
        #expect(await memory.names() == Set(made.suffix(2) + ["someone-elses.enc"]))
    }
}

/// A runner with no programs: anything that would run one fails the test.
struct NoCommands: CommandRunning {
    func run(_ executable: String, _ arguments: [String], timeout: TimeInterval) -> CommandResult? {
        Issue.record("ran \(executable)")
        return nil
    }

    func which(_ name: String) -> String? {
        Issue.record("looked for \(name)")
        return nil
    }
}

/// Backups kept in memory: the smallest destination that lists.
final class MemoryDestination: BackupDestination, @unchecked Sendable {
    private let lock = NSLock()
    private var objects: [String: [UInt8]] = [:]

    var description: String { "memory" }
    func location(of name: String) -> String { "memory:" + name }

    func put(_ bytes: [UInt8], name: String) async throws -> String {
        lock.withLock { objects[name] = bytes }
        return location(of: name)
    }

    func get(_ name: String) async throws -> [UInt8] {
        guard let bytes = lock.withLock({ objects[name] }) else { throw AutoSSLError.general("no \(name)") }
        return bytes
    }

    var listingUnavailableReason: String? { nil }

    func list() async throws -> [String] { lock.withLock { Array(objects.keys) } }

    func delete(_ name: String) async throws { _ = lock.withLock { objects.removeValue(forKey: name) } }

    func names() async -> Set<String> { lock.withLock { Set(objects.keys) } }
}
