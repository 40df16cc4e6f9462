import Foundation

/// Opens the CA port where a host firewall is active, or says which rule to add.
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

    public init(runner: CommandRunning = SystemCommandRunner(), isRoot: Bool = geteuid() == 0) {
        self.runner = runner
        self.isRoot = isRoot
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

    public static func commands(for kind: Kind, port: Int) -> [[String]] {
        switch kind {
        case .firewalld:
            return [["firewall-cmd", "--permanent", "--add-port=\(port)/tcp"], ["firewall-cmd", "--reload"]]
        case .ufw:
            return [["ufw", "allow", "\(port)/tcp"]]
        }
    }

    public static func display(_ commands: [[String]]) -> String {
        commands.map { "sudo " + $0.joined(separator: " ") }.joined(separator: " && ")
    }

    public func openPort(_ port: Int) -> Outcome {
        guard let kind = activeFirewall() else {
            return .noActiveFirewall(suggestions: [
                Self.display(Self.commands(for: .ufw, port: port)),
                Self.display(Self.commands(for: .firewalld, port: port)),
                "sudo iptables -A INPUT -p tcp --dport \(port) -j ACCEPT",
            ])
        }
        let commands = Self.commands(for: kind, port: port)
        guard isRoot else {
            return .couldNotOpen(kind, command: Self.display(commands), reason: "changing the firewall needs root")
        }
        for command in commands {
            guard let result = runner.run(command[0], Array(command.dropFirst()), timeout: 30), result.status == 0 else {
                return .couldNotOpen(kind, command: Self.display(commands), reason: "`\(command.joined(separator: " "))` failed")
            }
        }
        return .opened(kind)
    }
}
