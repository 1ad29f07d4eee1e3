// The lock algorithm, written once over a 32-bit word for both scopes.
//
// Word layout:
//   0                       unlocked
//   tid                     locked by the thread whose kernel id is tid, nobody asleep
//   tid | kWaiters          locked, and some thread may be asleep in the kernel
//   bit kOwnerDied          reserved for the process-shared scope: the holder died
//
// Storing the holder's tid instead of a bare 1 costs nothing on the fast path
// (one compare-and-swap either way) and lets RLock, Condition and the
// process-shared scope ask "who holds it?" from the same word.
//
// Memory ordering: a successful acquire is an acquire operation and release()
// is a release operation on the word, so everything done while holding the
// lock happens-before everything the next holder does. ThreadSanitizer sees
// these atomics directly; Helgrind is told through detail/annotate.hpp
// (nothing unless CONCUR_VALGRIND is defined).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <stdexcept>

#include "concur/detail/annotate.hpp"
#include "concur/detail/deadline.hpp"
#include "concur/detail/futex.hpp"
#include "concur/detail/spin.hpp"

namespace concur::detail {

template <Scope S>
class LockWord {
 public:
  static constexpr std::uint32_t kUnlocked = 0;
  static constexpr std::uint32_t kWaiters = 1u << 31;
  static constexpr std::uint32_t kOwnerDied = 1u << 30;
  static constexpr std::uint32_t kOwnerMask = kOwnerDied - 1;

  constexpr LockWord() = default;
  LockWord(const LockWord&) = delete;
  LockWord& operator=(const LockWord&) = delete;

  // One attempt; never blocks. The uncontended path: one CAS.
  bool try_acquire(std::uint32_t tid = current_tid()) {
    std::uint32_t expected = kUnlocked;
    const bool taken = word_.compare_exchange_strong(expected, tid, std::memory_order_acquire,
                                                     std::memory_order_relaxed);
    if (taken) CONCUR_HAPPENS_AFTER(&word_);
    return taken;
  }

  void acquire(std::uint32_t tid = current_tid()) {
    if (!try_acquire(tid)) {
      acquire_slow(tid, Deadline::never(), kLockSpinLimit);
      CONCUR_HAPPENS_AFTER(&word_);
    }
  }

  // For a thread just woken by a notify, whose notifier holds the lock for a
  // moment more: spinning then beats sleeping again.
  void acquire_spinning(std::uint32_t tid = current_tid()) {
    if (!try_acquire(tid)) {
      acquire_slow(tid, Deadline::never(), kSpinLimit);
      CONCUR_HAPPENS_AFTER(&word_);
    }
  }

  bool acquire_until(Deadline deadline, std::uint32_t tid = current_tid()) {
    if (try_acquire(tid)) return true;
    const bool taken = deadline.is_now_only() ? take_over_if_owner_died(tid)
                                              : acquire_slow(tid, deadline, kLockSpinLimit);
    if (taken) CONCUR_HAPPENS_AFTER(&word_);
    return taken;
  }

  // Unlocks, whoever holds it. Returns false, changing nothing, when it was
  // not locked. One atomic exchange; a system call only if someone sleeps.
  bool release() {
    CONCUR_HAPPENS_BEFORE(&word_);
    const std::uint32_t old = word_.exchange(kUnlocked, std::memory_order_release);
    if (old & kWaiters) futex_wake(word_, 1, S);
    return old != kUnlocked;
  }

  bool locked() const { return word_.load(std::memory_order_relaxed) != kUnlocked; }
  // True from a take-over of a dead holder's lock until the next release.
  bool owner_died() const { return (word_.load(std::memory_order_relaxed) & kOwnerDied) != 0; }
  std::uint32_t owner() const { return word_.load(std::memory_order_relaxed) & kOwnerMask; }
  std::uint32_t raw() const { return word_.load(std::memory_order_relaxed); }

