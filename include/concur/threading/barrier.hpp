#pragma once

#include <chrono>
#include <functional>
#include <utility>

#include "concur/detail/barrier_api.hpp"
#include "concur/detail/barrier_core.hpp"

namespace concur::threading {

/// Makes a fixed number of threads wait for each other, cycle after cycle.
/// - Python: threading.Barrier.
/// - Thread-safety: every member may be called from any thread.
/// - Blocks: wait() until `parties` threads have called it (or the barrier
///   breaks); a thread arriving while the previous cycle is still leaving or
///   resetting waits for that first. A zero or negative timeout does not wait.
/// - Throws: std::invalid_argument for parties < 1; concur::BrokenBarrierError
///   from wait() when the barrier is broken, is reset or aborted during the
///   wait, or the wait times out (which breaks it for everyone, as in Python).
///   The action runs in the last thread to arrive before any is released; if it
///   throws, that thread gets its exception, the barrier breaks, and the
///   others get BrokenBarrierError.
class Barrier : public detail::BarrierApi<Barrier> {
 public:
  /// Python: Barrier(parties, action). An empty action does nothing; wait()
  /// without a timeout waits forever.
  explicit Barrier(int parties, std::function<void()> action = {})
      : BarrierApi(std::move(action), std::nullopt), core_(checked_parties(parties)) {}
  /// Python: Barrier(parties, action, timeout): wait() without a timeout of
  /// its own waits at most default_timeout, then breaks the barrier.
  template <class Rep, class Period>
  Barrier(int parties, std::function<void()> action,
          std::chrono::duration<Rep, Period> default_timeout)
      : BarrierApi(std::move(action), detail::Deadline::saturating_ns(default_timeout)),
        core_(checked_parties(parties)) {}
  Barrier(const Barrier&) = delete;
  Barrier& operator=(const Barrier&) = delete;

 private:
  friend class detail::BarrierApi<Barrier>;
  detail::BarrierCore<detail::Scope::kPrivate>& core() { return core_; }
  const detail::BarrierCore<detail::Scope::kPrivate>& core() const { return core_; }

  detail::BarrierCore<detail::Scope::kPrivate> core_;
};

}  // namespace concur::threading
