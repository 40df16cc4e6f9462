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

/// `--reason TEXT` as one word, `--reason=TEXT`, when the text starts with "-" (but not "--"):
/// ArgumentParser would take "-2 weeks early" for short flags, and the check below for a negative
/// value. Free text is the only value that may start that way.
func attachingFreeText(_ arguments: [String]) -> [String] {
    var result: [String] = []
    var index = 0
    while index < arguments.count {
        let argument = arguments[index]
        if argument == "--reason", index + 1 < arguments.count, arguments[index + 1].hasPrefix("-"), !arguments[index + 1].hasPrefix("--") {
            result.append("--reason=" + arguments[index + 1])
            index += 2
        } else {
            result.append(argument)
            index += 1
        }
    }
    return result
}

func runMain(_ given: [String]) async -> Int32 {
    let arguments = attachingFreeText(given)
    if arguments == ["-v"] {
        print(AutoSSLCommand.versionLine)
        return 0
    }
    // ArgumentParser reads "-5h" as short flags, "-h" among them: a negative duration would print
    // the help and exit 0, or be reported as a missing value. No option or value of ours starts
    // with "-" and a digit (free text after --reason is attached to it above), so such an
    // argument is a negative value, refused as one.
    if let negative = arguments.first(where: { $0.count > 1 && $0.hasPrefix("-") && $0.dropFirst().first?.isNumber == true }) {
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
            Output.standardError(
                (SubcommandSuggestion.message(for: arguments) ?? SubcommandSuggestion.optionMessage(for: arguments, message: message) ?? message) + "\n")
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
