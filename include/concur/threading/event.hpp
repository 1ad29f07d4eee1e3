#pragma once

#include "concur/detail/event_word.hpp"
#include "concur/detail/lock_api.hpp"

namespace concur::threading {

/// A flag that threads wait on until another thread sets it.
/// - Python: threading.Event.
/// - Thread-safety: every member may be called from any thread.
/// - Blocks: wait() while the flag is clear; a zero or negative timeout never blocks.
/// - Throws: nothing.
/// - Size: one 32-bit word. set() is a release operation and a wait() that
///   returns true an acquire operation on it: what the setter wrote before set()
///   is visible to the waiter after wait().
class Event : public detail::EventApi<Event> {
 public:
  /// The flag starts clear, as in Python.
  Event() = default;
  Event(const Event&) = delete;
  Event& operator=(const Event&) = delete;

 private:
  friend class detail::EventApi<Event>;
  detail::EventWord<detail::Scope::kPrivate>& word() { return word_; }
  const detail::EventWord<detail::Scope::kPrivate>& word() const { return word_; }

  detail::EventWord<detail::Scope::kPrivate> word_;
};

}  // namespace concur::threading
