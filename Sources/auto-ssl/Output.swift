import ArgumentParser
import AutoSSLCore
import Foundation
import Logging
import AutoSSLIO

enum LoggingSetup {
    /// `getenv`, not `ProcessInfo.environment`: that builds a dictionary of the whole environment,
    /// 0.7 ms of every command's start.
    static var debugEnabled: Bool { getenv("AUTO_SSL_DEBUG").map { String(cString: $0) == "1" } ?? false }

    static func bootstrap() {
        let level: Logger.Level = debugEnabled ? .debug : .warning
        let serving = Array(CommandLine.arguments.dropFirst().prefix(2)) == ["ca", "serve"]
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            // Audit events always reach the service's log (the journal under systemd), not only
            // audit.log; a one-off command (`ca revoke`) says what it did in words instead.
            handler.logLevel = label == "auto-ssl.audit" && serving ? min(level, .notice) : level
            return handler
        }
    }
}

/// `-q/--quiet` for scripts: only errors (and warnings) on stderr and the command's essential result
/// on stdout; the progress lines go.
struct QuietOption: ParsableArguments {
    @Flag(name: [.short, .long], help: "Print only errors and the essential result (for scripts).")
    var quiet = false
}

extension Output {
    /// Set once by a command's `run()` from its `QuietOption`, before anything is printed.
    nonisolated(unsafe) static var quiet = false

    /// A progress or explanatory line: printed unless `--quiet`.
    static func progress(_ line: String) {
        if !quiet { print(line) }
    }
}
