@testable import AutoSSLCA
import AutoSSLConfig
import AutoSSLCore
import AutoSSLIO
import Foundation
import Testing
import TestSupport

@Suite struct SharedSettingsTests {
    func makeCA(_ dir: TemporaryDirectory) throws -> (Directories, CASettings) {
        let directories = Directories(
            configDir: dir.file("etc"), dataDir: dir.file("data"), certDir: dir.file("certs"), systemdDir: dir.file("sd"))
        var options = CAInitOptions()
        options.addresses = [ListenAddress(host: "127.0.0.1", port: 9443)]
        options.caPassword = .given("ca-password-for-tests-123")
        options.provisionerPassword = .given("provisioner-password-for-tests")
        return (directories, try CAInitializer(directories: directories).initialise(options).settings)
    }

    /// What a change that could not be published puts back on this machine: config.yaml, the
    /// provisioners' keys and stored passwords exactly as they were, files it created removed.
    @Test func anUnpublishedChangeLeavesThisMachinesProvisionerFilesAsTheyWere() throws {
        let dir = TemporaryDirectory()
        let (directories, settings) = try makeCA(dir)
        let admin = ProvisionerAdmin(directories: directories)
        _ = try admin.add(name: "ops", password: .generate, policy: nil, kdfIterations: 210_000)
        let files = LocalProvisionerFiles.provisionerFiles(in: [directories.configDir, settings.paths.secretsDir]) + [directories.configFile]
        func contents() throws -> [String: String] {
            Dictionary(uniqueKeysWithValues: try files.map { ($0, try FileOperations.readText($0)) })
        }
        let expected = try contents()
        let snapshot = try LocalProvisionerFiles(directories: directories, secretsDir: settings.paths.secretsDir)
        let stored = directories.configDir + "/provisioner-ops-password"
        _ = try admin.changePassword(
            name: "ops", current: Passwords.fromFileContents(try FileOperations.readText(stored)), new: "a-new-password-for-ops-1",
            kdfIterations: 210_000)
        _ = try admin.add(name: "extra", password: .generate, policy: nil, kdfIterations: 210_000)
        #expect(try contents() != expected)
        snapshot.restore()
        #expect(try contents() == expected)
        #expect(!FileManager.default.fileExists(atPath: settings.paths.provisionerKeyFile("extra")))
        #expect(!FileManager.default.fileExists(atPath: directories.configDir + "/provisioner-extra-password"))
        #expect(fileMode(stored) == 0o600)
    }

    @Test func aDocumentCarriesProvisionersAndPolicyButNothingOfThisMachine() throws {
        let dir = TemporaryDirectory()
        let (_, settings) = try makeCA(dir)
        let document = try SharedCASettings(settings)
        let json = try document.json()
        #expect(json.contains("\"encrypted_key\"") && json.contains("\"admin\""))
        for local in [settings.paths.caDir, "127.0.0.1:9443", "password_file"] {
            #expect(!json.contains(local), "\(local) is this machine's, not shared")
        }
        #expect(try SharedCASettings.decode(json) == document)
    }

    /// The ACME provisioners' ports are JSON numbers between replicas and decimal text in
    /// config.yaml: both read back to the same settings.
    @Test func acmePortsTravelAsJSONNumbersAndReadBack() throws {
        let dir = TemporaryDirectory()
        var (_, settings) = try makeCA(dir)
        settings.acmeProvisioners = [ACMEProvisionerSettings(name: "acme", http01Port: 8080, tlsALPN01Port: 8443)]
        let document = try SharedCASettings(settings)
        let json = try document.json()
        #expect(json.contains("\"http01_port\":8080") && json.contains("\"tlsalpn01_port\":8443"), "\(json)")
        #expect(try SharedCASettings.decode(json) == document)
        #expect(try SharedCASettings.decode(json.replacingOccurrences(of: "\"http01_port\":8080", with: "\"http01_port\":\"8080\"")) == document)
        #expect(throws: AutoSSLError.self) {
            try SharedCASettings.decode(json.replacingOccurrences(of: "\"http01_port\":8080", with: "\"http01_port\":\"1:30\""))
        }
        let path = dir.file("roundtrip.yaml")
        try AutoSSLConfiguration(ca: settings).yamlString().write(toFile: path, atomically: true, encoding: .utf8)
        #expect(try AutoSSLConfiguration.load(from: path).ca?.acmeProvisioners == settings.acmeProvisioners)
    }

    @Test func applyingADocumentKeepsThisMachinesPathsAddressesAndPasswordFiles() throws {
        let dir = TemporaryDirectory()
        var (_, settings) = try makeCA(dir)
        settings.provisioners[0].passwordFile = "/etc/auto-ssl/provisioner-password"
        var document = try SharedCASettings(settings)
        document.maximumDuration = "240h"
        document.provisioners.append(.init(name: "fleet", type: "JWK", publicKey: "{}", policy: nil, encryptedKey: "x.y.z.w.v"))
        var elsewhere = settings
        elsewhere.addresses = [ListenAddress(host: "10.0.0.6", port: 9000)]
        let applied = document.applied(to: elsewhere)
        #expect(applied.maximumDuration == "240h" && applied.addresses == elsewhere.addresses && applied.paths == elsewhere.paths)
        #expect(applied.provisioners.map(\.name) == ["admin", "fleet"])
        #expect(applied.provisioners[0].passwordFile == "/etc/auto-ssl/provisioner-password")
        #expect(applied.provisioners[1].passwordFile == nil)
        #expect(applied.provisioners[1].encryptedKeyFile == elsewhere.paths.provisionerKeyFile("fleet"))
    }

    @Test func hostileDocumentsAreRefused() throws {
        #expect(throws: AutoSSLError.self) { try SharedCASettings.decode("not json") }
        #expect(throws: AutoSSLError.self) { try SharedCASettings.decode(String(repeating: " ", count: SharedCASettings.maximumBytes + 1)) }
        let dir = TemporaryDirectory()
        let (_, settings) = try makeCA(dir)
        var document = try SharedCASettings(settings)
        document.provisioners[0].name = "../../etc/passwd"
        #expect(throws: AutoSSLError.self) { try SharedCASettings.decode(try document.json()) }
        document = try SharedCASettings(settings)
        document.format = 2
        #expect(throws: AutoSSLError.self) { try SharedCASettings.decode(try document.json()) }
    }

    @Test func healthRemembersSinceWhenTheDatabaseIsUnavailable() {
        let health = DatabaseHealth()
        #expect(health.current == .ok)
        let first = Date(timeIntervalSince1970: 1_000)
        health.failed("down", now: first)
        health.failed("still down", now: first.addingTimeInterval(10))
        #expect(health.current == .unavailable(since: first, reason: "still down"))
        health.answered()
        #expect(health.current == .ok)
    }
}