 private:
  bool acquire_slow(std::uint32_t tid, Deadline deadline, int spin_limit) {
    // Spin while the holder is likely to let go soon: only while nobody is
    // asleep yet, since then a hand-off through the kernel is coming anyway.
    for (int i = 0; i < spin_limit; ++i) {
      std::uint32_t v = word_.load(std::memory_order_relaxed);
      if (v == kUnlocked) {
        if (word_.compare_exchange_weak(v, tid, std::memory_order_acquire,
                                        std::memory_order_relaxed)) {
          return true;
        }
        continue;
      }
      if (v & kWaiters) break;
      cpu_relax();
    }
    [[maybe_unused]] std::int64_t slice_ns = kFirstSliceNs;
    for (;;) {
      std::uint32_t v = word_.load(std::memory_order_relaxed);
      if (v == kUnlocked) {
        // Others may still sleep: take it marked contended so our release wakes one.
        if (word_.compare_exchange_weak(v, tid | kWaiters, std::memory_order_acquire,
                                        std::memory_order_relaxed)) {
          return true;
        }
        continue;
      }
      if (!(v & kWaiters)) {
        if (!word_.compare_exchange_weak(v, v | kWaiters, std::memory_order_relaxed,
                                         std::memory_order_relaxed)) {
          continue;
        }
        v |= kWaiters;
      }
      if constexpr (S == Scope::kShared) {
        // A holder in another process may die without releasing: sleep in
        // growing slices and, after each, ask whether the holder still lives.
        const Deadline slice = Deadline::after(std::chrono::nanoseconds(slice_ns));
        const bool slice_first = slice.ns() < deadline.ns();
        const WaitResult r = futex_wait(word_, v, S, slice_first ? slice : deadline);
        if (r == WaitResult::kTimedOut && slice_first) {
          if (take_over_if_owner_died(tid)) return true;
          slice_ns = slice_ns < kMaxSliceNs / 2 ? slice_ns * 2 : kMaxSliceNs;
          continue;
        }
        if (r != WaitResult::kTimedOut) continue;
      } else {
        if (futex_wait(word_, v, S, deadline) != WaitResult::kTimedOut) continue;
      }
      std::uint32_t expected = kUnlocked;
      return word_.compare_exchange_strong(expected, tid | kWaiters, std::memory_order_acquire,
                                           std::memory_order_relaxed) ||
             take_over_if_owner_died(tid);
    }
  }

  // Process-shared scope only: if the holder's thread is gone, take the lock
  // with kOwnerDied set; it stays set until this holder releases.
  bool take_over_if_owner_died(std::uint32_t tid) {
    if constexpr (S == Scope::kShared) {
      std::uint32_t v = word_.load(std::memory_order_relaxed);
      const std::uint32_t holder = v & kOwnerMask;
      if (holder == 0 || holder == tid || thread_alive(holder)) return false;
      return word_.compare_exchange_strong(v, tid | kOwnerDied | kWaiters,
                                           std::memory_order_acquire, std::memory_order_relaxed);
    } else {
      (void)tid;
      return false;
    }
  }

  static constexpr std::int64_t kFirstSliceNs = 1'000'000;
  static constexpr std::int64_t kMaxSliceNs = 200'000'000;

  std::atomic<std::uint32_t> word_{kUnlocked};
};

// A lock that one thread may take several times; the word is a LockWord, the
// recursion count is touched only by the owner.
template <Scope S>
class RLockWord {
 public:
  constexpr RLockWord() = default;
  RLockWord(const RLockWord&) = delete;
  RLockWord& operator=(const RLockWord&) = delete;

  bool try_acquire() {
    const std::uint32_t tid = current_tid();
    if (lock_.owner() == tid) return recurse();
    if (!lock_.try_acquire(tid)) return false;
    count_ = 1;
    return true;
  }

  bool acquire_until(Deadline deadline) {
    const std::uint32_t tid = current_tid();
    // Only this thread can have stored its own id, so a relaxed read suffices.
    if (lock_.owner() == tid) return recurse();
    if (!lock_.acquire_until(deadline, tid)) return false;
    count_ = 1;
    return true;
  }

  // False, changing nothing, when the caller does not own it.
  bool release() {
    if (lock_.owner() != current_tid()) return false;
    if (--count_ == 0) lock_.release();
    return true;
  }

  bool is_owned() const { return lock_.owner() == current_tid(); }
  bool locked() const { return lock_.locked(); }
  bool owner_died() const { return lock_.owner_died(); }

  // For Condition.wait: give up every level, and take them back.
  std::uint32_t release_all() {
    const std::uint32_t levels = count_;
    count_ = 0;
    lock_.release();
    return levels;
  }
  void restore(std::uint32_t levels) {
    lock_.acquire_spinning();
    count_ = levels;
  }

 private:
  bool recurse() {
    if (count_ == UINT32_MAX) throw std::overflow_error("RLock.acquire(): recursion too deep");
    ++count_;
    return true;
  }

  LockWord<S> lock_;
  std::uint32_t count_ = 0;
};

}  // namespace concur::detail
