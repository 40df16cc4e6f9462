import AutoSSLCore
import Foundation
import NIOCore

/// The URLs one CA answers at (its replicas, or several addresses of one machine), in the order
/// they are tried.
public struct CAEndpoints: Sendable, Equatable {
    /// Normalised (https, no trailing slash), without duplicates, in the order given; never empty.
    public let urls: [String]

    public init(_ urls: [String]) throws {
        var list: [String] = []
        for url in urls {
            let normalised = try CAClient.normalise(url: url)
            if !list.contains(normalised) { list.append(normalised) }
        }
        guard !list.isEmpty else {
            throw AutoSSLError.invalidArgument("no CA URL was given", hint: "pass --ca-url (repeat it for each of the CA's URLs)")
        }
        self.urls = list
    }

    /// The URL tried first.
    public var first: String { urls.first ?? "" }
}

/// How patiently one URL is connected to.
public struct CAConnectPolicy: Sendable, Equatable {
    /// The longest wait for TCP and the TLS handshake; nil: AsyncHTTPClient's default (10 s).
    public var connectTimeout: TimeAmount?
    /// Whether a failed connection is tried again (with backoff) until the connect timeout.
    public var retriesConnecting: Bool

    /// A single URL, or the last one of several: a refused or unreachable CA is reported at once
    /// (not retried for the whole connect timeout: the renewal timer and the daemon try again
    /// later anyway), a silent one after `lastConnectTimeout`.
    public static let patient = CAConnectPolicy(connectTimeout: CAFailover.lastConnectTimeout, retriesConnecting: false)
    /// A URL with another one after it: a refused connection moves on at once, an unanswered one
    /// after `CAFailover.connectTimeout`.
    public static let failover = CAConnectPolicy(connectTimeout: CAFailover.connectTimeout, retriesConnecting: false)
}

/// A CA that could not be reached at one URL: no connection, a connection that broke, or an answer
/// saying it is unavailable (HTTP 502, 503, 504). Failover tries the next URL after one of these,
/// never after an answer that refuses (a used token, a wrong password, a fingerprint mismatch, a
/// TLS certificate that does not verify): that is the CA's word, or a security stop.
public struct CAConnectionFailure: Error, CustomStringConvertible, Sendable {
    public enum Stage: String, Sendable {
        /// No connection was made (refused, unreachable, no name, timeout while connecting or
        /// during the TLS handshake, not a TLS server): nothing was sent.
        case notConnected
        /// The connection broke or went silent once made: the request may have reached the CA.
        case interrupted
        /// The CA, or a proxy in front of it, answered that it cannot serve the request now.
        case unavailable
    }

    public var url: String
    public var stage: Stage
    /// What happened, in words, without the URL.
    public var words: String
    /// The error as it is reported when this URL was the only one.
    public var error: AutoSSLError

    /// Whether the request may have reached the CA, so a one-time token sent with it may be used up.
    /// (Failover never sends a token twice: every attempt makes its own, for the URL it tries.)
    public var mayHaveReachedCA: Bool { stage != .notConnected }

    public var description: String { error.description }
}

/// Which URL answered, and what happened at the ones tried before it.
public struct CAContact: Sendable, Equatable {
    public struct Skipped: Sendable, Equatable, Codable {
        public var url: String
        /// What happened there, in words.
        public var failure: String

        public init(url: String, failure: String) {
            self.url = url
            self.failure = failure
        }
    }

    /// The URL that answered.
    public var url: String
    /// The URLs tried before it, in order.
    public var skipped: [Skipped]
    /// How many URLs there were to try.
    public var choices: Int

    public init(url: String, skipped: [Skipped] = [], choices: Int = 1) {
        self.url = url
        self.skipped = skipped
        self.choices = choices
    }

    /// "https://b answered (after https://a: connection refused by a:9000)", for logs.
    public var summary: String {
        guard !skipped.isEmpty else { return "\(url) answered" }
        return "\(url) answered (after " + skipped.map { "\($0.url): \($0.failure)" }.joined(separator: "; ") + ")"
    }
}

/// A value obtained from a CA, and which of its URLs answered.
public struct CAAnswer<Value> {
    public var value: Value
    public var contact: CAContact
}

extension CAAnswer: Sendable where Value: Sendable {}

/// Tries a CA's URLs in turn. Every command that talks to a CA goes through here, so the rules are
/// the same everywhere:
///
/// - The URLs are tried in the order given; the first that answers is used.
/// - Only connection-level failures (`CAConnectionFailure`) move on to the next URL. Any answer from
///   the CA that refuses the request, a fingerprint mismatch, a TLS certificate that does not
///   verify or a host name the CA's certificate does not name stops at once with that error.
/// - Every URL but the last connects with `CAConnectPolicy.failover` (a refused connection moves
///   on at once, an unanswered one within `connectTimeout`); the last, or a single URL, with
///   `.patient` (refused at once too, unanswered within `lastConnectTimeout`).
/// - `attempt` runs from the start for each URL, with a client for that URL: a one-time token is
///   made inside it, for the URL tried (its audience), so a token the CA may have used up is never
///   sent again; the next URL gets a fresh one.
/// - When every URL failed, one error lists each URL and what happened there (exit 5); with a
///   single URL, its own error as before.
public enum CAFailover {
    /// The longest wait to connect (TCP and TLS handshake) to a URL that has another after it.
    public static let connectTimeout = TimeAmount.seconds(1)
    /// The longest wait to connect to a single URL or the last one: a CA that does not answer a
    /// connection attempt (a host that drops packets, a full accept queue) is given up on after this.
    public static let lastConnectTimeout = TimeAmount.seconds(5)

    public static func run<T>(
        _ endpoints: CAEndpoints, _ attempt: (_ url: String, _ policy: CAConnectPolicy) async throws -> T
    ) async throws -> CAAnswer<T> {
        var failures: [CAConnectionFailure] = []
        for (index, url) in endpoints.urls.enumerated() {
            let policy: CAConnectPolicy = index < endpoints.urls.count - 1 ? .failover : .patient
            do {
                let value = try await attempt(url, policy)
                return CAAnswer(
                    value: value, contact: CAContact(url: url, skipped: failures.map(skipped), choices: endpoints.urls.count))
            } catch var failure as CAConnectionFailure {
                failure.url = url
                failures.append(failure)
            } catch var error as AutoSSLError {
                // The CA's own answer: the same at every URL. Say where it came from when others were tried.
                if !failures.isEmpty {
                    let before = failures.map { "\($0.url): \($0.words)" }.joined(separator: "; ")
                    let note = "\(url) answered this after \(failures.count == 1 ? "another URL" : "\(failures.count) other URLs") did not (\(before))"
                    error.hint = error.hint.map { $0 + "\n  " + note } ?? note
                }
                throw error
            }
        }
        throw exhausted(failures)
    }

    static func skipped(_ failure: CAConnectionFailure) -> CAContact.Skipped {
        CAContact.Skipped(url: failure.url, failure: failure.words)
    }

    /// The error once no URL answered: the only URL's own error, or a list of them all.
    static func exhausted(_ failures: [CAConnectionFailure]) -> AutoSSLError {
        if failures.count == 1, let only = failures.first { return only.error }
        let lines = failures.map { "    \($0.url): \($0.words)" }
        return AutoSSLError(
            .network, "none of the CA's \(failures.count) URLs answered:\n" + lines.joined(separator: "\n"),
            hint: "check the URLs, the network and that `auto-ssl ca serve` runs at one of them")
    }
}
