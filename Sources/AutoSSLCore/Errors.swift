/// What kind of failure an error is; the CLI turns it into the documented exit code.
public enum FailureKind: Sendable, CaseIterable {
    case general
    case invalidArguments
    case missingDependency
    case permissionDenied
    case network
    case trustFailure
    /// The CA is busy with something that excludes this command (`ca database migrate` while
    /// `ca serve` runs on this machine, or the other way round).
    case inUse
    /// A command run on another host over ssh (`remote ...`) failed there; its output is shown.
    case remoteCommand
}

/// An error meant for the operator: what went wrong and, when we know it, what to do about it.
/// Messages never contain secrets.
public struct AutoSSLError: Error, CustomStringConvertible, Sendable {
    public var kind: FailureKind
    public var message: String
    public var hint: String?

    public init(_ kind: FailureKind, _ message: String, hint: String? = nil) {
        self.kind = kind
        self.message = message
        self.hint = hint
    }

    public var description: String {
        guard let hint else { return message }
        return "\(message)\n  \(hint)"
    }

    public static func invalidArgument(_ message: String, hint: String? = nil) -> AutoSSLError {
        AutoSSLError(.invalidArguments, message, hint: hint)
    }

    public static func general(_ message: String, hint: String? = nil) -> AutoSSLError {
        AutoSSLError(.general, message, hint: hint)
    }
}
