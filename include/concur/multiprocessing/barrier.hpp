#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <utility>

#include "concur/detail/barrier_api.hpp"
#include "concur/detail/barrier_core.hpp"
#include "concur/detail/shared_block.hpp"

namespace concur::multiprocessing {

/// Makes a fixed number of threads, in any processes forked after it was made,
/// wait for each other.
/// - Python: multiprocessing.Barrier.
/// - A cheap copyable handle: copies refer to the same barrier.
/// - Thread-safety, blocking, errors: exactly as concur::threading::Barrier. The
///   action runs in the last process to arrive; what it changes outside shared
///   memory stays in that process.
class Barrier : public detail::BarrierApi<Barrier> {
  using Core = detail::BarrierCore<detail::Scope::kShared>;

 public:
  /// Python: Barrier(parties, action), in fresh shared memory. The action and
  /// default timeout belong to this handle and its copies, forked ones included.
  explicit Barrier(int parties, std::function<void()> action = {})
      : BarrierApi(std::move(action), std::nullopt),
        core_(detail::make_shared_object<Core>(checked_parties(parties))) {}
  /// Python: Barrier(parties, action, timeout): wait() without a timeout of
  /// its own waits at most default_timeout, then breaks the barrier.
  template <class Rep, class Period>
  Barrier(int parties, std::function<void()> action,
          std::chrono::duration<Rep, Period> default_timeout)
      : BarrierApi(std::move(action), detail::Deadline::saturating_ns(default_timeout)),
        core_(detail::make_shared_object<Core>(checked_parties(parties))) {}

 private:
  friend class detail::BarrierApi<Barrier>;
  Core& core() const { return *core_; }

  std::shared_ptr<Core> core_;
};

}  // namespace concur::multiprocessing
