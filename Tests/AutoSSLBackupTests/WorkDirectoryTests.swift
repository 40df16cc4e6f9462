@testable import AutoSSLBackup
import Foundation
import Testing
import TestSupport

/// The work directories of backup and restore hold plaintext password copies: one a killed run
/// left behind goes once it is a day old, and a younger one (another run's) stays.
@Suite struct WorkDirectoryTests {
    @Test func aWorkDirectoryLeftADayAgoIsRemovedAndAYoungerOneStays() throws {
        let parent = TemporaryDirectory("auto-ssl-work")
        let old = parent.file(".backup-left-behind")
        let young = parent.file(".backup-running")
        for path in [old, young] {
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: false)
            try "secret\n".write(toFile: path + "/ca-password", atomically: false, encoding: .utf8)
        }
        try FileManager.default.setAttributes([.modificationDate: Date().addingTimeInterval(-2 * 86_400)], ofItemAtPath: old)
        let other = parent.file(".restore-other")
        try FileManager.default.createDirectory(atPath: other, withIntermediateDirectories: false)
        try FileManager.default.setAttributes([.modificationDate: Date().addingTimeInterval(-2 * 86_400)], ofItemAtPath: other)

        let made = try CABackup.privateWorkDirectory(in: parent.path, prefix: ".backup-")
        #expect(!FileManager.default.fileExists(atPath: old))
        #expect(FileManager.default.fileExists(atPath: young + "/ca-password"))
        #expect(FileManager.default.fileExists(atPath: other), "only this prefix's directories are looked at")
        #expect(FileManager.default.fileExists(atPath: made) && fileMode(made) == 0o700)
    }
}
