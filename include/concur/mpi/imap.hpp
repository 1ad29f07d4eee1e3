// mpi::Pool::imap and imap_unordered: a lazy input range over f(item).
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <exception>
#include <iterator>
#include <algorithm>
#include <map>
#include <optional>
#include <stdexcept>
#include <memory>
#include <ranges>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "concur/detail/pull_iterator.hpp"

namespace concur::mpi::detail {

// The job of an imap: its reader (the thread that iterates) queues chunks
// of input as the window allows; results come back by chunk. Every member
// runs with the engine's state lock held.
template <class Out>
class IMapJob final : public Job {
 public:
  struct Chunk {
    std::uint64_t first = 0;
    std::deque<Out> outs;  // a deque: bool results stay addressable
    std::vector<std::exception_ptr> errors;
    bool done = false;
  };

  IMapJob(std::uint64_t key, std::string function) : Job(key, std::move(function)) {}

  Next next_chunk(Job::Chunk& out) override {
    if (failure || abandoned) return Next::kDone;
    if (!queued.empty()) {
      out = std::move(queued.front());
      queued.pop_front();
      return Next::kChunk;
    }
    return input_done ? Next::kDone : Next::kLater;
  }
  void on_reply(std::uint64_t first, const std::string& bytes) override {
    --unanswered;
    auto it = chunks.find(first);
    if (it == chunks.end()) return;  // abandoned
    Chunk& chunk = *it->second;
    auto report = concur::detail::decode_from_string<concur::detail::IMapReport>(bytes);
    auto outs = concur::detail::decode_items<Out>(report.results);
    for (std::size_t k = 0; k < outs.size() && k < chunk.outs.size(); ++k) chunk.outs[k] = std::move(outs[k]);
    for (auto& [index, type, message] : report.errors) {
      if (index < chunk.first || index >= chunk.first + chunk.outs.size()) continue;
      chunk.errors[static_cast<std::size_t>(index - chunk.first)] = std::make_exception_ptr(
          multiprocessing::RemoteError(std::move(type), std::move(message), static_cast<std::size_t>(index)));
    }
    chunk.done = true;
    finished.push_back(first);
  }
  void on_failure(std::exception_ptr error) override {
    if (!failure) failure = std::move(error);
  }
  void on_lost(std::uint64_t first, std::exception_ptr error) override {
    --unanswered;
    auto it = chunks.find(first);
    if (it == chunks.end()) return;
    for (auto& e : it->second->errors) e = error;
    it->second->done = true;
    finished.push_back(first);
  }
  void on_finish() override {}

  // Chunks queued or sent whose reply has not come: the window's fill.
  std::size_t unanswered = 0;
  std::deque<Job::Chunk> queued;  // read, not yet sent
  std::map<std::uint64_t, std::unique_ptr<Chunk>> chunks;  // by first index, not yet handed out
  std::deque<std::uint64_t> order;     // first indexes in input order
  std::deque<std::uint64_t> finished;  // first indexes as they finished
  std::exception_ptr failure;
  bool input_done = false;
  bool abandoned = false;
};

}  // namespace concur::mpi::detail

namespace concur::mpi {

/// The lazy result of mpi::Pool::imap / imap_unordered: an input range over
/// f(item). Python: the iterator that Pool.imap returns.
/// Reads the input a chunk at a time as the window allows (two chunks per
/// serving rank without a reply), and hands results out in input order
/// (kOrdered) or as they arrive. Dereferencing at an item whose f threw
/// rethrows RemoteError; iteration may go on past it. Other calls on the
/// pool may run meanwhile. One thread iterates a given range; the pool must
/// outlive it. Kind is the task type the serving ranks look up, Fn the
/// function's type, V the view of the input.
template <bool kOrdered, class Kind, class Fn, class V>
class IMapRange {
  using Item = std::ranges::range_value_t<V>;
  using Out = typename Kind::Out;
  using Job = detail::IMapJob<Out>;
  using Chunk = typename Job::Chunk;

 public:
  /// An input iterator: `*it` is the current result (or rethrows its error),
  /// `++it` waits for the next; it equals end() after the last.
  using iterator = concur::detail::PullIterator<IMapRange, Out>;

  /// Made by mpi::Pool::imap, not by users.
  IMapRange(detail::Engine& engine, std::string function, V items, std::size_t chunksize)
      : engine_(engine),
        job_(std::make_shared<Job>(Kind::key, std::move(function))),
        items_(std::move(items)),
        chunksize_(chunksize),
        window_(2 * static_cast<std::size_t>(std::max(1, engine.workers()))) {}
  IMapRange(const IMapRange&) = delete;
  IMapRange& operator=(const IMapRange&) = delete;
  IMapRange(IMapRange&&) = delete;
  /// Chunks not yet sent are dropped; replies still due are read and dropped
  /// by the pool. Does not block.
  ~IMapRange() {
    if (started_) {
      engine_.locked([this] {
        job_->abandoned = true;
        job_->chunks.clear();
      });
      engine_.wake();
    }
  }

