import Foundation
import Testing
import TestSupport

// The Debian package built by scripts/package (scripts/test builds it once per run into
// /var/cache/auto-ssl/package-out; AUTO_SSL_PACKAGE_DIR picks another folder), installed on this
// machine with dpkg, used, removed and purged.

private let packageDirectory = ProcessInfo.processInfo.environment["AUTO_SSL_PACKAGE_DIR"] ?? "/var/cache/auto-ssl/package-out"

private func builtPackage() -> String? {
    let names = (try? FileManager.default.contentsOfDirectory(atPath: packageDirectory)) ?? []
    return names.filter { $0.hasPrefix("auto-ssl_") && $0.hasSuffix(".deb") }.sorted().last.map { packageDirectory + "/" + $0 }
}

private func exists(_ path: String) -> Bool { FileManager.default.fileExists(atPath: path) }

private func owner(_ path: String) -> UInt32? {
    var info = stat()
    return lstat(path, &info) == 0 ? info.st_uid : nil
}

private func passwdEntry(_ name: String) -> [String]? {
    guard let result = try? runProcess("getent", ["passwd", name]), result.status == 0 else { return nil }
    return result.stdout.trimmingCharacters(in: .whitespacesAndNewlines).components(separatedBy: ":")
}

private let isRoot = getuid() == 0
private let hasDpkg = FileManager.default.isExecutableFile(atPath: "/usr/bin/dpkg-deb")
    && FileManager.default.isExecutableFile(atPath: "/usr/bin/dpkg")
/// The test installs and purges the package: it must not meet an installation it would disturb.
private let machineIsClean = !exists("/var/lib/dpkg/info/auto-ssl.list") && !exists("/var/lib/auto-ssl")
    && !exists("/etc/auto-ssl") && passwdEntry("auto-ssl") == nil
private let hasLintian = FileManager.default.isExecutableFile(atPath: "/usr/bin/lintian")

/// Every command path of the binary (["auto-ssl"], ["auto-ssl", "ca"], ...), from its help dump.
private func commandPaths(binary: String) throws -> [[String]] {
    let dump = try runProcess(binary, ["--experimental-dump-help"])
    guard dump.status == 0, let object = try JSONSerialization.jsonObject(with: Data(dump.stdout.utf8)) as? [String: Any],
          let command = object["command"] as? [String: Any] else { throw TestFailure("no help dump: \(dump)") }
    var paths: [[String]] = []
    func walk(_ command: [String: Any], _ prefix: [String]) {
        guard let name = command["commandName"] as? String else { return }
        let path = prefix + [name]
        paths.append(path)
        for sub in command["subcommands"] as? [[String: Any]] ?? [] { walk(sub, path) }
    }
    walk(command, [])
    return paths
}

