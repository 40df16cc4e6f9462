import Crypto
import Foundation
import Synchronization

/// The bytes of an ACME `Replay-Nonce` (RFC 8555 §6.5): 32 bytes, base64url without padding: when
/// it was made (8 bytes, big-endian seconds since 1970), a ticket (8 bytes, big-endian) and the
/// first 16 bytes of an HMAC-SHA256 of both under the server's nonce key. Reading one back checks
/// its shape and its MAC, nothing else: age and single use are the caller's (`NonceWindow`, or a
/// database shared by replicas).
public struct ACMENonceFormat: Sendable, Equatable {
    /// Seconds since 1970 when the nonce was made.
    public var issued: UInt64
    /// A counter value or random bits, as the server chose.
    public var ticket: UInt64

    /// The longest text `open` reads; a real nonce is 43 characters.
    public static let maximumLength = 64

    public init(issued: UInt64, ticket: UInt64) {
        self.issued = issued
        self.ticket = ticket
    }

    /// The server's nonce key, with the HMAC keyed once: each nonce then hashes its 16 bytes from
    /// the keyed state instead of working out the key's pads again (twice per ACME request).
    public struct Key: Sendable {
        let keyed: HMAC<SHA256>

        public init(_ key: SymmetricKey) {
            keyed = HMAC<SHA256>(key: key)
        }

        /// The first 16 bytes of HMAC-SHA256 over `body`.
        func mac(_ body: UnsafeRawBufferPointer) -> [UInt8] {
            var hmac = keyed
            hmac.update(data: body)
            return Array(hmac.finalize().prefix(16))
        }
    }

    /// The nonce text, MAC'd with `key`.
    public func text(key: Key) -> String {
        var body = (issued.bigEndian, ticket.bigEndian)
        var bytes = withUnsafeBytes(of: &body) { raw in Array(raw) }
        bytes += withUnsafeBytes(of: &body) { raw in key.mac(raw) }
        return Base64URL.encode(bytes)
    }

    /// Why `open` refused a text.
    public enum Refusal: Error, Equatable {
        /// Not the canonical base64url of 32 bytes (or longer than `maximumLength`).
        case malformed
        /// The right shape, but its MAC is not the key's: made by another key, or altered.
        case unknown
    }

    /// The nonce `text` carries, when it is 32 bytes of base64url whose MAC under `key` is right
    /// (compared in constant time). Only the one canonical text of a nonce is accepted: the
    /// decoder ignores the two unused bits of the last character, and four texts of one nonce
    /// would be four rows where spent nonces are kept by their text.
    public static func open(_ text: String, key: Key) throws(Refusal) -> ACMENonceFormat {
        guard text.utf8.count <= maximumLength, let decoded = Base64URL.decode(text), decoded.count == 32,
              Base64URL.encode(decoded) == text else { throw .malformed }
        let bytes = Array(decoded)
        let mac = bytes.withUnsafeBytes { raw in key.mac(UnsafeRawBufferPointer(rebasing: raw[0..<16])) }
        var difference: UInt8 = 0
        for (a, b) in zip(mac, bytes[16..<32]) { difference |= a ^ b }
        guard difference == 0 else { throw .unknown }
        return ACMENonceFormat(issued: readBigEndian(bytes[0..<8]), ticket: readBigEndian(bytes[8..<16]))
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
    public static let defaultCapacity: UInt64 = 1 << 20

    private struct State {
        var next: UInt64 = 0
        var unspent: [UInt64]
    }

    private let state: Mutex<State>
    public let capacity: UInt64

    /// `capacity`: a power of two, at least 64 (smaller ones for tests).
    public init(capacity: UInt64 = NonceWindow.defaultCapacity) {
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
