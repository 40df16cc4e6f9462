import AutoSSLClient
import AutoSSLConfig
import AutoSSLCore
import AutoSSLHost
import AutoSSLIO
import Foundation
import X509

/// `server enroll --adopt`: taking over a server the original bash auto-ssl enrolled with the step
/// CLI. Its certificate (leaf + intermediate) and key stay where they are, in
/// `$AUTO_SSL_CERT_DIR/server.{crt,key}` unless its config.yaml or the operator says otherwise, and are
/// renewed once over mutual TLS by a CA that `ca import` made from the original CA; the original
/// tool's config.yaml and renewal units (`auto-ssl-renew.{service,timer}`, running `step ca renew`)
/// are copied unchanged to `$AUTO_SSL_DATA_DIR/adopted/` before ours replace them. Nothing changes
/// unless the CA renewed the certificate. No provisioner password is involved.
extension ServerAgent {
    /// Where the original tool's replaced files are kept (0700).
    public var adoptedDir: String { directories.dataDir + "/adopted" }
    public var keptConfigFile: String { adoptedDir + "/original-config.yaml" }
    public var keptUnitsDir: String { adoptedDir + "/original-units" }

    /// The server the original tool left, as found before anything is sent.
    public struct OriginalServer: Sendable {
        public var certPath: String
        public var keyPath: String
        /// config.yaml is in the original tool's format (it is copied, then replaced by ours).
        public var hasOriginalConfig: Bool
        /// config.yaml in our format (a CA on this machine, an earlier takeover), else empty.
        public var configuration: AutoSSLConfiguration
        public var chain: [Certificate]
        public var key: SigningKey
        public var leaf: Certificate { chain[0] }
    }

