import Foundation
import Testing
import TestSupport

#if canImport(Glibc)
import Glibc
#endif

/// `auto-ssl remote`: a CA enrolls and manages application servers over ssh. Each server is "another
/// machine" (`SSHHostLab`: a network namespace with its own sshd and its own /etc, /var/lib and
/// /usr/local/bin), reached through the real ssh and scp.
@Suite(.serialized) struct RemoteEndToEndTests {
    /// In CI or as root a missing requirement is a failure, not a skip.
    static func requireLab() throws -> Bool {
        guard let missing = SSHHostLab.missingRequirement else { return true }
        if ProcessInfo.processInfo.environment["CI"] != nil || getuid() == 0 {
            throw TestFailure("RemoteEndToEndTests cannot run: \(missing)")
        }
        print("RemoteEndToEndTests not run: \(missing)")
        return false
    }

    /// The CA, listening on this machine's side of hosts 1 and 2 (the hosts route to both).
    struct Setup {
        let lab: SSHHostLab
        let sandbox: Sandbox
        let ca: RunningCA
        let port: Int
        let fingerprint: String

        init(hosts: Int, sudoNeedsPassword: Set<Int> = [], unknownKeys: Set<Int> = [], certDuration: String = "168h") throws {
            lab = try SSHHostLab(count: hosts, sudoNeedsPassword: sudoNeedsPassword, unknownKeys: unknownKeys)
            sandbox = Sandbox()
            port = freeLoopbackPort()
            let created = try sandbox.run([
                "ca", "init", "--non-interactive", "--name", "Remote CA", "--address", "10.231.1.1:\(port)", "--address", "10.231.2.1:\(port)",
                "--cert-duration", certDuration,
            ])
            guard created.status == 0 else { throw TestFailure("ca init: \(created)") }
            // The dashboard is for loopback by default; this CA listens on the lab's addresses only.
            let config = sandbox.configDir + "/config.yaml"
            try readFile(config).replacingOccurrences(of: "\nca:\n", with: "\nca:\n  dashboard_allow:\n  - 10.231.1.1/32\n")
                .write(toFile: config, atomically: true, encoding: .utf8)
            ca = try RunningCA(serving: sandbox, port: port)
            fingerprint = try ca.fingerprint
        }

        func remote(_ arguments: [String]) throws -> ProcessResult {
            try sandbox.run(["remote"] + arguments + ["--ssh-command", lab.sshCommand])
        }

        func enroll(_ host: SSHHostLab.Host, _ extra: [String] = []) throws -> ProcessResult {
            var result = try remote(["enroll", host.address, "--user", SSHHostLab.Host.user, "--name", "h\(host.index)", "--san", "h\(host.index).remote.test"] + extra)
            if result.status != 0 { result.stderr += "\n[sshd log of h\(host.index)]\n" + ((try? readFile(host.sshdLog)) ?? "") }
            return result
        }

        func status(_ hosts: [String] = []) throws -> (result: ProcessResult, byName: [String: [String: Any]]) {
            let result = try remote(["status", "--json"] + hosts)
            let rows = (try? JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [[String: Any]]) ?? []
            var byName: [String: [String: Any]] = [:]
            for row in rows { byName[row["name"] as? String ?? "?"] = row["status"] as? [String: Any] ?? [:] }
            return (result, byName)
        }

        func fleet(_ arguments: [String] = []) throws -> [String: [String: Any]] {
            let result = try sandbox.run(["ca", "fleet", "--json"] + arguments)
            guard result.status == 0 else { throw TestFailure("ca fleet: \(result)") }
            let object = try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any] ?? [:]
            var entries: [String: [String: Any]] = [:]
            for entry in object["entries"] as? [[String: Any]] ?? [] {
                entries[((entry["names"] as? [String]) ?? []).joined(separator: ",")] = entry
            }
            return entries
        }

