import AutoSSLConfig
import AutoSSLCore
import AutoSSLIO
import Foundation
import Testing
import TestSupport
import X509

@testable import AutoSSLAgent

/// The parts of `server enroll --adopt` that read what the original bash auto-ssl left behind.
struct AdoptionTests {
    static let originalConfig = """
        ca:
          url: https://192.168.1.100:9000
          fingerprint: abc123
        server:
          cert_path: /srv/tls/web.crt
          key_path: "/srv/tls/web.key"
          sans: 192.168.1.50,myserver.local
          suspended: false

        """

    func directories(_ temp: TemporaryDirectory) -> Directories {
        Directories(configDir: temp.file("etc"), dataDir: temp.file("data"), certDir: temp.file("certs"), systemdDir: temp.file("systemd"))
    }

    @Test func theOriginalConfigFormatIsRecognisedAndOnlyAbsolutePathsInItsServerSectionAreTaken() throws {
        #expect(ServerAgent.isOriginalConfig(Self.originalConfig))
        let paths = ServerAgent.originalServerPaths(Self.originalConfig)
        #expect(paths.cert == "/srv/tls/web.crt" && paths.key == "/srv/tls/web.key")

        // Ours is never taken for the original's.
        var ours = AutoSSLConfiguration()
        ours.server = ServerEnrollment(
            caURL: "https://ca.internal:9000", fingerprint: String(repeating: "a", count: 64), names: ["web"], certPath: "/a.crt",
            keyPath: "/a.key", rootPath: "/ca.crt", combinedPath: nil, keyType: "ec", provisioner: "admin", duration: nil, reload: nil,
            reloadCommand: nil, renewalTimer: true, enrolledAt: Date(timeIntervalSince1970: 1_800_000_000))
        #expect(!ServerAgent.isOriginalConfig(try ours.yamlString()))
        #expect(!ServerAgent.isOriginalConfig("garbage: [1, 2\n"))

        // Relative paths, control characters and keys outside `server:` are ignored.
        let hostile = "ca:\n  cert_path: /etc/shadow\nserver:\n  cert_path: relative/web.crt\n  key_path: /srv/a\u{1b}[2J.key\n"
        let ignored = ServerAgent.originalServerPaths(hostile)
        #expect(ignored.cert == nil && ignored.key == nil)
    }

    @Test func theOriginalConfigsPathsAreFoundAndAnUnknownConfigIsRefused() throws {
        let temp = TemporaryDirectory("adopt-locate")
        let dirs = directories(temp)
        let agent = ServerAgent(directories: dirs)
        let key = try SigningKey.generate(.p256)
        let certificate = try CertificateProfiles.root(
            caName: "Old leaf", key: key, notBefore: Date().addingTimeInterval(-60), notAfter: Date().addingTimeInterval(3600))
        let tls = temp.file("tls")
        try FileOperations.makeDirectory(tls, mode: 0o755)
        try FileOperations.writeAtomically(try certificate.pemString() + "\n", to: tls + "/web.crt", mode: 0o644)
        try FileOperations.writeAtomically(key.pkcs8PEMRepresentation, to: tls + "/web.key", mode: 0o600)
        try FileOperations.makeDirectory(dirs.configDir, mode: 0o755)
        try FileOperations.writeAtomically(
            Self.originalConfig.replacingOccurrences(of: "/srv/tls", with: tls), to: dirs.configFile, mode: 0o600)

        let found = try agent.locateOriginal(directory: nil, certPath: nil, keyPath: nil)
        #expect(found.certPath == tls + "/web.crt" && found.keyPath == tls + "/web.key")
        #expect(found.hasOriginalConfig && found.configuration.isEmpty)
        // --from wins over the config's paths (and finds nothing there).
        #expect(throws: AutoSSLError.self) { try agent.locateOriginal(directory: temp.file("elsewhere"), certPath: nil, keyPath: nil) }

        try FileOperations.writeAtomically("server: [this is not either format\n", to: dirs.configFile, mode: 0o600)
        #expect(throws: AutoSSLError.self) { try agent.locateOriginal(directory: tls, certPath: nil, keyPath: nil) }
    }

    @Test func aLeafWithoutItsIntermediateIsRefusedAsATrustFailure() throws {
        let key = try SigningKey.generate(.p256)
        let alone = try CertificateProfiles.root(
            caName: "Alone", key: key, notBefore: Date().addingTimeInterval(-60), notAfter: Date().addingTimeInterval(3600))
        let other = try CertificateProfiles.root(
            caName: "Root", key: try SigningKey.generate(.p256), notBefore: Date().addingTimeInterval(-60), notAfter: Date().addingTimeInterval(3600))
        // Signed by "Alone", so not self-signed: a leaf whose intermediate is missing.
        let leaf = try CertificateProfiles.intermediate(
            caName: "Leaf", publicKey: try SigningKey.generate(.p256).publicKey, root: alone, rootKey: key,
            notBefore: Date().addingTimeInterval(-60), notAfter: Date().addingTimeInterval(1800))
        do {
            try ServerAgent.checkChain([leaf], path: "/x.crt", root: other, fingerprint: "ff")
            Issue.record("a lone leaf was accepted")
        } catch let error as AutoSSLError {
            #expect(error.kind == .trustFailure && error.message.contains("only the leaf"), "\(error)")
        }
        do {
            try ServerAgent.checkChain([alone], path: "/x.crt", root: other, fingerprint: "ff")
            Issue.record("a self-signed certificate was accepted")
        } catch let error as AutoSSLError {
            #expect(error.kind == .trustFailure && error.message.contains("self-signed"), "\(error)")
        }
        do {
            try ServerAgent.checkChain([alone, alone], path: "/x.crt", root: other, fingerprint: "ff")
            Issue.record("a chain to another root was accepted")
        } catch let error as AutoSSLError {
            #expect(error.kind == .trustFailure && error.message.contains("not issued by this CA"), "\(error)")
        }
    }

    @Test func namesFromACertificateFileAreShownWithoutControlCharactersAndBounded() {
        #expect(ServerAgent.printable("CN=evil\u{1b}[2J\nname") == "CN=evil?[2J?name")
        #expect(ServerAgent.printable(String(repeating: "a", count: 500)).count == 200)
    }

    @Test func theOriginalUnitsAreCopiedOnceAndOursAreNeverTakenForThem() throws {
        let temp = TemporaryDirectory("adopt-units")
        let agent = ServerAgent(directories: directories(temp))
        try FileOperations.makeDirectory(agent.directories.systemdDir, mode: 0o755)
        let original = "[Service]\nType=oneshot\nExecStart=/usr/bin/step ca renew --force /etc/ssl/auto-ssl/server.crt /etc/ssl/auto-ssl/server.key\n"
        try FileOperations.writeAtomically(original, to: agent.serviceFile, mode: 0o644)
        #expect(agent.originalUnits() == [agent.serviceFile])
        #expect(try agent.keepOriginalUnits() == [agent.keptUnitsDir + "/auto-ssl-renew.service"])
        #expect(FileOperations.mode(of: agent.adoptedDir).map { $0 & 0o777 } == 0o700)
        // A second run never overwrites the first copy.
        try FileOperations.writeAtomically(original + "# edited\n", to: agent.serviceFile, mode: 0o644)
        #expect(try agent.keepOriginalUnits().isEmpty)
        #expect(try FileOperations.readText(agent.keptUnitsDir + "/auto-ssl-renew.service") == original)
        // Once ours are written, nothing is the original tool's any more.
        _ = try agent.installRenewalUnits(executable: "/usr/bin/auto-ssl")
        #expect(agent.originalUnits().isEmpty)
    }
}
