#pragma once

#include <algorithm>
#include <array>
#include <atomic>
#include <cstddef>
#include <cstring>
#include <exception>
#include <functional>
#include <iterator>
#include <memory>
#include <mutex>
#include <new>
#include <ranges>
#include <stdexcept>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "concur/detail/map_job.hpp"
#include "concur/detail/pool_engine.hpp"
#include "concur/detail/resident.hpp"
#include "concur/detail/result_state.hpp"
#include "concur/detail/shared_block.hpp"
#include "concur/errors.hpp"
#include "concur/multiprocessing/async_result.hpp"
#include "concur/multiprocessing/pool_imap.hpp"
#include "concur/multiprocessing/pool_options.hpp"
#include "concur/multiprocessing/transfer.hpp"

namespace concur::detail {

// What a worker reports for one chunk: the errors by item index and, for
// results that are not trivially copyable, the results themselves (trivially
// copyable ones are already in the call's shared memory).
struct ChunkReport {
  std::uint64_t chunk = 0;
  std::vector<std::tuple<std::uint64_t, std::string, std::string>> errors;
  std::string payload;
  template <class Archive>
  void serialize(Archive& archive) {
    archive(chunk, errors, payload);
  }
};

inline void atomic_min(std::atomic<std::uint64_t>& word, std::uint64_t value) {
  std::uint64_t seen = word.load(std::memory_order_relaxed);
  while (value < seen && !word.compare_exchange_weak(seen, value, std::memory_order_acq_rel)) {
  }
}

// The shared block of a pool's last synchronous call, kept for the next:
// its pages are already there, so the next call's workers write results
// without a page fault each, and nothing is unmapped between calls. One call
// holds it at a time; another gets a fresh mapping meanwhile.
class SharedArena {
 public:
  std::shared_ptr<void> lease(std::size_t bytes) {
    std::unique_lock guard(mutex_);
    if (busy_ || bytes > kMaxKept) {
      guard.unlock();
      return map_shared(bytes);
    }
    if (block_ == nullptr || size_ < bytes) {
      block_.reset();
      block_ = map_shared(bytes);
      size_ = bytes;
    }
    busy_ = true;
    std::shared_ptr<void> block = block_;
    return std::shared_ptr<void>(block.get(), [this, block](void*) {
      std::scoped_lock release(mutex_);
      busy_ = false;
    });
  }

 private:
  static constexpr std::size_t kMaxKept = std::size_t{64} << 20;  // larger blocks are not kept
  std::mutex mutex_;
  std::shared_ptr<void> block_;
  std::size_t size_ = 0;
  bool busy_ = false;
};

// map, starmap and apply in a process pool. FH and RH are how the callable
// and the items are held: references for a call that waits, values for an
// asynchronous one (its replacement workers may be forked after it returned).
//
// The items are never sent: workers are forked with them. Each worker claims
// chunks by index from a counter in shared memory, writes trivially copyable
// results straight into shared memory, and reports each chunk in one frame.
template <bool kPlain, class FH, class RH>
class MapWork final : public PoolWork {
 public:
  using Fn = std::remove_reference_t<FH>;
  using Range = std::remove_cvref_t<RH>;
  using Iterator = std::ranges::iterator_t<const Range>;
  using Item = std::ranges::range_reference_t<const Range>;
  using Out = std::decay_t<decltype(pool_call<kPlain>(std::declval<Fn&>(), std::declval<Item>()))>;
  static constexpr bool kTrivialOut = multiprocessing::trivially_transferable<Out>;
  // The results can be filled into a std::vector's buffer (not the bit-packed
  // std::vector<bool>, which has no data()).
  static constexpr bool kBufferedOut = kTrivialOut && !std::is_same_v<Out, bool>;
  static_assert(!std::is_void_v<Out>, "map needs f to return a value; use apply_async for void");
  static_assert(std::ranges::forward_range<const Range>,
                "map needs a range it can read more than once; use imap for a single-pass one");
  static_assert(std::is_default_constructible_v<Out>,
                "a Pool's results must be default-constructible: they cross a process boundary");

