// One page for the structures every fork writes to: the locks concur holds
// across fork() and the identity and registries a child rewrites. After a
// fork every page either side writes costs it a copy-on-write fault, so
// these live together: one fault for all of them in the parent, one in the
// child, instead of one per structure (each fault was about 2.5 us of a
// Process start+join, measured with perf; docs/benchmarks.md).
#pragma once

#include <cstddef>
#include <mutex>
#include <new>

// The code a fork child runs in the common case (the fork handlers, the
// start and end of a Process child) goes into one section, placed together
// by the linker (it groups .text.hot.*): the child has to fault in every
// code page it runs, even those the parent has.
#define CONCUR_FORK_PATH __attribute__((section(".text.hot.concur_fork")))

namespace concur::detail {

// Storage of `size` bytes aligned to `align`, on the fork page while room
// is left, else from operator new. Never freed: for concur's global state,
// which lives until the process ends. Thread-safe, usable during static
// initialization.
void* fork_page_allocate(std::size_t size, std::size_t align);

// In a fork child: a std::mutex that a thread of the parent held at the fork
// would stay held for good; this makes it a fresh one. A free one is left
// as it is, and its page unwritten.
inline void reset_if_held(std::mutex& mutex) {
#ifdef __GLIBC__
  if (mutex.native_handle()->__data.__lock == 0) return;
#endif
  new (&mutex) std::mutex;
}

}  // namespace concur::detail
