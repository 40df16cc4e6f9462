import AutoSSLCore
import Foundation

/// Copies a backup to another machine with the system's rsync over ssh.
public struct RsyncTransfer: Sendable {
    /// `user@host:path`; a path ending in "/" is a directory that receives the file under its own name.
    public var target: String
    /// The remote shell, e.g. `ssh -p 2222 -i /root/.ssh/backup`. BatchMode keeps it from ever prompting.
    public var sshCommand: String
    public var runner: CommandRunning

    public init(target: String, sshCommand: String?, runner: CommandRunning = SystemCommandRunner()) throws {
        guard let colon = target.firstIndex(of: ":"), colon != target.startIndex,
              !target[..<colon].contains("/") else {
            throw AutoSSLError.invalidArgument(
                "--rsync-target \"\(target)\" is not of the form [user@]host:path", hint: "e.g. backup@vault.internal:/srv/ca-backups/")
        }
        self.target = target
        self.sshCommand = sshCommand ?? "ssh -o BatchMode=yes"
        self.runner = runner
    }

    /// Where `fileName` ends up: the target itself, or inside it when it names a directory.
    public func destination(for fileName: String) -> String {
        target.hasSuffix("/") || target.hasSuffix(":") ? target + fileName : target
    }

    /// Uploads `localFile`; rsync writes to a temporary name on the far side and renames it, so a
    /// broken transfer never leaves a truncated backup under the final name.
    public func upload(_ localFile: String, timeout: TimeInterval = 600) throws -> String {
        guard let rsync = runner.which("rsync") else {
            throw AutoSSLError(.missingDependency, "rsync is not installed", hint: "install it (apt-get install rsync openssh-client)")
        }
        let destination = destination(for: (localFile as NSString).lastPathComponent)
        let outcome: SpawnedProcess.Outcome
        do {
            outcome = try SpawnedProcess.run(
                [rsync, "--chmod=F600", "--timeout=60", "-e", sshCommand, localFile, destination], timeout: timeout)
        } catch {
            throw AutoSSLError(.missingDependency, "could not run rsync: \(error)")
        }
        guard outcome.status == 0, !outcome.timedOut else {
            let detail = outcome.output.trimmingCharacters(in: .whitespacesAndNewlines)
            throw AutoSSLError(
                .network, "rsync to \(destination) failed (exit \(outcome.status)\(outcome.timedOut ? ", timed out" : ""))\(detail.isEmpty ? "" : ": \(detail)")",
                hint: "check the target, that this machine's ssh key is accepted there (--ssh-command), and the network")
        }
        return destination
    }
}
