// The public members of the lock-like types, written once for both scopes.
// threading::Lock keeps its word inline; mp::Lock keeps a handle to a word in
// shared memory. Each derives from the facade here and provides word().
#pragma once

#include <chrono>
#include <cstdint>
#include <stdexcept>
#include <string>

#include "concur/detail/deadline.hpp"

namespace concur::detail {

/// Python's Lock: acquire, release, locked, plus the std Lockable members.
/// The members of threading::Lock and multiprocessing::Lock, written once
/// for both scopes; use those classes, not this one. `Self` is the class
/// that derives from it and provides the lock word.
template <class Self>
class LockApi {
 public:
  /// Python: acquire(blocking=True). Waits until the lock is free and takes
  /// it; returns true. acquire(false) tries once and returns whether it took it.
  bool acquire(bool blocking = true) {
    if (blocking) {
      word().acquire();
      return true;
    }
    return word().try_acquire();
  }
  /// Python: acquire(timeout=t). Waits at most `timeout`; false if the lock
  /// stayed held. Zero: one attempt; negative: std::invalid_argument, as in
  /// Python; too large to represent: forever.
  template <class Rep, class Period>
  [[nodiscard]] bool acquire(std::chrono::duration<Rep, Period> timeout) {
    return word().acquire_until(checked_timeout(timeout, "Lock.acquire()"));
  }
  /// Waits until `deadline` (of any clock; one other than steady_clock is
  /// converted once, at the call); a time point already past means one attempt.
  template <class Clock, class Dur>
  [[nodiscard]] bool acquire_until(std::chrono::time_point<Clock, Dur> deadline) {
    return word().acquire_until(Deadline::at(deadline));
  }
  /// Frees the lock and wakes one waiter; any thread may call it, as in
  /// Python. When unlocked: std::logic_error (Python: RuntimeError).
  void release() {
    if (!word().release()) {
      throw std::logic_error("Lock.release(): the lock is not held; call acquire() first");
    }
  }
  /// Held by any thread now; a snapshot that may be stale by the time it is read.
  bool locked() const { return word().locked(); }

  /// For std::scoped_lock and std::unique_lock: acquire().
  void lock() { acquire(); }
  /// For std::scoped_lock and std::unique_lock: release().
  void unlock() { release(); }
  /// acquire(false): one attempt, never blocks.
  [[nodiscard]] bool try_lock() { return word().try_acquire(); }
  /// As acquire(timeout), but a negative timeout means one attempt, as
  /// std::timed_mutex has it, instead of an exception.
  template <class Rep, class Period>
  [[nodiscard]] bool try_lock_for(std::chrono::duration<Rep, Period> timeout) {
    return word().acquire_until(Deadline::after(timeout));
  }
  /// As acquire_until(deadline).
  template <class Clock, class Dur>
  [[nodiscard]] bool try_lock_until(std::chrono::time_point<Clock, Dur> deadline) {
    return word().acquire_until(Deadline::at(deadline));
  }

 private:
  auto& word() { return static_cast<Self*>(this)->word(); }
  const auto& word() const { return static_cast<const Self*>(this)->word(); }
};

/// Python's RLock: as LockApi, but owned, plus is_owned().
/// The members of threading::RLock and multiprocessing::RLock, written once
/// for both scopes; use those classes, not this one.
template <class Self>
class RLockApi {
 public:
  /// Python: acquire(blocking=True). Returns at once, one level deeper, when
  /// the caller holds it already; otherwise as Lock's. acquire(false) tries once.
  bool acquire(bool blocking = true) {
    return blocking ? word().acquire_until(Deadline::never()) : word().try_acquire();
  }
  /// Python: acquire(timeout=t). False if another thread held it throughout.
  /// Zero: one attempt; negative: std::invalid_argument, as in Python.
  template <class Rep, class Period>
  [[nodiscard]] bool acquire(std::chrono::duration<Rep, Period> timeout) {
    return word().acquire_until(checked_timeout(timeout, "RLock.acquire()"));
  }
  /// Waits until `deadline` (of any clock); a time point already past means
  /// one attempt.
  template <class Clock, class Dur>
  [[nodiscard]] bool acquire_until(std::chrono::time_point<Clock, Dur> deadline) {
    return word().acquire_until(Deadline::at(deadline));
  }
  /// Drops one level; the lock is free once every acquire() is matched. By a
  /// thread that does not hold it: std::logic_error (Python: RuntimeError).
  void release() {
    if (!word().release()) {
      throw std::logic_error(
          "RLock.release(): the calling thread does not hold this lock; only the thread that "
          "acquired it may release it");
    }
  }
  /// Held by any thread.
  bool locked() const { return word().locked(); }
  /// Held by the calling thread (Python's private _is_owned()).
  bool is_owned() const { return word().is_owned(); }

  /// For std::scoped_lock and std::unique_lock: acquire().
  void lock() { acquire(); }
  /// For std::scoped_lock and std::unique_lock: release().
  void unlock() { release(); }
  /// acquire(false): one attempt, never blocks.
  [[nodiscard]] bool try_lock() { return word().try_acquire(); }
  /// As acquire(timeout), but a negative timeout means one attempt instead
  /// of an exception.
  template <class Rep, class Period>
  [[nodiscard]] bool try_lock_for(std::chrono::duration<Rep, Period> timeout) {
    return word().acquire_until(Deadline::after(timeout));
  }
  /// As acquire_until(deadline).
  template <class Clock, class Dur>
  [[nodiscard]] bool try_lock_until(std::chrono::time_point<Clock, Dur> deadline) {
    return word().acquire_until(Deadline::at(deadline));
  }

