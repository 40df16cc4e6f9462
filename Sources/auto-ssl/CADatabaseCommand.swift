import ArgumentParser
import AutoSSLCA
import AutoSSLCore
import AutoSSLIO
import AutoSSLStore
import Foundation

struct CADatabaseCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "database",
        abstract: "Move the CA's records between SQLite and PostgreSQL.",
        subcommands: [CADatabaseMigrateCommand.self])
}

struct CADatabaseMigrateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "migrate",
        abstract: "Copy every record of the CA to PostgreSQL (or back to SQLite) and switch to it.",
        discussion: """
            The CA must be stopped: the command is refused (exit 7) while `ca serve` runs on this \
            machine, and `ca serve` is refused while it runs. Every row of every table is copied, \
            then counted and checksummed (SHA-256) on both sides; config.yaml is switched only when \
            all of them match. A PostgreSQL target must be empty and is filled in one transaction. \
            Nothing is deleted: after a move to PostgreSQL the SQLite file is kept as \
            auto-ssl.sqlite.migrated-to-postgres-<time>; a move back leaves the PostgreSQL database \
            as it was, and is refused while db/auto-ssl.sqlite exists. The password comes from \
            --database-password-file, a systemd credential named database-password, the file in \
            config.yaml, or PGPASSFILE (~/.pgpass); never from the URL.
            """)

    @Option(
        name: .customLong("to"),
        help: ArgumentHelp("postgres://USER@HOST[:PORT]/DATABASE (TLS settings after ?: sslmode=MODE&sslrootcert=FILE), or sqlite.", valueName: "target"))
    var target: String

    @Option(help: ArgumentHelp(
        "File holding the PostgreSQL password (mode 0600; recorded in config.yaml by --to postgres://...).",
        valueName: "file"))
    var databasePasswordFile: String?

    @Flag(help: "Print the result as JSON.")
    var json = false

    func run() async throws {
        let migration = DatabaseMigration(directories: Directories.fromEnvironment())
        let outcome: DatabaseMigration.Outcome
        if target == "sqlite" {
            outcome = try await migration.toSQLite(passwordFile: databasePasswordFile)
        } else if target.hasPrefix("postgres://") || target.hasPrefix("postgresql://") {
            outcome = try await migration.toPostgres(url: target, passwordFile: try databasePasswordFile.map(CAInitCommand.recordedPasswordFile))
        } else {
            throw AutoSSLError.invalidArgument(
                "--to takes postgres://USER@HOST[:PORT]/DATABASE or sqlite",
                hint: "e.g. auto-ssl ca database migrate --to postgres://autossl@db.internal/autossl")
        }
        if json {
            try Output.json(outcome)
            return
        }
        print(Self.report(outcome))
    }

    static func report(_ outcome: DatabaseMigration.Outcome) -> String {
        var lines = ["Copied \(outcome.totalRows) rows from \(outcome.source) to \(outcome.target):"]
        let width = outcome.tables.map(\.table.count).max() ?? 0
        for table in outcome.tables {
            let name = table.table.padding(toLength: width, withPad: " ", startingAt: 0)
            let rows = String(table.rows)
            let unit = table.rows == 1 ? "row " : "rows"
            lines.append("  \(name)  \(String(repeating: " ", count: max(0, 8 - rows.count)))\(rows) \(unit)  sha256 \(table.sha256.prefix(16))")
        }
        lines.append("Verified: every table has the same row count and SHA-256 on both sides.")
        switch outcome.to {
        case .postgres:
            if let file = outcome.passwordFile {
                lines.append("config.yaml now names \(outcome.target) (password file \(file)).")
            } else {
                lines.append(
                    "config.yaml now names \(outcome.target) (no password file recorded: the CA reads a systemd credential "
                        + "named database-password, PGPASSFILE or ~/.pgpass).")
            }
            if let kept = outcome.keptFile {
                lines.append("The SQLite database is kept, unused, as \(kept); delete it once you no longer need it.")
            }
        case .sqlite:
            lines.append("config.yaml no longer names a database: the CA uses \(outcome.target) again.")
            lines.append(
                "The PostgreSQL database \(outcome.source) was left as it was; do not start replicas against it, "
                    + "and drop it once you no longer need it.")
        }
        for warning in outcome.warnings { lines.append("warning: \(warning)") }
        lines.append("Next: start the CA (systemctl start auto-ssl-ca, or auto-ssl ca serve).")
        return lines.joined(separator: "\n")
    }
}
