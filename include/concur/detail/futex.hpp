// The platform seam: every blocking primitive in concur is an algorithm over a
// 32-bit word that calls only these functions to sleep and to wake. The thread
// types use Scope::kPrivate (FUTEX_PRIVATE_FLAG, no page-table lookup in the
// kernel); the process-shared types run the very same code with Scope::kShared
// on a word that lives in shared memory.
#pragma once

#include <atomic>
#include <cstdint>

#include "concur/detail/deadline.hpp"

namespace concur::detail {

enum class Scope : bool { kPrivate = false, kShared = true };

enum class WaitResult { kWoken, kValueChanged, kTimedOut, kInterrupted };

// Sleeps while *word == expected, until woken or the deadline passes. Returns
// at once (kValueChanged) if the word already differs. May return kWoken or
// kInterrupted spuriously: callers always re-check their word.
WaitResult futex_wait(std::atomic<std::uint32_t>& word, std::uint32_t expected, Scope scope,
                      Deadline deadline);

// Wakes up to `count` sleepers on word; returns how many were woken.
int futex_wake(std::atomic<std::uint32_t>& word, int count, Scope scope);
inline constexpr int kWakeAll = 0x7fffffff;

// Whether the thread with kernel id tid still runs (a zombie counts as
// gone). Used by the process-shared locks to notice a holder that died.
bool thread_alive(std::uint32_t tid);
// What thread_alive() reads from the text of /proc/<tid>/stat (NUL-ended):
// gone when the state after the last ')' is Z, X or x; alive otherwise,
// also when the text cannot be read that far. Declared for the fuzz target
// tests/fuzz/proc_stat_fuzz.cpp.
bool stat_says_alive(const char* stat_text);

// The kernel thread id of the caller, cached per thread and refreshed in a
// child after fork. Never 0. Unique across processes of one pid namespace, so
// a lock word holding it names its owner in every scope.
extern constinit thread_local std::uint32_t t_cached_tid;
std::uint32_t load_tid_slow();
inline std::uint32_t current_tid() {
  const std::uint32_t tid = t_cached_tid;
  return tid != 0 ? tid : load_tid_slow();
}

}  // namespace concur::detail
