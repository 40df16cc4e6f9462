import AutoSSLConfig
import AutoSSLCore
import AutoSSLIO
import Foundation
import Crypto
import X509

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// What `ca import` is given: a step-ca directory (or one unpacked from an auto-ssl backup) and its secrets.
public struct CAImportOptions: Sendable {
    /// Recorded in config.yaml (`imported.source`): "step-ca" or "auto-ssl-backup".
    public var source = "step-ca"
    public var stepCADirectory: String
    /// Opens step-ca's CA keys.
    public var stepCAPassword: String
    /// The key password of the new CA; nil = the step-ca password.
    public var newCAPassword: String?
    /// Checked against every JWK provisioner's encryptedKey when given.
    public var provisionerPassword: String?
    /// Store the CA key password 0600 in `$AUTO_SSL_CONFIG_DIR/ca-password` (the original tool kept it there).
    public var storeCAPassword = false
    /// Lower step-ca durations above auto-ssl's 30-day maximum instead of refusing.
    public var clampDurations = false
    public var force = false
    /// Where the new CA serves; empty = ca.json's `address` (with `defaultHost` when it names no host).
    public var addresses: [ListenAddress] = []
    public var defaultHost = "127.0.0.1"
    public var kdfIterations = EncryptedPrivateKey.defaultIterations

    public init(stepCADirectory: String, stepCAPassword: String) {
        self.stepCADirectory = stepCADirectory
        self.stepCAPassword = stepCAPassword
    }
}

public struct CAImportReport: Sendable {
    public var settings: CASettings
    public var rootFingerprint: String
    /// What was carried over, one line each.
    public var carried: [String]
    /// What was found and not carried over, one line each.
    public var notCarried: [String]
    /// Things the operator should know (clamped durations, unverified keys, ...).
    public var notes: [String]
    public var previousCALocation: String?
    /// Where the CA key password was stored, when it was.
    public var storedPasswordFile: String?
}

/// `ca import`: a step-ca CA becomes an auto-ssl CA with the same root and intermediate (keys
/// re-encrypted in auto-ssl's format), the same JWK provisioners (their encryptedKey kept as it is,
/// so the same password opens it) and ACME provisioners, and the same durations. Everything is read
/// and checked in memory first; the CA then appears exactly as `ca init` makes one appear (staging
/// directory, one rename, the install transaction). The step-ca directory is only read.
extension CAInitializer {
    /// A key or certificate file is a few KiB; ca.json is bounded by `StepCAConfig.maximumBytes`.
    static let maximumStepFileBytes = 256 * 1024

