#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <ranges>
#include <span>
#include <stdexcept>
#include <string>
#include <tuple>
#include <type_traits>
#include <typeinfo>
#include <utility>
#include <vector>

#include "concur/detail/map_job.hpp"
#include "concur/detail/result_state.hpp"
#include "concur/errors.hpp"
#include "concur/multiprocessing/async_result.hpp"
#include "concur/multiprocessing/pool.hpp"
#include "concur/multiprocessing/pool_imap.hpp"
#include "concur/multiprocessing/transfer.hpp"

namespace concur::mpi::detail {

// What a serving rank runs for one task: decodes the items, calls f, and
// encodes an IMapReport (results, errors by item index).
using TaskRunner = std::string (*)(const std::string& function, const std::string& items,
                                   std::uint64_t first);

// Registers a runner under a key that is the same on every rank (a hash of
// the task type's mangled name); returns the key. Called by the static
// initializer of each TaskKind instantiation, so on every rank before main.
std::uint64_t register_task(const char* type_name, TaskRunner runner);

// A function pointer as (module, offset): the same function on every rank,
// whatever the address-space layout (ASLR) of each process.
std::string function_to_wire(const void* address);
// The address in this process; std::runtime_error if it cannot be resolved.
const void* function_from_wire(const std::string& wire);

// How f reaches a serving rank: a function pointer by module and offset; a
// captureless lambda or another default-constructible function object by
// its type alone (a fresh one is made there).
template <class F>
constexpr bool kSendable = std::is_pointer_v<F> || std::is_default_constructible_v<F>;

template <class F>
std::string encode_function(const F& f) {
  if constexpr (std::is_pointer_v<F>) {
    return function_to_wire(reinterpret_cast<const void*>(f));
  } else {
    return {};
  }
}

template <class F>
F decode_function(const std::string& wire) {
  if constexpr (std::is_pointer_v<F>) {
    return reinterpret_cast<F>(const_cast<void*>(function_from_wire(wire)));
  } else {
    return F{};
  }
}

template <bool kPlain, class F, class Item>
struct TaskKind {
  using Out = std::decay_t<decltype(concur::detail::pool_call<kPlain>(std::declval<F&>(),
                                                                      std::declval<Item&>()))>;

  static std::string run(const std::string& function, const std::string& items_bytes,
                         std::uint64_t first) {
    F f = decode_function<F>(function);
    auto items = concur::detail::decode_items<Item>(items_bytes);
    concur::detail::IMapReport report;
    std::vector<Out> outs(items.size());
    for (std::size_t k = 0; k < items.size(); ++k) {
      try {
        outs[k] = concur::detail::pool_call<kPlain>(f, items[k]);
      } catch (...) {
        auto [type, message] = concur::detail::exception_parts(std::current_exception());
        report.errors.emplace_back(first + k, std::move(type), std::move(message));
      }
    }
    report.results = concur::detail::encode_items(outs);
    return concur::detail::encode_to_string(report);
  }

  static const std::uint64_t key;
};
template <bool kPlain, class F, class Item>
const std::uint64_t TaskKind<kPlain, F, Item>::key =
    register_task(typeid(TaskKind<kPlain, F, Item>).name(), &TaskKind<kPlain, F, Item>::run);

// The non-template part of the pool: MPI itself.
class Engine {
 public:
  Engine();
  ~Engine();
  int rank() const { return rank_; }
  int workers() const { return size_ - 1; }
  // Rank 0: sends a task; the reply comes back through next_reply().
  void send_task(int worker, std::uint64_t key, const std::string& function, std::uint64_t tag,
                 std::uint64_t first, const std::string& items);
  struct Reply {
    int worker;
    std::uint64_t tag;
    std::string report;
  };
  // Rank 0: the next reply from any worker; std::runtime_error after
  // `timeout` without any reply while tasks are out (a rank that died).
  Reply next_reply();
  // Rank 0: tells every worker to return from serve().
  void stop_workers();
  // Other ranks: runs tasks until rank 0 stops them.
  int serve();
  std::chrono::duration<double> timeout{600.0};

 private:
  int rank_ = 0;
  int size_ = 1;
  bool finalize_ = false;
  bool stopped_ = false;
  bool broken_ = false;  // a reply never came: the job cannot end cleanly
  void* comm_ = nullptr;    // an MPI_Comm, kept out of this header
  void* outbox_ = nullptr;  // tasks still being sent
};

}  // namespace concur::mpi::detail

