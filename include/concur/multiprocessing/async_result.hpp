#pragma once

#include <chrono>
#include <memory>
#include <stdexcept>
#include <utility>

#include "concur/detail/result_state.hpp"
#include "concur/errors.hpp"

namespace concur::multiprocessing {

/// The result of apply_async or map_async, ready later.
/// - Python: multiprocessing.pool.AsyncResult.
/// - A cheap copyable handle: copies refer to the same result.
/// - Thread-safety: every member may be called from any thread, any number of
///   times; get() returns a copy of the value each time.
/// - Blocks: get() and wait() until the task has finished; a zero or negative
///   timeout only looks.
/// - Throws: get() rethrows the task's exception (from a ThreadPool the very
///   exception, from a Pool a RemoteError or WorkerLostError), and
///   concur::TimeoutError when a timed get() runs out; successful() before
///   ready(): std::invalid_argument, a std::logic_error (Python: ValueError).
template <class T>
class AsyncResult {
 public:
  /// Made by the pools, not by users: wraps the state the task fills in.
  explicit AsyncResult(std::shared_ptr<detail::ResultState<T>> state) : state_(std::move(state)) {}

  /// Python: get(). Waits for the task; returns its value or rethrows its
  /// exception.
  T get() {
    wait();
    return take();
  }
  /// Python: get(timeout). As get(), waiting at most `timeout`; then
  /// concur::TimeoutError, and the task goes on.
  template <class Rep, class Period>
  T get(std::chrono::duration<Rep, Period> timeout) {
    if (!wait(timeout)) throw TimeoutError("AsyncResult.get(): the result is not ready yet");
    return take();
  }
  /// Python: wait(). Waits until the task has finished, well or not; never throws
  /// the task's exception.
  void wait() { state_->done().wait(); }
  /// Python: wait(timeout), which returns None; here true when the task has
  /// finished.
  template <class Rep, class Period>
  bool wait(std::chrono::duration<Rep, Period> timeout) {
    return state_->done().wait(timeout);
  }
  /// Python: ready(). The task has finished; never blocks.
  bool ready() const { return state_->ready(); }
  /// Python: successful(). The task finished without an exception; before
  /// ready(): std::invalid_argument.
  bool successful() const {
    if (!ready()) {
      throw std::invalid_argument(
          "AsyncResult.successful(): the result is not ready; call wait() first");
    }
    return !state_->error();
  }

 private:
  T take() {
    if (state_->error()) std::rethrow_exception(state_->error());
    if constexpr (!std::is_void_v<T>) return *state_->value;
  }

  std::shared_ptr<detail::ResultState<T>> state_;
};

}  // namespace concur::multiprocessing
