import AutoSSLClient
import AutoSSLConfig
import AutoSSLCore
import AutoSSLHost
import AutoSSLIO
import Foundation
import SwiftASN1
import X509

/// The application-server role: enroll once, then renew forever. Nothing here prints; the CLI
/// shows what the returned values say.
public struct ServerAgent: Sendable {
    public let directories: Directories

    /// How many previous key/certificate pairs `cert-backups/` keeps.
    public static let keptBackups = 5
    /// A certificate is renewed once this fraction of its lifetime has passed.
    public static let defaultRenewFraction = 2.0 / 3.0
    /// After this many failed renewals in a row, failures carry a warning with the time left.
    public static let failureWarningThreshold = 3

    public init(directories: Directories) {
        self.directories = directories
    }

    public var stateFile: String { directories.dataDir + "/server-state.json" }
    public var backupsDir: String { directories.dataDir + "/cert-backups" }
    public var serviceFile: String { directories.systemdDir + "/" + SystemdUnits.renewServiceName }
    public var timerFile: String { directories.systemdDir + "/" + SystemdUnits.renewTimerName }

    /// systemctl is used only when systemd runs and the units are where systemd reads them.
    public var managesSystemd: Bool {
        SystemdUnits.systemdIsRunning && directories.systemdDir == Directories.defaults.systemdDir
    }

    /// `server enroll`, `renew` (the timer's and the daemon's too), `revoke`, `remove` and
    /// `--adopt` take turns on `<data>/.server.lock`: each reads the certificate and key, asks the
    /// CA and writes them, and two at once would leave a certificate with another run's key.
    /// On a machine without a data directory yet (a first enrollment or adoption), the nearest
    /// directory above it is locked instead, so that a refused first attempt creates nothing.
    func holderLock() throws -> FileLock {
        guard FileOperations.exists(directories.dataDir) else {
            var ancestor = FileOperations.directory(of: directories.dataDir)
            while ancestor != "/", !FileOperations.exists(ancestor) { ancestor = FileOperations.directory(of: ancestor) }
            return try FileLock.acquireDirectory(ancestor)
        }
        guard let lock = try FileLock.acquire(directories.dataDir + "/.server.lock", exclusive: true, wait: true) else {
            throw AutoSSLError.general("could not lock \(directories.dataDir)/.server.lock")
        }
        return lock
    }

    // MARK: - Enrollment record

    public func configuration() throws -> AutoSSLConfiguration {
        try AutoSSLConfiguration.load(from: directories.configFile)
    }

    /// This machine's enrollment, nil when it has none (the server section alone is read).
    public func serverSection() throws -> ServerEnrollment? {
        try AutoSSLConfiguration.loadServerSection(from: directories.configFile)
    }

    public func enrollment() throws -> ServerEnrollment {
        guard let enrollment = try serverSection() else {
            throw AutoSSLError.general(
                "this machine is not enrolled with a CA (no server section in \(directories.configFile))",
                hint: "enroll it first: auto-ssl server enroll --ca-url https://ca.internal:9000 --fingerprint <root fingerprint>")
        }
        return enrollment
    }

    /// Rewrites only the server section of config.yaml; a CA on the same machine keeps its own.
    func saveEnrollment(_ enrollment: ServerEnrollment?) throws {
        var configuration = try configuration()
        configuration.server = enrollment
        if configuration.isEmpty {
            try FileOperations.removeTree(directories.configFile)
        } else {
            try configuration.save(to: directories.configFile)
        }
    }

    func recordAttempt(_ result: String, _ message: String, success: Bool?, now: Date, caURL: String? = nil) -> ServerState {
        var state = ServerState.load(from: stateFile)
        state.lastAttempt = .init(time: now, result: result, message: message, caURL: caURL)
        switch success {
        case true?:
            state.lastSuccess = now
            state.consecutiveFailures = 0
        case false?:
            // Saturating: the count comes from server-state.json, which could hold anything.
            state.consecutiveFailures = state.consecutiveFailures < Int.max ? max(state.consecutiveFailures, 0) + 1 : Int.max
        case nil:
            break
        }
        // The state is a log; failing to write it must not turn a good renewal into a failure.
        try? state.save(to: stateFile)
        return state
    }

    // MARK: - Enroll

    public struct EnrollmentPlan: Sendable {
        /// The CA's URLs in the order they are tried (all recorded for renewal).
        public var caURLs: [String]
        public var names: [SubjectName]
        public var duration: String?
        public var certPath: String
        public var keyPath: String
        public var rootPath: String
        public var keyAlgorithm: KeyAlgorithm
        public var provisioner: String
        public var reload: WebServer?
        public var reloadCommand: String?
        public var installTimer: Bool
        /// Where every `server renew` writes its metrics (checked with `checkMetricsFile`); nil = none.
        public var metricsFile: String?

