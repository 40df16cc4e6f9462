/// DNS messages (RFC 1035 §4) for ACME validation: a query for one name and type, and a strict,
/// bounded reading of the answer. Pure: the transport (UDP, then TCP when truncated) is the
/// caller's. Every length and offset from the answer is checked before use.
public enum DNSMessage {
    public enum RecordType: UInt16, Sendable {
        case a = 1
        case txt = 16
        case aaaa = 28
    }

    public struct Failure: Error, Equatable, Sendable, CustomStringConvertible {
        public var description: String
        public init(_ description: String) { self.description = description }
    }

    /// What an answer holds for the question asked.
    public struct Answer: Equatable, Sendable {
        /// TXT: each record's strings joined; A/AAAA: the raw address bytes (4 or 16).
        public var records: [[UInt8]]
        /// The server had more than fits in a UDP datagram (TC bit): ask again over TCP.
        public var truncated: Bool
        /// NXDOMAIN.
        public var nameDoesNotExist: Bool
    }

    /// At most this many answer records are read (a real TXT set is a handful).
    public static let maximumAnswers = 64

    /// A recursive query (RD set) for `name` (a host name; labels of 1–63 bytes, 253 bytes at most).
    public static func query(id: UInt16, name: String, type: RecordType) throws -> [UInt8] {
        var bytes: [UInt8] = [UInt8(id >> 8), UInt8(id & 0xFF), 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]
        try bytes += encodedName(name)
        bytes += [UInt8(type.rawValue >> 8), UInt8(type.rawValue & 0xFF), 0, 1]
        return bytes
    }

    static func encodedName(_ name: String) throws -> [UInt8] {
        var bytes: [UInt8] = []
        let trimmed = name.hasSuffix(".") ? String(name.dropLast()) : name
        guard !trimmed.isEmpty, trimmed.utf8.count <= 253 else { throw Failure("\"\(name)\" is not a valid DNS name") }
        for label in trimmed.split(separator: ".", omittingEmptySubsequences: false) {
            let utf8 = Array(label.utf8)
            guard !utf8.isEmpty, utf8.count < 64 else { throw Failure("\"\(name)\" is not a valid DNS name") }
            bytes.append(UInt8(utf8.count))
            bytes += utf8
        }
        bytes.append(0)
        return bytes
    }

    /// Reads the answer to `query(id:name:type:)`: the ID, the QR bit, the opcode and the question
    /// must match what was asked, or the message is refused (it may be spoofed or stale).
    public static func parseResponse(_ message: [UInt8], id: UInt16, name: String, type: RecordType) throws -> Answer {
        var reader = Reader(bytes: message)
        let receivedID = try reader.uint16()
        let flags = try reader.uint16()
        let questions = try reader.uint16()
        let answers = try reader.uint16()
        _ = try reader.uint16()  // authority records
        _ = try reader.uint16()  // additional records
        guard receivedID == id else { throw Failure("the DNS answer's ID does not match the query") }
        guard flags & 0x8000 != 0 else { throw Failure("the DNS message is a query, not an answer") }
        guard (flags >> 11) & 0x0F == 0 else { throw Failure("the DNS answer has an unexpected opcode") }
        let truncated = flags & 0x0200 != 0
        let rcode = flags & 0x000F
        guard questions == 1 else { throw Failure("the DNS answer does not repeat the question") }
        let asked = try encodedName(name)
        let questionName = try reader.name()
        guard equalNames(questionName, asked) else { throw Failure("the DNS answer is for another name") }
        guard try reader.uint16() == type.rawValue, try reader.uint16() == 1 else {
            throw Failure("the DNS answer is for another record type or class")
        }
        if rcode == 3 { return Answer(records: [], truncated: truncated, nameDoesNotExist: true) }
        guard rcode == 0 else { throw Failure("the DNS server answered with error code \(rcode)") }
        var records: [[UInt8]] = []
        // A truncated message may end anywhere: keep what is whole, the caller asks again over TCP.
        do {
            for _ in 0..<min(Int(answers), maximumAnswers) {
                _ = try reader.name()
                let recordType = try reader.uint16()
                let recordClass = try reader.uint16()
                _ = try reader.uint32()  // TTL
                let length = Int(try reader.uint16())
                let data = try reader.bytes(length)
                guard recordType == type.rawValue, recordClass == 1 else { continue }  // CNAMEs and others
                switch type {
                case .txt:
                    records.append(try txtStrings(data))
                case .a:
                    guard data.count == 4 else { throw Failure("an A record is not 4 bytes") }
                    records.append(data)
                case .aaaa:
                    guard data.count == 16 else { throw Failure("an AAAA record is not 16 bytes") }
                    records.append(data)
                }
            }
        } catch let failure as Failure where truncated {
            _ = failure
        }
        return Answer(records: records, truncated: truncated, nameDoesNotExist: false)
    }