  // arena: where to take the shared block from (null: a fresh mapping).
  MapWork(FH f, RH items, std::size_t chunksize, int workers, SharedArena* arena = nullptr)
      : f_(std::forward<FH>(f)), items_(std::forward<RH>(items)) {
    n_ = static_cast<std::size_t>(std::ranges::distance(items_));
    chunksize_ = chunksize == 0 ? auto_chunksize(n_, static_cast<std::size_t>(workers)) : chunksize;
    chunks_ = (n_ + chunksize_ - 1) / chunksize_;
    workers_ = workers;
    if constexpr (!std::ranges::random_access_range<const Range>) {
      auto it = std::ranges::begin(items_);
      chunk_begins_.reserve(chunks_);
      for (std::size_t c = 0; c < chunks_; ++c) {
        chunk_begins_.push_back(it);
        std::ranges::advance(it, static_cast<std::ptrdiff_t>(std::min(chunksize_, n_ - c * chunksize_)));
      }
    }
    constexpr std::size_t slots_offset = (sizeof(Control) + alignof(PoolSlot) - 1) / alignof(PoolSlot) * alignof(PoolSlot);
    const std::size_t flags_offset = slots_offset + sizeof(PoolSlot) * static_cast<std::size_t>(workers);
    const std::size_t control_bytes = flags_offset + chunks_;
    const std::size_t result_offset = (control_bytes + alignof(Out) - 1) / alignof(Out) * alignof(Out);
    const std::size_t bytes = result_offset + (kTrivialOut ? n_ * sizeof(Out) : 0);
    memory_ = arena != nullptr ? arena->lease(bytes) : map_shared(bytes);
    auto* base = static_cast<unsigned char*>(memory_.get());
    control_ = ::new (base) Control{};
    slots_ = ::new (base + slots_offset) PoolSlot[static_cast<std::size_t>(workers)];
    chunk_done_ = ::new (base + flags_offset) std::atomic<std::uint8_t>[chunks_];
    if constexpr (kTrivialOut) {
      results_ = reinterpret_cast<Out*>(base + result_offset);
    } else {
      outs_.resize(n_);
    }
    reported_.assign(chunks_, false);
  }

  PoolSlot* slots() { return slots_; }
  const std::shared_ptr<void>& memory() const { return memory_; }
  std::size_t size() const { return n_; }

  // --- in the worker --------------------------------------------------------
  void run_worker(WorkerLink& link) override {
    int tasks = 0;
    for (;;) {
      const std::uint64_t c = control_->next_chunk.fetch_add(1, std::memory_order_acq_rel);
      if (c >= chunks_) return;
      const std::size_t first = static_cast<std::size_t>(c) * chunksize_;
      if (first > control_->lowest_error.load(std::memory_order_acquire)) return;
      const std::size_t last = std::min(n_, first + chunksize_);
      ChunkReport report;
      report.chunk = c;
      std::vector<Out> outs;
      if constexpr (kTrivialOut) {
        // A forked worker has none of the shared block's page-table
        // entries: map the chunk's result pages in one call, not one fault
        // each.
        prefault_for_writing(results_ + first, (last - first) * sizeof(Out));
      } else {
        outs.reserve(last - first);
      }
      run_chunk(link, first, last, report, outs);
      // Trivially copyable results are already in place: a chunk without an
      // error needs no frame, its flag says it is done.
      if constexpr (!kTrivialOut) report.payload = encode_items(outs);
      if (!kTrivialOut || !report.errors.empty()) link.send(encode(report));
      chunk_done_[c].store(1, std::memory_order_release);
      link.end_item();
      if (link.max_tasks() > 0 && ++tasks >= link.max_tasks()) return;
    }
  }

  // --- in the caller --------------------------------------------------------
  void on_frame(int, std::span<const std::byte> frame) override {
    auto report = decode<ChunkReport>(frame);
    if (report.chunk >= chunks_) throw FrameError("Pool: a worker reported a chunk that does not exist");
    if (reported_[report.chunk]) return;  // already failed (fail_remaining): too late
    const std::size_t first = static_cast<std::size_t>(report.chunk) * chunksize_;
    for (auto& [index, type, message] : report.errors) {
      std::exception_ptr error = input_error(index);
      if (error == nullptr) {
        error = std::make_exception_ptr(multiprocessing::RemoteError(std::move(type), std::move(message),
                                                                     static_cast<std::size_t>(index)));
      }
      fail(static_cast<std::size_t>(index), std::move(error));
    }
    if constexpr (!kTrivialOut) {
      auto outs = decode_items<Out>(report.payload);
      for (std::size_t k = 0; k < outs.size() && first + k < n_; ++k) outs_[first + k] = std::move(outs[k]);
    }
    reported_[report.chunk] = true;
  }