        public init(
            caURLs: [String], names: [SubjectName], duration: String?, certPath: String, keyPath: String, rootPath: String,
            keyAlgorithm: KeyAlgorithm, provisioner: String, reload: WebServer?, reloadCommand: String?, installTimer: Bool,
            metricsFile: String? = nil
        ) {
            self.caURLs = caURLs
            self.names = names
            self.duration = duration
            self.certPath = certPath
            self.keyPath = keyPath
            self.rootPath = rootPath
            self.keyAlgorithm = keyAlgorithm
            self.provisioner = provisioner
            self.reload = reload
            self.reloadCommand = reloadCommand
            self.installTimer = installTimer
            self.metricsFile = metricsFile
        }

        /// HAProxy's key + chain file sits next to the certificate.
        public var combinedPath: String? {
            guard reload?.wantsCombinedFile == true else { return nil }
            return (certPath as NSString).deletingLastPathComponent + "/server.pem"
        }
    }

    public struct EnrollmentResult: Sendable {
        public var leaf: Certificate
        public var enrollment: ServerEnrollment
        public var backedUpTo: String?
        public var warnings: [String]
    }

    /// Gets the first certificate: key made here, token signed with the decrypted provisioner key,
    /// CSR sent, chain verified, files written together. Nothing is written before the CA said yes.
    /// `client` is the URL that answered (the caller tries the plan's URLs in turn); every URL of the
    /// plan is recorded.
    public func enroll(_ plan: EnrollmentPlan, client: CAClient, password: String, now: Date = Date()) async throws -> EnrollmentResult {
        try await enroll(plan, client: client, credential: .password(password), now: now)
    }

    /// What authorises the first certificate: the provisioner password (the token is made here), or
    /// a one-time token made on the CA (`ca token create`) for exactly the plan's names.
    public enum EnrollmentCredential: Sendable {
        case password(String)
        case token(String)
    }

    public func enroll(_ plan: EnrollmentPlan, client: CAClient, credential: EnrollmentCredential, now: Date = Date()) async throws
        -> EnrollmentResult
    {
        let lock = try holderLock()
        defer { lock.release() }
        for path in [plan.certPath, plan.keyPath, plan.rootPath] {
            let directory = (path as NSString).deletingLastPathComponent
            if directory != directories.certDir, !FileOperations.exists(directory) {
                throw AutoSSLError.invalidArgument("the directory \(directory) does not exist", hint: "create it or choose another path")
            }
        }
        // Before the CA is asked: the files must all be writable together, or none is touched.
        // The metrics file is written by every renewal: it must not be one of them either.
        let combined = plan.combinedPath.map { $0 == plan.certPath ? [] : [$0] } ?? []
        try FileOperations.checkReplaceable(
            [plan.certPath, plan.keyPath, plan.rootPath] + combined + (plan.metricsFile.map { [$0] } ?? []),
            options: ["--cert-path", "--key-path", "the copy of the root"] + combined.map { _ in "the combined chain and key file" } + ["--metrics-file"],
            reserved: AutoSSLConfiguration.reservedPaths(directories))
        let key = try SigningKey.generate(plan.keyAlgorithm)
        let token: String
        switch credential {
        case .password(let password):
            let jwk = try await client.provisionerKey(name: plan.provisioner, password: password)
            token = try client.signToken(provisioner: plan.provisioner, key: jwk, names: plan.names)
        case .token(let given):
            token = given
        }
        let signed = try await client.sign(
            csrPEM: try VerifiedCSR.make(names: plan.names, key: key), token: token, notAfter: plan.duration)

        if [plan.certPath, plan.keyPath, plan.rootPath].contains(where: { ($0 as NSString).deletingLastPathComponent == directories.certDir }) {
            try FileOperations.makeDirectory(directories.certDir, mode: 0o755)
        }
        var files: [(data: [UInt8], path: String, mode: mode_t)] = [
            (Array(key.pkcs8PEMRepresentation.utf8), plan.keyPath, 0o600),
            (Array(signed.pemChain.utf8), plan.certPath, 0o644),
            (Array(try client.root.pemString().utf8), plan.rootPath, 0o644),
        ]
        if let combined = plan.combinedPath {
            Self.add((Array((signed.pemChain + key.pkcs8PEMRepresentation).utf8), combined, 0o600), to: &files)
        }
        // The pair kept is the one in use: the current enrollment's, wherever the new files go.
        let inUse = (try? serverSection()).map { ($0.certPath, $0.keyPath) } ?? (plan.certPath, plan.keyPath)
        let replaced = try replaceKeepingBackup(files, certPath: inUse.0, keyPath: inUse.1, now: now)
        let backedUpTo = replaced.backedUpTo
        var warnings = replaced.warnings
        var enrollment = ServerEnrollment(
            caURL: client.baseURL, fingerprint: client.rootFingerprint, names: plan.names.map(\.description),
            certPath: plan.certPath, keyPath: plan.keyPath, rootPath: plan.rootPath, combinedPath: plan.combinedPath,
            keyType: plan.keyAlgorithm.isRSA ? "rsa" : "ec", provisioner: plan.provisioner, duration: plan.duration,
            reload: plan.reload?.rawValue, reloadCommand: plan.reloadCommand, renewalTimer: plan.installTimer, enrolledAt: now)
        enrollment.setURLs(plan.caURLs.isEmpty ? [client.baseURL] : plan.caURLs)
        enrollment.metricsFile = plan.metricsFile
        // A re-enrollment keeps the operator's renewal fraction.
        if let existing = try? serverSection() { enrollment.renewAtFraction = existing.renewAtFraction }
        try saveEnrollment(enrollment)
        var state = ServerState.load(from: stateFile)
        state.revokedSerial = nil
        state.revokedAt = nil
        state.revocationNote = nil
        try? state.save(to: stateFile)
        _ = recordAttempt(
            "enrolled", "certificate \(Self.serialText(signed.leaf)) issued", success: true, now: now, caURL: client.baseURL)
        if let problem = writeMetrics(now: now) { warnings.append(problem) }
        return EnrollmentResult(leaf: signed.leaf, enrollment: enrollment, backedUpTo: backedUpTo, warnings: warnings)
    }