namespace concur::mpi {

/// A pool whose workers are the other ranks of an MPI job: the same members
/// and error rules as multiprocessing::Pool, across machines.
/// - Python: no counterpart in the standard library (mpi4py.futures is the
///   nearest); the members are those of multiprocessing.Pool.
/// - Use: every rank constructs it; ranks other than 0 call serve(), which
///   returns 0 once rank 0 closes the pool (explicitly or by its
///   destructor); MPI is initialized by the first Pool if the program has not
///   done it, and finalized by that Pool's destructor on every rank.
///   \code
///   concur::mpi::Pool pool;
///   if (!pool.is_master()) return pool.serve();
///   auto squares = pool.map(square, items);
///   \endcode
/// - f: a function, a captureless lambda or a default-constructible function
///   object: only its identity crosses the network (a function by module and
///   offset, anything else by its type), never a pointer; a capturing lambda
///   does not compile. Items and results: transferable types.
/// - Balancing: chunks are handed out as ranks finish the previous ones (two
///   in flight per rank), so a slow rank does not hold the others.
/// - Thread-safety: use a pool from one thread of rank 0.
/// - Blocks: map, starmap, apply and the iterators of imap until their results
///   are in. map_async and apply_async run the work before they return (the
///   AsyncResult is ready at once).
/// - Throws: RemoteError (type, message, index) for the lowest failing index;
///   std::runtime_error when no rank replies for `timeout()` (600 s by
///   default: a rank that died); std::invalid_argument for calls after
///   close(); std::logic_error for join() before close(), and for map etc. on
///   a rank other than 0.
/// - With one rank (mpirun -np 1) there is no worker: rank 0 runs the tasks
///   itself, in order.
class Pool {
 public:
  /// On every rank, collectively; initializes MPI if the program has not.
  Pool();
  /// On rank 0: close(), which lets the serving ranks return from serve().
  /// The Pool that initialized MPI finalizes it. Never throws.
  ~Pool();
  Pool(const Pool&) = delete;
  Pool& operator=(const Pool&) = delete;

  /// True on rank 0, the rank that runs the program and calls map etc.
  bool is_master() const { return engine_->rank() == 0; }
  /// On ranks other than 0: runs the tasks rank 0 sends until it closes the
  /// pool, then returns 0 (an exit status for main). On rank 0: std::logic_error.
  int serve();
  /// The number of ranks that run tasks: the job's size - 1 (0 with one rank).
  int size() const { return engine_->workers(); }
  /// How long rank 0 waits for any reply before it gives up on the job.
  void set_timeout(std::chrono::duration<double> timeout) { engine_->timeout = timeout; }

  /// Python: map(f, iterable, chunksize). f(item) for every item, on the
  /// serving ranks; a std::vector of the results in input order. The items
  /// are copied into a vector first. chunksize 0: about four chunks per rank.
  template <class F, class R>
  auto map(F&& f, const R& items, std::size_t chunksize = 0) {
    return run<true>(std::forward<F>(f), items, chunksize, "mpi::Pool.map()");
  }
  /// Python: starmap(f, iterable). f(std::get<I>(t)...) for every tuple t,
  /// results in input order.
  template <class F, class R>
  auto starmap(F&& f, const R& tuples, std::size_t chunksize = 0) {
    return run<false>(std::forward<F>(f), tuples, chunksize, "mpi::Pool.starmap()");
  }
  /// As map, but the result (or f's error) comes in an AsyncResult that is
  /// ready when this returns; misuse still throws here.
  template <class F, class R>
  auto map_async(F&& f, const R& items, std::size_t chunksize = 0) {
    using Out = decltype(map(std::forward<F>(f), items, chunksize));
    auto state = std::make_shared<concur::detail::ResultState<Out>>();
    try {
      state->set_value(map(std::forward<F>(f), items, chunksize));
    } catch (const std::logic_error&) {
      throw;
    } catch (...) {
      state->set_exception(std::current_exception());
    }
    return multiprocessing::AsyncResult<Out>(std::move(state));
  }
  /// Python: apply(f, args). f(args...) on one serving rank; its result.
  template <class F, class... A>
  auto apply(F&& f, A&&... args) {
    std::vector<std::tuple<std::decay_t<A>...>> one{std::make_tuple(std::forward<A>(args)...)};
    auto out = starmap(std::forward<F>(f), one, 1);
    return std::move(out.front());
  }
  /// As apply, but the result (or f's error) comes in an AsyncResult that is
  /// ready when this returns; misuse still throws here.
  template <class F, class... A>
  auto apply_async(F&& f, A&&... args) {
    using Out = decltype(apply(std::forward<F>(f), std::forward<A>(args)...));
    auto state = std::make_shared<concur::detail::ResultState<Out>>();
    try {
      state->set_value(apply(std::forward<F>(f), std::forward<A>(args)...));
    } catch (const std::logic_error&) {
      throw;
    } catch (...) {
      state->set_exception(std::current_exception());
    }
    return multiprocessing::AsyncResult<Out>(std::move(state));
  }
  /// In input order, lazily: the input is read a chunk at a time. An
  /// IMapRange; chunksize 0: std::invalid_argument.
  template <class F, class R>
  auto imap(F&& f, R&& items, std::size_t chunksize = 1) {
    return lazy<true>(std::forward<F>(f), std::forward<R>(items), chunksize, "mpi::Pool.imap()");
  }
  /// As imap, the results in the order they arrive.
  template <class F, class R>
  auto imap_unordered(F&& f, R&& items, std::size_t chunksize = 1) {
    return lazy<false>(std::forward<F>(f), std::forward<R>(items), chunksize,
                       "mpi::Pool.imap_unordered()");
  }

