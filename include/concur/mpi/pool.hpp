#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <condition_variable>
#include <thread>
#include <unordered_map>
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

// One call in progress on rank 0 (a map, a starmap, an apply, an imap): it
// hands out its chunks and takes their replies. The engine calls these
// members with its state lock held, from the one thread that drives MPI.
class Job {
 public:
  struct Chunk {
    std::uint64_t first = 0;  // the input index of the chunk's first item
    std::string items;        // encode_items of its items
  };
  enum class Next {
    kChunk,  // `out` holds the next chunk to send
    kLater,  // none yet: an imap whose reader has not asked for more
    kDone,   // no chunk will come any more
  };

  Job(std::uint64_t key, std::string function) : key_(key), function_(std::move(function)) {}
  virtual ~Job() = default;
  Job(const Job&) = delete;
  Job& operator=(const Job&) = delete;

  virtual Next next_chunk(Chunk& out) = 0;
  // A chunk's report (results, and f's errors by index) from a serving rank.
  virtual void on_reply(std::uint64_t first, const std::string& report) = 0;
  // The call cannot complete: a rank could not run its task, or no rank is
  // left. No chunk is asked for afterwards.
  virtual void on_failure(std::exception_ptr error) = 0;
  // The rank that had the chunk at `first` was lost (WorkerLostError): the
  // chunk's items fail with `error`, the call goes on.
  virtual void on_lost(std::uint64_t first, std::exception_ptr error) = 0;
  // The last call: every chunk sent has come back (or never will).
  virtual void on_finish() = 0;

  std::uint64_t key() const { return key_; }
  const std::string& function() const { return function_; }
  // Read under the engine's state lock (Engine::wait's predicate).
  bool finished() const { return finished_; }

 private:
  friend class Engine;
  std::uint64_t key_;
  std::string function_;
  std::size_t in_flight_ = 0;  // chunks sent, reply not yet in
  bool done_sending_ = false;
  bool finished_ = false;
};

// The non-template part of the pool: MPI itself. On rank 0 one thread makes
// every MPI call (MPI_THREAD_SERIALIZED): it hands the chunks of the queued
// jobs to the serving ranks, two in flight per rank, and routes each reply
// to its job, so calls from several threads, map_async and an unfinished
// imap can all be under way at once. When the program initialized MPI with
// less thread support, the thread that waits drives MPI itself.
class Engine {
 public:
  Engine();
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;
  int rank() const { return rank_; }
  int workers() const { return size_ - 1; }

  // Rank 0, any thread: queues a job. std::runtime_error when an earlier
  // call found a rank that did not reply (the job cannot go on).
  void submit(std::shared_ptr<Job> job);
  // Rank 0: a queued job has a new chunk ready.
  void wake();
  // Rank 0: blocks until ready() holds; ready is called with the state lock
  // held, as are the Job members, so it may read what they write.
  void wait(const std::function<bool()>& ready);
  // Rank 0: runs f with the state lock held (an imap reader's side of its job).
  template <class F>
  decltype(auto) locked(F&& f) {
    std::scoped_lock guard(state_mutex_);
    return std::forward<F>(f)();
  }
  // Rank 0: no more jobs; once the queued ones are done, every serving rank
  // is told to return from serve(). Does not block.
  void close();
  // Rank 0, after close(): waits until the serving ranks have been told.
  void join();
  // Other ranks: runs tasks until rank 0 stops them.
  int serve();
  // How long rank 0 waits for a rank's reply before that rank is lost.
  void set_timeout(std::chrono::duration<double> timeout);
  // True when one thread of rank 0 drives MPI in the background.
  bool threaded() const { return threaded_; }

 private:
  struct Route {
    std::shared_ptr<Job> job;
    int worker;
    std::uint64_t first;
  };
  bool drive_once();
  void drive_loop();
  bool send_chunks(std::unique_lock<std::mutex>& lock);
  bool take_replies(std::unique_lock<std::mutex>& lock);
  void finish_if_done(Job& job);
  void deliver(Job& job, std::uint64_t first, std::exception_ptr error, const std::string& report);
  void fail_everything(const std::string& why);
  bool lose_silent_ranks();
  void send_task(int worker, const Job& job, std::uint64_t tag, const Job::Chunk& chunk);
  void stop_workers();
  void start_thread();

  int rank_ = 0;
  int size_ = 1;
  bool finalize_ = false;
  bool threaded_ = false;
  void* comm_ = nullptr;    // an MPI_Comm, kept out of this header
  void* outbox_ = nullptr;  // tasks still being sent