    /// Adds HAProxy's combined chain + key file to the files written together. A certificate path
    /// that is itself `server.pem` (HAProxy's own layout) gets the combined file in its place: it
    /// holds the chain too, and the renewal reads only its certificates.
    static func add(_ combined: (data: [UInt8], path: String, mode: mode_t), to files: inout [(data: [UInt8], path: String, mode: mode_t)]) {
        if let index = files.firstIndex(where: { $0.path == combined.path }) {
            files[index] = combined
        } else {
            files.append(combined)
        }
    }

    /// Writes `files` together (all or none) and keeps the certificate and key they replace in
    /// `backupsDir`; a backup that cannot be kept is a warning, never a failure.
    func replaceKeepingBackup(
        _ files: [(data: [UInt8], path: String, mode: mode_t)], certPath: String, keyPath: String, now: Date
    ) throws -> (backedUpTo: String?, warnings: [String]) {
        let previous = currentPair(certPath: certPath, keyPath: keyPath)
        try FileOperations.replaceTogether(files)
        guard let previous else { return (nil, []) }
        do {
            return (try keepBackup(previous, now: now), [])
        } catch {
            return (nil, ["the previous certificate could not be kept in \(backupsDir): \(error)"])
        }
    }

    // MARK: - Units

    public struct UnitReport: Sendable {
        public var written: [String]
        public var verification: [String: SystemdUnits.Verification]
        /// nil when systemd does not manage these units here (not running, or a custom directory).
        public var enabled: Bool?
    }

    /// Writes the renewal service and timer and, where systemd manages them, enables the timer.
    public func installRenewalUnits(executable: String) throws -> UnitReport {
        try FileOperations.makeDirectory(directories.systemdDir, mode: 0o755)
        try FileOperations.writeAtomically(
            SystemdUnits.renewService(
                executable: executable, configDir: directories.configDir, dataDir: directories.dataDir, certDir: directories.certDir),
            to: serviceFile, mode: 0o644)
        try FileOperations.writeAtomically(SystemdUnits.renewTimer(), to: timerFile, mode: 0o644)
        var verification: [String: SystemdUnits.Verification] = [:]
        for file in [serviceFile, timerFile] { verification[file] = SystemdUnits.verify(file) }
        var enabled: Bool?
        if managesSystemd {
            let runner = SystemCommandRunner()
            for arguments in [["daemon-reload"], ["enable", "--now", SystemdUnits.renewTimerName]] {
                guard let result = runner.run("systemctl", arguments, timeout: 60), result.status == 0 else {
                    throw AutoSSLError.general("`systemctl \(arguments.joined(separator: " "))` failed; the units are in \(directories.systemdDir)")
                }
            }
            enabled = true
        }
        return UnitReport(written: [serviceFile, timerFile], verification: verification, enabled: enabled)
    }

