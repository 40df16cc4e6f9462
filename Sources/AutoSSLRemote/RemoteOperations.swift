import AutoSSLCore
import AutoSSLHost
import AutoSSLIO
import Crypto
import Foundation

/// The operations of `auto-ssl remote`: each runs the host's own auto-ssl over ssh under
/// `sudo -n`, so the host does exactly what `server ...` does there.
public struct RemoteOperations: Sendable {
    /// Where the binary lives on every host (the systemd units of `server enroll` name it).
    public static let remoteBinary = "/usr/local/bin/auto-ssl"

    public let ssh: SSHRunner
    /// This program, copied to hosts that miss it or have another build.
    public let localBinary: String
    /// `auto-ssl version` of this program.
    public let versionLine: String

    public init(ssh: SSHRunner, localBinary: String, versionLine: String) {
        self.ssh = ssh
        self.localBinary = localBinary
        self.versionLine = versionLine
    }

    /// What a fresh enrollment token carries (made by the authority, `EnrollmentTokens`).
    public struct Token: Sendable {
        public var token: String
        public var caURLs: [String]
        public var fingerprint: String

        public init(token: String, caURLs: [String], fingerprint: String) {
            self.token = token
            self.caURLs = caURLs
            self.fingerprint = fingerprint
        }
    }

    // MARK: - The binary

    public enum BinaryInstall: Sendable, Equatable {
        case alreadyCurrent
        case copied(replacing: String?)
    }

    /// SHA-256 of the local binary, hex: read once per command (it is over 100 MB), however many
    /// hosts `remote update` or `remote enroll` go to.
    public func localChecksum() throws -> String {
        try checksumOnce.value { try computeLocalChecksum() }
    }

    private let checksumOnce = ComputedOnce<String>()

    private func computeLocalChecksum() throws -> String {
        guard let handle = FileHandle(forReadingAtPath: localBinary) else {
            throw AutoSSLError.general("cannot read this program's binary at \(localBinary)")
        }
        defer { try? handle.close() }
        var hasher = SHA256()
        while true {
            let chunk = handle.readData(ofLength: 4 << 20)
            if chunk.isEmpty { break }
            hasher.update(data: chunk)
        }
        return hasher.finalize().map { String(format: "%02x", $0) }.joined()
    }

    /// What the host has at /usr/local/bin/auto-ssl: its version line and checksum (nil when missing).
    func installedBinary(_ target: SSHTarget) throws -> (version: String?, checksum: String?) {
        let probe = "v=$(\(Self.remoteBinary) version 2>/dev/null | head -n 1); s=$(sha256sum \(Self.remoteBinary) 2>/dev/null); "
            + "printf 'version=%s\\nsha256=%s\\n' \"$v\" \"${s%% *}\""
        let result = try ssh.run(target, probe, timeout: 60)
        if let failure = SSHFailure.classify(result, target: target, action: "checking auto-ssl") { throw failure }
        guard result.status == 0 else {
            throw AutoSSLError.general("checking auto-ssl on \(target.display) failed: \(SSHFailure.lastLine(result.stderr))")
        }
        return Self.binaryProbe(result.stdout)
    }

    /// The probe's answer (`version=...` and `sha256=...` lines; hostile: each value cleaned and at
    /// most 100 characters, empty values are none).
    public static func binaryProbe(_ stdout: [UInt8]) -> (version: String?, checksum: String?) {
        var version: String?
        var checksum: String?
        for line in String(decoding: stdout, as: UTF8.self).split(separator: "\n") {
            if line.hasPrefix("version="), line.count > 8 { version = RemoteText.clean(String(line.dropFirst(8)), limit: 100) }
            if line.hasPrefix("sha256="), line.count > 7 { checksum = RemoteText.clean(String(line.dropFirst(7)), limit: 100) }
        }
        return (version, checksum)
    }

