// Binds a callable and copies of its arguments into one std::function, as
// Python's Thread/Process/Timer keep target and args until run() calls them.
#pragma once

#include <functional>
#include <tuple>
#include <utility>

namespace concur::detail {

template <class F, class... Args>
std::function<void()> bind_target(F&& target, Args&&... args) {
  return [fn = std::forward<F>(target),
          bound = std::make_tuple(std::forward<Args>(args)...)]() mutable {
    std::apply([&fn](auto&... a) { std::invoke(fn, a...); }, bound);
  };
}

}  // namespace concur::detail