    /// Stops and removes the renewal units (only ours: the CA's and backup units are left alone).
    public func removeRenewalUnits() throws -> [String] {
        if managesSystemd {
            _ = SystemCommandRunner().run("systemctl", ["disable", "--now", SystemdUnits.renewTimerName], timeout: 60)
        }
        var removed: [String] = []
        for file in [timerFile, serviceFile] where FileOperations.exists(file) {
            try FileOperations.removeTree(file)
            removed.append(file)
        }
        if managesSystemd { _ = SystemCommandRunner().run("systemctl", ["daemon-reload"], timeout: 60) }
        return removed
    }

    func stopTimer() {
        if managesSystemd {
            _ = SystemCommandRunner().run("systemctl", ["disable", "--now", SystemdUnits.renewTimerName], timeout: 60)
        }
    }

    public var timerState: String {
        if managesSystemd {
            let result = SystemCommandRunner().run("systemctl", ["is-active", SystemdUnits.renewTimerName], timeout: 10)
            let state = result?.output.trimmingCharacters(in: .whitespacesAndNewlines) ?? ""
            return state.isEmpty ? "unknown" : state
        }
        guard FileOperations.exists(timerFile) else { return "not installed" }
        return SystemdUnits.systemdIsRunning ? "installed in \(directories.systemdDir) (not managed by systemd)" : "installed (systemd is not running)"
    }

    // MARK: - Files

    struct Pair {
        var certificate: [UInt8]
        var key: [UInt8]
        var serial: String
    }

    func currentPair(certPath: String, keyPath: String) -> Pair? {
        guard let certificate = FileManager.default.contents(atPath: certPath),
              let key = FileManager.default.contents(atPath: keyPath) else { return nil }
        let text = String(decoding: certificate, as: UTF8.self)
        let first = (try? PEMDocument.parseMultiple(pemString: text))?.first { $0.discriminator == "CERTIFICATE" }
        let serial = first.flatMap { try? Certificate(derEncoded: $0.derBytes) }.map(Self.serialText) ?? "unknown"
        return Pair(certificate: Array(certificate), key: Array(key), serial: serial)
    }

    /// `cert-backups/<time>-<serial>/` (0700) with the pair that was replaced; only the newest few stay.
    func keepBackup(_ pair: Pair, now: Date) throws -> String {
        try FileOperations.makeDirectory(backupsDir, mode: 0o700, enforceMode: true)
        let name = FileOperations.timestamp(now) + "-" + pair.serial.replacingOccurrences(of: ":", with: "").prefix(16)
        let directory = backupsDir + "/" + name
        try FileOperations.makeDirectory(directory, mode: 0o700)
        try FileOperations.writeAtomically(pair.certificate, to: directory + "/server.crt", mode: 0o644)
        try FileOperations.writeAtomically(pair.key, to: directory + "/server.key", mode: 0o600)
        // Only our own entries (named by the UTC time, digits first) are rotated: the original bash
        // auto-ssl kept server-<time>.{crt,key} files here too, and they are never removed.
        let kept = try FileManager.default.contentsOfDirectory(atPath: backupsDir)
            .filter { $0.first?.isASCII == true && $0.first?.isNumber == true }.sorted()
        for old in kept.dropLast(Self.keptBackups) {
            try FileOperations.removeTree(backupsDir + "/" + old)
        }
        return directory
    }

    public struct Holder: Sendable {
        public var chain: [Certificate]
        public var key: SigningKey
        public var root: Certificate
        public var leaf: Certificate { chain[0] }
    }

    /// The current chain, its key and the pinned root, each checked against the enrollment.
    public func holder(_ enrollment: ServerEnrollment) throws -> Holder {
        let repair = "put back the certificate and key that belong together (earlier pairs are kept in \(backupsDir)), or enroll again:\n    \(enrollCommand(enrollment))"
        let chain = try Self.recorded { try HolderFiles.chain(enrollment.certPath, repair: repair) }
        let key = try Self.recorded { try HolderFiles.key(enrollment.keyPath, matching: chain[0], repair: repair) }
        return Holder(chain: chain, key: key, root: try pinnedRoot(enrollment))
    }

    /// The copy of the root written at enrollment, checked against the fingerprint pinned then.
    public func pinnedRoot(_ enrollment: ServerEnrollment) throws -> Certificate {
        let restore = "enroll again with the CA's fingerprint to restore it:\n    \(enrollCommand(enrollment))"
        let roots = try Self.recorded { try HolderFiles.chain(enrollment.rootPath, repair: restore) }
        guard let root = roots.first, try Fingerprint.sha256(of: root) == enrollment.fingerprint else {
            throw AutoSSLError(
                .trustFailure, "\(enrollment.rootPath) is not the root pinned at enrollment (\(enrollment.fingerprint))", hint: restore)
        }
        return root
    }

