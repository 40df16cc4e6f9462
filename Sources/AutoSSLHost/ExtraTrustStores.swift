import AutoSSLCore
import Foundation

/// Opt-in trust stores beyond the system one: the NSS database browsers use on Linux (certutil from
/// libnss3-tools) and the Java cacerts keystore (keytool). Entries are named like the anchor file.
public struct ExtraTrustStores: Sendable {
    public enum Kind: String, Sendable, Codable, CaseIterable {
        case nss, java
    }

    let runner: CommandRunning
    let nssDatabase: String
    let home: String
    /// Whose NSS database it is when root works on it for another user (`sudo`): every command on
    /// it runs as that user (`setpriv`), so the files stay theirs and root never follows a link
    /// they control in their home.
    let owner: ServiceUser?

    public init(runner: CommandRunning = SystemCommandRunner(), home: String? = nil, owner: ServiceUser? = nil) {
        let browser = home.map { ($0, owner) } ?? Self.browserUser()
        self.runner = runner
        self.home = browser.0
        self.owner = browser.1
        self.nssDatabase = "sql:" + browser.0 + "/.pki/nssdb"
    }

    /// Whose browsers `--nss` means: under sudo, the user who ran sudo (the system store needs
    /// root, the browser database is theirs); otherwise this user, at $HOME.
    static func browserUser(environment: [String: String] = ProcessInfo.processInfo.environment) -> (String, ServiceUser?) {
        if geteuid() == 0, let name = environment["SUDO_USER"], !name.isEmpty, name != "root",
           let user = ServiceUser.lookup(name), let entry = getpwnam(name), let directory = entry.pointee.pw_dir {
            let home = String(cString: directory)
            if home.hasPrefix("/") { return (home, user) }
        }
        if let home = environment["HOME"], home.hasPrefix("/") { return (home, nil) }
        return (NSHomeDirectory(), nil)
    }

    static let javaPassword = "changeit"  // the JDK's documented default for cacerts; not a secret

    func require(_ tool: String, package: String) throws {
        guard runner.which(tool) != nil else {
            throw AutoSSLError(.missingDependency, "\(tool) is not installed", hint: "install \(package)")
        }
    }

    func run(_ arguments: [String]) -> CommandResult? {
        runner.run(arguments[0], Array(arguments.dropFirst()), timeout: 60)
    }

    /// Root working on another user's database (under sudo).
    var forAnotherUser: Bool { owner.map { !$0.isRoot } ?? false }

    /// `command` as the database's user: through `setpriv` when root works for another user,
    /// as it is otherwise.
    func asBrowserUser(_ command: [String]) -> [String] {
        guard let owner, forAnotherUser else { return command }
        return ["setpriv", "--reuid=\(owner.uid)", "--regid=\(owner.gid)", "--init-groups", "--"] + command
    }

    public func commands(install kind: Kind, name: String, file: String) -> [[String]] {
        switch kind {
        case .nss:
            return [asBrowserUser(["certutil", "-d", nssDatabase, "-A", "-t", "C,,", "-n", name, "-i", file])]
        case .java:
            return [["keytool", "-importcert", "-noprompt", "-trustcacerts", "-cacerts", "-storepass", Self.javaPassword,
                     "-alias", name, "-file", file]]
        }
    }

    public func install(_ kind: Kind, name: String, file: String) throws {
        switch kind {
        case .nss:
            try require("certutil", package: "libnss3-tools")
            if forAnotherUser { try require("setpriv", package: "util-linux") }
            let directory = String(nssDatabase.dropFirst(4))
            if !FileManager.default.fileExists(atPath: directory + "/cert9.db") {
                // Made by the database's user (under sudo, the one who ran it): theirs, mode 0700
                // like the browsers make it, and the root can be read by that user (0644).
                guard let made = run(asBrowserUser(["mkdir", "-p", "-m", "0700", directory])), made.status == 0 else {
                    throw AutoSSLError.general(
                        "could not create the browser database directory \(directory)" + (owner.map { " as \($0.name)" } ?? ""),
                        hint: "check that \(home) exists and belongs to its user")
                }
                _ = run(asBrowserUser(["certutil", "-d", nssDatabase, "-N", "--empty-password"]))
            }
        case .java:
            try require("keytool", package: "a Java runtime (default-jre-headless)")
        }
        if names(in: kind).contains(name) { return }  // idempotent
        for command in commands(install: kind, name: name, file: file) {
            guard let result = run(command), result.status == 0 else {
                throw AutoSSLError.general("`\(command[0])` could not add the root to the \(kind.rawValue) store")
            }
        }
    }

    /// auto-ssl entries in the store (empty when the tool is missing).
    public func names(in kind: Kind) -> [String] {
        let output: String?
        switch kind {
        case .nss:
            guard runner.which("certutil") != nil else { return [] }
            output = run(asBrowserUser(["certutil", "-d", nssDatabase, "-L"]))?.output
        case .java:
            guard runner.which("keytool") != nil else { return [] }
            output = run(["keytool", "-list", "-cacerts", "-storepass", Self.javaPassword])?.output
        }
        return (output ?? "").split(separator: "\n").compactMap { line in
            let first = line.split(whereSeparator: { $0 == " " || $0 == "," }).first.map(String.init) ?? ""
            return first.hasPrefix("auto-ssl-") ? first : nil
        }
    }

    public func remove(_ kind: Kind, name: String) {
        switch kind {
        case .nss: _ = run(asBrowserUser(["certutil", "-d", nssDatabase, "-D", "-n", name]))
        case .java: _ = run(["keytool", "-delete", "-cacerts", "-storepass", Self.javaPassword, "-alias", name])
        }
    }
}
