import AutoSSLCore
import AutoSSLHost
import AutoSSLIO
import AutoSSLRemote
import Foundation
import Testing
import TestSupport

@Suite struct SSHArgumentTests {
    @Test func sshIsStrictBatchAndBoundedByDefault() throws {
        let target = try SSHTarget(host: "web1.internal", port: 2222, user: "deploy", identity: "/root/.ssh/fleet")
        let argv = SSHRunner().sshArguments(target, command: "true")
        #expect(argv == [
            "ssh", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes", "-o", "ConnectTimeout=10", "-o", "ServerAliveInterval=15",
            "-o", "ServerAliveCountMax=3", "-p", "2222", "-i", "/root/.ssh/fleet", "-l", "deploy", "--", "web1.internal", "true",
        ])
        let plain = SSHRunner().sshArguments(try SSHTarget(host: "10.0.0.7"), command: "x")
        #expect(!plain.contains("-p") && !plain.contains("-i") && !plain.contains("-l"), "\(plain)")
    }

    @Test func acceptNewHostKeyAndTheSSHCommandSubstitute() throws {
        let runner = SSHRunner(sshProgram: "/opt/bin/myssh", acceptNewHostKey: true)
        let target = try SSHTarget(host: "fe80::1", port: 22, user: "root")
        let ssh = runner.sshArguments(target, command: "true")
        #expect(ssh.first == "/opt/bin/myssh" && ssh.contains("StrictHostKeyChecking=accept-new"))
        let scp = runner.scpArguments(target, local: "/usr/bin/auto-ssl", remotePath: "/tmp/up")
        #expect(scp.first == "scp")
        #expect(scp.contains("-S") && scp[scp.firstIndex(of: "-S")! + 1] == "/opt/bin/myssh")
        #expect(scp.contains("-P") && scp.contains("User=root") && scp.contains("StrictHostKeyChecking=accept-new"))
        #expect(Array(scp.suffix(3)) == ["--", "/usr/bin/auto-ssl", "[fe80::1]:/tmp/up"])
        // With the system's ssh, scp runs its own ssh (no -S).
        #expect(!SSHRunner().scpArguments(target, local: "a", remotePath: "b").contains("-S"))
    }

    @Test func hostsUsersAndPortsThatCouldBeOptionsOrShellAreRefused() {
        for host in ["-oProxyCommand=x", "a b", "a;b", "", "host\n", "$(x)"] {
            #expect(throws: AutoSSLError.self, "\(host)") { try SSHTarget(host: host) }
        }
        #expect(throws: AutoSSLError.self) { try SSHTarget(host: "h", user: "-l") }
        #expect(throws: AutoSSLError.self) { try SSHTarget(host: "h", user: "a b") }
        #expect(throws: AutoSSLError.self) { try SSHTarget(host: "h", port: 0) }
        #expect(throws: AutoSSLError.self) { try SSHTarget(host: "h", port: 70000) }
        #expect((try? SSHTarget(host: "db-1.example.com", user: "ops.user")) != nil)
    }

    @Test func shellQuotingKeepsEveryWordOneWord() throws {
        #expect(SSHRunner.shellQuote("/usr/local/bin/auto-ssl") == "/usr/local/bin/auto-ssl")
        #expect(SSHRunner.shellQuote("it's; rm -rf /") == "'it'\\''s; rm -rf /'")
        #expect(SSHRunner.shellQuote("") == "''")
        let words = ["printf", "%s|", "a b", "it's", "$(id)", "`x`", "*", "\n"]
        let shell = try runProcess("/bin/sh", ["-c", SSHRunner.command(words)])
        #expect(shell.stdout == "a b|it's|$(id)|`x`|*|\n|")
    }
}

@Suite struct SSHFailureTests {
    let target = try! SSHTarget(host: "web1.internal", user: "deploy")

    func result(_ status: Int32, _ stderr: String, timedOut: Bool = false) -> SpawnedProcess.Captured {
        .init(status: status, stdout: [], stderr: stderr, timedOut: timedOut, overflowed: false)
    }

    @Test func hostKeysUnknownOrChangedAreTrustFailures() throws {
        let unknown = SSHFailure.classify(
            result(255, "No ED25519 host key is known for web1.internal and you have requested strict checking.\r\nHost key verification failed.\r\n"),
            target: target, action: "x")
        #expect(unknown?.kind == .trustFailure && unknown?.message.contains("not known") == true, "\(String(describing: unknown))")
        let changed = SSHFailure.classify(
            result(255, "@@@@\n@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @\n@@@@\nHost key verification failed.\n"), target: target,
            action: "x")
        #expect(changed?.kind == .trustFailure && changed?.message.contains("CHANGED") == true)
    }

