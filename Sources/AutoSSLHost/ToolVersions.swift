import Foundation

/// The external tools auto-ssl works with, and which of them this machine has.
public struct ToolVersions: Sendable {
    public struct Tool: Codable, Sendable, Equatable {
        public var name: String
        public var version: String?
        public var path: String?
    }

    /// Tools that the product calls or configures, with the arguments that make each print its
    /// version; nil for the ones that have no version option (found or not is all there is to say).
    static let probes: [(name: String, arguments: [String]?)] = [
        ("openssl", ["version"]),
        ("curl", ["--version"]),
        ("systemctl", ["--version"]),
        ("update-ca-certificates", nil),
        ("update-ca-trust", nil),
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
            guard let arguments = probe.arguments else { return Tool(name: probe.name, version: nil, path: path) }
            let output = runner.run(path, arguments, timeout: 5)?.output ?? ""
            return Tool(name: probe.name, version: Self.firstVersionLine(output), path: path)
        }
    }

    /// The first non-empty line, which is where every one of these tools puts its version; nil when
    /// that line is a usage text (a tool that does not know the option) rather than a version.
    static func firstVersionLine(_ output: String) -> String? {
        let first = output.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }.first { !$0.isEmpty }
        guard let first, !first.lowercased().hasPrefix("usage") else { return nil }
        return first
    }
}
