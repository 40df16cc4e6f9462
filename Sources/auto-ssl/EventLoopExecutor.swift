import CAutoSSLExecutorHook
import NIOCore
import NIOPosix

/// `ca serve` runs Swift's tasks on NIO's event-loop threads instead of a second thread pool, so a
/// request moves between the network, its handler and the database writer's reply without waking
/// another thread (measured: docs/benchmarks.md, "Tasks on the event loops").
///
/// `NIOSingletons.unsafeTryInstallSingletonPosixEventLoopGroupAsConcurrencyGlobalExecutor()` does
/// the same through `dlsym`, which finds nothing in the release binary (its Swift runtime is
/// linked statically and not exported): there it silently left every task on Dispatch's pool. The
/// hook is therefore installed through a link-time reference (`CAutoSSLExecutorHook`), which works
/// in both the static and the dynamic build.
enum EventLoopExecutor {
    /// Installs the hook; call once, on the main thread, before the first task. Returns false when
    /// another hook was already installed (tasks then stay where that hook puts them).
    static func install() -> Bool {
        autossl_install_global_enqueue_hook { job in
            // The runtime hands over a job pointer that the hook must enqueue exactly once.
            let unowned = unsafeBitCast(job, to: UnownedJob.self)
            // `any()` is the current loop when called from one of the group's threads (no thread
            // switch), and the next loop otherwise.
            MultiThreadedEventLoopGroup.singleton.any().executor.enqueue(unowned)
        } == 1
    }

    /// Whether the calling thread is one of the singleton group's event loops.
    static var onEventLoop: Bool { MultiThreadedEventLoopGroup.currentEventLoop != nil }
}
