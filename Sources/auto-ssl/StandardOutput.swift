#if canImport(Glibc)
@preconcurrency import Glibc
#endif

enum StandardOutput {
    /// Line by line even into a pipe (journald, CI logs), so progress lines and the errors after
    /// them keep their order. Called once from the main thread before anything is printed.
    static func makeLineBuffered() {
        setvbuf(stdout, nil, _IOLBF, 0)
    }
}
