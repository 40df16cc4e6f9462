import AutoSSLCore
import AutoSSLHost
import Foundation

/// How to reach one host over the system's ssh and scp: the operator's keys, agent and
/// known_hosts. Host keys are checked strictly (`StrictHostKeyChecking=yes`) unless
/// `acceptNewHostKey` (then `accept-new`: a first key is recorded, a changed one still refused).
public struct SSHTarget: Sendable, Equatable, Codable {
    public var host: String
    public var port: Int?
    public var user: String?
    public var identity: String?

    public init(host: String, port: Int? = nil, user: String? = nil, identity: String? = nil) throws {
        guard Self.isPlainWord(host, extra: ".:-_"), !host.hasPrefix("-") else {
            throw AutoSSLError.invalidArgument("\"\(Self.shown(host))\" is not a host name or address")
        }
        if let user, !Self.isPlainWord(user, extra: ".-_") || user.hasPrefix("-") {
            throw AutoSSLError.invalidArgument("\"\(Self.shown(user))\" is not a user name")
        }
        if let port, !(1...65535).contains(port) { throw AutoSSLError.invalidArgument("--port \(port) is not a TCP port") }
        self.host = host
        self.port = port
        self.user = user
        self.identity = identity
    }

    static func isPlainWord(_ text: String, extra: String) -> Bool {
        !text.isEmpty && text.count <= 253
            && text.unicodeScalars.allSatisfy { ($0.isASCII && CharacterSet.alphanumerics.contains($0)) || extra.unicodeScalars.contains($0) }
    }

    /// For messages: at most 80 characters, no control characters.
    static func shown(_ text: String) -> String {
        String(String(text.unicodeScalars.filter { $0.value >= 0x20 && $0.value != 0x7F }).prefix(80))
    }

    /// `user@host` as people write it (for messages and the inventory).
    public var display: String {
        (user.map { "\($0)@" } ?? "") + host + (port.map { ":\($0)" } ?? "")
    }
}

/// The ssh and scp command lines, and what their failures mean.
public struct SSHRunner: Sendable {
    /// The program used instead of `ssh` (`--ssh-command`), also given to scp with `-S`.
    public var sshProgram: String
    public var scpProgram: String
    public var acceptNewHostKey: Bool
    public var connectTimeout: Int
    /// Longest a remote command may take (an enrollment talks to the CA).
    public var commandTimeout: TimeInterval
    public var copyTimeout: TimeInterval
    public var outputLimit: Int

    public init(
        sshProgram: String? = nil, acceptNewHostKey: Bool = false, connectTimeout: Int = 10, commandTimeout: TimeInterval = 180,
        copyTimeout: TimeInterval = 600, outputLimit: Int = 1 << 20
    ) {
        self.sshProgram = sshProgram ?? "ssh"
        self.scpProgram = "scp"
        self.acceptNewHostKey = acceptNewHostKey
        self.connectTimeout = connectTimeout
        self.commandTimeout = commandTimeout
        self.copyTimeout = copyTimeout
        self.outputLimit = outputLimit
    }

    var commonOptions: [String] {
        [
            "-o", "BatchMode=yes",
            "-o", "StrictHostKeyChecking=\(acceptNewHostKey ? "accept-new" : "yes")",
            "-o", "ConnectTimeout=\(connectTimeout)",
            "-o", "ServerAliveInterval=15",
            "-o", "ServerAliveCountMax=3",
        ]
    }

    /// `ssh` running `command` (one string, run by the remote user's shell; build it with `shellQuote`).
    public func sshArguments(_ target: SSHTarget, command: String) -> [String] {
        var arguments = [sshProgram] + commonOptions
        if let port = target.port { arguments += ["-p", String(port)] }
        if let identity = target.identity { arguments += ["-i", identity] }
        if let user = target.user { arguments += ["-l", user] }
        return arguments + ["--", target.host, command]
    }

    /// `scp` copying `local` to `remotePath` on the target.
    public func scpArguments(_ target: SSHTarget, local: String, remotePath: String) -> [String] {
        var arguments = [scpProgram, "-q"] + commonOptions
        if sshProgram != "ssh" { arguments += ["-S", sshProgram] }
        if let port = target.port { arguments += ["-P", String(port)] }
        if let identity = target.identity { arguments += ["-i", identity] }
        if let user = target.user { arguments += ["-o", "User=\(user)"] }
        let host = target.host.contains(":") ? "[\(target.host)]" : target.host
        return arguments + ["--", local, "\(host):\(remotePath)"]
    }

    /// A word for a POSIX shell: single-quoted unless it is plainly safe.
    public static func shellQuote(_ word: String) -> String {
        if !word.isEmpty, word.unicodeScalars.allSatisfy({
            $0.isASCII && (CharacterSet.alphanumerics.contains($0) || "/._-:=@,+".unicodeScalars.contains($0))
        }) {
            return word
        }
        return "'" + word.replacingOccurrences(of: "'", with: "'\\''") + "'"
    }

    public static func command(_ words: [String]) -> String {
        words.map(shellQuote).joined(separator: " ")
    }

    /// Runs ssh; `input` goes to the remote command's standard input (the only way a secret travels).
    public func run(_ target: SSHTarget, _ command: String, input: [UInt8]? = nil, timeout: TimeInterval? = nil) throws -> SpawnedProcess.Captured {
        try launch(sshArguments(target, command: command), input: input, timeout: timeout ?? commandTimeout)
    }

    public func copy(_ target: SSHTarget, local: String, remotePath: String) throws -> SpawnedProcess.Captured {
        try launch(scpArguments(target, local: local, remotePath: remotePath), input: nil, timeout: copyTimeout)
    }

