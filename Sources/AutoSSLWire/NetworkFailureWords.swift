import NIOCore

#if canImport(Glibc)
import Glibc
#endif

/// What went wrong on a connection, in words a person can act on ("connection refused by
/// 127.0.0.1:9443", "no such host ca.example"): never a type name, an errno dump or a build path.
/// Errors that wrap others (NIO's connection error, HTTP clients') are searched for the cause.
public enum NetworkFailureWords {
    /// The words for `error` when it is a network failure this knows, else nil. `target` names what
    /// was being reached (`host:port`).
    public static func describe(_ error: any Error, target: String) -> String? {
        if let words = direct(error, target: target) { return words }
        // Wrapped causes (NIOConnectionError's per-address failures, HTTP client errors): the first
        // one known, searched a few levels deep.
        for cause in causes(of: error, depth: 3) {
            if let words = direct(cause, target: target) { return words }
        }
        return nil
    }

    static func direct(_ error: any Error, target: String) -> String? {
        if let ioError = error as? IOError {
            return words(errno: ioError.errnoCode, target: target)
        }
        if let channelError = error as? ChannelError {
            switch channelError {
            case .connectTimeout: return "no answer from \(target) (timeout while connecting)"
            case .eof, .ioOnClosedChannel, .alreadyClosed, .outputClosed, .inputClosed:
                return "\(target) closed the connection"
            default: return nil
            }
        }
        if let unknown = error as? SocketAddressError.UnknownHost {
            return "no such host \(unknown.host)"
        }
        if let addressError = error as? SocketAddressError {
            switch addressError {
            case .unknown(let host, _): return "no such host \(host)"
            default: return "\(target) is not a valid address"
            }
        }
        return nil
    }

    public static func words(errno code: Int32, target: String) -> String {
        switch code {
        case ECONNREFUSED: return "connection refused by \(target) (is the server running there?)"
        case ETIMEDOUT: return "no answer from \(target) (timeout)"
        case ENETUNREACH, EHOSTUNREACH: return "no route to \(target)"
        case ECONNRESET: return "\(target) reset the connection"
        case EADDRNOTAVAIL: return "\(target) is not an address this machine can reach"
        default: return "could not connect to \(target) (\(String(cString: strerror(code))))"
        }
    }

    /// Errors held inside `error` (its stored properties, arrays of them, and enum payloads).
    public static func causes(of error: any Error, depth: Int) -> [any Error] {
        guard depth > 0 else { return [] }
        var found: [any Error] = []
        func visit(_ value: Any, depth: Int) {
            guard depth > 0 else { return }
            for child in Mirror(reflecting: value).children {
                if let inner = child.value as? any Error {
                    found.append(inner)
                    visit(inner, depth: depth - 1)
                } else {
                    visit(child.value, depth: depth - 1)
                }
            }
        }
        visit(error, depth: depth)
        return found
    }
}
