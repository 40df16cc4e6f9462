import ArgumentParser
import AutoSSLCA
import AutoSSLCore
import AutoSSLIO
import Foundation

struct CAStatusCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status", abstract: "Show the CA: fingerprint, certificates, addresses, durations, server state.")

    @Flag(help: "Print JSON.")
    var json = false

    func run() throws {
        let report = try CAStatusReport.load(directories: Directories.fromEnvironment())
        if json {
            try Output.json(report)
            return
        }
        func describe(_ c: CAStatusReport.CertificateSummary) -> [String] {
            [
                "    Subject:   \(c.subject)",
                "    Key:       \(c.keyType)",
                "    Valid:     \(Output.date(c.notBefore)) to \(Output.date(c.notAfter)) (\(c.daysLeft) days left)",
                "    Serial:    \(c.serial)",
                "    File:      \(c.path)",
            ]
        }
        var lines = [
            "CA:             \(report.name)",
            "Fingerprint:    \(report.fingerprint)",
            "Root:",
        ]
        lines += describe(report.root)
        lines.append("Intermediate:")
        lines += describe(report.intermediate)
        lines += [
            "Addresses:      \(report.addresses.joined(separator: ", "))",
            "DNS names:      \(report.dnsNames.isEmpty ? "(none)" : report.dnsNames.joined(separator: ", "))",
            "Durations:      default \(report.defaultDuration), minimum \(report.minimumDuration), maximum \(report.maximumDuration)",
            "Provisioners:   \(report.provisioners.joined(separator: ", "))",
            "Server:         \(report.server)",
        ]
        print(lines.joined(separator: "\n"))
        for warning in report.warnings { Output.warning(warning) }
    }
}
