#pragma once

#include <cstddef>
#include <exception>
#include <functional>
#include <iterator>
#include <memory>
#include <optional>
#include <ranges>
#include <stdexcept>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "concur/detail/map_job.hpp"
#include "concur/detail/result_state.hpp"
#include "concur/detail/task_sink.hpp"
#include "concur/multiprocessing/async_result.hpp"
#include "concur/multiprocessing/imap.hpp"
#include "concur/multiprocessing/pool_options.hpp"

namespace concur::multiprocessing {

/// A pool of worker threads in this process that run tasks: "parallelism in one line".
/// - Python: multiprocessing.pool.ThreadPool.
///   `auto squares = ThreadPool(4).map([](int x) { return x * x; }, items);`
/// - Thread-safety: every member may be called from any thread, also from a task.
/// - Blocks: map, starmap, apply until their results are in; join until every
///   worker has ended; imap's iterator until its next result is in.
/// - Throws: an exception thrown by f reaches the caller of map/get (for the
///   lowest failing index) as the very exception; any call after close() or
///   terminate(): std::invalid_argument; join() while running:
///   std::invalid_argument (a std::logic_error; Python: ValueError);
///   PoolOptions::task_timeout: std::invalid_argument (a thread cannot be stopped).
/// - terminate() drops the tasks not yet started (their results fail with
///   std::runtime_error) and lets the running ones finish: a thread cannot be stopped.
/// - ~ThreadPool: close() then join(): outstanding work finishes.
class ThreadPool {
 public:
  /// Python: ThreadPool(processes): that many worker threads, started now
  /// (0: cpu_count()).
  explicit ThreadPool(int processes = 0);
  /// Python: ThreadPool(processes, initializer, initargs); task_timeout:
  /// std::invalid_argument.
  explicit ThreadPool(PoolOptions options);
  /// close() then join(): outstanding work finishes. Never throws.
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  /// f(item) for every item, results in input order. While it waits, the
  /// calling thread runs chunks of this map itself (never another task, and
  /// not when the pool has an initializer). chunksize 0: about four chunks
  /// per worker.
  template <class F, class R>
  auto map(F&& f, const R& items, std::size_t chunksize = 0) {
    return run_map<true>(f, items, chunksize);
  }
  /// f(std::get<I>(t)...) for every tuple t, results in input order.
  template <class F, class R>
  auto starmap(F&& f, const R& tuples, std::size_t chunksize = 0) {
    return run_map<false>(f, tuples, chunksize);
  }
  /// Lazily, over an input range that may itself be lazy; results in input order.
  /// An IMapRange; chunksize 0: std::invalid_argument.
  template <class F, class R>
  auto imap(F&& f, R&& items, std::size_t chunksize = 1) {
    return make_imap<true>(std::forward<F>(f), std::forward<R>(items), chunksize);
  }
  /// Lazily; results in the order they finish.
  template <class F, class R>
  auto imap_unordered(F&& f, R&& items, std::size_t chunksize = 1) {
    return make_imap<false>(std::forward<F>(f), std::forward<R>(items), chunksize);
  }
  /// Python: apply(f, args). f(args...) in a worker; its result, or its very
  /// exception.
  template <class F, class... A>
  auto apply(F&& f, A&&... args) {
    auto state = start_apply("ThreadPool.apply()", std::forward<F>(f), std::forward<A>(args)...);
    state->done().wait();
    return state->take();  // moved, not copied as AsyncResult::get() must: nobody else reads it
  }
  /// Python: apply_async(f, args). As apply, without waiting: an AsyncResult.
  /// f and the arguments are copied first.
  template <class F, class... A>
  auto apply_async(F&& f, A&&... args) {
    using Out = std::invoke_result_t<std::decay_t<F>&, std::decay_t<A>&...>;
    return AsyncResult<Out>(
        start_apply("ThreadPool.apply_async()", std::forward<F>(f), std::forward<A>(args)...));
  }
  /// As map, without waiting. f and the items are copied first.
  template <class F, class R>
  auto map_async(F&& f, const R& items, std::size_t chunksize = 0) {
    using Item = std::ranges::range_value_t<const R>;
    using Out = std::decay_t<std::invoke_result_t<std::decay_t<F>&, const Item&>>;
    require_running("ThreadPool.map_async()");
    auto owned = std::make_shared<std::pair<std::decay_t<F>, std::vector<Item>>>(
        std::forward<F>(f), std::vector<Item>(std::ranges::begin(items), std::ranges::end(items)));
    auto state = std::make_shared<detail::ResultState<std::vector<Out>>>();
    start_map<true>(owned->first, owned->second, chunksize, [owned, state](auto& j) {
      if (auto e = j.error.take()) {
        state->set_exception(std::move(e));
      } else {
        state->set_value(detail::take_results<Out>(j.slots));
      }
    });
    return AsyncResult<std::vector<Out>>(std::move(state));
  }

