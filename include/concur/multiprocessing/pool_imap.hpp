#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <deque>
#include <exception>
#include <iterator>
#include <memory>
#include <optional>
#include <ranges>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "concur/detail/pool_engine.hpp"
#include "concur/detail/pull_iterator.hpp"
#include "concur/detail/shared_block.hpp"
#include "concur/errors.hpp"
#include "concur/multiprocessing/transfer.hpp"

namespace concur::detail {

// A task sent to an imap worker: which items (by input index) and the items.
struct IMapTask {
  std::uint64_t chunk = 0;
  std::vector<std::uint64_t> indices;
  std::string items;
  template <class Archive>
  void serialize(Archive& archive) {
    archive(chunk, indices, items);
  }
};
// What the worker sends back: one result per index (a default value where
// f threw) and the errors.
struct IMapReport {
  std::uint64_t chunk = 0;
  std::vector<std::tuple<std::uint64_t, std::string, std::string>> errors;
  std::string results;
  template <class Archive>
  void serialize(Archive& archive) {
    archive(chunk, errors, results);
  }
};

std::pair<std::string, std::string> exception_parts(const std::exception_ptr& e);

template <class T>
std::string encode_to_string(const T& value) {
  const std::vector<std::byte> bytes = encode(value);
  return std::string(reinterpret_cast<const char*>(bytes.data()), bytes.size());
}
template <class T>
T decode_from_string(const std::string& text) {
  return decode<T>(std::span<const std::byte>(reinterpret_cast<const std::byte*>(text.data()),
                                              text.size()));
}

// Items sent as their bytes (trivially transferable, not bool).
template <class T>
inline constexpr bool kItemsAsBytes = multiprocessing::trivially_transferable<T> && !std::is_same_v<T, bool>;

// A sequence of items or results in a frame: the bytes themselves when the
// type is trivially copyable, cereal otherwise.
template <class T>
std::string encode_items(const std::vector<T>& values) {
  if constexpr (kItemsAsBytes<T>) {
    return std::string(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(T));
  } else {
    return encode_to_string(values);
  }
}
// How many items of T the bytes `text` hold; FrameError unless whole.
template <class T>
std::size_t whole_items(const std::string& text) {
  if (text.size() % sizeof(T) != 0) {
    throw FrameError("Pool: a frame holds " + std::to_string(text.size()) +
                     " bytes, not a whole number of items of " + std::to_string(sizeof(T)));
  }
  return text.size() / sizeof(T);
}

template <class T>
std::vector<T> decode_items(const std::string& text) {
  if constexpr (kItemsAsBytes<T>) {
    std::vector<T> values(whole_items<T>(text));
    if (!text.empty()) std::memcpy(static_cast<void*>(values.data()), text.data(), text.size());
    return values;
  } else {
    return decode_from_string<std::vector<T>>(text);
  }
}

}  // namespace concur::detail

namespace concur::multiprocessing {

/// The lazy result of Pool::imap / imap_unordered: an input range over
/// f(item).
/// - Python: the iterator that Pool.imap returns.
/// - The workers are forked when imap is called (they see the program's state
///   as it was then); the items, read lazily from the input by the thread that
///   iterates, are sent to them, a chunk at a time, and the results come back.
/// - Memory: at most 2 x processes chunks are in flight, whatever the length of
///   the input.
/// - Early stop: destroying the range before its end kills its workers.
/// - Errors: dereferencing the iterator at an item whose f threw rethrows a
///   RemoteError; at an item whose worker died, WorkerLostError; iteration
///   may go on past it: the other items of a dead worker's chunk are run again.
/// - Thread-safety: one thread iterates a given range.
/// - Blocks: begin() and ++ until the next result is in.
///
/// kOrdered says whether results come in input order, F is the callable and
/// V the view of the input; items and results are transferable types.
template <bool kOrdered, class F, class V>
class PoolIMapRange {
  using Item = std::ranges::range_value_t<V>;
  using Out = std::decay_t<std::invoke_result_t<F&, Item&>>;
  static_assert(std::is_default_constructible_v<Out>,
                "a Pool's results must be default-constructible: they cross a process boundary");

  struct Chunk {
    std::uint64_t id = 0;
    std::uint64_t first = 0;
    std::vector<Item> items;
    std::deque<Out> outs;  // a deque: bool results stay addressable
    std::vector<std::exception_ptr> errors;
    std::size_t pending = 0;
  };

  struct Task {
    std::uint64_t chunk;
    std::vector<std::uint64_t> indices;
  };

  class Work final : public detail::PoolWork {
   public:
    Work(F f, int workers) : f_(std::move(f)), in_flight_(static_cast<std::size_t>(workers)) {}

