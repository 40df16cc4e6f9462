import AutoSSLCore
import Crypto
import Foundation
import Testing

struct ACMENonceFormatTests {
    let secret = SymmetricKey(data: Data(repeating: 7, count: 32))
    var key: ACMENonceFormat.Key { ACMENonceFormat.Key(secret) }

    @Test func aNonceReadsBackToWhatItCarriesAndOnlyUnderItsKey() throws {
        let nonce = ACMENonceFormat(issued: 1_764_500_000, ticket: 0x0102_0304_0506_0708)
        let text = nonce.text(key: key)
        #expect(text.count == 43 && !text.contains("=") && !text.contains("+") && !text.contains("/"))
        #expect(try ACMENonceFormat.open(text, key: key) == nonce)
        #expect(throws: ACMENonceFormat.Refusal.unknown) { try ACMENonceFormat.open(text, key: ACMENonceFormat.Key(SymmetricKey(size: .bits256))) }
        // Every byte is covered by the MAC: time, ticket and the MAC itself.
        let bytes = Array(try #require(Base64URL.decode(text)))
        for index in bytes.indices {
            var altered = bytes
            altered[index] ^= 0x01
            #expect(throws: ACMENonceFormat.Refusal.unknown) { try ACMENonceFormat.open(Base64URL.encode(altered), key: key) }
        }
    }

    @Test func theMACIsTheFirst16BytesOfHMACSHA256OverTimeAndTicket() throws {
        // Computed independently of `text`: the layout docs/acme.md describes.
        let nonce = ACMENonceFormat(issued: 0x0000_0000_6930_0000, ticket: 42)
        var body: [UInt8] = [0, 0, 0, 0, 0x69, 0x30, 0, 0, 0, 0, 0, 0, 0, 0, 0, 42]
        body += HMAC<SHA256>.authenticationCode(for: body, using: secret).prefix(16)
        #expect(nonce.text(key: key) == Base64URL.encode(body))
        // One keyed state serves many nonces: each MAC starts from the key alone.
        let shared = key
        let again = ACMENonceFormat(issued: 0x0000_0000_6930_0000, ticket: 42)
        #expect(ACMENonceFormat(issued: 9, ticket: 9).text(key: shared) != again.text(key: shared))
        #expect(again.text(key: shared) == Base64URL.encode(body))
    }

    @Test func anythingButTheCanonicalBase64URLOfThirtyTwoBytesIsMalformed() throws {
        let real = ACMENonceFormat(issued: 1, ticket: 2).text(key: key)
        // The same 32 bytes with the last character's two unused bits set: decodable, not canonical.
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
        let lastCharacter = try #require(real.last)
        let last = try #require(alphabet.firstIndex(of: lastCharacter))
        let variant = String(real.dropLast()) + String(alphabet[last | 0x03 == last ? last & ~0x03 : last | 0x03])
        #expect(Base64URL.decode(variant) == Base64URL.decode(real))
        #expect(throws: ACMENonceFormat.Refusal.malformed) { try ACMENonceFormat.open(variant, key: key) }
        for text in ["", "!!!!", String(repeating: "A", count: 42), String(repeating: "A", count: 44), String(repeating: "A", count: 10_000), real + "AA", real + "=", String(real.dropLast())] {
            #expect(throws: ACMENonceFormat.Refusal.malformed, "\(text.prefix(20))") { try ACMENonceFormat.open(text, key: key) }
        }
    }
}

struct NonceWindowTests {
    @Test func aTicketIsSpentOnceAndOnlyIfItWasIssued() {
        let window = NonceWindow(capacity: 64)
        let first = window.issue()
        let second = window.issue()
        #expect(window.spend(second))
        #expect(!window.spend(second))
        #expect(window.spend(first))
        #expect(!window.spend(first))
        #expect(!window.spend(second + 1), "never issued")
        #expect(!window.spend(UInt64.max))
    }

    @Test func aTicketOlderThanTheWindowIsRefusedAndTheWindowKeepsWorkingAsItWraps() {
        let window = NonceWindow(capacity: 64)
        let oldest = window.issue()
        var kept: [UInt64] = []
        for _ in 0..<63 { kept.append(window.issue()) }
        // 64 outstanding: all spendable, the oldest among them.
        let newest = window.issue()  // the 65th takes the oldest's bit
        #expect(!window.spend(oldest), "dropped out of the window")
        #expect(window.spend(newest))
        #expect(kept.allSatisfy { window.spend($0) })
        // Round and round the ring: each ticket once, never one from a lap before.
        for _ in 0..<1_000 {
            let ticket = window.issue()
            #expect(window.spend(ticket))
            #expect(!window.spend(ticket))
            #expect(!window.spend(ticket &- 64))
        }
    }

    @Test func concurrentSpendsOfOneTicketHaveOneWinner() async {
        let window = NonceWindow()
        let ticket = window.issue()
        let winners = await withTaskGroup(of: Bool.self) { group in
            for _ in 0..<16 { group.addTask { window.spend(ticket) } }
            return await group.reduce(0) { $0 + ($1 ? 1 : 0) }
        }
        #expect(winners == 1)
    }
}

