import AutoSSLCore

/// The documented exit codes (docs/operations.md): 0 success, then one per kind of failure.
extension FailureKind {
    var exitCode: Int32 {
        switch self {
        case .general: 1
        case .invalidArguments: 2
        case .missingDependency: 3
        case .permissionDenied: 4
        case .network: 5
        case .trustFailure: 6
        case .inUse: 7
        case .remoteCommand: 8
        }
    }
}