    /// A file recorded at enrollment that is not what it should be is damaged (exit 1), not a
    /// wrong argument, and stays so whatever the next run does (its hint says how to repair it).
    static func recorded<T>(_ read: () throws -> T) throws -> T {
        do {
            return try read()
        } catch var error as AutoSSLError where error.kind == .invalidArguments {
            error.kind = .general
            throw error
        }
    }

    /// Serials in text are lower-case hex without colons, as the CA stores and prints them.
    public static func serialText(_ certificate: Certificate) -> String {
        certificate.serialNumber.hexString
    }

    /// The `server enroll` command that gets a new certificate with every option recorded at
    /// enrollment: names, lifetime, paths, key type, provisioner, reload or exec command, timer.
    /// (The renewal fraction needs no option: a re-enrollment keeps it.)
    public func enrollCommand(_ enrollment: ServerEnrollment) -> String {
        var words = ["auto-ssl", "server", "enroll"]
        for url in enrollment.urls { words += ["--ca-url", url] }
        words += ["--fingerprint", enrollment.fingerprint]
        for name in enrollment.names { words += ["--san", name] }
        if let duration = enrollment.duration { words += ["--duration", duration] }
        if enrollment.certPath != directories.certDir + "/server.crt" { words += ["--cert-path", enrollment.certPath] }
        if enrollment.keyPath != directories.certDir + "/server.key" { words += ["--key-path", enrollment.keyPath] }
        if enrollment.keyType == "rsa" { words += ["--key-type", "rsa"] }
        if enrollment.provisioner != "admin" { words += ["--provisioner", enrollment.provisioner] }
        if let reload = enrollment.reload {
            words += ["--reload", reload]
        } else if let command = enrollment.reloadCommand {
            words += ["--exec", command]
        }
        if !enrollment.renewalTimer { words.append("--no-renewal") }
        if let metricsFile = enrollment.metricsFile { words += ["--metrics-file", metricsFile] }
        return words.map(Self.shellWord).joined(separator: " ")
    }

    /// One word as /bin/sh reads it: as is when it is plain, else single-quoted.
    static func shellWord(_ word: String) -> String {
        let plain = !word.isEmpty && word.unicodeScalars.allSatisfy {
            $0.isASCII && (CharacterSet.alphanumerics.contains($0) || "@%+=:,./_-".unicodeScalars.contains($0))
        }
        return plain ? word : "'" + word.replacingOccurrences(of: "'", with: "'\\''") + "'"
    }

    /// Remembers that `serial` is revoked (see `ServerState.revokedSerial`).
    func recordRevocation(serial: String, note: String, now: Date) {
        var state = ServerState.load(from: stateFile)
        guard !state.isRevoked(serial: serial) else { return }
        state.revokedSerial = serial
        state.revokedAt = now
        state.revocationNote = note
        try? state.save(to: stateFile)
    }

    // MARK: - Renew

    public func renewalPoint(of leaf: Certificate, enrollment: ServerEnrollment) -> Date {
        // config.yaml is edited by hand: a fraction YAML reads as .nan or .inf is ignored (NaN
        // would pass through min and max, and then no time would ever compare as due or not due).
        let configured = enrollment.renewAtFraction.flatMap { $0.isFinite ? $0 : nil } ?? Self.defaultRenewFraction
        let fraction = min(max(configured, 0), 1)
        let lifetime = leaf.notValidAfter.timeIntervalSince(leaf.notValidBefore)
        return leaf.notValidBefore.addingTimeInterval(lifetime * fraction)
    }

    public enum RenewOutcome: Sendable {
        case suspended(reason: String)
        case notDue(renewalPoint: Date, notAfter: Date)
        /// `contact`: which of the CA's URLs answered, and what happened at those tried before it.
        case renewed(leaf: Certificate, previousSerial: String, reload: ReloadResult?, contact: CAContact)
    }

    public struct ReloadResult: Sendable {
        public var command: String
        public var outcome: ShellCommand.Outcome
        public var succeeded: Bool { outcome.status == 0 && !outcome.timedOut }
    }

