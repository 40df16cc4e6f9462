@testable import AutoSSLHost
import Foundation
import Testing

private func caUnit(lowPort: Bool, user: String?, group: String?, executable: String = "/usr/bin/auto-ssl") -> String {
    SystemdUnits.caService(
        executable: executable, configDir: "/etc/auto-ssl", dataDir: "/var/lib/auto-ssl",
        passwordFile: "/etc/auto-ssl/ca-password", lowPort: lowPort, user: user, group: group)
}

private func unitLines(_ unit: String) -> [String] { unit.split(separator: "\n").map(String.init) }

private let isRoot = getuid() == 0
private let hasSystemdAnalyze = SystemCommandRunner().which("systemd-analyze") != nil

@Suite struct ServiceUserTests {
    @Test func caServiceAsTheAutoSSLUserOnAHighPortHoldsNoCapability() {
        let lines = unitLines(caUnit(lowPort: false, user: "auto-ssl", group: "auto-ssl"))
        #expect(lines.contains("User=auto-ssl") && lines.contains("Group=auto-ssl"))
        #expect(lines.contains("CapabilityBoundingSet="))
        #expect(!lines.contains { $0.hasPrefix("AmbientCapabilities") })
        #expect(lines.contains("NoNewPrivileges=yes"))
    }

    @Test func caServiceAsTheAutoSSLUserOnALowPortHoldsOnlyBindService() {
        let lines = unitLines(caUnit(lowPort: true, user: "auto-ssl", group: "auto-ssl"))
        #expect(lines.contains("AmbientCapabilities=CAP_NET_BIND_SERVICE"))
        #expect(lines.contains("CapabilityBoundingSet=CAP_NET_BIND_SERVICE"))
        #expect(lines.filter { $0.hasPrefix("CapabilityBoundingSet=") || $0.hasPrefix("AmbientCapabilities=") }.count == 2)
    }

    @Test func caServiceWithoutAUserRunsAsRootAsBefore() {
        let lines = unitLines(caUnit(lowPort: false, user: nil, group: nil))
        #expect(!lines.contains { $0.hasPrefix("User=") || $0.hasPrefix("Group=") })
        #expect(lines.contains("ExecStart=/usr/bin/auto-ssl ca serve"))
    }

    @Test(.enabled(if: hasSystemdAnalyze, "systemd-analyze is not installed"))
    func systemdAnalyzeAcceptsTheUnitWithAUserAndALowPort() throws {
        let directory = TemporaryDirectoryForHost()
        defer { directory.remove() }
        let path = directory.path + "/auto-ssl-ca.service"
        // ExecStart must name an executable that exists for verify to pass (and systemd calls
        // running as nobody unsafe, so the unit names the packaged account).
        try caUnit(lowPort: true, user: "auto-ssl", group: "auto-ssl", executable: "/bin/true")
            .write(toFile: path, atomically: true, encoding: .utf8)
        #expect(SystemdUnits.verify(path) == .passed)
    }

    /// Directories with a space, `%`, `$` or a quote stay whole paths in every unit: quoted and
    /// escaped as systemd reads them (`%%`, `$$` in ExecStart=), and systemd-analyze verify finds
    /// no invalid assignment (it used to ignore all three Environment= lines).
    @Test func oddDirectoryNamesStayWholePathsInTheUnits() throws {
        let odd = "/tmp/sp ace/x%y$z\"q"
        #expect(SystemdUnits.word(odd) == #""/tmp/sp ace/x%%y$z\"q""#)
        #expect(SystemdUnits.word(odd, exec: true) == #""/tmp/sp ace/x%%y$$z\"q""#)
        #expect(SystemdUnits.word("/etc/auto-ssl") == "/etc/auto-ssl", "a plain path is written as it is")
        #expect(SystemdUnits.word("a\nb") == #""a\x0ab""#)
        let renew = unitLines(SystemdUnits.renewService(executable: "/bin/true", configDir: odd + "/etc", dataDir: odd + "/data", certDir: odd + "/certs"))
        #expect(renew.contains(#"Environment="AUTO_SSL_CONFIG_DIR=/tmp/sp ace/x%%y$z\"q/etc""#), "\(renew)")
        guard hasSystemdAnalyze else { return }
        let directory = TemporaryDirectoryForHost()
        defer { directory.remove() }
        for (name, unit) in [
            ("auto-ssl-renew.service", SystemdUnits.renewService(executable: "/bin/true", configDir: odd + "/etc", dataDir: odd + "/data", certDir: odd + "/certs")),
            ("auto-ssl-ca.service", SystemdUnits.caService(
                executable: "/bin/true", configDir: odd + "/etc", dataDir: odd + "/data", passwordFile: odd + "/etc/ca-password", lowPort: false)),
            ("auto-ssl-backup.service", SystemdUnits.backupService(
                executable: "/bin/true", configDir: odd + "/etc", dataDir: odd + "/data", outputDirectory: odd + "/backups", retention: 3,
                passphraseFile: odd + "/pass")),
        ] {
            let path = directory.path + "/" + name
            try unit.write(toFile: path, atomically: true, encoding: .utf8)
            let result = try #require(SystemCommandRunner().run("systemd-analyze", ["verify", path], timeout: 30))
            #expect(!result.output.contains("Invalid") && !result.output.contains("Ignoring"), "\(name): \(result.output)")
        }
    }