    public func importStepCA(_ options: CAImportOptions, now: Date = Date()) throws -> CAImportReport {
        try checkNotInitialised(force: options.force)
        let directory = Self.canonicalDirectory(options.stepCADirectory)
        guard FileOperations.exists(directory + "/config/ca.json") else {
            throw AutoSSLError.general(
                "\(directory) is not a step-ca directory: config/ca.json is missing",
                hint: "pass the directory step-ca runs from ($STEPPATH, e.g. /etc/step-ca or ~/.step)")
        }
        let config = try StepCAConfig.parse(try Self.readStepFile(directory, "config/ca.json", limit: StepCAConfig.maximumBytes))
        var carried: [String] = []
        var notCarried = config.notCarried
        var notes: [String] = []

        // Root and intermediate: the intermediate must be a CA certificate the root signed.
        var roots: [Certificate] = []
        for path in config.roots {
            roots.append(try Self.certificate(try Self.readStepFile(directory, path, limit: Self.maximumStepFileBytes), what: "root certificate \(StepCAConfig.printable(path))"))
        }
        let intermediate = try Self.certificate(
            try Self.readStepFile(directory, config.intermediateCertificate, limit: Self.maximumStepFileBytes), what: "intermediate certificate")
        guard let root = roots.first(where: { $0.subject == intermediate.issuer && $0.publicKey.isValidSignature(intermediate.signature, for: intermediate) }) else {
            throw AutoSSLError.general("the intermediate certificate in ca.json's \"crt\" was not signed by its root; nothing was changed")
        }
        if let algorithm = KeyAlgorithm(publicKey: root.publicKey), [.p256, .rsa2048, .rsa3072].contains(algorithm) {
            notes.append(
                "the root's key is \(algorithm.rawValue), weaker than the P-384 or RSA 4096 that auto-ssl gives the roots it makes; it is kept, since another root would have to be trusted again on every client (for a stronger root later, start a new CA with `auto-ssl ca init` and enroll the servers again)")
        }
        for other in roots where other != root {
            notCarried.append("root \(other.commonName ?? other.subject.description) (only the root that issued the intermediate is kept)")
        }
        guard case .isCertificateAuthority = (try? intermediate.extensions.basicConstraints) ?? .notCertificateAuthority else {
            throw AutoSSLError.general("the intermediate certificate is not a CA certificate (basicConstraints); nothing was changed")
        }
        guard intermediate.notValidAfter > now else {
            throw AutoSSLError.general(
                "the intermediate certificate expired on \(AuditLog.timestamp(intermediate.notValidAfter)); nothing was changed",
                hint: "renew the intermediate in step-ca first (or start a new CA with `auto-ssl ca init`)")
        }

        // Keys: the password must open the intermediate key (and the root key when there is one).
        let intermediateKey = try Self.openKey(
            try Self.readStepFile(directory, config.intermediateKey, limit: Self.maximumStepFileBytes), password: options.stepCAPassword,
            what: "intermediate key", matching: intermediate)
        var rootKey: CAKeyFile.Opened?
        if let bytes = try Self.readOptionalStepFile(directory, "secrets/root_ca_key") {
            rootKey = try Self.openKey(bytes, password: options.stepCAPassword, what: "root key", matching: root)
        } else {
            notes.append("step-ca's directory has no root key (secrets/root_ca_key): the CA issues and renews, but `ca rotate-intermediate` needs the root key in \(directories.caDir)/secrets/root_ca_key")
        }
        let keyType: CAKeyType
        switch intermediateKey.key.algorithm {
        case .p256, .p384: keyType = .ec
        case .rsa2048, .rsa3072, .rsa4096: keyType = .rsa
        }
        let caPassword = options.newCAPassword ?? options.stepCAPassword
        do {
            try Passwords.validate(caPassword, purpose: "CA key password")
        } catch {
            throw AutoSSLError.invalidArgument(
                options.newCAPassword == nil
                    ? "step-ca's key password is shorter than \(Passwords.minimumLength) characters, the least auto-ssl keeps CA keys under; nothing was changed"
                    : "the new CA key password is shorter than \(Passwords.minimumLength) characters; nothing was changed",
                hint: "give a longer one for the imported keys with --new-password-file")
        }

        // Durations: step-ca's (with its defaults for what ca.json leaves out) mapped to ours.
        var durations = DurationMapper(clamp: options.clampDurations)
        let base = try durations.map(config.claims, inherited: .stepCADefaults, where: "authority.claims", isBase: true)

        // Provisioners.
        let paths = CAPaths(caDir: directories.caDir)
        var provisioners: [ProvisionerSettings] = []
        var jwes: [String: String] = [:]
        var acmeProvisioners: [ACMEProvisionerSettings] = []
        var openedByPassword = 0
        var unopened: [String] = []
        for provisioner in config.provisioners {
            let label = StepCAConfig.printable(provisioner.name)
            switch provisioner {
            case .other(let type, _):
                notCarried.append("provisioner \"\(label)\" of type \(type) (auto-ssl has password (JWK) and ACME provisioners)")
                continue
            case .jwk(let jwk):
                if let reason = Self.nameProblem(jwk.name) {
                    notCarried.append("JWK provisioner \"\(label)\": \(reason)")
                    continue
                }
                guard jwk.key.kty == "EC", jwk.key.crv == "P-256", let x = jwk.key.x, let y = jwk.key.y else {
                    notCarried.append("JWK provisioner \"\(label)\": its key is \(StepCAConfig.printable(jwk.key.kty)) \(StepCAConfig.printable(jwk.key.crv ?? "")) (auto-ssl's provisioner keys are EC P-256)")
                    continue
                }
                var publicJWK = ECJWK(publicKey: try Self.p256(x: x, y: y, name: label))
                publicJWK.kid = jwk.key.kid ?? publicJWK.thumbprint
                guard let encryptedKey = jwk.encryptedKey?.trimmingCharacters(in: .whitespacesAndNewlines) else {
                    notCarried.append("JWK provisioner \"\(label)\": ca.json holds no encryptedKey, so clients cannot fetch its key (add a provisioner with `auto-ssl ca provisioner add`)")
                    continue
                }
                guard let header = StepCAConfig.jweParameters(encryptedKey) else {
                    throw AutoSSLError.general("the encryptedKey of provisioner \"\(label)\" is not a compact JWE; nothing was changed")
                }
                guard header.alg == "PBES2-HS256+A128KW", header.enc == "A256GCM", let p2c = header.p2c,
                      (1_000...PasswordJWE.maximumIterations).contains(p2c) else {
                    notCarried.append("JWK provisioner \"\(label)\": its encryptedKey uses \(header.alg)/\(header.enc), which auto-ssl clients do not open (PBES2-HS256+A128KW with A256GCM and 1,000 to 10,000,000 iterations)")
                    continue
                }
                if let password = options.provisionerPassword {
                    if let plaintext = try? PasswordJWE.decrypt(encryptedKey, password: password) {
                        guard let privateJWK = try? JSONDecoder().decode(ECJWK.self, from: plaintext),
                              let privateKey = try? privateJWK.privateKey(),
                              privateKey.publicKey.rawRepresentation == (try publicJWK.publicKey()).rawRepresentation else {
                            throw AutoSSLError.general("the encryptedKey of provisioner \"\(label)\" opens, but does not hold the private half of its public key; nothing was changed")
                        }
                        openedByPassword += 1
                        carried.append("JWK provisioner \"\(label)\" (kid \(publicJWK.kid ?? "")): encryptedKey kept as it is; the provisioner password opens it")
                    } else {
                        unopened.append(label)
                        carried.append("JWK provisioner \"\(label)\" (kid \(publicJWK.kid ?? "")): encryptedKey kept as it is; NOT verified (the given provisioner password does not open it)")
                    }
                } else {
                    carried.append("JWK provisioner \"\(label)\" (kid \(publicJWK.kid ?? "")): encryptedKey kept as it is; not verified (no provisioner password was given)")
                }
                let policy = try durations.map(jwk.claims, inherited: base, where: "provisioner \"\(label)\"", isBase: false)
                provisioners.append(ProvisionerSettings(
                    name: jwk.name, type: "JWK", publicKey: try publicJWK.jsonString(),
                    encryptedKeyFile: paths.provisionerKeyFile(jwk.name), policy: policy))
                jwes[jwk.name] = encryptedKey
                notCarried += jwk.notCarried.map { "JWK provisioner \"\(label)\": \($0)" }
            case .acme(let acme):
                if let reason = Self.nameProblem(acme.name) {
                    notCarried.append("ACME provisioner \"\(label)\": \(reason)")
                    continue
                }
                let given = acme.challenges ?? ACMEProvisionerSettings.allChallenges
                let challenges = given.filter(ACMEProvisionerSettings.allChallenges.contains)
                for dropped in given where !challenges.contains(dropped) {
                    notCarried.append("ACME provisioner \"\(label)\": challenge \(StepCAConfig.printable(dropped))")
                }
                guard !challenges.isEmpty else {
                    notCarried.append("ACME provisioner \"\(label)\": none of its challenges is one auto-ssl validates (http-01, dns-01, tls-alpn-01)")
                    continue
                }
                let policy = try durations.map(acme.claims, inherited: base, where: "provisioner \"\(label)\"", isBase: false)
                acmeProvisioners.append(ACMEProvisionerSettings(name: acme.name, challenges: challenges, requireEAB: acme.requireEAB, policy: policy))
                carried.append("ACME provisioner \"\(label)\": \(challenges.joined(separator: ", "))\(acme.requireEAB ? ", external account binding required" : "")")
                if acme.requireEAB {
                    notes.append("ACME provisioner \"\(label)\" requires external account binding: its EAB keys and accounts were in step-ca's database; make new keys with `auto-ssl ca provisioner eab add \(acme.name)`")
                }
                notCarried += acme.notCarried.map { "ACME provisioner \"\(label)\": \($0)" }
            }
        }
        if options.provisionerPassword != nil, !jwes.isEmpty, openedByPassword == 0 {
            throw AutoSSLError.general(
                "the provisioner password opens none of the JWK provisioners' keys (\(unopened.joined(separator: ", "))); nothing was changed",
                hint: "give the password the provisioners were created with, or leave --provisioner-password-file out to import them unverified")
        }
        if provisioners.isEmpty {
            notes.append("no password (JWK) provisioner was carried over: add one with `auto-ssl ca provisioner add NAME` before enrolling servers")
        }
        if let databaseType = config.databaseType {
            notCarried.append("the \(databaseType) database (step-ca's records of issued and revoked certificates, ACME accounts and orders, EAB keys): auto-ssl starts a new database; certificates issued before the import renew by mutual TLS")
        }
        notCarried += Self.unsupportedFiles(in: directory)
        notes += durations.notes

        // Addresses and names.
        let addresses: [ListenAddress]
        if !options.addresses.isEmpty {
            addresses = options.addresses
        } else if let text = config.address, let parsed = try? ListenAddress(parsing: text) {
            if parsed.host.isEmpty || parsed.host == "0.0.0.0" || parsed.host == "::" {
                addresses = [ListenAddress(host: options.defaultHost, port: parsed.port)]
                notes.append("step-ca listened on every interface (\(StepCAConfig.printable(text))); the CA serves on \(addresses[0]) (choose with --address)")
            } else {
                addresses = [parsed]
            }
        } else {
            addresses = [ListenAddress(host: options.defaultHost, port: 9000)]
            notes.append("ca.json names no usable address; the CA serves on \(addresses[0]) (choose with --address)")
        }
        var dnsNames: [String] = []
        for name in config.dnsNames {
            let lowered = name.lowercased()
            if (try? SubjectName(parsing: lowered)) != nil, !addresses.contains(where: { $0.host.lowercased() == lowered }), !dnsNames.contains(lowered) {
                dnsNames.append(lowered)
            } else if (try? SubjectName(parsing: lowered)) == nil {
                notCarried.append("dnsNames entry \"\(StepCAConfig.printable(name))\" (not a DNS name or IP address)")
            }
        }

        let name = Self.caName(from: root)
        var settings = CASettings(
            name: name, addresses: addresses, dnsNames: dnsNames, keyType: keyType,
            defaultDuration: base?.defaultDuration ?? "168h", minimumDuration: base?.minimumDuration ?? "5m",
            maximumDuration: base?.maximumDuration ?? "720h",
            passwordFile: options.storeCAPassword ? directories.caPasswordFile : nil,
            provisioners: provisioners, paths: paths, createdAt: now,
            acmeProvisioners: acmeProvisioners.isEmpty ? nil : acmeProvisioners)
        settings.imported = ImportOrigin(source: options.source, importedAt: now)
        // The policy of every provisioner must hold on top of the CA's, as `ca provisioner add` requires.
        for policy in [PolicySettings?.none] + provisioners.map(\.policy) + acmeProvisioners.map(\.policy) {
            _ = try IssuancePolicy(settings.basePolicySettings.overlaid(by: policy))
        }

        // Everything is known and checked: write the CA.
        let encryptedIntermediate = try EncryptedPrivateKey.encrypt(
            pkcs8: intermediateKey.key.pkcs8DERRepresentation, password: caPassword, iterations: options.kdfIterations)
        let encryptedRoot = try rootKey.map {
            try EncryptedPrivateKey.encrypt(pkcs8: $0.key.pkcs8DERRepresentation, password: caPassword, iterations: options.kdfIterations)
        }
        try FileOperations.makeDirectory(directories.dataDir, mode: 0o755)
        try FileOperations.makeDirectory(directories.configDir, mode: 0o755)
        removeStaleStagingDirectories()
        let staging = directories.dataDir + "/.ca-staging-" + Passwords.generate(length: 8)
        var stagingInstalled = false
        defer {
            if !stagingInstalled { try? FileOperations.removeTree(staging) }
        }
        try FileOperations.makeDirectory(staging, mode: 0o700)
        let stagingPaths = CAPaths(caDir: staging)
        try FileOperations.makeDirectory(staging + "/certs", mode: 0o755)
        try FileOperations.makeDirectory(stagingPaths.secretsDir, mode: 0o700)
        try FileOperations.makeDirectory(stagingPaths.databaseDir, mode: 0o700)
        try FileOperations.writeAtomically(try root.pemString(), to: stagingPaths.rootCertificate, mode: 0o644)
        try FileOperations.writeAtomically(try intermediate.pemString(), to: stagingPaths.intermediateCertificate, mode: 0o644)
        if let encryptedRoot { try FileOperations.writeAtomically(encryptedRoot, to: stagingPaths.rootKey, mode: 0o600) }
        // The root's first CRL (number 1, empty), as `ca init` writes it, when the root key came
        // along: clients that check a CRL for every certificate of the chain find one for the root.
        if let rootKey {
            let crl = try CRLBuilder.build(
                issuer: root, issuerKey: rootKey.key, number: IntermediateRotation.firstRootCRLNumber,
                thisUpdate: now.addingTimeInterval(-CAMaterial.backdate),
                nextUpdate: root.notValidAfter, entries: [])
            try IntermediateRotation.writeRootCRL(crl, state: .init(crlNumber: IntermediateRotation.firstRootCRLNumber, revoked: []), caDir: staging)
        }
        try FileOperations.writeAtomically(encryptedIntermediate, to: stagingPaths.intermediateKey, mode: 0o600)
        for provisioner in provisioners {
            guard let jwe = jwes[provisioner.name] else { continue }
            try FileOperations.writeAtomically(jwe + "\n", to: stagingPaths.provisionerKeyFile(provisioner.name), mode: 0o600)
        }
        guard chmod(staging, 0o755) == 0 else { throw FileOperations.systemError(errno, "set the mode of \(staging)") }
        try FileOperations.syncDirectory(staging)

        var transaction = InstallTransaction(directories: directories, logger: logger)
        do {
            if options.force, try existingCA() != nil {
                try transaction.moveExistingCAAside(suffix: "replaced-" + FileOperations.timestamp(now))
            }
            try FileOperations.move(staging, to: directories.caDir)
            stagingInstalled = true
            transaction.installedCADirectory = true
            if options.storeCAPassword {
                try transaction.writeSecret(caPassword, to: directories.caPasswordFile)
            }
            try transaction.installCASettings(settings)
        } catch {
            transaction.rollBack()
            throw error
        }

        let fingerprint = try Fingerprint.sha256(of: root)
        carried.insert(contentsOf: [
            "root \"\(root.commonName ?? "")\" (SHA-256 \(fingerprint))" + (rootKey == nil ? ", without its key" : ", key re-encrypted (was \(rootKey?.format ?? ""))"),
            "intermediate \"\(intermediate.commonName ?? "")\" (expires \(AuditLog.timestamp(intermediate.notValidAfter))), key re-encrypted (was \(intermediateKey.format))",
            "durations: default \(settings.defaultDuration), minimum \(settings.minimumDuration), maximum \(settings.maximumDuration)",
        ], at: 0)
        if !intermediateKey.wasEncrypted || rootKey?.wasEncrypted == false {
            notes.append("step-ca kept a CA key unencrypted; auto-ssl keeps it encrypted under the CA key password from now on")
        }
        if let provisionerPassword = options.provisionerPassword, provisionerPassword == caPassword, !provisioners.isEmpty {
            notes.append("the provisioner password is the CA key password (as the original auto-ssl set it up); servers know the provisioner password, so give the provisioners their own with `auto-ssl ca provisioner password NAME`")
        }
        return CAImportReport(
            settings: settings, rootFingerprint: fingerprint, carried: carried, notCarried: notCarried, notes: notes,
            previousCALocation: transaction.movedAside, storedPasswordFile: options.storeCAPassword ? directories.caPasswordFile : nil)
    }

