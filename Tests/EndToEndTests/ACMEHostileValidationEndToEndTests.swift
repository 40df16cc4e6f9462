import Foundation
import Testing
import TestSupport

/// ACME validation against responders an attacker controls: malformed lengths, oversized answers,
/// silence, and addresses validation must not reach. The CA must stay up, fail the challenge with a
/// reason that names the kind of failure, and store nothing.
@Suite(.serialized) struct ACMEHostileValidationEndToEndTests {
    static let client = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Resources/acme_client.py").path

    func health(_ ca: RunningCA) throws -> Bool {
        try runProcess("curl", ["-sf", "--cacert", ca.rootPath, ca.url + "/health"]).status == 0
    }

    func certificateCount(_ ca: RunningCA) throws -> Int {
        let listed = try ca.sandbox.run(["ca", "certs", "list", "--json"])
        return (try JSONSerialization.jsonObject(with: Data(listed.stdout.utf8)) as? [Any])?.count ?? -1
    }

    @Test func hostileHTTP01AnswersFailTheChallengeAndNeverStopTheCA() throws {
        let port = freeLoopbackPort()
        let ca = try RunningCA { sandbox in
            let updated = try sandbox.run([
                "ca", "provisioner", "update", "acme", "--http01-port", "\(port)", "--validation-allow", "127.0.0.0/8",
            ])
            guard updated.status == 0 else { throw TestFailure("provisioner update: \(updated)") }
        }
        let before = try certificateCount(ca)
        let run = try runProcess("python3", [Self.client, ca.url + "/acme/acme/directory", ca.rootPath, "\(port)", "hostile"])
        #expect(run.status == 0, "\(run)")
        let results = try JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as? [String: [String: Any]] ?? [:]
        let expectedWords: [String: String] = [
            "negative-content-length": "not valid HTTP", "negative-chunk": "not valid HTTP", "huge-chunk": "",
            "overflowing-chunk": "not valid HTTP", "huge-body": "larger than", "many-headers": "not valid HTTP",
            "garbage": "not valid HTTP", "hang": "timeout",
        ]
        #expect(results.count == expectedWords.count, "\(results)")
        for (kind, words) in expectedWords {
            let result = results[kind] ?? [:]
            let detail = (result["error"] as? [String: Any])?["detail"] as? String ?? ""
            #expect(result["status"] as? String == "invalid", "\(kind): \(result)")
            #expect(words.isEmpty || detail.contains(words), "\(kind): \(detail)")
            #expect(!detail.contains("NIO") && !detail.contains("Error("), "\(kind) leaks internals: \(detail)")
        }
        #expect(ca.process.isRunning, "\(ca.log)")
        #expect(try health(ca))
        #expect(try certificateCount(ca) == before)
        let invalid = try ca.auditEvents().filter { $0["event"] as? String == "acme.challenge.invalid" }
        #expect(invalid.count == expectedWords.count)
        // A restart resumes nothing that could loop: every challenge is finished.
        try ca.restart()
        #expect(try health(ca))
    }

    @Test func validationRefusesLoopbackUnlessTheOperatorAllowsIt() throws {
        let port = freeLoopbackPort()
        let ca = try RunningCA { sandbox in
            let added = try sandbox.run(["ca", "provisioner", "add", "--type", "acme", "--name", "strict", "--http01-port", "\(port)"])
            guard added.status == 0 else { throw TestFailure("provisioner add: \(added)") }
            let refused = try sandbox.run(["ca", "provisioner", "update", "strict", "--validation-allow", "not-a-range"])
            guard refused.status == 2, refused.stderr.contains("CIDR") else { throw TestFailure("bad range accepted: \(refused)") }
        }
        let run = try runProcess("python3", [Self.client, ca.url + "/acme/strict/directory", ca.rootPath, "\(port)", "refused-address"])
        #expect(run.status == 0, "\(run)")
        let result = try JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as? [String: Any] ?? [:]
        let error = result["error"] as? [String: Any] ?? [:]
        #expect(result["status"] as? String == "invalid", "\(result)")
        #expect((error["type"] as? String ?? "").hasSuffix("rejectedIdentifier"), "\(error)")
        #expect((error["detail"] as? String ?? "").contains("loopback"), "\(error)")
        #expect((error["detail"] as? String ?? "").contains("--validation-allow"), "\(error)")
        #expect(try health(ca))
    }
}
