import AutoSSLCore
import AutoSSLStore
import Crypto
import Foundation

/// Makes the `Replay-Nonce` values and spends each one once (RFC 8555 §6.5).
///
/// A nonce is an `ACMENonceFormat`: when it was made, a ticket and an HMAC of both. The MAC and
/// the time are checked without any lookup; what makes a nonce single-use depends on who else
/// serves the database:
///
/// - **One process (SQLite, held under the CA lock):** the ticket is a counter, and a
///   `NonceWindow` in memory remembers which of the last `NonceWindow.defaultCapacity` tickets are
///   still unspent. The MAC key is random and made at start, so after a restart every nonce of
///   the previous process fails its MAC: none can be replayed, the client gets `badNonce` with a
///   fresh nonce and retries (RFC 8555 §6.5 asks clients to). No request writes to the database
///   for its nonce.
/// - **Replicas sharing a database (PostgreSQL):** a nonce made by one replica may be spent at
///   another, so the ticket is random, the key is kept in the database (every replica shares it)
///   and a spent nonce is a row there until it expires.
public final class ACMENonces: Sendable {
    /// How long a nonce is accepted after it was made.
    public static let lifetime: TimeInterval = 3_600

    private enum SingleUse: Sendable {
        case window(NonceWindow)
        case database(any ACMEDatabase)
    }

    private let key: ACMENonceFormat.Key
    private let singleUse: SingleUse

    /// The design `database` calls for (see the type's documentation).
    public init(database: any ACMEDatabase) async throws {
        if database.sharedByReplicas {
            key = ACMENonceFormat.Key(SymmetricKey(data: try await database.key(named: "acme-nonce", size: 32)))
            singleUse = .database(database)
        } else {
            key = ACMENonceFormat.Key(SymmetricKey(size: .bits256))
            singleUse = .window(NonceWindow())
        }
    }

    /// A fresh nonce.
    public func make(now: Date = Date()) -> String {
        let ticket: UInt64
        switch singleUse {
        case .window(let window): ticket = window.issue()
        case .database:
            var generator = SystemRandomNumberGenerator()  // the system CSPRNG, one 64-bit draw
            ticket = generator.next()
        }
        return ACMENonceFormat(issued: UInt64(max(0, now.timeIntervalSince1970)), ticket: ticket).text(key: key)
    }

    /// Accepts a nonce once: it must be one of this CA's (its MAC), younger than `lifetime`, and
    /// not spent before.
    public func spend(_ nonce: String?, now: Date = Date()) async throws {
        let text = nonce ?? ""
        let opened: ACMENonceFormat
        do throws(ACMENonceFormat.Refusal) {
            opened = try ACMENonceFormat.open(text, key: key)
        } catch {
            switch error {
            case .malformed: throw ACMEProblem(.badNonce, "the request has no valid nonce; get a fresh one from newNonce")
            case .unknown: throw ACMEProblem(.badNonce, "the nonce is unknown or expired; retry with the one in this response's Replay-Nonce")
            }
        }
        guard now.timeIntervalSince1970 - TimeInterval(opened.issued) < Self.lifetime else {
            throw ACMEProblem(.badNonce, "the nonce is unknown or expired; retry with the one in this response's Replay-Nonce")
        }
        let fresh: Bool
        switch singleUse {
        case .window(let window):
            fresh = window.spend(opened.ticket)
        case .database(let database):
            fresh = try await database.consumeNonce(text, expiresAt: Date(timeIntervalSince1970: TimeInterval(opened.issued) + Self.lifetime))
        }
        guard fresh else {
            throw ACMEProblem(.badNonce, "the nonce was already used (or is too old to tell); retry with the one in this response's Replay-Nonce")
        }
    }
}