    /// The original tool wrote config.yaml with awk: `ca:` (`url`, `fingerprint`) and `server:`
    /// (`cert_path`, `key_path`, `sans` comma-separated), and never our `ca_url`.
    static func isOriginalConfig(_ text: String) -> Bool {
        let lines = text.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }
        guard !lines.contains(where: { $0.hasPrefix("ca_url:") }) else { return false }
        return lines.contains { $0.hasPrefix("cert_path:") || $0.hasPrefix("sans:") || $0.hasPrefix("steppath:") }
            || (lines.contains("ca:") && lines.contains { $0.hasPrefix("url:") })
    }

    /// `server.cert_path` and `server.key_path` of the original config.yaml, read line by line.
    static func originalServerPaths(_ text: String) -> (cert: String?, key: String?) {
        var inServer = false
        var cert: String?
        var key: String?
        for raw in text.split(whereSeparator: \.isNewline) {
            let line = String(raw)
            if let first = line.first, !first.isWhitespace {
                inServer = line.trimmingCharacters(in: .whitespaces) == "server:"
                continue
            }
            guard inServer else { continue }
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            for (prefix, isCert) in [("cert_path:", true), ("key_path:", false)] where trimmed.hasPrefix(prefix) {
                var value = String(trimmed.dropFirst(prefix.count)).trimmingCharacters(in: .whitespaces)
                if value.count >= 2, let q = value.first, q == "\"" || q == "'", value.last == q {
                    value = String(value.dropFirst().dropLast())
                }
                // Only an absolute path without control characters is taken; anything else is ignored.
                guard value.hasPrefix("/"), value.count <= 4096,
                      !value.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) else { continue }
                if isCert { cert = value } else { key = value }
            }
        }
        return (cert, key)
    }

    /// Finds the original tool's certificate and key (explicit paths, else `directory`, else the
    /// original config.yaml's paths, else `$AUTO_SSL_CERT_DIR/server.{crt,key}`) and checks that the
    /// key belongs to the certificate. Reads only.
    public func locateOriginal(directory: String?, certPath: String?, keyPath: String?) throws -> OriginalServer {
        var configuration = AutoSSLConfiguration()
        var hasOriginalConfig = false
        var configured: (cert: String?, key: String?) = (nil, nil)
        if FileOperations.exists(directories.configFile) {
            do {
                configuration = try AutoSSLConfiguration.load(from: directories.configFile)
            } catch {
                let text = try FileOperations.readText(directories.configFile)
                guard Self.isOriginalConfig(text) else { throw error }
                hasOriginalConfig = true
                configured = Self.originalServerPaths(text)
            }
        }
        let directory = directory.map(Directories.absolute)
        let cert = Directories.absolute(
            certPath ?? directory.map { $0 + "/server.crt" } ?? configured.cert ?? configuration.server?.certPath ?? directories.certDir + "/server.crt")
        let key = Directories.absolute(
            keyPath ?? directory.map { $0 + "/server.key" } ?? configured.key ?? configuration.server?.keyPath ?? directories.certDir + "/server.key")
        guard FileOperations.exists(cert) else {
            throw AutoSSLError.general(
                "no certificate at \(cert) to take over",
                hint: "the original auto-ssl keeps it in /etc/ssl/auto-ssl/server.crt; name another with --from DIR or --cert-path FILE, or enroll normally")
        }
        guard FileOperations.exists(key) else {
            throw AutoSSLError.general("no private key at \(key) to take over", hint: "name it with --key-path FILE")
        }
        let chain = try HolderFiles.chain(cert)
        let signingKey = try HolderFiles.key(key, matching: chain[0])
        return OriginalServer(
            certPath: cert, keyPath: key, hasOriginalConfig: hasOriginalConfig, configuration: configuration, chain: chain, key: signingKey)
    }

    /// The certificate file's chain must lead to the pinned root: leaf, intermediate(s), then the
    /// root (a copy of the root at the end of the file is allowed). Exit 6 otherwise.
    static func checkChain(_ chain: [Certificate], path: String, root: Certificate, fingerprint: String) throws {
        var links = chain
        if links.count > 1, let last = links.last, last == root { links.removeLast() }
        // A certificate that signs itself is nobody's leaf: no intermediate would make it this CA's.
        if links.count == 1, let only = links.first, only.issuer == only.subject {
            throw AutoSSLError(
                .trustFailure, "\(path) holds a self-signed certificate, not one issued by this CA (root fingerprint \(fingerprint))",
                hint: "a certificate from another CA cannot be taken over; enroll normally instead")
        }
        guard links.count >= 2 else {
            throw AutoSSLError(
                .trustFailure, "\(path) holds only the leaf certificate; the intermediate that signed it must follow it (as the step CLI writes it)",
                hint: "append the CA's intermediate certificate to \(path), or enroll normally")
        }
        for (child, parent) in zip(links, links.dropFirst() + [root]) {
            guard child.issuer == parent.subject, parent.publicKey.isValidSignature(child.signature, for: child) else {
                throw AutoSSLError(
                    .trustFailure,
                    "the certificate in \(path) was not issued by this CA (root fingerprint \(fingerprint)): \(printable(child.subject.description)) is not signed by \(printable(parent.subject.description))",
                    hint: "check --ca-url and --fingerprint; a certificate from another CA cannot be taken over, enroll normally instead")
            }
        }
    }

    /// A name from a certificate file, shown without control characters and at most 200 characters long.
    static func printable(_ text: String) -> String {
        String(String.UnicodeScalarView(text.unicodeScalars.prefix(200).map {
            $0.properties.generalCategory == .control ? "?" : $0
        }))
    }

    public struct AdoptionPlan: Sendable {
        public var caURLs: [String]
        public var provisioner: String
        public var reload: WebServer?
        public var reloadCommand: String?
        public var installTimer: Bool
        public var metricsFile: String?

        public init(caURLs: [String], provisioner: String, reload: WebServer?, reloadCommand: String?, installTimer: Bool, metricsFile: String?) {
            self.caURLs = caURLs
            self.provisioner = provisioner
            self.reload = reload
            self.reloadCommand = reloadCommand
            self.installTimer = installTimer
            self.metricsFile = metricsFile
        }
    }

    public struct AdoptionResult: Sendable {
        public var leaf: Certificate
        public var previousSerial: String
        public var enrollment: ServerEnrollment
        public var backedUpTo: String?
        /// Copies of the original tool's files made by this run.
        public var kept: [String]
        public var warnings: [String]
    }

    /// Checks the chain against `client`'s pinned root, has the CA renew it over mutual TLS (an x5c
    /// token past expiry, for the CA's grace window), then installs the renewed chain in place, the
    /// root next to it, and records the enrollment. Any failure before the CA's answer changes nothing.
    public func adopt(_ original: OriginalServer, plan: AdoptionPlan, client: CAClient, now: Date = Date()) async throws -> AdoptionResult {
        let lock = try holderLock()
        defer { lock.release() }
        try Self.checkChain(original.chain, path: original.certPath, root: client.root, fingerprint: client.rootFingerprint)
        // Before the CA is asked: the files it will replace must be writable together.
        let directory = (original.certPath as NSString).deletingLastPathComponent
        let rootPath = directory + "/ca.crt"
        let combinedPath = plan.reload?.wantsCombinedFile == true ? directory + "/server.pem" : nil
        try FileOperations.checkReplaceable(
            [original.certPath, rootPath] + (combinedPath.map { $0 == original.certPath ? [] : [$0] } ?? []) + (plan.metricsFile.map { [$0] } ?? []),
            reserved: AutoSSLConfiguration.reservedPaths(directories))
        let previousSerial = Self.serialText(original.leaf)
        let renewed: CAClient.SignedChain
        do {
            let method: CAClient.HolderAuthentication = now > original.leaf.notValidAfter ? .token : .mtls
            renewed = try await client.renew(chain: original.chain, key: original.key, method: method)
        } catch {
            throw Self.adoptionFailure(error, caURL: client.baseURL, fingerprint: client.rootFingerprint)
        }

        // The original tool's files are copied before anything of theirs is replaced.
        var kept: [String] = []
        if original.hasOriginalConfig {
            try makeAdoptedDir()
            if !FileOperations.exists(keptConfigFile) {
                let bytes = try Self.readBytes(directories.configFile)
                try FileOperations.writeAtomically(bytes, to: keptConfigFile, mode: 0o600)
                kept.append(keptConfigFile)
            }
        }
        kept += try keepOriginalUnits()

        var files: [(data: [UInt8], path: String, mode: mode_t)] = [
            (Array(renewed.pemChain.utf8), original.certPath, 0o644),
            (Array(try client.root.pemString().utf8), rootPath, 0o644),
        ]
        if let combinedPath {
            Self.add((Array((renewed.pemChain + original.key.pkcs8PEMRepresentation).utf8), combinedPath, 0o600), to: &files)
        }
        let replaced = try replaceKeepingBackup(files, certPath: original.certPath, keyPath: original.keyPath, now: now)
        let backedUpTo = replaced.backedUpTo
        var warnings = replaced.warnings
        if let mode = FileOperations.mode(of: original.keyPath), mode & 0o077 != 0 {
            warnings.append("\(original.keyPath) is readable by other users (mode \(String(mode & 0o777, radix: 8))); it was left as it is: chmod 600 it")
        }

        let existing = original.configuration.server
        var enrollment = ServerEnrollment(
            caURL: client.baseURL, fingerprint: client.rootFingerprint, names: renewed.leaf.subjectNames.map(\.description),
            certPath: original.certPath, keyPath: original.keyPath, rootPath: rootPath, combinedPath: combinedPath,
            keyType: original.key.algorithm.isRSA ? "rsa" : "ec", provisioner: plan.provisioner, duration: nil,
            reload: plan.reload?.rawValue, reloadCommand: plan.reloadCommand, renewalTimer: plan.installTimer, enrolledAt: now)
        enrollment.setURLs(plan.caURLs.isEmpty ? [client.baseURL] : plan.caURLs)
        enrollment.metricsFile = plan.metricsFile
        enrollment.renewAtFraction = existing?.renewAtFraction
        enrollment.adoption = existing?.adoption
            ?? .init(originalSerial: previousSerial, adoptedAt: now, keptIn: adoptedDir)
        // Read again: a CA on this machine may have changed its own section meanwhile.
        var configuration = original.hasOriginalConfig ? AutoSSLConfiguration() : try self.configuration()
        configuration.server = enrollment
        try configuration.save(to: directories.configFile)

        var state = ServerState.load(from: stateFile)
        state.revokedSerial = nil
        state.revokedAt = nil
        state.revocationNote = nil
        try? state.save(to: stateFile)
        _ = recordAttempt(
            "adopted", "certificate \(previousSerial) (enrolled by the original auto-ssl) renewed as \(Self.serialText(renewed.leaf))",
            success: true, now: now, caURL: client.baseURL)
        if let problem = writeMetrics(now: now) { warnings.append(problem) }
        return AdoptionResult(
            leaf: renewed.leaf, previousSerial: previousSerial, enrollment: enrollment, backedUpTo: backedUpTo, kept: kept, warnings: warnings)
    }

    /// A failed renewal of the certificate to take over (nothing was changed), with what to do next.
    static func adoptionFailure(_ error: any Error, caURL: String, fingerprint: String) -> AutoSSLError {
        var failure = error as? AutoSSLError ?? AutoSSLError.general("\(error)")
        // A CA that does not answer says so as it is; so does an error whose hint is its thrower's
        // own advice (an answer with a certificate for another key: the CA did not refuse).
        guard failure.kind != .network, !failure.hintIsFinal else { return failure }
        // A refusal says what the CA needs. A revoked certificate is never renewed, whoever issued it.
        if RenewalRefusal.isRevocation(failure.message) {
            failure.hint = "nothing was changed. A revoked certificate cannot be taken over: enroll normally (with a provisioner password): auto-ssl server enroll --ca-url \(caURL) --fingerprint \(fingerprint)"
            return failure
        }
        failure.hint = """
            nothing was changed. The CA renews a certificate it did not issue itself only when it was \
            made with `auto-ssl ca import` from the CA that issued it (config.yaml imported:) and the \
            certificate has not expired beyond its grace window; otherwise enroll normally (with a \
            provisioner password): auto-ssl server enroll --ca-url \(caURL) --fingerprint \(fingerprint)
            """
        return failure
    }

    func makeAdoptedDir() throws {
        try FileOperations.makeDirectory(directories.dataDir, mode: 0o755)
        try FileOperations.makeDirectory(adoptedDir, mode: 0o700, enforceMode: true)
    }

    static func readBytes(_ path: String) throws -> [UInt8] {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw AutoSSLError(.permissionDenied, "\(path) could not be read")
        }
        return Array(data)
    }

    /// Our units start with "# Written by auto-ssl"; any other file under their names is the
    /// original tool's (its service runs `step ca renew`).
    static func isOurUnit(_ text: String) -> Bool { text.hasPrefix("# Written by auto-ssl") }

    /// The renewal unit files in `$AUTO_SSL_SYSTEMD_DIR` that are not ours.
    public func originalUnits() -> [String] {
        [timerFile, serviceFile].filter { file in
            guard FileOperations.exists(file), let text = try? FileOperations.readText(file) else { return false }
            return !Self.isOurUnit(text)
        }
    }

    /// Copies the original tool's unit files, unchanged, to `adopted/original-units/` (a copy made
    /// by an earlier run is never overwritten). Returns the copies made now.
    func keepOriginalUnits() throws -> [String] {
        let originals = originalUnits()
        guard !originals.isEmpty else { return [] }
        try makeAdoptedDir()
        try FileOperations.makeDirectory(keptUnitsDir, mode: 0o700)
        var made: [String] = []
        for file in originals {
            let copy = keptUnitsDir + "/" + (file as NSString).lastPathComponent
            guard !FileOperations.exists(copy) else { continue }
            try FileOperations.writeAtomically(try Self.readBytes(file), to: copy, mode: 0o644)
            made.append(copy)
        }
        return made
    }

    public struct UnitTakeover: Sendable {
        /// The original tool's unit files found (their copies are in `keptUnitsDir`).
        public var originals: [String]
        /// true: its timer was stopped and disabled with systemctl; nil: systemd does not manage
        /// the units here (not running, or a custom directory).
        public var disabled: Bool?
        /// Our units, unless renewal was turned off.
        public var installed: UnitReport?
    }

    /// After a takeover: stops and disables the original tool's timer (its files were copied by
    /// `adopt`), then writes ours in their place unless `install` is false.
    public func takeOverRenewalUnits(executable: String, install: Bool) throws -> UnitTakeover {
        let originals = originalUnits()
        _ = try keepOriginalUnits()
        var disabled: Bool?
        if !originals.isEmpty, managesSystemd {
            let runner = SystemCommandRunner()
            guard let result = runner.run("systemctl", ["disable", "--now", SystemdUnits.renewTimerName], timeout: 60), result.status == 0 else {
                throw AutoSSLError.general(
                    "`systemctl disable --now \(SystemdUnits.renewTimerName)` failed: the original tool's timer may still run",
                    hint: "the certificate was taken over; run `systemctl disable --now \(SystemdUnits.renewTimerName)`, then this command again")
            }
            _ = runner.run("systemctl", ["stop", SystemdUnits.renewServiceName], timeout: 60)
            disabled = true
        }
        let installed = install ? try installRenewalUnits(executable: executable) : nil
        return UnitTakeover(originals: originals, disabled: disabled, installed: installed)
    }
}
