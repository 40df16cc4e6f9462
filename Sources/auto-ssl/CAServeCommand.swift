import ArgumentParser
import AutoSSLCA
import AutoSSLCore
import AutoSSLIO
import AutoSSLServer
import AutoSSLStore
import NIOCore
import NIOPosix
import Foundation
import Logging

struct CAServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Run the HTTPS CA in the foreground (for systemd or a terminal).",
        discussion: """
            Serves on the addresses in config.yaml. The CA password comes from --password-file, a systemd \
            credential named ca-password, or $AUTO_SSL_CONFIG_DIR/ca-password. SIGTERM or SIGINT stops \
            accepting connections, lets requests in flight finish, and exits 0.
            """)

    @Option(help: ArgumentHelp("File holding the CA key password.", valueName: "file"))
    var passwordFile: String?

    func run() async throws {
        let directories = Directories.fromEnvironment()
        let loader = AuthorityLoader(directories: directories)
        // Committed writes resume on the event loop they came from (one job per loop and batch), and
        // the database writer runs ahead of the requests waiting on it (see WriterOptions).
        let writer = WriterOptions.serving(affinity: WaiterAffinity(
            current: { MultiThreadedEventLoopGroup.currentEventLoop },
            run: { loop, work in
                if let loop = loop as? any EventLoop { loop.execute(work) } else { work() }
            }))
        let (authority, database) = try loader.open(passwordFile: passwordFile, writer: writer)
        try CAServer.checkAddressesAreFree(authority.settings.addresses)
        let watcher = SettingsWatcher(loader: loader)
        let server = try await CAServer(
            authority: authority, acmeDatabase: database.acme, reloadSettings: { try watcher.settings() })
        Output.standardError("auto-ssl CA \"\(authority.settings.name)\" (root \(authority.rootFingerprint))\n")
        try await server.run(onRunning: { address in
            Output.standardError("listening on \(address)\n")
        })
        try await authority.close()
        Output.standardError("stopped\n")
    }
}