    // MARK: - Reading the step-ca directory

    static func canonicalDirectory(_ path: String) -> String {
        var absolute = Directories.absolute(path)
        while absolute.count > 1, absolute.hasSuffix("/") { absolute.removeLast() }
        return absolute
    }

    /// Where a path from ca.json lies inside the step-ca directory. step-ca writes absolute paths
    /// under its $STEPPATH, which need not be where the directory is now (a copy, a backup): an
    /// absolute path outside `directory` is taken by its last two components when those are
    /// `certs/NAME`, `secrets/NAME` or `config/NAME`. Nothing outside the directory is ever read.
    static func relativePath(_ path: String, in directory: String) throws -> String {
        var relative: String
        if path.hasPrefix(directory + "/") {
            relative = String(path.dropFirst(directory.count + 1))
        } else if path.hasPrefix("/") {
            let parts = path.split(separator: "/")
            guard parts.count >= 2, ["certs", "secrets", "config"].contains(parts[parts.count - 2]) else {
                throw AutoSSLError.general(
                    "step-ca's ca.json names \(StepCAConfig.printable(path)), outside the step-ca directory; nothing was changed",
                    hint: "copy the file into \(directory)/certs or \(directory)/secrets and point ca.json at it")
            }
            relative = parts.suffix(2).joined(separator: "/")
        } else {
            relative = path
        }
        let components = relative.split(separator: "/").filter { $0 != "." }
        guard !components.isEmpty, !components.contains("..") else {
            throw AutoSSLError.general("step-ca's ca.json names \(StepCAConfig.printable(path)), which is not a file in the step-ca directory; nothing was changed")
        }
        relative = components.joined(separator: "/")
        return relative
    }

