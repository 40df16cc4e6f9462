import Crypto

/// SHA-256 fed piece by piece (for checksums over more data than should be held at once, such as
/// every row of a database table), for modules that do not link swift-crypto themselves.
public struct StreamingSHA256: Sendable {
    private var hasher = SHA256()

    public init() {}

    public mutating func update(_ bytes: [UInt8]) {
        hasher.update(data: bytes)
    }

    /// The digest in lower-case hex; the value can go on being fed afterwards (it is a copy).
    public func hex() -> String {
        let digest = hasher.finalize()
        let digits: [Character] = Array("0123456789abcdef")
        var text = ""
        text.reserveCapacity(64)
        for byte in digest {
            text.append(digits[Int(byte >> 4)])
            text.append(digits[Int(byte & 0x0F)])
        }
        return text
    }
}
