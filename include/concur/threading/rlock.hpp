#pragma once

#include "concur/detail/lock_api.hpp"
#include "concur/detail/lock_word.hpp"

namespace concur::detail {
template <class>
class ConditionApi;
}

namespace concur::threading {

/// A lock that the thread holding it may acquire again; it is free once
/// released as many times as acquired. Owned: only the holder may release.
/// - Python: threading.RLock.
/// - Thread-safety: every member may be called from any thread.
/// - Blocks: acquire() while another thread holds it; never when the caller
///   already holds it; acquire(false) and zero timeouts never block.
/// - Throws: std::logic_error from release() by a thread that does not hold it;
///   std::invalid_argument for a negative timeout given to acquire(duration).
/// - Size: 8 bytes (the lock word and the recursion count).
class RLock : public detail::RLockApi<RLock> {
 public:
  /// Unlocked. Neither copyable nor movable: threads share it by reference.
  RLock() = default;
  RLock(const RLock&) = delete;
  RLock& operator=(const RLock&) = delete;

 private:
  friend class detail::RLockApi<RLock>;
  template <class>
  friend class detail::ConditionApi;
  detail::RLockWord<detail::Scope::kPrivate>& word() { return word_; }
  const detail::RLockWord<detail::Scope::kPrivate>& word() const { return word_; }

  detail::RLockWord<detail::Scope::kPrivate> word_;
};

}  // namespace concur::threading
