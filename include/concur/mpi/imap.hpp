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

namespace concur::mpi {

/// The lazy result of mpi::Pool::imap / imap_unordered: an input range over
/// f(item). Python: the iterator that Pool.imap returns.
/// Reads the input a chunk at a time, keeps at most 2 chunks per serving
/// rank in flight, and hands results out in input order (kOrdered) or as
/// they arrive. Dereferencing at an item whose f threw rethrows RemoteError;
/// iteration may go on past it. One thread iterates a given range; the pool
/// must outlive it. Kind is the task type the serving ranks look up, Fn the
/// function's type, V the view of the input.
template <bool kOrdered, class Kind, class Fn, class V>
class IMapRange {
  using Item = std::ranges::range_value_t<V>;
  using Out = typename Kind::Out;

  struct Chunk {
    std::uint64_t first = 0;
    std::deque<Out> outs;  // a deque: bool results stay addressable
    std::vector<std::exception_ptr> errors;
    bool done = false;
  };

 public:
  /// An input iterator: `*it` is the current result (or rethrows its error),
  /// `++it` waits for the next; it equals end() after the last.
  using iterator = concur::detail::PullIterator<IMapRange, Out>;

  /// Made by mpi::Pool::imap, not by users.
  IMapRange(detail::Engine& engine, std::string function, V items, std::size_t chunksize)
      : engine_(engine), function_(std::move(function)), items_(std::move(items)), chunksize_(chunksize) {
    const int workers = engine_.workers();
    in_flight_.assign(static_cast<std::size_t>(workers) + 1, 0);
  }
  IMapRange(const IMapRange&) = delete;
  IMapRange& operator=(const IMapRange&) = delete;
  IMapRange(IMapRange&&) = delete;
  /// Reads and drops the replies still due, so the pool's next call starts
  /// clean; gives up silently after the pool's timeout.
  ~IMapRange() {
    // Replies still due are read and dropped, so the next call starts clean.
    try {
      while (outstanding_ > 0) {
        engine_.next_reply();
        --outstanding_;
      }
    } catch (...) {
      // No reply within the engine's timeout: nothing more can be done.
    }
  }

  /// Sends the first chunks on the first call and waits for the first
  /// result; a later call returns an iterator at the current position.
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
    if (++position_ < current_->outs.size()) return;
    advance_chunk();
  }

  // Reads the next chunk of input; false at its end.
  bool read_chunk(std::vector<Item>& out) {
    out.clear();
    while (out.size() < chunksize_ && input_ != std::ranges::end(items_)) {
      out.push_back(*input_);
      ++input_;
    }
    return !out.empty();
  }

  void store(std::uint64_t id, const std::string& bytes) {
    auto it = chunks_.find(id);
    if (it == chunks_.end()) return;
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
    finished_.push_back(id);
  }

  // Sends chunks to every rank with fewer than two in flight.
  void fill() {
    const int workers = engine_.workers();
    std::vector<Item> items;
    for (int round = 0; round < 2; ++round) {
      for (int w = 1; w <= workers; ++w) {
        if (in_flight_[static_cast<std::size_t>(w)] >= 2 || input_done_) continue;
        if (!read_chunk(items)) {
          input_done_ = true;
          return;
        }
        const std::uint64_t id = next_id_++;
        auto chunk = std::make_unique<Chunk>();
        chunk->first = next_index_;
        chunk->outs.resize(items.size());
        chunk->errors.resize(items.size());
        next_index_ += items.size();
        engine_.send_task(w, Kind::key, function_, id, chunk->first, concur::detail::encode_items(items));
        ++in_flight_[static_cast<std::size_t>(w)];
        ++outstanding_;
        chunks_.emplace(id, std::move(chunk));
        order_.push_back(id);
      }
    }
  }

  void advance_chunk() {
    current_ = nullptr;
    position_ = 0;
    for (;;) {
      if (engine_.workers() == 0) {
        std::vector<Item> items;
        if (!read_chunk(items)) return;
        const std::uint64_t id = next_id_++;
        auto chunk = std::make_unique<Chunk>();
        chunk->first = next_index_;
        chunk->outs.resize(items.size());
        chunk->errors.resize(items.size());
        next_index_ += items.size();
        chunks_.emplace(id, std::move(chunk));
        order_.push_back(id);
        store(id, Kind::run(function_, concur::detail::encode_items(items), chunks_[id]->first));
      } else {
        fill();
      }
      // A chunk ready to hand out?
      std::optional<std::uint64_t> ready;
      if constexpr (kOrdered) {
        if (!order_.empty() && chunks_[order_.front()]->done) ready = order_.front();
      } else {
        if (!finished_.empty()) ready = finished_.front();
      }
      if (ready) {
        current_ = std::move(chunks_[*ready]);
        chunks_.erase(*ready);
        std::erase(order_, *ready);
        std::erase(finished_, *ready);
        if (current_->outs.empty()) continue;
        return;
      }
      if (outstanding_ == 0) return;  // input done, all handed out
      auto reply = engine_.next_reply();
      --outstanding_;
      --in_flight_[static_cast<std::size_t>(reply.worker)];
      store(reply.tag, reply.report);
    }
  }

  detail::Engine& engine_;
  std::string function_;
  V items_;
  std::ranges::iterator_t<V> input_{};
  std::size_t chunksize_;
  bool started_ = false;
  bool input_done_ = false;
  std::uint64_t next_id_ = 0;
  std::uint64_t next_index_ = 0;
  std::size_t outstanding_ = 0;
  std::vector<int> in_flight_;  // by rank
  std::map<std::uint64_t, std::unique_ptr<Chunk>> chunks_;
  std::deque<std::uint64_t> order_;     // ids in input order
  std::deque<std::uint64_t> finished_;  // ids as they finished
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
