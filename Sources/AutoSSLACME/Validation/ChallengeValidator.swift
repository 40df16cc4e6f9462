import AutoSSLCore
import AutoSSLWire
import Foundation
import NIOCore
import NIOSSL

/// Checks ACME challenges (RFC 8555 §8.3, §8.4; RFC 8737; RFC 8738) the way a careful CA does:
/// every address the identifier resolves to is tried until one answers correctly, and failures
/// become problem documents the client can show. The rule of each challenge is in its own file
/// (HTTP01.swift, DNS01.swift, TLSALPN01.swift); the network is whatever `ValidationNetwork` is given.
///
/// Each attempt has one overall deadline, enforced here whatever the network does, and by default
/// no connection goes to loopback, link-local, multicast or unspecified addresses or to the CA's own
/// (`ValidationAddressPolicy`), neither first nor after a redirect.
public struct ChallengeValidator: Sendable {
    /// Ports and resolver of the provisioner.
    public var http01Port: Int
    public var tlsALPN01Port: Int
    public var resolver: String?
    public var addressPolicy: ValidationAddressPolicy
    public var network: any ValidationNetwork
    /// The budget of one attempt, whatever the responder does.
    public var timeout: TimeInterval

    public init(
        http01Port: Int = 80, tlsALPN01Port: Int = 443, resolver: String? = nil, addressPolicy: ValidationAddressPolicy = ValidationAddressPolicy(),
        network: any ValidationNetwork = NIOValidationNetwork(), timeout: TimeInterval = 10
    ) {
        self.http01Port = http01Port
        self.tlsALPN01Port = tlsALPN01Port
        self.resolver = resolver
        self.addressPolicy = addressPolicy
        self.network = network
        self.timeout = timeout
    }

    /// One attempt: nil when the challenge is met, else why not.
    public func validate(type: String, identifier: ACMEIdentifierValue, token: String, keyAuthorization: String) async -> ACMEProblem? {
        let deadline = ValidationDeadline(seconds: timeout)
        let work: @Sendable () async throws -> Void
        switch type {
        case "http-01": work = { try await http01(identifier, token: token, keyAuthorization: keyAuthorization, deadline: deadline) }
        case "dns-01": work = { try await dns01(identifier, keyAuthorization: keyAuthorization, deadline: deadline) }
        case "tls-alpn-01": work = { try await tlsALPN01(identifier, keyAuthorization: keyAuthorization, deadline: deadline) }
        default: return ACMEProblem(.malformed, "unknown challenge type \(type)")
        }
        do {
            try await Self.withinDeadline(deadline, work)
            return nil
        } catch let problem as ACMEProblem {
            return problem
        } catch {
            return ACMEProblem(.connection, ValidationWords.plain(error))
        }
    }

    /// Runs `work` but gives up a few seconds after the deadline even if it does not: a backstop,
    /// whatever the network is. The network's own timeouts normally end it first, with a message
    /// that says what was waited for.
    static func withinDeadline(_ deadline: ValidationDeadline, _ work: @escaping @Sendable () async throws -> Void) async throws {
        let outcome = OneShotResult<Bool>()
        let task = Task {
            do {
                try await work()
                outcome.finish(.success(true))
            } catch {
                outcome.finish(.failure(error))
            }
        }
        let grace: TimeInterval = 5
        let left = max(0, TimeInterval((deadline.end - .now()).nanoseconds) / 1e9) + grace
        do {
            _ = try await outcome.value(timeout: left) {
                ACMEProblem(.connection, "timeout: the validation attempt did not finish within \(deadline.seconds) s")
            }
        } catch {
            task.cancel()
            throw error
        }
    }

    // MARK: - Addresses

    /// The addresses to connect to: the IP itself, or the name's A/AAAA records, less those the
    /// address policy refuses.
    func addresses(_ identifier: ACMEIdentifierValue, deadline: ValidationDeadline) async throws -> [IPAddress] {
        let found: [IPAddress]
        switch identifier {
        case .ip(let address):
            found = [address]
        case .dns(let name):
            found = try await network.addresses(of: name, resolver: resolver, deadline: deadline)
            guard !found.isEmpty else {
                throw ACMEProblem(.dns, resolver.map { "\(name) has no A or AAAA record at \($0)" } ?? "\(name) does not resolve")
            }
        }
        let usable = found.filter { addressPolicy.refusal(for: $0) == nil }
        guard !usable.isEmpty else {
            let reasons = found.compactMap { addressPolicy.refusal(for: $0) }
            throw ACMEProblem(
                .rejectedIdentifier,
                "validation does not connect to \(identifier.value): \(reasons.joined(separator: "; ")) (the CA operator can allow a range with --validation-allow)")
        }
        return usable
    }

    /// When several addresses fail, an answer that was wrong says more than an address that did not answer.
    static func moreTelling(_ current: ACMEProblem?, _ new: ACMEProblem) -> ACMEProblem {
        guard let current else { return new }
        let unreachable: Set<ACMEProblem.Kind> = [.connection, .tls, .dns]
        return unreachable.contains(current.kind) && !unreachable.contains(new.kind) ? new : current
    }
}

/// What went wrong on the network, in the words a client can act on: never a type name or an
/// internal path.
public enum ValidationWords {
    public static func plain(_ error: any Error, target: String = "the responder") -> String {
        if let problem = error as? ACMEProblem { return problem.detail }
        if let failure = error as? HTTPAnswerFailure { return failure.description }
        if let failure = error as? DNSLookup.Failure { return failure.description }
        if let words = NetworkFailureWords.describe(error, target: target) { return words }
        if error is NIOSSLError || error is BoringSSLError { return "the TLS handshake failed" }
        return "connection failed"
    }
}
