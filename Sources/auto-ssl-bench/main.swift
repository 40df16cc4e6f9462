import ArgumentParser
import AutoSSLCore
import AutoSSLIO
import Foundation

/// `auto-ssl-bench`: the load generators and per-stage timings of docs/benchmarks.md, in a binary of
/// their own so that the shipped `auto-ssl` carries none of them.
struct AutoSSLBenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "auto-ssl-bench",
        abstract: "Benchmarks of auto-ssl that print figures (docs/benchmarks.md).",
        discussion: """
            The CA under test is the `auto-ssl` next to this binary (both are built together), or the \
            one given with `sign --server-binary`. Exit codes as auto-ssl's (0 ok, 1 error, 2 invalid \
            arguments, ...).
            """,
        subcommands: [BenchSignCommand.self, BenchStagesCommand.self])

    /// This tool's name in the backups the two-replica run makes.
    static let toolVersion = "auto-ssl-bench"
}

exit(await runBench(Array(CommandLine.arguments.dropFirst())))

/// Runs one benchmark command; returns the exit code (AutoSSLCore's `FailureKind.exitCode`).
func runBench(_ arguments: [String]) async -> Int32 {
    do {
        var command = try AutoSSLBenchCommand.parseAsRoot(arguments)
        if var asyncCommand = command as? AsyncParsableCommand {
            try await asyncCommand.run()
        } else {
            try command.run()
        }
        return 0
    } catch let error as AutoSSLError {
        Output.error(error)
        return error.kind.exitCode
    } catch {
        let code = AutoSSLBenchCommand.exitCode(for: error)
        let message = AutoSSLBenchCommand.fullMessage(for: error)
        if !message.isEmpty { Output.standardError(message + "\n") }
        return code == .validationFailure ? FailureKind.invalidArguments.exitCode : code.rawValue
    }
}