  void on_worker_end(int, std::uint64_t item, std::exception_ptr failure) override {
    if (failure == nullptr || item >= n_) return;
    const std::size_t chunk = static_cast<std::size_t>(item) / chunksize_;
    if (is_reported(chunk)) return;  // it died after reporting the chunk
    fail(static_cast<std::size_t>(item), std::move(failure));
    reported_[chunk] = true;
  }

  void fail_remaining(int pid, int exitcode) override {
    const std::size_t need = needed_chunks();
    for (std::size_t c = 0; c < need; ++c) {
      if (is_reported(c)) continue;
      const std::size_t first = c * chunksize_;
      fail(first, std::make_exception_ptr(multiprocessing::WorkerLostError(first, pid, exitcode)));
      reported_[c] = true;
    }
  }

  bool wants_worker() override {
    const std::uint64_t next = control_->next_chunk.load(std::memory_order_acquire);
    return next < chunks_ &&
           next * chunksize_ <= control_->lowest_error.load(std::memory_order_acquire);
  }

  bool complete() override {
    const std::size_t need = needed_chunks();
    while (complete_cursor_ < need && is_reported(complete_cursor_)) ++complete_cursor_;
    return complete_cursor_ >= need;
  }

  // After complete(): the results, or the lowest failure. `into`: where
  // trivially copyable results go, its capacity reserved before the workers
  // were forked (see Pool::run_now).
  std::vector<Out> take(std::vector<Out> into = {}) {
    if (auto e = error_.error()) std::rethrow_exception(e);
    if constexpr (kTrivialOut) {
      if constexpr (kBufferedOut) {
        if (into.capacity() >= n_) prefault_for_writing(into.data(), n_ * sizeof(Out));
      }
      into.assign(results_, results_ + n_);  // one pass: no zero-fill first
      return into;
    } else {
      return std::move(outs_);
    }
  }
  std::exception_ptr error() const { return error_.error(); }

 private:
  // The exception reading item `index` of the input throws here, or null.
  // A worker that failed on an item may have failed reading it (a view
  // whose iterator throws), not in f: the caller then gets the input's own
  // exception, as Python raises it (it reads the input in the caller),
  // rather than a RemoteError. Read again only on that error's way.
  std::exception_ptr input_error(std::uint64_t index) const {
    if (index >= n_) return nullptr;
    try {
      auto it = chunk_begin(index / chunksize_);
      std::ranges::advance(it, static_cast<std::ptrdiff_t>(index % chunksize_));
      [[maybe_unused]] auto&& item = *it;
    } catch (...) {
      return std::current_exception();
    }
    return nullptr;
  }

  // The items of one chunk. The index of the item running is published
  // before each call (a plain store without task_timeout: PoolSlot); the
  // loop is kept free of anything else so that f can be inlined and the
  // loop vectorized where f allows.
  void run_chunk(WorkerLink& link, std::size_t first, std::size_t last, ChunkReport& report,
                 std::vector<Out>& outs) {
    std::size_t i = first;
    try {
      Iterator it = chunk_begin(first / chunksize_);
      if (link.timed()) {
        for (; i < last; ++i, ++it) {
          link.begin_item(i);
          emit(i, pool_call<kPlain>(f_, *it), outs);
        }
      } else if constexpr (kTrivialOut) {
        // Locals, so that the store of the index is the only memory traffic
        // besides the item and its result (no member reloaded per item).
        Out* const out = results_;
        auto& f = f_;
        std::uint64_t* const running = link.untimed_item_word();
        for (; i < last; ++i, ++it) {
          *running = i;
          out[i] = pool_call<kPlain>(f, *it);
        }
      } else {
        std::uint64_t* const running = link.untimed_item_word();
        for (; i < last; ++i, ++it) {
          *running = i;
          emit(i, pool_call<kPlain>(f_, *it), outs);
        }
      }
    } catch (...) {
      auto [type, message] = exception_parts(std::current_exception());
      report.errors.emplace_back(i, std::move(type), std::move(message));
      atomic_min(control_->lowest_error, i);
    }
  }
  template <class V>
  void emit(std::size_t i, V&& value, std::vector<Out>& outs) {
    if constexpr (kTrivialOut) {
      results_[i] = std::forward<V>(value);
    } else {
      outs.push_back(std::forward<V>(value));
    }
  }

