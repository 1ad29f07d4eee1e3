#pragma once

#include <cstddef>
#include <deque>
#include <exception>
#include <iterator>
#include <memory>
#include <mutex>
#include <ranges>
#include <type_traits>
#include <utility>
#include <vector>

#include "concur/detail/annotate.hpp"
#include "concur/detail/map_job.hpp"
#include "concur/detail/pull_iterator.hpp"
#include "concur/detail/task_sink.hpp"
#include "concur/threading/event.hpp"
#include "concur/threading/lock.hpp"
#include "concur/threading/semaphore.hpp"

namespace concur::multiprocessing {

/// The lazy result of imap / imap_unordered: an input range over f(item).
/// - Python: the iterator that Pool.imap returns.
/// - Memory: at most `window` chunks are in flight (about 2 x workers x
///   chunksize items), whatever the length of the input, which is itself read
///   lazily, one chunk at a time, by the thread that iterates.
/// - Early stop: destroying the range before the end stops the work: chunks
///   not yet started are skipped.
/// - Errors: dereferencing the iterator at an item whose f threw rethrows that
///   exception; iteration may go on past it.
/// - Thread-safety: one thread iterates a given range.
/// - Blocks: begin() and ++ until the next result is in.
///
/// ThreadPool::imap and imap_unordered make it: kOrdered says whether results
/// come in input order, F is the callable and V the view of the input.
template <bool kOrdered, class F, class V>
class IMapRange {
  using Item = std::ranges::range_value_t<V>;
  using Out = std::decay_t<std::invoke_result_t<F&, Item&>>;

  struct Chunk {
    std::vector<Item> inputs;
    std::vector<detail::ResultSlot<Out>> outputs;
    std::vector<std::pair<std::size_t, std::exception_ptr>> errors;  // by position, ascending
    threading::Event done;

    Chunk() = default;
    Chunk(const Chunk&) = delete;
    Chunk& operator=(const Chunk&) = delete;
    // The last reference may be a worker's, after the caller caught an error.
    ~Chunk() {
      for (auto& error : errors) detail::release_exception(error.second);
    }
  };

  // What the workers touch: shared, so it outlives an abandoned range.
  struct Shared {
    explicit Shared(F fn) : f(std::move(fn)) {}
    F f;
    std::atomic<bool> cancelled{false};
    threading::Lock lock;  // guards finished (unordered)
    std::deque<std::shared_ptr<Chunk>> finished;
    threading::Semaphore finished_count{0};  // unordered: chunks in `finished`
  };

 public:
  /// An input iterator: `*it` is the current result (or rethrows its error),
  /// `++it` waits for the next; it equals end() after the last.
  using iterator = detail::PullIterator<IMapRange, Out>;

  /// Made by ThreadPool::imap, not by users: reads `items` a chunk at a time
  /// and queues at most `window` chunks on `sink`.
  IMapRange(F f, V items, std::size_t chunksize, std::size_t window,
            std::shared_ptr<detail::TaskSink> sink)
      : shared_(std::make_shared<Shared>(std::move(f))),
        items_(std::move(items)),
        chunksize_(chunksize),
        window_(window < 2 ? 2 : window),
        sink_(std::move(sink)) {
    sink_->producer_started();
  }
  IMapRange(const IMapRange&) = delete;
  IMapRange& operator=(const IMapRange&) = delete;
  IMapRange(IMapRange&& other) = delete;
  ~IMapRange() {
    shared_->cancelled.store(true, std::memory_order_relaxed);
    release_producer();
  }

  /// Starts the work on the first call and waits for the first result; a
  /// later call returns an iterator at the current position (an input range
  /// is iterated once).
  iterator begin() {
    if (!started_) {
      started_ = true;
      input_ = std::ranges::begin(items_);
      advance_chunk();
    }
    return iterator(this);
  }
  /// The sentinel the iterator equals after the last result.
  std::default_sentinel_t end() const { return std::default_sentinel; }

 private:
  friend iterator;
  bool at_end() const { return current_ == nullptr; }

  Out& current() {
    auto& errors = current_->errors;
    while (next_error_ < errors.size() && errors[next_error_].first < position_) ++next_error_;
    if (next_error_ < errors.size() && errors[next_error_].first == position_) {
      std::rethrow_exception(errors[next_error_].second);
    }
    if constexpr (std::is_same_v<Out, bool>) {
      return current_->outputs[position_].value;
    } else if constexpr (std::is_default_constructible_v<Out>) {
      return current_->outputs[position_];
    } else {
      return *current_->outputs[position_];
    }
  }

