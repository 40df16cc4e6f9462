import AutoSSLCore
import Foundation

/// Opens the CA port where a host firewall is active, or says which rule to add: to the internal
/// networks only (the private ranges by default, or the ranges an operator names), never to anyone.
public struct Firewall: Sendable {
    public enum Kind: String, Sendable {
        case firewalld, ufw
    }

    public enum Outcome: Equatable, Sendable {
        /// The port was opened in this firewall.
        case opened(Kind)
        /// A firewall is active but we could not change it (not root, or the command failed).
        case couldNotOpen(Kind, command: String, reason: String)
        /// No active firewall we manage; the rule an operator may want elsewhere.
        case noActiveFirewall(suggestions: [String])
    }

    let runner: CommandRunning
    let isRoot: Bool
    /// ufw's settings file, for `IPV6=no` (ufw then refuses IPv6 rules).
    let ufwDefaultsFile: String

    public init(runner: CommandRunning = SystemCommandRunner(), isRoot: Bool = geteuid() == 0, ufwDefaultsFile: String = "/etc/default/ufw") {
        self.runner = runner
        self.isRoot = isRoot
        self.ufwDefaultsFile = ufwDefaultsFile
    }

    /// Whether ufw's settings turn IPv6 off: a line `IPV6=no` (quotes allowed). At most 64 KiB of
    /// the file is read; a file that is missing or unreadable means ufw's default, IPv6 on.
    static func ufwIPv6IsOff(settings text: String) -> Bool {
        text.split(whereSeparator: \.isNewline).contains { line in
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            guard trimmed.hasPrefix("IPV6=") else { return false }
            let value = trimmed.dropFirst("IPV6=".count).trimmingCharacters(in: CharacterSet(charactersIn: "\"' \t"))
            return value.lowercased() == "no"
        }
    }

    var ufwIPv6IsOff: Bool {
        guard let handle = FileHandle(forReadingAtPath: ufwDefaultsFile) else { return false }
        defer { try? handle.close() }
        let bytes = (try? handle.read(upToCount: 1 << 16)) ?? Data()
        return Self.ufwIPv6IsOff(settings: String(decoding: bytes, as: UTF8.self))
    }

    /// The ranges a rule can be added for in `kind`: all of them, but IPv6 ones for a ufw with
    /// IPv6 turned off.
    public func ranges(for kind: Kind, _ sources: [IPRange]) -> [IPRange] {
        kind == .ufw && ufwIPv6IsOff ? sources.filter(\.network.isIPv4) : sources
    }

    public func activeFirewall() -> Kind? {
        if runner.which("firewall-cmd") != nil,
           let result = runner.run("firewall-cmd", ["--state"], timeout: 10),
           result.status == 0, result.output.contains("running") {
            return .firewalld
        }
        if runner.which("ufw") != nil,
           let result = runner.run("ufw", ["status"], timeout: 10),
           result.status == 0, result.output.contains("Status: active") {
            return .ufw
        }
        return nil
    }

    /// Where a CA port is opened to unless the operator names ranges: the private IPv4 ranges
    /// (RFC 1918) and IPv6 unique local addresses (RFC 4193).
    public static let privateNetworks: [IPRange] = ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7"].compactMap {
        try? IPRange(parsing: $0)
    }

    /// The commands that admit TCP to `port` from each of `sources`, and nothing else.
    public static func commands(for kind: Kind, port: Int, sources: [IPRange]) -> [[String]] {
        switch kind {
        case .firewalld:
            return sources.map { source in
                let family = source.network.isIPv4 ? "ipv4" : "ipv6"
                return [
                    "firewall-cmd", "--permanent",
                    "--add-rich-rule=rule family=\"\(family)\" source address=\"\(source)\" port port=\"\(port)\" protocol=\"tcp\" accept",
                ]
            } + [["firewall-cmd", "--reload"]]
        case .ufw:
            return sources.map { ["ufw", "allow", "from", "\($0)", "to", "any", "port", "\(port)", "proto", "tcp"] }
        }
    }

    /// The commands as one line to paste into a shell: `sudo` before each, quoted where needed.
    public static func display(_ commands: [[String]]) -> String {
        commands.map { "sudo " + $0.map(shellQuoted).joined(separator: " ") }.joined(separator: " && ")
    }

    static func shellQuoted(_ word: String) -> String {
        let plain = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-./:=,@+")
        guard word.isEmpty || !word.allSatisfy(plain.contains) else { return word }
        return "'" + word.replacingOccurrences(of: "'", with: "'\\''") + "'"
    }

    /// The rules for a firewall auto-ssl does not manage.
    static func otherFirewallRules(port: Int, sources: [IPRange]) -> [String] {
        sources.map { source in
            "sudo \(source.network.isIPv4 ? "iptables" : "ip6tables") -A INPUT -p tcp -s \(source) --dport \(port) -j ACCEPT"
        }
    }

    /// Opens `port` to `sources` in the active firewall, as root; else says which commands would.
    public func openPort(_ port: Int, to sources: [IPRange] = Firewall.privateNetworks) -> Outcome {
        guard let kind = activeFirewall() else {
            return .noActiveFirewall(suggestions: [
                Self.display(Self.commands(for: .ufw, port: port, sources: sources)),
                Self.display(Self.commands(for: .firewalld, port: port, sources: sources)),
            ] + Self.otherFirewallRules(port: port, sources: sources))
        }
        let usable = ranges(for: kind, sources)
        guard !usable.isEmpty else {
            return .couldNotOpen(kind, command: "", reason: "ufw has IPv6 turned off (IPV6=no in \(ufwDefaultsFile)) and every range given is IPv6")
        }
        let commands = Self.commands(for: kind, port: port, sources: usable)
        guard isRoot else {
            return .couldNotOpen(kind, command: Self.display(commands), reason: "changing the firewall needs root")
        }
        for command in commands {
            guard let result = runner.run(command[0], Array(command.dropFirst()), timeout: 30), result.status == 0 else {
                return .couldNotOpen(kind, command: Self.display(commands), reason: "`\(command.joined(separator: " "))` failed; the rules before it were added")
            }
        }
        return .opened(kind)
    }
}