  /// No more tasks; the workers end once the queued ones are done.
  void close();
  /// Drops the queued tasks and ends the workers after their current task.
  void terminate();
  /// Waits for every worker to end; only after close() or terminate().
  void join();

  /// The number of worker threads.
  int processes() const;

 private:
  struct Core;

  // apply and apply_async: f and the arguments copied into a task, queued.
  template <class F, class... A>
  auto start_apply(const char* call, F&& f, A&&... args) {
    using Fn = std::decay_t<F>;
    using Args = std::tuple<std::decay_t<A>...>;
    using Out = std::invoke_result_t<Fn&, std::decay_t<A>&...>;
    require_running(call);
    // One allocation holds the task and its result.
    auto task = std::make_shared<ApplyTask<Out, Fn, Args>>(std::forward<F>(f),
                                                           Args(std::forward<A>(args)...));
    std::shared_ptr<detail::ResultState<Out>> state = task;
    if (!submit(ApplyTask<Out, Fn, Args>::queue(std::move(task)))) {
      // close() or terminate() from another thread won the race: as if it
      // had come first.
      throw std::invalid_argument(std::string(call) + ": the pool is closed; make a new pool");
    }
    return state;
  }

  // apply_async's task: the callable, its arguments and the result in one
  // allocation, shared by the queue and the AsyncResult. The callable and
  // the arguments are destroyed once the task has run, as Python drops its
  // references to them.
  template <class Out, class Fn, class Args>
  class ApplyTask final : public detail::ResultState<Out>, public detail::TaskNode {
   public:
    ApplyTask(Fn fn, Args args) : call_(std::in_place, std::move(fn), std::move(args)) {}
    // The queue's reference is the node's own shared_ptr to itself.
    static detail::TaskPtr queue(std::shared_ptr<ApplyTask> task) {
      ApplyTask* node = task.get();
      node->self_ = std::move(task);
      return detail::TaskPtr(node);
    }
    void run() noexcept override {
      try {
        if constexpr (std::is_void_v<Out>) {
          std::apply(call_->first, call_->second);
          call_.reset();
          this->set_value();
        } else {
          Out out = std::apply(call_->first, call_->second);
          call_.reset();
          this->set_value(std::move(out));
        }
      } catch (...) {
        call_.reset();
        this->set_exception(std::current_exception());
      }
    }
    void cancel(std::exception_ptr why) noexcept override {
      call_.reset();
      this->set_exception(std::move(why));
    }
    // May destroy this node: nothing is touched after.
    void release() noexcept override { [[maybe_unused]] auto last = std::move(self_); }

   private:
    std::optional<std::pair<Fn, Args>> call_;
    std::shared_ptr<ApplyTask> self_;
  };

  // Queues a task. If the pool was closed or terminated meanwhile, cancels
  // the task with std::invalid_argument and returns false.
  bool submit(detail::TaskPtr task);
  // Runs one queued task in the calling thread; false if none was queued.
  bool run_one_queued();
  bool caller_should_help() const;
  // Brings sleeping workers back to spinning: a map calls it before it
  // allocates its results, so that the workers are awake by the time its
  // chunks are queued.
  void wake_idle_workers();
  std::shared_ptr<detail::TaskSink> sink() const;
  void require_running(const char* call) const;
  std::size_t worker_count() const;

  // One map's chunks. Each is claimed once, in order, by whoever comes
  // first: a queued task or the waiting caller. So the caller helps with its
  // own map only (a foreign task run by a caller holding a lock it needs
  // would deadlock), and a task that finds every chunk taken does nothing.
  template <bool kPlain, class F, class R, class Out, class OnDone>
  class MapChunks {
   public:
    MapChunks(F& f, const R& items, std::size_t n, std::size_t chunksize, OnDone on_done)
        : job(n, (n + chunksize - 1) / chunksize),
          f_(f),
          n_(n),
          chunksize_(chunksize),
          chunks_((n + chunksize - 1) / chunksize),
          on_done_(std::move(on_done)) {
      if constexpr (std::ranges::random_access_range<const R>) {
        begin_ = std::ranges::begin(items);
      } else {
        auto it = std::ranges::begin(items);
        begins_.reserve(chunks_);
        for (std::size_t first = 0; first < n_; first += chunksize_) {
          begins_.push_back(it);
          std::ranges::advance(it, static_cast<std::ptrdiff_t>(std::min(chunksize_, n_ - first)));
        }
      }
    }
    std::size_t chunks() const { return chunks_; }
    // For an empty input: nothing to run, the map is done.
    void finish_empty() { on_done_(job); }

