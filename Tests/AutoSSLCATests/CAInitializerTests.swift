@testable import AutoSSLCA
import AutoSSLConfig
import AutoSSLCore
import AutoSSLIO
import Foundation
import Testing
import TestSupport
import X509

@Suite struct CAInitializerTests {
    /// `ca status`, `ca replica list`, `ca database migrate` and backup manifests show the
    /// database URL of config.yaml, which is edited by hand: a password in it is never shown.
    @Test func aDatabaseURLIsShownOnlyInItsCanonicalFormWithoutAPassword() {
        #expect(DatabaseSettings(url: "postgresql://ca@db.internal/auto_ssl").displayURL == "postgres://ca@db.internal:5432/auto_ssl")
        for unsafe in ["postgres://ca:hunter2@db.internal/auto_ssl", "hunter2", "postgres://ca@db.internal/auto_ssl?password=hunter2"] {
            #expect(!DatabaseSettings(url: unsafe).displayURL.contains("hunter2"), "\(unsafe)")
        }
    }

    /// database.password_file names the file the PostgreSQL password is read from: when it is gone
    /// or relative (a hand edit), the command says so and names it, instead of connecting without a
    /// password and failing with the server's "no password supplied".
    @Test func aRecordedDatabasePasswordFileThatIsMissingOrRelativeIsNamed() throws {
        let dir = TemporaryDirectory()
        let loader = AuthorityLoader(directories: directories(dir))
        let location = try PostgresLocation(url: "postgres://ca@db.internal/auto_ssl")
        let missing = dir.file("gone-database-password")
        #expect {
            _ = try loader.databasePassword(explicitFile: nil, settings: DatabaseSettings(url: location.description, passwordFile: missing), location: location)
        } throws: { error in
            "\(error)".contains(missing) && "\(error)".contains("does not exist")
        }
        #expect {
            _ = try loader.databasePassword(explicitFile: nil, settings: DatabaseSettings(url: location.description, passwordFile: "db-password"), location: location)
        } throws: { error in
            "\(error)".contains("db-password") && "\(error)".contains("relative path")
        }
        try "a-database-password\n".write(toFile: missing, atomically: true, encoding: .utf8)
        #expect(try loader.databasePassword(
            explicitFile: nil, settings: DatabaseSettings(url: location.description, passwordFile: missing), location: location) == "a-database-password")
    }

    func directories(_ dir: TemporaryDirectory) -> Directories {
        Directories(
            configDir: dir.file("etc"), dataDir: dir.file("data"), certDir: dir.file("certs"),
            systemdDir: dir.file("systemd"))
    }

    func options(force: Bool = false) -> CAInitOptions {
        var options = CAInitOptions()
        options.name = "Unit CA"
        options.addresses = [ListenAddress(host: "127.0.0.1", port: 9443)]
        options.caPassword = .given("ca-password-0123456789")
        options.provisionerPassword = .generate
        options.force = force
        return options
    }

    /// config.yaml as written reads back equal, and so does a hand edit that spells booleans the
    /// YAML 1.1 way (`yes`, `off`), leaves a key empty, or quotes a string.
    @Test func configurationFileReadsBackAndAcceptsHandEditedSpellings() throws {
        let dir = TemporaryDirectory()
        let dirs = directories(dir)
        var settings = try CAInitializer(directories: dirs).initialise(options()).settings
        settings.metricsTLS = true
        settings.dashboard = false
        settings.dashboardAllow = ["10.0.0.0/8", "127.0.0.1/32"]
        let written = AutoSSLConfiguration(ca: settings)
        let path = dir.file("config.yaml")
        try written.yamlString().write(toFile: path, atomically: true, encoding: .utf8)
        #expect(try AutoSSLConfiguration.load(from: path) == written)

        var text = try written.yamlString()
        text = text.replacingOccurrences(of: "metrics_tls: true", with: "metrics_tls: yes")
            .replacingOccurrences(of: "dashboard: false", with: "dashboard: off")
        #expect(text.contains("metrics_tls: yes") && text.contains("dashboard: off"), "\(text)")
        text += "server: ~\n"
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        #expect(try AutoSSLConfiguration.load(from: path) == written)

        try "ca:\n  name: 'true'\n".write(toFile: path, atomically: true, encoding: .utf8)
        #expect(throws: AutoSSLError.self) { try AutoSSLConfiguration.load(from: path) }
        // An empty file is not a missing one: it is reported as damaged, not read as "no CA".
        try "".write(toFile: path, atomically: true, encoding: .utf8)
        #expect(throws: AutoSSLError.self) { try AutoSSLConfiguration.load(from: path) }
        // The hint fits the machine: a CA comes back from a backup, a server enrolls again.
        try "ca:\n  name: 'true'\n".write(toFile: path, atomically: true, encoding: .utf8)
        let caHint = #expect(throws: AutoSSLError.self) { try AutoSSLConfiguration.load(from: path) }
        #expect(caHint?.hint?.contains("ca restore --force") == true, "\(String(describing: caHint))")
        try "server:\n  renew_at_fraction: abc\n".write(toFile: path, atomically: true, encoding: .utf8)
        let serverHint = #expect(throws: AutoSSLError.self) { try AutoSSLConfiguration.load(from: path) }
        #expect(serverHint?.hint?.contains("server enroll") == true && serverHint?.hint?.contains("ca restore") == false, "\(String(describing: serverHint))")
    }

    @Test func createsTheLayoutWithTightModes() throws {
        let dir = TemporaryDirectory()
        let dirs = directories(dir)
        let result = try CAInitializer(directories: dirs).initialise(options())
        let paths = result.settings.paths
        #expect(fileMode(paths.secretsDir) == 0o700)
        #expect(fileMode(paths.rootKey) == 0o600)
        #expect(fileMode(paths.intermediateKey) == 0o600)
        #expect(fileMode(paths.provisionerKeyFile("admin")) == 0o600)
        #expect(fileMode(paths.databaseDir) == 0o700)
        #expect(fileMode(paths.rootCertificate) == 0o644)
        #expect(fileMode(dirs.provisionerPasswordFile) == 0o600)
        #expect(!FileOperations.exists(dirs.caPasswordFile))  // it was given, so it is not stored
        #expect(result.generatedPasswordFiles.map(\.path) == [dirs.provisionerPasswordFile])

        let root = try Certificate(pemEncoded: try readFile(paths.rootCertificate))
        #expect(try Fingerprint.sha256(of: root) == result.rootFingerprint)
        let key = try EncryptedPrivateKey.decryptKey(pem: try readFile(paths.rootKey), password: "ca-password-0123456789")
        #expect(key.publicKey == root.publicKey)

        // The provisioner key decrypts with the generated password and matches the public JWK in config.yaml.
        let provisionerPassword = Passwords.fromFileContents(try readFile(dirs.provisionerPasswordFile))
        let jwe = try readFile(paths.provisionerKeyFile("admin"))
        let privateJWK = try JSONDecoder().decode(ECJWK.self, from: try PasswordJWE.decrypt(jwe, password: provisionerPassword))
        let config = try AutoSSLConfiguration.load(from: dirs.configFile)
        let publicJWK = try JSONDecoder().decode(ECJWK.self, from: Data(try #require(config.ca?.provisioners.first?.publicKey).utf8))
        #expect(publicJWK.d == nil)
        #expect(publicJWK.x == privateJWK.x && publicJWK.y == privateJWK.y)
        #expect(publicJWK.kid == publicJWK.thumbprint)
        #expect(config.ca == result.settings)
        // Nothing half-made is left next to the CA.
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: dirs.dataDir).filter { $0 != "ca" }
        #expect(leftovers.isEmpty)
    }

    @Test func refusesToOverwriteAndLeavesEverythingUnchanged() throws {
        let dir = TemporaryDirectory()
        let dirs = directories(dir)
        _ = try CAInitializer(directories: dirs).initialise(options())
        let before = try snapshotTree(dir.path)
        #expect(throws: AutoSSLError.self) { try CAInitializer(directories: dirs).initialise(options()) }
        #expect(try snapshotTree(dir.path) == before)
    }

    @Test func forceMovesTheOldCAAsideWithItsConfiguration() throws {
        let dir = TemporaryDirectory()
        let dirs = directories(dir)
        let first = try CAInitializer(directories: dirs).initialise(options())
        let oldRoot = try readFile(first.settings.paths.rootCertificate)
        let oldProvisionerPassword = try readFile(dirs.provisionerPasswordFile)
        // A provisioner added since, with a generated (stored) password.
        let ops = try ProvisionerAdmin(directories: dirs).add(name: "ops", password: .generate, policy: nil, kdfIterations: 210_000)
        let opsPasswordFile = try #require(ops.generatedPasswordFile)
        let opsPassword = try readFile(opsPasswordFile)
        let second = try CAInitializer(directories: dirs).initialise(
            options(force: true), now: Date().addingTimeInterval(5))
        let aside = try #require(second.previousCALocation)
        #expect(aside.hasPrefix(dirs.caDir + ".replaced-"))
        #expect(try readFile(aside + "/certs/root_ca.crt") == oldRoot)
        #expect(try readFile(aside + "/previous-config/provisioner-password") == oldProvisionerPassword)
        #expect(fileMode(aside + "/previous-config/provisioner-password") == 0o600)
        // Every provisioner's stored password goes with the old CA (a later `provisioner add ops`
        // must not overwrite the password that opens the old CA's key).
        #expect(try readFile(aside + "/previous-config/provisioner-ops-password") == opsPassword)
        #expect(fileMode(aside + "/previous-config/provisioner-ops-password") == 0o600)
        #expect(!FileManager.default.fileExists(atPath: opsPasswordFile))
        #expect(second.rootFingerprint != first.rootFingerprint)
        #expect(try readFile(dirs.provisionerPasswordFile) != oldProvisionerPassword)
    }

    /// A password file in the config directory that the old CA's config.yaml names (its
    /// database's) is copied with the old CA: a restore bringing a file of that name must not
    /// overwrite the only copy of the password that opens the old CA's database. The file stays
    /// where it is, as the new CA may name it too.
    @Test func forceKeepsACopyOfTheOldDatabasePasswordFile() throws {
        let dir = TemporaryDirectory()
        let dirs = directories(dir)
        _ = try CAInitializer(directories: dirs).initialise(options())
        let passwordFile = dirs.configDir + "/database-password"
        try FileOperations.writeAtomically("old-database-password\n", to: passwordFile, mode: 0o600)
        var configuration = try AutoSSLConfiguration.load(from: dirs.configFile)
        configuration.ca?.database = DatabaseSettings(url: "postgres://autossl@127.0.0.1:1/old", passwordFile: passwordFile)
        try configuration.save(to: dirs.configFile)
        let second = try CAInitializer(directories: dirs).initialise(options(force: true), now: Date().addingTimeInterval(5))
        let aside = try #require(second.previousCALocation)
        #expect(try readFile(aside + "/previous-config/database-password") == "old-database-password\n")
        #expect(fileMode(aside + "/previous-config/database-password") == 0o600)
        // It stays in place too: `ca init --force --database-password-file` may name that very file.
        #expect(try readFile(passwordFile) == "old-database-password\n")
    }

    /// `--force` over a config.yaml whose CA section is damaged keeps this machine's server
    /// section (it may also be an enrolled server); the damaged file goes with the old CA.
    @Test func forceOverADamagedCASectionKeepsTheServerSection() throws {
        let dir = TemporaryDirectory()
        let dirs = directories(dir)
        _ = try CAInitializer(directories: dirs).initialise(options())
        var serverOnly = AutoSSLConfiguration()
        serverOnly.server = ServerEnrollment(
            caURL: "https://ca.internal:9000", fingerprint: String(repeating: "a", count: 64), names: ["web"], certPath: "/a.crt",
            keyPath: "/a.key", rootPath: "/ca.crt", combinedPath: nil, keyType: "ec", provisioner: "admin", duration: nil, reload: nil,
            reloadCommand: nil, renewalTimer: true, enrolledAt: Date(timeIntervalSince1970: 1_800_000_000))
        let damaged = "ca: 5\n" + (try serverOnly.yamlString())
        try damaged.write(toFile: dirs.configFile, atomically: true, encoding: .utf8)
        #expect(throws: AutoSSLError.self) { _ = try AutoSSLConfiguration.load(from: dirs.configFile) }
        let second = try CAInitializer(directories: dirs).initialise(options(force: true), now: Date().addingTimeInterval(5))
        let loaded = try AutoSSLConfiguration.load(from: dirs.configFile)
        #expect(loaded.ca != nil && loaded.server == serverOnly.server)
        let aside = try #require(second.previousCALocation)
        #expect(try readFile(aside + "/previous-config/config.yaml") == damaged)
    }

    struct InjectedFault: Error {}

    @Test(arguments: [CAInitializer.InstallPoint.installedCADirectory, .wroteSecrets])
    func aFailureHalfWayLeavesNoPartialCA(point: CAInitializer.InstallPoint) throws {
        let dir = TemporaryDirectory()
        let dirs = directories(dir)
        var initializer = CAInitializer(directories: dirs)
        initializer.faultInjector = { if $0 == point { throw InjectedFault() } }
        #expect(throws: InjectedFault.self) { try initializer.initialise(options()) }
        #expect(!FileOperations.exists(dirs.caDir))
        #expect(!FileOperations.exists(dirs.provisionerPasswordFile))
        #expect(!FileOperations.exists(dirs.configFile))
        #expect(try FileManager.default.contentsOfDirectory(atPath: dirs.dataDir).isEmpty)
    }

    @Test(arguments: [CAInitializer.InstallPoint.movedAside, .installedCADirectory, .wroteSecrets])
    func aFailedForcedInitPutsTheOldCABack(point: CAInitializer.InstallPoint) throws {
        let dir = TemporaryDirectory()
        let dirs = directories(dir)
        _ = try CAInitializer(directories: dirs).initialise(options())
        let before = try snapshotTree(dir.path)
        var initializer = CAInitializer(directories: dirs)
        initializer.faultInjector = { if $0 == point { throw InjectedFault() } }
        #expect(throws: InjectedFault.self) { try initializer.initialise(options(force: true)) }
        #expect(try snapshotTree(dir.path) == before)
        #expect(try CAStatusReport.load(directories: dirs).name == "Unit CA")
    }

    @Test func validatesOptions() {
        var bad = options()
        bad.maximumDuration = .days(31)
        #expect(throws: AutoSSLError.self) { try bad.validate() }
        bad = options()
        bad.defaultDuration = .minutes(1)
        #expect(throws: AutoSSLError.self) { try bad.validate() }
        bad = options()
        bad.defaultDuration = .days(10)
        bad.maximumDuration = .days(7)
        #expect(throws: AutoSSLError.self) { try bad.validate() }
        bad = options()
        bad.caPassword = .given("short")
        #expect(throws: AutoSSLError.self) { try bad.validate() }
        bad = options()
        bad.provisionerPassword = .given("ca-password-0123456789")
        #expect(throws: AutoSSLError.self) { try bad.validate() }
        bad = options()
        bad.provisionerName = "../etc"
        #expect(throws: AutoSSLError.self) { try bad.validate() }
        bad = options()
        bad.name = String(repeating: "n", count: 49)
        #expect(throws: AutoSSLError.self) { try bad.validate() }
    }

    @Test func resetKeepsASafetyCopyOrDeletesForGood() throws {
        let dir = TemporaryDirectory()
        let dirs = directories(dir)
        _ = try CAInitializer(directories: dirs).initialise(options())
        let root = try readFile(dirs.caDir + "/certs/root_ca.crt")
        let kept = try CAReset(directories: dirs).reset(keepCopy: true)
        let copy = try #require(kept.safetyCopy)
        #expect(try readFile(copy + "/certs/root_ca.crt") == root)
        #expect(!FileOperations.exists(dirs.caDir))
        #expect(!FileOperations.exists(dirs.provisionerPasswordFile))
        #expect(try AutoSSLConfiguration.load(from: dirs.configFile).ca == nil)
        #expect(throws: AutoSSLError.self) { try CAReset(directories: dirs).reset(keepCopy: true) }

        _ = try CAInitializer(directories: dirs).initialise(options())
        let gone = try CAReset(directories: dirs).reset(keepCopy: false)
        #expect(gone.safetyCopy == nil)
        #expect(!FileOperations.exists(dirs.caDir))
        #expect(!FileOperations.exists(dirs.configFile))
    }

    @Test func statusWarnsAboutLooseKeyModes() throws {
        let dir = TemporaryDirectory()
        let dirs = directories(dir)
        let result = try CAInitializer(directories: dirs).initialise(options())
        #expect(try CAStatusReport.load(directories: dirs).warnings.isEmpty)
        chmod(result.settings.paths.rootKey, 0o644)
        let warnings = try CAStatusReport.load(directories: dirs).warnings
        #expect(warnings.contains { $0.contains("root_ca_key") && $0.contains("chmod 600") })
    }

    @Test func statusWarnsWhenTheIntermediateIsCloseToExpiry() throws {
        let dir = TemporaryDirectory()
        let dirs = directories(dir)
        _ = try CAInitializer(directories: dirs).initialise(options())
        let later = Calendar(identifier: .gregorian).date(byAdding: .day, value: 5 * 365 - 30, to: Date())!
        let report = try CAStatusReport.load(directories: dirs, now: later)
        #expect(report.intermediate.daysLeft < 90)
        #expect(report.warnings.contains { $0.contains("intermediate certificate expires") })
    }
}
