import ArgumentParser
import AutoSSLCore
import Foundation
import Logging
import NIOCore
import NIOPosix
import AutoSSLIO

// The entry point maps every failure to the documented exit codes (`FailureKind`) (ArgumentParser's own
// usage errors would otherwise exit 64) and sets up logging before any command runs.
LoggingSetup.bootstrap()
StandardOutput.makeLineBuffered()
// `ca serve` runs its tasks on NIO's event-loop threads (EventLoopExecutor). It must happen on the
// main thread before the first task starts. (The database writer's options are passed by
// `ca serve` itself: see CAServeCommand.)
if Array(CommandLine.arguments.dropFirst().prefix(2)) == ["ca", "serve"] {
    CAServeCommand.tasksOnEventLoops = EventLoopExecutor.install()
}
exit(await runMain(Array(CommandLine.arguments.dropFirst())))

/// A whole argument that reads as a negative number or duration: "-" then a digit, then only
/// ASCII digits, dots and lowercase letters.
func isNegativeValue(_ argument: String) -> Bool {
    let scalars = Array(argument.unicodeScalars)
    guard scalars.count > 1, scalars[0] == "-", ("0"..."9").contains(scalars[1]) else { return false }
    return scalars.dropFirst(2).allSatisfy { ("0"..."9").contains($0) || ("a"..."z").contains($0) || $0 == "." }
}

func runMain(_ arguments: [String]) async -> Int32 {
    if arguments == ["-v"] {
        print(AutoSSLCommand.versionLine)
        return 0
    }
    // ArgumentParser reads "-5h" as short flags, "-h" among them: a negative duration would print
    // the help and exit 0, or be reported as a missing value. No option or value of ours starts
    // with "-" and a digit, so such a word ("-5", "-5h", "-1.5h30m": a minus, a digit, then only
    // digits, dots and lowercase letters) is a negative value, refused as one. Free text that
    // merely starts that way ("--reason '-2 weeks early'") is left to the parser.
    if let negative = arguments.first(where: isNegativeValue) {
        Output.error(AutoSSLError.invalidArgument(
            "\(negative): negative values are not accepted (durations, counts and ports are positive)",
            hint: "see '\((["auto-ssl"] + arguments.prefix { !$0.hasPrefix("-") }.prefix(3)).joined(separator: " ")) --help'"))
        return FailureKind.invalidArguments.exitCode
    }
    do {
        var command = try AutoSSLCommand.parseAsRoot(arguments)
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
        let code = AutoSSLCommand.exitCode(for: error)
        let message = AutoSSLCommand.fullMessage(for: error)
        if code == .success {
            if !message.isEmpty { print(CommandExamples.withExamples(message)) }
            return 0
        } else if code == .validationFailure {
            Output.standardError((SubcommandSuggestion.message(for: arguments) ?? message) + "\n")
            return FailureKind.invalidArguments.exitCode
        } else if error is ExitCode {
            if !message.isEmpty { Output.standardError(message + "\n") }
            return code.rawValue
        } else {
            Output.standardError("error: \(message.isEmpty ? String(describing: error) : message)\n")
            return FailureKind.general.exitCode
        }
    }
}
