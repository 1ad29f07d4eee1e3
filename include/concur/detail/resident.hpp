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

#include <cereal/types/common.hpp>  // Placement, an enum, in a frame
#include <algorithm>
#include <atomic>
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
  // The caller's pid while its workers may read and write its memory
  // (process_vm_readv/writev), 0 once they may not. Set by the driver
  // before the call fills the task.
  std::uint64_t caller_pid = 0;
  // A chunk the worker reads from the caller's memory itself, in place of
  // `items`: addresses in the caller (0: not such a chunk).
  std::uint64_t remote_items = 0;    // the chunk's first item
  std::uint64_t remote_count = 0;    // how many items
  std::uint64_t remote_results = 0;  // where the first result goes
  std::uint64_t remote_open = 0;     // the call's open flag (a byte; 0 once it finished)
  template <class Archive>
  void serialize(Archive& archive) {
    archive(entry, call, first, callable, items, caller_pid, remote_items, remote_count, remote_results,
            remote_open);
  }
};

// Where a worker's answer holds its results.
enum class Placement : std::uint8_t {
  kInReport = 0,    // in ResidentReport::results
  kInPlace = 1,     // written into the caller's results (remote_results): `written` of them
  kCallClosed = 2,  // the call had finished before the worker read its items: none ran
  kNoAccess = 3,    // the worker may not read the caller's memory (remote_errno): send the items
};

// A worker's answer to one task: the results of the items before the first
// that threw (encode_items), and that one's error.
struct ResidentReport {
  std::uint64_t call = 0;
  std::uint64_t first = 0;
  std::vector<std::tuple<std::uint64_t, std::string, std::string>> errors;  // index, type, message
  std::string results;
  std::uint64_t compute_ns = 0;  // how long the items took
  Placement placement = Placement::kInReport;
  std::uint64_t written = 0;      // kInPlace: how many results
  std::int32_t remote_errno = 0;  // why the caller's memory could not be read or written
  template <class Archive>
  void serialize(Archive& archive) {
    archive(call, first, errors, results, compute_ns, placement, written, remote_errno);
  }
};

// In a worker: reads `bytes` bytes of a remote chunk's items, from `offset`
// bytes past task.remote_items, into `local`, then the call's open flag.
// kInPlace stands for "read, and the call is open"; kCallClosed: the call
// finished first (the items may be gone: none is used); kNoAccess: reading
// failed (`error`: errno).
Placement read_remote_items(const ResidentTask& task, std::size_t offset, void* local, std::size_t bytes,
                            int& error) noexcept;
