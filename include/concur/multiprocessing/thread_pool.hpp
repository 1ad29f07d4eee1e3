#pragma once

#include <cstddef>
#include <exception>
#include <functional>
#include <iterator>
#include <memory>
#include <ranges>
#include <stdexcept>
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

  /// f(item) for every item, results in input order. The calling thread runs
  /// queued chunks itself while it waits. chunksize 0: about four chunks per
  /// worker.
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
    return apply_async(std::forward<F>(f), std::forward<A>(args)...).get();
  }
  /// Python: apply_async(f, args). As apply, without waiting: an AsyncResult.
  /// f and the arguments are copied first.
  template <class F, class... A>
  auto apply_async(F&& f, A&&... args) {
    using Out = std::invoke_result_t<std::decay_t<F>&, std::decay_t<A>&...>;
    require_running("ThreadPool.apply_async()");
    auto state = std::make_shared<detail::ResultState<Out>>();
    submit(
        [state, fn = std::forward<F>(f),
         bound = std::make_tuple(std::forward<A>(args)...)]() mutable {
          try {
            if constexpr (std::is_void_v<Out>) {
              std::apply(fn, bound);
              state->set_value();
            } else {
              state->set_value(std::apply(fn, bound));
            }
          } catch (...) {
            state->set_exception(std::current_exception());
          }
        },
        [state](std::exception_ptr e) { state->set_exception(std::move(e)); });
    return AsyncResult<Out>(std::move(state));
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
    auto job = start_map<true>(owned->first, owned->second, chunksize, [owned, state](auto& j) {
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
  using Task = detail::TaskSink::Task;
  using Cancel = detail::TaskSink::Cancel;

  void submit(Task task, Cancel cancel);
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

  template <bool kPlain, class F, class Item>
  static decltype(auto) call(F& f, Item&& item) {
    if constexpr (kPlain) {
      return std::invoke(f, std::forward<Item>(item));
    } else {
      return std::apply(f, std::forward<Item>(item));
    }
  }

  // Splits items into chunks and queues one task per chunk. on_done(job)
  // runs in the thread that finishes the last chunk.
  template <bool kPlain, class F, class R, class OnDone>
  auto start_map(F& f, const R& items, std::size_t chunksize, OnDone on_done) {
    static_assert(std::ranges::forward_range<const R>,
                  "map needs a range it can read more than once; use imap for a single-pass one");
    using Item = std::ranges::range_reference_t<const R>;
    using Out = std::decay_t<decltype(call<kPlain>(f, std::declval<Item>()))>;
    static_assert(!std::is_void_v<Out>, "map needs f to return a value; use apply_async for void");
    const auto n = static_cast<std::size_t>(std::ranges::distance(items));
    if (chunksize == 0) chunksize = detail::auto_chunksize(n, worker_count());
    const std::size_t chunks = (n + chunksize - 1) / chunksize;
    auto job = std::make_shared<detail::MapJob<Out>>(n, chunks);
    if (chunks == 0) {
      on_done(*job);
      return job;
    }
    auto it = std::ranges::begin(items);
    for (std::size_t first = 0; first < n; first += chunksize) {
      const std::size_t last = first + chunksize < n ? first + chunksize : n;
      auto run = [job, &f, it, first, last, on_done]() mutable {
        auto at = it;
        auto* slots = job->slots.data();
        std::size_t i = first;
        // A chunk that starts past a failure already found is skipped; within
        // a chunk nothing but f runs per item, so f can be inlined and the
        // loop vectorized where f allows.
        if (job->error.index() >= first) {
          try {
            for (; i < last; ++i, ++at) slots[i] = call<kPlain>(f, *at);
          } catch (...) {
            job->error.record(i, std::current_exception());
          }
        }
        if (job->finish_chunk()) on_done(*job);
      };
      auto cancel = [job, first, on_done](std::exception_ptr e) mutable {
        job->error.record(first, std::move(e));
        if (job->finish_chunk()) on_done(*job);
      };
      submit(std::move(run), std::move(cancel));
      std::ranges::advance(it, static_cast<std::ptrdiff_t>(last - first));
    }
    return job;
  }

  template <bool kPlain, class F, class R>
  auto run_map(F& f, const R& items, std::size_t chunksize) {
    require_running(kPlain ? "ThreadPool.map()" : "ThreadPool.starmap()");
    wake_idle_workers();
    auto job = start_map<kPlain>(f, items, chunksize, [](auto&) {});
    // The caller helps -- it runs queued chunks itself instead of sleeping
    // -- where a core would otherwise be left idle: fewer workers than
    // cores, or a worker whose thread has not started yet; and always when it is itself one of
    // this pool's workers (a task that maps on its own pool would otherwise
    // wait for workers that are all waiting too). With every worker awake
    // on its own core, a helping caller made three threads share two cores
    // and a 1M-item map slower, measured.
    while (!job->done.is_set() && caller_should_help() && run_one_queued()) {
    }
    job->done.wait();
    if (auto e = job->error.take()) std::rethrow_exception(std::move(e));
    return detail::take_results<typename std::decay_t<decltype(*job)>::value_type>(job->slots);
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