  /// No more calls; the serving ranks return from serve().
  void close();
  /// For tests: the messages themselves.
  detail::Engine& engine_for_testing() { return *engine_; }
  /// Waits for the serving ranks to be told to stop; only after close().
  void join();

 private:
  void require_running(const char* call) const;

  template <bool kPlain, class F, class R>
  auto run(F&& f, const R& items, std::size_t chunksize, const char* call) {
    using Fn = std::decay_t<F>;
    using Item = std::ranges::range_value_t<const R>;
    static_assert(detail::kSendable<Fn>,
                  "mpi::Pool sends f to other machines by identity only: pass a function, a "
                  "captureless lambda or a default-constructible function object");
    using Kind = detail::TaskKind<kPlain, Fn, Item>;
    using Out = typename Kind::Out;
    require_running(call);
    std::vector<Item> all(std::ranges::begin(items), std::ranges::end(items));
    const std::size_t n = all.size();
    std::vector<Out> results(n);
    concur::detail::LowestError error;
    if (chunksize == 0) {
      chunksize = concur::detail::auto_chunksize(n, static_cast<std::size_t>(std::max(1, size())));
    }
    const std::string function = detail::encode_function<Fn>(f);
    auto store = [&](std::uint64_t first, const std::string& bytes) {
      auto report = concur::detail::decode_from_string<concur::detail::IMapReport>(bytes);
      auto outs = concur::detail::decode_items<Out>(report.results);
      for (std::size_t k = 0; k < outs.size() && first + k < n; ++k) {
        results[first + k] = std::move(outs[k]);
      }
      for (auto& [index, type, message] : report.errors) {
        error.record(static_cast<std::size_t>(index),
                     std::make_exception_ptr(multiprocessing::RemoteError(
                         std::move(type), std::move(message), static_cast<std::size_t>(index))));
      }
    };
    auto slice = [&](std::size_t first) {
      const std::size_t last = std::min(n, first + chunksize);
      return concur::detail::encode_items(
          std::vector<Item>(all.begin() + static_cast<std::ptrdiff_t>(first),
                            all.begin() + static_cast<std::ptrdiff_t>(last)));
    };
    if (size() == 0) {
      for (std::size_t first = 0; first < n; first += chunksize) {
        store(first, Kind::run(function, slice(first), first));
      }
    } else {
      std::size_t next = 0;
      std::size_t out = 0;
      auto send_next = [&](int worker) {
        if (next >= n) return;
        engine_->send_task(worker, Kind::key, function, next, next, slice(next));
        next += chunksize;
        ++out;
      };
      for (int round = 0; round < 2; ++round) {
        for (int w = 1; w <= size(); ++w) send_next(w);
      }
      while (out > 0) {
        auto reply = engine_->next_reply();
        --out;
        store(reply.tag, reply.report);
        send_next(reply.worker);
      }
    }
    if (auto e = error.error()) std::rethrow_exception(e);
    return results;
  }

  template <bool kOrdered, class F, class R>
  auto lazy(F&& f, R&& items, std::size_t chunksize, const char* call);

  std::unique_ptr<detail::Engine> engine_;
  bool closed_ = false;
};

}  // namespace concur::mpi

#include "concur/mpi/imap.hpp"  // IWYU pragma: export