    /// Copies this binary to the host unless it has the same version and checksum: scp to a
    /// temporary name in the login's home directory, then under `sudo -n`: copied next to the
    /// target, its SHA-256 checked there, renamed over /usr/local/bin/auto-ssl.
    public func installBinary(_ target: SSHTarget, force: Bool = false) throws -> BinaryInstall {
        let checksum = try localChecksum()
        let installed = try installedBinary(target)
        if !force, installed.version == versionLine, installed.checksum == checksum { return .alreadyCurrent }
        let suffix = UUID().uuidString.prefix(8).lowercased()
        // In the login's home directory (relative to it, for scp and ssh alike), not /tmp: no other
        // user of the host can swap the file between the copy and the install.
        let upload = ".auto-ssl-upload-\(suffix)"
        let copied = try ssh.copy(target, local: localBinary, remotePath: upload)
        if let failure = SSHFailure.classify(copied, target: target, action: "copying auto-ssl") { throw failure }
        guard copied.status == 0 else {
            throw AutoSSLError.general("copying auto-ssl to \(target.display) failed: \(SSHFailure.lastLine(copied.stderr))")
        }
        let staged = "/usr/local/bin/.auto-ssl.new-\(suffix)"
        let script = """
            set -e; trap 'rm -f "$2"' EXIT; umask 022; mkdir -p /usr/local/bin; cp "$1" "$2"; chmod 0755 "$2"; \
            printf '%s  %s\\n' "$3" "$2" | sha256sum -c --status || { echo "checksum mismatch after copying" >&2; exit 3; }; \
            mv -f "$2" "$4"; trap - EXIT
            """
        let install = SSHRunner.command(["sudo", "-n", "sh", "-c", script, "sh", upload, staged, checksum, Self.remoteBinary])
            + "; status=$?; rm -f " + SSHRunner.shellQuote(upload) + "; exit $status"
        let result = try ssh.run(target, install, timeout: 120)
        if let failure = SSHFailure.classify(result, target: target, action: "installing auto-ssl") { throw failure }
        guard result.status == 0 else {
            throw AutoSSLError.general(
                "installing auto-ssl on \(target.display) failed: \(SSHFailure.lastLine(result.stderr))", hint: "nothing was replaced")
        }
        return .copied(replacing: installed.version)
    }

    // MARK: - Running auto-ssl there

    public struct RemoteRun: Sendable {
        public var status: Int32
        public var stdout: String
        public var stderr: String
    }

    /// `sudo -n /usr/local/bin/auto-ssl ARGUMENTS` on the host. An ssh or sudo failure throws; the
    /// program's own failure is returned (its output cleaned, `secrets` taken out).
    public func auto(_ target: SSHTarget, _ arguments: [String], input: [UInt8]? = nil, secrets: [String] = []) throws -> RemoteRun {
        let command = SSHRunner.command(["sudo", "-n", Self.remoteBinary] + arguments)
        let result = try ssh.run(target, command, input: input)
        if let failure = SSHFailure.classify(result, target: target, action: "auto-ssl \(arguments.prefix(2).joined(separator: " "))") {
            throw failure
        }
        return RemoteRun(
            status: result.status, stdout: RemoteText.clean(String(decoding: result.stdout, as: UTF8.self), limit: 1 << 20, secrets: secrets),
            stderr: RemoteText.clean(result.stderr, secrets: secrets))
    }

    /// The error for a remote auto-ssl that failed: its own output, shown.
    public static func refused(_ what: String, _ run: RemoteRun, target: SSHTarget) -> AutoSSLError {
        let output = (run.stderr + (run.stdout.isEmpty ? "" : "\n" + run.stdout)).trimmingCharacters(in: .whitespacesAndNewlines)
        let shown = output.split(separator: "\n").suffix(20).map { "    \($0)" }.joined(separator: "\n")
        return AutoSSLError(.remoteCommand, "\(what) on \(target.display) failed (exit \(run.status)); the host said:\n\(shown)")
    }

    // MARK: - Enroll

    public struct EnrollRequest: Sendable {
        public var name: String
        public var target: SSHTarget
        public var names: [String]
        public var reload: String?

        public init(name: String, target: SSHTarget, names: [String], reload: String?) {
            self.name = name
            self.target = target
            self.names = names
            self.reload = reload
        }
    }

    public struct EnrollResult: Sendable {
        public var binary: BinaryInstall
        public var entry: RemoteInventory.Entry
        public var output: String
    }