 private:
  auto& word() { return static_cast<Self*>(this)->word(); }
  const auto& word() const { return static_cast<const Self*>(this)->word(); }
};

/// Python's Semaphore. Self provides word() and bound(): the largest value a
/// release may reach (UINT32_MAX when unbounded).
/// The members of the Semaphore and BoundedSemaphore of both scopes, written
/// once; use those classes, not this one.
template <class Self>
class SemaphoreApi {
 public:
  /// Python: acquire(blocking=True). Waits for a permit and takes it; returns
  /// true. acquire(false) tries once. Waiters are not served in FIFO order.
  bool acquire(bool blocking = true) {
    return blocking ? word().acquire_until(Deadline::never()) : word().try_acquire();
  }
  /// Python: acquire(timeout=t). False if no permit came within `timeout`; a
  /// zero or negative timeout means one attempt (as Python's Semaphore).
  template <class Rep, class Period>
  [[nodiscard]] bool acquire(std::chrono::duration<Rep, Period> timeout) {
    return word().acquire_until(Deadline::after(timeout));
  }
  /// Waits until `deadline` (of any clock); a time point already past means
  /// one attempt.
  template <class Clock, class Dur>
  [[nodiscard]] bool acquire_until(std::chrono::time_point<Clock, Dur> deadline) {
    return word().acquire_until(Deadline::at(deadline));
  }
  /// Python: release(n=1): gives n permits back, waking waiters for them.
  /// n < 1: std::invalid_argument. Through a BoundedSemaphore, passing its
  /// initial value is std::invalid_argument and leaves the value unchanged.
  /// Past kMaxValue: std::overflow_error.
  void release(int n = 1) {
    if (n < 1) {
      throw std::invalid_argument("Semaphore.release(): n must be >= 1, got " + std::to_string(n));
    }
    const std::uint32_t bound = static_cast<Self*>(this)->bound();
    if (!word().release(static_cast<std::uint32_t>(n), bound)) {
      throw std::invalid_argument(
          "BoundedSemaphore.release(): semaphore released too many times (above its initial "
          "value " +
          std::to_string(bound) + ")");
    }
  }
  /// The permits available now (Python: the private _value); a snapshot.
  int value() const { return static_cast<int>(word().value()); }

  /// For std::scoped_lock and std::unique_lock: acquire().
  void lock() { acquire(); }
  /// For std::scoped_lock and std::unique_lock: release().
  void unlock() { release(); }
  /// acquire(false): one attempt, never blocks.
  [[nodiscard]] bool try_lock() { return word().try_acquire(); }
  /// As acquire(timeout).
  template <class Rep, class Period>
  [[nodiscard]] bool try_lock_for(std::chrono::duration<Rep, Period> timeout) {
    return word().acquire_until(Deadline::after(timeout));
  }
  /// As acquire_until(deadline).
  template <class Clock, class Dur>
  [[nodiscard]] bool try_lock_until(std::chrono::time_point<Clock, Dur> deadline) {
    return word().acquire_until(Deadline::at(deadline));
  }

 protected:
  /// The constructors' check: `value` as the word's count, or
  /// std::invalid_argument when it is negative or above `max`.
  static std::uint32_t checked_value(int value, int max) {
    if (value < 0) {
      throw std::invalid_argument("Semaphore(): initial value must be >= 0, got " +
                                  std::to_string(value));
    }
    if (value > max) {
      throw std::invalid_argument("Semaphore(): initial value must be <= " + std::to_string(max));
    }
    return static_cast<std::uint32_t>(value);
  }

 private:
  auto& word() { return static_cast<Self*>(this)->word(); }
  const auto& word() const { return static_cast<const Self*>(this)->word(); }
};

/// Python's Event.
/// The members of threading::Event and multiprocessing::Event, written once
/// for both scopes; use those classes, not this one.
template <class Self>
class EventApi {
 public:
  /// The flag now; a snapshot.
  bool is_set() const { return word().is_set(); }
  /// Raises the flag and wakes every waiter; a release operation, also when
  /// the flag was set already.
  void set() { word().set(); }
  /// Lowers the flag; later wait() calls block until the next set().
  void clear() { word().clear(); }
  /// Waits until the flag is set. Always true.
  bool wait() { return word().wait(Deadline::never()); }
  /// True if the flag was set before or during the wait, even if it has been
  /// cleared since; false only on timeout.
  template <class Rep, class Period>
  bool wait(std::chrono::duration<Rep, Period> timeout) {
    return word().wait(Deadline::after(timeout));
  }
  /// As wait(timeout), up to `deadline` (of any clock).
  template <class Clock, class Dur>
  bool wait_until(std::chrono::time_point<Clock, Dur> deadline) {
    return word().wait(Deadline::at(deadline));
  }

 private:
  auto& word() { return static_cast<Self*>(this)->word(); }
  const auto& word() const { return static_cast<const Self*>(this)->word(); }
};

}  // namespace concur::detail