  // Guards everything below, and the state of every queued job.
  std::mutex state_mutex_;
  std::condition_variable progress_;  // a job moved, or the workers were stopped
  std::condition_variable work_;      // the driving thread's sleep: a job came, or close()
  std::vector<std::shared_ptr<Job>> jobs_;  // in the order they came
  std::unordered_map<std::uint64_t, Route> routes_;  // by task tag
  std::vector<int> in_flight_;                       // by rank
  std::size_t outstanding_ = 0;
  std::uint64_t next_tag_ = 0;
  std::chrono::duration<double> timeout_{600.0};
  std::vector<std::chrono::steady_clock::time_point> heard_;  // by rank: its last reply, or
                                                              // the send that found it idle
  std::vector<char> lost_;  // by rank: out of the pool (did not reply in time)
  std::vector<int> pids_;   // by rank
  bool lost_any_ = false;
  std::string broken_;  // why the job can no longer end cleanly; empty while it can
  bool woken_ = false;
  bool closing_ = false;
  bool stopped_ = false;
  bool driving_ = false;  // a thread is driving MPI (drive_once); only one at a time
  int waiters_ = 0;       // threads in wait()
  std::thread thread_;
};

// A map, a starmap or an apply: its items, copied once, are cut into chunks
// as ranks become free; results land in input order. kOne: the result is
// the first (only) one, as apply returns it.
template <class Kind, class Item, bool kOne = false>
class MapJob final : public Job {
 public:
  using Out = typename Kind::Out;
  using Result = std::conditional_t<kOne, Out, std::vector<Out>>;
  using State = concur::detail::ResultState<Result>;

  MapJob(std::string function, std::vector<Item> items, std::size_t chunksize)
      : Job(Kind::key, std::move(function)),
        items_(std::move(items)),
        results_(items_.size()),
        chunksize_(chunksize),
        state_(std::make_shared<State>()) {}

  const std::shared_ptr<State>& state() const { return state_; }

  Next next_chunk(Chunk& out) override {
    if (failure_ || next_ >= items_.size()) return Next::kDone;
    const std::size_t last = std::min(items_.size(), next_ + chunksize_);
    out.first = next_;
    out.items = concur::detail::encode_items(
        std::vector<Item>(items_.begin() + static_cast<std::ptrdiff_t>(next_),
                          items_.begin() + static_cast<std::ptrdiff_t>(last)));
    next_ = last;
    return Next::kChunk;
  }
  void on_reply(std::uint64_t first, const std::string& bytes) override {
    auto report = concur::detail::decode_from_string<concur::detail::IMapReport>(bytes);
    auto outs = concur::detail::decode_items<Out>(report.results);
    for (std::size_t k = 0; k < outs.size() && first + k < results_.size(); ++k) {
      results_[first + k] = std::move(outs[k]);
    }
    for (auto& [index, type, message] : report.errors) {
      error_.record(static_cast<std::size_t>(index),
                    std::make_exception_ptr(multiprocessing::RemoteError(
                        std::move(type), std::move(message), static_cast<std::size_t>(index))));
    }
  }
  void on_failure(std::exception_ptr error) override {
    if (!failure_) failure_ = std::move(error);
  }
  void on_lost(std::uint64_t first, std::exception_ptr error) override {
    error_.record(static_cast<std::size_t>(first), std::move(error));
  }
  void on_finish() override {
    // Nothing is kept here that the caller may hold last (see release_exception).
    if (failure_) {
      state_->set_exception(std::exchange(failure_, nullptr));
    } else if (auto e = error_.take()) {
      state_->set_exception(std::move(e));
    } else if constexpr (kOne) {
      state_->set_value(std::move(results_.front()));
    } else {
      state_->set_value(std::move(results_));
    }
  }

 private:
  std::vector<Item> items_;
  std::vector<Out> results_;
  std::size_t chunksize_;
  std::size_t next_ = 0;
  concur::detail::LowestError error_;
  std::exception_ptr failure_;
  std::shared_ptr<State> state_;
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
/// - Thread-safety: any thread of rank 0 may call map, apply and the async
///   members at once (one thread at a time makes MPI calls: one that waits,
///   or a background thread; the program itself makes no MPI call of its own
///   while a pool is open, unless it initialized MPI with
///   MPI_THREAD_MULTIPLE). One thread
///   iterates a given imap range. If the program initialized MPI with less
///   than MPI_THREAD_SERIALIZED, the pool is driven by the thread that waits:
///   use it from that thread only, and map_async, apply_async return ready.
/// - Blocks: map, starmap, apply and the iterators of imap until their results
///   are in; join() until the serving ranks have been told to stop.
///   map_async and apply_async return at once.
/// - Throws: RemoteError (type, message, index) for the lowest failing index;
///   WorkerLostError for the items of a rank that did not reply for
///   `set_timeout()` (600 s by default: a rank that died or hangs; the pool
///   goes on without it); std::runtime_error when no serving rank is left;
///   std::invalid_argument for calls after close(); std::logic_error for
///   join() before close(), and for map etc. on
///   a rank other than 0.
/// - With one rank (mpirun -np 1) there is no worker: rank 0 runs the tasks
///   itself, in order (on the thread that waits, or in the background).
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
  void set_timeout(std::chrono::duration<double> timeout) { engine_->set_timeout(timeout); }

