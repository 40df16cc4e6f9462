import Foundation
import Testing
import TestSupport

/// Backups of a running CA: recoverable with openssl + tar, restorable into empty directories with
/// everything the CA knew, and refused cleanly when the passphrase or the file is wrong.
@Suite(.serialized) struct BackupEndToEndTests {
    static let passphrase = "a-long-backup-passphrase-42"

    @Test func backupRunningCARecoverWithOpenSSLAndRestoreElsewhere() throws {
        let ca = try RunningCA()
        let fingerprint = try ca.fingerprint
        let out = ca.sandbox.root
        func issue(_ name: String) throws {
            let result = try ca.sandbox.run([
                "cert", "issue", "--ca-url", ca.url, "--fingerprint", fingerprint, "--san", name + ".internal",
                "--out-cert", out.file(name + ".crt"), "--out-key", out.file(name + ".key"),
                "--password-file", ca.sandbox.configDir + "/provisioner-password",
            ])
            #expect(result.status == 0, "\(result)")
        }
        try issue("kept")
        try issue("revoked")
        let revoke = try ca.sandbox.run([
            "cert", "revoke", "--ca-url", ca.url, "--fingerprint", fingerprint, "--cert", out.file("revoked.crt"),
            "--key", out.file("revoked.key"), "--reason-code", "1",
        ])
        #expect(revoke.status == 0, "\(revoke)")
        let revokedSerial = try runProcess("openssl", ["x509", "-in", out.file("revoked.crt"), "-noout", "-serial"]).stdout
            .split(separator: "=").last!.trimmingCharacters(in: .whitespacesAndNewlines).lowercased()

        // An archived intermediate, whose certificate is public and whose key is not.
        let rotated = try ca.sandbox.run(["ca", "rotate-intermediate", "--yes"])
        #expect(rotated.status == 0, "\(rotated)")

        // Back up while the server runs.
        let passphraseFile = try out.write("pp", Self.passphrase + "\n")
        let backupFile = out.file("ca-backup.enc")
        let backup = try ca.sandbox.run(["ca", "backup", "--output", backupFile, "--passphrase-file", passphraseFile])
        #expect(backup.status == 0, "\(backup)")
        #expect(fileMode(backupFile) == 0o600)
        #expect(backup.stdout.contains("openssl enc -d -aes-256-cbc -pbkdf2 -md sha256 -iter 600000 -in \(backupFile) | tar -xz"))
        #expect(try ca.sandbox.run(["ca", "backup", "verify", backupFile, "--passphrase-file", passphraseFile]).status == 0)

        // openssl and tar alone recover the files.
        let recovered = out.file("recovered")
        try FileManager.default.createDirectory(atPath: recovered, withIntermediateDirectories: true)
        let manual = try runProcess("sh", ["-c", "openssl enc -d -aes-256-cbc -pbkdf2 -md sha256 -iter 600000 -in \(backupFile) -pass file:\(passphraseFile) | tar -xz -C \(recovered)"])
        #expect(manual.status == 0, "\(manual)")
        #expect(try readFile(recovered + "/auto-ssl-backup/ca/certs/root_ca.crt") == (try readFile(ca.rootPath)))
        let key = try runProcess("openssl", [
            "pkey", "-in", recovered + "/auto-ssl-backup/ca/secrets/intermediate_ca_key",
            "-passin", "file:" + recovered + "/auto-ssl-backup/config/ca-password", "-noout",
        ])
        #expect(key.status == 0, "\(key)")
        #expect(FileManager.default.fileExists(atPath: recovered + "/auto-ssl-backup/manifest.json"))
        #expect(ca.stop() == 0)

        // Restore into empty directories on a new port; the restored CA is the same CA.
        let target = Sandbox()
        let port = freeLoopbackPort()
        let restore = try target.run([
            "ca", "restore", "--input", backupFile, "--passphrase-file", passphraseFile, "--new-address", "127.0.0.1:\(port)",
        ])
        #expect(restore.status == 0, "\(restore)")
        // The same modes as the CA that was backed up, archived intermediates included.
        let archived = try FileManager.default.contentsOfDirectory(atPath: target.caDir + "/certs/intermediates")
        #expect(archived.count == 1 && archived.allSatisfy { fileMode(target.caDir + "/certs/intermediates/" + $0) == 0o644 }, "\(archived)")
        #expect(fileMode(target.caDir + "/certs/intermediates") == 0o755 && fileMode(target.caDir + "/secrets/intermediates") == 0o700)
        let archivedKeys = try FileManager.default.contentsOfDirectory(atPath: target.caDir + "/secrets/intermediates")
        #expect(archivedKeys.count == 1 && archivedKeys.allSatisfy { fileMode(target.caDir + "/secrets/intermediates/" + $0) == 0o600 })
        // The backup held the stored CA password: the next steps start the CA without a password file.
        #expect(restore.stdout.contains("Start the CA:          auto-ssl ca serve   (it reads the CA password from \(target.configDir)/ca-password)"), "\(restore)")
        #expect(restore.stdout.contains("sudo auto-ssl ca install-service --now"), "\(restore)")
        let server = Process()
        server.executableURL = URL(fileURLWithPath: autoSSLBinaryPath())
        server.arguments = ["ca", "serve"]
        server.environment = target.environment
        let log = target.root.file("serve.log")
        FileManager.default.createFile(atPath: log, contents: nil)
        server.standardError = FileHandle(forWritingAtPath: log)
        server.standardOutput = FileHandle.nullDevice
        try server.run()
        defer { if server.isRunning { kill(server.processIdentifier, SIGTERM); server.waitUntilExit() } }
        for _ in 0..<100 where !((try? readFile(log))?.contains("listening on") ?? false) { usleep(100_000) }
        let url = "https://127.0.0.1:\(port)"
        let status = try target.run(["ca", "status", "--json"])
        #expect(status.stdout.contains("\"fingerprint\" : \"\(fingerprint)\""), "\(status)")
        let serveLog = (try? readFile(log)) ?? ""
        #expect(status.stdout.contains("running"), "\(status)\n\(serveLog)")
        // The revoked certificate was signed by the intermediate archived before the backup: on its CRL.
        let archivedSerial = archived.first.map { String($0.dropLast(".crt".count)) } ?? "?"
        let crl = try runProcess("sh", ["-c", "curl -sf --cacert \(target.caDir)/certs/root_ca.crt '\(url)/crl/\(archivedSerial)?pem' | openssl crl -noout -text"])
        #expect(crl.stdout.lowercased().replacingOccurrences(of: " ", with: "").contains("serialnumber:" + revokedSerial), "\(crl)")
        let renew = try target.run([
            "cert", "renew", "--ca-url", url, "--fingerprint", fingerprint, "--cert", out.file("kept.crt"),
            "--key", out.file("kept.key"), "--out-cert", out.file("kept2.crt"),
        ])
        #expect(renew.status == 0, "\(renew)")
        let refused = try target.run([
            "cert", "renew", "--ca-url", url, "--fingerprint", fingerprint, "--cert", out.file("revoked.crt"),
            "--key", out.file("revoked.key"), "--out-cert", out.file("revoked2.crt"),
        ])
        #expect(refused.status != 0 && refused.stderr.contains("revoked"), "\(refused)")
        let list = try target.run(["ca", "certs", "list", "--revoked", "--json"])
        #expect(list.stdout.contains(revokedSerial.count % 2 == 1 ? "0" + revokedSerial : revokedSerial))
    }