  struct Control {
    std::atomic<std::uint64_t> next_chunk{0};
    std::atomic<std::uint64_t> lowest_error{LowestError::kNone};
  };

  Iterator chunk_begin(std::uint64_t c) const {
    if constexpr (std::ranges::random_access_range<const Range>) {
      return std::ranges::begin(items_) + static_cast<std::ptrdiff_t>(c * chunksize_);
    } else {
      return chunk_begins_[c];
    }
  }
  bool is_reported(std::size_t c) const {
    return reported_[c] || chunk_done_[c].load(std::memory_order_acquire) != 0;
  }
  std::size_t needed_chunks() const {
    const std::size_t lowest = error_.index();
    if (lowest == LowestError::kNone) return chunks_;
    return std::min(chunks_, lowest / chunksize_ + 1);
  }
  void fail(std::size_t index, std::exception_ptr e) {
    error_.record(index, std::move(e));
    atomic_min(control_->lowest_error, index);
  }

  FH f_;
  RH items_;
  std::size_t n_ = 0;
  std::size_t chunksize_ = 1;
  std::size_t chunks_ = 0;
  int workers_ = 1;
  std::vector<Iterator> chunk_begins_;
  std::shared_ptr<void> memory_;
  Control* control_ = nullptr;
  PoolSlot* slots_ = nullptr;
  std::atomic<std::uint8_t>* chunk_done_ = nullptr;  // set by the worker once a chunk is reported
  Out* results_ = nullptr;
  std::vector<Out> outs_;
  std::vector<bool> reported_;
  std::size_t complete_cursor_ = 0;
  LowestError error_;
};

// The parts of Pool that are not templates (src/pool.cpp).
class PoolCore {
 public:
  explicit PoolCore(multiprocessing::PoolOptions options);
  ~PoolCore();
  void require_running(const char* call) const;
  void close();
  void terminate();
  void join();
  const std::shared_ptr<const PoolSettings>& settings() const { return settings_; }
  int processes() const { return settings_->processes; }
  PoolSupervisor& supervisor() { return supervisor_; }
  SharedArena& arena() { return arena_; }
  // The workers made with the pool (WorkerStart::once); null otherwise.
  ResidentWorkers* resident() { return resident_.get(); }

 private:
  std::shared_ptr<const PoolSettings> settings_;
  PoolSupervisor supervisor_;
  SharedArena arena_;
  std::unique_ptr<ResidentWorkers> resident_;
  mutable std::mutex mutex_;
  int state_ = 0;  // 0 running, 1 closed, 2 terminated
  bool joined_ = false;
};

}  // namespace concur::detail

