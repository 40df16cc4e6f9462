import ArgumentParser
import AutoSSLBackup
import AutoSSLCA
import AutoSSLClient
import AutoSSLCore
import AutoSSLIO
import Foundation

struct CAStatusCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status", abstract: "Show the CA: fingerprint, certificates, addresses, durations, server state.")

    @Flag(help: "Print JSON.")
    var json = false

    func run() async throws {
        let directories = Directories.fromEnvironment()
        var report = try CAStatusReport.load(directories: directories)
        report.backups = BackupState.report(directories: directories)
        report.server = try await serverState(report)
        let settings = try AuthorityLoader(directories: directories).settings()
        let database = await CAStatusReport.DatabaseReport.load(settings, directories: directories)
        report.database = database
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
            "Provisioners:   \(report.provisioners.map(\.text).joined(separator: ", "))",
            "Server:         \(report.server)",
            "Backups:        \(BackupState.summary(directories: directories))",
            "Database:       \(database.kind == "sqlite" ? "SQLite, " : "PostgreSQL, ")\(database.location)"
                + (database.state == "ok" ? "" : " (\(database.state))"),
        ]
        if let replicas = database.replicas {
            lines.append("Replicas:       " + (replicas.isEmpty ? "none has started yet" : "\(replicas.filter(\.alive).count) of \(replicas.count) alive"))
            for replica in replicas {
                // last_seen is a database value: anything not a plausible age prints as a date.
                let age = Date().timeIntervalSince(replica.lastSeen)
                let ago = age.isFinite && abs(age) < 1e9 ? Int(age) : Int.max
                lines.append(
                    "    \(replica.alive ? "up  " : "DOWN") \(replica.name): \(replica.addresses.joined(separator: ", ")), auto-ssl \(replica.version), "
                        + "last seen \(ago < 120 ? "\(max(0, ago)) s" : Output.date(replica.lastSeen)) ago")
            }
        }
        print(lines.joined(separator: "\n"))
        for warning in report.warnings { Output.warning(warning) }
    }

    /// Asks every configured address for /health over TLS verified against the root.
    private func serverState(_ report: CAStatusReport) async throws -> String {
        let root = try CAStatusReport.loadCertificate(report.root.path, what: "root certificate")
        var answering: [String] = []
        for address in report.addresses {
            let url = try ListenAddress(parsing: address).urlString
            if await CAClient.isHealthy(url: url, root: root) { answering.append(url) }
        }
        return answering.isEmpty ? "not running" : "running (" + answering.joined(separator: ", ") + ")"
    }
}
