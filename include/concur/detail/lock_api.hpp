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

// Python's Lock: acquire, release, locked, plus the std Lockable members.
template <class Self>
class LockApi {
 public:
  bool acquire(bool blocking = true) {
    if (blocking) {
      word().acquire();
      return true;
    }
    return word().try_acquire();
  }
  template <class Rep, class Period>
  [[nodiscard]] bool acquire(std::chrono::duration<Rep, Period> timeout) {
    return word().acquire_until(checked_timeout(timeout, "Lock.acquire()"));
  }
  template <class Clock, class Dur>
  [[nodiscard]] bool acquire_until(std::chrono::time_point<Clock, Dur> deadline) {
    return word().acquire_until(Deadline::at(deadline));
  }
  void release() {
    if (!word().release()) {
      throw std::logic_error("Lock.release(): the lock is not held; call acquire() first");
    }
  }
  bool locked() const { return word().locked(); }

  void lock() { acquire(); }
  void unlock() { release(); }
  [[nodiscard]] bool try_lock() { return word().try_acquire(); }
  template <class Rep, class Period>
  [[nodiscard]] bool try_lock_for(std::chrono::duration<Rep, Period> timeout) {
    return word().acquire_until(Deadline::after(timeout));
  }
  template <class Clock, class Dur>
  [[nodiscard]] bool try_lock_until(std::chrono::time_point<Clock, Dur> deadline) {
    return word().acquire_until(Deadline::at(deadline));
  }

 private:
  auto& word() { return static_cast<Self*>(this)->word(); }
  const auto& word() const { return static_cast<const Self*>(this)->word(); }
};

// Python's RLock: as LockApi, but owned, plus is_owned().
template <class Self>
class RLockApi {
 public:
  bool acquire(bool blocking = true) {
    return blocking ? word().acquire_until(Deadline::never()) : word().try_acquire();
  }
  template <class Rep, class Period>
  [[nodiscard]] bool acquire(std::chrono::duration<Rep, Period> timeout) {
    return word().acquire_until(checked_timeout(timeout, "RLock.acquire()"));
  }
  template <class Clock, class Dur>
  [[nodiscard]] bool acquire_until(std::chrono::time_point<Clock, Dur> deadline) {
    return word().acquire_until(Deadline::at(deadline));
  }
  void release() {
    if (!word().release()) {
      throw std::logic_error(
          "RLock.release(): the calling thread does not hold this lock; only the thread that "
          "acquired it may release it");
    }
  }
  // Held by any thread.
  bool locked() const { return word().locked(); }
  // Held by the calling thread.
  bool is_owned() const { return word().is_owned(); }

  void lock() { acquire(); }
  void unlock() { release(); }
  [[nodiscard]] bool try_lock() { return word().try_acquire(); }
  template <class Rep, class Period>
  [[nodiscard]] bool try_lock_for(std::chrono::duration<Rep, Period> timeout) {
    return word().acquire_until(Deadline::after(timeout));
  }
  template <class Clock, class Dur>
  [[nodiscard]] bool try_lock_until(std::chrono::time_point<Clock, Dur> deadline) {
    return word().acquire_until(Deadline::at(deadline));
  }

 private:
  auto& word() { return static_cast<Self*>(this)->word(); }
  const auto& word() const { return static_cast<const Self*>(this)->word(); }
};

// Python's Semaphore. Self provides word() and bound(): the largest value a
// release may reach (UINT32_MAX when unbounded).
template <class Self>
class SemaphoreApi {
 public:
  bool acquire(bool blocking = true) {
    return blocking ? word().acquire_until(Deadline::never()) : word().try_acquire();
  }
  template <class Rep, class Period>
  [[nodiscard]] bool acquire(std::chrono::duration<Rep, Period> timeout) {
    return word().acquire_until(Deadline::after(timeout));
  }
  template <class Clock, class Dur>
  [[nodiscard]] bool acquire_until(std::chrono::time_point<Clock, Dur> deadline) {
    return word().acquire_until(Deadline::at(deadline));
  }
  // n < 1: std::invalid_argument. Through a BoundedSemaphore, passing its
  // initial value is std::invalid_argument and leaves the value unchanged.
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
  int value() const { return static_cast<int>(word().value()); }

  void lock() { acquire(); }
  void unlock() { release(); }
  [[nodiscard]] bool try_lock() { return word().try_acquire(); }
  template <class Rep, class Period>
  [[nodiscard]] bool try_lock_for(std::chrono::duration<Rep, Period> timeout) {
    return word().acquire_until(Deadline::after(timeout));
  }
  template <class Clock, class Dur>
  [[nodiscard]] bool try_lock_until(std::chrono::time_point<Clock, Dur> deadline) {
    return word().acquire_until(Deadline::at(deadline));
  }

 protected:
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

// Python's Event.
template <class Self>
class EventApi {
 public:
  bool is_set() const { return word().is_set(); }
  void set() { word().set(); }
  void clear() { word().clear(); }
  // Always true.
  bool wait() { return word().wait(Deadline::never()); }
  // True if the flag was set before or during the wait, even if it has been
  // cleared since; false only on timeout.
  template <class Rep, class Period>
  bool wait(std::chrono::duration<Rep, Period> timeout) {
    return word().wait(Deadline::after(timeout));
  }
  template <class Clock, class Dur>
  bool wait_until(std::chrono::time_point<Clock, Dur> deadline) {
    return word().wait(Deadline::at(deadline));
  }

 private:
  auto& word() { return static_cast<Self*>(this)->word(); }
  const auto& word() const { return static_cast<const Self*>(this)->word(); }
};

}  // namespace concur::detail
