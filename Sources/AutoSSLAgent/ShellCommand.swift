import AutoSSLHost
import Foundation

/// Runs an operator-supplied command (`--exec`, a reload command) through /bin/sh, never through a
/// pipe (see `SpawnedProcess`): a reload command that starts a daemon must not hang the renewal.
public enum ShellCommand {
    public typealias Outcome = SpawnedProcess.Outcome

    public static func run(_ command: String, timeout: TimeInterval = 120) throws -> Outcome {
        try SpawnedProcess.run(["/bin/sh", "-c", command], timeout: timeout)
    }
}