        /// Every text this machine or a host wrote: the CA's files and log, each host's files and sshd log.
        func everyFile() -> [String: String] {
            var files: [String: String] = [:]
            var roots = [sandbox.root.path]
            roots += lab.hosts.map(\.root)
            for root in roots {
                guard let walker = FileManager.default.enumerator(atPath: root) else { continue }
                while let relative = walker.nextObject() as? String {
                    let path = root + "/" + relative
                    var directory: ObjCBool = false
                    guard FileManager.default.fileExists(atPath: path, isDirectory: &directory), !directory.boolValue,
                          (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? Int).map({ $0 < 4 << 20 }) == true,
                          let data = FileManager.default.contents(atPath: path) else { continue }
                    files[path] = String(decoding: data, as: UTF8.self)
                }
            }
            return files
        }
    }

    static let jwt = "eyJ[A-Za-z0-9_-]{8,}\\.eyJ[A-Za-z0-9_-]{8,}\\."

    /// Samples `ps -eo args` (both sides: the namespaces share this PID namespace) until stopped.
    final class ProcessWatcher: @unchecked Sendable {
        private let lock = NSLock()
        private var seen: Set<String> = []
        private var running = true
        private var samples = 0
        private let done = DispatchSemaphore(value: 0)

        init() {
            Thread { [self] in
                while isRunning {
                    if let listing = try? runProcess("/bin/ps", ["-eo", "args"]) {
                        lock.lock()
                        for line in listing.stdout.split(separator: "\n") { seen.insert(String(line)) }
                        samples += 1
                        lock.unlock()
                    }
                    usleep(20_000)
                }
                done.signal()
            }.start()
        }

        var isRunning: Bool {
            lock.lock()
            defer { lock.unlock() }
            return running
        }

        func stop() -> (lines: Set<String>, samples: Int) {
            lock.lock()
            running = false
            lock.unlock()
            done.wait()
            lock.lock()
            defer { lock.unlock() }
            return (seen, samples)
        }
    }

    @Test func threeHostsEnrolledOverSSHShowInRemoteStatusAndOneAgedHostIsOverdueEverywhere() throws {
        guard try Self.requireLab() else { return }
        // 5 minutes (the shortest a CA allows): the hosts renew at 3m20s, the CA calls a name overdue at 3m45s.
        let setup = try Setup(hosts: 3, certDuration: "5m")
        defer { setup.lab.stop() }
        let secrets = [
            try readFile(setup.sandbox.configDir + "/provisioner-password").trimmingCharacters(in: .whitespacesAndNewlines),
            try readFile(setup.sandbox.configDir + "/ca-password").trimmingCharacters(in: .whitespacesAndNewlines),
        ]

        // Enrolling, while ps is watched on both sides.
        let watcher = ProcessWatcher()
        var enrollOutputs: [String] = []
        for host in setup.lab.hosts {
            let started = Date()
            let enrolled = try setup.enroll(host)
            print("remote enroll h\(host.index) (binary copied): \(String(format: "%.1f", Date().timeIntervalSince(started))) s")
            try #require(enrolled.status == 0, "h\(host.index): \(enrolled)")
            #expect(enrolled.stdout.contains("copied auto-ssl"), "\(enrolled)")
            enrollOutputs.append(enrolled.stdout + enrolled.stderr)
        }
        let watched = watcher.stop()
        #expect(watched.samples > 20, "ps sampled \(watched.samples) times")
        print("ps -eo args sampled \(watched.samples) times during the enrollments, \(watched.lines.count) distinct lines")
        #expect(watched.lines.contains { $0.contains("sudo -n /usr/local/bin/auto-ssl server enroll --token-file /dev/stdin") },
                "the remote enrollment was seen by ps")
        for line in watched.lines {
            #expect(line.range(of: Self.jwt, options: .regularExpression) == nil, "a token in ps: \(line)")
            for secret in secrets { #expect(!line.contains(secret), "a password in ps: \(line)") }
        }
        for output in enrollOutputs { #expect(output.range(of: Self.jwt, options: .regularExpression) == nil, "\(output)") }

        // Each host has the binary, its certificate and key, written on its own file system.
        for host in setup.lab.hosts {
            #expect(FileManager.default.isExecutableFile(atPath: host.bin + "/auto-ssl"))
            #expect(fileMode(host.certDir + "/server.key") == 0o600)
            // Written as root through the real sudo by a login that is not root.
            let owner = try FileManager.default.attributesOfItem(atPath: host.certDir + "/server.key")[.ownerAccountID] as? NSNumber
            #expect(owner?.intValue == 0, "server.key is root's: \(String(describing: owner))")
            let logins = try readFile(host.sshdLog)
            #expect(logins.contains("Accepted publickey for \(SSHHostLab.Host.user) ") && !logins.contains("for root "), "\(logins)")
            #expect(FileManager.default.fileExists(atPath: host.configDir + "/config.yaml"))
            let names = try runProcess("openssl", ["x509", "-in", host.certDir + "/server.crt", "-noout", "-ext", "subjectAltName"]).stdout
            #expect(names.contains("DNS:h\(host.index).remote.test"), "\(names)")
            #expect(FileManager.default.fileExists(atPath: host.unitsDir + "/auto-ssl-renew.timer"))
        }
        #expect(!FileManager.default.fileExists(atPath: "/etc/ssl/auto-ssl/server.crt"), "nothing landed on this machine")
        // The inventory: one entry per host, owner-only, no secrets.
        let inventoryPath = setup.sandbox.dataDir + "/remote-hosts.json"
        #expect(fileMode(inventoryPath) == 0o600)
        let listed = try setup.sandbox.run(["remote", "list", "--json"])
        let list = try JSONSerialization.jsonObject(with: Data(listed.stdout.utf8)) as? [[String: Any]] ?? []
        #expect(list.map { $0["name"] as? String } == ["h1", "h2", "h3"], "\(listed)")
        #expect(list.first?["host"] as? String == "10.231.1.2" && list.first?["user"] as? String == SSHHostLab.Host.user)

        // Enrolling again: the binary there is this build, not copied again.
        let againStarted = Date()
        let again = try setup.enroll(setup.lab.hosts[0])
        print("remote enroll h1 again (binary current): \(String(format: "%.1f", Date().timeIntervalSince(againStarted))) s")
        #expect(again.status == 0 && again.stdout.contains("not copied"), "\(again)")

        // remote status --json: names, expiry, serial, timer, last renewal for each host.
        let statusStarted = Date()
        let (status, byName) = try setup.status()
        print("remote status --json of 3 hosts: \(String(format: "%.2f", Date().timeIntervalSince(statusStarted))) s")
        #expect(status.status == 0, "\(status)")
        for index in 1...3 {
            let host = try #require(byName["h\(index)"], "\(status)")
            #expect(host["state"] as? String == "ok", "\(host)")
            #expect(host["names"] as? [String] == ["h\(index).remote.test"], "\(host)")
            #expect((host["serial"] as? String)?.isEmpty == false && host["not_after"] != nil, "\(host)")
            #expect((host["timer"] as? String)?.hasPrefix("installed") == true, "\(host)")
            #expect(host["suspended"] as? Bool == false)
            #expect((host["last_attempt"] as? [String: Any])?["result"] as? String == "enrolled", "\(host)")
        }

        // Host 2's timer is stopped (its unit removed), and it ages past its renewal point; the
        // others renew (the timers do not run in the lab: `remote renew`).
        try #require(try setup.lab.asRoot(setup.lab.hosts[1], "rm \(SSHHostLab.Host.systemdDir)/auto-ssl-renew.timer").status == 0)
        let overdueAfter = try #require(
            (setup.fleet()["h2.remote.test"]?["overdue_after"] as? String).flatMap { ISO8601DateFormatter().date(from: $0) })
        let wait = overdueAfter.timeIntervalSinceNow + 2
        try #require(wait < 280, "h2's certificate is overdue only in \(wait) s")
        if wait > 0 { usleep(UInt32(wait * 1_000_000)) }
        let renewed = try setup.remote(["renew", "h1", "h3", "--force"])
        #expect(renewed.status == 0 && renewed.stdout.contains("h1: renewed") && renewed.stdout.contains("h3: renewed"), "\(renewed)")

        let (aged, agedByName) = try setup.status()
        #expect(aged.status == 1, "not all ok: \(aged)")
        let h2 = try #require(agedByName["h2"])
        #expect(h2["state"] as? String == "renewal_overdue" && h2["timer"] as? String == "not installed", "\(h2)")
        #expect(agedByName["h1"]?["state"] as? String == "ok" && agedByName["h3"]?["state"] as? String == "ok", "\(agedByName)")
        let text = try setup.remote(["status"])
        #expect(text.status == 1 && text.stdout.contains("h2  renewal_overdue") && text.stdout.contains("timer: not installed"), "\(text)")
        // The CA sees the same from its records: `ca fleet` and the dashboard.
        let fleet = try setup.fleet()
        #expect(["expiring", "renewal_overdue"].contains(fleet["h2.remote.test"]?["state"] as? String ?? ""), "\(fleet)")
        #expect(fleet["h1.remote.test"]?["state"] as? String == "healthy" && fleet["h3.remote.test"]?["state"] as? String == "healthy")
        let dashboard = try runProcess("curl", ["-s", "--cacert", setup.ca.rootPath, "https://10.231.1.1:\(setup.port)/dashboard"])
        #expect(dashboard.status == 0 && dashboard.stdout.contains("h2.remote.test"), "\(dashboard)")
        let row = dashboard.stdout.components(separatedBy: "h2.remote.test").dropFirst().first.map { String($0.prefix(600)) } ?? ""
        let rowBefore = dashboard.stdout.components(separatedBy: "h2.remote.test").first.map { String($0.suffix(600)) } ?? ""
        #expect((row + rowBefore).contains("expiring") || (row + rowBefore).contains("overdue"), "\(rowBefore)h2.remote.test\(row)")

        // No token and no password in any file or log on either side.
        for (path, contents) in setup.everyFile() {
            #expect(contents.range(of: Self.jwt, options: .regularExpression) == nil, "a token in \(path)")
            for secret in secrets where !path.hasSuffix("-password") { #expect(!contents.contains(secret), "a password in \(path)") }
        }
        #expect(setup.ca.stop() == 0)
    }

    @Test func unknownHostKeysAndSudoWithoutNOPASSWDAreRefusedWithTheirExitCodes() throws {
        guard try Self.requireLab() else { return }
        let setup = try Setup(hosts: 2, sudoNeedsPassword: [2], unknownKeys: [2])
        defer { setup.lab.stop() }
        let host = setup.lab.hosts[1]

        // Host key not in known_hosts: refused before anything is copied or any token is made.
        let unknown = try setup.enroll(host)
        #expect(unknown.status == 6 && unknown.stderr.contains("host key of autossl@10.231.2.2 is not known"), "\(unknown)")
        #expect(!FileManager.default.fileExists(atPath: host.bin + "/auto-ssl"))
        let tokens = try setup.ca.auditEvents().filter { $0["event"] as? String == "token.created" }
        #expect(tokens.isEmpty, "\(tokens)")

        // With --accept-new-host-key the key is recorded; then sudo wants a password: exit 4.
        let sudo = try setup.enroll(host, ["--accept-new-host-key"])
        #expect(sudo.status == 4 && sudo.stderr.contains("sudo on autossl@10.231.2.2 needs a password"), "\(sudo)")
        #expect(try readFile(setup.lab.knownHosts).contains("10.231.2.2 "), "accept-new recorded the key")
        #expect(!FileManager.default.fileExists(atPath: host.certDir + "/server.crt"))
        // A changed host key afterwards (the host reinstalled, or someone in between) is refused even with the flag.
        let lines = try readFile(setup.lab.knownHosts).split(separator: "\n").filter { !$0.hasPrefix("10.231.2.2 ") }
        let other = setup.lab.directory.file("other_key")
        _ = try runProcess("/usr/bin/ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", other])
        let fake = try readFile(other + ".pub").split(separator: " ").prefix(2).joined(separator: " ")
        try (lines.joined(separator: "\n") + "\n10.231.2.2 \(fake)\n").write(toFile: setup.lab.knownHosts, atomically: true, encoding: .utf8)
        let changed = try setup.enroll(host, ["--accept-new-host-key"])
        #expect(changed.status == 6 && changed.stderr.contains("CHANGED"), "\(changed)")

        // An address nobody answers on: unreachable, exit 5.
        let down = try setup.sandbox.run(["remote", "enroll", "10.231.1.9", "--user", SSHHostLab.Host.user, "--ssh-command", setup.lab.sshCommand])
        #expect(down.status == 5 && down.stderr.contains("unreachable"), "\(down)")
        // Nothing of these is in the inventory.
        let listed = try setup.sandbox.run(["remote", "list", "--json"])
        #expect(listed.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "[\n\n]" || listed.stdout.contains("[]"), "\(listed)")

        // An enrollment that fails on the host shows the host's own output (exit 8) and records nothing.
        let good = setup.lab.hosts[0]
        try #require(try setup.lab.asRoot(good, "rmdir /etc/ssl/auto-ssl && echo not-a-directory > /etc/ssl/auto-ssl").status == 0)
        let failed = try setup.enroll(good)
        #expect(failed.status == 8 && failed.stderr.contains("server enroll on autossl@10.231.1.2 failed") && failed.stderr.contains("the host said"),
                "\(failed)")
        #expect(failed.stderr.range(of: Self.jwt, options: .regularExpression) == nil)
        #expect(!(try setup.sandbox.run(["remote", "list"]).stdout.contains("h1")))
        // Fixed there, it enrolls.
        try #require(try setup.lab.asRoot(good, "rm /etc/ssl/auto-ssl && mkdir /etc/ssl/auto-ssl").status == 0)
        let fixed = try setup.enroll(good)
        #expect(fixed.status == 0 && fixed.stdout.contains("not copied"), "\(fixed)")
        #expect(setup.ca.stop() == 0)
    }

    @Test func updateReplacesADifferentBinaryUpdateCAURLChecksTheFingerprintAndRemoveForgets() throws {
        guard try Self.requireLab() else { return }
        let setup = try Setup(hosts: 2)
        defer { setup.lab.stop() }
        for host in setup.lab.hosts { try #require(try setup.enroll(host).status == 0) }
        let h1 = setup.lab.hosts[0]

        // remote update: a host with another binary gets this one (checksum checked there); one with
        // this build is left alone.
        try #require(try setup.lab.asRoot(h1, "printf '#!/bin/sh\\necho auto-ssl 0.0.1\\n' > /usr/local/bin/auto-ssl").status == 0)
        let updated = try setup.remote(["update"])
        #expect(updated.status == 0, "\(updated)")
        #expect(updated.stdout.contains("h1: replaced auto-ssl 0.0.1 with auto-ssl"), "\(updated)")
        #expect(updated.stdout.contains("h2: already auto-ssl"), "\(updated)")
        let local = try runProcess("sha256sum", [autoSSLBinaryPath()]).stdout.prefix(64)
        let there = try runProcess("sha256sum", [h1.bin + "/auto-ssl"]).stdout.prefix(64)
        #expect(local == there)
        #expect(try FileManager.default.contentsOfDirectory(atPath: h1.bin).sorted() == ["auto-ssl"], "no temporary file left")
        // The upload went to the ssh user's home directory (the host's own, not root's), and is gone.
        let home = try FileManager.default.contentsOfDirectory(atPath: h1.home)
        #expect(home.contains(".ssh"), "the login's home: \(home)")
        let uploads = home.filter { $0.hasPrefix(".auto-ssl-upload-") }
        #expect(uploads.isEmpty, "no upload left in the home directory: \(uploads)")

        // remote update-ca-url: the CA "moved" to its second address. A wrong fingerprint is
        // refused by the host (exit 6) and changes nothing; the right one re-points it.
        let wrong = String(repeating: "ab", count: 32)
        let refused = try setup.remote(["update-ca-url", "h1", "--ca-url", "https://10.231.2.1:\(setup.port)", "--fingerprint", wrong])
        #expect(refused.status == 6, "\(refused)")
        #expect(try setup.status(["h1"]).byName["h1"]?["ca_url"] as? String == "https://10.231.1.1:\(setup.port)")
        let moved = try setup.remote(["update-ca-url", "h1", "--ca-url", "https://10.231.2.1:\(setup.port)"])
        #expect(moved.status == 0 && moved.stdout.contains("h1: now renews at https://10.231.2.1:\(setup.port)"), "\(moved)")
        #expect(try setup.status(["h1"]).byName["h1"]?["ca_url"] as? String == "https://10.231.2.1:\(setup.port)")
        let renewed = try setup.remote(["renew", "h1", "--force"])
        #expect(renewed.status == 0 && renewed.stdout.contains("h1: renewed"), "\(renewed)")
        // A URL where no CA answers is refused before anything is recorded.
        let nowhere = try setup.remote(["update-ca-url", "h1", "--ca-url", "https://10.231.1.1:\(setup.port + 1)"])
        #expect(nowhere.status != 0, "\(nowhere)")
        #expect(try setup.status(["h1"]).byName["h1"]?["ca_url"] as? String == "https://10.231.2.1:\(setup.port)")

        // remote remove: `server remove` there (revoked, timer and files gone), then out of the inventory.
        let serial = try #require(try setup.status(["h2"]).byName["h2"]?["serial"] as? String)
        let h2Timer = setup.lab.hosts[1].unitsDir + "/auto-ssl-renew.timer"
        #expect(FileManager.default.fileExists(atPath: h2Timer), "the timer is there before")
        let removed = try setup.remote(["remove", "h2"])
        #expect(removed.status == 0, "\(removed)")
        let h2 = setup.lab.hosts[1]
        #expect(!FileManager.default.fileExists(atPath: h2.unitsDir + "/auto-ssl-renew.timer"))
        #expect(try setup.lab.asRoot(h2, "test -e /etc/ssl/auto-ssl/server.crt").status != 0)
        let revoked = try setup.sandbox.run(["ca", "certs", "list", "--revoked", "--json"])
        #expect(revoked.stdout.lowercased().contains(serial.lowercased().replacingOccurrences(of: ":", with: "")) || revoked.stdout.contains(serial), "\(revoked)")
        let listed = try setup.sandbox.run(["remote", "list", "--json"])
        #expect(listed.stdout.contains("\"h1\"") && !listed.stdout.contains("\"h2\""), "\(listed)")
        #expect(try setup.remote(["status", "h2"]).status == 2, "h2 is no longer known")
        #expect(setup.ca.stop() == 0)
    }
}