    static func readStepFile(_ directory: String, _ path: String, limit: Int) throws -> [UInt8] {
        let relative = try relativePath(path, in: directory)
        guard let bytes = try readRegularFile(directory + "/" + relative, limit: limit) else {
            throw AutoSSLError.general(
                "\(directory)/\(relative) (named by ca.json) is missing; nothing was changed",
                hint: "import from the complete step-ca directory")
        }
        return bytes
    }

    static func readOptionalStepFile(_ directory: String, _ relative: String) throws -> [UInt8]? {
        try readRegularFile(directory + "/" + relative, limit: maximumStepFileBytes)
    }

    /// The bytes of a regular file (never a device or FIFO, not through a final symbolic link), at
    /// most `limit`; nil when there is no such file.
    static func readRegularFile(_ path: String, limit: Int) throws -> [UInt8]? {
        let descriptor = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK)
        guard descriptor >= 0 else {
            let failure = errno
            if failure == ENOENT { return nil }
            if failure == EACCES { throw AutoSSLError(.permissionDenied, "cannot read \(path): permission denied", hint: "run as root or as step-ca's user") }
            if failure == ELOOP { throw AutoSSLError.general("\(path) is a symbolic link; refusing to follow it", hint: "copy the file it points to in its place") }
            throw FileOperations.systemError(failure, "open \(path)")
        }
        let handle = FileHandle(fileDescriptor: descriptor, closeOnDealloc: true)
        var status = stat()
        guard fstat(descriptor, &status) == 0, status.st_mode & S_IFMT == S_IFREG else {
            throw AutoSSLError.general("\(path) is not a regular file")
        }
        guard Int(status.st_size) <= limit else { throw AutoSSLError.general("\(path) is larger than \(limit / 1024) KiB; it is not what ca.json says it is") }
        let data = try handle.read(upToCount: limit + 1) ?? Data()
        guard data.count <= limit else { throw AutoSSLError.general("\(path) is larger than \(limit / 1024) KiB") }
        return Array(data)
    }

    static func certificate(_ bytes: [UInt8], what: String) throws -> Certificate {
        guard let text = String(bytes: bytes, encoding: .utf8), let certificate = try? Certificate(pemEncoded: text) else {
            throw AutoSSLError.general("step-ca's \(what) is not a PEM certificate; nothing was changed")
        }
        return certificate
    }

    static func openKey(_ bytes: [UInt8], password: String, what: String, matching certificate: Certificate) throws -> CAKeyFile.Opened {
        guard let text = String(bytes: bytes, encoding: .utf8) else {
            throw AutoSSLError.general("step-ca's \(what) is not a PEM file; nothing was changed")
        }
        let opened: CAKeyFile.Opened
        do {
            opened = try CAKeyFile.open(pem: text, password: password)
        } catch let error as AutoSSLError {
            if error.message.contains("wrong password") {
                throw AutoSSLError.general(
                    "the password does not open step-ca's \(what); nothing was changed",
                    hint: "give step-ca's CA key password (the one `step-ca --password-file` reads) with --password-file")
            }
            throw AutoSSLError.general("step-ca's \(what) could not be read: \(error.message); nothing was changed", hint: error.hint)
        }
        guard opened.key.publicKey == certificate.publicKey else {
            throw AutoSSLError.general("step-ca's \(what) does not belong to its certificate; nothing was changed")
        }
        return opened
    }

    static func p256(x: String, y: String, name: String) throws -> P256.Signing.PublicKey {
        var jwk = ECJWK.generatePrivate().publicOnly
        jwk.x = x
        jwk.y = y
        do {
            return try jwk.publicKey()
        } catch {
            throw AutoSSLError.general("the public key of provisioner \"\(name)\" is not a valid P-256 point; nothing was changed")
        }
    }

    /// Why auto-ssl cannot use a provisioner name, or nil.
    static func nameProblem(_ name: String) -> String? {
        do {
            try ProvisionerName.validate(name)
            return nil
        } catch {
            return "its name is not one auto-ssl accepts (1-64 letters, digits, dots, underscores, hyphens or @); add it again under another name with `auto-ssl ca provisioner add`"
        }
    }

    /// "Example Root CA" → "Example"; at most 48 characters, as `ca init --name`.
    static func caName(from root: Certificate) -> String {
        var name = root.commonName ?? "Imported CA"
        for suffix in [" Root CA", " Root"] where name.hasSuffix(suffix) && name.count > suffix.count {
            name = String(name.dropLast(suffix.count))
            break
        }
        name = String(name.unicodeScalars.filter { !CharacterSet.controlCharacters.contains($0) }.map(Character.init)).trimmingCharacters(in: .whitespaces)
        if name.isEmpty { name = "Imported CA" }
        return String(name.prefix(48))
    }

    /// Files and directories of a step-ca directory that are not carried over.
    static func unsupportedFiles(in directory: String) -> [String] {
        var found: [String] = []
        if let templates = try? FileManager.default.contentsOfDirectory(atPath: directory + "/templates"), !templates.isEmpty {
            found.append("templates/ (certificate templates: auto-ssl issues its own fixed profile)")
        }
        let secrets = (try? FileManager.default.contentsOfDirectory(atPath: directory + "/secrets")) ?? []
        let ssh = secrets.filter { $0.hasPrefix("ssh_") }.sorted()
        if !ssh.isEmpty { found.append("secrets/\(ssh.joined(separator: ", secrets/")) (the SSH CA's keys)") }
        return found
    }
}