@Suite(.serialized) struct PackageEndToEndTests {
    @Test(
        .enabled(if: isRoot, "installs a package with dpkg: needs root"),
        .enabled(if: hasDpkg, "dpkg-deb is not installed"),
        .enabled(if: builtPackage() != nil, "no auto-ssl_*.deb in \(packageDirectory): run scripts/package --out \(packageDirectory) first (scripts/test does)"),
        .enabled(if: machineIsClean, "auto-ssl is installed, or /var/lib/auto-ssl, /etc/auto-ssl or the auto-ssl user exist: the test would disturb them"))
    func debianPackageInstallsRunsTheCAAsItsOwnUserAndPurgeRemovesOnlyWhatItCreated() throws {
        let deb = try #require(builtPackage())
        defer {
            // Leave the machine as found, whatever failed above.
            _ = try? runProcess("dpkg", ["--purge", "auto-ssl"])
            try? FileManager.default.removeItem(atPath: "/var/lib/auto-ssl")
            try? FileManager.default.removeItem(atPath: "/etc/auto-ssl")
            if passwdEntry("auto-ssl") != nil { _ = try? runProcess("userdel", ["auto-ssl"]) }
            _ = try? runProcess("groupdel", ["auto-ssl"])
        }

        // The package's metadata: Debian libraries only, no Swift runtime.
        let depends = try runProcess("dpkg-deb", ["--field", deb, "Depends"])
        #expect(depends.stdout.contains("libc6") && depends.stdout.contains("libsqlite3-0"), "\(depends)")
        #expect(!depends.stdout.lowercased().contains("swift"), "\(depends)")

        let installed = try runProcess("dpkg", ["--install", deb])
        try #require(installed.status == 0, "\(installed)")

        // The binary in /usr/bin is this build's version, with no Swift library to load.
        let version = try runProcess("/usr/bin/auto-ssl", ["version"])
        let built = try runProcess(autoSSLBinaryPath(), ["version"])
        #expect(version.status == 0 && version.stdout == built.stdout, "installed: \(version), built: \(built)")
        let ldd = try runProcess("ldd", ["/usr/bin/auto-ssl"])
        #expect(ldd.status == 0 && ldd.stdout.contains("libsqlite3"), "\(ldd)")
        for runtime in ["libswift", "libFoundation", "libdispatch", "not found"] {
            #expect(!ldd.stdout.contains(runtime), "\(runtime) in \(ldd.stdout)")
        }

        // A man page for every command, found by man and rendered.
        let located = try runProcess("man", ["-w", "auto-ssl-ca-init"])
        #expect(located.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "/usr/share/man/man1/auto-ssl-ca-init.1.gz", "\(located)")
        var environment = ProcessInfo.processInfo.environment
        environment["MANPAGER"] = "cat"
        environment["MANWIDTH"] = "120"
        let page = try runProcess("man", ["auto-ssl-ca-init"], environment: environment)
        #expect(page.status == 0 && page.stdout.contains("--address") && page.stdout.contains("--non-interactive"), "\(page)")
        for path in try commandPaths(binary: "/usr/bin/auto-ssl") {
            let file = "/usr/share/man/man1/\(path.joined(separator: "-")).1.gz"
            #expect(exists(file), "no man page for `\(path.joined(separator: " "))` at \(file)")
        }

        // Completions where bash-completion, zsh and fish look for them.
        let bash = try runProcess("bash", ["-c", "source /usr/share/bash-completion/completions/auto-ssl && complete -p auto-ssl"])
        #expect(bash.status == 0 && bash.stdout.contains("auto-ssl"), "\(bash)")
        #expect(try readFile("/usr/share/zsh/vendor-completions/_auto-ssl").hasPrefix("#compdef auto-ssl"))
        #expect(try readFile("/usr/share/fish/vendor_completions.d/auto-ssl.fish").contains("complete -c 'auto-ssl'"))
        #expect(exists("/usr/share/doc/auto-ssl/copyright") && exists("/usr/share/doc/auto-ssl/changelog.gz"))

        // The system user and the directories, with their modes; no CA was created or started.
        let user = try #require(passwdEntry("auto-ssl"), "postinst created no auto-ssl user")
        let uid = try #require(UInt32(user[2]))
        #expect(uid < 1000 && user[5] == "/var/lib/auto-ssl" && user[6] == "/usr/sbin/nologin", "\(user)")
        #expect(owner("/var/lib/auto-ssl") == uid && fileMode("/var/lib/auto-ssl") == 0o750)
        #expect(owner("/etc/auto-ssl") == 0 && fileMode("/etc/auto-ssl") == 0o755)
        #expect(try FileManager.default.contentsOfDirectory(atPath: "/var/lib/auto-ssl").isEmpty)
        #expect(try FileManager.default.contentsOfDirectory(atPath: "/etc/auto-ssl").isEmpty)

        // A CA in temporary directories, its service written for the auto-ssl user (the default
        // once that user exists): the CA's files are handed to it, the password stays root's.
        let sandbox = Sandbox()
        chmod(sandbox.root.path, 0o755)  // the service user must be able to reach its files
        let port = freeLoopbackPort()
        func run(_ arguments: [String]) throws -> ProcessResult {
            try runProcess("/usr/bin/auto-ssl", arguments, environment: sandbox.environment, currentDirectory: sandbox.root.path)
        }
        let created = try run(["ca", "init", "--non-interactive", "--name", "Packaged", "--address", "127.0.0.1:\(port)"])
        try #require(created.status == 0, "\(created)")
        let service = try run(["ca", "install-service"])
        #expect(service.status == 0 && service.stdout.contains("runs as auto-ssl:auto-ssl"), "\(service)")
        #expect(service.stderr.isEmpty, "\(service)")
        let unitPath = sandbox.systemdDir + "/auto-ssl-ca.service"
        let unit = try readFile(unitPath).split(separator: "\n").map(String.init)
        for line in ["User=auto-ssl", "Group=auto-ssl", "ExecStart=/usr/bin/auto-ssl ca serve", "CapabilityBoundingSet=",
                     "LoadCredential=ca-password:\(sandbox.configDir)/ca-password"] {
            #expect(unit.contains(line), "missing \(line)")
        }
        #expect(!unit.contains { $0.hasPrefix("AmbientCapabilities") }, "port \(port) needs no capability")
        if FileManager.default.isExecutableFile(atPath: "/usr/bin/systemd-analyze") {
            #expect(service.stdout.contains("systemd-analyze verify: ok"), "\(service)")
            let verified = try runProcess("systemd-analyze", ["verify", unitPath])
            #expect(verified.status == 0, "\(verified)")
        }
        #expect(owner(sandbox.dataDir) == uid)
        let caFiles = try #require(FileManager.default.enumerator(atPath: sandbox.caDir)?.allObjects as? [String])
        #expect(caFiles.contains("secrets/intermediate_ca_key"), "\(caFiles)")
        for file in [""] + caFiles {
            #expect(owner(sandbox.caDir + "/" + file) == uid, "\(file) is not auto-ssl's")
        }
        #expect(owner(sandbox.configDir + "/ca-password") == 0 && fileMode(sandbox.configDir + "/ca-password") == 0o600)

        // The CA serves as the auto-ssl user, as systemd would start it: the password arrives as a
        // credential, since the user cannot read the root-owned password file.
        let credentials = sandbox.root.file("credentials")
        try FileManager.default.createDirectory(atPath: credentials, withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: sandbox.configDir + "/ca-password", toPath: credentials + "/ca-password")
        #expect(try runProcess("chown", ["-R", "auto-ssl:auto-ssl", credentials]).status == 0)
        var serveEnvironment = sandbox.environment
        serveEnvironment["CREDENTIALS_DIRECTORY"] = credentials
        let serve = Process()
        serve.executableURL = URL(fileURLWithPath: "/usr/bin/setpriv")
        serve.arguments = ["--reuid=auto-ssl", "--regid=auto-ssl", "--init-groups", "/usr/bin/auto-ssl", "ca", "serve"]
        serve.environment = serveEnvironment
        let log = sandbox.root.file("serve.log")
        FileManager.default.createFile(atPath: log, contents: nil)
        serve.standardError = FileHandle(forWritingAtPath: log)
        serve.standardOutput = FileHandle.nullDevice
        try serve.run()
        defer { if serve.isRunning { kill(serve.processIdentifier, SIGTERM); serve.waitUntilExit() } }
        for _ in 0..<150 where !((try? readFile(log))?.contains("listening on") ?? false) && serve.isRunning { usleep(100_000) }
        let health = try runProcess("curl", ["-sf", "--max-time", "10", "--cacert", sandbox.caDir + "/certs/root_ca.crt",
                                             "https://127.0.0.1:\(port)/health"])
        #expect(health.status == 0, "\(health)\nlog:\n\((try? readFile(log)) ?? "")")
        // The static runtime exports no symbols, so the executor hook must be linked, not looked
        // up (EventLoopExecutor): the packaged CA runs its tasks on the event loops.
        #expect(((try? readFile(log)) ?? "").contains("event loops: "), "\((try? readFile(log)) ?? "")")
        kill(serve.processIdentifier, SIGTERM)
        serve.waitUntilExit()
        #expect(owner(sandbox.dataDir + "/audit.log") == uid, "the service wrote its audit log as auto-ssl")

        // A second CA in the package's own data directory (its configuration in the sandbox).
        let second = Sandbox()
        var packagedEnvironment = second.environment
        packagedEnvironment["AUTO_SSL_DATA_DIR"] = "/var/lib/auto-ssl"
        let inPackageDir = try runProcess("/usr/bin/auto-ssl", ["ca", "init", "--non-interactive", "--address", "127.0.0.1:9443"],
                                          environment: packagedEnvironment)
        try #require(inPackageDir.status == 0, "\(inPackageDir)")
        let firstCA = try snapshotTree(sandbox.caDir)
        let secondCA = try snapshotTree("/var/lib/auto-ssl/ca")

        // remove: the package's files go; both CAs, the unit, the user and the directories stay.
        let removed = try runProcess("dpkg", ["--remove", "auto-ssl"])
        #expect(removed.status == 0, "\(removed)")
        for file in ["/usr/bin/auto-ssl", "/usr/share/man/man1/auto-ssl-ca-init.1.gz", "/usr/share/bash-completion/completions/auto-ssl"] {
            #expect(!exists(file), "\(file) is still there after remove")
        }
        #expect(try snapshotTree(sandbox.caDir) == firstCA)
        #expect(try snapshotTree("/var/lib/auto-ssl/ca") == secondCA)
        #expect(exists(unitPath) && exists(sandbox.configDir + "/ca-password") && exists("/etc/auto-ssl"))
        #expect(passwdEntry("auto-ssl") != nil, "remove deleted the user")

        // purge with a CA in /var/lib/auto-ssl: asks nothing, keeps that CA and the user owning it.
        let purgedKeeping = try runProcess("dpkg", ["--purge", "auto-ssl"])
        #expect(purgedKeeping.status == 0 && purgedKeeping.stdout.contains("/var/lib/auto-ssl holds a CA's files"), "\(purgedKeeping)")
        #expect(try snapshotTree("/var/lib/auto-ssl/ca") == secondCA)
        #expect(passwdEntry("auto-ssl") != nil && !exists("/etc/auto-ssl"))
        #expect(try runProcess("dpkg-query", ["--status", "auto-ssl"]).status != 0, "the package is still known to dpkg")

        // Without CA data in the package's directory, purge removes the user, its group and the
        // empty directories, and nothing of the CA that lives elsewhere.
        try FileManager.default.removeItem(atPath: "/var/lib/auto-ssl")
        try #require(try runProcess("dpkg", ["--install", deb]).status == 0)
        let purged = try runProcess("dpkg", ["--purge", "auto-ssl"])
        #expect(purged.status == 0, "\(purged)")
        #expect(passwdEntry("auto-ssl") == nil, "purge left the auto-ssl user")
        #expect(try runProcess("getent", ["group", "auto-ssl"]).status != 0, "purge left the auto-ssl group")
        #expect(!exists("/var/lib/auto-ssl") && !exists("/etc/auto-ssl") && !exists("/usr/bin/auto-ssl"))
        #expect(try snapshotTree(sandbox.caDir) == firstCA)
        #expect(exists(unitPath))
    }

    @Test(
        .enabled(if: hasLintian, "lintian is not installed"),
        .enabled(if: builtPackage() != nil, "no auto-ssl_*.deb in \(packageDirectory): run scripts/package --out \(packageDirectory) first"))
    func lintianFindsNoErrorInTheDebianPackage() throws {
        let deb = try #require(builtPackage())
        let lintian = try runProcess("lintian", ["--no-tag-display-limit", deb])
        let errors = lintian.stdout.split(separator: "\n").filter { $0.hasPrefix("E: ") }
        #expect(errors.isEmpty, "\(lintian.stdout)")
    }
}