    // --- in the worker ------------------------------------------------------
    void run_worker(detail::WorkerLink& link) override {
      int tasks = 0;
      while (auto frame = link.recv()) {
        auto task = detail::decode<detail::IMapTask>(*frame);
        auto items = detail::decode_items<Item>(task.items);
        detail::IMapReport report;
        report.chunk = task.chunk;
        std::vector<Out> outs(items.size());
        for (std::size_t k = 0; k < items.size() && k < task.indices.size(); ++k) {
          link.begin_item(task.indices[k]);
          try {
            outs[k] = std::invoke(f_, items[k]);
          } catch (...) {
            auto [type, message] = detail::exception_parts(std::current_exception());
            report.errors.emplace_back(task.indices[k], std::move(type), std::move(message));
          }
        }
        report.results = detail::encode_items(outs);
        link.send(detail::encode(report));
        link.end_item();
        if (link.max_tasks() > 0 && ++tasks >= link.max_tasks()) return;
      }
    }

    // --- in the caller ------------------------------------------------------
    void on_frame(int position, std::span<const std::byte> frame) override {
      auto report = detail::decode<detail::IMapReport>(frame);
      auto& slot = in_flight_[static_cast<std::size_t>(position)];
      if (!slot || slot->chunk != report.chunk) {
        throw FrameError("Pool.imap(): a worker reported a chunk it was not given");
      }
      Chunk* chunk = find(report.chunk);
      auto outs = detail::decode_items<Out>(report.results);
      const auto& indices = slot->indices;
      for (std::size_t k = 0; k < indices.size() && chunk != nullptr; ++k) {
        const std::size_t p = static_cast<std::size_t>(indices[k] - chunk->first);
        if (k < outs.size()) chunk->outs[p] = std::move(outs[k]);
        --chunk->pending;
      }
      for (auto& [index, type, message] : report.errors) {
        if (chunk == nullptr || index < chunk->first || index >= chunk->first + chunk->items.size()) {
          continue;
        }
        chunk->errors[static_cast<std::size_t>(index - chunk->first)] = std::make_exception_ptr(
            RemoteError(std::move(type), std::move(message), static_cast<std::size_t>(index)));
      }
      slot.reset();
    }

    void on_worker_end(int position, std::uint64_t item, std::exception_ptr failure) override {
      auto& slot = in_flight_[static_cast<std::size_t>(position)];
      if (!slot) return;
      Task task = std::move(*slot);
      slot.reset();
      Chunk* chunk = find(task.chunk);
      if (chunk == nullptr) return;
      Task again{task.chunk, {}};
      for (std::uint64_t index : task.indices) {
        if (failure != nullptr && index == item) {
          chunk->errors[static_cast<std::size_t>(index - chunk->first)] = failure;
          --chunk->pending;
        } else {
          again.indices.push_back(index);  // run again by another worker
        }
      }
      if (!again.indices.empty()) queue_.push_front(std::move(again));
    }

    void fail_remaining(int pid, int exitcode) override {
      for (auto& task : queue_) {
        Chunk* chunk = find(task.chunk);
        if (chunk == nullptr) continue;
        for (std::uint64_t index : task.indices) {
          chunk->errors[static_cast<std::size_t>(index - chunk->first)] = std::make_exception_ptr(
              WorkerLostError(static_cast<std::size_t>(index), pid, exitcode));
          --chunk->pending;
        }
      }
      queue_.clear();
    }

    bool wants_worker() override { return !queue_.empty() || !input_done_; }
    bool complete() override {
      if (!input_done_ || !queue_.empty()) return false;
      for (const auto& slot : in_flight_) {
        if (slot) return false;
      }
      return true;
    }

    // Sends queued tasks to idle workers.
    void dispatch(detail::PoolRunner& runner) {
      for (int position : runner.live_positions()) {
        if (queue_.empty()) return;
        auto& slot = in_flight_[static_cast<std::size_t>(position)];
        if (slot) continue;
        Task task = std::move(queue_.front());
        queue_.pop_front();
        Chunk* chunk = find(task.chunk);
        if (chunk == nullptr) continue;
        std::vector<Item> items;
        items.reserve(task.indices.size());
        for (std::uint64_t index : task.indices) {
          items.push_back(chunk->items[static_cast<std::size_t>(index - chunk->first)]);
        }
        detail::IMapTask frame{task.chunk, task.indices, {}};
        frame.items = detail::encode_items(items);
        slot = task;
        if (!runner.send(position, detail::encode(frame))) {
          // Gone: its end is handled by the runner, which puts the task back.
        }
      }
    }

    F f_;
    std::deque<std::shared_ptr<Chunk>> chunks_;  // in flight, in input order
    std::deque<Task> queue_;
    std::vector<std::optional<Task>> in_flight_;  // by worker position
    bool input_done_ = false;

   private:
    Chunk* find(std::uint64_t id) {
      for (auto& c : chunks_) {
        if (c->id == id) return c.get();
      }
      return nullptr;
    }
  };

 public:
  /// An input iterator: `*it` is the current result (or rethrows its error),
  /// `++it` waits for the next; it equals end() after the last.
  using iterator = detail::PullIterator<PoolIMapRange, Out>;

