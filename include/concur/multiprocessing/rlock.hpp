#pragma once

#include <memory>

#include "concur/detail/lock_api.hpp"
#include "concur/detail/lock_word.hpp"
#include "concur/detail/shared_block.hpp"

namespace concur::detail {
template <class>
class ConditionApi;
}

namespace concur::multiprocessing {

/// A reentrant lock shared by the threads of every process forked after it
/// was made; owned by one thread of one process at a time.
/// - Python: multiprocessing.RLock.
/// - A cheap copyable handle: copies refer to the same lock.
/// - Thread-safety, blocking, errors: exactly as concur::threading::RLock.
/// - A holder that dies: as mp::Lock — the next acquire() takes it over (with a
///   recursion count of 1) and owner_died() is true until it is fully released.
class RLock : public detail::RLockApi<RLock> {
  using Word = detail::RLockWord<detail::Scope::kShared>;

 public:
  /// Unlocked, in fresh shared memory: processes forked from now on share it.
  RLock() : word_(detail::make_shared_object<Word>()) {}

  /// True while the lock is held by a thread that took it over from a holder
  /// that died, until it is fully released. Python has no counterpart.
  bool owner_died() const { return word_->owner_died(); }

 private:
  friend class detail::RLockApi<RLock>;
  template <class>
  friend class detail::ConditionApi;
  Word& word() const { return *word_; }

  std::shared_ptr<Word> word_;
};

}  // namespace concur::multiprocessing
