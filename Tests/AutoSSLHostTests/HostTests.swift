import AutoSSLCore
@testable import AutoSSLHost
import Foundation
import Testing

final class FakeRunner: CommandRunning, @unchecked Sendable {
    var available: Set<String>
    var responses: [String: CommandResult]
    var calls: [[String]] = []

    init(available: Set<String>, responses: [String: CommandResult]) {
        self.available = available
        self.responses = responses
    }

    func which(_ name: String) -> String? { available.contains(name) ? "/usr/sbin/" + name : nil }

    func run(_ executable: String, _ arguments: [String], timeout: TimeInterval) -> CommandResult? {
        let name = (executable as NSString).lastPathComponent
        calls.append([name] + arguments)
        return responses[([name] + arguments).joined(separator: " ")] ?? CommandResult(status: 1, output: "")
    }
}

@Suite struct HostTests {
    @Test(arguments: [
        ("ID=debian\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"", OSFamily.debian),
        ("ID=ubuntu\nID_LIKE=debian", .debian),
        ("ID=\"rocky\"\nID_LIKE=\"rhel centos fedora\"", .rhel),
        ("ID=amzn\nID_LIKE=\"centos rhel fedora\"", .rhel),
        ("ID=fedora", .rhel),
        ("ID=\"opensuse-leap\"\nID_LIKE=\"suse opensuse\"", .suse),
        ("ID=arch", .arch),
        ("ID=alpine", .alpine),
        ("ID=weird\nID_LIKE=\"ubuntu debian\"", .debian),
        ("ID=plan9", .unknown),
        ("", .unknown),
    ])
    func detectsOSFamily(contents: String, family: OSFamily) {
        #expect(OSFamily.detect(osRelease: contents).family == family)
    }

    @Test func readsPrettyName() {
        #expect(OSFamily.detect(osRelease: "ID=debian\nPRETTY_NAME=\"Debian 12\"\n# c\n").prettyName == "Debian 12")
    }

    @Test func opensThePortInAnActiveUfwToThePrivateNetworksOnly() {
        var responses = ["ufw status": CommandResult(status: 0, output: "Status: active\n")]
        for range in ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7"] {
            responses["ufw allow from \(range) to any port 9000 proto tcp"] = CommandResult(status: 0, output: "Rule added\n")
        }
        let runner = FakeRunner(available: ["ufw"], responses: responses)
        #expect(Firewall(runner: runner, isRoot: true, ufwDefaultsFile: "/nonexistent/ufw").openPort(9000) == .opened(.ufw))
        #expect(Array(runner.calls.dropFirst()) == [
            ["ufw", "allow", "from", "10.0.0.0/8", "to", "any", "port", "9000", "proto", "tcp"],
            ["ufw", "allow", "from", "172.16.0.0/12", "to", "any", "port", "9000", "proto", "tcp"],
            ["ufw", "allow", "from", "192.168.0.0/16", "to", "any", "port", "9000", "proto", "tcp"],
            ["ufw", "allow", "from", "fc00::/7", "to", "any", "port", "9000", "proto", "tcp"],
        ])
        // Never a rule open to everyone.
        #expect(!runner.calls.contains(["ufw", "allow", "9000/tcp"]))
    }

    @Test func aUfwWithIPv6OffGetsTheIPv4RulesOnly() throws {
        #expect(Firewall.ufwIPv6IsOff(settings: "# comment\nIPV6=no\nDEFAULT_INPUT_POLICY=\"DROP\"\n"))
        #expect(Firewall.ufwIPv6IsOff(settings: "IPV6=\"no\"\n"))
        #expect(!Firewall.ufwIPv6IsOff(settings: "IPV6=yes\n"))
        #expect(!Firewall.ufwIPv6IsOff(settings: "#IPV6=no\n"))
        #expect(!Firewall.ufwIPv6IsOff(settings: ""))
        let directory = NSTemporaryDirectory() + "ufw-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let settings = directory + "/ufw"
        try "IPV6=no\n".write(toFile: settings, atomically: true, encoding: .utf8)
        var responses = ["ufw status": CommandResult(status: 0, output: "Status: active\n")]
        for range in ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"] {
            responses["ufw allow from \(range) to any port 9000 proto tcp"] = CommandResult(status: 0, output: "Rule added\n")
        }
        let runner = FakeRunner(available: ["ufw"], responses: responses)
        let firewall = Firewall(runner: runner, isRoot: true, ufwDefaultsFile: settings)
        #expect(firewall.openPort(9000) == .opened(.ufw))
        #expect(!runner.calls.contains { $0.contains("fc00::/7") }, "\(runner.calls)")
        #expect(firewall.ranges(for: .ufw, Firewall.privateNetworks).count == 3)
        // IPv6 ranges only: nothing to add, said so.
        guard case .couldNotOpen(.ufw, _, let reason) = firewall.openPort(9000, to: [try IPRange(parsing: "fd00::/8")]) else {
            Issue.record("expected couldNotOpen")
            return
        }
        #expect(reason.contains("IPV6=no"))
        // A missing settings file is ufw's default: IPv6 on.
        #expect(Firewall(runner: runner, isRoot: true, ufwDefaultsFile: directory + "/missing").ranges(for: .ufw, Firewall.privateNetworks).count == 4)
    }

    @Test func opensThePortInFirewalldWithRichRulesPerSource() throws {
        let sources = [try IPRange(parsing: "10.20.0.0/16"), try IPRange(parsing: "fd12:3456::/48")]
        let runner = FakeRunner(available: ["firewall-cmd"], responses: [
            "firewall-cmd --state": CommandResult(status: 0, output: "running\n"),
            "firewall-cmd --permanent --add-rich-rule=rule family=\"ipv4\" source address=\"10.20.0.0/16\" port port=\"9000\" protocol=\"tcp\" accept":
                CommandResult(status: 0, output: "success\n"),
            "firewall-cmd --permanent --add-rich-rule=rule family=\"ipv6\" source address=\"fd12:3456::/48\" port port=\"9000\" protocol=\"tcp\" accept":
                CommandResult(status: 0, output: "success\n"),
            "firewall-cmd --reload": CommandResult(status: 0, output: "success\n"),
        ])
        #expect(Firewall(runner: runner, isRoot: true).openPort(9000, to: sources) == .opened(.firewalld))
        #expect(runner.calls.count == 4 && runner.calls.last == ["firewall-cmd", "--reload"])
        #expect(!runner.calls.contains { $0.contains("--add-port=9000/tcp") })
    }

    @Test func explainsWhenItCannotOpenWithACommandAShellRunsAsPrinted() throws {
        let runner = FakeRunner(available: ["firewall-cmd"], responses: ["firewall-cmd --state": CommandResult(status: 0, output: "running")])
        let sources = [try IPRange(parsing: "10.0.0.0/8")]
        guard case .couldNotOpen(.firewalld, let command, _) = Firewall(runner: runner, isRoot: false).openPort(9000, to: sources) else {
            Issue.record("expected couldNotOpen")
            return
        }
        #expect(command == "sudo firewall-cmd --permanent '--add-rich-rule=rule family=\"ipv4\" source address=\"10.0.0.0/8\" port port=\"9000\" protocol=\"tcp\" accept' && sudo firewall-cmd --reload")
        #expect(runner.calls == [["firewall-cmd", "--state"]])  // nothing was attempted without root
        // The printed line, split by a real shell, gives back the arguments the rule needs.
        let script = "for w in " + command.replacingOccurrences(of: "sudo ", with: "").replacingOccurrences(of: " && ", with: " ") + "; do echo \"$w\"; done"
        let words = try #require(SystemCommandRunner().run("sh", ["-c", script], timeout: 10)?.output)
        #expect(words.split(separator: "\n").map(String.init) == Firewall.commands(for: .firewalld, port: 9000, sources: sources).flatMap { $0 })
    }

    @Test func inactiveUfwMeansNoActiveFirewall() throws {
        let runner = FakeRunner(available: ["ufw"], responses: ["ufw status": CommandResult(status: 0, output: "Status: inactive")])
        let sources = [try IPRange(parsing: "10.1.0.0/16"), try IPRange(parsing: "fd00::/8")]
        guard case .noActiveFirewall(let suggestions) = Firewall(runner: runner, isRoot: true).openPort(9443, to: sources) else {
            Issue.record("expected noActiveFirewall")
            return
        }
        #expect(suggestions.contains("sudo ufw allow from 10.1.0.0/16 to any port 9443 proto tcp && sudo ufw allow from fd00::/8 to any port 9443 proto tcp"))
        #expect(suggestions.contains("sudo iptables -A INPUT -p tcp -s 10.1.0.0/16 --dport 9443 -j ACCEPT"))
        #expect(suggestions.contains("sudo ip6tables -A INPUT -p tcp -s fd00::/8 --dport 9443 -j ACCEPT"))
        #expect(!suggestions.contains { $0.contains("allow 9443/tcp") || $0.contains("--add-port") })
    }

    @Test func virtualInterfacesAreNotPrimary() {
        #expect(NetworkAddresses.isVirtual(interface: "docker0"))
        #expect(NetworkAddresses.isVirtual(interface: "br-1234"))
        #expect(NetworkAddresses.isVirtual(interface: "veth9"))
        #expect(!NetworkAddresses.isVirtual(interface: "eth0"))
        #expect(!NetworkAddresses.isVirtual(interface: "enp0s3"))
        #expect(NetworkAddresses.primaryAddresses().allSatisfy { !$0.isLoopback })
    }

    @Test func systemRunnerRunsRealCommands() {
        let runner = SystemCommandRunner()
        #expect(runner.which("sh") != nil)
        #expect(runner.run("sh", ["-c", "echo hi; exit 3"], timeout: 5) == CommandResult(status: 3, output: "hi\n"))
        #expect(runner.run("definitely-not-a-command-xyz", [], timeout: 5) == nil)
        // A program that leaves a daemon holding its output returns at once; one that writes
        // without end is stopped, and at most 64 KiB of what it wrote is kept.
        let started = Date()
        #expect(runner.run("sh", ["-c", "sleep 20 & echo started"], timeout: 10)?.output == "started\n")
        #expect(Date().timeIntervalSince(started) < 5)
        let endless = runner.run("sh", ["-c", "yes"], timeout: 30)
        #expect(endless?.status != 0 && endless?.output.utf8.count == 65_536)
        #expect(Date().timeIntervalSince(started) < 15)
    }

    /// A tool without a version option is only found; a usage text is never shown as a version.
    @Test func toolVersionsNeverShowUsageTexts() {
        let runner = FakeRunner(available: ["update-ca-certificates", "openssl", "caddy"], responses: [
            "openssl version": CommandResult(status: 0, output: "OpenSSL 3.0.17 1 Jul 2025\n"),
            "caddy version": CommandResult(status: 1, output: "\nUsage: caddy <command> [<args...>]\n"),
        ])
        let tools = Dictionary(uniqueKeysWithValues: ToolVersions(runner: runner).detect().map { ($0.name, $0) })
        #expect(tools["openssl"]?.version == "OpenSSL 3.0.17 1 Jul 2025")
        #expect(tools["update-ca-certificates"]?.path != nil && tools["update-ca-certificates"]?.version == nil)
        #expect(tools["caddy"]?.path != nil && tools["caddy"]?.version == nil)
        #expect(!runner.calls.contains { $0.first == "update-ca-certificates" })
    }
}
