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

/// A lock shared by the threads of every process forked after it was made.
/// - Python: multiprocessing.Lock.
/// - A cheap copyable handle: copies refer to the same lock; its shared memory is
///   released when the last handle in a process is gone.
/// - Thread-safety, blocking, errors: exactly as concur::threading::Lock (it is
///   the same algorithm on a word in shared memory, with shared futexes).
/// - A holder that dies: if the thread holding the lock is gone (its process was
///   killed, or it ended) the next blocking acquire() takes the lock over and
///   succeeds as usual, within a few milliseconds; owner_died() is then true
///   until that holder releases it, so it knows the data it guards may be
///   half-updated. A waiter notices the death by checking /proc for the
///   holder's thread id after each sleep slice (1 ms, doubling to 200 ms).
class Lock : public detail::LockApi<Lock> {
  using Word = detail::LockWord<detail::Scope::kShared>;

 public:
  /// Unlocked, in fresh shared memory: processes forked from now on share it.
  Lock() : word_(detail::make_shared_object<Word>()) {}

  /// True while the lock is held by a thread that took it over from a holder
  /// that died: what it guards may be half-updated. Python has no counterpart.
  bool owner_died() const { return word_->owner_died(); }

 private:
  friend class detail::LockApi<Lock>;
  template <class>
  friend class detail::ConditionApi;
  Word& word() const { return *word_; }

  std::shared_ptr<Word> word_;
};

}  // namespace concur::multiprocessing