    @Test func unreachableHostsAreNetworkFailures() {
        for text in [
            "ssh: connect to host web1.internal port 22: Connection refused", "ssh: connect to host 10.9.9.9 port 22: No route to host",
            "ssh: connect to host 10.9.9.9 port 22: Connection timed out", "ssh: Could not resolve hostname nowhere: Name or service not known",
        ] {
            let error = SSHFailure.classify(result(255, text + "\r\n"), target: target, action: "x")
            #expect(error?.kind == .network && error?.message.contains("unreachable") == true, "\(text): \(String(describing: error))")
        }
        #expect(SSHFailure.classify(result(0, "", timedOut: true), target: target, action: "x")?.kind == .network)
        #expect(SSHFailure.classify(result(255, "weird\n"), target: target, action: "x")?.kind == .network)
    }

    @Test func sudoAndLoginRefusalsArePermissionFailures() {
        let sudo = SSHFailure.classify(result(1, "sudo: a password is required\n"), target: target, action: "x")
        #expect(sudo?.kind == .permissionDenied && sudo?.message.contains("sudo on deploy@web1.internal needs a password") == true)
        let login = SSHFailure.classify(result(255, "deploy@web1.internal: Permission denied (publickey).\r\n"), target: target, action: "x")
        #expect(login?.kind == .permissionDenied)
        let notSudoer = SSHFailure.classify(result(1, "deploy is not in the sudoers file.\n"), target: target, action: "x")
        #expect(notSudoer?.kind == .permissionDenied)
    }

    @Test func theRemoteCommandsOwnFailureIsLeftToTheCaller() {
        #expect(SSHFailure.classify(result(6, "error: fingerprint mismatch\n"), target: target, action: "x") == nil)
        #expect(SSHFailure.classify(result(0, ""), target: target, action: "x") == nil)
    }

    @Test func remoteTextIsCleanedBoundedAndRedacted() {
        let cleaned = RemoteText.clean("ok\u{1B}[31mred\u{7}\nline2 SECRETTOKEN", secrets: ["SECRETTOKEN"])
        #expect(cleaned == "ok[31mred\nline2 [redacted]")
        // A control character inside the secret does not hide it from the redaction.
        #expect(RemoteText.clean("token: SECRET\u{7}TOKEN", secrets: ["SECRETTOKEN"]) == "token: [redacted]")
        #expect(RemoteText.clean(String(repeating: "a", count: 10_000), limit: 100).count == 101)
    }
}

