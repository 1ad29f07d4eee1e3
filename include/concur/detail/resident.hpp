// Resident workers: a process Pool made with WorkerStart::once forks its
// workers when it is made, as Python's fork start method does, and keeps
// them across calls. A call then sends what the workers do not have: the
// callable's bytes and the items, a chunk per frame; each worker answers a
// chunk with one frame of results and errors. One driver thread per pool
// (src/resident.cpp) hands out the chunks, reads the answers, replaces dead
// workers and finishes the calls; the calling threads only wait.
//
// The callable must be trivially copyable: it is copied into the worker
// byte for byte, and a worker is a fork of this program, so a function
// pointer or a lambda's captured pointers mean there what they meant here
// when the worker was forked (the state of that moment, not of the call).
#pragma once

#include <cstdint>
#include <cstring>
#include <deque>
#include <exception>
#include <map>
#include <memory>
#include <new>
#include <ranges>
#include <span>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "concur/detail/map_job.hpp"
#include "concur/detail/pool_engine.hpp"
#include "concur/errors.hpp"
#include "concur/multiprocessing/pool_imap.hpp"
#include "concur/multiprocessing/transfer.hpp"
#include "concur/threading/event.hpp"

namespace concur::detail {

struct ResidentTask;
// Runs one task in a worker and sends its report.
using ResidentEntry = void (*)(ResidentTask& task, WorkerLink& link);

// One chunk of one call, as sent to a worker.
struct ResidentTask {
  std::uint64_t entry = 0;  // a ResidentEntry: the same address in a forked worker
  std::uint64_t call = 0;
  std::uint64_t first = 0;  // index of the chunk's first item in the call's input
  std::string callable;     // the callable's bytes
  std::string items;        // encode_items of the chunk's items
  template <class Archive>
  void serialize(Archive& archive) {
    archive(entry, call, first, callable, items);
  }
};

// A worker's answer to one task: the results of the items before the first
// that threw (encode_items), and that one's error.
struct ResidentReport {
  std::uint64_t call = 0;
  std::uint64_t first = 0;
  std::vector<std::tuple<std::uint64_t, std::string, std::string>> errors;  // index, type, message
  std::string results;
  std::uint64_t compute_ns = 0;  // how long the items took
  template <class Archive>
  void serialize(Archive& archive) {
    archive(call, first, errors, results, compute_ns);
  }
};

// One call, as the driver thread sees it. Every member runs on the driver
// thread only.
class ResidentCall {
 public:
  virtual ~ResidentCall() = default;
  // The next chunk to hand out, or false when none is left for now.
  virtual bool next_task(ResidentTask& task, std::uint64_t& count) = 0;
  virtual void on_report(ResidentReport& report, std::uint64_t count) = 0;
  // The worker running the chunk [first, first + count) ended before it
  // answered. item: the item it was running (kNoItem: none of them yet);
  // failure: why that item failed (null: it did not).
  virtual void on_lost(std::uint64_t first, std::uint64_t count, std::uint64_t item,
                       std::exception_ptr failure) = 0;
  // Every item not finished yet fails: with `error`, or, when it is null, a
  // WorkerLostError(index, pid, exitcode) (workers that keep dying).
  virtual void fail_unfinished(std::exception_ptr error, int pid, int exitcode) = 0;
  virtual bool done() const = 0;
  // Once done(): hands the results or the error to the caller.
  virtual void finish() = 0;
};

// The resident workers of one pool and their driver thread.
// Thread-safety: every member may be called from any thread.
class ResidentWorkers {
 public:
  // Forks the workers now, in the calling thread, and starts the driver.
  explicit ResidentWorkers(std::shared_ptr<const PoolSettings> settings);
  ~ResidentWorkers();  // terminate() unless join() ran
  ResidentWorkers(const ResidentWorkers&) = delete;
  ResidentWorkers& operator=(const ResidentWorkers&) = delete;

