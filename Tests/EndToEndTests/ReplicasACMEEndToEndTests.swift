import Foundation
import Testing
import TestSupport

/// ACME across two replicas of one CA sharing a test PostgreSQL (`ReplicasEndToEndTests.startReplicas`):
/// ACME clients know the CA by one shared name (a load balancer or DNS round robin in front), and any
/// step of an order may reach either replica.
@Suite(.serialized, .enabled(if: TemporaryPostgres.isAvailable)) struct ReplicasACMEEndToEndTests {
    static let resources = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Resources").path

    /// lego and nginx, and certbot's ACME library for Debian's own Python (CI installs certbot).
    static let haveClients: Bool = {
        guard ["/usr/bin/lego", "/usr/sbin/nginx", "/usr/bin/python3"].allSatisfy({ FileManager.default.isExecutableFile(atPath: $0) })
        else { return false }
        return (try? runProcess("/usr/bin/python3", ["-c", "import acme.client, josepy"]))?.status == 0
    }()

    /// Two replicas with an ACME provisioner added on A that validates http-01 on a test port of
    /// 127.0.0.0/8, in force on both (each serves its directory, so each has loaded its settings).
    final class Setup: @unchecked Sendable {
        static let provisioner = "shared"
        let replicas: ReplicasEndToEndTests.Replicas
        let http01Port = freeLoopbackPort()
        var a: RunningCA { replicas.a }
        var b: RunningCA { replicas.b }
        var root: String { a.rootPath }
        var directoryPath: String { "/acme/\(Self.provisioner)/directory" }

        init() throws {
            replicas = try ReplicasEndToEndTests.startReplicas()
            let (a, b) = (replicas.a, replicas.b)
            let added = try a.sandbox.run([
                "ca", "provisioner", "add", "--type", "acme", "--name", Self.provisioner, "--challenges", "http-01",
                "--http01-port", "\(http01Port)", "--validation-allow", "127.0.0.0/8",
            ])
            guard added.status == 0 else { throw TestFailure("provisioner add: \(added)") }
            let path = directoryPath
            let inForce = try ReplicasEndToEndTests.eventually(within: 20) {
                try [a, b].allSatisfy { try runProcess("curl", ["-sf", "-o", "/dev/null", "--cacert", a.rootPath, $0.url + path]).status == 0 }
            }
            guard inForce else { throw TestFailure("the ACME provisioner added on A is not served by both replicas:\nA: \(a.log)\nB: \(b.log)") }
        }

        func verify(_ chain: String) throws -> ProcessResult {
            try runProcess("openssl", ["verify", "-x509_strict", "-CAfile", root, "-untrusted", chain, chain])
        }

        func serial(_ certificate: String) throws -> String {
            let out = try runProcess("openssl", ["x509", "-in", certificate, "-noout", "-serial"]).stdout
            return String(String(out.split(separator: "=").last ?? "").trimmingCharacters(in: .whitespacesAndNewlines).lowercased()
                .drop { $0 == "0" })
        }

        /// The audit events named `event` of one replica (each writes its own audit log).
        func events(_ event: String, on ca: RunningCA) throws -> [[String: Any]] {
            try ca.auditEvents().filter { $0["event"] as? String == event }
        }

        func issuedSerials(on ca: RunningCA) throws -> [String] {
            try events("certificate.issued", on: ca).compactMap { ($0["serial"] as? String)?.lowercased() }.map { String($0.drop { $0 == "0" }) }
        }
    }

    /// certbot's ACME library, each step of two orders sent to a chosen replica
    /// (Resources/acme_across_replicas.py).
    @Test(.enabled(if: haveClients, "needs lego, nginx and python3-acme (CI installs them)"))
    func anOrderCreatedOnOneReplicaIsValidatedAndFinalizedOnTheOther() throws {
        let setup = try Setup()
        let (a, b) = (setup.a, setup.b)
        // The shared name: nothing needs to listen there, every request goes straight to the replica
        // the script picks, with this name in its URL, its JWS and its Host header.
        let directory = "https://127.0.0.1:\(freeLoopbackPort())" + setup.directoryPath
        let output = a.sandbox.root.file("orders")
        try FileManager.default.createDirectory(atPath: output, withIntermediateDirectories: true)
        let run = try runProcess("/usr/bin/python3", [
            Self.resources + "/acme_across_replicas.py", directory, "\(a.port)", "\(b.port)", setup.root, "\(setup.http01Port)", output,
        ])
        guard run.status == 0 else {
            Issue.record("the ACME client failed: \(run)\nA: \(a.log)\nB: \(b.log)")
            return
        }
        let outcome = try JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as? [String: Any] ?? [:]
        let orders = outcome["orders"] as? [[String: String]] ?? []
        let requests = outcome["requests"] as? [[String]] ?? []
        try #require(orders.count == 2, "\(run)")

        // Each request went where the script says (repeated polls counted once): one account made on A;
        // order 1 created on A, its challenge answered on B, polled on A, finalized on B, its
        // certificate fetched on A; order 2 the other way round. Every step after the first used a
        // nonce one of the two replicas handed out, and the account URL made on A.
        let orderIDs = orders.map { URL(string: $0["url"] ?? "")?.lastPathComponent ?? "-" }
        let steps = requests.map { request -> String in
            let path = request.count == 3 ? request[2].split(separator: "/").map(String.init) : []
            guard path.count >= 3, path[0] == "acme", path[1] == Setup.provisioner else { return request.joined(separator: " ") }
            let kind = path.last == "finalize" ? "finalize" : path[2]
            let order = path.count > 3 ? orderIDs.firstIndex(of: path[3]).map { " \($0 + 1)" } ?? "" : ""
            return "\(request[0]) \(kind)" + (["order", "cert", "finalize"].contains(kind) ? order : "")
        }.reduce(into: [String]()) { if $0.last != $1 { $0.append($1) } }
        #expect(steps == [
            "A directory", "A new-nonce", "A new-account",
            "A new-order", "A authz", "B chall", "A authz", "B finalize 1", "A order 1", "A cert 1",
            "B new-order", "B authz", "A chall", "B authz", "A finalize 2", "B order 2", "B cert 2",
        ], "\(requests)")

        // The replicas' own records agree: the account was made on A; order 1 was validated and its
        // certificate issued on B, order 2's on A; each replica saw exactly one validation and issuance.
        let (first, second) = (orders[0], orders[1])
        #expect(try setup.events("acme.account.created", on: a).count == 1)
        #expect(try setup.events("acme.account.created", on: b).isEmpty)
        let validOnA = try setup.events("acme.challenge.valid", on: a).compactMap { $0["sans"] as? [String] }
        let validOnB = try setup.events("acme.challenge.valid", on: b).compactMap { $0["sans"] as? [String] }
        #expect(validOnB == [["127.0.0.1"]] && validOnA == [["127.0.0.2"]], "A: \(validOnA) B: \(validOnB)")
        #expect(try setup.issuedSerials(on: b) == [first["serial"] ?? "-"], "order 1 issued on B")
        #expect(try setup.issuedSerials(on: a) == [second["serial"] ?? "-"], "order 2 issued on A")

        // Each chain, downloaded from the replica that did not issue it, verifies against the root and
        // names its order's address.
        for (order, address) in [(first, "127.0.0.1"), (second, "127.0.0.2")] {
            let chain = order["chain"] ?? "-"
            let verified = try setup.verify(chain)
            #expect(verified.status == 0, "\(verified)")
            #expect(try setup.serial(chain) == order["serial"])
            let names = try runProcess("openssl", ["x509", "-in", chain, "-noout", "-ext", "subjectAltName"]).stdout
            #expect(names.contains("IP Address:\(address)") && !names.contains("DNS:"), "\(names)")
        }
        #expect(a.stop() == 0 && b.stop() == 0)
    }

    /// nginx as the load balancer: TLS with a certificate from the CA, each request sent to the next
    /// replica in turn (one worker, round robin; never retried on the other) unless its path ends in
    /// one of `pinned`'s suffixes (then to that replica), the replica's certificate checked against the
    /// root, the client's Host kept, and the replica that served each request in the access log.
    final class Front: @unchecked Sendable {
        let port = freeLoopbackPort()
        let directory: String
        let process = Process()
        var url: String { "https://127.0.0.1:\(port)" }
        var accessLog: String { directory + "/access.log" }

        init(directory: String, cert: String, key: String, root: String, replicas: [Int], pinned: [String: Int] = [:]) throws {
            self.directory = directory
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            let config = directory + "/nginx.conf"
            try """
                daemon off;
                pid \(directory)/nginx.pid;
                error_log \(directory)/error.log;
                worker_processes 1;
                events { worker_connections 64; }
                http {
                    log_format replicas '$upstream_addr $request_method $uri $status';
                    access_log \(accessLog) replicas;
                    client_body_temp_path \(directory)/body;
                    proxy_temp_path \(directory)/proxy;
                    fastcgi_temp_path \(directory)/fastcgi;
                    uwsgi_temp_path \(directory)/uwsgi;
                    scgi_temp_path \(directory)/scgi;
                    upstream replicas {
                \(replicas.map { "        server 127.0.0.1:\($0);" }.joined(separator: "\n"))
                    }
                \(replicas.map { "    upstream replica\($0) { server 127.0.0.1:\($0); }" }.joined(separator: "\n"))
                    server {
                        listen 127.0.0.1:\(port) ssl;
                        ssl_certificate \(cert);
                        ssl_certificate_key \(key);
                        proxy_http_version 1.1;
                        proxy_set_header Host $http_host;
                        proxy_set_header Connection "";
                        proxy_next_upstream off;
                        proxy_ssl_verify on;
                        proxy_ssl_name 127.0.0.1;
                        proxy_ssl_trusted_certificate \(root);
                \(pinned.sorted { $0.key < $1.key }.map { "        location ~ \($0.key)$ { proxy_pass https://replica\(replicas[$0.value]); }" }
                    .joined(separator: "\n"))
                        location / { proxy_pass https://replicas; }
                    }
                }
                """.write(toFile: config, atomically: true, encoding: .utf8)
            let log = directory + "/stdout.log"
            _ = FileManager.default.createFile(atPath: log, contents: nil)
            process.executableURL = URL(fileURLWithPath: "/usr/sbin/nginx")
            process.arguments = ["-c", config, "-e", directory + "/error.log"]
            process.standardInput = FileHandle.nullDevice
            process.standardOutput = FileHandle(forWritingAtPath: log)
            process.standardError = FileHandle(forWritingAtPath: log)
            try process.run()
            for _ in 0..<100 {
                if FileManager.default.fileExists(atPath: directory + "/nginx.pid"),
                   (try? runProcess("curl", ["-s", "-o", "/dev/null", "--cacert", root, url + "/health"]))?.status == 0 {
                    return
                }
                usleep(100_000)
            }
            throw TestFailure("nginx did not start: \((try? readFile(directory + "/error.log")) ?? "")")
        }

        /// `[upstream, method, path, status]` per request.
        var requests: [[String]] {
            ((try? readFile(accessLog)) ?? "").split(separator: "\n").map { $0.split(separator: " ").map(String.init) }
        }

        deinit {
            if process.isRunning {
                kill(process.processIdentifier, SIGQUIT)
                process.waitUntilExit()
            }
        }
    }

    /// An unmodified client (lego) behind the front, its requests alternating between the replicas.
    @Test(.enabled(if: haveClients, "needs lego, nginx and python3-acme (CI installs them)"))
    func legoBehindARoundRobinFrontGetsACertificateFromBothReplicas() throws {
        let setup = try Setup()
        let (a, b) = (setup.a, setup.b)
        let sandbox = a.sandbox.root
        let issued = try a.sandbox.run(
            ["cert", "issue", "--ca-url", a.url, "--fingerprint", try a.fingerprint, "--san", "127.0.0.1",
             "--out-cert", sandbox.file("front.crt"), "--out-key", sandbox.file("front.key"), "--password-file", "/dev/stdin"],
            stdin: setup.replicas.adminPassword + "\n")
        try #require(issued.status == 0, "\(issued)")
        let front = try Front(
            directory: sandbox.file("front"), cert: sandbox.file("front.crt"), key: sandbox.file("front.key"), root: setup.root,
            replicas: [a.port, b.port], pinned: ["/new-order": 0, "/finalize": 1])
        let before = front.requests.count

        var environment = ProcessInfo.processInfo.environment
        environment["LEGO_CA_CERTIFICATES"] = setup.root
        let path = sandbox.file("lego")
        let lego = try runProcess(
            "/usr/bin/lego",
            ["--server", front.url + setup.directoryPath, "--email", "ops@example.com", "--accept-tos", "--path", path,
             "--domains", "127.0.0.1", "--http", "--http.port", "127.0.0.1:\(setup.http01Port)", "run"],
            environment: environment)
        let served = front.requests.dropFirst(before)
        #expect(lego.status == 0, "\(lego)\nfront: \(served)\nA: \(a.log)\nB: \(b.log)")
        let chain = path + "/certificates/127.0.0.1.crt"
        #expect(try setup.verify(chain).status == 0)

        // lego's requests, nonces and account URL included, alternated between the replicas; its order
        // was created on A and finalized on B (the front pins those two steps, since how many polls
        // come between is up to lego), and every request succeeded.
        let upstreams = Set(served.map { $0.first ?? "-" })
        #expect(upstreams == ["127.0.0.1:\(a.port)", "127.0.0.1:\(b.port)"], "\(served)")
        #expect(served.allSatisfy { Int($0.last ?? "") ?? 500 < 400 }, "\(served)")
        let created = served.filter { $0.count == 4 && $0[2].hasSuffix("/new-order") }.map { $0[0] }
        let finalized = served.filter { $0.count == 4 && $0[2].hasSuffix("/finalize") }.map { $0[0] }
        #expect(created == ["127.0.0.1:\(a.port)"] && finalized == ["127.0.0.1:\(b.port)"], "\(served)")

        // The certificate was issued exactly once, by B, which took the finalize.
        let serial = try setup.serial(chain)
        #expect(try setup.issuedSerials(on: b) == [serial] && !setup.issuedSerials(on: a).contains(serial), "serial \(serial)")
        #expect(a.stop() == 0 && b.stop() == 0)
    }
}