/// Maps step-ca claims to auto-ssl's durations: step-ca's maximum above 30 days is refused (or
/// clamped), its minimum below 5 minutes raised to 5 minutes, the default kept within the two.
struct DurationMapper {
    let clamp: Bool
    var notes: [String] = []

    static let floor: Int64 = CAInitOptions.minimumDuration.seconds
    static let ceiling: Int64 = CAInitOptions.durationCeiling.seconds

    /// For the CA (`isBase`): every field, with step-ca's defaults for what is missing. For a
    /// provisioner: only the fields its claims set (nil when none), the rest inherited.
    mutating func map(
        _ claims: StepCAConfig.Claims, inherited: StepCAConfig.Claims, where place: String, isBase: Bool
    ) throws -> PolicySettings? {
        let result = try map(claims, inheritedSeconds: inherited, where: place, isBase: isBase)
        return result
    }

    mutating func map(_ claims: StepCAConfig.Claims, inherited base: PolicySettings?, where place: String, isBase: Bool) throws -> PolicySettings? {
        let inherited = StepCAConfig.Claims(
            minimum: base?.minimumDuration.flatMap { try? CertificateDuration(parsing: $0).seconds },
            maximum: base?.maximumDuration.flatMap { try? CertificateDuration(parsing: $0).seconds },
            defaultDuration: base?.defaultDuration.flatMap { try? CertificateDuration(parsing: $0).seconds })
        return try map(claims, inheritedSeconds: inherited, where: place, isBase: isBase)
    }