  // A call nobody waits for: the driver thread runs it.
  void submit(std::shared_ptr<ResidentCall> call);
  // A call the calling thread waits for until `done` is set: it runs it
  // itself while no other thread drives.
  void run(std::shared_ptr<ResidentCall> call, threading::Event& done);
  // chunksize 0's choice for a call of `items` items whose task entry is
  // `entry`: Python's (about four chunks per worker), larger for a function
  // whose items earlier calls showed to be quick.
  std::size_t chunksize_for(std::uint64_t entry, std::size_t items);
  // The calls submitted finish, then the workers end.
  void close();
  // The workers are killed now; calls not finished fail.
  void terminate();
  // Waits until the driver has ended (after close() or terminate()).
  void join();

 private:
  struct State;
  std::shared_ptr<State> state_;
};

// Whether a call can run on resident workers: f is copied into them byte
// for byte, and the items are sent.
template <class F, class Item>
inline constexpr bool resident_capable = std::is_trivially_copyable_v<std::decay_t<F>> &&
                                         multiprocessing::transferable<std::remove_cvref_t<Item>>;

// std::invalid_argument for a call that cannot run on resident workers.
[[noreturn]] void refuse_resident(const char* call, bool callable_copyable);

// f(item) for every item, on resident workers. FH and RH hold the callable
// and the items: references for a call that waits, values for one that
// does not. Finish(std::exception_ptr, std::vector<Out>&&) receives the
// outcome, on the driver thread.
template <bool kPlain, class FH, class RH, class Finish>
class ResidentMap final : public ResidentCall {
 public:
  using Fn = std::remove_cvref_t<FH>;
  using Range = std::remove_cvref_t<RH>;
  using Item = std::ranges::range_value_t<const Range>;
  using Out = std::decay_t<decltype(pool_call<kPlain>(std::declval<Fn&>(), std::declval<Item&>()))>;
  static_assert(resident_capable<Fn, Item>);
  static_assert(!std::is_void_v<Out>, "map needs f to return a value; use apply_async for void");
  static_assert(std::is_default_constructible_v<Out>,
                "a Pool's results must be default-constructible: they cross a process boundary");
  static_assert(std::ranges::forward_range<const Range>,
                "map needs a range it can read more than once; use imap for a single-pass one");

  ResidentMap(FH f, RH items, std::size_t chunksize, ResidentWorkers& workers, Finish finish)
      : f_(std::forward<FH>(f)), items_(std::forward<RH>(items)), finish_(std::move(finish)) {
    n_ = static_cast<std::size_t>(std::ranges::distance(items_));
    const std::size_t size = chunksize == 0 ? workers.chunksize_for(entry(), n_) : chunksize;
    for (std::size_t first = 0; first < n_; first += size) {
      pending_.emplace_back(first, std::min(n_, first + size));
    }
    results_.resize(n_);
  }

  // Every member returns at once after finish(): a late answer for a chunk
  // past the failure may still arrive, and a call that waited holds its
  // callable and items by reference only until then.

  bool next_task(ResidentTask& task, std::uint64_t& count) override {
    if (closed_) return false;
    while (!pending_.empty()) {
      const auto [first, last] = pending_.front();
      pending_.pop_front();
      if (first > error_.index()) continue;  // past a failure already found: not needed
      task.entry = entry();
      task.first = first;
      task.callable.resize(sizeof(Fn));
      std::memcpy(task.callable.data(), static_cast<const void*>(&f_), sizeof(Fn));
      if constexpr (std::ranges::contiguous_range<const Range> && kItemsAsBytes<Item>) {
        // The items' bytes as they lie: what encode_items of a copy would give.
        const auto* data = reinterpret_cast<const char*>(std::ranges::data(items_) + first);
        task.items.assign(data, (last - first) * sizeof(Item));
      } else {
        std::vector<Item> chunk;
        chunk.reserve(last - first);
        auto it = std::ranges::begin(items_);
        std::ranges::advance(it, static_cast<std::ptrdiff_t>(first));
        for (std::size_t i = first; i < last; ++i, ++it) chunk.push_back(*it);
        task.items = encode_items(chunk);
      }
      count = last - first;
      outstanding_.emplace(first, last);
      return true;
    }
    return false;
  }