    /// One renewal check: skips while suspended (unless forced) or before the renewal point; on
    /// success swaps the chain atomically and reloads; on failure the files stay as they were.
    /// Whatever happened, the metrics file (`metricsFile`, else the enrollment's) is rewritten
    /// afterwards; a problem writing it goes to `metricsWarning` and never changes the outcome.
    public func renew(
        force: Bool, execOverride: String? = nil, metricsFile: String? = nil, now: Date = Date(),
        metricsWarning: (String) -> Void = { _ in }
    ) async throws -> RenewOutcome {
        let lock = try holderLock()
        defer {
            if let problem = writeMetrics(override: metricsFile, now: now) { metricsWarning(problem) }
            lock.release()
        }
        return try await renewOnce(force: force, execOverride: execOverride, now: now)
    }

    func renewOnce(force: Bool, execOverride: String?, now: Date) async throws -> RenewOutcome {
        let enrollment = try enrollment()
        // A certificate known to be revoked is never renewed: say so (and how to enroll again with
        // the same options) instead of "suspended". --force still asks the CA.
        let known = ServerState.load(from: stateFile)
        if !force, known.revokedSerial != nil, let current = try? holder(enrollment),
           known.isRevoked(serial: Self.serialText(current.leaf)) {
            let serial = Self.serialText(current.leaf)
            let message = "\(RenewalRefusal.revokedCertificate): certificate \(serial) is revoked (\(known.revocationNote ?? "revoked"))"
            _ = recordAttempt("failed", message, success: false, now: now)
            throw AutoSSLError(
                .trustFailure, message,
                hint: "enroll again to get a new certificate (this keeps every recorded option):\n    \(enrollCommand(enrollment))")
        }
        if let suspension = enrollment.suspension, !force {
            _ = recordAttempt("skipped", "suspended: \(suspension.reason)", success: nil, now: now)
            return .suspended(reason: suspension.reason)
        }
        let holder: Holder
        do {
            holder = try self.holder(enrollment)
        } catch {
            throw failure(error, enrollment: enrollment, leaf: nil, now: now)
        }
        let point = renewalPoint(of: holder.leaf, enrollment: enrollment)
        if !force && now < point {
            return .notDue(renewalPoint: point, notAfter: holder.leaf.notValidAfter)
        }
        let renewed: CAClient.SignedChain
        let contact: CAContact
        do {
            // TLS refuses an expired client certificate, while the CA still renews within its grace
            // window: past the expiry, prove possession with an x5c token instead.
            let method: CAClient.HolderAuthentication = now > holder.leaf.notValidAfter ? .token : .mtls
            // The recorded URLs in turn; the token (if any) is made for the URL tried.
            let answer = try await CAClient.withConnection(to: try CAEndpoints(enrollment.urls), pinnedRoot: holder.root) { client in
                try await client.renew(chain: holder.chain, key: holder.key, method: method)
            }
            renewed = answer.value
            contact = answer.contact
        } catch {
            throw failure(error, enrollment: enrollment, leaf: holder.leaf, now: now)
        }
        var files: [(data: [UInt8], path: String, mode: mode_t)] = [(Array(renewed.pemChain.utf8), enrollment.certPath, 0o644)]
        if let combined = enrollment.combinedPath {
            Self.add((Array((renewed.pemChain + holder.key.pkcs8PEMRepresentation).utf8), combined, 0o600), to: &files)
        }
        do {
            _ = try replaceKeepingBackup(files, certPath: enrollment.certPath, keyPath: enrollment.keyPath, now: now)
        } catch {
            throw failure(error, enrollment: enrollment, leaf: holder.leaf, now: now)
        }

        var reload: ReloadResult?
        if let command = execOverride ?? enrollment.reloadCommand {
            let outcome = (try? ShellCommand.run(command)) ?? ShellCommand.Outcome(status: 127, output: "could not start /bin/sh", timedOut: false)
            reload = ReloadResult(command: command, outcome: outcome)
        }
        let reloadNote = reload.map { $0.succeeded ? "; reloaded with `\($0.command)`" : "; reload command `\($0.command)` failed (exit \($0.outcome.status))" } ?? ""
        let skippedNote = contact.skipped.map { "; after no answer from \($0.url) (\($0.failure))" }.joined()
        _ = recordAttempt(
            "renewed", "certificate \(Self.serialText(renewed.leaf)) replaces \(Self.serialText(holder.leaf))" + reloadNote + skippedNote,
            success: true, now: now, caURL: contact.url)
        return .renewed(leaf: renewed.leaf, previousSerial: Self.serialText(holder.leaf), reload: reload, contact: contact)
    }

