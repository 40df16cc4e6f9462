import ArgumentParser

/// `auto-ssl-bench`: the load generators and per-stage timings of docs/benchmarks.md, in a binary of
/// their own so that the shipped `auto-ssl` carries none of them.
@main
struct AutoSSLBenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "auto-ssl-bench",
        abstract: "Benchmarks of auto-ssl that print figures (docs/benchmarks.md).",
        discussion: """
            The CA under test is the `auto-ssl` next to this binary (both are built together), or the \
            one given with `--server-binary`. Exit codes: 0 ok, 1 an error (the message says what), 64 a \
            usage error.
            """,
        subcommands: [BenchSignCommand.self, BenchACMECommand.self, BenchStagesCommand.self])

    /// This tool's name in the backups the two-replica run makes.
    static let toolVersion = "auto-ssl-bench"
}