    /// A backup never replaces what is not an earlier backup: the passphrase file, the CA's own
    /// files, or any other file (exit 2, nothing written); an earlier backup is replaced. While
    /// `ca serve` runs, `ca restore --force`, `ca init --force` and `ca reset` refuse with exit 7
    /// (the server would go on writing to the moved database). A bound below the archive's size is
    /// refused with the option that raises it, which then restores it.
    @Test func backupsReplaceOnlyBackupsAndNothingReplacesARunningCA() throws {
        let ca = try RunningCA()
        let out = ca.sandbox.root
        let passphraseFile = try out.write("pp", Self.passphrase + "\n")
        func backup(_ output: String) throws -> ProcessResult {
            try ca.sandbox.run(["ca", "backup", "--output", output, "--passphrase-file", passphraseFile])
        }
        let config = ca.sandbox.configDir + "/config.yaml"
        let configBefore = try readFile(config)
        for (target, words) in [
            (passphraseFile, "is the passphrase file"), (config, "holds the CA's own files"),
            (ca.sandbox.caDir + "/db/auto-ssl.sqlite", "holds the CA's own files"), (try out.write("notes.txt", "keep me\n"), "not an auto-ssl backup"),
        ] {
            let refused = try backup(target)
            #expect(refused.status == 2 && refused.stderr.contains(words), "\(target): \(refused)")
        }
        #expect(try readFile(passphraseFile) == Self.passphrase + "\n" && readFile(config) == configBefore)
        #expect(try readFile(out.file("notes.txt")) == "keep me\n")
        // 2 MiB that does not compress, so that the archive unpacks to more than a 1 MiB bound.
        var noise = [UInt8](repeating: 0, count: 2 << 20)
        for index in noise.indices { noise[index] = UInt8.random(in: 0...255) }
        try Data(noise).write(to: URL(fileURLWithPath: ca.sandbox.caDir + "/noise.bin"))
        let file = out.file("ca.enc")
        #expect(try backup(file).status == 0)
        #expect(try backup(file).status == 0, "an earlier backup is replaced")
        // Backups into a directory one right after the other (often within one second) are all kept.
        let many = out.file("many")
        try FileManager.default.createDirectory(atPath: many, withIntermediateDirectories: false)
        for _ in 0..<3 { #expect(try backup(many + "/").status == 0) }
        #expect(try FileManager.default.contentsOfDirectory(atPath: many).count == 3)

        let before = try snapshotTree(ca.sandbox.caDir)
        let restore = try ca.sandbox.run(["ca", "restore", "--input", file, "--passphrase-file", passphraseFile, "--force"])
        #expect(restore.status == 7 && restore.stderr.contains("the CA is running"), "\(restore)")
        let reinit = try ca.sandbox.run(["ca", "init", "--non-interactive", "--address", "127.0.0.1:9443", "--force"])
        #expect(reinit.status == 7, "\(reinit)")
        let reset = try ca.sandbox.run(["ca", "reset", "--yes"])
        #expect(reset.status == 7, "\(reset)")
        let deleted = try ca.sandbox.run(["ca", "reset", "--yes", "--no-backup"])
        #expect(deleted.status == 7, "\(deleted)")
        #expect(try snapshotTree(ca.sandbox.caDir).keys.sorted() == before.keys.sorted(), "the running CA's directory was moved")

        func verify(_ mib: String) throws -> ProcessResult {
            try ca.sandbox.run(["ca", "backup", "verify", file, "--passphrase-file", passphraseFile, "--max-unpacked-mib", mib])
        }
        let tooSmall = try verify("1")
        #expect(tooSmall.status == 1 && tooSmall.stderr.contains("more than 1 MiB") && tooSmall.stderr.contains("--max-unpacked-mib"), "\(tooSmall)")
        #expect(try verify("4").status == 0)
        let outOfRange = try verify("0")
        #expect(outOfRange.status == 2 && outOfRange.stderr.contains("--max-unpacked-mib must be"), "\(outOfRange)")
        #expect(ca.stop() == 0)
        // Disaster recovery: a damaged config.yaml does not stop `restore --force`; the damaged file
        // goes with the CA it replaces.
        try "ca: [\u{1}garbage\n".write(toFile: config, atomically: true, encoding: .utf8)
        let status = try ca.sandbox.run(["ca", "status"])
        #expect(status.status == 1 && status.stderr.contains("ca restore --force"), "\(status)")
        let stopped = try ca.sandbox.run(["ca", "restore", "--input", file, "--passphrase-file", passphraseFile, "--force", "--max-unpacked-mib", "4"])
        #expect(stopped.status == 0, "\(stopped)")
        #expect(FileManager.default.fileExists(atPath: ca.sandbox.caDir + "/noise.bin"))
        #expect(try readFile(config) == configBefore)
        let aside = try FileManager.default.contentsOfDirectory(atPath: ca.sandbox.dataDir).filter { $0.hasPrefix("ca.replaced-") }
        #expect(aside.count == 1 && (try? readFile(ca.sandbox.dataDir + "/" + aside[0] + "/previous-config/config.yaml")) == "ca: [\u{1}garbage\n", "\(aside)")
        #expect(try ca.sandbox.run(["ca", "status"]).status == 0)
    }

    @Test func wrongPassphraseAndDamagedFilesChangeNothing() throws {
        let source = Sandbox()
        #expect(try source.run(["ca", "init", "--non-interactive", "--address", "127.0.0.1:9443"]).status == 0)
        let passphraseFile = try source.root.write("pp", Self.passphrase + "\n")
        let file = source.root.file("b.enc")
        #expect(try source.run(["ca", "backup", "--output", file, "--passphrase-file", passphraseFile]).status == 0)

        let target = Sandbox()
        #expect(try target.run(["ca", "init", "--non-interactive", "--address", "127.0.0.1:9444"]).status == 0)
        let before = try snapshotTree(target.root.path)
        let wrong = try target.root.write("wrong", "not-the-right-passphrase\n")
        let refused = try target.run(["ca", "restore", "--input", file, "--passphrase-file", wrong, "--force"])
        #expect(refused.status == 1, "\(refused)")
        var bytes = Array(try Data(contentsOf: URL(fileURLWithPath: file)))
        bytes[bytes.count / 2] ^= 0x01
        let damaged = target.root.file("damaged.enc")
        try Data(bytes).write(to: URL(fileURLWithPath: damaged))
        let refusedDamaged = try target.run(["ca", "restore", "--input", damaged, "--passphrase-file", passphraseFile, "--force"])
        #expect(refusedDamaged.status == 1, "\(refusedDamaged)")
        #expect(try target.run(["ca", "backup", "verify", damaged, "--passphrase-file", passphraseFile]).status == 1)
        var afterAll = try snapshotTree(target.root.path)
        for key in afterAll.keys where key.hasPrefix("wrong") || key.hasPrefix("damaged") { afterAll.removeValue(forKey: key) }
        #expect(afterAll == before.filter { !$0.key.hasPrefix("wrong") })
        // An existing CA is never replaced without --force; a short passphrase is refused.
        let noForce = try target.run(["ca", "restore", "--input", file, "--passphrase-file", passphraseFile])
        #expect(noForce.status == 1 && noForce.stderr.contains("--force"), "\(noForce)")
        let short = try target.root.write("short", "short\n")
        #expect(try source.run(["ca", "backup", "--output", source.root.file("x.enc"), "--passphrase-file", short]).status == 2)
        // With --force the old CA is moved aside and the backup's CA takes its place.
        let forced = try target.run(["ca", "restore", "--input", file, "--passphrase-file", passphraseFile, "--force"])
        #expect(forced.status == 0 && forced.stdout.contains("moved to"), "\(forced)")
        #expect(try readFile(target.caDir + "/certs/root_ca.crt") == (try readFile(source.caDir + "/certs/root_ca.crt")))
    }

    @Test func restoresAHandMadeOpenSSLArchive() throws {
        let source = Sandbox()
        #expect(try source.run(["ca", "init", "--non-interactive", "--address", "127.0.0.1:9443"]).status == 0)
        // An administrator's own archive of the same layout (no manifest), encrypted with openssl enc.
        let layout = source.root.file("layout")
        let script = """
            set -e
            mkdir -p \(layout)/config
            cp -a \(source.caDir) \(layout)/ca
            cp \(source.configDir)/config.yaml \(source.configDir)/ca-password \(layout)/config/
            tar -C \(layout) -czf - ca config | openssl enc -aes-256-cbc -pbkdf2 -md sha256 -iter 600000 -salt -pass pass:\(Self.passphrase) -out \(source.root.file("manual.enc"))
            """
        #expect(try runProcess("sh", ["-c", script]).status == 0)
        let passphraseFile = try source.root.write("pp", Self.passphrase + "\n")
        let target = Sandbox()
        let restored = try target.run([
            "ca", "restore", "--input", source.root.file("manual.enc"), "--passphrase-file", passphraseFile, "--allow-no-manifest",
        ])
        #expect(restored.status == 0, "\(restored)")
        #expect(restored.stderr.contains("no manifest"))
        #expect(try target.run(["ca", "status"]).status == 0)
        // Restored certificates are readable, secrets are not, whatever the archive said.
        #expect(fileMode(target.caDir + "/certs/root_ca.crt") == 0o644 && fileMode(target.caDir + "/secrets/root_ca_key") == 0o600)
        #expect(fileMode(target.caDir + "/secrets") == 0o700 && fileMode(target.caDir) == 0o755)
        let verified = try target.run(["ca", "backup", "verify", source.root.file("manual.enc"), "--passphrase-file", passphraseFile, "--allow-no-manifest"])
        #expect(verified.status == 0 && verified.stdout.contains("no manifest"), "\(verified)")
        // The same made from inside the directory (`tar -C layout .`: every member starts with "./").
        let dotted = try Self.handMadeArchive(from: source, prepare: ":", members: ".")
        let third = Sandbox()
        let fromDot = try third.run(["ca", "restore", "--input", dotted, "--passphrase-file", passphraseFile, "--allow-no-manifest"])
        #expect(fromDot.status == 0, "\(fromDot)")
        #expect(try readFile(third.caDir + "/certs/root_ca.crt") == (try readFile(source.caDir + "/certs/root_ca.crt")))
    }

    @Test func anArchiveWithoutManifestIsRefusedUnlessAllowed() throws {
        let source = Sandbox()
        #expect(try source.run(["ca", "init", "--non-interactive", "--address", "127.0.0.1:9443"]).status == 0)
        let archive = try Self.handMadeArchive(from: source, prepare: ":")
        let passphraseFile = try source.root.write("pp", Self.passphrase + "\n")
        let target = Sandbox()
        let before = try snapshotTree(target.root.path)
        let refused = try target.run(["ca", "restore", "--input", archive, "--passphrase-file", passphraseFile])
        #expect(refused.status == 1 && refused.stderr.contains("no manifest.json") && refused.stderr.contains("--allow-no-manifest"), "\(refused)")
        let verify = try target.run(["ca", "backup", "verify", archive, "--passphrase-file", passphraseFile])
        #expect(verify.status == 1 && verify.stderr.contains("--allow-no-manifest"), "\(verify)")
        #expect(try snapshotTree(target.root.path) == before)
    }

    /// A CA's ca/ and config/ copied to a fresh directory, changed by the shell commands `prepare`
    /// (run inside it), packed by GNU tar (`members`, extra `tarOptions`) and encrypted with
    /// `openssl enc -aes-256-cbc -salt -pbkdf2 -md sha256 -iter 600000`, the format backups use.
    static func handMadeArchive(
        from source: Sandbox, prepare: String, members: String = "ca config", tarOptions: String = ""
    ) throws -> String {
        let layout = source.root.file("layout-" + UUID().uuidString)
        let output = layout + ".enc"
        let script = """
            set -e
            mkdir -p '\(layout)/config'
            cp -a '\(source.caDir)' '\(layout)/ca'
            cp '\(source.configDir)/config.yaml' '\(source.configDir)/ca-password' '\(layout)/config/'
            cd '\(layout)'
            \(prepare)
            tar --sort=name \(tarOptions) -C '\(layout)' -czf - \(members) \\
              | openssl enc -aes-256-cbc -salt -pbkdf2 -md sha256 -iter 600000 -pass 'pass:\(passphrase)' -out '\(output)'
            """
        let made = try runProcess("sh", ["-c", script])
        guard made.status == 0 else { throw TestFailure("could not make the archive: \(made)") }
        return output
    }

    struct HostileArchive: CustomTestStringConvertible, Sendable {
        var name: String
        var prepare: String
        var members = "ca config"
        var tarOptions = ""
        var refusal: String
        var needsRoot = false
        var testDescription: String { name }
    }

    static let outsideFile = "/tmp/auto-ssl-restore-abs-\(getpid())"

    static let hostileArchives: [HostileArchive] = [
        HostileArchive(name: "symlink", prepare: "ln -s /etc/passwd ca/x", refusal: "\"ca/x\" is refused: it is a symbolic link"),
        HostileArchive(
            name: "dot-dot", prepare: "echo escaped > ../escape", members: "ca config ../escape", tarOptions: "--absolute-names", refusal: "\"../escape\" is refused: its path has a .. component"),
        HostileArchive(
            name: "absolute", prepare: "echo absolute > \(outsideFile)", members: "ca config \(outsideFile)",
            tarOptions: "--absolute-names", refusal: "\"\(outsideFile)\" is refused: its path is absolute"),
        HostileArchive(
            name: "hard link", prepare: "ln ca/certs/root_ca.crt ca/certs/zz-hard",
            refusal: "\"ca/certs/zz-hard\" is refused: it is a hard link"),
        HostileArchive(name: "fifo", prepare: "mkfifo ca/fifo", refusal: "\"ca/fifo\" is refused: it is a FIFO"),
        HostileArchive(
            name: "device", prepare: "mknod ca/null c 1 3", refusal: "\"ca/null\" is refused: it is a character device", needsRoot: true),
        HostileArchive(
            name: "outside ca and config", prepare: "mkdir -p etc/cron.d && echo '* * * * * root id' > etc/cron.d/x",
            members: "ca config etc", refusal: "\"etc\" is refused: a backup holds only"),
        HostileArchive(
            name: "directory in config", prepare: "mkdir config/sub && echo x > config/sub/y",
            refusal: "\"config/sub\" is refused: a backup holds only"),
        HostileArchive(
            name: "gzip bomb", prepare: "truncate -s 300M ca/big",
            refusal: "unpacks to more than 256 MiB"),
    ]

    @Test(arguments: hostileArchives)
    func restoreRefusesAnArchiveMemberThatIsNotAPlainFileOrDirectoryInTheLayout(_ hostile: HostileArchive) throws {
        if hostile.needsRoot && geteuid() != 0 { return }  // mknod needs root; the FIFO case covers special files otherwise
        let source = Sandbox()
        #expect(try source.run(["ca", "init", "--non-interactive", "--address", "127.0.0.1:9443"]).status == 0)
        let archive = try Self.handMadeArchive(
            from: source, prepare: hostile.prepare, members: hostile.members, tarOptions: hostile.tarOptions)
        unlink(Self.outsideFile)
        defer { unlink(Self.outsideFile) }
        let passphraseFile = try source.root.write("pp", Self.passphrase + "\n")
        // A target with a CA of its own, restored over with --force: a refused archive changes nothing.
        let target = Sandbox()
        #expect(try target.run(["ca", "init", "--non-interactive", "--address", "127.0.0.1:9444"]).status == 0)
        let before = try snapshotTree(target.root.path)
        let passwd = try readFile("/etc/passwd")
        for command in [["ca", "restore", "--input", archive, "--force"], ["ca", "backup", "verify", archive]] {
            let refused = try target.run(command + ["--passphrase-file", passphraseFile, "--allow-no-manifest"])
            #expect(refused.status == 1 && refused.stderr.contains(hostile.refusal), "\(hostile.name): \(refused)")
            #expect(refused.stderr.contains("nothing was changed"), "\(refused)")
            #expect(try snapshotTree(target.root.path) == before, "\(hostile.name): the target changed")
        }
        #expect(!FileManager.default.fileExists(atPath: Self.outsideFile))
        #expect(!FileManager.default.fileExists(atPath: target.root.path + "/escape"))
        #expect(!FileManager.default.fileExists(atPath: target.dataDir + "/escape"))
        #expect(try readFile("/etc/passwd") == passwd)
    }
}

@Suite struct BackupScheduleEndToEndTests {
    @Test func scheduleWritesVerifiedUnitsAndRetentionKeepsExactlyN() throws {
        let sandbox = Sandbox()
        #expect(try sandbox.run(["ca", "init", "--non-interactive", "--address", "127.0.0.1:9443"]).status == 0)
        let passphraseFile = try sandbox.root.write("pp", "scheduled-backup-passphrase\n")
        let directory = sandbox.root.file("backups")
        let enabled = try sandbox.run([
            "ca", "backup-schedule", "--enable", "--schedule", "weekly", "--output", directory, "--retention", "3",
            "--passphrase-file", passphraseFile,
        ])
        #expect(enabled.status == 0, "\(enabled)")
        let service = try readFile(sandbox.systemdDir + "/auto-ssl-backup.service")
        let timer = try readFile(sandbox.systemdDir + "/auto-ssl-backup.timer")
        #expect(service.contains("Type=oneshot") && service.contains("ca backup --output \(directory) --retention 3 --passphrase-file \(passphraseFile)"))
        #expect(timer.contains("OnCalendar=weekly") && timer.contains("Persistent=true"))
        let scheduled = try JSONSerialization.jsonObject(with: Data(try sandbox.run(["ca", "status", "--json"]).stdout.utf8)) as? [String: Any]
        let backups = try #require(scheduled?["backups"] as? [String: Any])
        let schedule = try #require(backups["schedule"] as? [String: Any])
        #expect(schedule["schedule"] as? String == "weekly" && schedule["output_directory"] as? String == directory)
        #expect(schedule["retention"] as? Int == 3 && schedule["passphrase_file"] as? String == passphraseFile)
        #expect(backups["last_backup"] is NSNull, "no backup made yet: \(backups)")
        // Without --enable or --disable the command shows the schedule.
        let shown = try sandbox.run(["ca", "backup-schedule"])
        #expect(shown.status == 0 && shown.stdout.contains("weekly, into \(directory), keeping 3") && shown.stdout.contains("Last backup: none yet"), "\(shown)")
        let shownJSON = try sandbox.run(["ca", "backup-schedule", "--json"])
        #expect(shownJSON.status == 0 && shownJSON.stdout.contains("\"output_directory\" : \"\(directory)\""), "\(shownJSON)")
        #expect(try sandbox.run(["ca", "backup-schedule", "--retention", "2"]).status == 2, "options without --enable are refused")

        // What the timer runs, five times: exactly the newest three stay.
        var made: [String] = []
        for _ in 0..<5 {
            let run = try sandbox.run(["ca", "backup", "--output", directory, "--retention", "3", "--passphrase-file", passphraseFile])
            #expect(run.status == 0, "\(run)")
            made.append(contentsOf: try FileManager.default.contentsOfDirectory(atPath: directory).filter { !made.contains($0) })
            sleep(1)  // names carry the time to the second
        }
        let kept = try FileManager.default.contentsOfDirectory(atPath: directory).sorted()
        #expect(kept.count == 3 && kept == Array(made.sorted().suffix(3)), "\(kept) of \(made)")
        #expect(kept.allSatisfy { fileMode(directory + "/" + $0) == 0o600 })
        let status = try sandbox.run(["ca", "status"]).stdout
        #expect(status.contains("Backups:") && status.contains("last succeeded"), "\(status)")
        let last = try JSONSerialization.jsonObject(with: Data(try sandbox.run(["ca", "status", "--json"]).stdout.utf8)) as? [String: Any]
        let lastBackup = try #require((last?["backups"] as? [String: Any])?["last_backup"] as? [String: Any])
        #expect(lastBackup["succeeded"] as? Bool == true && lastBackup["time"] is String, "\(lastBackup)")

        // A failing run (wrong passphrase length) is reported by ca status and deletes nothing.
        let short = try sandbox.root.write("short", "short\n")
        #expect(try sandbox.run(["ca", "backup", "--output", directory, "--retention", "1", "--passphrase-file", short]).status == 2)
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory).count == 3)
        #expect(try sandbox.run(["ca", "status"]).stdout.contains("last FAILED"))

