import AutoSSLCore
import AutoSSLWire
import Foundation
import NIOCore
import X509

/// What validating a challenge needs from the network, and nothing else: the rules of each
/// challenge (HTTP01.swift, DNS01.swift, TLSALPN01.swift) run over this, so they can be tested with
/// a fake network. Implementations connect only to the address they are given (the address policy
/// is the rules' business), read bounded answers, and give up at the deadline.
public protocol ValidationNetwork: Sendable {
    /// One HTTP GET to `request.address` (TLS without certificate checks when `request.tls`), and
    /// its answer, read within `HTTPAnswer.Limits` (96 KiB in all, 64 KiB of body).
    func get(_ request: HTTPGet, deadline: ValidationDeadline) async throws -> HTTPAnswer
    /// The TXT records at `name` (each record's strings joined), from `resolver` (host:port) or the
    /// system's first nameserver; empty when there are none.
    func txtRecords(_ name: String, resolver: String?, deadline: ValidationDeadline) async throws -> [String]
    /// The A and AAAA records of `name`, from `resolver` or the system's resolver.
    func addresses(of name: String, resolver: String?, deadline: ValidationDeadline) async throws -> [IPAddress]
    /// The certificate a server presents on a TLS handshake with ALPN `acme-tls/1` and SNI `serverName`.
    func alpnCertificate(address: IPAddress, port: Int, serverName: String, deadline: ValidationDeadline) async throws -> Certificate
}

/// One GET a validation sends.
public struct HTTPGet: Sendable, Equatable, CustomStringConvertible {
    public var address: IPAddress
    public var port: Int
    public var tls: Bool
    /// SNI (a name, never an IP address).
    public var serverName: String?
    /// The Host header.
    public var host: String
    public var path: String

    public init(address: IPAddress, port: Int, tls: Bool, serverName: String?, host: String, path: String) {
        self.address = address
        self.port = port
        self.tls = tls
        self.serverName = serverName
        self.host = host
        self.path = path
    }

    public var description: String { "http\(tls ? "s" : "")://\(host)\(path) at \(address):\(port)" }
}

/// The end of one validation attempt: connect, TLS, request and answer (or look-up) together.
public struct ValidationDeadline: Sendable {
    public let end: NIODeadline
    public let seconds: Int64

    /// Between 1 and 300 s from now.
    public init(seconds: TimeInterval) {
        let whole = Int64(max(1, min(seconds, 300)))
        self.seconds = whole
        self.end = .now() + .seconds(whole)
    }

    /// Ends at `end` (for tests that need a deadline shorter than a second).
    public init(end: NIODeadline, seconds: Int64) {
        self.end = end
        self.seconds = seconds
    }

    /// Time left, or a timeout problem when none is.
    public func remaining(_ what: String) throws -> TimeAmount {
        let left = end - .now()
        guard left > .milliseconds(10) else {
            throw ACMEProblem(.connection, "timeout: \(what) did not finish within the \(seconds) s a validation attempt may take")
        }
        return left
    }
}