    /// `sudo auto-ssl client trust --nss` means the browser database of the user who ran sudo
    /// (given back to them), not root's; without sudo, $HOME's.
    @Test func theNSSDatabaseIsTheOneOfTheUserWhoRanSudo() throws {
        let plain = ExtraTrustStores.browserUser(environment: ["HOME": "/home/alice"])
        #expect(plain.0 == "/home/alice" && plain.1 == nil)
        guard isRoot, let nobody = ServiceUser.lookup("nobody"), let entry = getpwnam("nobody"), let directory = entry.pointee.pw_dir else { return }
        let sudo = ExtraTrustStores.browserUser(environment: ["HOME": "/root", "SUDO_USER": "nobody"])
        #expect(sudo.0 == String(cString: directory) && sudo.1 == nobody)
        #expect(ExtraTrustStores.browserUser(environment: ["HOME": "/root", "SUDO_USER": "root"]).0 == "/root")
    }

    /// Root works on another user's browser database as that user (setpriv), so nothing in it is
    /// root's and no link they control is followed with root's rights.
    @Test func theNSSDatabaseOfAnotherUserIsWorkedOnAsThatUser() throws {
        let alice = ServiceUser(name: "alice", uid: 1_000, gid: 1_001, group: "alice")
        let stores = ExtraTrustStores(runner: SystemCommandRunner(), home: "/home/alice", owner: alice)
        #expect(stores.commands(install: .nss, name: "auto-ssl-x", file: "/a.crt")
            == [["setpriv", "--reuid=1000", "--regid=1001", "--init-groups", "--",
                 "certutil", "-d", "sql:/home/alice/.pki/nssdb", "-A", "-t", "C,,", "-n", "auto-ssl-x", "-i", "/a.crt"]])
        #expect(ExtraTrustStores(runner: SystemCommandRunner(), home: "/home/alice").commands(install: .nss, name: "n", file: "/a.crt")[0][0]
            == "certutil", "without sudo, as this user")
        // The prefix really runs the command as that user.
        guard isRoot, let nobody = ServiceUser.lookup("nobody"), SystemCommandRunner().which("setpriv") != nil else { return }
        let directory = TemporaryDirectoryForHost()
        defer { directory.remove() }
        chmod(directory.path, 0o1777)
        let asNobody = ExtraTrustStores(runner: SystemCommandRunner(), home: directory.path, owner: nobody)
        let made = directory.path + "/made-by-nobody"
        let command = asNobody.asBrowserUser(["touch", made])
        #expect(SystemCommandRunner().run(command[0], Array(command.dropFirst()), timeout: 10)?.status == 0)
        var info = stat()
        #expect(lstat(made, &info) == 0 && info.st_uid == nobody.uid, "made as nobody")
    }

    @Test func lookupFindsRootAndItsGroupAndNotAnUnknownName() throws {
        let root = try #require(ServiceUser.lookup("root"))
        #expect(root.uid == 0 && root.gid == 0 && root.group == "root" && root.isRoot)
        #expect(ServiceUser.lookup("no-such-user-auto-ssl-test") == nil)
    }

    @Test(.enabled(if: isRoot && ServiceUser.lookup("nobody") != nil, "needs root and the nobody user"))
    func ownGivesTheWholeTreeToTheUserWithoutFollowingSymlinks() throws {
        let nobody = try #require(ServiceUser.lookup("nobody"))
        let directory = TemporaryDirectoryForHost()
        defer { directory.remove() }
        let tree = directory.path + "/ca"
        let outside = directory.path + "/outside"
        try FileManager.default.createDirectory(atPath: tree + "/secrets", withIntermediateDirectories: true)
        try "key".write(toFile: tree + "/secrets/key", atomically: true, encoding: .utf8)
        try "other".write(toFile: outside, atomically: true, encoding: .utf8)
        try FileManager.default.createSymbolicLink(atPath: tree + "/link", withDestinationPath: outside)
        try nobody.own(tree, recursive: true)
        func owner(_ path: String) -> UInt32 {
            var info = stat()
            return lstat(path, &info) == 0 ? info.st_uid : .max
        }
        for path in [tree, tree + "/secrets", tree + "/secrets/key", tree + "/link"] {
            #expect(owner(path) == nobody.uid, "\(path)")
        }
        #expect(owner(outside) == 0, "the link's target is not changed")
    }

    @Test(.enabled(if: ServiceUser.lookup("nobody") != nil, "needs the nobody user"))
    func blockedAncestorNamesTheFirstDirectoryTheUserCannotEnter() throws {
        let nobody = try #require(ServiceUser.lookup("nobody"))
        let directory = TemporaryDirectoryForHost()
        defer { directory.remove() }
        chmod(directory.path, 0o755)
        let closed = directory.path + "/closed"
        try FileManager.default.createDirectory(atPath: closed + "/data", withIntermediateDirectories: true)
        chmod(closed, 0o700)
        #expect(nobody.blockedAncestor(of: closed + "/data") == closed)
        chmod(closed, 0o711)
        #expect(nobody.blockedAncestor(of: closed + "/data") == nil)
    }
}

/// A fresh directory under the system temporary directory, removed by `remove()`.
private struct TemporaryDirectoryForHost {
    let path: String
    init() {
        path = (NSTemporaryDirectory() as NSString).appendingPathComponent("auto-ssl-host-" + UUID().uuidString)
        try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }
    func remove() { try? FileManager.default.removeItem(atPath: path) }
}
