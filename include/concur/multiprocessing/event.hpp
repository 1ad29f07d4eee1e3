#pragma once

#include <memory>

#include "concur/detail/event_word.hpp"
#include "concur/detail/lock_api.hpp"
#include "concur/detail/shared_block.hpp"

namespace concur::multiprocessing {

/// A flag shared by the threads of every process forked after it was made.
/// - Python: multiprocessing.Event.
/// - A cheap copyable handle: copies refer to the same event.
/// - Thread-safety, blocking, memory ordering: exactly as concur::threading::Event.
class Event : public detail::EventApi<Event> {
  using Word = detail::EventWord<detail::Scope::kShared>;

 public:
  /// Clear, in fresh shared memory: processes forked from now on share it.
  Event() : word_(detail::make_shared_object<Word>()) {}

 private:
  friend class detail::EventApi<Event>;
  Word& word() const { return *word_; }

  std::shared_ptr<Word> word_;
};

}  // namespace concur::multiprocessing