@Suite struct RemoteStatusTests {
    @Test func theHostsStatusJSONIsReadIntoAState() throws {
        let json = """
            {"enrolled":true,"ca_url":"https://10.0.0.1:9000","names":["web1.internal"],"serial":"0a:bc","not_after":"2030-01-01T00:00:00Z",
             "renewal_point":"2029-12-01T00:00:00Z","renewal_due":true,"expired":false,"revoked":false,"timer":"not installed",
             "suspended":false,"consecutive_failures":0,"last_attempt":{"time":"2029-11-30T00:00:00Z","result":"renewed","message":"ok"},
             "unknown_field":{"x":1}}
            """
        let status = try RemoteHostStatus(hostJSON: Array(json.utf8), checkedAt: Date())
        #expect(status.state == .renewalOverdue && status.serial == "0a:bc" && status.names == ["web1.internal"])
        #expect(status.timer == "not installed" && status.lastAttempt?.result == "renewed")
        let ok = try RemoteHostStatus(
            hostJSON: Array(#"{"enrolled":true,"names":[],"serial":"01","renewal_due":false,"expired":false}"#.utf8), checkedAt: Date())
        #expect(ok.state == .ok)
        let notEnrolled = try RemoteHostStatus(hostJSON: Array(#"{"enrolled":false,"names":[]}"#.utf8), checkedAt: Date())
        #expect(notEnrolled.state == .notEnrolled)
        for hostile in ["", "[]", #"{"enrolled":"yes"}"#, #"{"enrolled":true,"names":"x"}"#, "{\"enrolled\":true,"] {
            #expect(throws: AutoSSLError.self, "\(hostile)") { try RemoteHostStatus(hostJSON: Array(hostile.utf8), checkedAt: Date()) }
        }
    }

    @Test func theInventoryIsWrittenAtomicallyOwnerOnly() throws {
        let directory = TemporaryDirectory("remote-inventory")
        let directories = Directories(configDir: directory.path, dataDir: directory.path + "/data", certDir: directory.path, systemdDir: directory.path)
        var inventory = try RemoteInventory.load(directories)
        #expect(inventory.hosts.isEmpty)
        inventory.upsert(.init(name: "b", host: "b", port: nil, user: "root", identity: nil, names: ["b"], reload: nil, enrolledAt: Date()))
        inventory.upsert(.init(name: "a", host: "10.0.0.1", port: 2222, user: nil, identity: "/k", names: ["a"], reload: "nginx", enrolledAt: Date()))
        try inventory.save(directories)
        #expect(fileMode(RemoteInventory.path(directories)) == 0o600)
        let again = try RemoteInventory.load(directories)
        #expect(again.hosts.map(\.name) == ["a", "b"] && again.entry("a")?.port == 2222)
        #expect(throws: AutoSSLError.self) { try again.select(["nope"]) }
        #expect(try again.select([]).count == 2)
    }
}

@Suite struct CaptureTests {
    @Test func aProgramThatIsNotAnAbsolutePathIsAnErrorNotATrap() {
        #expect(throws: SpawnedProcess.LaunchError.self) { try SpawnedProcess.capture(["bin/ssh", "-V"], timeout: 5) }
        #expect(throws: SpawnedProcess.LaunchError.self) { try SpawnedProcess.run([], timeout: 5) }
    }

    @Test func inputGoesToStdinNotArgvAndOutputsStayApart() throws {
        let result = try SpawnedProcess.capture(["/bin/sh", "-c", "read x; echo \"got $x\"; echo err >&2; exit 3"], input: Array("secret\n".utf8), timeout: 10)
        #expect(result.status == 3 && String(decoding: result.stdout, as: UTF8.self) == "got secret\n" && result.stderr == "err\n")
    }

    @Test func aChildGetsOnlyItsThreeStandardDescriptors() throws {
        // A pipe this process holds without close-on-exec, as a library might open one.
        var leaked: [Int32] = [-1, -1]
        #expect(pipe(&leaked) == 0)
        defer { for fd in leaked { close(fd) } }
        let listing = try SpawnedProcess.capture(["/bin/sh", "-c", "ls /proc/self/fd"], timeout: 10)
        let open = Set(String(decoding: listing.stdout, as: UTF8.self).split(separator: "\n").compactMap { Int32($0) })
        // 0-2, and the descriptor `ls` opens on /proc/self/fd itself.
        #expect(listing.status == 0 && open.isDisjoint(with: leaked) && open.filter { $0 > 2 }.count <= 1, "\(open) \(leaked)")
    }

    @Test func outputAndTimeAreBounded() throws {
        let chatty = try SpawnedProcess.capture(["/bin/sh", "-c", "yes"], timeout: 20, outputLimit: 64 * 1024)
        #expect(chatty.overflowed && chatty.stdout.count == 64 * 1024)
        let slow = try SpawnedProcess.capture(["/bin/sh", "-c", "sleep 30"], timeout: 0.5)
        #expect(slow.timedOut)
        // A program that never reads its input does not block (nor kill) the caller.
        let deaf = try SpawnedProcess.capture(["/bin/true"], input: [UInt8](repeating: 65, count: 1 << 20), timeout: 10)
        #expect(deaf.status == 0)
    }
}

@Suite struct ParallelTests {
    final class Counter: @unchecked Sendable {
        let lock = NSLock()
        var now = 0
        var most = 0
        func enter() { lock.lock(); now += 1; most = max(most, now); lock.unlock() }
        func leave() { lock.lock(); now -= 1; lock.unlock() }
    }

    @Test func atMostTheLimitRunAtOnceAndResultsKeepTheirOrder() {
        let counter = Counter()
        let results = RemoteOperations.parallel(Array(0..<24), limit: 4) { item in
            counter.enter()
            usleep(50_000)
            counter.leave()
            return item * 2
        }
        #expect(results == Array(0..<24).map { $0 * 2 })
        // Each worker is a thread of its own: more than Dispatch's pool would run at once on a
        // 2-core machine (two), however busy that pool is; never more than the limit.
        #expect(counter.most <= 4 && counter.most >= 3, "\(counter.most) at once")
    }
}
