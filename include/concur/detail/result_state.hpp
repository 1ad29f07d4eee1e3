// The shared state behind an AsyncResult: a value or an exception, and an
// Event that is set once either is in place.
#pragma once

#include <exception>
#include <optional>
#include <type_traits>
#include <utility>

#include "concur/detail/annotate.hpp"
#include "concur/threading/event.hpp"

namespace concur::detail {

template <class T>
struct ResultStorage {
  std::optional<T> value;
};
template <>
struct ResultStorage<void> {};

template <class T>
class ResultState : public ResultStorage<T> {
 public:
  ResultState() = default;
  ResultState(const ResultState&) = delete;
  ResultState& operator=(const ResultState&) = delete;
  // The last reference may be a worker's, after the caller caught the error.
  ~ResultState() { release_exception(error_); }

  // Exactly one of set_value / set_exception is called, once.
  template <class... V>
  void set_value(V&&... v) {
    if constexpr (!std::is_void_v<T>) this->value.emplace(std::forward<V>(v)...);
    done_.set();
  }
  void set_exception(std::exception_ptr e) {
    error_ = std::move(e);
    done_.set();
  }

  threading::Event& done() { return done_; }
  bool ready() const { return done_.is_set(); }
  // Only after ready().
  const std::exception_ptr& error() const { return error_; }
  // Only after ready(), by the one holder that reads the outcome (a call
  // that waits for its own result): the value moved out, or the exception
  // rethrown. AsyncResult::get() copies instead, as it may be called again.
  T take() {
    if (error_) std::rethrow_exception(error_);
    if constexpr (!std::is_void_v<T>) return std::move(*this->value);
  }

 private:
  threading::Event done_;
  std::exception_ptr error_;
};

}  // namespace concur::detail
