import CAutoSSLSpawn
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// Application servers for `auto-ssl remote` tests, each "another machine" reached over ssh: a
/// network namespace (`ip netns`, a veth pair: 10.231.N.1 on this side, 10.231.N.2 inside), and in
/// it, under `unshare --mount`, its own view of the files auto-ssl writes (/etc and /var/lib as
/// overlays whose upper layers are this host's directories, so /etc/auto-ssl, /etc/ssl/auto-ssl,
/// /var/lib/auto-ssl and the renewal units in /etc/systemd/system are the host's own; /usr/local/bin
/// a bind mount of its own directory; /run an empty tmpfs, so systemd is not running there and is
/// never asked), and its own `sshd` (own host key, no root login, public key only).
///
/// Each host has a non-root login, `autossl` (made with `useradd` inside the namespace: only the
/// overlay's /etc changes), whose home directory is the host's own `home`, with the lab's key in
/// its `.ssh/authorized_keys`. It runs auto-ssl through the real Debian `sudo` (setuid root,
/// reading the overlay's /etc/sudoers), allowed by /etc/sudoers.d/auto-ssl exactly as docs/fleet.md
/// tells operators to write it (NOPASSWD for /usr/local/bin/auto-ssl and /bin/sh); a host made
/// with `sudoNeedsPassword` gets the same rule without NOPASSWD (and the user a password), so
/// `sudo -n` refuses with "a password is required". sudo resets the environment: nothing is passed
/// to auto-ssl in environment variables, it uses its default paths.
///
/// Needs root, `ip`, `unshare`, `nsenter`, `/usr/sbin/sshd`, `ssh`, `scp`, `ssh-keygen`, `sudo`,
/// `visudo`, `useradd`. Namespaces, processes and mounts go in `stop()` (also from deinit); stale
/// `autossl-h*` namespaces of a crashed run are deleted first.
public final class SSHHostLab: @unchecked Sendable {
    public struct Host: Sendable {
        public var index: Int
        public var namespace: String
        public var address: String { "10.231.\(index).2" }
        /// This machine's address on the host's link (the CA listens here).
        public var gateway: String { "10.231.\(index).1" }
        public var root: String
        public var etcUpper: String { root + "/etc-upper" }
        public var varUpper: String { root + "/var-upper" }
        public var bin: String { root + "/bin" }
        /// The login's home directory (the same path inside the host): uploads land here.
        public var home: String { root + "/home" }
        public var hostKey: String { root + "/ssh_host_ed25519_key" }
        public var sshdLog: String { root + "/sshd.log" }
        /// Where files the host writes appear from outside (reading only).
        public var configDir: String { etcUpper + "/auto-ssl" }
        public var certDir: String { etcUpper + "/ssl/auto-ssl" }
        public var dataDir: String { varUpper + "/auto-ssl" }
        public static let systemdDir = "/etc/systemd/system"
        public var unitsDir: String { etcUpper + "/systemd/system" }
        /// The login: not root, auto-ssl runs under sudo.
        public static let user = "autossl"
    }

    public private(set) var hosts: [Host] = []
    public let directory: TemporaryDirectory
    public var clientKey: String { directory.file("client_ed25519") }
    public var knownHosts: String { directory.file("known_hosts") }
    /// A program for `--ssh-command`: ssh with the lab's key and known_hosts, nothing of ~/.ssh.
    public var sshCommand: String { directory.file("ssh") }
    private var daemons: [pid_t] = []
    /// Each host's sshd (its namespaces, for `asRoot`), by index.
    private var daemonOf: [Int: pid_t] = [:]
    private let tag = String(getpid())
    private var stopped = false

