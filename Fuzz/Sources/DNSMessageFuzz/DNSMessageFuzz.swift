import AutoSSLWire
import Foundation
import FuzzSupport

/// The dns-01 (and address) lookup's answer reader, `DNSMessage.parseResponse`, on any datagram,
/// as the answer to a TXT query for `_acme-challenge.web.test` and A/AAAA queries for `web.test`
/// (the message's own ID is taken as the query's, so every input gets past the ID check). Nothing
/// may crash, and what it returns is bounded: at most `maximumAnswers` records, A records of 4
/// bytes, AAAA of 16, nothing for a name that does not exist.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ start: UnsafeRawPointer, _ count: Int) -> CInt {
    let message = Fuzz.bytes(start, count)
    let id = message.count >= 2 ? UInt16(message[0]) << 8 | UInt16(message[1]) : 0
    for (name, type) in [("_acme-challenge.web.test", DNSMessage.RecordType.txt), ("web.test", .a), ("web.test", .aaaa)] {
        guard let answer = try? DNSMessage.parseResponse(message, id: id, name: name, type: type) else { continue }
        Fuzz.require(answer.records.count <= DNSMessage.maximumAnswers, "\(answer.records.count) records")
        Fuzz.require(!answer.nameDoesNotExist || answer.records.isEmpty, "records for a name that does not exist")
        switch type {
        case .a: Fuzz.require(answer.records.allSatisfy { $0.count == 4 }, "an A record of another size")
        case .aaaa: Fuzz.require(answer.records.allSatisfy { $0.count == 16 }, "an AAAA record of another size")
        case .txt: Fuzz.require(answer.records.allSatisfy { $0.count < message.count }, "a TXT record longer than the message")
        }
    }
    return 0
}