        let disabled = try sandbox.run(["ca", "backup-schedule", "--disable"])
        #expect(disabled.status == 0, "\(disabled)")
        #expect(!FileManager.default.fileExists(atPath: sandbox.systemdDir + "/auto-ssl-backup.timer"))
        let unscheduled = try JSONSerialization.jsonObject(with: Data(try sandbox.run(["ca", "status", "--json"]).stdout.utf8)) as? [String: Any]
        #expect((unscheduled?["backups"] as? [String: Any])?["schedule"] is NSNull)
        #expect(try sandbox.run(["ca", "backup-schedule"]).stdout.contains("Scheduled:   no"))
    }
}

@Suite struct S3BackupEndToEndTests {
    @Test func uploadToAndRestoreFromAnS3CompatibleServer() throws {
        // moto's S3 server from PyPI, on loopback, for this test only.
        let port = freeLoopbackPort()
        let server = Process()
        server.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        server.arguments = ["moto_server", "-H", "127.0.0.1", "-p", "\(port)"]
        server.standardOutput = FileHandle.nullDevice
        server.standardError = FileHandle.nullDevice
        try server.run()
        defer { kill(server.processIdentifier, SIGKILL); server.waitUntilExit() }  // moto ignores SIGTERM
        let endpoint = "http://127.0.0.1:\(port)"
        var ready = false
        for _ in 0..<100 where !ready {
            ready = (try? runProcess("curl", ["-sf", "-o", "/dev/null", endpoint]))?.status == 0
            if !ready { usleep(100_000) }
        }
        #expect(ready, "moto_server did not start")
        let credentials = ["AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing-secret", "AWS_SESSION_TOKEN": "session"]
        let bucket = try runPython("""
            import boto3, sys
            s3 = boto3.client("s3", endpoint_url=sys.argv[1], region_name="us-east-1",
                              aws_access_key_id="testing", aws_secret_access_key="testing-secret")
            s3.create_bucket(Bucket="ca-backups")
            print("ok")
            """, arguments: [endpoint])
        #expect(bucket.status == 0, "\(bucket)")

        let source = Sandbox()
        source.extraEnvironment = credentials
        #expect(try source.run(["ca", "init", "--non-interactive", "--address", "127.0.0.1:9443"]).status == 0)
        let passphraseFile = try source.root.write("pp", "s3-backup-passphrase-0001\n")
        let upload = try source.run([
            "ca", "backup", "--dest-type", "s3", "--s3-bucket", "ca-backups", "--s3-endpoint", endpoint, "--s3-prefix", "prod/",
            "--passphrase-file", passphraseFile,
        ])
        #expect(upload.status == 0, "\(upload)")
        let key = try #require(upload.stdout.components(separatedBy: "s3://ca-backups/").dropFirst().first?.split(separator: " ").first.map(String.init))
        #expect(key.hasPrefix("prod/auto-ssl-backup-"))

        // The object is what we uploaded (checked independently with boto3), and restores elsewhere.
        let listed = try runPython("""
            import boto3, sys
            s3 = boto3.client("s3", endpoint_url=sys.argv[1], region_name="us-east-1",
                              aws_access_key_id="testing", aws_secret_access_key="testing-secret")
            body = s3.get_object(Bucket="ca-backups", Key=sys.argv[2])["Body"].read()
            print(body[:8].decode())
            """, arguments: [endpoint, key])
        #expect(listed.stdout == "Salted__\n", "\(listed)")
        let target = Sandbox()
        target.extraEnvironment = credentials
        let restore = try target.run([
            "ca", "restore", "--input", "s3://ca-backups/" + key, "--s3-endpoint", endpoint, "--passphrase-file", passphraseFile,
        ])
        #expect(restore.status == 0, "\(restore)")
        #expect(try readFile(target.caDir + "/certs/root_ca.crt") == (try readFile(source.caDir + "/certs/root_ca.crt")))

        // Wrong credentials are refused by the server with a clear error.
        let wrong = Sandbox()
        wrong.extraEnvironment = ["AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": "", "HOME": wrong.root.path]
        let missing = try wrong.run([
            "ca", "restore", "--input", "s3://ca-backups/" + key, "--s3-endpoint", endpoint, "--passphrase-file", passphraseFile,
        ])
        #expect(missing.status == 2 && missing.stderr.contains("no S3 credentials"), "\(missing)")
    }