namespace concur::multiprocessing {

/// A pool of worker processes: "parallelism in one line".
/// - Python: multiprocessing.Pool (the fork start method).
///   `auto squares = Pool().map([&](int x) { return x * x; }, items);`
/// - f may be any callable, a lambda capturing by reference included: a call
///   forks its workers when it is made, so they see the program's state as
///   it was then, and what f changes stays in them. Items are not sent (the
///   workers already hold them); results are transferable types, and
///   trivially copyable ones are written straight into shared memory. Between
///   calls the pool holds no process. See docs/pool.md for the trade-offs.
/// - PoolOptions::worker_start = WorkerStart::once: Python's own model
///   instead, for many small calls: the workers are forked when the pool is
///   made and serve every call; f must be trivially copyable and sees the
///   program as it was then; items are sent (transferable types). A call
///   that cannot be run so is std::invalid_argument.
/// - Thread-safety: every member may be called from any thread.
/// - Blocks: map, starmap, apply until their results are in; join until every
///   asynchronous call has finished; imap's iterator until its next result.
/// - Throws: an exception thrown by f reaches the caller (for the lowest
///   failing index) as a RemoteError (type name, message, index); a worker
///   that dies while running a task fails it with WorkerLostError, and one
///   that runs past task_timeout is killed and fails it with TimeoutError; in
///   both cases the pool stays usable. Any call after close() or terminate(),
///   and join() before them: std::invalid_argument (a std::logic_error).
/// - ~Pool: close() then join(): outstanding work finishes.
class Pool {
 public:
  /// Python: Pool(processes): `processes` workers per call (0: cpu_count()).
  explicit Pool(int processes = 0) : Pool(PoolOptions{processes, {}, 0, std::nullopt}) {}
  /// Python: Pool(processes, initializer, initargs, maxtasksperchild), plus
  /// PoolOptions::task_timeout. A negative processes: std::invalid_argument.
  explicit Pool(PoolOptions options) : core_(std::make_shared<detail::PoolCore>(std::move(options))) {}
  /// close() then join(): outstanding asynchronous work finishes. Never throws.
  ~Pool() {
    try {
      core_->close();
      core_->join();
    } catch (...) {
      // A destructor never throws.
    }
  }
  Pool(const Pool&) = delete;
  Pool& operator=(const Pool&) = delete;

  /// Python: map(f, iterable, chunksize). f(item) for every item of a forward
  /// range; a std::vector of the results in input order. chunksize 0: about
  /// four chunks per worker, as Python chooses.
  template <class F, class R>
  auto map(F&& f, const R& items, std::size_t chunksize = 0) {
    core_->require_running("Pool.map()");
    return route<F, std::ranges::range_value_t<const R>>(
        "Pool.map()", [&](auto* self) { return self->template run_resident<true>(f, items, chunksize); },
        [&](auto* self) { return self->template run_now<true>(f, items, chunksize); });
  }
  /// Python: starmap(f, iterable). f(std::get<I>(t)...) for every tuple t,
  /// results in input order.
  template <class F, class R>
  auto starmap(F&& f, const R& tuples, std::size_t chunksize = 0) {
    core_->require_running("Pool.starmap()");
    return route<F, std::ranges::range_value_t<const R>>(
        "Pool.starmap()", [&](auto* self) { return self->template run_resident<false>(f, tuples, chunksize); },
        [&](auto* self) { return self->template run_now<false>(f, tuples, chunksize); });
  }
  /// Python: imap(f, iterable, chunksize). A PoolIMapRange over f(item), in
  /// input order; the input, which may be lazy or endless, is read a chunk
  /// at a time. The workers are forked now. chunksize 0: std::invalid_argument.
  template <class F, class R>
  auto imap(F&& f, R&& items, std::size_t chunksize = 1) {
    core_->require_running("Pool.imap()");
    return make_imap<true>(std::forward<F>(f), std::forward<R>(items), chunksize);
  }
  /// Python: imap_unordered(f, iterable, chunksize). As imap, the results in
  /// the order they finish.
  template <class F, class R>
  auto imap_unordered(F&& f, R&& items, std::size_t chunksize = 1) {
    core_->require_running("Pool.imap_unordered()");
    return make_imap<false>(std::forward<F>(f), std::forward<R>(items), chunksize);
  }
  /// Python: apply(f, args). f(args...) in one worker process; its result
  /// (nothing for a void f), or its exception as a RemoteError.
  template <class F, class... A>
  auto apply(F&& f, A&&... args) {
    core_->require_running("Pool.apply()");
    using Call = detail::ApplyCall<std::decay_t<F>>;
    using Args = std::array<std::tuple<std::decay_t<A>...>, 1>;
    Call call{std::forward<F>(f)};
    const Args args_items{std::make_tuple(std::forward<A>(args)...)};
    auto out = route<Call, typename Args::value_type>(
        "Pool.apply()", [&](auto* self) { return self->template run_resident<true>(call, args_items, 1); },
        [&](auto* self) { return self->template run_now<true>(call, args_items, 1); });
    using Result = std::invoke_result_t<std::decay_t<F>&, std::decay_t<A>&...>;
    if constexpr (!std::is_void_v<Result>) return std::move(out[0]);
  }
  /// Python: apply_async(f, args). As apply, without waiting: an
  /// AsyncResult of f's result. f and the arguments are copied first.
  template <class F, class... A>
  auto apply_async(F&& f, A&&... args) {
    core_->require_running("Pool.apply_async()");
    using Result = std::invoke_result_t<std::decay_t<F>&, std::decay_t<A>&...>;
    using Call = detail::ApplyCall<std::decay_t<F>>;
    using Args = std::array<std::tuple<std::decay_t<A>...>, 1>;
    return route<Call, typename Args::value_type>(
        "Pool.apply_async()",
        [&](auto* self) {
          return self->template submit_resident<true, Result>(
              Call{std::forward<F>(f)}, Args{std::make_tuple(std::forward<A>(args)...)}, 1);
        },
        [&](auto* self) {
          return self->template submit_async<true, Result>(
              Call{std::forward<F>(f)}, Args{std::make_tuple(std::forward<A>(args)...)}, 1);
        });
  }
  /// As map, without waiting. f and the items are copied first.
  template <class F, class R>
  auto map_async(F&& f, const R& items, std::size_t chunksize = 0) {
    core_->require_running("Pool.map_async()");
    using Item = std::ranges::range_value_t<const R>;
    using Out = std::decay_t<std::invoke_result_t<std::decay_t<F>&, const Item&>>;
    return route<F, Item>(
        "Pool.map_async()",
        [&](auto* self) {
          return self->template submit_resident<true, std::vector<Out>>(
              std::decay_t<F>(std::forward<F>(f)),
              std::vector<Item>(std::ranges::begin(items), std::ranges::end(items)), chunksize);
        },
        [&](auto* self) {
          return self->template submit_async<true, std::vector<Out>>(
              std::decay_t<F>(std::forward<F>(f)),
              std::vector<Item>(std::ranges::begin(items), std::ranges::end(items)), chunksize);
        });
  }