    /// Why this machine cannot run the lab, or nil.
    public static var missingRequirement: String? {
        if getuid() != 0 { return "needs root (network and mount namespaces)" }
        for tool in ["/usr/sbin/sshd", "/usr/lib/openssh/sftp-server", "/usr/bin/ssh", "/usr/bin/scp", "/usr/bin/ssh-keygen", "/usr/bin/unshare", "/usr/bin/nsenter",
                     "/usr/bin/sha256sum", "/usr/bin/sudo", "/usr/sbin/visudo", "/usr/sbin/useradd"]
        where !FileManager.default.isExecutableFile(atPath: tool) {
            return "\(tool) is missing (install openssh-server, openssh-client, util-linux, coreutils, sudo, passwd)"
        }
        if !["/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"].contains(where: FileManager.default.isExecutableFile(atPath:)) {
            return "ip is missing (install iproute2)"
        }
        return nil
    }

    /// `count` hosts; those in `sudoNeedsPassword` get sudo without NOPASSWD; those in `unknownKeys`
    /// are left out of known_hosts.
    public init(count: Int, sudoNeedsPassword: Set<Int> = [], unknownKeys: Set<Int> = []) throws {
        directory = TemporaryDirectory("auto-ssl-lab")
        // Others may only pass through (the login's home is in here); the lab's key is 0600.
        chmod(directory.path, 0o711)
        Self.removeStale()
        do {
            try check(runProcess("/usr/bin/ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "lab", "-f", clientKey]), "ssh-keygen")
            try """
                #!/bin/sh
                exec /usr/bin/ssh -F /dev/null -o UserKnownHostsFile=\(knownHosts) -o GlobalKnownHostsFile=/dev/null \
                -o IdentitiesOnly=yes -i \(clientKey) -o LogLevel=ERROR "$@"

                """.write(toFile: sshCommand, atomically: true, encoding: .utf8)
            chmod(sshCommand, 0o755)
            FileManager.default.createFile(atPath: knownHosts, contents: nil)
            for index in 1...count {
                let host = try start(index: index, sudoNeedsPassword: sudoNeedsPassword.contains(index))
                hosts.append(host)
                if !unknownKeys.contains(index) { try trustKey(of: host) }
            }
        } catch {
            stop()
            throw error
        }
    }

    /// Adds the host's key to known_hosts (what an operator does once, out of band).
    public func trustKey(of host: Host) throws {
        let key = try readFile(host.hostKey + ".pub").split(separator: " ").prefix(2).joined(separator: " ")
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: knownHosts))
        handle.seekToEndOfFile()
        handle.write(Data("\(host.address) \(key)\n".utf8))
        try handle.close()
    }

    func check(_ result: ProcessResult, _ what: String) throws {
        guard result.status == 0 else { throw TestFailure("\(what) failed: \(result)") }
    }

    func ip(_ arguments: [String]) throws {
        try check(runProcess("ip", arguments), "ip \(arguments.joined(separator: " "))")
    }