  /// Python: map(f, iterable, chunksize). f(item) for every item, on the
  /// serving ranks; a std::vector of the results in input order. The items
  /// are copied into a vector first. chunksize 0: about four chunks per rank.
  template <class F, class R>
  auto map(F&& f, const R& items, std::size_t chunksize = 0) {
    return await(submit<true, false>(f, items, chunksize, "mpi::Pool.map()"));
  }
  /// Python: starmap(f, iterable). f(std::get<I>(t)...) for every tuple t,
  /// results in input order.
  template <class F, class R>
  auto starmap(F&& f, const R& tuples, std::size_t chunksize = 0) {
    return await(submit<false, false>(f, tuples, chunksize, "mpi::Pool.starmap()"));
  }
  /// Python: map_async. Returns at once; the work goes on in the background
  /// and the AsyncResult holds the results (or the error map would throw).
  /// Misuse throws here.
  template <class F, class R>
  auto map_async(F&& f, const R& items, std::size_t chunksize = 0) {
    return later(submit<true, false>(f, items, chunksize, "mpi::Pool.map_async()"));
  }
  /// Python: apply(f, args). f(args...) on one serving rank; its result.
  template <class F, class... A>
  auto apply(F&& f, A&&... args) {
    return await(submit<false, true>(f, one_call(std::forward<A>(args)...), 1, "mpi::Pool.apply()"));
  }
  /// Python: apply_async. Returns at once; the AsyncResult holds f's result
  /// or its error. Misuse throws here.
  template <class F, class... A>
  auto apply_async(F&& f, A&&... args) {
    return later(
        submit<false, true>(f, one_call(std::forward<A>(args)...), 1, "mpi::Pool.apply_async()"));
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

  /// Python: close(). No more calls; once the work already queued is done,
  /// the serving ranks return from serve(). Does not block.
  void close();
  /// For tests: the messages themselves.
  detail::Engine& engine_for_testing() { return *engine_; }
  /// Python: join(). Waits until the queued work is done and the serving
  /// ranks have been told to stop; before close(): std::invalid_argument.
  void join();

 private:
  void require_running(const char* call) const;

  template <class... A>
  static auto one_call(A&&... args) {
    return std::vector<std::tuple<std::decay_t<A>...>>{std::make_tuple(std::forward<A>(args)...)};
  }

  // Queues the job of a map, a starmap or an apply; the engine's thread sends it.
  template <bool kPlain, bool kOne, class F, class R>
  auto submit(F& f, const R& items, std::size_t chunksize, const char* call) {
    using Fn = std::decay_t<F>;
    using Item = std::ranges::range_value_t<const R>;
    static_assert(detail::kSendable<Fn>,
                  "mpi::Pool sends f to other machines by identity only: pass a function, a "
                  "captureless lambda or a default-constructible function object");
    using Job = detail::MapJob<detail::TaskKind<kPlain, Fn, Item>, Item, kOne>;
    require_running(call);
    std::vector<Item> all(std::ranges::begin(items), std::ranges::end(items));
    if (chunksize == 0) {
      chunksize = concur::detail::auto_chunksize(all.size(),
                                                 static_cast<std::size_t>(std::max(1, size())));
    }
    auto job = std::make_shared<Job>(detail::encode_function<Fn>(f), std::move(all), chunksize);
    engine_->submit(job);
    return job->state();
  }

  // The result of a queued job, once it is in: a value, or its error thrown.
  template <class State>
  auto await(const std::shared_ptr<State>& state) {
    engine_->wait([&state] { return state->ready(); });
    if (state->error()) std::rethrow_exception(state->error());
    return std::move(*state->value);
  }

  // The AsyncResult of a queued job. Without a thread driving MPI, the job
  // is done first (the program initialized MPI without thread support).
  template <class State>
  auto later(std::shared_ptr<State> state) {
    if (!engine_->threaded()) engine_->wait([&state] { return state->ready(); });
    using Result = std::decay_t<decltype(*state->value)>;
    return multiprocessing::AsyncResult<Result>(std::move(state));
  }

  template <bool kOrdered, class F, class R>
  auto lazy(F&& f, R&& items, std::size_t chunksize, const char* call);

  std::unique_ptr<detail::Engine> engine_;
  bool closed_ = false;
};

}  // namespace concur::mpi

#include "concur/mpi/imap.hpp"  // IWYU pragma: export