    /// Records a failed attempt and turns the error into one that says what to do next.
    func failure(_ error: any Error, enrollment: ServerEnrollment, leaf: Certificate?, now: Date) -> AutoSSLError {
        var failure = error as? AutoSSLError ?? AutoSSLError.general("\(error)")
        let state = recordAttempt("failed", failure.message, success: false, now: now)
        // The CA refuses to renew a revoked certificate (or one whose key was revoked): from now on
        // `server status` reports it as revoked.
        if let leaf, failure.kind == .trustFailure, RenewalRefusal.isRevocation(failure.message) {
            recordRevocation(serial: Self.serialText(leaf), note: failure.message, now: now)
        }
        let enrollAgain = enrollCommand(enrollment)
        if failure.hintIsFinal {
            // The thrower's own advice (a CA's answer for another key: the CA did not refuse, and
            // "enroll again" would be wrong), with the time left once failures pile up.
            if let leaf, state.consecutiveFailures >= Self.failureWarningThreshold {
                failure.hint = (failure.hint.map { $0 + "\n  " } ?? "") + Self.failuresInARow(state.consecutiveFailures, leaf: leaf, now: now)
            }
        } else if let leaf, now > leaf.notValidAfter, failure.kind != .network {
            failure.hint = "the certificate expired at \(Timestamp.rfc3339(leaf.notValidAfter)) and can no longer be renewed; enroll again:\n    \(enrollAgain)"
        } else if leaf != nil, failure.kind == .trustFailure, failure.message.contains("which this CA no longer has") {
            var withoutProvisioner = enrollment
            withoutProvisioner.provisioner = "admin"  // the default, left out of the command
            failure.hint = "the provisioner that enrolled this host (\(enrollment.provisioner)) was removed from the CA; the files were left as they were. Enroll again with one the CA has (`auto-ssl ca provisioner list` on the CA):\n    \(enrollCommand(withoutProvisioner)) --provisioner NAME"
        } else if leaf != nil, failure.kind == .trustFailure {
            failure.hint = "the CA will not renew this certificate; the files were left as they were. Enroll again to get a new one:\n    \(enrollAgain)"
        } else if let leaf, state.consecutiveFailures >= Self.failureWarningThreshold {
            failure.hint = Self.failuresInARow(state.consecutiveFailures, leaf: leaf, now: now)
        } else if failure.hint == nil {
            failure.hint = "the current certificate and key were left as they were; the next scheduled run tries again"
        }
        return failure
    }

    static func failuresInARow(_ count: Int, leaf: Certificate, now: Date) -> String {
        let left = leaf.notValidAfter.timeIntervalSince(now)
        guard left > 0 else {
            return "renewal has failed \(count) times in a row; the certificate expired at \(Timestamp.rfc3339(leaf.notValidAfter)), and the CA renews it only within its grace window after that"
        }
        return "renewal has failed \(count) times in a row; the certificate expires in \(CertificateDuration(seconds: Int64(left)).humanReadable) (\(Timestamp.rfc3339(leaf.notValidAfter)))"
    }

    // MARK: - Suspend, resume

    public func suspend(reason: String, now: Date = Date()) throws {
        var enrollment = try enrollment()
        enrollment.suspension = .init(reason: reason.isEmpty ? "suspended by an operator" : reason, since: now)
        try saveEnrollment(enrollment)
    }

    /// Returns false when renewals were not suspended.
    public func resume() throws -> Bool {
        var enrollment = try enrollment()
        guard enrollment.suspension != nil else { return false }
        enrollment.suspension = nil
        try saveEnrollment(enrollment)
        return true
    }

    // MARK: - Revoke, remove

    public enum RevocationTarget: Sendable {
        /// The enrolled certificate, authenticated by itself over mutual TLS.
        case current
        /// Any serial, authenticated by a provisioner token.
        case serial(String, password: String)
    }

    /// What `revoke` did: the serial revoked (lower-case hex), the others the CA revoked with it for
    /// having its key, and whether this host's current certificate was among them (then scheduled
    /// renewals are stopped).
    public struct RevocationReport: Sendable {
        public var serial: String
        public var alsoRevoked: [String] { answer.alsoRevoked }
        public var currentRevoked: Bool
        /// What the CA said it did (revoked before, the key cut off now, the others with it).
        public var answer: CAClient.RevokeAnswer
    }

    /// Revokes at the CA; revoking the current certificate (itself, by its serial, or as one of the
    /// same key as the serial named) also stops scheduled renewals.
    public func revoke(_ target: RevocationTarget, reasonCode: Int, reason: String, now: Date = Date()) async throws -> RevocationReport {
        let lock = try holderLock()
        defer { lock.release() }
        return try await revokeLocked(target, reasonCode: reasonCode, reason: reason, now: now)
    }

