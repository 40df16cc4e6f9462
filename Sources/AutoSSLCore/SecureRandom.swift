/// Random bytes from the system CSPRNG, eight per draw: `UInt8.random(in:using:)` draws a whole
/// 64-bit word (one getrandom system call) for every single byte.
public enum SecureRandom {
    public static func bytes(_ count: Int) -> [UInt8] {
        var rng = SystemRandomNumberGenerator()
        var out = [UInt8]()
        out.reserveCapacity(count + 7)
        while out.count < count {
            var word = rng.next()
            withUnsafeBytes(of: &word) { out.append(contentsOf: $0) }
        }
        out.removeLast(out.count - count)
        return out
    }
}
