import AutoSSLCore
@testable import AutoSSLHost
import Foundation
import Testing

/// The strict tar reader behind `ca restore`, checked against archives GNU tar writes.
@Suite struct TarReaderTests {
    func temporaryDirectory() throws -> String {
        let path = NSTemporaryDirectory() + "tar-reader-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    /// Runs `script` with `sh` in `directory` and returns its standard output.
    func shell(_ script: String, in directory: String) throws -> [UInt8] {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        process.arguments = ["-c", script]
        process.currentDirectoryURL = URL(fileURLWithPath: directory)
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = FileHandle.nullDevice
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        #expect(process.terminationStatus == 0, "\(script) failed")
        return Array(data)
    }

    func message(_ body: () throws -> Void) -> String {
        do {
            try body()
            return "no error"
        } catch {
            return "\(error)"
        }
    }

    @Test(arguments: ["gnu", "ustar", "pax", "posix"])
    func readsWhatGNUTarWritesIncludingLongNames(format: String) throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let long = String(repeating: "d", count: 90) + "/" + String(repeating: "f", count: 120)
        try FileManager.default.createDirectory(atPath: directory + "/top/" + (long as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try "long\n".write(toFile: directory + "/top/" + long, atomically: false, encoding: .utf8)
        try "hello\n".write(toFile: directory + "/top/a.txt", atomically: false, encoding: .utf8)
        try Data().write(to: URL(fileURLWithPath: directory + "/top/empty"))
        try "naïve\n".write(toFile: directory + "/top/ünïcode", atomically: false, encoding: .utf8)
        if format == "ustar" {  // ustar splits names over prefix + name and cannot hold a 120-character last component
            try FileManager.default.removeItem(atPath: directory + "/top/" + (long as NSString).deletingLastPathComponent)
        }
        let tar = try shell("tar --format=\(format) --sort=name --hard-dereference -cf - top ./top/a.txt", in: directory)
        let members = try TarReader.members(of: tar)
        var expected = ["top", "top/a.txt", "top/empty", "top/ünïcode", "top/a.txt"]
        if format != "ustar" { expected.insert(contentsOf: ["top/" + String(repeating: "d", count: 90), "top/" + long], at: 2) }
        #expect(members.map(\.path) == expected, "\(members.map(\.path))")
        #expect(members.map(\.kind).filter { $0 == .directory }.count == (format == "ustar" ? 1 : 2))
        let text = members.first { $0.path == "top/a.txt" }.map { String(decoding: tar[$0.offset..<($0.offset + $0.size)], as: UTF8.self) }
        #expect(text == "hello\n")

        // Written out again: the same bytes; the duplicate member is refused, not overwritten.
        let out = directory + "/out"
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: false)
        let once = members.enumerated().filter { $0.offset != members.count - 1 }.map(\.element)
        try TarReader.write(once, from: tar, into: out) { _ in 0o640 }
        #expect(try String(contentsOfFile: out + "/top/ünïcode", encoding: .utf8) == "naïve\n")
        #expect(FileManager.default.contents(atPath: out + "/top/empty") == Data())
        let attributes = try FileManager.default.attributesOfItem(atPath: out + "/top/a.txt")
        #expect((attributes[.posixPermissions] as? Int) == 0o640)
        let again = directory + "/again"
        try FileManager.default.createDirectory(atPath: again, withIntermediateDirectories: false)
        #expect(message { try TarReader.write(members, from: tar, into: again) { _ in 0o600 } }.contains("\"top/a.txt\" is refused: it appears twice"))
    }

    /// `tar -C dir .` (how an archive is made by hand) starts with "./" and prefixes every member
    /// with "./": read as the archive's top directory and plain relative paths, not refused.
    @Test func readsAnArchiveMadeFromInsideItsDirectory() throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        _ = try shell("mkdir -p top/ca/certs && echo r > top/ca/certs/root_ca.crt && echo m > top/manifest.json", in: directory)
        let tar = try shell("tar --sort=name -C top -cf - .", in: directory)
        let members = try TarReader.members(of: tar)
        #expect(members.map(\.path) == ["", "ca", "ca/certs", "ca/certs/root_ca.crt", "manifest.json"], "\(members.map(\.path))")
        let out = directory + "/out"
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: false)
        try TarReader.write(members, from: tar, into: out) { _ in 0o600 }
        #expect(try String(contentsOfFile: out + "/ca/certs/root_ca.crt", encoding: .utf8) == "r\n")
        for odd in [".//ca", "ca//x", "ca/./x", ""] {
            #expect(throws: AutoSSLError.self, "\(odd)") { _ = try TarReader.normalise(odd) }
        }
    }

    @Test func refusesLinksSpecialFilesAndPathsThatLeaveTheDirectory() throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        _ = try shell("mkdir -p d && echo x > d/f && ln -s /etc/passwd d/link && ln d/f d/hard && mkfifo d/fifo && echo y > outside", in: directory)
        let cases: [(String, String)] = [
            ("tar -cf - d/link", "\"d/link\" is refused: it is a symbolic link"),
            ("tar --sort=name -cf - d/f d/hard", "\"d/hard\" is refused: it is a hard link"),
            ("tar -cf - d/fifo", "\"d/fifo\" is refused: it is a FIFO"),
            ("cd d && tar -P -cf - ../outside", "\"../outside\" is refused: its path has a .. component"),
            ("tar -P -cf - \(directory)/outside", "is refused: its path is absolute"),
            ("touch \"$(printf 'd/new\\nline')\" && tar -cf - d/new*", "\"d/new\\nline\" is refused: its path has control characters"),
        ]
        for (command, expected) in cases {
            let tar = try shell(command, in: directory)
            let error = message { _ = try TarReader.members(of: tar) }
            #expect(error.contains(expected), "\(command): \(error)")
        }
        if geteuid() == 0 {
            let tar = try shell("mknod dev c 1 3 && tar -cf - dev", in: directory)
            #expect(message { _ = try TarReader.members(of: tar) }.contains("\"dev\" is refused: it is a character device"))
        }
    }

    @Test func refusesDamageTrailingDataAndTooManyMembers() throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let tar = try shell("mkdir d && for i in 1 2 3 4 5; do echo $i > d/$i; done && tar --sort=name -cf - d", in: directory)
        #expect(try TarReader.members(of: tar).count == 6)
        #expect(message { _ = try TarReader.members(of: tar, maximumMembers: 5) }.contains("more than 5 members"))
        var flipped = tar
        flipped[600] ^= 0x01  // inside the second header's name
        #expect(message { _ = try TarReader.members(of: flipped) }.contains("checksum"))
        var trailing = tar
        trailing[trailing.count - 1] = 0x41  // after the end marker
        #expect(message { _ = try TarReader.members(of: trailing) }.contains("data follows its end marker"))
        #expect(message { _ = try TarReader.members(of: Array(tar.prefix(1100))) }.contains("cut short"))
        #expect(message { _ = try TarReader.members(of: Array(repeating: 0x41, count: 1024)) }.contains("not"))
    }

    @Test func paxRecordsAreBoundsChecked() throws {
        #expect(try TarReader.paxPath(Array("14 path=a/b/c\n".utf8)) == "a/b/c")
        #expect(try TarReader.paxPath(Array("13 mtime=1.5\n".utf8)) == nil)
        for malformed in ["1 x", "2 x", "3 x\n", "99 path=x\n", "5 =\n\n", "x path=y\n", "-1 a=b\n", "9 size=1\n",
            // a second record whose length would overflow `index + length`
            "5 a=\n9223372036854775807 x", "5 a=\n9223372036854775806 x"] {
            #expect(throws: AutoSSLError.self, "\(malformed)") { _ = try TarReader.paxPath(Array(malformed.utf8)) }
        }
    }

    @Test func gunzipStopsAtTheSizeLimit() throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let bomb = try shell("head -c 3000000 /dev/zero | gzip -c", in: directory)
        #expect(bomb.count < 100_000)
        #expect(try TarReader.gunzip(bomb, scratchDirectory: directory, limit: 3_000_000).count == 3_000_000)
        #expect(message { _ = try TarReader.gunzip(bomb, scratchDirectory: directory, limit: 1_000_000) }.contains("more than"))
        #expect(message { _ = try TarReader.gunzip(Array("not gzip".utf8), scratchDirectory: directory) }.contains("not valid gzip"))
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory).isEmpty)
    }
}