    /// `revoke` for a caller that holds `holderLock`.
    func revokeLocked(_ target: RevocationTarget, reasonCode: Int, reason: String, now: Date) async throws -> RevocationReport {
        let enrollment = try enrollment()
        let root = try pinnedRoot(enrollment)
        switch target {
        case .current:
            let holder = try self.holder(enrollment)
            let answer = try await CAClient.withConnection(to: try CAEndpoints(enrollment.urls), pinnedRoot: root) { client in
                try await client.revoke(chain: holder.chain, key: holder.key, method: .mtls, reasonCode: reasonCode, reason: reason)
            }
            let serial = Self.serialText(holder.leaf)
            try stopAfterRevocation(serial: serial, reason: reason, enrollment: enrollment, now: now)
            return RevocationReport(serial: serial, currentRevoked: true, answer: answer.value)
        case .serial(let text, let password):
            let candidates = try SerialText.candidates(text)
            // All digits: decimal (step-ca's form), else hex; shown back as lower-case hex.
            let hex = (text.allSatisfy(\.isNumber) ? candidates.last : candidates.first) ?? text
            let decimal = text.allSatisfy(\.isNumber) ? text : SerialText.decimal(fromHex: hex)
            // The provisioner key is fetched from the URL that answers; its token is made for that URL.
            let answer = try await CAClient.withConnection(to: try CAEndpoints(enrollment.urls), pinnedRoot: root) { client in
                let jwk = try await client.provisionerKey(name: enrollment.provisioner, password: password)
                return try await client.revoke(
                    serialDecimal: decimal, provisioner: enrollment.provisioner, key: jwk, reasonCode: reasonCode, reason: reason)
            }
            // The current certificate revoked by its serial, or with an earlier one of its key (a
            // renewal keeps the key): the same as revoking it by itself.
            let revoked = Set(([hex] + answer.value.alsoRevoked).map(ServerState.canonicalSerial))
            var currentRevoked = false
            if let current = try? holder(enrollment), revoked.contains(ServerState.canonicalSerial(Self.serialText(current.leaf))) {
                try stopAfterRevocation(serial: Self.serialText(current.leaf), reason: reason, enrollment: enrollment, now: now)
                currentRevoked = true
            }
            return RevocationReport(serial: hex, currentRevoked: currentRevoked, answer: answer.value)
        }
    }

    /// After the current certificate was revoked: remember it, suspend renewals, stop the timer.
    func stopAfterRevocation(serial: String, reason: String, enrollment: ServerEnrollment, now: Date) throws {
        recordRevocation(
            serial: serial, note: "revoked with `auto-ssl server revoke`" + (reason.isEmpty ? "" : ": \(reason)"), now: now)
        var updated = enrollment
        updated.suspension = .init(reason: "certificate \(serial) was revoked" + (reason.isEmpty ? "" : ": \(reason)"), since: now)
        try saveEnrollment(updated)
        stopTimer()
    }

    public struct RemovalReport: Sendable {
        public var revokedSerial: String?
        public var removedFiles: [String]
        public var keptFiles: [String]
    }

    /// Revokes (unless already revoked or `revoke` is false), removes the renewal units, the files
    /// (unless `keepCertificates`) and the enrollment. Everything a CA on this machine owns stays.
    public func remove(reason: String, keepCertificates: Bool, revoke: Bool = true, now: Date = Date()) async throws -> RemovalReport {
        let lock = try holderLock()
        defer { lock.release() }
        let enrollment = try enrollment()
        var revokedSerial: String?
        let state = ServerState.load(from: stateFile)
        let current = try? holder(enrollment)
        if revoke, let current, !state.isRevoked(serial: Self.serialText(current.leaf)), now < current.leaf.notValidAfter {
            revokedSerial = try await revokeLocked(.current, reasonCode: 5, reason: reason.isEmpty ? "server removed" : reason, now: now).serial
        }
        var removed = try removeRenewalUnits()
        let files = [enrollment.certPath, enrollment.keyPath, enrollment.rootPath] + (enrollment.combinedPath.map { [$0] } ?? [])
        if keepCertificates {
            // kept as they are
        } else {
            for file in files where FileOperations.exists(file) {
                try FileOperations.removeTree(file)
                removed.append(file)
            }
            if FileOperations.exists(backupsDir) {
                try FileOperations.removeTree(backupsDir)
                removed.append(backupsDir)
            }
        }
        if FileOperations.exists(stateFile) {
            try FileOperations.removeTree(stateFile)
            removed.append(stateFile)
        }
        try saveEnrollment(nil)
        return RemovalReport(revokedSerial: revokedSerial, removedFiles: removed, keptFiles: keepCertificates ? files.filter(FileOperations.exists) : [])
    }
}
