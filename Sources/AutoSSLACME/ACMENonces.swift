import AutoSSLCore
import AutoSSLStore
import Crypto
import Foundation
import Synchronization

/// Makes the `Replay-Nonce` values and spends each one once (RFC 8555 §6.5).
///
/// A nonce is 32 bytes, base64url: the time it was made (8 bytes, big-endian seconds), a ticket
/// (8 bytes) and the first 16 bytes of an HMAC-SHA256 of both. The MAC and the time are checked
/// without any lookup; what makes a nonce single-use depends on who else serves the database:
///
/// - **One process (SQLite, held under the CA lock):** the ticket is a counter, and a
///   `NonceWindow` in memory remembers which of the last `NonceWindow.capacity` tickets are
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

    private let key: SymmetricKey
    private let singleUse: SingleUse

    /// The design `database` calls for (see the type's documentation).
    public init(database: any ACMEDatabase) async throws {
        if database.sharedByReplicas {
            key = SymmetricKey(data: try await database.key(named: "acme-nonce", size: 32))
            singleUse = .database(database)
        } else {
            key = SymmetricKey(size: .bits256)
            singleUse = .window(NonceWindow())
        }
    }

    /// A fresh nonce.
    public func make(now: Date = Date()) -> String {
        var bytes = [UInt8]()
        bytes.reserveCapacity(32)
        Self.appendBigEndian(UInt64(max(0, now.timeIntervalSince1970)), to: &bytes)
        switch singleUse {
        case .window(let window): Self.appendBigEndian(window.issue(), to: &bytes)
        case .database: bytes += SecureRandom.bytes(8)
        }
        bytes += HMAC<SHA256>.authenticationCode(for: bytes, using: key).prefix(16)
        return Base64URL.encode(bytes)
    }

    /// Accepts a nonce once: it must be one of this CA's (its MAC), younger than `lifetime`, and
    /// not spent before.
    public func spend(_ nonce: String?, now: Date = Date()) async throws {
        guard let nonce, nonce.utf8.count <= 64, let decoded = Base64URL.decode(nonce), decoded.count == 32 else {
            throw ACMEProblem(.badNonce, "the request has no valid nonce; get a fresh one from newNonce")
        }
        let bytes = Array(decoded)
        let mac = Array(HMAC<SHA256>.authenticationCode(for: bytes[0..<16], using: key).prefix(16))
        var difference: UInt8 = 0
        for (a, b) in zip(mac, bytes[16..<32]) { difference |= a ^ b }
        let issued = Self.readBigEndian(bytes[0..<8])
        let age = now.timeIntervalSince1970 - TimeInterval(issued)
        guard difference == 0, age < Self.lifetime else {
            throw ACMEProblem(.badNonce, "the nonce is unknown or expired; retry with the one in this response's Replay-Nonce")
        }
        let fresh: Bool
        switch singleUse {
        case .window(let window):
            fresh = window.spend(Self.readBigEndian(bytes[8..<16]))
        case .database(let database):
            fresh = try await database.consumeNonce(nonce, expiresAt: Date(timeIntervalSince1970: TimeInterval(issued) + Self.lifetime))
        }
        guard fresh else {
            throw ACMEProblem(.badNonce, "the nonce was already used (or is too old to tell); retry with the one in this response's Replay-Nonce")
        }
    }

    private static func appendBigEndian(_ value: UInt64, to bytes: inout [UInt8]) {
        withUnsafeBytes(of: value.bigEndian) { bytes += $0 }
    }

    private static func readBigEndian(_ bytes: ArraySlice<UInt8>) -> UInt64 {
        bytes.reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
    }
}

/// Which of the most recent `capacity` tickets are issued and not yet spent: one bit each, in a
/// ring. Issuing ticket n reuses the bit of ticket n − capacity, which thereby drops out of the
/// window and can no longer be spent. 2^20 tickets take 128 KiB; at 425 nonces a second (the
/// ACME load of docs/benchmarks.md) a ticket stays spendable for 40 minutes. A client whose nonce
/// dropped out gets `badNonce` and retries with a fresh one.
public final class NonceWindow: Sendable {
    public static let capacity: UInt64 = 1 << 20

    private struct State {
        var next: UInt64 = 0
        var unspent: [UInt64]
    }

    private let state: Mutex<State>
    private let capacity: UInt64

    /// `capacity`: a power of two, at least 64 (smaller ones for tests).
    public init(capacity: UInt64 = NonceWindow.capacity) {
        precondition(capacity >= 64 && capacity & (capacity - 1) == 0, "the nonce window's capacity must be a power of two, at least 64")
        self.capacity = capacity
        state = Mutex(State(unspent: [UInt64](repeating: 0, count: Int(capacity / 64))))
    }

    /// A new ticket, unspent.
    public func issue() -> UInt64 {
        let mask = capacity - 1
        return state.withLock { state in
            let ticket = state.next
            let slot = ticket & mask
            state.unspent[Int(slot >> 6)] |= 1 << (slot & 63)
            state.next &+= 1
            return ticket
        }
    }

    /// True exactly once for a ticket issued within the last `capacity` tickets; false for one
    /// spent before, one that dropped out of the window, and one never issued.
    public func spend(_ ticket: UInt64) -> Bool {
        let mask = capacity - 1
        return state.withLock { state in
            guard ticket < state.next, state.next - ticket <= capacity else { return false }
            let slot = ticket & mask
            let bit: UInt64 = 1 << (slot & 63)
            guard state.unspent[Int(slot >> 6)] & bit != 0 else { return false }
            state.unspent[Int(slot >> 6)] &= ~bit
            return true
        }
    }
}