  /// Sends the first chunks on the first call and waits for the first
  /// result; a later call returns an iterator at the current position.
  iterator begin() {
    if (!started_) {
      input_ = std::ranges::begin(items_);
      engine_.submit(job_);
      started_ = true;
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
    if (++position_ < current_->outs.size()) return;
    advance_chunk();
  }

  // Reads chunks of input until the window is full or the input ends, and
  // queues them for the pool's thread.
  void top_up() {
    std::size_t room = engine_.locked([this] {
      return job_->unanswered < window_ && !job_->input_done ? window_ - job_->unanswered : 0;
    });
    if (room == 0) return;
    std::vector<std::pair<std::unique_ptr<Chunk>, typename detail::Job::Chunk>> read;
    bool input_done = false;
    std::vector<Item> items;
    for (; room > 0; --room) {
      items.clear();
      try {
        while (items.size() < chunksize_ && input_ != std::ranges::end(items_)) {
          items.push_back(*input_);
          ++input_;
        }
      } catch (...) {
        // The input itself threw: no more of it is read, and the chunk it
        // failed in is dropped, as Python drops the task it was building.
        input_error_ = std::current_exception();
        input_done = true;
        break;
      }
      if (items.empty()) {
        input_done = true;
        break;
      }
      auto chunk = std::make_unique<Chunk>();
      chunk->first = next_index_;
      chunk->outs.resize(items.size());
      chunk->errors.resize(items.size());
      read.emplace_back(std::move(chunk),
                        typename detail::Job::Chunk{next_index_, concur::detail::encode_items(items)});
      next_index_ += items.size();
    }
    engine_.locked([&] {
      for (auto& [chunk, wire] : read) {
        job_->order.push_back(chunk->first);
        job_->chunks.emplace(chunk->first, std::move(chunk));
        job_->queued.push_back(std::move(wire));
        ++job_->unanswered;
      }
      if (input_done) job_->input_done = true;
    });
    engine_.wake();
  }

  void advance_chunk() {
    current_ = nullptr;
    position_ = 0;
    for (;;) {
      top_up();
      std::exception_ptr failure;
      bool over = false;
      engine_.wait([&] {
        Job& job = *job_;
        std::optional<std::uint64_t> ready;
        if constexpr (kOrdered) {
          if (!job.order.empty() && job.chunks[job.order.front()]->done) ready = job.order.front();
        } else {
          if (!job.finished.empty()) ready = job.finished.front();
        }
        if (ready) {
          current_ = std::move(job.chunks[*ready]);
          job.chunks.erase(*ready);
          std::erase(job.order, *ready);
          std::erase(job.finished, *ready);
          return true;
        }
        if (job.failure) {
          failure = job.failure;
          return true;
        }
        if (job.input_done && job.order.empty()) return over = true;
        return !job.input_done && job.unanswered < window_;  // room to read more
      });
      if (failure) std::rethrow_exception(failure);
      if (over) {
        // An input that failed: its exception comes after every result
        // before it, and ends the iteration (Python's order).
        if (input_error_) std::rethrow_exception(std::exchange(input_error_, nullptr));
        return;
      }
      if (current_ != nullptr && !current_->outs.empty()) return;
      current_ = nullptr;
    }
  }

  detail::Engine& engine_;
  std::shared_ptr<Job> job_;
  V items_;
  std::ranges::iterator_t<V> input_{};
  std::size_t chunksize_;
  std::size_t window_;
  bool started_ = false;
  std::uint64_t next_index_ = 0;
  std::exception_ptr input_error_;  // what the input threw, until handed to the reader
  std::unique_ptr<Chunk> current_;
  std::size_t position_ = 0;
};

template <bool kOrdered, class F, class R>
auto Pool::lazy(F&& f, R&& items, std::size_t chunksize, const char* call) {
  using Fn = std::decay_t<F>;
  using V = std::views::all_t<R>;
  using Item = std::ranges::range_value_t<V>;
  static_assert(detail::kSendable<Fn>,
                "mpi::Pool sends f to other machines by identity only: pass a function, a "
                "captureless lambda or a default-constructible function object");
  require_running(call);
  if (chunksize == 0) throw std::invalid_argument(std::string(call) + ": chunksize must be >= 1");
  using Kind = detail::TaskKind<true, Fn, Item>;
  return IMapRange<kOrdered, Kind, Fn, V>(*engine_, detail::encode_function<Fn>(f),
                                          std::views::all(std::forward<R>(items)), chunksize);
}

}  // namespace concur::mpi
