import AsyncHTTPClient
import AutoSSLCore
import Foundation
import NIOCore
import NIOFoundationCompat
import NIOSSL
import Synchronization
import X509

/// Load generator for `auto-ssl bench sign`: many concurrent clients issuing certificates through
/// the real HTTPS API, each request with its own CSR and one-time token (prepared beforehand so
/// the measurement is the CA's work, not the client's key generation).
public struct SignBenchmark: Sendable {
    public struct Result: Sendable, Codable {
        public var requests: Int
        public var concurrency: Int
        public var succeeded: Int
        public var failed: Int
        public var seconds: Double
        public var certificatesPerSecond: Double
        public var p50Milliseconds: Double
        public var p90Milliseconds: Double
        public var p99Milliseconds: Double
        public var maxMilliseconds: Double
        public var firstError: String?

        enum CodingKeys: String, CodingKey {
            case requests, concurrency, succeeded, failed, seconds
            case certificatesPerSecond = "certificates_per_second"
            case p50Milliseconds = "p50_ms"
            case p90Milliseconds = "p90_ms"
            case p99Milliseconds = "p99_ms"
            case maxMilliseconds = "max_ms"
            case firstError = "first_error"
        }
    }

    public let client: CAClient
    public let provisioner: String
    public let key: ECJWK

    public init(client: CAClient, provisioner: String, key: ECJWK) {
        self.client = client
        self.provisioner = provisioner
        self.key = key
    }

    /// Request bodies ready to send: CSR + token for a distinct name each.
    public func prepare(count: Int) throws -> [ByteBuffer] {
        let csrKey = try SigningKey.generate(.p256)  // one key for all CSRs: the CA checks each CSR's signature anyway
        return try (0..<count).map { index in
            let names = [SubjectName.dns("bench-\(index).bench.internal")]
            let body: [String: String] = [
                "csr": try VerifiedCSR.make(names: names, key: csrKey),
                "ott": try client.signToken(provisioner: provisioner, key: key, names: names),
            ]
            return ByteBuffer(data: try JSONSerialization.data(withJSONObject: body))
        }
    }

    public func run(bodies: [ByteBuffer], concurrency: Int) async throws -> Result {
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.trustRoots = .certificates([try NIOSSLCertificate(bytes: try client.root.derBytes(), format: .der)])
        var configuration = HTTPClient.Configuration(tlsConfiguration: tls)
        configuration.connectionPool = .init(idleTimeout: .seconds(60), concurrentHTTP1ConnectionsPerHostSoftLimit: concurrency)
        let http = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
        let next = Counter()
        let url = client.baseURL + "/1.0/sign"
        let start = ContinuousClock.now
        let perWorker: [([Double], Int, String?)] = await withTaskGroup(of: ([Double], Int, String?).self) { group in
            for _ in 0..<concurrency {
                group.addTask {
                    var latencies: [Double] = []
                    var failures = 0
                    var firstError: String?
                    while true {
                        let index = next.value.wrappingAdd(1, ordering: .relaxed).oldValue
                        guard index < bodies.count else { break }
                        var request = HTTPClientRequest(url: url)
                        request.method = .POST
                        request.headers.add(name: "Content-Type", value: "application/json")
                        request.body = .bytes(bodies[index])
                        let began = ContinuousClock.now
                        do {
                            let response = try await http.execute(request, timeout: .seconds(30))
                            let body = try await response.body.collect(upTo: 1 << 20)
                            if response.status.code == 201 {
                                latencies.append(Self.milliseconds(ContinuousClock.now - began))
                            } else {
                                failures += 1
                                if firstError == nil { firstError = "HTTP \(response.status.code): \(String(buffer: body).prefix(200))" }
                            }
                        } catch {
                            failures += 1
                            if firstError == nil { firstError = "\(error)" }
                        }
                    }
                    return (latencies, failures, firstError)
                }
            }
            return await group.reduce(into: []) { $0.append($1) }
        }
        let elapsed = Self.milliseconds(ContinuousClock.now - start) / 1000
        try? await http.shutdown()
        let latencies = perWorker.flatMap(\.0).sorted()
        func percentile(_ p: Double) -> Double {
            guard !latencies.isEmpty else { return 0 }
            return latencies[min(latencies.count - 1, Int((Double(latencies.count) * p).rounded(.up)) - 1)]
        }
        return Result(
            requests: bodies.count, concurrency: concurrency, succeeded: latencies.count,
            failed: perWorker.map(\.1).reduce(0, +), seconds: elapsed,
            certificatesPerSecond: Double(latencies.count) / elapsed, p50Milliseconds: percentile(0.50),
            p90Milliseconds: percentile(0.90), p99Milliseconds: percentile(0.99), maxMilliseconds: latencies.last ?? 0,
            firstError: perWorker.compactMap(\.2).first)
    }

    public static func milliseconds(_ duration: Duration) -> Double {
        Double(duration.components.seconds) * 1000 + Double(duration.components.attoseconds) / 1e15
    }
}

/// The index of the next request to send, shared by the client tasks.
final class Counter: Sendable {
    let value = Atomic<Int>(0)
}