  /// No more calls; the asynchronous ones still running finish.
  void close() { core_->close(); }
  /// Stops every worker now; results not yet in fail with std::runtime_error.
  void terminate() { core_->terminate(); }
  /// Waits for the asynchronous calls; only after close() or terminate().
  void join() { core_->join(); }
  /// The number of worker processes a call uses.
  int processes() const { return core_->processes(); }

 private:
  // Where a call runs: on the workers made with the pool (WorkerStart::once)
  // when it can go there -- else refused with the reason -- or on workers
  // forked at the call. Each branch is a generic lambda given `this`, so
  // that the one a type cannot take is never compiled for it.
  template <class Call, class Item, class OnResident, class AtTheCall>
  auto route(const char* call, OnResident&& on_resident, AtTheCall&& at_the_call) {
    if (core_->resident() != nullptr) {
      if constexpr (detail::resident_capable<Call, Item>) {
        return on_resident(this);
      } else {
        detail::refuse_resident(call, std::is_trivially_copyable_v<std::decay_t<Call>>);
      }
    }
    return at_the_call(this);
  }

  // map, starmap and apply on the workers made with the pool: the caller
  // waits while the pool's driver thread runs the call.
  template <bool kPlain, class F, class R>
  auto run_resident(F& f, const R& items, std::size_t chunksize) {
    if constexpr (std::is_function_v<F>) {
      F* pointer = &f;  // a function: its pointer is what is copied
      return run_resident<kPlain>(pointer, items, chunksize);
    } else {
      return run_resident_object<kPlain>(f, items, chunksize);
    }
  }
  template <bool kPlain, class F, class R>
  auto run_resident_object(F& f, const R& items, std::size_t chunksize) {
    using Item = std::ranges::range_value_t<const R>;
    using Out = std::decay_t<decltype(detail::pool_call<kPlain>(std::declval<F&>(), std::declval<Item&>()))>;
    auto state = std::make_shared<detail::ResultState<std::vector<Out>>>();
    auto finish = [state](std::exception_ptr e, std::vector<Out>&& values) {
      if (e != nullptr) {
        state->set_exception(std::move(e));
      } else {
        state->set_value(std::move(values));
      }
    };
    core_->resident()->run(
        std::make_shared<detail::ResidentMap<kPlain, F&, const R&, decltype(finish)>>(
            f, items, chunksize, *core_->resident(), std::move(finish)),
        state->done());
    state->done().wait();
    return state->take();  // moved: nobody else reads it
  }

