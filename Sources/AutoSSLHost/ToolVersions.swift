import Foundation

/// The external tools auto-ssl works with, and which of them this machine has.
public struct ToolVersions: Sendable {
    public struct Tool: Codable, Sendable, Equatable {
        public var name: String
        public var version: String?
        public var path: String?
    }

    /// Tools that the product calls or configures, with the arguments that make each print its version.
    static let probes: [(name: String, arguments: [String])] = [
        ("openssl", ["version"]),
        ("curl", ["--version"]),
        ("systemctl", ["--version"]),
        ("update-ca-certificates", ["--help"]),
        ("update-ca-trust", ["--help"]),
        ("nginx", ["-v"]),
        ("apache2", ["-v"]),
        ("caddy", ["version"]),
        ("haproxy", ["-v"]),
        ("ssh", ["-V"]),
        ("rsync", ["--version"]),
        ("firewall-cmd", ["--version"]),
        ("ufw", ["--version"]),
    ]

    let runner: CommandRunning

    public init(runner: CommandRunning = SystemCommandRunner()) {
        self.runner = runner
    }

    public func detect() -> [Tool] {
        Self.probes.map { probe in
            guard let path = runner.which(probe.name) else { return Tool(name: probe.name, version: nil, path: nil) }
            let output = runner.run(path, probe.arguments, timeout: 5)?.output ?? ""
            return Tool(name: probe.name, version: Self.firstVersionLine(output), path: path)
        }
    }

    /// The first non-empty line, which is where every one of these tools puts its version.
    static func firstVersionLine(_ output: String) -> String? {
        output.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }.first { !$0.isEmpty }
    }
}
