// Happens-before annotations for valgrind's Helgrind (and, at the end, the
// one ThreadSanitizer needs), compiled only when CONCUR_VALGRIND is defined; otherwise every macro here expands to nothing,
// so the normal build is unchanged (an uncontended acquire stays one atomic
// instruction).
//
// Helgrind knows pthreads, not futexes: to it every concur primitive is
// plain memory, and every access the primitive orders looks like a race.
// These macros tell it what the primitives' comments promise:
//
//   CONCUR_HAPPENS_BEFORE(p)  just before a release operation on the word at
//                             p (before the atomic that publishes, so that a
//                             thread that sees the new value has the edge)
//   CONCUR_HAPPENS_AFTER(p)   just after a successful acquire operation on it
//
// Each is a Helgrind "user synchronisation object" keyed by the word's
// address: every thread that passes AFTER(p) happens after every thread that
// passed BEFORE(p) earlier (the clocks accumulate, as a release sequence
// does for read-modify-writes on one word).
//
// Helgrind takes an atomic read-modify-write for a read, so the words that
// are only ever changed by compare-and-swap, exchange or fetch-and-op never
// look racy to it. A word that is also written with a plain atomic store is
// racy to it: CONCUR_ATOMIC_WORD_BEGIN(p) stops Helgrind from checking that
// word's bytes, CONCUR_ATOMIC_WORD_END(p) checks them again (for a word on
// a stack, before the memory is used for something else).
//
// Used by the lock, semaphore and event words; the condition and the
// barrier order their callers through the lock words they use.
// tests/CMakeLists.txt builds the threading tests with CONCUR_VALGRIND and
// runs them under Helgrind (ctest label `valgrind`).
#pragma once

#if defined(CONCUR_VALGRIND)
#include <valgrind/helgrind.h>

#define CONCUR_HAPPENS_BEFORE(p) ANNOTATE_HAPPENS_BEFORE(p)
#define CONCUR_HAPPENS_AFTER(p) ANNOTATE_HAPPENS_AFTER(p)
#define CONCUR_ATOMIC_WORD_BEGIN(p) VALGRIND_HG_DISABLE_CHECKING((p), sizeof(*(p)))
#define CONCUR_ATOMIC_WORD_END(p) VALGRIND_HG_ENABLE_CHECKING((p), sizeof(*(p)))
#else
#define CONCUR_HAPPENS_BEFORE(p) static_cast<void>(0)
#define CONCUR_HAPPENS_AFTER(p) static_cast<void>(0)
#define CONCUR_ATOMIC_WORD_BEGIN(p) static_cast<void>(0)
#define CONCUR_ATOMIC_WORD_END(p) static_cast<void>(0)
#endif

// ThreadSanitizer and exceptions handed between threads. An exception object
// is reference counted by libstdc++ (the thrown copy in flight, every
// std::exception_ptr to it), and libstdc++ is not built with
// ThreadSanitizer, so the count that orders "the catching thread is done
// with it" before "another thread frees it" is invisible: when a worker
// drops the last std::exception_ptr after the caller's handler has read the
// exception, ThreadSanitizer reports the free as a race with that read
// (CI saw it once, in ThreadPool.map). release_exception() drops a
// std::exception_ptr with ThreadSanitizer not recording the accesses and the
// free -- only those, for the duration of the call; the holders whose last
// reference can be dropped by a thread other than the one that rethrows call
// it from their destructors. Other builds: a plain reset.
#if defined(__SANITIZE_THREAD__)
#define CONCUR_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define CONCUR_TSAN 1
#endif
#endif

#include <exception>

#if defined(CONCUR_TSAN)
extern "C" void __tsan_ignore_thread_begin();  // NOLINT(bugprone-reserved-identifier)
extern "C" void __tsan_ignore_thread_end();    // NOLINT(bugprone-reserved-identifier)
#endif

namespace concur::detail {

inline void release_exception(std::exception_ptr& error) noexcept {
#if defined(CONCUR_TSAN)
  if (!error) return;
  __tsan_ignore_thread_begin();
  error = nullptr;
  __tsan_ignore_thread_end();
#else
  error = nullptr;
#endif
}

}  // namespace concur::detail
