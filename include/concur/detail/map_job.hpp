// What every pool's map shares: the chunk size rule, the per-item result
// slots, the lowest failing index, and the count of chunks still running.
#pragma once

#include <atomic>
#include <cstddef>
#include <exception>
#include <mutex>
#include <optional>
#include <type_traits>
#include <functional>
#include <tuple>
#include <utility>
#include <variant>
#include <vector>

#include "concur/detail/annotate.hpp"
#include "concur/threading/event.hpp"
#include "concur/threading/lock.hpp"

namespace concur::detail {

// Python's rule: about four chunks per worker. Never 0.
inline std::size_t auto_chunksize(std::size_t items, std::size_t workers) {
  if (workers == 0) workers = 1;
  const std::size_t chunks = workers * 4;
  const std::size_t size = items / chunks + (items % chunks != 0 ? 1 : 0);
  return size == 0 ? 1 : size;
}

// The first failure by item index, whatever order the chunks finish in.
class LowestError {
 public:
  static constexpr std::size_t kNone = static_cast<std::size_t>(-1);

  LowestError() = default;
  LowestError(const LowestError&) = delete;
  LowestError& operator=(const LowestError&) = delete;
  ~LowestError() { release_exception(error_); }

  void record(std::size_t index, std::exception_ptr error) {
    std::scoped_lock guard(lock_);
    if (index < index_.load(std::memory_order_relaxed)) {
      index_.store(index, std::memory_order_relaxed);
      error_ = std::move(error);
    }
  }
  // Lets a chunk skip items past a failure already found.
  std::size_t index() const { return index_.load(std::memory_order_relaxed); }
  std::exception_ptr error() const {
    std::scoped_lock guard(lock_);
    return error_;
  }
  // Moves the failure out, for the thread that rethrows it. A worker may
  // drop the last reference to the job after the caller has caught the
  // exception; if the job still held it, that worker would free the
  // exception object while the caller's handler may still read it. The
  // reference counts that order the two live in libstdc++, which
  // ThreadSanitizer cannot see, so it reported a race (CI, stop 10).
  std::exception_ptr take() {
    std::scoped_lock guard(lock_);
    return std::exchange(error_, nullptr);
  }

 private:
  mutable threading::Lock lock_;
  std::atomic<std::size_t> index_{kNone};
  std::exception_ptr error_;
};

// std::vector<bool> packs eight results in a byte: chunks filled by
// different threads would write the same bytes. A bool result gets a byte.
struct BoolSlot {
  bool value = false;
  BoolSlot& operator=(bool b) {
    value = b;
    return *this;
  }
};

// One slot per item: the value itself when it can be default-constructed,
// else an optional.
template <class Out>
using ResultSlot = std::conditional_t<
    std::is_same_v<Out, bool>, BoolSlot,
    std::conditional_t<std::is_default_constructible_v<Out>, Out, std::optional<Out>>>;

template <class Out>
std::vector<Out> take_results(std::vector<ResultSlot<Out>>& slots) {
  if constexpr (std::is_same_v<Out, bool>) {
    std::vector<bool> out(slots.size());
    for (std::size_t i = 0; i < slots.size(); ++i) out[i] = slots[i].value;
    return out;
  } else if constexpr (std::is_default_constructible_v<Out>) {
    return std::move(slots);
  } else {
    std::vector<Out> out;
    out.reserve(slots.size());
    for (auto& s : slots) out.push_back(std::move(*s));
    return out;
  }
}

// f(item) for map, f(std::get<I>(item)...) for starmap: every pool's call
// of f.
template <bool kPlain, class F, class Item>
decltype(auto) pool_call(F& f, Item&& item) {
  if constexpr (kPlain) {
    return std::invoke(f, std::forward<Item>(item));
  } else {
    return std::apply(f, std::forward<Item>(item));
  }
}

// apply's callable: f(args...) with a void result made a value.
template <class F>
struct ApplyCall {
  F f;
  template <class Tuple>
  auto operator()(Tuple& args) {
    if constexpr (std::is_void_v<decltype(std::apply(f, args))>) {
      std::apply(f, args);
      return std::monostate{};
    } else {
      return std::apply(f, args);
    }
  }
};

// The results of one map call and the chunks still to finish.
template <class Out>
struct MapJob {
  using value_type = Out;

  explicit MapJob(std::size_t items, std::size_t chunks) : slots(items), remaining(chunks) {
    if (chunks == 0) done.set();
  }
  // Returns true for the caller that finished the last chunk.
  bool finish_chunk() {
    if (remaining.fetch_sub(1, std::memory_order_acq_rel) == 1) {
      done.set();
      return true;
    }
    return false;
  }

  std::vector<ResultSlot<Out>> slots;
  std::atomic<std::size_t> remaining;
  LowestError error;
  threading::Event done;
};

}  // namespace concur::detail