    private func start(index: Int, sudoNeedsPassword: Bool) throws -> Host {
        let root = directory.file("h\(index)")
        let host = Host(index: index, namespace: "autossl-h\(index)-\(tag)", root: root)
        for sub in ["etc-upper", "etc-work", "var-upper", "var-work", "bin"] {
            try FileManager.default.createDirectory(atPath: root + "/" + sub, withIntermediateDirectories: true)
        }
        try check(runProcess("/usr/bin/ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "h\(index)", "-f", host.hostKey]), "ssh-keygen")
        try readFile(clientKey + ".pub").write(toFile: root + "/authorized_keys", atomically: true, encoding: .utf8)
        // What docs/fleet.md tells operators to put in /etc/sudoers.d/auto-ssl; without NOPASSWD
        // for a host whose sudo wants a password.
        let rule = sudoNeedsPassword
            ? "\(Host.user) ALL=(root) /usr/local/bin/auto-ssl, /bin/sh\n"
            : "\(Host.user) ALL=(root) NOPASSWD: /usr/local/bin/auto-ssl, /bin/sh\n"
        try rule.write(toFile: root + "/sudoers", atomically: true, encoding: .utf8)
        try """
            ListenAddress \(host.address):22
            HostKey \(host.hostKey)
            AuthorizedKeysFile .ssh/authorized_keys
            PermitRootLogin no
            AllowUsers \(Host.user)
            PasswordAuthentication no
            KbdInteractiveAuthentication no
            UsePAM no
            StrictModes no
            PidFile none
            Subsystem sftp /usr/lib/openssh/sftp-server

            """.write(toFile: root + "/sshd_config", atomically: true, encoding: .utf8)

        let veth = "asl\(tag.suffix(6))h\(index)"
        try ip(["netns", "add", host.namespace])
        try ip(["link", "add", veth, "type", "veth", "peer", "name", veth + "p"])
        try ip(["link", "set", veth + "p", "netns", host.namespace])
        try ip(["addr", "add", host.gateway + "/24", "dev", veth])
        try ip(["link", "set", veth, "up"])
        for arguments in [
            ["addr", "add", host.address + "/24", "dev", veth + "p"], ["link", "set", veth + "p", "up"], ["link", "set", "lo", "up"],
            ["route", "add", "default", "via", host.gateway],
        ] {
            try ip(["netns", "exec", host.namespace, "ip"] + arguments)
        }
        // A password hash for the host whose sudo asks for one ("*": no password, but not locked,
        // which sshd without PAM would refuse).
        let password = sudoNeedsPassword ? "'$6$autosslLab$z/ZKo5v6HOnAiiJzYi3Jd4FUCR3zP1e52CKkP8Rf7uEbc6lilo6hI.zOlL0BG0VGYsYd0nJPQLvCSBGtwcPf61'" : "'*'"
        let user = Host.user
        let mounts = [
            "set -e",
            "mount -t overlay overlay -o lowerdir=/etc,upperdir=\(root)/etc-upper,workdir=\(root)/etc-work /etc",
            "mount -t overlay overlay -o lowerdir=/var/lib,upperdir=\(root)/var-upper,workdir=\(root)/var-work /var/lib",
            "mount -t tmpfs -o mode=0755 tmpfs /run",
            "mkdir -m 0755 /run/sshd",
            "mkdir -p /etc/auto-ssl /etc/ssl/auto-ssl /var/lib/auto-ssl",
            "mount --bind \(host.bin) /usr/local/bin",
            // -l: not in /var/log/lastlog and faillog (not this host's); only the overlay's /etc changes.
            "useradd -l -M -d \(host.home) -s /bin/sh -p \(password) \(user)",
            "install -d -m 0700 -o \(user) -g \(user) \(host.home) \(host.home)/.ssh",
            "install -m 0600 -o \(user) -g \(user) \(root)/authorized_keys \(host.home)/.ssh/authorized_keys",
            "visudo -cqf \(root)/sudoers",
            "install -m 0440 -o root -g root \(root)/sudoers /etc/sudoers.d/auto-ssl",
            "visudo -cq",
            "if grep -Eq '^[[:space:]]*Defaults.*requiretty' /etc/sudoers /etc/sudoers.d/*; then echo 'sudoers: requiretty is set' >&2; exit 1; fi",
            "exec /usr/sbin/sshd -D -e -f \(root)/sshd_config",
        ].joined(separator: "\n")
        // Not Foundation's Process: sshd closes the descriptors it inherits, which Foundation takes
        // for the child's exit and then blocks its process monitor waiting for it.
        let daemon = try Self.spawn(
            ["/usr/bin/env", "ip", "netns", "exec", host.namespace, "unshare", "--mount", "--propagation", "private", "sh", "-c", mounts],
            log: host.sshdLog)
        daemons.append(daemon)
        daemonOf[index] = daemon
        let deadline = Date().addingTimeInterval(15)
        while Date() < deadline {
            if ((try? readFile(host.sshdLog)) ?? "").contains("Server listening") { return host }
            var status: Int32 = 0
            if waitpid(daemon, &status, WNOHANG) == daemon { break }
            usleep(100_000)
        }
        throw TestFailure("sshd of host \(index) did not start: \((try? readFile(host.sshdLog)) ?? "")")
    }

    /// Runs `command` on the host as root (the lab's own access, for setting up and checking: not
    /// over ssh, which lets no root in; `nsenter` into the namespaces of the host's sshd).
    @discardableResult
    public func asRoot(_ host: Host, _ command: String) throws -> ProcessResult {
        guard let daemon = daemonOf[host.index] else { throw TestFailure("host \(host.index) has no sshd") }
        return try runProcess("/usr/bin/nsenter", ["-t", String(daemon), "-m", "-n", "/bin/sh", "-c", command])
    }

    public func stop() {
        guard !stopped else { return }
        stopped = true
        for daemon in daemons {
            kill(daemon, SIGTERM)
            var status: Int32 = 0
            let deadline = Date().addingTimeInterval(5)
            while waitpid(daemon, &status, WNOHANG) == 0 && Date() < deadline { usleep(20_000) }
            kill(daemon, SIGKILL)
            _ = waitpid(daemon, &status, WNOHANG)
        }
        for host in hosts { Self.removeNamespace(host.namespace) }
        // A host whose start failed half-way.
        Self.removeStale(matching: "-\(tag)")
    }

    /// Starts `arguments` with stdin from /dev/null and stdout + stderr appended to `log`.
    static func spawn(_ arguments: [String], log: String) throws -> pid_t {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, log, O_WRONLY | O_CREAT | O_APPEND, 0o600)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        // Nothing else: a descriptor another thread has open at this moment (the pipe of a
        // concurrent test's child) would otherwise stay open in sshd for the whole test, and that
        // test's read to end of file would wait for it.
        guard autossl_spawn_add_close_from(&actions, 3) == 0 else { throw TestFailure("posix_spawn_file_actions_addclosefrom_np failed") }
        var argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
        defer { for pointer in argv { free(pointer) } }
        var pid: pid_t = 0
        let result = posix_spawn(&pid, arguments[0], &actions, nil, &argv, environ)
        guard result == 0 else { throw TestFailure("could not start \(arguments[0]): \(String(cString: strerror(result)))") }
        return pid
    }

    static func removeNamespace(_ name: String) {
        if let pids = try? runProcess("ip", ["netns", "pids", name]) {
            for pid in pids.stdout.split(separator: "\n").compactMap({ Int32($0) }) { kill(pid, SIGKILL) }
        }
        usleep(100_000)
        _ = try? runProcess("ip", ["netns", "del", name])
    }

    /// Namespaces named autossl-h* (of this run with `matching`, else of any earlier run) and
    /// their links, so 10.231.N.0/24 is free.
    static func removeStale(matching: String = "") {
        // (`contains` of an empty string is false: the empty matching means every lab name.)
        func ours(_ name: String, _ part: some StringProtocol) -> Bool { part.isEmpty || name.contains(part) }
        let list = (try? runProcess("ip", ["netns", "list"]).stdout) ?? ""
        for line in list.split(separator: "\n") {
            let name = String(line.split(separator: " ").first ?? "")
            if name.hasPrefix("autossl-h") && ours(name, matching) { removeNamespace(name) }
        }
        let links = (try? runProcess("ip", ["-o", "link", "show"]).stdout) ?? ""
        for line in links.split(separator: "\n") {
            let fields = line.split(separator: " ")
            guard fields.count > 1 else { continue }
            let name = String(fields[1].split(separator: "@").first ?? "").trimmingCharacters(in: CharacterSet(charactersIn: ":"))
            let isLabLink = name.range(of: "^asl[0-9]+h[0-9]+$", options: .regularExpression) != nil
            if isLabLink && ours(name, matching.dropFirst()) { _ = try? runProcess("ip", ["link", "del", name]) }
        }
    }

    deinit { stop() }
}