    /// Copies the binary when needed, then runs `server enroll --token-file /dev/stdin` there with
    /// a token made for these names (on stdin only), then reads the host's status. `mint` is called
    /// only once the host answered and has the binary, so no token is made for an unreachable host.
    public func enroll(_ request: EnrollRequest, now: Date = Date(), mint: ([String]) throws -> Token) throws -> EnrollResult {
        let target = request.target
        let binary = try installBinary(target)
        let token = try mint(request.names)
        var arguments = ["server", "enroll", "--token-file", "/dev/stdin", "--non-interactive"]
        for url in token.caURLs { arguments += ["--ca-url", url] }
        arguments += ["--fingerprint", token.fingerprint]
        for name in request.names { arguments += ["--san", name] }
        if let reload = request.reload { arguments += ["--reload", reload] }
        let run = try auto(target, arguments, input: Array((token.token + "\n").utf8), secrets: [token.token])
        guard run.status == 0 else { throw Self.refused("server enroll", run, target: target) }
        var entry = RemoteInventory.Entry(
            name: request.name, host: target.host, port: target.port, user: target.user, identity: target.identity, names: request.names,
            reload: request.reload, enrolledAt: now)
        entry.lastStatus = status(entry, now: Date())
        return EnrollResult(binary: binary, entry: entry, output: run.stdout)
    }

    // MARK: - Status

    /// The host's `server status --json`, read into a `RemoteHostStatus`; never throws: a host that
    /// cannot be asked is `unreachable` (or `failed`) with the reason.
    public func status(_ entry: RemoteInventory.Entry, now: Date = Date()) -> RemoteHostStatus {
        do {
            let run = try auto(try entry.target(), ["server", "status", "--json"])
            // server status exits 1 for an expired, revoked or missing certificate, and still prints the report.
            guard run.status == 0 || run.status == 1 else {
                return RemoteHostStatus(state: .failed, checkedAt: now, detail: SSHFailure.lastLine(run.stderr))
            }
            return try RemoteHostStatus(hostJSON: Array(run.stdout.utf8), checkedAt: now)
        } catch let error as AutoSSLError {
            let state: RemoteHostStatus.State = error.kind == .network ? .unreachable : .failed
            return RemoteHostStatus(state: state, checkedAt: now, detail: error.message)
        } catch {
            return RemoteHostStatus(state: .failed, checkedAt: now, detail: "\(error)")
        }
    }

    /// Runs `body` for every item, at most `limit` at a time, results in order. Each body blocks
    /// (an ssh to one host, up to minutes), so each of the `limit` workers is a thread of its own:
    /// on Dispatch's global queues they would take the threads Swift's tasks run on, and on a
    /// 2-core machine no more than two hosts would be asked at once.
    public static func parallel<T: Sendable, R: Sendable>(_ items: [T], limit: Int, _ body: @escaping @Sendable (T) -> R) -> [R] {
        let results = ResultBox<R>(count: items.count)
        let workers = min(max(1, limit), items.count)
        let done = DispatchGroup()
        for _ in 0..<workers {
            done.enter()
            let worker = Thread {
                while let index = results.claim() { results.set(index, body(items[index])) }
                done.leave()
            }
            worker.stackSize = 1 << 20
            worker.start()
        }
        done.wait()
        return results.values()
    }
}

/// A value computed by the first caller that needs it (the others wait for it).
final class ComputedOnce<Value: Sendable>: @unchecked Sendable {
    private let lock = NSLock()
    private var stored: Value?

    func value(_ compute: () throws -> Value) throws -> Value {
        lock.lock()
        defer { lock.unlock() }
        if let stored { return stored }
        let computed = try compute()
        stored = computed
        return computed
    }
}

final class ResultBox<R>: @unchecked Sendable {
    private let lock = NSLock()
    private var storage: [R?]
    private var next = 0

    init(count: Int) { storage = Array(repeating: nil, count: count) }

    /// The next item's index for a worker, nil when none is left.
    func claim() -> Int? {
        lock.lock()
        defer { lock.unlock() }
        guard next < storage.count else { return nil }
        next += 1
        return next - 1
    }

    func set(_ index: Int, _ value: R) {
        lock.lock()
        storage[index] = value
        lock.unlock()
    }

    func values() -> [R] {
        lock.lock()
        defer { lock.unlock() }
        return storage.compactMap { $0 }
    }
}