  // apply_async and map_async on the workers made with the pool.
  template <bool kPlain, class Result, class F, class R>
  AsyncResult<Result> submit_resident(F f, R items, std::size_t chunksize) {
    using Item = std::ranges::range_value_t<const R>;
    using Out = std::decay_t<decltype(detail::pool_call<kPlain>(std::declval<F&>(), std::declval<Item&>()))>;
    auto state = std::make_shared<detail::ResultState<Result>>();
    auto finish = [state](std::exception_ptr e, std::vector<Out>&& values) {
      if (e != nullptr) {
        state->set_exception(std::move(e));
      } else if constexpr (std::is_void_v<Result>) {
        state->set_value();
      } else if constexpr (std::is_same_v<Result, std::vector<Out>>) {
        state->set_value(std::move(values));
      } else {
        state->set_value(std::move(values[0]));
      }
    };
    core_->resident()->submit(std::make_shared<detail::ResidentMap<kPlain, F, R, decltype(finish)>>(
        std::move(f), std::move(items), chunksize, *core_->resident(), std::move(finish)));
    return AsyncResult<Result>(std::move(state));
  }

  template <bool kPlain, class F, class R>
  auto run_now(F& f, const R& items, std::size_t chunksize) {
    const int workers = core_->processes();
    using Work = detail::MapWork<kPlain, F&, const R&>;
    using Out = typename Work::Out;
    Work work(f, items, chunksize, workers, &core_->arena());
    std::vector<Out> results;
    if (work.size() != 0) {
      // The results' buffer is made before the workers are forked, and kept
      // out of them: filling it after they are gone then costs no
      // copy-on-write fault per page.
      void* buffer = nullptr;
      if constexpr (Work::kBufferedOut) {
        results.reserve(work.size());
        buffer = results.data();
      }
      detail::HiddenFromFork hidden(buffer, results.capacity() * sizeof(Out));
      detail::PoolRunner runner(core_->settings(), work, workers, work.slots());
      runner.run();
    }
    return work.take(std::move(results));
  }

  template <bool kPlain, class Result, class F, class R>
  AsyncResult<Result> submit_async(F f, R items, std::size_t chunksize) {
    using Work = detail::MapWork<kPlain, F, R>;
    const int workers = core_->processes();
    auto work = std::make_unique<Work>(std::move(f), std::move(items), chunksize, workers);
    auto state = std::make_shared<detail::ResultState<Result>>();
    Work* raw = work.get();
    detail::PoolSupervisor::Job job;
    job.runner = std::make_unique<detail::PoolRunner>(core_->settings(), *raw, workers, raw->slots());
    job.finish = [raw, state] {
      if (auto e = raw->error()) {
        state->set_exception(e);
        return;
      }
      auto values = raw->take();
      if constexpr (std::is_void_v<Result>) {
        state->set_value();
      } else if constexpr (std::is_same_v<Result, std::vector<typename Work::Out>>) {
        state->set_value(std::move(values));
      } else {
        state->set_value(std::move(values[0]));
      }
    };
    job.fail = [state](std::exception_ptr e) {
      if (!state->ready()) state->set_exception(std::move(e));
    };
    job.work = std::move(work);
    core_->supervisor().submit(std::move(job));
    return AsyncResult<Result>(std::move(state));
  }

  template <bool kOrdered, class F, class R>
  auto make_imap(F&& f, R&& items, std::size_t chunksize) {
    if (chunksize == 0) {
      throw std::invalid_argument(kOrdered ? "Pool.imap(): chunksize must be >= 1"
                                           : "Pool.imap_unordered(): chunksize must be >= 1");
    }
    return PoolIMapRange<kOrdered, std::decay_t<F>, std::views::all_t<R>>(
        std::forward<F>(f), std::views::all(std::forward<R>(items)), chunksize, core_->settings());
  }

  std::shared_ptr<detail::PoolCore> core_;
};

}  // namespace concur::multiprocessing