  /// Made by Pool::imap, not by users: forks the workers now.
  PoolIMapRange(F f, V items, std::size_t chunksize,
                std::shared_ptr<const detail::PoolSettings> settings)
      : items_(std::move(items)), chunksize_(chunksize) {
    const int workers = settings->processes;
    window_ = static_cast<std::size_t>(workers) * 2;
    work_ = std::make_unique<Work>(std::move(f), workers);
    slots_memory_ = detail::map_shared(sizeof(detail::PoolSlot) * static_cast<std::size_t>(workers));
    auto* slots = ::new (slots_memory_.get()) detail::PoolSlot[static_cast<std::size_t>(workers)];
    runner_ = std::make_unique<detail::PoolRunner>(std::move(settings), *work_, workers, slots);
    runner_->start_workers();  // now: the workers see the state of the call
  }
  PoolIMapRange(const PoolIMapRange&) = delete;
  PoolIMapRange& operator=(const PoolIMapRange&) = delete;
  PoolIMapRange(PoolIMapRange&&) = delete;
  ~PoolIMapRange() {
    try {
      if (!work_->complete()) {
        runner_->kill_all();  // stopped early: stop the work
      } else {
        finish_workers();
      }
    } catch (...) {
      runner_->kill_all();
    }
  }

  /// Sends the first chunks on the first call and waits for the first
  /// result; a later call returns an iterator at the current position (an
  /// input range is iterated once).
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
    if (auto& e = current_->errors[position_]) std::rethrow_exception(e);
    return current_->outs[position_];
  }

  void advance() {
    if (++position_ < current_->items.size()) return;
    advance_chunk();
  }

  void advance_chunk() {
    current_ = nullptr;
    position_ = 0;
    for (;;) {
      refill();
      work_->dispatch(*runner_);
      auto& chunks = work_->chunks_;
      if (chunks.empty()) {
        finish_workers();
        // An input that failed: its exception comes after every result
        // before it, and ends the iteration (Python's order).
        if (input_error_) std::rethrow_exception(std::exchange(input_error_, nullptr));
        return;
      }
      if constexpr (kOrdered) {
        if (chunks.front()->pending == 0) {
          current_ = std::move(chunks.front());
          chunks.pop_front();
        }
      } else {
        for (auto it = chunks.begin(); it != chunks.end(); ++it) {
          if ((*it)->pending == 0) {
            current_ = std::move(*it);
            chunks.erase(it);
            break;
          }
        }
      }
      if (current_ != nullptr) {
        refill();
        work_->dispatch(*runner_);
        return;
      }
      runner_->start_workers();
      if (runner_->live_count() == 0 && !work_->wants_worker()) {
        work_->fail_remaining(0, 0);
        continue;
      }
      runner_->step(detail::Deadline::never());
    }
  }

  void refill() {
    while (!work_->input_done_ && work_->chunks_.size() < window_) {
      auto chunk = std::make_shared<Chunk>();
      chunk->id = next_id_++;
      chunk->first = next_index_;
      chunk->items.reserve(chunksize_);
      try {
        for (std::size_t i = 0; i < chunksize_ && input_ != std::ranges::end(items_); ++i, ++input_) {
          chunk->items.push_back(*input_);
        }
      } catch (...) {
        // The input itself threw: no more of it is read, and the chunk it
        // failed in is dropped, as Python drops the task it was building.
        input_error_ = std::current_exception();
        work_->input_done_ = true;
        break;
      }
      if (input_ == std::ranges::end(items_)) work_->input_done_ = true;
      if (chunk->items.empty()) break;
      const std::size_t size = chunk->items.size();
      next_index_ += size;
      chunk->outs.resize(size);
      chunk->errors.resize(size);
      chunk->pending = size;
      Task task{chunk->id, {}};
      for (std::size_t k = 0; k < size; ++k) task.indices.push_back(chunk->first + k);
      work_->queue_.push_back(std::move(task));
      work_->chunks_.push_back(std::move(chunk));
    }
  }

  // Every result is in: tell the workers there is no more, and reap them.
  void finish_workers() {
    if (finished_) return;
    finished_ = true;
    runner_->close_all();
    while (runner_->live_count() != 0) runner_->step(detail::Deadline::never());
  }

  V items_;
  std::ranges::iterator_t<V> input_{};
  std::size_t chunksize_;
  std::size_t window_ = 2;
  std::unique_ptr<Work> work_;
  std::shared_ptr<void> slots_memory_;
  std::unique_ptr<detail::PoolRunner> runner_;
  bool started_ = false;
  bool finished_ = false;
  std::exception_ptr input_error_;  // what the input threw, until handed to the reader
  std::uint64_t next_id_ = 0;
  std::uint64_t next_index_ = 0;
  std::shared_ptr<Chunk> current_;
  std::size_t position_ = 0;
};

}  // namespace concur::multiprocessing
