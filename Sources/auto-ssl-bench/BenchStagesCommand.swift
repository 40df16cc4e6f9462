import ArgumentParser
import AutoSSLCA
import AutoSSLCore
import AutoSSLIO
import AutoSSLStore
import Foundation
import SwiftASN1
import X509

/// Single-threaded cost of each step of an issuance, to see where `/sign` spends its CPU.
struct BenchStagesCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "stages", abstract: "Time each step of an issuance on one core (microseconds per operation).")

    @Option(help: "Iterations per step.") var iterations = 2_000

    func run() async throws {
        let now = Date()
        let rootKey = try SigningKey.generate(.p384)
        let root = try CertificateProfiles.root(caName: "Stages", key: rootKey, notBefore: now, notAfter: now + 86_400 * 365)
        let issuerKey = try SigningKey.generate(.p256)
        let issuer = try CertificateProfiles.intermediate(
            caName: "Stages", publicKey: issuerKey.publicKey, root: root, rootKey: rootKey, notBefore: now, notAfter: now + 86_400 * 300)
        let provisioner = ECJWK.generatePrivate()
        let leafKey = try SigningKey.generate(.p256)
        let names = [SubjectName.dns("stage.bench.internal")]
        let csr = try VerifiedCSR.make(names: names, key: leafKey)
        let claims = ProvisionerTokenClaims(
            iss: "admin", aud: ["https://127.0.0.1:9443/1.0/sign"], sub: names[0].description, sans: [names[0].description],
            nbf: 0, iat: 0, exp: 300, jti: "j", sha: "s")
        let token = try JWT.sign(payload: claims, kid: provisioner.kid, key: try provisioner.privateKey())
        let publicKey = try provisioner.publicKey()

        func measure(_ label: String, _ body: () throws -> Void) rethrows {
            let start = ContinuousClock.now
            for _ in 0..<iterations { try body() }
            let elapsed = ContinuousClock.now - start
            let micros = (Double(elapsed.components.seconds) * 1e6 + Double(elapsed.components.attoseconds) / 1e12) / Double(iterations)
            print(String(format: "%-44@ %8.1f µs", label as NSString, micros))
        }
        try measure("JWT.parse") { _ = try JWT.parse(token) }
        let parsed = try JWT.parse(token)
        measure("ES256 verify (token)") { _ = JWT.verifyES256(parsed, key: publicKey) }
        try measure("claims JSONDecoder") { _ = try JSONDecoder().decode(ProvisionerTokenClaims.self, from: parsed.payload) }
        try measure("CSR read + verify (as /sign does)") { _ = try VerifiedCSR(pem: csr) }
        let csrDER = try PEMDocument(pemString: csr).derBytes
        // The library's steps, which any CSR the fast reader does not take goes through.
        try measure("  library: PEM decode") { _ = try PEMDocument(pemString: csr) }
        try measure("  library: DER parse") { _ = try CertificateSigningRequest(derEncoded: csrDER) }
        let request = try CertificateSigningRequest(derEncoded: csrDER)
        measure("  library: signature check") { _ = request.publicKey.isValidSignature(request.signature, for: request) }
        try measure("  library: SAN extraction") { _ = try request.attributes.extensionRequest?.extensions.subjectAlternativeNames }
        let verified = try VerifiedCSR(pem: csr)
        let encoder = try LeafEncoder(issuer: issuer, issuerKey: issuerKey)
        let spki = try verified.subjectPublicKeyInfo ?? CertificateProfiles.subjectPublicKeyInfo(of: verified.publicKey)[...]
        let ski = verified.subjectKeyIdentifier ?? CertificateProfiles.keyIdentifier(for: verified.publicKey)
        try measure("leaf encode + sign (as /sign does)") {
            _ = try encoder.encode(
                names: names, subjectPublicKeyInfo: spki, keyAlgorithm: verified.keyAlgorithm, subjectKeyIdentifier: ski,
                serial: Array(CertificateProfiles.randomSerial().bytes), notBefore: now, notAfter: now + 86_400)
        }
        try measure("  library: leaf build + sign") {
            _ = try CertificateProfiles.leaf(
                names: names, publicKey: verified.publicKey, serial: CertificateProfiles.randomSerial(), issuer: issuer,
                issuerKey: issuerKey, notBefore: now, notAfter: now + 86_400)
        }
        let leaf = try CertificateProfiles.leaf(
            names: names, publicKey: verified.publicKey, serial: CertificateProfiles.randomSerial(), issuer: issuer,
            issuerKey: issuerKey, notBefore: now, notAfter: now + 86_400)
        try measure("  library: leaf DER") { _ = try leaf.derBytes() }
        try measure("leaf PEM") { _ = PEM.encode(try leaf.derBytes(), label: "CERTIFICATE") }
        try measure("P-256 sign (raw)") { _ = try issuerKey.signForX509(Array(repeating: 1, count: 300)) }
        let line = AuditLog.Event("certificate.issued", serial: "00", sans: ["a"], provisioner: "admin", remote: "127.0.0.1", detail: "x")
        measure("audit line encoding") { _ = line.jsonLine }
        measure("JSON quote of a PEM") { _ = JSONText.quote(csr) }
        try await measureStore(der: try leaf.derBytes())
        try await measureAuthority()
    }

    /// The whole authority path (token, CSR, policy, signing, durable row, audit line) for requests
    /// sent one after another by one task, then by 16 tasks: CPU per certificate, so the glue
    /// between the steps above can be seen.
    func measureAuthority() async throws {
        let workspace = NSTemporaryDirectory() + "auto-ssl-stages-" + UUID().uuidString
        defer { try? FileManager.default.removeItem(atPath: workspace) }
        let directories = Directories(
            configDir: workspace + "/etc", dataDir: workspace + "/data", certDir: workspace + "/certs", systemdDir: workspace + "/systemd")
        var options = CAInitOptions()
        options.name = "Stages CA"
        options.addresses = [ListenAddress(host: "127.0.0.1", port: 9443)]
        _ = try CAInitializer(directories: directories).initialise(options)
        let load = try await InProcessLoad(directories: directories)
        for lanes in [1, 16] {
            let batch = try load.requests(iterations, prefix: "stages-\(lanes)", url: "https://127.0.0.1:9443")
            let cpuBefore = Self.cpuSeconds()
            let (seconds, _) = await load.run(batch[...], lanes: lanes)
            let cpu = Self.cpuSeconds() - cpuBefore
            print(String(format: "%-44@ %8.0f /s, %.1f µs CPU each", "authority.sign, \(lanes) task(s)" as NSString,
                         Double(batch.count) / seconds, cpu / Double(batch.count) * 1e6))
        }
        try await load.authority.close()
    }

    /// The durable store alone: 16 concurrent writers, group commit, synchronous=FULL.
    func measureStore(der: [UInt8]) async throws {
        let directory = NSTemporaryDirectory() + "auto-ssl-stages-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let store = try CADatabase.openSQLite(path: directory + "/db.sqlite").certificates
        let count = iterations * 4
        let cpuBefore = Self.cpuSeconds()
        let start = ContinuousClock.now
        await withTaskGroup(of: Void.self) { group in
            for lane in 0..<16 {
                group.addTask {
                    for index in stride(from: lane, to: count, by: 16) {
                        let record = CertificateRecord(
                            serial: String(format: "%032x", index + 1), status: .issued, commonName: "a", names: ["a"],
                            notBefore: Date(), notAfter: Date() + 3600, keyType: "P-256", provisioner: "p", requester: nil,
                            renewedFrom: nil, der: der, createdAt: Date())
                        try? await store.recordIssuance(record, token: TokenUse(id: "t\(index)", expiresAt: Date() + 300))
                    }
                }
            }
        }
        let elapsed = ContinuousClock.now - start
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        let cpu = Self.cpuSeconds() - cpuBefore
        try await store.close()
        print(String(format: "%-44@ %8.0f /s, %.1f µs CPU each", "store: durable issuance rows (16 writers)" as NSString,
                     Double(count) / seconds, cpu / Double(count) * 1e6))
    }

    static func cpuSeconds() -> Double {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        return Double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) + Double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6
    }
}
