// The semaphore algorithm over one 32-bit word, for both scopes.
//
// Word layout:
//   bits 0..29   the count of permits
//   bit 30       kBounded: release() must respect a bound kept beside the word
//   bit 31       kWaiters: some thread may be asleep in the kernel
//
// release() that finds kWaiters clears it and wakes every sleeper; each
// re-checks and, finding no permit, sets the bit again. Clearing and waking
// all is what makes it safe to drop the bit at all in one word (there is no
// room for an exact sleeper count), and it keeps release() free of system
// calls whenever nobody sleeps, unlike a release that always wakes.
//
// Memory ordering: release() is a release operation, a successful acquire an
// acquire operation (told to Helgrind through detail/annotate.hpp).
#pragma once

#include <atomic>
#include <cstdint>
#include <stdexcept>
#include <string>

#include "concur/detail/annotate.hpp"
#include "concur/detail/deadline.hpp"
#include "concur/detail/futex.hpp"
#include "concur/detail/spin.hpp"

namespace concur::detail {

template <Scope S>
class SemaphoreWord {
 public:
  static constexpr std::uint32_t kCountMask = (1u << 30) - 1;
  static constexpr std::uint32_t kBounded = 1u << 30;
  static constexpr std::uint32_t kWaiters = 1u << 31;
  static constexpr std::uint32_t kMaxValue = kCountMask;

  constexpr SemaphoreWord(std::uint32_t initial, bool bounded)
      : word_(initial | (bounded ? kBounded : 0)) {}
  SemaphoreWord(const SemaphoreWord&) = delete;
  SemaphoreWord& operator=(const SemaphoreWord&) = delete;

  bool try_acquire() {
    std::uint32_t v = word_.load(std::memory_order_relaxed);
    while (v & kCountMask) {
      if (word_.compare_exchange_weak(v, v - 1, std::memory_order_acquire,
                                      std::memory_order_relaxed)) {
        CONCUR_HAPPENS_AFTER(&word_);
        return true;
      }
    }
    return false;
  }

  bool acquire_until(Deadline deadline) {
    if (try_acquire()) return true;
    if (deadline.is_now_only()) return false;
    if (spin_until([this] {
          return (word_.load(std::memory_order_relaxed) & kCountMask) != 0 && try_acquire();
        })) {
      return true;
    }
    for (;;) {
      std::uint32_t v = word_.load(std::memory_order_relaxed);
      if (v & kCountMask) {
        if (word_.compare_exchange_weak(v, v - 1, std::memory_order_acquire,
                                        std::memory_order_relaxed)) {
          CONCUR_HAPPENS_AFTER(&word_);
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
      if (futex_wait(word_, v, S, deadline) == WaitResult::kTimedOut) return try_acquire();
    }
  }

  // Adds n permits unless that would pass `bound`; returns false, changing
  // nothing, if it would. Throws std::overflow_error past kMaxValue.
  bool release(std::uint32_t n, std::uint32_t bound) {
    std::uint32_t v = word_.load(std::memory_order_relaxed);
    std::uint32_t next;
    do {
      const std::uint32_t count = v & kCountMask;
      if (n > bound || count > bound - n) return false;
      if (n > kMaxValue - count) {
        throw std::overflow_error("Semaphore.release(): the value would exceed " +
                                  std::to_string(kMaxValue));
      }
      next = ((v & ~kWaiters) + n);
      CONCUR_HAPPENS_BEFORE(&word_);
    } while (!word_.compare_exchange_weak(v, next, std::memory_order_release,
                                          std::memory_order_relaxed));
    if (v & kWaiters) futex_wake(word_, kWakeAll, S);
    return true;
  }

  std::uint32_t value() const { return word_.load(std::memory_order_relaxed) & kCountMask; }
  bool bounded() const { return (word_.load(std::memory_order_relaxed) & kBounded) != 0; }

 private:
  std::atomic<std::uint32_t> word_;
};

}  // namespace concur::detail
