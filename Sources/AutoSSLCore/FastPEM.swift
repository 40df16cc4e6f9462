import Foundation

/// Steps through consecutive DER elements (tag, definite length, content). Used only on bytes a
/// full DER parser has already accepted, to find an element's exact encoding without re-parsing.
struct DERWalker {
    private var remaining: ArraySlice<UInt8>

    init(_ bytes: ArraySlice<UInt8>) {
        remaining = bytes
    }

    /// The next element if its tag is `tag`: the whole encoding and its content.
    mutating func next(tag: UInt8) -> (element: ArraySlice<UInt8>, content: ArraySlice<UInt8>)? {
        var index = remaining.startIndex
        guard index < remaining.endIndex, remaining[index] == tag else { return nil }
        index += 1
        guard index < remaining.endIndex else { return nil }
        let first = remaining[index]
        index += 1
        var length = 0
        if first < 0x80 {
            length = Int(first)
        } else {
            let count = Int(first & 0x7F)
            guard count >= 1, count <= 4, remaining.endIndex - index >= count else { return nil }
            for _ in 0..<count {
                length = length << 8 | Int(remaining[index])
                index += 1
            }
        }
        guard remaining.endIndex - index >= length else { return nil }
        let element = remaining[remaining.startIndex..<(index + length)]
        let content = remaining[index..<(index + length)]
        remaining = remaining[(index + length)...]
        return (element, content)
    }

    /// Like `next(tag:)`, but only for a length in DER's own form (short below 128, else the
    /// fewest octets), so bytes it accepts are bytes a DER parser reads the same way.
    mutating func nextCanonical(tag: UInt8) -> (element: ArraySlice<UInt8>, content: ArraySlice<UInt8>)? {
        let start = remaining.startIndex
        guard remaining.count >= 2 else { return nil }
        let first = remaining[start + 1]
        if first >= 0x80 {
            let count = Int(first & 0x7F)
            guard count >= 1, remaining.count >= 2 + count, remaining[start + 2] != 0 else { return nil }
            if count == 1, remaining[start + 2] < 0x80 { return nil }
        }
        return next(tag: tag)
    }

    var isAtEnd: Bool { remaining.isEmpty }
}

/// A strict, single-pass reader for the PEM our clients send: `-----BEGIN <label>-----`, lines of
/// exactly 64 base64 characters, a last line of 4 to 64, `-----END <label>-----`, LF line ends.
/// Anything else (other line lengths, CRLF, headers, surrounding text) returns nil and goes to
/// swift-asn1's general PEM parser, so this accepts a subset of what that parser accepts and gives
/// the same bytes for it.
enum FastPEM {
    static func body(of pem: String, label: String) -> [UInt8]? {
        var pem = pem
        return pem.withUTF8 { body(of: $0, label: label) }
    }

    private static func body(of text: UnsafeBufferPointer<UInt8>, label: String) -> [UInt8]? {
        let begin = Array("-----BEGIN \(label)-----\n".utf8)
        let end = Array("-----END \(label)-----".utf8)
        guard text.count > begin.count + end.count, text.starts(with: begin) else { return nil }
        // The END line, optionally followed by one LF, closes the text.
        var stop = text.count
        if text[stop - 1] == 0x0A { stop -= 1 }
        guard stop - end.count > begin.count, text[(stop - end.count)..<stop].elementsEqual(end) else { return nil }
        let bodyEnd = stop - end.count
        var output: [UInt8] = []
        output.reserveCapacity((bodyEnd - begin.count) / 4 * 3)
        var index = begin.count
        var finished = false
        while index < bodyEnd {
            guard !finished else { return nil }  // a short line must be the last
            var lineEnd = index
            while lineEnd < bodyEnd, text[lineEnd] != 0x0A { lineEnd += 1 }
            let length = lineEnd - index
            guard lineEnd < bodyEnd, length > 0, length <= 64, length % 4 == 0 else { return nil }
            if length < 64 { finished = true }
            guard decodeLine(text, from: index, to: lineEnd, into: &output, last: &finished) else { return nil }
            index = lineEnd + 1
        }
        return output.isEmpty ? nil : output
    }

    private static let alphabetIndex: [UInt8] = {
        var table = [UInt8](repeating: 0xFF, count: 256)
        for (index, byte) in "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8.enumerated() {
            table[Int(byte)] = UInt8(index)
        }
        return table
    }()

    /// Decodes whole groups of four; "=" only in the final group of the final line, with the
    /// unused bits zero (canonical), so no input is read differently from a strict decoder.
    private static func decodeLine(
        _ text: UnsafeBufferPointer<UInt8>, from start: Int, to end: Int, into output: inout [UInt8], last: inout Bool
    ) -> Bool {
        var index = start
        while index < end {
            let a = alphabetIndex[Int(text[index])], b = alphabetIndex[Int(text[index + 1])]
            guard (a | b) & 0xC0 == 0 else { return false }
            let third = text[index + 2], fourth = text[index + 3]
            if fourth == 0x3D {
                // "xx==" or "xxx=": must be the very last group of the body.
                guard index + 4 == end else { return false }
                last = true
                if third == 0x3D {
                    guard b & 0x0F == 0 else { return false }
                    output.append(a << 2 | b >> 4)
                } else {
                    let c = alphabetIndex[Int(third)]
                    guard c & 0xC0 == 0, c & 0x03 == 0 else { return false }
                    output.append(a << 2 | b >> 4)
                    output.append(b << 4 | c >> 2)
                }
                return true
            }
            let c = alphabetIndex[Int(third)], d = alphabetIndex[Int(fourth)]
            guard (c | d) & 0xC0 == 0 else { return false }
            output.append(a << 2 | b >> 4)
            output.append(b << 4 | c >> 2)
            output.append(c << 6 | d)
            index += 4
        }
        return true
    }
}
