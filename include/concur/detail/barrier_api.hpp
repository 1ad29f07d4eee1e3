// The public members of Barrier, written once for both scopes. The action
// and the default timeout belong to each handle (an mp::Barrier's action
// runs in whichever process arrives last); Self provides core().
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>

#include "concur/detail/deadline.hpp"

namespace concur::detail {

/// Python's Barrier: the members of threading::Barrier and
/// multiprocessing::Barrier, written once for both scopes; use those
/// classes, not this one.
template <class Self>
class BarrierApi {
 public:
  /// Waits until `parties` threads have arrived (at most the default timeout
  /// given to the constructor, if any). Returns a distinct index in
  /// [0, parties) to each thread of a cycle; the last to arrive gets
  /// parties - 1. Broken, reset or aborted meanwhile, or timed out:
  /// BrokenBarrierError.
  int wait() {
    return wait_until_deadline(default_timeout_ns_
                                   ? Deadline::after(std::chrono::nanoseconds(*default_timeout_ns_))
                                   : Deadline::never());
  }
  /// As wait(), bounded by `timeout` instead of the default; running out
  /// breaks the barrier for every waiter, as in Python.
  template <class Rep, class Period>
  int wait(std::chrono::duration<Rep, Period> timeout) {
    return wait_until_deadline(Deadline::after(timeout));
  }

  /// Waiting threads get BrokenBarrierError; the barrier is usable again.
  void reset() { core().reset(); }
  /// Broken until reset(): waiting threads and later wait() calls get
  /// BrokenBarrierError.
  void abort() { core().abort(); }

  /// The number of threads a cycle needs, as given to the constructor.
  int parties() const { return core().parties(); }
  /// The threads waiting in the current cycle now; a snapshot.
  int n_waiting() const { return core().n_waiting(); }
  /// True from a break (timeout, abort(), a throwing action) until reset().
  bool broken() const { return core().broken(); }

 protected:
  /// Keeps the action and the default timeout (none: wait forever) of this
  /// handle.
  BarrierApi(std::function<void()> action, std::optional<std::int64_t> default_timeout_ns)
      : action_(std::move(action)), default_timeout_ns_(default_timeout_ns) {}

  /// The constructors' check: `parties`, or std::invalid_argument below 1.
  static std::uint32_t checked_parties(int parties) {
    if (parties < 1) {
      throw std::invalid_argument("Barrier(): parties must be >= 1, got " +
                                  std::to_string(parties));
    }
    return static_cast<std::uint32_t>(parties);
  }

 private:
  auto& core() { return static_cast<Self*>(this)->core(); }
  const auto& core() const { return static_cast<const Self*>(this)->core(); }

  int wait_until_deadline(Deadline deadline) {
    return core().wait(
        [this] {
          if (action_) action_();
        },
        deadline);
  }

  std::function<void()> action_;
  std::optional<std::int64_t> default_timeout_ns_;
};

}  // namespace concur::detail