  void advance() {
    if (++position_ < current_->inputs.size()) return;
    advance_chunk();
  }

  // Tops up the chunks in flight from the input, then waits for the next
  // chunk to hand out (in order, or whichever finished first).
  void advance_chunk() {
    current_ = nullptr;
    position_ = 0;
    next_error_ = 0;
    for (;;) {
      refill();
      if (in_flight_ == 0) {  // input exhausted and all handed out
        // An input that failed: its exception comes after every result
        // before it, and ends the iteration (Python's order).
        if (input_error_) std::rethrow_exception(std::exchange(input_error_, nullptr));
        return;
      }
      std::shared_ptr<Chunk> next;
      if constexpr (kOrdered) {
        next = std::move(pending_.front());
        pending_.pop_front();
        next->done.wait();
      } else {
        shared_->finished_count.acquire();
        std::scoped_lock guard(shared_->lock);
        next = std::move(shared_->finished.front());
        shared_->finished.pop_front();
      }
      --in_flight_;
      if (!next->inputs.empty()) {
        current_ = std::move(next);
        refill();
        return;
      }
    }
  }

  void refill() {
    while (!input_done_ && in_flight_ < window_) {
      auto chunk = std::make_shared<Chunk>();
      chunk->inputs.reserve(chunksize_);
      try {
        for (std::size_t i = 0; i < chunksize_ && input_ != std::ranges::end(items_); ++i, ++input_) {
          chunk->inputs.push_back(*input_);
        }
      } catch (...) {
        // The input itself threw: no more of it is read, and the chunk it
        // failed in is dropped, as Python drops the task it was building.
        input_error_ = std::current_exception();
        input_done_ = true;
        release_producer();
        break;
      }
      if (input_ == std::ranges::end(items_)) {
        input_done_ = true;
        release_producer();
      }
      if (chunk->inputs.empty()) break;
      chunk->outputs.resize(chunk->inputs.size());
      submit(std::move(chunk));
    }
  }

  void submit(std::shared_ptr<Chunk> chunk) {
    if constexpr (kOrdered) pending_.push_back(chunk);
    ++in_flight_;
    auto shared = shared_;
    auto run = [shared, chunk] {
      for (std::size_t i = 0; i < chunk->inputs.size(); ++i) {
        if (shared->cancelled.load(std::memory_order_relaxed)) break;
        try {
          chunk->outputs[i] = std::invoke(shared->f, chunk->inputs[i]);
        } catch (...) {
          chunk->errors.emplace_back(i, std::current_exception());
        }
      }
      finish(*shared, chunk);
    };
    auto cancel = [shared, chunk](std::exception_ptr e) {
      chunk->errors.clear();
      for (std::size_t i = 0; i < chunk->inputs.size(); ++i) chunk->errors.emplace_back(i, e);
      finish(*shared, chunk);
    };
    sink_->submit(detail::make_task(std::move(run), std::move(cancel)), true);
  }

  static void finish(Shared& shared, const std::shared_ptr<Chunk>& chunk) {
    if constexpr (kOrdered) {
      chunk->done.set();
    } else {
      {
        std::scoped_lock guard(shared.lock);
        shared.finished.push_back(chunk);
      }
      shared.finished_count.release();
    }
  }

  void release_producer() {
    if (!producer_released_) {
      producer_released_ = true;
      sink_->producer_done();
    }
  }

  std::shared_ptr<Shared> shared_;
  V items_;
  std::ranges::iterator_t<V> input_{};
  std::size_t chunksize_;
  std::size_t window_;
  std::shared_ptr<detail::TaskSink> sink_;
  bool started_ = false;
  bool input_done_ = false;
  std::exception_ptr input_error_;  // what the input threw, until handed to the reader
  bool producer_released_ = false;
  std::size_t in_flight_ = 0;
  std::deque<std::shared_ptr<Chunk>> pending_;  // ordered: in input order
  std::shared_ptr<Chunk> current_;
  std::size_t position_ = 0;
  std::size_t next_error_ = 0;
};

}  // namespace concur::multiprocessing
