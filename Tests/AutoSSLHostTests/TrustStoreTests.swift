import AutoSSLCore
import AutoSSLHost
import Foundation
import Testing
import X509

@Suite struct TrustStoreTests {
    static func makeRoot(_ name: String) throws -> Certificate {
        let key = try SigningKey.generate(.p256)
        return try CertificateProfiles.root(caName: name, key: key, notBefore: Date() - 60, notAfter: Date() + 86_400 * 365)
    }

    func fakeRoot() throws -> String {
        let path = NSTemporaryDirectory() + "trust-fs-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    func write(_ text: String, _ path: String) throws {
        try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try text.write(toFile: path, atomically: true, encoding: .utf8)
    }

    @Test(arguments: [
        (OSFamily.debian, "/usr/local/share/ca-certificates", "crt", ["update-ca-certificates"]),
        (.rhel, "/etc/pki/ca-trust/source/anchors", "pem", ["update-ca-trust", "extract"]),
        (.suse, "/etc/pki/trust/anchors", "pem", ["update-ca-certificates"]),
        (.arch, "/etc/ca-certificates/trust-source/anchors", "crt", ["trust", "extract-compat"]),
        (.alpine, "/usr/local/share/ca-certificates", "crt", ["update-ca-certificates"]),
    ])
    func installsIntoEachFamilysLayoutAndRemovesOnlyItsOwnFiles(
        family: OSFamily, directory: String, ext: String, refresh: [String]
    ) throws {
        let root = try fakeRoot()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let layout = try TrustStoreLayout.forFamily(family)
        #expect(layout.anchorDirectory == directory && layout.fileExtension == ext && layout.refreshCommand == refresh)
        let store = SystemTrustStore(layout: layout, rootFS: root)
        // Someone else's anchor already lives there and must survive everything we do.
        let foreign = root + directory + "/corporate-proxy." + ext
        try write("not ours\n", foreign)

        let first = try Self.makeRoot("Example Corp")
        let second = try Self.makeRoot("Lab CA")
        let outcome = try store.install(first) { pem, path in try write(pem, path) }
        guard case .installed(let path) = outcome else { Issue.record("not installed"); return }
        #expect(path.hasPrefix(root + directory + "/auto-ssl-example-corp-") && path.hasSuffix("." + ext))
        #expect(try store.install(first) { _, _ in Issue.record("rewrote an identical anchor") } == .alreadyTrusted(path: path))
        _ = try store.install(second) { pem, path in try write(pem, path) }
        #expect(try store.list().map(\.fingerprint).sorted() == [try Fingerprint.sha256(of: first), try Fingerprint.sha256(of: second)].sorted())

        let removed = try store.remove(fingerprint: try Fingerprint.sha256(of: first))
        #expect(removed.map(\.fingerprint) == [try Fingerprint.sha256(of: first)])
        #expect(try store.list().count == 1)
        _ = try store.remove(fingerprint: nil)
        #expect(try store.list().isEmpty)
        #expect(try String(contentsOfFile: foreign, encoding: .utf8) == "not ours\n")
    }

    @Test func macOSAndWindowsHaveNoLinuxStore() {
        #expect(throws: AutoSSLError.self) { try TrustStoreLayout.forFamily(.macos) }
        #expect(throws: AutoSSLError.self) { try TrustStoreLayout.forFamily(.unknown) }
    }

    @Test func anchorCheckRefusesLeaves() throws {
        let key = try SigningKey.generate(.p256)
        let ca = try Self.makeRoot("Check")
        let leaf = try CertificateProfiles.leaf(
            names: [.dns("x.internal")], publicKey: key.publicKey, serial: CertificateProfiles.randomSerial(), issuer: ca,
            issuerKey: try SigningKey.generate(.p256), notBefore: Date(), notAfter: Date() + 60)
        #expect(throws: AutoSSLError.self) { try TrustAnchorCheck.validate(leaf) }
        try TrustAnchorCheck.validate(ca)
    }

