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

template <class Self>
class BarrierApi {
 public:
  // Returns a distinct index in [0, parties) to each thread of a cycle; the
  // last to arrive gets parties - 1.
  int wait() {
    return wait_until_deadline(default_timeout_ns_
                                   ? Deadline::after(std::chrono::nanoseconds(*default_timeout_ns_))
                                   : Deadline::never());
  }
  template <class Rep, class Period>
  int wait(std::chrono::duration<Rep, Period> timeout) {
    return wait_until_deadline(Deadline::after(timeout));
  }

  // Waiting threads get BrokenBarrierError; the barrier is usable again.
  void reset() { core().reset(); }
  // Broken until reset().
  void abort() { core().abort(); }

  int parties() const { return core().parties(); }
  int n_waiting() const { return core().n_waiting(); }
  bool broken() const { return core().broken(); }

 protected:
  BarrierApi(std::function<void()> action, std::optional<std::int64_t> default_timeout_ns)
      : action_(std::move(action)), default_timeout_ns_(default_timeout_ns) {}

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
