import AutoSSLCore
import AutoSSLHost
import AutoSSLIO
import Foundation

/// Backups copied to another machine with the system's rsync over ssh. The far side is never
/// listed, so `--retention` does not apply here (rotate there, e.g. with a find job).
public struct RsyncDestination: BackupDestination {
    /// `[user@]host:` and a remote directory: ends with `/` or `:` (the login directory).
    public let directory: String
    /// The remote shell, e.g. `ssh -p 2222 -i /root/.ssh/backup`. BatchMode keeps it from ever prompting.
    public let sshCommand: String
    public let runner: CommandRunning
    public let timeout: TimeInterval

    public init(directory: String, sshCommand: String?, runner: CommandRunning = SystemCommandRunner(), timeout: TimeInterval = 600) {
        self.directory = directory
        self.sshCommand = sshCommand ?? "ssh -o BatchMode=yes"
        self.runner = runner
        self.timeout = timeout
    }

    public var description: String { directory }

    public func location(of name: String) -> String { directory + name }

    /// The bytes go to a private local file named `name`, which rsync copies with mode 0600; rsync
    /// writes to a temporary name on the far side and renames it, so a broken transfer never leaves
    /// a truncated backup under the final name.
    @discardableResult
    public func put(_ bytes: [UInt8], name: String) async throws -> String {
        try BackupRotation.checkName(name)
        let staging = try FileOperations.makeTemporaryDirectory(prefix: "auto-ssl-backup")
        defer { try? FileOperations.removeTree(staging) }
        let local = staging + "/" + name
        try FileOperations.writeAtomically(bytes, to: local, mode: 0o600)
        let destination = location(of: name)
        try run(["--chmod=F600", "--timeout=60", "-e", sshCommand, local, directory], describing: "rsync to \(destination)")
        return destination
    }

    public func get(_ name: String) async throws -> [UInt8] {
        try BackupRotation.checkName(name)
        let staging = try FileOperations.makeTemporaryDirectory(prefix: "auto-ssl-restore")
        defer { try? FileOperations.removeTree(staging) }
        let source = location(of: name)
        try run(
            ["--timeout=60", "--max-size=\(BackupLimits.maximumBytes)", "-e", sshCommand, source, staging + "/"],
            describing: "rsync from \(source)")
        return try await FileDestination(directory: staging).get(name)
    }

    public var listingUnavailableReason: String? {
        "rsync destinations are not listed, so their old backups cannot be rotated from here (remove them on \(directory) itself)"
    }

    public func list() async throws -> [String] {
        throw AutoSSLError.invalidArgument("cannot list \(directory): \(listingUnavailableReason ?? "")")
    }

    public func delete(_ name: String) async throws {
        throw AutoSSLError.invalidArgument("cannot delete \(location(of: name)): \(listingUnavailableReason ?? "")")
    }

    private func run(_ arguments: [String], describing action: String) throws {
        guard let rsync = runner.which("rsync") else {
            throw AutoSSLError(.missingDependency, "rsync is not installed", hint: "install it (apt-get install rsync openssh-client)")
        }
        let outcome: SpawnedProcess.Outcome
        do {
            outcome = try SpawnedProcess.run([rsync] + arguments, timeout: timeout)
        } catch {
            throw AutoSSLError(.missingDependency, "could not run rsync: \(error)")
        }
        guard outcome.status == 0, !outcome.timedOut, !outcome.overflowed else {
            let detail = String(outcome.output.trimmingCharacters(in: .whitespacesAndNewlines).prefix(2000))
            let stopped = outcome.timedOut ? ", timed out" : outcome.overflowed ? ", stopped after more than 16 MiB of messages" : ""
            throw AutoSSLError(
                .network, "\(action) failed (exit \(outcome.status)\(stopped))\(detail.isEmpty ? "" : ": \(detail)")",
                hint: "check the target, that this machine's ssh key is accepted there (--ssh-command), and the network")
        }
    }
}
