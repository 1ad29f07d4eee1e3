// Brief adaptive spinning before sleeping in the kernel. A wake-up through
// the kernel costs tens of microseconds of latency on a loaded machine while a
// hand-off seen by a spinning waiter costs well under one, so every wait spins
// first for a bounded number of pause instructions (tuned in bench/).
#pragma once

#include <cstdint>

namespace concur::detail {

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield" ::: "memory");
#else
  asm volatile("" ::: "memory");
#endif
}

// Spin iterations before a waiter sleeps. Set from the measurements recorded
// in docs/benchmarks.md; 0 disables spinning (used by tests of the slow path).
#ifndef CONCUR_SPIN_LIMIT
#define CONCUR_SPIN_LIMIT 400
#endif
inline constexpr int kSpinLimit = CONCUR_SPIN_LIMIT;

// A lock spins far less: while one thread spins on the word, its loads pull
// the cache line away from the holder, which in a tight loop re-takes the
// lock at once; measured, two threads on one counter go fastest when a
// contender sleeps almost at once (docs/benchmarks.md, "spin").
#ifndef CONCUR_LOCK_SPIN_LIMIT
#define CONCUR_LOCK_SPIN_LIMIT 0
#endif
inline constexpr int kLockSpinLimit = CONCUR_LOCK_SPIN_LIMIT;

// Calls ready() up to `limit` times, pausing between calls; true as soon as it
// returns true.
template <class Ready>
inline bool spin_until(Ready&& ready, int limit = kSpinLimit) {
  for (int i = 0; i < limit; ++i) {
    if (ready()) return true;
    cpu_relax();
  }
  return false;
}

}  // namespace concur::detail
