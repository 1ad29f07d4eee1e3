// The barrier algorithm for both scopes: Python's state machine (filling,
// draining, resetting, broken) guarded by an internal LockWord, with waiters
// sleeping on a sequence word that every state change advances.
//
// Python's draining and resetting states make threads of the next cycle wait
// until every thread of the previous one has left, so a late waiter can never
// confuse its cycle's outcome with a later one's.
//
// Memory ordering: everything a thread did before wait() happens-before the
// action and everything every thread does after wait() returns.
#pragma once

#include <atomic>
#include <cstdint>
#include <stdexcept>

#include "concur/detail/deadline.hpp"
#include "concur/detail/futex.hpp"
#include "concur/detail/lock_word.hpp"
#include "concur/detail/spin.hpp"
#include "concur/errors.hpp"

namespace concur::detail {

template <Scope S>
class BarrierCore {
 public:
  enum State : std::int32_t { kFilling = 0, kDraining = 1, kResetting = -1, kBroken = -2 };

  explicit BarrierCore(std::uint32_t parties) : parties_(parties) {}
  BarrierCore(const BarrierCore&) = delete;
  BarrierCore& operator=(const BarrierCore&) = delete;

  // action() runs in the last thread to arrive, before any is released.
  template <class Action>
  int wait(Action&& action, Deadline deadline) {
    Guard guard(*this);
    enter();
    const std::uint32_t index = count_++;
    struct Leave {
      BarrierCore& self;
      ~Leave() {
        --self.count_;
        self.exit();
      }
    } leave{*this};
    if (index + 1 == parties_) {
      try {
        action();
      } catch (...) {
        break_barrier();
        throw;
      }
      state_ = kDraining;
      notify_all();
    } else {
      if (!wait_while([this] { return state_ == kFilling; }, deadline)) {
        break_barrier();
        throw BrokenBarrierError(
            "Barrier.wait(): timed out, so the barrier is now broken; call reset()");
      }
      if (state_ < 0) throw BrokenBarrierError();
    }
    return static_cast<int>(index);
  }

  void reset() {
    Guard guard(*this);
    if (count_ > 0) {
      if (state_ == kFilling || state_ == kBroken) state_ = kResetting;
      // already draining or resetting: the waiters leave on their own
    } else {
      state_ = kFilling;
    }
    notify_all();
  }

  void abort() {
    Guard guard(*this);
    break_barrier();
  }

  int parties() const { return static_cast<int>(parties_); }
  // Read without the lock, so the action (which runs with it held) may ask
  // too, as in Python; a snapshot, like Python's.
  int n_waiting() const {
    return state_.load(std::memory_order_relaxed) == kFilling
               ? static_cast<int>(count_.load(std::memory_order_relaxed))
               : 0;
  }
  bool broken() const { return state_.load(std::memory_order_relaxed) == kBroken; }

 private:
  struct Guard {
    explicit Guard(const BarrierCore& b) : barrier(b) { barrier.lock_.acquire(); }
    ~Guard() { barrier.lock_.release(); }
    const BarrierCore& barrier;
  };

  // With the lock held: wait until the previous cycle has drained or reset.
  void enter() {
    wait_while([this] { return state_ == kDraining || state_ == kResetting; }, Deadline::never());
    if (state_ < 0) throw BrokenBarrierError();
  }

  void exit() {
    if (count_ == 0 && (state_ == kResetting || state_ == kDraining)) {
      state_ = kFilling;
      notify_all();
    }
  }

  void break_barrier() {
    state_ = kBroken;
    notify_all();
  }

  // With the lock held.
  void notify_all() {
    const std::uint32_t old = seq_.fetch_add(kSeqStep, std::memory_order_release);
    if (old & kSeqWaiters) {
      seq_.fetch_and(~kSeqWaiters, std::memory_order_relaxed);
      futex_wake(seq_, kWakeAll, S);
    }
  }

  // With the lock held: sleeps while blocked() is true; false on timeout.
  template <class Blocked>
  bool wait_while(Blocked&& blocked, Deadline deadline) {
    while (blocked()) {
      if (deadline.expired()) return false;
      const std::uint32_t seen = seq_.load(std::memory_order_relaxed) & ~kSeqWaiters;
      lock_.release();
      auto changed = [&] { return (seq_.load(std::memory_order_acquire) & ~kSeqWaiters) != seen; };
      if (!spin_until(changed)) {
        for (;;) {
          std::uint32_t v = seq_.load(std::memory_order_relaxed);
          if ((v & ~kSeqWaiters) != seen) break;
          if (!(v & kSeqWaiters)) {
            if (!seq_.compare_exchange_weak(v, v | kSeqWaiters, std::memory_order_relaxed,
                                            std::memory_order_relaxed)) {
              continue;
            }
            v |= kSeqWaiters;
          }
          if (futex_wait(seq_, v, S, deadline) == WaitResult::kTimedOut) break;
        }
      }
      lock_.acquire_spinning();
    }
    return true;
  }

  static constexpr std::uint32_t kSeqWaiters = 1;
  static constexpr std::uint32_t kSeqStep = 2;

  mutable LockWord<S> lock_;
  std::atomic<std::uint32_t> seq_{0};
  const std::uint32_t parties_;
  // Changed only with lock_ held; atomic so n_waiting() and broken() can
  // read them without it.
  std::atomic<std::uint32_t> count_{0};
  std::atomic<std::int32_t> state_{kFilling};
};

}  // namespace concur::detail