  void on_report(ResidentReport& report, std::uint64_t count) override {
    if (closed_) return;
    const std::size_t first = static_cast<std::size_t>(report.first);
    outstanding_.erase(first);
    if constexpr (kItemsAsBytes<Out>) {
      // Straight into place: the bytes are the results (see encode_items).
      const std::size_t k = std::min<std::size_t>(whole_items<Out>(report.results),
                                                  std::min<std::size_t>(count, n_ - first));
      if (k > 0) std::memcpy(static_cast<void*>(results_.data() + first), report.results.data(), k * sizeof(Out));
    } else {
      auto outs = decode_items<Out>(report.results);
      for (std::size_t k = 0; k < outs.size() && k < count; ++k) results_[first + k] = std::move(outs[k]);
    }
    for (auto& [index, type, message] : report.errors) {
      error_.record(static_cast<std::size_t>(index),
                    std::make_exception_ptr(multiprocessing::RemoteError(
                        std::move(type), std::move(message), static_cast<std::size_t>(index))));
    }
  }

  void on_lost(std::uint64_t first, std::uint64_t count, std::uint64_t item,
               std::exception_ptr failure) override {
    if (closed_) return;
    outstanding_.erase(static_cast<std::size_t>(first));
    const std::uint64_t last = first + count;
    if (failure != nullptr && item >= first && item < last) {
      // The items before it run again; those after it are not needed.
      error_.record(static_cast<std::size_t>(item), std::move(failure));
      if (item > first) pending_.emplace_front(first, item);
    } else {
      pending_.emplace_front(first, last);  // run again by another worker
    }
  }

  void fail_unfinished(std::exception_ptr error, int pid, int exitcode) override {
    if (closed_) return;
    if (error == nullptr) {
      const std::size_t first = pending_.empty() ? 0 : pending_.front().first;
      error = std::make_exception_ptr(multiprocessing::WorkerLostError(first, pid, exitcode));
    }
    abandoned_ = std::move(error);
    pending_.clear();
  }

  // Done when every chunk that can hold the lowest failure has answered.
  bool done() const override {
    if (closed_ || abandoned_ != nullptr) return true;
    const std::size_t limit = error_.index();
    for (const auto& chunk : pending_) {
      if (chunk.first <= limit) return false;
    }
    return outstanding_.empty() || outstanding_.begin()->first > limit;
  }

  void finish() override {
    if (closed_) return;
    closed_ = true;
    auto e = error_.take();
    if (e == nullptr) e = std::move(abandoned_);
    if (e != nullptr) {
      finish_(std::move(e), std::vector<Out>{});
    } else {
      finish_(nullptr, std::move(results_));
    }
  }

 private:
  static std::uint64_t entry() { return reinterpret_cast<std::uint64_t>(&run<Fn, Item, Out>); }

  template <class F, class I, class O>
  static void run(ResidentTask& task, WorkerLink& link) {
    alignas(F) unsigned char storage[sizeof(F)];
    std::memcpy(storage, task.callable.data(), sizeof(F));
    F& f = *std::launder(reinterpret_cast<F*>(storage));
    auto items = decode_items<I>(task.items);
    ResidentReport report;
    report.call = task.call;
    report.first = task.first;
    std::vector<O> outs;
    outs.reserve(items.size());
    std::uint64_t i = task.first;
    const std::int64_t started = Deadline::monotonic_ns();
    try {
      for (auto& item : items) {
        if (link.timed()) {
          link.begin_item(i);
        } else {
          link.note_item(i);
        }
        outs.push_back(pool_call<kPlain>(f, item));
        ++i;
      }
    } catch (...) {
      auto [type, message] = exception_parts(std::current_exception());
      report.errors.emplace_back(i, std::move(type), std::move(message));
    }
    report.compute_ns = static_cast<std::uint64_t>(Deadline::monotonic_ns() - started);
    report.results = encode_items(outs);
    link.send(encode(report));
    link.end_item();
  }

  FH f_;
  RH items_;
  Finish finish_;
  std::size_t n_ = 0;
  std::deque<std::pair<std::size_t, std::size_t>> pending_;  // [first, last) not handed out
  std::map<std::size_t, std::size_t> outstanding_;  // [first, last) handed out, not answered
  bool closed_ = false;                             // finish() ran
  std::exception_ptr abandoned_;  // terminate(), or workers that keep dying
  std::vector<Out> results_;
  LowestError error_;
};

}  // namespace concur::detail
