import Foundation

/// Serial numbers as people write them: hex (optionally with colons or 0x) or decimal (step-ca's form).
public enum SerialText {
    /// Lower-case hex without leading zero bytes, as stored.
    public static func candidates(_ text: String) throws -> [String] {
        let trimmed = text.trimmingCharacters(in: .whitespaces).lowercased()
        var hex = trimmed.replacingOccurrences(of: ":", with: "")
        if hex.hasPrefix("0x") { hex.removeFirst(2) }
        var result: [String] = []
        if !hex.isEmpty, hex.allSatisfy(\.isHexDigit) {
            result.append(hex.count % 2 == 1 ? "0" + hex : hex)
        }
        if !trimmed.contains(":"), !trimmed.hasPrefix("0x"), !trimmed.isEmpty, trimmed.allSatisfy(\.isNumber),
           let bytes = decimalToBytes(trimmed) {
            let fromDecimal = Hex.encode(bytes)
            if !result.contains(fromDecimal) { result.append(fromDecimal) }
        }
        guard !result.isEmpty else {
            throw AutoSSLError.invalidArgument(
                "\"\(text)\" is not a serial number", hint: "give it in hex (with or without colons) or in decimal")
        }
        return result
    }

    /// Big-endian bytes of a decimal number, without leading zeros; nil when not a number.
    public static func decimalToBytes(_ decimal: String) -> [UInt8]? {
        guard !decimal.isEmpty, decimal.count <= 60 else { return nil }
        var bytes: [UInt8] = [0]
        for character in decimal {
            guard let digit = character.wholeNumberValue, character.isASCII else { return nil }
            var carry = digit
            for index in stride(from: bytes.count - 1, through: 0, by: -1) {
                let value = Int(bytes[index]) * 10 + carry
                bytes[index] = UInt8(value & 0xFF)
                carry = value >> 8
            }
            while carry > 0 {
                bytes.insert(UInt8(carry & 0xFF), at: 0)
                carry >>= 8
            }
        }
        while bytes.count > 1, bytes[0] == 0 { bytes.removeFirst() }
        return bytes
    }

    /// Bytes of a hex serial as stored (lower-case, even length).
    public static func bytes(fromHex hex: String) -> [UInt8] {
        var result: [UInt8] = []
        var index = hex.startIndex
        while index < hex.endIndex {
            let next = hex.index(index, offsetBy: 2, limitedBy: hex.endIndex) ?? hex.endIndex
            result.append(UInt8(hex[index..<next], radix: 16) ?? 0)
            index = next
        }
        return result
    }

    /// Decimal text of big-endian bytes (for step-ca-style output).
    public static func decimal(fromHex hex: String) -> String {
        var digits: [UInt8] = [0]  // little-endian base-10 digits
        var index = hex.startIndex
        while index < hex.endIndex {
            let next = hex.index(index, offsetBy: 2, limitedBy: hex.endIndex) ?? hex.endIndex
            guard let byte = UInt8(hex[index..<next], radix: 16) else { return "" }
            var carry = Int(byte)
            for i in 0..<digits.count {
                let value = Int(digits[i]) * 256 + carry
                digits[i] = UInt8(value % 10)
                carry = value / 10
            }
            while carry > 0 {
                digits.append(UInt8(carry % 10))
                carry /= 10
            }
            index = next
        }
        while digits.count > 1, digits.last == 0 { digits.removeLast() }
        return String(digits.reversed().map { Character(String($0)) })
    }
}