// A worker reads and answers a chunk from the caller's memory this many
// bytes (of items, or of results, whichever is larger) at a time; a
// smaller chunk is sent in its frame.
inline constexpr std::size_t kInPlaceBlockBytes = 64 * 1024;
// In a worker: writes `bytes` bytes of results to task.remote_results +
// `offset` in the caller. 0, or the errno.
int write_remote_results(const ResidentTask& task, std::size_t offset, const void* local,
                         std::size_t bytes) noexcept;

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
    // Grown a chunk at a time as the chunks go out (next_task): the first
    // goes out without waiting for the whole vector to be zeroed. The
    // storage never moves, so a worker may write into it (kInPlace).
    results_.reserve(n_);
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
      if (results_.size() < last) results_.resize(last);
      task.entry = entry();
      task.first = first;
      task.callable.resize(sizeof(Fn));
      std::memcpy(task.callable.data(), static_cast<const void*>(&f_), sizeof(Fn));
      if constexpr (kInPlace) {
        // A small chunk goes in its frame: three system calls would cost
        // more than copying it through the socket.
        if (task.caller_pid != 0 && (last - first) * sizeof(Item) >= kInPlaceBlockBytes) {
          // The worker reads the items where they lie and writes the
          // results into place: nothing is copied through the socket.
          task.remote_items = reinterpret_cast<std::uint64_t>(std::ranges::data(items_) + first);
          task.remote_count = last - first;
          task.remote_results = reinterpret_cast<std::uint64_t>(results_.data() + first);
          task.remote_open = reinterpret_cast<std::uint64_t>(&open_);
          count = last - first;
          outstanding_.emplace(first, last);
          return true;
        }
      }
      if constexpr (std::ranges::contiguous_range<const Range> && kItemsAsBytes<Item>) {
        // The items' bytes as they lie: what encode_items of a copy would give.
        const auto* data = reinterpret_cast<const char*>(std::ranges::data(items_) + first);
        task.items.assign(data, (last - first) * sizeof(Item));
      } else {
        std::size_t at = first;  // the item being read
        try {
          std::vector<Item> chunk;
          chunk.reserve(last - first);
          auto it = std::ranges::begin(items_);
          std::ranges::advance(it, static_cast<std::ptrdiff_t>(first));
          for (; at < last; ++at, ++it) chunk.push_back(*it);
          at = first;  // an item that cannot be encoded: the chunk's
          task.items = encode_items(chunk);
        } catch (...) {
          // The input threw (or an item could not be encoded): that very
          // exception is the error of item `at`, and the lowest failing
          // index wins as for f's errors. The items before it still run.
          error_.record(at, std::current_exception());
          if (at > first) pending_.emplace_front(first, at);
          continue;
        }
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
    const auto handed_out = outstanding_.find(first);
    if (handed_out == outstanding_.end()) return;
    const std::size_t last = handed_out->second;
    outstanding_.erase(handed_out);
    if (report.placement == Placement::kNoAccess || report.placement == Placement::kCallClosed) {
      // Not run (kCallClosed cannot happen while the call is open): sent
      // again, with its items this time (the driver gives no caller_pid
      // from now on).
      pending_.emplace_front(first, last);
      return;
    }
    if (report.placement == Placement::kInPlace) {
      // Already where they belong, written by the worker.
    } else if constexpr (kItemsAsBytes<Out>) {
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
    // From here on a worker that has not read its chunk yet leaves it: a
    // call that waited hands its items back to its caller now.
    open_.store(0, std::memory_order_release);
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
    ResidentReport report;
    report.call = task.call;
    report.first = task.first;
    const std::int64_t started = Deadline::monotonic_ns();
    if constexpr (kInPlace) {
      if (task.remote_items != 0) {
        run_in_place<I, O>(f, task, link, report);
        report.compute_ns = static_cast<std::uint64_t>(Deadline::monotonic_ns() - started);
        link.send(encode(report));
        link.end_item();
        return;
      }
    }
    auto items = decode_items<I>(task.items);
    // Kept from chunk to chunk: a fresh buffer of this size would cost a
    // page fault per 4 KiB, each time. Results of a trivially copyable type
    // are written over it (no value-initialised vector first).
    static std::vector<O> outs;
    std::size_t ran = 0;
    if constexpr (kItemsAsBytes<O>) {
      if (outs.size() < items.size()) outs.resize(items.size());
      ran = run_items(f, items.data(), items.size(), task.first, link, report,
                      [out = outs.data()](std::size_t k, auto&& value) { out[k] = value; });
      report.results.assign(reinterpret_cast<const char*>(outs.data()), ran * sizeof(O));  // as encode_items
    } else {
      outs.clear();
      outs.reserve(items.size());
      ran = run_items(f, items.data(), items.size(), task.first, link, report,
                      [](std::size_t, auto&& value) { outs.push_back(std::forward<decltype(value)>(value)); });
      report.results = encode_items(outs);
    }
    report.compute_ns = static_cast<std::uint64_t>(Deadline::monotonic_ns() - started);
    link.send(encode(report));
    link.end_item();
  }

  // f over items[0, n), whose first is item `first` of the call; each
  // result goes to put(k, result). Returns how many ran before one threw;
  // that one's error goes into the report.
  template <class F, class I, class Put>
  static std::size_t run_items(F& f, I* items, std::size_t n, std::uint64_t first, WorkerLink& link,
                               ResidentReport& report, Put&& put) {
    std::size_t k = 0;
    try {
      // Which item runs, for a worker that dies in it or overruns: a plain
      // store without task_timeout, so that the loop can be vectorised
      // (PoolSlot).
      if (std::uint64_t* const running = link.untimed_item_word()) {
        for (; k < n; ++k) {
          *running = first + k;
          put(k, pool_call<kPlain>(f, items[k]));
        }
      } else {
        for (; k < n; ++k) {
          link.begin_item(first + k);
          put(k, pool_call<kPlain>(f, items[k]));
        }
      }
    } catch (...) {
      auto [type, message] = exception_parts(std::current_exception());
      report.errors.emplace_back(first + k, std::move(type), std::move(message));
    }
    return k;
  }

  // A chunk read from the caller's memory and answered into it, a block at
  // a time: a block's items and results stay in this core's cache between
  // the copies and f.
  template <class I, class O, class F>
  static void run_in_place(F& f, const ResidentTask& task, WorkerLink& link, ResidentReport& report) {
    constexpr std::size_t kBlock = std::max<std::size_t>(1, kInPlaceBlockBytes / std::max(sizeof(I), sizeof(O)));
    static std::vector<I> in;  // kept, as in run()
    static std::vector<O> out;
    const auto n = static_cast<std::size_t>(task.remote_count);
    if (in.size() < std::min(kBlock, n)) in.resize(std::min(kBlock, n));
    if (out.size() < std::min(kBlock, n)) out.resize(std::min(kBlock, n));
    const auto leave = [&report](Placement why, int error) {
      report.placement = why;
      report.remote_errno = error;
      report.errors.clear();
    };
    std::size_t done = 0;  // results in place
    while (done < n) {
      const std::size_t m = std::min(kBlock, n - done);
      int error = 0;
      const Placement read = read_remote_items(task, done * sizeof(I), in.data(), m * sizeof(I), error);
      if (read != Placement::kInPlace) {
        // The call finished (nothing more is wanted), or reading is not
        // allowed: the chunk is sent again, with its items.
        return leave(read, error);
      }
      const std::size_t ran = run_items(f, in.data(), m, task.first + done, link, report,
                                        [o = out.data()](std::size_t k, auto&& value) { o[k] = value; });
      error = write_remote_results(task, done * sizeof(O), out.data(), ran * sizeof(O));
      if (error != 0) return leave(Placement::kNoAccess, error);
      done += ran;
      if (ran < m) break;  // an item threw: its error is in the report
    }
    report.placement = Placement::kInPlace;
    report.written = done;
  }

  // Chunks go by the caller's memory (read_remote_items): the items lie
  // side by side as bytes, and so will the results.
  static constexpr bool kInPlace =
      std::ranges::contiguous_range<const Range> && kItemsAsBytes<Item> && kItemsAsBytes<Out>;

  FH f_;
  RH items_;
  Finish finish_;
  std::atomic<std::uint8_t> open_{1};  // read by the workers (remote_open)
  std::size_t n_ = 0;
  std::deque<std::pair<std::size_t, std::size_t>> pending_;  // [first, last) not handed out
  std::map<std::size_t, std::size_t> outstanding_;  // [first, last) handed out, not answered
  bool closed_ = false;                             // finish() ran
  std::exception_ptr abandoned_;  // terminate(), or workers that keep dying
  std::vector<Out> results_;
  LowestError error_;
};

}  // namespace concur::detail
