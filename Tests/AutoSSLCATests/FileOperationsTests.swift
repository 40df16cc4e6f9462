import AutoSSLCA
import AutoSSLConfig
import AutoSSLCore
@testable import AutoSSLIO
import Foundation
import Testing
import TestSupport

@Suite struct FileOperationsTests {
    @Test func atomicWriteSetsModeAndLeavesNoTemporaryFiles() throws {
        let dir = TemporaryDirectory()
        let target = dir.file("secret")
        try FileOperations.writeAtomically("first", to: target, mode: 0o600)
        try FileOperations.writeAtomically("second", to: target, mode: 0o640)
        #expect(try readFile(target) == "second")
        #expect(fileMode(target) == 0o640)
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path) == ["secret"])
    }

    /// Stale-directory cleanup removes only directories with the prefix and the age asked for:
    /// a file or a link with that name, and whatever a link points to, stay.
    @Test func staleDirectoryCleanupRemovesOnlyOldDirectoriesWithThePrefix() throws {
        let dir = TemporaryDirectory()
        let target = TemporaryDirectory()
        try "keep\n".write(toFile: target.file("key"), atomically: false, encoding: .utf8)
        for name in [".ca-staging-old", ".ca-staging-new", ".other-old"] {
            try FileManager.default.createDirectory(atPath: dir.file(name), withIntermediateDirectories: false)
        }
        let old = Date().addingTimeInterval(-3_600)
        for name in [".ca-staging-old", ".other-old"] {
            try FileManager.default.setAttributes([.modificationDate: old], ofItemAtPath: dir.file(name))
        }
        try "not a directory\n".write(toFile: dir.file(".ca-staging-file"), atomically: false, encoding: .utf8)
        try FileManager.default.createSymbolicLink(atPath: dir.file(".ca-staging-link"), withDestinationPath: target.path)

        let removed = FileOperations.removeStaleDirectories(in: dir.path, prefix: ".ca-staging-", olderThan: 60)
        #expect(removed == [dir.file(".ca-staging-old")])
        #expect(FileManager.default.fileExists(atPath: dir.file(".ca-staging-new")), "younger than the age asked for")
        #expect(FileManager.default.fileExists(atPath: dir.file(".other-old")), "another prefix")
        #expect(FileManager.default.fileExists(atPath: dir.file(".ca-staging-file")))
        #expect(FileManager.default.fileExists(atPath: target.file("key")), "a link is not followed")

        // With no minimum age, a directory dated in the future goes too (a clock set back).
        try FileManager.default.setAttributes([.modificationDate: Date().addingTimeInterval(86_400)], ofItemAtPath: dir.file(".ca-staging-new"))
        let all = FileOperations.removeStaleDirectories(in: dir.path, prefix: ".ca-staging-", olderThan: 0)
        #expect(all == [dir.file(".ca-staging-new")])
        #expect(FileManager.default.fileExists(atPath: dir.file(".ca-staging-link")))
    }

    /// A key and its certificate are written all or none: when the second rename fails, the
    /// first file is put back as it was (or removed, where there was none), and no staged or kept
    /// copy is left behind.
    @Test func filesWrittenTogetherAreAllPutBackWhenOneCannotBeReplaced() throws {
        let dir = TemporaryDirectory()
        let (key, cert, fresh) = (dir.file("server.key"), dir.file("server.crt"), dir.file("new.pem"))
        try FileOperations.writeAtomically("old key", to: key, mode: 0o600)
        try FileOperations.writeAtomically("old cert", to: cert, mode: 0o644)
        var calls = 0
        #expect(throws: AutoSSLError.self) {
            try FileOperations.replaceTogether(
                [(Array("new key".utf8), key, 0o600), (Array("new extra".utf8), fresh, 0o644), (Array("new cert".utf8), cert, 0o644)],
                renaming: { from, to in
                    calls += 1
                    if calls == 3 { errno = EIO; return -1 }
                    return rename(from, to)
                })
        }
        #expect(try readFile(key) == "old key" && fileMode(key) == 0o600)
        #expect(try readFile(cert) == "old cert")
        #expect(!FileManager.default.fileExists(atPath: fresh), "a file that was not there before is removed again")
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted() == ["server.crt", "server.key"])
        // The same files without the failure: all replaced, nothing left over.
        try FileOperations.replaceTogether([(Array("new key".utf8), key, 0o600), (Array("new cert".utf8), cert, 0o644)])
        #expect(try readFile(key) == "new key" && fileMode(key) == 0o600 && readFile(cert) == "new cert")
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted() == ["server.crt", "server.key"])
    }

    /// A path that is a directory, or two files at one path, is refused before anything is written
    /// (exit 2), naming the option.
    @Test func filesThatCannotBeWrittenTogetherAreRefusedUpFront() throws {
        let dir = TemporaryDirectory()
        try FileManager.default.createDirectory(atPath: dir.file("certs"), withIntermediateDirectories: false)
        let key = dir.file("server.key")
        do {
            try FileOperations.checkReplaceable([dir.file("certs"), key], options: ["--out-cert", "--out-key"])
            Issue.record("a directory was accepted")
        } catch let error as AutoSSLError {
            #expect(error.kind == .invalidArguments && error.message.contains("--out-cert \(dir.file("certs")) is a directory"), "\(error)")
        }
        do {
            try FileOperations.checkReplaceable([key, dir.path + "/./server.key"], options: ["--out-cert", "--out-key"])
            Issue.record("one file for both was accepted")
        } catch let error as AutoSSLError {
            #expect(error.kind == .invalidArguments && error.message.contains("name the same file"), "\(error)")
        }
        // One directory reached through a symbolic link is the same directory.
        try FileManager.default.createSymbolicLink(atPath: dir.file("linked"), withDestinationPath: dir.file("certs"))
        #expect(throws: AutoSSLError.self) {
            try FileOperations.checkReplaceable([dir.file("certs/web.pem"), dir.file("linked/web.pem")])
        }
        #expect(throws: AutoSSLError.self) {
            try FileOperations.replaceTogether([(Array("k".utf8), key, 0o600), (Array("c".utf8), dir.file("certs"), 0o644)])
        }
        #expect(!FileManager.default.fileExists(atPath: key), "nothing was written")
    }

    @Test func aFailedWriteKeepsTheOldFile() throws {
        let dir = TemporaryDirectory()
        let target = dir.file("missing-dir/file")
        #expect(throws: AutoSSLError.self) { try FileOperations.writeAtomically("x", to: target, mode: 0o600) }
    }

    @Test func permissionErrorsMapToExitCode4() {
        #expect(FileOperations.systemError(EACCES, "write x").kind == .permissionDenied)
        #expect(FileOperations.systemError(EACCES, "write x").hint?.contains("sudo") == true)
        #expect(FileOperations.systemError(EROFS, "write x").kind == .permissionDenied)
        #expect(FileOperations.systemError(ENOSPC, "write x").kind == .general)
    }

    /// Whatever auto-ssl keeps for itself is refused as a certificate or key path: the whole data
    /// and configuration directories, or (when the certificate directory lies inside one) each
    /// file it keeps there, and the secret files config.yaml names elsewhere.
    @Test func auto_sslsOwnFilesAndTheSecretsConfigYAMLNamesAreReserved() throws {
        let dir = TemporaryDirectory()
        let apart = Directories(configDir: dir.file("etc"), dataDir: dir.file("data"), certDir: dir.file("certs"), systemdDir: dir.file("systemd"))
        #expect(apart.ownPaths.contains(dir.file("data")) && apart.ownPaths.contains(dir.file("etc")))
        try FileManager.default.createDirectory(atPath: dir.file("etc"), withIntermediateDirectories: true)
        _ = try dir.write("etc/provisioner-ops-password", "secret\n")
        let inside = Directories(configDir: dir.file("etc"), dataDir: dir.file("data"), certDir: dir.file("etc/ssl"), systemdDir: dir.file("systemd"))
        for own in ["etc/config.yaml", "etc/.settings.lock", "etc/provisioner-ops-password"] {
            #expect(inside.ownPaths.contains(dir.file(own)), "\(own) in \(inside.ownPaths)")
        }
        #expect(!inside.ownPaths.contains(dir.file("etc")), "the certificate directory inside it stays usable")
        let inData = Directories(configDir: dir.file("etc"), dataDir: dir.file("data"), certDir: dir.file("data/certs"), systemdDir: dir.file("systemd"))
        for own in ["data/ca", "data/.server.lock", "data/adopted", "data/server-state.json", "data/audit.log"] {
            #expect(inData.ownPaths.contains(dir.file(own)), "\(own) in \(inData.ownPaths)")
        }
        try FileOperations.checkReplaceable([dir.file("data/certs/web.crt")], reserved: inData.ownPaths)
        // Everything else there is reserved, also what --force set aside, and whatever way the
        // certificate directory is named (here through a link).
        try FileManager.default.createDirectory(atPath: dir.file("data/ca.replaced-20261203T000000Z"), withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: dir.file("data/certs"), withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(atPath: dir.file("linked-certs"), withDestinationPath: dir.file("data/certs"))
        let linked = Directories(configDir: dir.file("etc"), dataDir: dir.file("data"), certDir: dir.file("linked-certs"), systemdDir: dir.file("systemd"))
        #expect(linked.ownPaths.contains(dir.file("data/ca.replaced-20261203T000000Z")) && !linked.ownPaths.contains(dir.file("data")), "\(linked.ownPaths)")
        try FileOperations.checkReplaceable([dir.file("linked-certs/web.crt")], reserved: linked.ownPaths)
        // Certificates in the data directory itself: theirs stay writable, auto-ssl's are not.
        _ = try dir.write("data/server.crt", "old\n")
        let same = Directories(configDir: dir.file("etc"), dataDir: dir.file("data"), certDir: dir.file("data"), systemdDir: dir.file("systemd"))
        try FileOperations.checkReplaceable([dir.file("data/server.crt")], reserved: same.ownPaths)
        #expect(throws: AutoSSLError.self) {
            try FileOperations.checkReplaceable([dir.file("data/ca.replaced-20261203T000000Z/x")], reserved: same.ownPaths)
        }
        // A database password file named in config.yaml, outside both directories.
        var options = CAInitOptions()
        options.name = "Reserved"
        options.addresses = [ListenAddress(host: "127.0.0.1", port: 9443)]
        options.caPassword = .given("ca-password-0123456789")
        options.provisionerPassword = .generate
        _ = try CAInitializer(directories: apart).initialise(options)
        var configuration = try AutoSSLConfiguration.load(from: apart.configFile)
        configuration.ca?.database = DatabaseSettings(url: "postgres://ca@127.0.0.1/ca", passwordFile: dir.file("db-password"))
        try configuration.save(to: apart.configFile)
        #expect(AutoSSLConfiguration.reservedPaths(apart).contains(dir.file("db-password")))
        #expect(throws: AutoSSLError.self) {
            try FileOperations.checkReplaceable([dir.file("db-password")], reserved: AutoSSLConfiguration.reservedPaths(apart))
        }
    }

    @Test func directoriesComeFromTheEnvironment() {
        let dirs = Directories.fromEnvironment([
            "AUTO_SSL_CONFIG_DIR": "/x/etc", "AUTO_SSL_DATA_DIR": "/x/data", "AUTO_SSL_CERT_DIR": "relative/certs",
        ])
        #expect(dirs.configDir == "/x/etc")
        #expect(dirs.dataDir == "/x/data")
        #expect(dirs.certDir.hasPrefix("/") && dirs.certDir.hasSuffix("/relative/certs"))
        #expect(dirs.systemdDir == "/etc/systemd/system")
        #expect(Directories.fromEnvironment([:]) == .defaults)
    }

    @Test func makeDirectoryTightensSecretsDirectories() throws {
        let dir = TemporaryDirectory()
        let secrets = dir.file("a/b/secrets")
        try FileOperations.makeDirectory(secrets, mode: 0o700)
        #expect(fileMode(secrets) == 0o700)
        chmod(secrets, 0o755)
        try FileOperations.makeDirectory(secrets, mode: 0o700, enforceMode: true)
        #expect(fileMode(secrets) == 0o700)
    }

    @Test func readingStopsPastTheLimit() throws {
        let dir = TemporaryDirectory()
        let file = try dir.writeData("big", [UInt8](repeating: 0x41, count: 200_000))
        #expect(try FileOperations.readBytes(file, limit: 200_000).count == 200_000)
        #expect(throws: AutoSSLError.self) { _ = try FileOperations.readBytes(file, limit: 199_999) }
        // /dev/zero never ends: the limit ends the read.
        #expect(throws: AutoSSLError.self) { _ = try FileOperations.readBytes("/dev/zero", limit: 1 << 20) }
    }

    @Test func aBareFileNameIsInTheCurrentDirectory() {
        #expect(FileOperations.directory(of: "replica.bundle") == ".")
        #expect(FileOperations.directory(of: "out/replica.bundle") == "out")
        #expect(FileOperations.directory(of: "/etc/auto-ssl/config.yaml") == "/etc/auto-ssl")
    }

    @Test func theAuditLogIsNeverWrittenThroughALinkPlantedInItsPlace() throws {
        let dir = TemporaryDirectory()
        let victim = try dir.write("victim", "precious\n", mode: 0o644)
        let log = dir.file("audit.log")
        try FileManager.default.createSymbolicLink(atPath: log, withDestinationPath: victim)
        #expect(throws: AutoSSLError.self) { _ = try AuditLog(path: log) }
        let hardLinked = dir.file("hard.log")
        #expect(link(victim, hardLinked) == 0)
        #expect(throws: AutoSSLError.self) { _ = try AuditLog(path: hardLinked) }
        #expect(try readFile(victim) == "precious\n")
        #expect(fileMode(victim) == 0o644)
        // A genuine log is created private and appended to.
        let genuine = dir.file("logs/audit.log")
        try AuditLog(path: genuine).record(.init("test.event", serial: "01"))
        #expect(fileMode(genuine) == 0o600)
        #expect(try readFile(genuine).contains("test.event"))
    }
}