    private mutating func map(
        _ claims: StepCAConfig.Claims, inheritedSeconds inherited: StepCAConfig.Claims, where place: String, isBase: Bool
    ) throws -> PolicySettings? {
        if !isBase, claims.minimum == nil, claims.maximum == nil, claims.defaultDuration == nil { return nil }
        var minimum = claims.minimum ?? inherited.minimum ?? Self.floor
        var maximum = claims.maximum ?? inherited.maximum ?? Self.ceiling
        var defaultDuration = claims.defaultDuration ?? inherited.defaultDuration ?? min(maximum, 168 * 3_600)
        if maximum > Self.ceiling {
            guard clamp else {
                throw AutoSSLError.general(
                    "step-ca's maximum certificate lifetime for \(place) is \(CertificateDuration(seconds: maximum)), above auto-ssl's maximum of 30 days (720h); nothing was changed",
                    hint: "rerun with --clamp-durations to lower it to 720h (certificates then live at most 30 days), or lower maxTLSCertDuration in step-ca first")
            }
            notes.append("\(place): maximum lifetime \(CertificateDuration(seconds: maximum)) lowered to 720h (--clamp-durations)")
            maximum = Self.ceiling
        }
        if minimum < Self.floor {
            notes.append("\(place): minimum lifetime \(CertificateDuration(seconds: minimum)) raised to 5m, auto-ssl's shortest")
            minimum = Self.floor
        }
        if maximum < Self.floor { maximum = Self.floor }
        if minimum > maximum { minimum = maximum }
        if defaultDuration > maximum {
            if claims.defaultDuration != nil || isBase { notes.append("\(place): default lifetime \(CertificateDuration(seconds: defaultDuration)) lowered to the maximum \(CertificateDuration(seconds: maximum))") }
            defaultDuration = maximum
        }
        if defaultDuration < minimum { defaultDuration = minimum }
        let text = { (seconds: Int64) in CertificateDuration(seconds: seconds).description }
        if isBase {
            return PolicySettings(defaultDuration: text(defaultDuration), minimumDuration: text(minimum), maximumDuration: text(maximum))
        }
        // A provisioner keeps what differs from the CA's, so a later change of the CA's applies to it.
        var policy = PolicySettings()
        if claims.minimum != nil || minimum != inherited.minimum { policy.minimumDuration = text(minimum) }
        if claims.maximum != nil || maximum != inherited.maximum { policy.maximumDuration = text(maximum) }
        if claims.defaultDuration != nil || defaultDuration != inherited.defaultDuration { policy.defaultDuration = text(defaultDuration) }
        return policy == PolicySettings() ? nil : policy
    }
}
