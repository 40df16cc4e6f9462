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

    /// A request whose body trickles in (a byte every 3 s, each of which restarts the idle
    /// timeout) is closed 30 s after its head instead of holding its connection for ever; one
    /// whose head trickles in is closed 60 s after the connection started (the idle timeout,
    /// which only restarts on whole request parts, would close that one too).
    @Test func aRequestThatTricklesInIsClosedAtItsDeadline() throws {
        let ca = try RunningCA()
        let result = try runPython("""
            import socket, ssl, sys, threading, time, json
            port, root = int(sys.argv[1]), sys.argv[2]
            context = ssl.create_default_context(cafile=root)
            context.check_hostname = False
            def trickle(first, step, results, name):
                raw = socket.create_connection(("127.0.0.1", port), timeout=120)
                conn = context.wrap_socket(raw, server_hostname="127.0.0.1")
                start = time.monotonic()
                conn.sendall(first)
                conn.settimeout(3)
                closed = None
                while time.monotonic() - start < 100:
                    try:
                        data = conn.recv(4096)
                        if not data:
                            closed = time.monotonic() - start
                            break
                    except socket.timeout:
                        try:
                            conn.sendall(step)
                        except OSError:
                            closed = time.monotonic() - start
                            break
                    except OSError:
                        closed = time.monotonic() - start
                        break
                results[name] = closed
            results = {}
            body = threading.Thread(target=trickle, args=(b"POST /1.0/sign HTTP/1.1\\r\\nHost: ca\\r\\nContent-Type: application/json\\r\\nContent-Length: 100000\\r\\n\\r\\n", b"x", results, "body"))
            head = threading.Thread(target=trickle, args=(b"GET /health HTTP/1.1\\r\\n", b"X", results, "head"))
            body.start(); head.start(); body.join(); head.join()
            print(json.dumps(results))
            """, arguments: ["\(ca.port)", ca.rootPath])
        #expect(result.status == 0, "\(result)")
        let closed = (try? JSONSerialization.jsonObject(with: Data(result.stdout.utf8))) as? [String: Double] ?? [:]
        let body = try #require(closed["body"], "the trickled body was never closed: \(result)")
        let head = try #require(closed["head"], "the trickled head was never closed: \(result)")
        #expect(body > 27 && body < 40, "closed \(body) s after the head")
        #expect(head > 57 && head < 70, "closed \(head) s after the connection started")
        #expect(ca.process.isRunning, "\(ca.log)")
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