    /// An intermediate is a CA certificate but not a trust anchor: refused, saying it is not a root.
    @Test func anchorCheckRefusesIntermediates() throws {
        let rootKey = try SigningKey.generate(.p256)
        let root = try CertificateProfiles.root(caName: "Anchor", key: rootKey, notBefore: Date() - 60, notAfter: Date() + 86_400)
        let intermediate = try CertificateProfiles.intermediate(
            caName: "Anchor", publicKey: try SigningKey.generate(.p256).publicKey, root: root, rootKey: rootKey,
            notBefore: Date() - 60, notAfter: Date() + 86_400)
        #expect(TrustAnchorCheck.isSelfSigned(root) && !TrustAnchorCheck.isSelfSigned(intermediate))
        #expect {
            try TrustAnchorCheck.validate(intermediate)
        } throws: { error in
            (error as? AutoSSLError)?.kind == .trustFailure && (error as? AutoSSLError)?.message.contains("is not a root") == true
        }
        try TrustAnchorCheck.validate(root)
    }

    @Test func extraStoreCommands() {
        let runner = FakeRunner(available: [], responses: [:])
        let stores = ExtraTrustStores(runner: runner, home: "/home/u")
        #expect(stores.commands(install: .nss, name: "auto-ssl-x-1234", file: "/a.crt")
            == [["certutil", "-d", "sql:/home/u/.pki/nssdb", "-A", "-t", "C,,", "-n", "auto-ssl-x-1234", "-i", "/a.crt"]])
        #expect(stores.commands(install: .java, name: "auto-ssl-x-1234", file: "/a.crt")[0].contains("-cacerts"))
        #expect(throws: AutoSSLError.self) { try stores.install(.nss, name: "n", file: "/a.crt") }
        #expect(stores.names(in: .java).isEmpty)
    }

    @Test func macOSScriptChecksTheFingerprintBeforeInstalling() throws {
        let root = try Self.makeRoot("Script CA")
        let fingerprint = try Fingerprint.sha256(of: root)
        let script = try TrustScripts.macOS(root: root, caName: "Script CA Root CA")
        #expect(script.contains(try root.pemString()))
        #expect(script.contains("EXPECTED=\"\(fingerprint)\""))
        #expect(script.contains("security add-trusted-cert -d -r trustRoot -k /Library/Keychains/System.keychain"))
        // Run it here with `security` replaced by echo: the embedded root must pass its own check,
        // and a tampered expectation must stop it before anything is installed.
        let runnable = script.replacingOccurrences(of: "sudo security add-trusted-cert", with: "echo WOULD-INSTALL")
        let good = try run(runnable)
        #expect(good.status == 0 && good.output.contains("WOULD-INSTALL"), "\(good)")
        let tampered = runnable.replacingOccurrences(of: "EXPECTED=\"\(fingerprint)\"", with: "EXPECTED=\"\(String(repeating: "0", count: 64))\"")
        let bad = try run(tampered)
        #expect(bad.status == 6 && !bad.output.contains("WOULD-INSTALL") && bad.output.contains("mismatch"), "\(bad)")
    }

    @Test func windowsScriptEmbedsTheRootAndChecksIt() throws {
        let root = try Self.makeRoot("Win CA")
        let fingerprint = try Fingerprint.sha256(of: root)
        let script = try TrustScripts.windows(root: root, caName: "Win CA Root CA")
        #expect(script.contains("$Expected = \"\(fingerprint)\""))
        #expect(script.contains("if ($Actual -ne $Expected)") && script.contains("exit 6"))
        #expect(script.contains("Cert:\\LocalMachine\\Root"))
        let marker = try #require(script.range(of: "FromBase64String(\""))
        let rest = script[marker.upperBound...]
        let base64 = rest[..<(rest.firstIndex(of: "\"") ?? rest.endIndex)]
        let der = try #require(Data(base64Encoded: String(base64)))
        #expect(Fingerprint.sha256(der: der) == fingerprint)
    }

    func run(_ script: String) throws -> (status: Int32, output: String) {
        let path = NSTemporaryDirectory() + "trust-script-" + UUID().uuidString + ".sh"
        try script.write(toFile: path, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let result = SystemCommandRunner().run("bash", [path], timeout: 30)
        return (result?.status ?? -1, result?.output ?? "")
    }
}
