import Foundation
import Testing
import TestSupport

/// Connections are bounded: one source that holds thousands of idle connections and hundreds of
/// half-finished TLS handshakes does not stop another client, and the server sheds them.
@Suite(.serialized) struct ConnectionLimitsEndToEndTests {
    static let resources = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Resources").path

    /// `connection_flood.py` from 127.0.0.2 (another source address on loopback; the tests'
    /// clients connect from 127.0.0.1), started and waited for until its connections are open.
    /// `finish` waits for it to end and returns its report.
    struct Flood {
        let process: Process
        let output: String

        init(port: Int, idle: Int, halfOpen: Int, holdSeconds: Int, in sandbox: Sandbox) throws {
            let ready = sandbox.root.file("flood.ready")
            output = sandbox.root.file("flood.json")
            FileManager.default.createFile(atPath: output, contents: nil)
            process = Process()
            process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            process.arguments = [
                "python3", ConnectionLimitsEndToEndTests.resources + "/connection_flood.py", "127.0.0.1", "\(port)", "127.0.0.2",
                "\(idle)", "\(halfOpen)", "\(holdSeconds)", ready,
            ]
            process.standardOutput = FileHandle(forWritingAtPath: output)
            process.standardError = FileHandle(forWritingAtPath: output)
            process.standardInput = FileHandle.nullDevice
            try process.run()
            let readyBy = Date().addingTimeInterval(60)
            while !FileManager.default.fileExists(atPath: ready) && Date() < readyBy && process.isRunning { usleep(100_000) }
            #expect(FileManager.default.fileExists(atPath: ready), "\((try? readFile(output)) ?? "")")
        }

        func finish() throws -> [String: Any] {
            process.waitUntilExit()
            let text = try readFile(output)
            return (try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [String: Any] ?? ["output": text]
        }

        func stop() {
            if process.isRunning { process.terminate() }
        }
    }

    @Test func aFloodFromOneAddressDoesNotStopAnotherClientFromGettingACertificate() throws {
        let ca = try RunningCA()
        let fingerprint = try ca.fingerprint
        let flood = try Flood(port: ca.port, idle: 2000, halfOpen: 200, holdSeconds: 25, in: ca.sandbox)
        defer { flood.stop() }

        let started = Date()
        let issued = try ca.sandbox.run([
            "cert", "issue", "--ca-url", ca.url, "--fingerprint", fingerprint, "--san", "during-flood.internal",
            "--out-cert", ca.sandbox.root.file("d.crt"), "--out-key", ca.sandbox.root.file("d.key"),
            "--password-file", ca.sandbox.configDir + "/provisioner-password",
        ])
        #expect(issued.status == 0, "\(issued)")
        #expect(Date().timeIntervalSince(started) < 10, "issuance took \(Date().timeIntervalSince(started)) s during the flood")

        let report = try flood.finish()
        // The source got at most its share; every half-finished handshake was closed by the deadline,
        // and the idle connections beyond the per-source cap were closed at once.
        #expect(report["half_closed_by_server"] as? Int == report["half_opened"] as? Int, "\(report)")
        let idleOpened = report["idle_opened"] as? Int ?? 0
        let idleClosed = report["idle_closed_by_server"] as? Int ?? 0
        #expect(idleOpened - idleClosed <= 128, "\(report)")
        #expect(ca.process.isRunning, "\(ca.log)")
        #expect(try runProcess("curl", ["-sf", "--cacert", ca.rootPath, ca.url + "/health"]).status == 0)
    }

    /// The plain-HTTP CRL and OCSP port is public too: one source gets no more than its share of
    /// connections there, and CRLs are still served to others during the flood.
    @Test func aFloodOfTheRevocationPortIsCappedPerSource() throws {
        let revocationPort = freeLoopbackPort()
        let ca = try RunningCA(initArguments: ["--revocation-address", "127.0.0.1:\(revocationPort)"])
        let flood = try Flood(port: revocationPort, idle: 1000, halfOpen: 0, holdSeconds: 8, in: ca.sandbox)
        defer { flood.stop() }
        let crl = try runProcess("curl", ["-sf", "-o", "/dev/null", "-w", "%{http_code}", "http://127.0.0.1:\(revocationPort)/crl"])
        #expect(crl.status == 0 && crl.stdout == "200", "\(crl)")

        let report = try flood.finish()
        let opened = report["idle_opened"] as? Int ?? 0
        let closed = report["idle_closed_by_server"] as? Int ?? 0
        #expect(opened > 128 && opened - closed <= 128, "\(report)")
        #expect(ca.process.isRunning, "\(ca.log)")
    }

    @Test func plainHTTPToTheHTTPSPortGetsAShortAnswerPointingAtHTTPS() throws {
        let ca = try RunningCA()
        let plain = try runProcess("curl", ["-s", "-w", "\\n%{http_code}", "--max-time", "5", "http://127.0.0.1:\(ca.port)/health"])
        #expect(plain.stdout.contains("use https://127.0.0.1:\(ca.port)/") && plain.stdout.hasSuffix("400"), "\(plain)")
        #expect(try runProcess("curl", ["-sf", "--cacert", ca.rootPath, ca.url + "/health"]).status == 0)
    }
}
