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
    /// The hint is the thrower's own advice for this very failure, which a caller that gives
    /// general advice for its kind (a renewal's "enroll again" for any trust failure) keeps as it
    /// is: e.g. a CA's answer with a certificate for another key (`CAClient.parseChain`).
    public var hintIsFinal: Bool

    public init(_ kind: FailureKind, _ message: String, hint: String? = nil, hintIsFinal: Bool = false) {
        self.kind = kind
        self.message = message
        self.hint = hint
        self.hintIsFinal = hintIsFinal
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
