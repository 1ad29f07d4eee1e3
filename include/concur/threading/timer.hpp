#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <tuple>
#include <utility>

#include "concur/threading/event.hpp"
#include "concur/threading/thread.hpp"

namespace concur::threading {

/// A thread that calls function(args...) once `interval` has passed, unless
/// cancelled first.
/// - Python: threading.Timer.
/// - Thread-safety: every member may be called from any thread.
/// - Blocks: as Thread; cancel() never blocks.
/// - Throws: as Thread.
/// - A Timer keeps its state apart from the object, so a daemon Timer may be
///   destroyed while it waits; a non-daemon one is joined like any Thread.
class Timer : public Thread {
 public:
  /// Python: Timer(interval, function, args). The countdown starts at start();
  /// the arguments are copied now, as Thread's are.
  template <class Rep, class Period, class F, class... Args>
  Timer(std::chrono::duration<Rep, Period> interval, F&& function, Args&&... args)
      : Timer(std::make_shared<Shared>(), interval, std::forward<F>(function),
              std::forward<Args>(args)...) {}

  /// Stops the timer if it is still waiting; once function has started it
  /// runs to the end.
  void cancel() { shared_->finished.set(); }

 private:
  struct Shared {
    Event finished;
  };

  template <class Rep, class Period, class F, class... Args>
  Timer(std::shared_ptr<Shared> shared, std::chrono::duration<Rep, Period> interval, F&& function,
        Args&&... args)
      : Thread(ThreadOptions{},
               [shared, interval,
                call = concur::detail::bind_target(std::forward<F>(function),
                                                   std::forward<Args>(args)...)]() mutable {
                 if (!shared->finished.wait(interval)) call();
                 shared->finished.set();
               }),
        shared_(std::move(shared)) {}

  std::shared_ptr<Shared> shared_;
};

}  // namespace concur::threading