    /// A TXT record's character-strings joined (RFC 7208 §3.3 style).
    static func txtStrings(_ data: [UInt8]) throws -> [UInt8] {
        var reader = Reader(bytes: data)
        var text: [UInt8] = []
        while !reader.atEnd {
            let count = Int(try reader.uint8())
            text += try reader.bytes(count)
        }
        return text
    }

    /// DNS names compare case-insensitively (ASCII).
    static func equalNames(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        a.count == b.count && zip(a, b).allSatisfy { lower($0) == lower($1) }
    }

    static func lower(_ byte: UInt8) -> UInt8 { (65...90).contains(byte) ? byte | 0x20 : byte }

    /// A bounds-checked cursor over a message.
    struct Reader {
        let bytes: [UInt8]
        var index = 0

        var atEnd: Bool { index >= bytes.count }

        mutating func uint8() throws -> UInt8 {
            guard index < bytes.count else { throw Failure("truncated DNS answer") }
            defer { index += 1 }
            return bytes[index]
        }

        mutating func uint16() throws -> UInt16 {
            UInt16(try uint8()) << 8 | UInt16(try uint8())
        }

        mutating func uint32() throws -> UInt32 {
            UInt32(try uint16()) << 16 | UInt32(try uint16())
        }

        mutating func bytes(_ count: Int) throws -> [UInt8] {
            guard count >= 0, count <= bytes.count - index else { throw Failure("truncated DNS answer") }
            defer { index += count }
            return Array(bytes[index..<(index + count)])
        }

        /// A name in wire form (labels ending in the root), following compression pointers to
        /// earlier offsets only, at most 255 bytes and 128 labels.
        mutating func name() throws -> [UInt8] {
            var result: [UInt8] = []
            var cursor = index
            var jumped = false
            var labels = 0
            while true {
                guard cursor < bytes.count else { throw Failure("truncated DNS answer") }
                let length = bytes[cursor]
                if length & 0xC0 == 0xC0 {
                    guard cursor + 1 < bytes.count else { throw Failure("truncated DNS answer") }
                    let target = Int(length & 0x3F) << 8 | Int(bytes[cursor + 1])
                    if !jumped { index = cursor + 2 }
                    guard target < cursor else { throw Failure("a DNS name pointer does not point backwards") }
                    jumped = true
                    cursor = target
                    continue
                }
                guard length & 0xC0 == 0 else { throw Failure("a DNS label has an unknown type") }
                labels += 1
                guard labels <= 128 else { throw Failure("a DNS name has too many labels") }
                let count = Int(length)
                guard count < bytes.count - cursor else { throw Failure("truncated DNS answer") }
                result += bytes[cursor...(cursor + count)]
                guard result.count <= 255 else { throw Failure("a DNS name is longer than 255 bytes") }
                cursor += count + 1
                if count == 0 {
                    if !jumped { index = cursor }
                    return result
                }
            }
        }
    }
}
