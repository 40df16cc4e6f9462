import ArgumentParser
import AutoSSLBackup
import AutoSSLCA
import AutoSSLConfig
import AutoSSLCore
import AutoSSLIO
import Foundation

struct CAReplicaCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "replica",
        abstract: "Replicas of a CA on PostgreSQL: more machines serving the same CA from the same database.",
        subcommands: [CAReplicaAddCommand.self, CAReplicaListCommand.self])
}

struct CAReplicaAddCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "add",
        abstract: "Write the encrypted bundle that sets up another replica (run `ca restore --as-replica` with it there).",
        discussion: """
            The bundle is a backup of this CA without its records (they stay in PostgreSQL): the encrypted keys, \
            config.yaml and the password files, encrypted with the passphrase. On the new machine, \
            `auto-ssl ca restore --as-replica --input FILE --new-address HOST:PORT` installs it; its own TLS \
            certificate then names its address and the CA's DNS names.
            """)

    @Option(help: ArgumentHelp("Where to write the bundle (mode 0600).", valueName: "file"))
    var output: String

    @Option(help: ArgumentHelp("The new replica's address, for the printed command.", valueName: "host:port"))
    var address: String?

    @OptionGroup var passphrase: PassphraseOptions

    func run() async throws {
        let directories = Directories.fromEnvironment()
        let settings = try AuthorityLoader(directories: directories).settings()
        guard let database = settings.database else {
            throw AutoSSLError.invalidArgument(
                "this CA keeps its records in SQLite on this machine, so it cannot have replicas",
                hint: "move it to PostgreSQL first: auto-ssl ca database migrate --to postgres://USER@HOST/DB")
        }
        let newAddress = try address.map(ListenAddress.init(parsing:))
        guard !FileOperations.exists(output) else {
            throw AutoSSLError.invalidArgument("\(output) exists; nothing was written", hint: "name a new file")
        }
        let secret = try passphrase.passphrase(confirm: true)
        let (bytes, manifest) = try await CABackup(directories: directories).create(
            passphrase: secret, iterations: passphrase.iterations, toolVersion: AutoSSLCommand.version)
        try FileOperations.writeAtomically(Data(bytes), to: output, mode: 0o600)
        print("Wrote the replica bundle of CA \"\(manifest.caName)\" (root \(manifest.caFingerprint)) to \(output) (mode 0600).")
        print("It holds the encrypted CA keys and the database password file: copy it to the new machine privately, then run there:")
        print("")
        if let roots = (try? PostgresLocation(url: database.url))?.rootCertificateFile {
            print("    # first copy \(roots) (the roots that check the PostgreSQL server's certificate) to the same path")
        }
        print("    sudo auto-ssl ca restore --as-replica --input \(output) --new-address \(newAddress?.description ?? "HOST:PORT") --passphrase-file FILE")
        print("    sudo auto-ssl ca install-service        # or: auto-ssl ca serve")
        print("")
        print("Clients that know every replica fail over between them: server enroll --ca-url URL1 --ca-url URL2 ...")
    }
}

struct CAReplicaListCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "list",
        abstract: "The replicas that recorded a heartbeat in the shared database, and the latest administrative changes made on any of them.")

    @Flag(help: "Print JSON.") var json = false

    func run() async throws {
        let directories = Directories.fromEnvironment()
        let settings = try AuthorityLoader(directories: directories).settings()
        let report = await CAStatusReport.DatabaseReport.load(settings, directories: directories)
        if json {
            try Output.json(report)
            return
        }
        guard let replicas = report.replicas else {
            print("This CA keeps its records in SQLite on this machine: it has no replicas.")
            return
        }
        guard report.state == "ok" else { throw AutoSSLError(.network, "the database \(report.location) is \(report.state)") }
        if replicas.isEmpty { print("No replica has started yet.") }
        for replica in replicas {
            print("\(replica.alive ? "up  " : "DOWN") \(replica.name)  \(replica.addresses.joined(separator: ", "))  auto-ssl \(replica.version)  last seen \(Output.date(replica.lastSeen))")
        }
        if let events = report.adminEvents, !events.isEmpty {
            print("")
            print("Recent administrative changes (any replica, newest first):")
            for event in events { print("  \(Output.date(event.at))  \(event.host)  \(event.event)  \(event.detail)") }
        }
    }
}
