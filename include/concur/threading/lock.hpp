#pragma once

#include "concur/detail/lock_api.hpp"
#include "concur/detail/lock_word.hpp"

namespace concur::detail {
template <class>
class ConditionApi;
}

namespace concur::threading {

/// A mutual-exclusion lock that is not owned: any thread may release it.
/// - Python: threading.Lock.
/// - Thread-safety: every member may be called from any thread.
/// - Blocks: acquire() while another holder has it; acquire(false) and a zero
///   timeout never block; a past time point means one attempt.
/// - Throws: std::logic_error from release() when unlocked;
///   std::invalid_argument for a negative timeout given to acquire(duration)
///   (try_lock_for takes a negative one as "do not wait").
/// - Size: one 32-bit word. Satisfies TimedLockable: std::scoped_lock,
///   std::unique_lock and std::condition_variable_any work with it. A
///   successful acquire is an acquire operation and release() a release
///   operation on that word.
class Lock : public detail::LockApi<Lock> {
 public:
  /// Unlocked. Neither copyable nor movable: threads share it by reference.
  Lock() = default;
  Lock(const Lock&) = delete;
  Lock& operator=(const Lock&) = delete;

 private:
  friend class detail::LockApi<Lock>;
  template <class>
  friend class detail::ConditionApi;
  detail::LockWord<detail::Scope::kPrivate>& word() { return word_; }
  const detail::LockWord<detail::Scope::kPrivate>& word() const { return word_; }

  detail::LockWord<detail::Scope::kPrivate> word_;
};

}  // namespace concur::threading