    /// Backups started together into one directory (a timer and an operator, say) each get their
    /// own file: a name taken in the same second is never replaced, the later one takes the next.
    @Test func concurrentBackupsIntoOneDirectoryNeverReplaceEachOther() throws {
        let sandbox = Sandbox()
        #expect(try sandbox.run(["ca", "init", "--non-interactive", "--address", "127.0.0.1:9443"]).status == 0)
        let passphraseFile = try sandbox.root.write("pp", "concurrent-backups-passphrase\n")
        let directory = sandbox.root.file("backups")
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: false)
        let script = """
            for i in 1 2 3; do
              '\(autoSSLBinaryPath())' ca backup -q --output '\(directory)' --passphrase-file '\(passphraseFile)' > '\(directory)'.out$i 2>&1 &
            done
            status=0
            for job in $(jobs -p); do wait $job || status=1; done
            exit $status
            """
        let run = try runProcess("sh", ["-c", script], environment: sandbox.environment)
        #expect(run.status == 0, "\(run) \((try? readFile(directory + ".out1")) ?? "")")
        let written = try FileManager.default.contentsOfDirectory(atPath: directory).filter { $0.hasSuffix(".enc") }
        #expect(Set(written).count == 3, "\(written)")
        for name in written {
            let verified = try sandbox.run(["ca", "backup", "verify", directory + "/" + name, "--passphrase-file", passphraseFile])
            #expect(verified.status == 0, "\(name): \(verified)")
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory).count == 3, "no temporary file is left")
    }

    /// A backup that cannot read part of the CA directory (its keys) fails and writes nothing,
    /// where it used to skip them and verify; a FIFO there is refused instead of read forever.
    /// The unreadable case needs root, which gives up its right to read others' files for it.
    @Test func aBackupThatCannotReadTheKeysFailsAndWritesNothing() throws {
        let sandbox = Sandbox()
        #expect(try sandbox.run(["ca", "init", "--non-interactive", "--address", "127.0.0.1:9443"]).status == 0)
        let passphraseFile = try sandbox.root.write("pp", BackupEndToEndTests.passphrase + "\n")
        let output = sandbox.root.file("backups")
        let fifo = sandbox.caDir + "/pipe"
        #expect(mkfifo(fifo, 0o600) == 0)
        let refused = try sandbox.run(["ca", "backup", "--output", output + "/", "--passphrase-file", passphraseFile])
        #expect(refused.status != 0 && refused.stderr.contains("neither a file nor a directory"), "\(refused)")
        unlink(fifo)
        guard getuid() == 0 else { return }
        let secrets = sandbox.caDir + "/secrets"
        #expect(chown(secrets, 65534, 65534) == 0)
        defer { _ = chown(secrets, 0, 0) }
        let unreadable = try runProcess(
            "/usr/bin/setpriv", ["--bounding-set", "-dac_override,-dac_read_search", autoSSLBinaryPath(),
                "ca", "backup", "--output", output + "/", "--passphrase-file", passphraseFile],
            environment: sandbox.environment, currentDirectory: sandbox.root.path)
        #expect(unreadable.status == 4 && unreadable.stderr.contains("cannot list \(secrets)"), "\(unreadable)")
        #expect(((try? FileManager.default.contentsOfDirectory(atPath: output)) ?? []).isEmpty, "nothing was written")
        _ = chown(secrets, 0, 0)
        let made = try sandbox.run(["ca", "backup", "--output", output + "/", "--passphrase-file", passphraseFile])
        #expect(made.status == 0, "\(made)")
    }

    /// A backup named by hand sorts after the timestamped ones; rotation neither counts it as the
    /// newest nor deletes it, and keeps the backup it just wrote.
    @Test func retentionKeepsTheNewBackupAndLeavesHandNamedOnes() throws {
        let sandbox = Sandbox()
        #expect(try sandbox.run(["ca", "init", "--non-interactive", "--address", "127.0.0.1:9443"]).status == 0)
        let passphraseFile = try sandbox.root.write("pp", BackupEndToEndTests.passphrase + "\n")
        let directory = sandbox.root.file("rotated")
        let named = directory + "/auto-ssl-backup-before-upgrade.enc"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        #expect(try sandbox.run(["ca", "backup", "--output", named, "--passphrase-file", passphraseFile]).status == 0)
        let rotated = try sandbox.run(["ca", "backup", "--output", directory + "/", "--retention", "1", "--passphrase-file", passphraseFile])
        #expect(rotated.status == 0 && !(rotated.stdout + rotated.stderr).contains("removed"), "\(rotated)")
        let left = try FileManager.default.contentsOfDirectory(atPath: directory).sorted()
        #expect(left.count == 2 && left.contains("auto-ssl-backup-before-upgrade.enc"), "\(left)")
        let again = try sandbox.run(["ca", "backup", "--output", directory + "/", "--retention", "1", "--passphrase-file", passphraseFile])
        #expect(again.status == 0, "\(again)")
        let after = try FileManager.default.contentsOfDirectory(atPath: directory).sorted()
        #expect(after.count == 2 && after.contains("auto-ssl-backup-before-upgrade.enc") && !after.contains(left.first { $0 != "auto-ssl-backup-before-upgrade.enc" } ?? ""), "\(after)")
        for file in after {
            #expect(try sandbox.run(["ca", "backup", "verify", directory + "/" + file, "--passphrase-file", passphraseFile]).status == 0)
        }
    }

    @Test func aTrailingSlashMakesTheOutputADirectoryThatRetentionThenUses() throws {
        let sandbox = Sandbox()
        #expect(try sandbox.run(["ca", "init", "--non-interactive", "--address", "127.0.0.1:9443"]).status == 0)
        let passphraseFile = try sandbox.root.write("pp", "trailing-slash-passphrase\n")
        let directory = sandbox.root.file("new/backups")
        for round in 0..<2 {
            let run = try sandbox.run(["ca", "backup", "--output", directory + "/", "--retention", "1", "--passphrase-file", passphraseFile])
            #expect(run.status == 0, "round \(round): \(run)")
            sleep(1)  // names carry the time to the second
        }
        var isDirectory: ObjCBool = false
        #expect(FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory) && isDirectory.boolValue)
        let kept = try FileManager.default.contentsOfDirectory(atPath: directory)
        #expect(kept.count == 1 && kept.allSatisfy { $0.hasSuffix(".enc") || $0.contains("backup") }, "\(kept)")
    }
}
