#pragma once

#include <cstdint>

#include "concur/detail/condition_api.hpp"
#include "concur/detail/condition_queue.hpp"
#include "concur/threading/lock.hpp"
#include "concur/threading/rlock.hpp"

namespace concur::threading {

/// Lets threads wait, with a lock held, until another thread notifies them.
/// - Python: threading.Condition.
/// - Thread-safety: every member may be called from any thread; wait, wait_for
///   (when it must wait), notify and notify_all require the lock to be held
///   (for a Lock: held by some thread; for an RLock: by the caller).
/// - Blocks: wait() until notified; the lock is released meanwhile and taken back
///   before it returns (every level of an RLock held recursively). A zero or
///   negative timeout does not sleep but still releases and retakes the lock.
/// - Quirks: no spurious wake-ups. notify(n) wakes the n longest waiting threads,
///   exactly n when at least n wait; a thread that starts waiting after a
///   notify is never woken by it. A wait whose timeout expires just as it is
///   notified reports true: the notification is never lost.
/// - Throws: std::logic_error for wait/notify without the lock.
/// - Size: 16 bytes (the lock's address and the waiter queue), plus the RLock
///   that the default constructor makes.
/// - Note: wait_for takes a predicate, as in Python, not a duration as
///   std::condition_variable::wait_for does.
class Condition : public detail::ConditionApi<Condition> {
 public:
  /// With a fresh RLock of its own, as Python's Condition() makes.
  Condition() : lock_(reinterpret_cast<std::uintptr_t>(&own_lock_) | kRLockTag) {}
  /// Uses the caller's Lock, which must outlive the Condition.
  explicit Condition(Lock& lock) : lock_(reinterpret_cast<std::uintptr_t>(&lock)) {}
  /// Uses the caller's RLock, which must outlive the Condition.
  explicit Condition(RLock& lock) : lock_(reinterpret_cast<std::uintptr_t>(&lock) | kRLockTag) {}
  Condition(const Condition&) = delete;
  Condition& operator=(const Condition&) = delete;

 private:
  friend class detail::ConditionApi<Condition>;

  // The waiter's node lives on its own stack.
  class NodeHolder {
   public:
    explicit NodeHolder(Condition&) {}
    detail::WaitNode& node() { return node_; }

   private:
    detail::WaitNode node_;
  };

  // The lock's address with its kind in the low bit.
  static constexpr std::uintptr_t kRLockTag = 1;
  RLock* rlock() const {
    return (lock_ & kRLockTag) ? reinterpret_cast<RLock*>(lock_ & ~kRLockTag) : nullptr;
  }
  Lock* plain() const { return reinterpret_cast<Lock*>(lock_); }
  detail::ConditionQueue<detail::Scope::kPrivate>& queue() { return queue_; }

  std::uintptr_t lock_;
  detail::ConditionQueue<detail::Scope::kPrivate> queue_;
  RLock own_lock_;
};

}  // namespace concur::threading