    func launch(_ arguments: [String], input: [UInt8]?, timeout: TimeInterval) throws -> SpawnedProcess.Captured {
        var arguments = arguments
        guard let program = Self.resolve(arguments[0]) else {
            throw AutoSSLError(.missingDependency, "\(arguments[0]) was not found", hint: "install the OpenSSH client (ssh and scp)")
        }
        arguments[0] = program
        do {
            return try SpawnedProcess.capture(arguments, input: input, timeout: timeout, outputLimit: outputLimit)
        } catch {
            throw AutoSSLError(.missingDependency, "could not start \(program): \(error)")
        }
    }

    static func resolve(_ program: String) -> String? {
        if program.hasPrefix("/") { return FileManager.default.isExecutableFile(atPath: program) ? program : nil }
        if program.contains("/") {
            let absolute = FileManager.default.currentDirectoryPath + "/" + program
            return FileManager.default.isExecutableFile(atPath: absolute) ? absolute : nil
        }
        return SystemCommandRunner().which(program)
    }
}

/// What a failed ssh, scp or remote `sudo -n` means, in the operator's words and exit codes.
public enum SSHFailure {
    /// The error for a run that did not succeed; nil when the failure is the remote command's own
    /// (the caller shows its output). ssh reports its own failures with status 255.
    public static func classify(_ result: SpawnedProcess.Captured, target: SSHTarget, action: String) -> AutoSSLError? {
        let host = target.display
        if result.timedOut {
            return AutoSSLError(.network, "\(action) on \(host) did not finish in time and was stopped")
        }
        if result.overflowed {
            return AutoSSLError(.general, "\(action) on \(host) wrote more output than allowed and was stopped")
        }
        let text = result.stderr
        if text.contains("REMOTE HOST IDENTIFICATION HAS CHANGED") {
            return AutoSSLError(
                .trustFailure, "the host key of \(host) has CHANGED since it was recorded in known_hosts; nothing was done",
                hint: "if the host was reinstalled, check its new key out of band, then remove the old one: ssh-keygen -R \(target.host)")
        }
        if text.contains("Host key verification failed") || text.contains("No matching host key") {
            return AutoSSLError(
                .trustFailure, "the host key of \(host) is not known (not in known_hosts); nothing was done",
                hint: "check the key out of band and add it to known_hosts (ssh-keyscan, or one interactive ssh), or pass --accept-new-host-key to record it on first use")
        }
        if result.status == 255 {
            let reasons = [
                ("Could not resolve hostname", "its name does not resolve"), ("Connection refused", "the connection was refused"),
                ("No route to host", "there is no route to it"), ("Network is unreachable", "the network is unreachable"),
                ("Connection timed out", "the connection timed out"), ("Operation timed out", "the connection timed out"),
                ("Connection reset", "the connection was reset"),
            ]
            if let reason = reasons.first(where: { text.contains($0.0) }) {
                return AutoSSLError(.network, "\(host) is unreachable: \(reason.1)", hint: "check the address, --port and that sshd runs there")
            }
            if text.contains("Permission denied") {
                return AutoSSLError(
                    .permissionDenied, "\(host) refused the ssh login\(target.user.map { " of \($0)" } ?? "")",
                    hint: "the key (--identity or your ssh agent) must be in the user's authorized_keys")
            }
            return AutoSSLError(.network, "ssh to \(host) failed: \(lastLine(text))")
        }
        if text.contains("a password is required") || text.contains("a terminal is required") || text.contains("no askpass program") {
            return AutoSSLError(
                .permissionDenied, "sudo on \(host) needs a password; nothing was done",
                hint: "let \(target.user ?? "the ssh user") run /usr/local/bin/auto-ssl without a password (NOPASSWD in sudoers), or log in as root")
        }
        if text.contains("is not in the sudoers file") || text.contains("is not allowed to run sudo") || text.contains("not allowed to execute") {
            return AutoSSLError(
                .permissionDenied, "\(target.user ?? "the ssh user") may not use sudo on \(host); nothing was done",
                hint: "allow it to run /usr/local/bin/auto-ssl (NOPASSWD in sudoers), or log in as root")
        }
        if text.contains("sudo: command not found") || text.contains("sudo: not found") {
            return AutoSSLError(.missingDependency, "sudo is not installed on \(host)")
        }
        return nil
    }

    /// The last non-empty line of `text`, without control characters, at most 300 characters.
    public static func lastLine(_ text: String) -> String {
        let line = text.split(whereSeparator: \.isNewline).last(where: { !$0.trimmingCharacters(in: .whitespaces).isEmpty }) ?? ""
        return String(RemoteText.clean(String(line)).prefix(300))
    }
}

/// Text from a remote host, made safe to show: no control characters (but newlines and tabs),
/// at most `limit` characters (the end kept, where errors are), and never `secrets`.
public enum RemoteText {
    public static func clean(_ text: String, limit: Int = 4_000, secrets: [String] = []) -> String {
        // Control characters go first, so none hidden inside a secret can keep it from being found.
        let kept = text.unicodeScalars.filter { $0 == "\n" || $0 == "\t" || ($0.value >= 0x20 && $0.value != 0x7F && !(0x80..<0xA0).contains($0.value)) }
        var cleaned = String(String.UnicodeScalarView(kept))
        for secret in secrets where !secret.isEmpty { cleaned = cleaned.replacingOccurrences(of: secret, with: "[redacted]") }
        return cleaned.count > limit ? "…" + String(cleaned.suffix(limit)) : cleaned
    }
}
