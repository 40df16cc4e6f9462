import ArgumentParser
import AutoSSLCA
import AutoSSLConfig
import AutoSSLCore
import AutoSSLHost
import AutoSSLIO
import Foundation

struct InfoCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "info", abstract: "Show this machine: OS family, directories, role, tools found.")

    @Flag(help: "Print JSON.")
    var json = false

    struct Report: Codable {
        var version: String
        var os: String
        var osName: String?
        var directories: Directories
        var roles: [String]
        var tools: [ToolVersions.Tool]

        enum CodingKeys: String, CodingKey {
            case version, os
            case osName = "os_name"
            case directories, roles, tools
        }
    }

    func run() throws {
        let directories = Directories.fromEnvironment()
        let os = OSFamily.current()
        let report = Report(
            version: AutoSSLCommand.version, os: os.family.rawValue, osName: os.prettyName,
            directories: directories, roles: roles(directories), tools: ToolVersions().detect())
        if json {
            try Output.json(report)
            return
        }
        var lines = [
            "auto-ssl \(report.version)",
            "OS family:     \(report.os)\(report.osName.map { " (\($0))" } ?? "")",
            "Role:          \(report.roles.isEmpty ? "none yet (run `auto-ssl ca init` on the CA host)" : report.roles.joined(separator: ", "))",
            "Directories:",
            "  config   \(directories.configDir)   (AUTO_SSL_CONFIG_DIR)",
            "  data     \(directories.dataDir)   (AUTO_SSL_DATA_DIR)",
            "  certs    \(directories.certDir)   (AUTO_SSL_CERT_DIR)",
            "  systemd  \(directories.systemdDir)   (AUTO_SSL_SYSTEMD_DIR)",
            "Tools:",
        ]
        for tool in report.tools {
            lines.append("  \(tool.name.padding(toLength: 24, withPad: " ", startingAt: 0))\(tool.path == nil ? "not found" : (tool.version ?? "found"))")
        }
        print(lines.joined(separator: "\n"))
    }

    /// A machine can be several things at once: CA, enrolled server, client that trusts a root.
    private func roles(_ directories: Directories) -> [String] {
        var roles: [String] = []
        if (try? AutoSSLConfiguration.load(from: directories.configFile).ca) != nil { roles.append("CA") }
        if FileOperations.exists(directories.certDir + "/server.crt") { roles.append("enrolled server") }
        let anchors = ["/usr/local/share/ca-certificates", "/etc/pki/ca-trust/source/anchors", "/etc/pki/trust/anchors"]
        let trusts = anchors.contains { dir in
            ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).contains { $0.hasPrefix("auto-ssl") }
        }
        if trusts { roles.append("client") }
        return roles
    }
}
