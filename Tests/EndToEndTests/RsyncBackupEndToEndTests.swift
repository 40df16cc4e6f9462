import Foundation
import Testing
import TestSupport

/// `ca backup --dest-type rsync` to an OpenSSH server the test starts on loopback.
@Suite(.serialized) struct RsyncBackupEndToEndTests {
    /// sshd on a free loopback port, accepting one generated key for the current user.
    final class LoopbackSSHD: @unchecked Sendable {
        let directory = TemporaryDirectory("auto-ssl-sshd")
        let port = freeLoopbackPort()
        var clientKey: String { directory.file("client_key") }
        var user: String { (try? runProcess("id", ["-un"]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)) ?? "root" }
        var sshCommand: String {
            "ssh -p \(port) -i \(clientKey) -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o BatchMode=yes -o LogLevel=ERROR"
        }

        init() throws {
            for name in ["host_key", "client_key"] {
                let made = try runProcess("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", directory.file(name)])
                guard made.status == 0 else { throw TestFailure("ssh-keygen: \(made)") }
            }
            _ = try directory.write("authorized_keys", try readFile(clientKey + ".pub"))
            try FileManager.default.createDirectory(atPath: "/run/sshd", withIntermediateDirectories: true)
            let config = try directory.write("sshd_config", """
                Port \(port)
                ListenAddress 127.0.0.1
                HostKey \(directory.file("host_key"))
                PidFile \(directory.file("sshd.pid"))
                AuthorizedKeysFile \(directory.file("authorized_keys"))
                PasswordAuthentication no
                KbdInteractiveAuthentication no
                UsePAM no
                StrictModes no
                PermitRootLogin prohibit-password

                """)
            // sshd daemonises (closing its stdio), so no pipe of ours stays open in it; it is stopped via its pid file.
            let started = try runProcess("/usr/sbin/sshd", ["-f", config, "-E", directory.file("sshd.log")])
            guard started.status == 0 else { throw TestFailure("sshd: \(started)") }
            for _ in 0..<100 {
                let probe = try runProcess("sh", ["-c", "\(sshCommand) \(user)@127.0.0.1 true"])
                if probe.status == 0 { return }
                usleep(100_000)
            }
            throw TestFailure("sshd did not accept the test key: \((try? readFile(directory.file("sshd.log"))) ?? "")")
        }

        deinit {
            if let text = try? readFile(directory.file("sshd.pid")),
               let pid = Int32(text.trimmingCharacters(in: .whitespacesAndNewlines)) {
                kill(pid, SIGTERM)
            }
        }
    }

    static var canRunSSHD: Bool {
        geteuid() == 0 && FileManager.default.isExecutableFile(atPath: "/usr/sbin/sshd")
            && FileManager.default.isExecutableFile(atPath: "/usr/bin/rsync")
    }

    @Test(.enabled(if: canRunSSHD, "needs root, sshd and rsync (CI installs them)"))
    func backupIsCopiedWithRsyncOverSSH() throws {
        let sshd = try LoopbackSSHD()
        let ca = try RunningCA()
        let remote = TemporaryDirectory("auto-ssl-remote")
        let passphraseFile = try ca.sandbox.root.write("pp", BackupEndToEndTests.passphrase + "\n")
        let result = try ca.sandbox.run([
            "ca", "backup", "--dest-type", "rsync", "--rsync-target", "\(sshd.user)@127.0.0.1:\(remote.path)/",
            "--ssh-command", sshd.sshCommand, "--passphrase-file", passphraseFile,
        ])
        #expect(result.status == 0, "\(result)")
        let files = try FileManager.default.contentsOfDirectory(atPath: remote.path)
        #expect(files.count == 1 && files[0].hasPrefix("auto-ssl-backup-") && files[0].hasSuffix(".enc"), "\(files)")
        let copied = remote.file(files.first ?? "missing")
        #expect(fileMode(copied) == 0o600)
        #expect(result.stdout.contains("copied with rsync to \(sshd.user)@127.0.0.1:\(remote.path)/\(files.first ?? "")"), "\(result)")
        let verified = try ca.sandbox.run(["ca", "backup", "verify", copied, "--passphrase-file", passphraseFile])
        #expect(verified.status == 0, "\(verified)")
        let listing = try runProcess("sh", [
            "-c", "openssl enc -d -aes-256-cbc -pbkdf2 -md sha256 -iter 600000 -in \(copied) -pass file:\(passphraseFile) | tar -tz",
        ])
        #expect(listing.status == 0 && listing.stdout.contains("manifest.json"), "\(listing)")
        let status = try ca.sandbox.run(["ca", "status"])
        #expect(status.stdout.contains("last succeeded"), "the last backup is reported: \(status)")

        // A named remote file and a kept local copy.
        let local = ca.sandbox.root.file("local.enc")
        let named = try ca.sandbox.run([
            "ca", "backup", "--dest-type", "rsync", "--rsync-target", "\(sshd.user)@127.0.0.1:\(remote.path)/named.enc",
            "--ssh-command", sshd.sshCommand, "--passphrase-file", passphraseFile, "--output", local,
        ])
        #expect(named.status == 0, "\(named)")
        #expect(try Data(contentsOf: URL(fileURLWithPath: remote.file("named.enc"))) == (try Data(contentsOf: URL(fileURLWithPath: local))))

        // Refused login and a malformed target: clear errors, nothing new on the remote side.
        let wrongPort = try ca.sandbox.run([
            "ca", "backup", "--dest-type", "rsync", "--rsync-target", "\(sshd.user)@127.0.0.1:\(remote.path)/",
            "--ssh-command", sshd.sshCommand.replacingOccurrences(of: "-p \(sshd.port)", with: "-p \(freeLoopbackPort())"),
            "--passphrase-file", passphraseFile,
        ])
        #expect(wrongPort.status == 5 && wrongPort.stderr.contains("rsync"), "\(wrongPort)")
        let malformed = try ca.sandbox.run([
            "ca", "backup", "--dest-type", "rsync", "--rsync-target", "/just/a/path", "--passphrase-file", passphraseFile,
        ])
        #expect(malformed.status == 2, "\(malformed)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: remote.path).count == 2)
        let failedStatus = try ca.sandbox.run(["ca", "status"])
        #expect(failedStatus.stdout.lowercased().contains("fail"), "the failed run is reported: \(failedStatus)")
    }
}
