#ifndef C_AUTO_SSL_EXECUTOR_HOOK_H
#define C_AUTO_SSL_EXECUTOR_HOOK_H

/// Receives every job that Swift's concurrency runtime would give its global executor.
typedef void (*autossl_global_enqueue_fn)(void *_Nonnull job);

/// Routes the jobs of Swift's global executor to `enqueue`, through the runtime's
/// `swift_task_enqueueGlobal_hook`. Returns 1 when installed, 0 when another hook was already
/// there (then nothing changes). Call it once, before the first task is created.
///
/// The hook variable is referenced at link time, so this works when the Swift runtime is linked
/// statically: a `dlsym` lookup of the hook (what `NIOSingletons` does) finds nothing in such a
/// binary, because the static runtime's symbols are not exported.
int autossl_install_global_enqueue_hook(autossl_global_enqueue_fn _Nonnull enqueue);

#endif
