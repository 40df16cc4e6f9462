import Foundation
import Testing
import TestSupport

/// `ca serve` stops on SIGTERM while clients keep connections open and busy on every listener
/// (HTTPS API, `/metrics`, CRL and OCSP), as a monitored CA is stopped in production: Prometheus
/// scraping, a load balancer's health checks, revocation clients.
@Suite(.serialized) struct ShutdownEndToEndTests {
    static let clients = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Resources/keepalive_clients.py").path

    @Test func sigtermStopsEveryListenerPromptlyWhileClientsKeepConnectionsBusy() throws {
        let metricsPort = freeLoopbackPort()
        let revocationPort = freeLoopbackPort()
        let ca = try RunningCA(initArguments: [
            "--metrics-address", "127.0.0.1:\(metricsPort)", "--revocation-address", "127.0.0.1:\(revocationPort)",
        ])
        try #require(ca.waitForLog("/metrics (Prometheus)") && ca.waitForLog("(CRL and OCSP)"), "\(ca.log)")
        // Every answer carries a Date header (RFC 9110), now that the listeners format it themselves.
        let head = try runProcess("curl", ["-sf", "-D", "-", "-o", "/dev/null", "http://127.0.0.1:\(metricsPort)/metrics"])
        let dateLine = head.stdout.split(separator: "\r\n").first { $0.lowercased().hasPrefix("date: ") }.map { String($0.dropFirst(6)) }
        let parser = DateFormatter()
        parser.locale = Locale(identifier: "en_US_POSIX")
        parser.timeZone = TimeZone(identifier: "GMT")
        parser.dateFormat = "EEE, dd MMM yyyy HH:mm:ss 'GMT'"
        let served = dateLine.flatMap { parser.date(from: $0) }
        #expect(served.map { abs($0.timeIntervalSinceNow) < 5 } == true, "Date header: \(dateLine ?? "none") in \(head)")

        let rounds = 6
        for round in 1...rounds {
            if round > 1 { try ca.restart() }
            let countFile = ca.sandbox.root.file("answers-\(round)")
            let load = Process()
            load.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
            load.arguments = [Self.clients, ca.rootPath, "\(ca.port)", "\(metricsPort)", "\(revocationPort)", countFile]
            load.standardOutput = FileHandle.nullDevice
            load.standardError = FileHandle.nullDevice
            try load.run()
            defer {
                // SIGKILL: a child of a test thread inherits that thread's blocked signals, SIGTERM among them.
                kill(load.processIdentifier, SIGKILL)
                load.waitUntilExit()
            }
            // The clients are answered on every listener before the signal comes.
            let busy = Date().addingTimeInterval(20)
            while Date() < busy, (Int((try? readFile(countFile)) ?? "") ?? 0) < 300 { usleep(50_000) }
            try #require((Int((try? readFile(countFile)) ?? "") ?? 0) >= 300, "the clients were not answered: \(ca.log)")
            usleep(UInt32.random(in: 0...700_000))

            let signalled = Date()
            let status = ca.stop(within: 40)
            let took = Date().timeIntervalSince(signalled)
            try #require(status == 0, "round \(round): ca serve did not stop cleanly (status \(status)): \(ca.log.suffix(20_000))")
            #expect(took < 5, "round \(round): stopping took \(took) s with connections open")
        }
        let stops = try ca.auditEvents().filter { $0["event"] as? String == "service.stop" }
        #expect(stops.count == rounds, "every stop is audited: \(stops)")
    }
}
