import Foundation

/// What every fuzz target shares: the input as bytes, and a failed property that stops the run
/// with a message (libFuzzer then saves the input as a crash).
public enum Fuzz {
    public static func bytes(_ start: UnsafeRawPointer, _ count: Int) -> [UInt8] {
        count == 0 ? [] : Array(UnsafeRawBufferPointer(start: start, count: count))
    }

    /// Stops the process when a property the target checks does not hold.
    public static func require(
        _ condition: @autoclosure () -> Bool, _ message: @autoclosure () -> String,
        file: StaticString = #fileID, line: UInt = #line
    ) {
        guard !condition() else { return }
        FileHandle.standardError.write(Data("\n==fuzz== property failed at \(file):\(line): \(message())\n".utf8))
        abort()
    }

    /// The input as text, the way a server sees a body or header it decodes leniently.
    public static func text(_ bytes: [UInt8]) -> String {
        String(decoding: bytes, as: UTF8.self)
    }
}
