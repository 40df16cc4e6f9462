#include "CAutoSSLExecutorHook.h"

#include <stdatomic.h>
#include <stddef.h>

// The runtime's declarations (swift/Runtime/Concurrency.h), with the Swift calling convention
// spelled out so that the compiler, not a cast, makes the call match.
typedef void (*__attribute__((swiftcall)) original_enqueue_fn)(void *job);
typedef void (*__attribute__((swiftcall)) enqueue_hook_fn)(void *job, original_enqueue_fn original);
extern _Atomic(enqueue_hook_fn) swift_task_enqueueGlobal_hook;

static _Atomic(autossl_global_enqueue_fn) target;

__attribute__((swiftcall)) static void enqueue_through_target(void *job, original_enqueue_fn original) {
    (void)original;
    atomic_load_explicit(&target, memory_order_acquire)(job);
}

int autossl_install_global_enqueue_hook(autossl_global_enqueue_fn enqueue) {
    atomic_store_explicit(&target, enqueue, memory_order_release);
    enqueue_hook_fn expected = NULL;
    return atomic_compare_exchange_strong(&swift_task_enqueueGlobal_hook, &expected, enqueue_through_target) ? 1 : 0;
}