    // Runs the next unclaimed chunk; false once every chunk is claimed.
    bool run_next() {
      const std::size_t c = next_.fetch_add(1, std::memory_order_relaxed);
      if (c >= chunks_) return false;
      const std::size_t first = c * chunksize_;
      const std::size_t last = std::min(n_, first + chunksize_);
      // A chunk that starts past a failure already found is skipped; within
      // a chunk nothing but f runs per item, so f can be inlined and the
      // loop vectorized where f allows.
      if (job.error.index() >= first) {
        auto at = chunk_begin(c);
        auto* slots = job.slots.data();
        std::size_t i = first;
        try {
          for (; i < last; ++i, ++at) slots[i] = detail::pool_call<kPlain>(f_, *at);
        } catch (...) {
          job.error.record(i, std::current_exception());
        }
      }
      finish();
      return true;
    }
    // For a queued task that will never run: the next unclaimed chunk fails.
    void cancel_next(std::exception_ptr why) {
      const std::size_t c = next_.fetch_add(1, std::memory_order_relaxed);
      if (c >= chunks_) return;
      job.error.record(c * chunksize_, std::move(why));
      finish();
    }

    detail::MapJob<Out> job;

   private:
    using Iterator = std::ranges::iterator_t<const R>;
    Iterator chunk_begin(std::size_t c) const {
      if constexpr (std::ranges::random_access_range<const R>) {
        return begin_ + static_cast<std::ptrdiff_t>(c * chunksize_);
      } else {
        return begins_[c];
      }
    }
    void finish() {
      if (job.finish_chunk()) on_done_(job);
    }

    F& f_;
    const std::size_t n_;
    const std::size_t chunksize_;
    const std::size_t chunks_;
    OnDone on_done_;
    Iterator begin_{};
    std::vector<Iterator> begins_;
    std::atomic<std::size_t> next_{0};
  };

  // Queues one task per chunk of items. on_done(job) runs in the thread
  // that finishes the last chunk.
  template <bool kPlain, class F, class R, class OnDone>
  auto start_map(F& f, const R& items, std::size_t chunksize, OnDone on_done) {
    static_assert(std::ranges::forward_range<const R>,
                  "map needs a range it can read more than once; use imap for a single-pass one");
    using Item = std::ranges::range_reference_t<const R>;
    using Out = std::decay_t<decltype(detail::pool_call<kPlain>(f, std::declval<Item>()))>;
    static_assert(!std::is_void_v<Out>, "map needs f to return a value; use apply_async for void");
    const auto n = static_cast<std::size_t>(std::ranges::distance(items));
    if (chunksize == 0) chunksize = detail::auto_chunksize(n, worker_count());
    auto chunks = std::make_shared<MapChunks<kPlain, F, R, Out, OnDone>>(f, items, n, chunksize,
                                                                          std::move(on_done));
    if (chunks->chunks() == 0) chunks->finish_empty();
    // A chunk refused because the pool was closed meanwhile fails the map
    // with std::invalid_argument; the chunks already queued still run (or
    // the caller runs them) before the map returns.
    for (std::size_t c = 0; c < chunks->chunks(); ++c) {
      (void)submit(detail::make_task([chunks] { chunks->run_next(); },
                               [chunks](std::exception_ptr why) { chunks->cancel_next(std::move(why)); }));
    }
    return chunks;
  }

  template <bool kPlain, class F, class R>
  auto run_map(F& f, const R& items, std::size_t chunksize) {
    require_running(kPlain ? "ThreadPool.map()" : "ThreadPool.starmap()");
    wake_idle_workers();
    auto chunks = start_map<kPlain>(f, items, chunksize, [](auto&) {});
    // The caller runs its map's chunks too instead of only waiting, as
    // OpenMP's master thread does (see caller_should_help).
    if (caller_should_help()) {
      while (!chunks->job.done.is_set() && chunks->run_next()) {
      }
    }
    chunks->job.done.wait();
    if (auto e = chunks->job.error.take()) std::rethrow_exception(std::move(e));
    return detail::take_results<typename decltype(chunks->job)::value_type>(chunks->job.slots);
  }

  template <bool kOrdered, class F, class R>
  auto make_imap(F&& f, R&& items, std::size_t chunksize) {
    require_running(kOrdered ? "ThreadPool.imap()" : "ThreadPool.imap_unordered()");
    if (chunksize == 0) throw std::invalid_argument("ThreadPool.imap(): chunksize must be >= 1");
    return IMapRange<kOrdered, std::decay_t<F>, std::views::all_t<R>>(
        std::forward<F>(f), std::views::all(std::forward<R>(items)), chunksize, 2 * worker_count(),
        sink());
  }

  std::shared_ptr<Core> core_;
};

}  // namespace concur::multiprocessing
