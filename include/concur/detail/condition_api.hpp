// The public members of Condition, written once for both scopes.
//
// Self provides:
//   RLockType* rlock() const   the lock when it is an RLock, else nullptr
//   LockType*  plain() const   the lock when it is a Lock
//   ConditionQueue<S>& queue()
//   NodeHolder                 a type whose constructor (run with the lock
//                              held) takes a WaitNode, node() returns it, and
//                              whose destructor (lock held again) gives it back
#pragma once

#include <chrono>
#include <cstdint>
#include <stdexcept>
#include <string>

#include "concur/detail/condition_queue.hpp"
#include "concur/detail/deadline.hpp"

namespace concur::detail {

/// Python's Condition: the members of threading::Condition and
/// multiprocessing::Condition, written once for both scopes; use those
/// classes, not this one. The lock members forward to the condition's lock.
template <class Self>
class ConditionApi {
 public:
  /// The lock's acquire(blocking), with its errors.
  bool acquire(bool blocking = true) {
    return rlock() ? rlock()->acquire(blocking) : plain()->acquire(blocking);
  }
  /// The lock's acquire(timeout): a negative timeout is std::invalid_argument.
  template <class Rep, class Period>
  [[nodiscard]] bool acquire(std::chrono::duration<Rep, Period> timeout) {
    return rlock() ? rlock()->acquire(timeout) : plain()->acquire(timeout);
  }
  /// The lock's acquire_until(deadline).
  template <class Clock, class Dur>
  [[nodiscard]] bool acquire_until(std::chrono::time_point<Clock, Dur> deadline) {
    return rlock() ? rlock()->acquire_until(deadline) : plain()->acquire_until(deadline);
  }
  /// The lock's release(), with its std::logic_error when not held.
  void release() { rlock() ? rlock()->release() : plain()->release(); }
  /// The lock's locked(): held by any thread.
  bool locked() const { return rlock() ? rlock()->locked() : plain()->locked(); }

  /// For std::scoped_lock and std::unique_lock: acquire().
  void lock() { acquire(); }
  /// For std::scoped_lock and std::unique_lock: release().
  void unlock() { release(); }
  /// acquire(false): one attempt, never blocks.
  [[nodiscard]] bool try_lock() { return acquire(false); }
  /// The lock's try_lock_for(timeout): a negative timeout means one attempt.
  template <class Rep, class Period>
  [[nodiscard]] bool try_lock_for(std::chrono::duration<Rep, Period> timeout) {
    return rlock() ? rlock()->try_lock_for(timeout) : plain()->try_lock_for(timeout);
  }
  /// The lock's try_lock_until(deadline).
  template <class Clock, class Dur>
  [[nodiscard]] bool try_lock_until(std::chrono::time_point<Clock, Dur> deadline) {
    return rlock() ? rlock()->try_lock_until(deadline) : plain()->try_lock_until(deadline);
  }

  /// Releases the lock, waits for a notify, and takes the lock back. Always
  /// true. Without the lock: std::logic_error.
  bool wait() { return wait_until_deadline(Deadline::never()); }
  /// As wait(), at most `timeout`; false on timeout (the lock is taken back
  /// either way).
  template <class Rep, class Period>
  bool wait(std::chrono::duration<Rep, Period> timeout) {
    return wait_until_deadline(Deadline::after(timeout));
  }
  /// As wait(timeout), up to `deadline` (of any clock).
  template <class Clock, class Dur>
  bool wait_until(std::chrono::time_point<Clock, Dur> deadline) {
    return wait_until_deadline(Deadline::at(deadline));
  }

  /// Python's wait_for: waits until pred() is true; returns pred()'s last value.
  /// pred() runs with the lock held; when it is true at once, nothing waits
  /// and the lock need not be held.
  template <class Pred>
  bool wait_for(Pred pred) {
    bool result = pred();
    while (!result) {
      wait();
      result = pred();
    }
    return result;
  }
  /// As wait_for(pred), for at most `timeout` in all; false when pred() is
  /// still false at the end (not a duration-only wait: the predicate is
  /// required, as in Python).
  template <class Pred, class Rep, class Period>
  bool wait_for(Pred pred, std::chrono::duration<Rep, Period> timeout) {
    const Deadline deadline = Deadline::after(timeout);
    bool result = pred();
    while (!result) {
      if (deadline.expired()) break;
      wait_until_deadline(deadline);
      result = pred();
    }
    return result;
  }

  /// Wakes the n longest-waiting threads (all of them when fewer wait; none
  /// for n <= 0). Without the lock: std::logic_error.
  void notify(int n = 1) {
    require_owned("Condition.notify()");
    if (n > 0) self().queue().notify(n);
  }
  /// Wakes every waiting thread. Without the lock: std::logic_error.
  void notify_all() {
    require_owned("Condition.notify_all()");
    self().queue().notify(INT32_MAX);
  }

 private:
  Self& self() { return *static_cast<Self*>(this); }
  const Self& self() const { return *static_cast<const Self*>(this); }
  auto* rlock() const { return self().rlock(); }
  auto* plain() const { return self().plain(); }

  // Python's _is_owned: an RLock must be held by the caller; a Lock, by anyone.
  bool owned() const { return rlock() ? rlock()->is_owned() : plain()->locked(); }
  void require_owned(const char* call) const {
    if (!owned()) {
      throw std::logic_error(std::string(call) +
                             ": the condition's lock is not held; acquire it first (with "
                             "std::scoped_lock or acquire())");
    }
  }

  bool wait_until_deadline(Deadline deadline) {
    require_owned("Condition.wait()");
    typename Self::NodeHolder holder(self());
    if (auto* r = rlock()) {
      std::uint32_t levels = 0;
      return self().queue().wait(
          holder.node(), [&] { levels = r->word().release_all(); },
          [&] { r->word().restore(levels); }, deadline);
    }
    auto* l = plain();
    return self().queue().wait(
        holder.node(), [&] { l->word().release(); }, [&] { l->word().acquire_spinning(); },
        deadline);
  }
};

}  // namespace concur::detail
