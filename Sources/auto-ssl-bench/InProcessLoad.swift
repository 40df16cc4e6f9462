import AutoSSLCA
import AutoSSLBench
import AutoSSLClient
import AutoSSLCore
import AutoSSLIO
import Foundation

/// The authority of a throw-away CA driven directly (no HTTP, no TLS), for `bench sign --in-process`
/// and `bench stages`: the same CSRs, one-time tokens and durable store as the API path.
struct InProcessLoad {
    let authority: Authority
    private let provisionerKey: ECJWK
    private let csrKey: SigningKey

    init(directories: Directories) async throws {
        authority = try await AuthorityLoader(directories: directories).load(passwordFile: nil)
        let password = Passwords.fromFileContents(try FileOperations.readText(directories.provisionerPasswordFile))
        let jwe = try FileOperations.readText(authority.settings.provisioners[0].encryptedKeyFile)
        provisionerKey = try JSONDecoder().decode(ECJWK.self, from: try PasswordJWE.decrypt(jwe, password: password))
        csrKey = try SigningKey.generate(.p256)  // one key for all CSRs: the CA checks each CSR's signature anyway
    }

    /// One CSR and one token per request, for `PREFIX-N.bench.internal`, addressed to `url`'s /sign.
    func requests(_ count: Int, prefix: String, url: String) throws -> [Authority.SignRequest] {
        let provisioner = authority.settings.provisioners[0].name
        return try (0..<count).map { index in
            let names = [SubjectName.dns("\(prefix)-\(index).bench.internal")]
            let now = Int64(Date().timeIntervalSince1970)
            let claims = ProvisionerTokenClaims(
                iss: provisioner, aud: [url + "/1.0/sign"], sub: names[0].description, sans: [names[0].description],
                nbf: now, iat: now, exp: now + 300, jti: UUID().uuidString, sha: authority.rootFingerprint)
            return .init(
                csrPEM: try VerifiedCSR.make(names: names, key: csrKey),
                token: try JWT.sign(payload: claims, kid: provisionerKey.kid, key: try provisionerKey.privateKey()),
                remote: "127.0.0.1")
        }
    }

    /// Signs the batch with `lanes` concurrent tasks; returns the elapsed seconds and the sorted
    /// latencies (ms) of the issuances that succeeded.
    func run(_ batch: ArraySlice<Authority.SignRequest>, lanes: Int) async -> (seconds: Double, latencies: [Double]) {
        let authority = authority
        let start = ContinuousClock.now
        let latencies = await withTaskGroup(of: [Double].self) { group in
            let lanes = max(1, lanes)
            for lane in 0..<lanes {
                group.addTask {
                    var mine: [Double] = []
                    for index in stride(from: batch.startIndex + lane, to: batch.endIndex, by: lanes) {
                        let began = ContinuousClock.now
                        if (try? await authority.sign(batch[index])) != nil {
                            mine.append(SignBenchmark.milliseconds(ContinuousClock.now - began))
                        }
                    }
                    return mine
                }
            }
            return await group.reduce(into: []) { $0 += $1 }
        }
        return (SignBenchmark.milliseconds(ContinuousClock.now - start) / 1000, latencies.sorted())
    }
}
