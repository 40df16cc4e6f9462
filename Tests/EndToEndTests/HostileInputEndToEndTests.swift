import Foundation
import Testing
import TestSupport

/// `ca serve` under hostile input: a hand-written corpus of malformed bodies, headers, HTTP framing
/// and tokens sent over raw TLS sockets (Resources/hostile_corpus.py), and schemathesis fuzzing
/// every operation of docs/openapi.yaml (Resources/schemathesis_run.py). Either way the server must
/// answer each request with a 4xx (or close the connection) and never a 5xx, keep answering others
/// meanwhile, stay up, stop cleanly afterwards, and store nothing.
@Suite(.serialized) struct HostileInputEndToEndTests {
    static let resources = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Resources").path
    static let openAPI = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("docs/openapi.yaml").path

    static func database(_ ca: RunningCA) -> String { ca.sandbox.caDir + "/db/auto-ssl.sqlite" }

    /// The certificates `ca certs list --json` shows (the admin's view of what is stored).
    static func certificateCount(_ ca: RunningCA) throws -> Int {
        let listed = try ca.sandbox.run(["ca", "certs", "list", "--json"])
        guard listed.status == 0,
              let certificates = try JSONSerialization.jsonObject(with: Data(listed.stdout.utf8)) as? [Any] else {
            throw TestFailure("ca certs list --json: \(listed)")
        }
        return certificates.count
    }

    /// The server's own lines (not the audit lines every refused request writes), the last ones.
    static func logTail(_ ca: RunningCA, lines: Int = 40) -> String {
        ca.log.split(separator: "\n").filter { !$0.contains("audit {") }.suffix(lines).joined(separator: "\n")
    }

    /// Each failure the script reported, one per line: case, route, observed, the request's bytes.
    static func failureLines(_ report: [String: Any]) -> String {
        let failures = report["failures"] as? [[String: Any]] ?? []
        return failures.map { failure in
            "- \(failure["case"] ?? "") on \(failure["route"] ?? ""): \(failure["observed"] ?? "")"
                + ((failure["request"] as? String).map { "\n    request: \($0)" } ?? "")
        }.joined(separator: "\n")
    }

    static func report(_ result: ProcessResult) throws -> [String: Any] {
        guard let object = try? JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any] else {
            throw TestFailure("the script printed no report: \(result)")
        }
        return object
    }

    @Test("every route survives a corpus of malformed bodies, headers, framing and tokens with nothing stored")
    func everyRouteSurvivesAHostileCorpus() throws {
        let ca = try RunningCA()
        let before = try Self.certificateCount(ca)
        let result = try runProcess("python3", [
            Self.resources + "/hostile_corpus.py", ca.url, ca.rootPath, Self.database(ca), "--pid", "\(ca.processIdentifier)",
            "--log", ca.stderrFile, "--admin-password-file", ca.sandbox.configDir + "/provisioner-password",
        ])
        let report = try Self.report(result)
        let failures = report["failures"] as? [[String: Any]] ?? []
        #expect(failures.isEmpty && result.status == 0, """
            \(failures.count) hostile request(s) got a 5xx or no answer, made the server log an internal error, or stopped it:
            \(Self.failureLines(report))
            statuses: \(report["statuses"] ?? "")
            server log (without audit lines):
            \(Self.logTail(ca))
            """)
        #expect((report["cases"] as? Int ?? 0) > 1000, "the corpus ran: \(report["cases"] ?? "")")
        #expect(report["server_alive"] as? Bool == true && ca.process.isRunning, "the server process is still running")
        #expect(try runProcess("curl", ["-sf", "--max-time", "10", "--cacert", ca.rootPath, ca.url + "/health"]).status == 0)
        #expect(report["stored_before"] as? [String: Int] == report["stored_after"] as? [String: Int], "no rows added: \(report)")
        // The one certificate the script had issued for its x5c tokens, and nothing else.
        #expect(try Self.certificateCount(ca) == before + (report["issued_before_counting"] as? Int ?? 0))
        // It still stops cleanly: nothing is stuck on a connection the corpus left behind.
        #expect(ca.stop() == 0, "\(Self.logTail(ca))")
    }

    @Test("schemathesis finds no server error and no response that contradicts docs/openapi.yaml, and stores nothing")
    func schemathesisFindsNoServerErrorOrContradiction() throws {
        let ca = try RunningCA()
        let before = try Self.certificateCount(ca)
        let result = try runProcess("python3", [
            Self.resources + "/schemathesis_run.py", ca.url, ca.rootPath, Self.database(ca), "--pid", "\(ca.processIdentifier)",
            "--schema", Self.openAPI, "--report-dir", ca.sandbox.root.file("schemathesis-report"),
        ])
        let report = try Self.report(result)
        #expect(result.status == 0 && report["exit"] as? Int == 0, """
            schemathesis exit \(report["exit"] ?? ""):
            \(report["failures"] ?? "")
            \(report["summary"] ?? "")
            \(report["output"] ?? "")
            server log (without audit lines):
            \(Self.logTail(ca))
            """)
        #expect(report["server_alive"] as? Bool == true && ca.process.isRunning, "the server process is still running")
        #expect(report["health_after"] as? Int == 200, "GET /health after the run: \(report["health_after"] ?? "")")
        #expect(report["stored_before"] as? [String: Int] == report["stored_after"] as? [String: Int], "no rows added: \(report)")
        #expect(try Self.certificateCount(ca) == before)
        #expect(ca.stop() == 0, "\(Self.logTail(ca))")
    }
}
