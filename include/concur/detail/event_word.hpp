// The event algorithm over one 32-bit word, for both scopes.
//
// Word layout:
//   bit 0        the flag
//   bit 1        kWaiters: some thread may be asleep in the kernel
//   bits 2..31   a generation, advanced by every set() that raises the flag
//
// A waiter remembers the generation it started in, so a set() followed at
// once by clear() still ends its wait with true, as in Python (where wait()
// returns true if the flag was set before or during the wait).
//
// Memory ordering: set() is a release operation (also when the flag was
// already set: it is a read-modify-write that publishes the caller's
// writes); a wait() that returns true is an acquire operation, and so is an
// is_set() that returns true (told to Helgrind through detail/annotate.hpp).
#pragma once

#include <atomic>
#include <cstdint>

#include "concur/detail/annotate.hpp"
#include "concur/detail/deadline.hpp"
#include "concur/detail/futex.hpp"
#include "concur/detail/spin.hpp"

namespace concur::detail {

template <Scope S>
class EventWord {
 public:
  static constexpr std::uint32_t kFlag = 1;
  static constexpr std::uint32_t kWaiters = 2;
  static constexpr std::uint32_t kGenerationStep = 4;

  constexpr EventWord() = default;
  EventWord(const EventWord&) = delete;
  EventWord& operator=(const EventWord&) = delete;

  bool is_set() const {
    const bool set = (word_.load(std::memory_order_acquire) & kFlag) != 0;
    if (set) CONCUR_HAPPENS_AFTER(&word_);
    return set;
  }

  void set() {
    CONCUR_HAPPENS_BEFORE(&word_);
    std::uint32_t v = word_.load(std::memory_order_relaxed);
    std::uint32_t next;
    do {
      next = (v & kFlag) ? v : (((v & ~kWaiters) + kGenerationStep) | kFlag);
    } while (!word_.compare_exchange_weak(v, next, std::memory_order_acq_rel,
                                          std::memory_order_relaxed));
    if (v & kWaiters) futex_wake(word_, kWakeAll, S);
  }

  void clear() { word_.fetch_and(~kFlag, std::memory_order_acq_rel); }

  bool wait(Deadline deadline) {
    std::uint32_t v = word_.load(std::memory_order_acquire);
    if (v & kFlag) {
      CONCUR_HAPPENS_AFTER(&word_);
      return true;
    }
    if (deadline.is_now_only()) return false;
    const std::uint32_t generation = v & ~(kFlag | kWaiters);
    auto signalled = [generation](std::uint32_t w) {
      return (w & kFlag) != 0 || (w & ~(kFlag | kWaiters)) != generation;
    };
    if (spin_until([&] { return signalled(word_.load(std::memory_order_acquire)); })) {
      CONCUR_HAPPENS_AFTER(&word_);
      return true;
    }
    for (;;) {
      v = word_.load(std::memory_order_acquire);
      if (signalled(v)) {
        CONCUR_HAPPENS_AFTER(&word_);
        return true;
      }
      if (!(v & kWaiters)) {
        if (!word_.compare_exchange_weak(v, v | kWaiters, std::memory_order_relaxed,
                                         std::memory_order_relaxed)) {
          continue;
        }
        v |= kWaiters;
      }
      if (futex_wait(word_, v, S, deadline) == WaitResult::kTimedOut) {
        const bool set = signalled(word_.load(std::memory_order_acquire));
        if (set) CONCUR_HAPPENS_AFTER(&word_);
        return set;
      }
    }
  }

 private:
  std::atomic<std::uint32_t> word_{0};
};

}  // namespace concur::detail
