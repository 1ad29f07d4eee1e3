// The process Pool's engine: the worker processes of one call, the frames
// they send back, deaths, timeouts and replacements. The templates in
// <concur/multiprocessing/pool.hpp> say what a call's work is (PoolWork);
// this part, compiled once in src/pool.cpp, runs it.
//
// One call, one set of workers: a call forks its workers when it is made, so
// they hold the program's state as it was then (the inputs included: nothing
// is sent that a worker already has). Between calls a Pool has no process.
#pragma once

#include <poll.h>
#include <sys/types.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "concur/detail/deadline.hpp"

namespace concur::multiprocessing {
class Process;
}

namespace concur::detail {

class Endpoint;

inline constexpr std::uint64_t kNoItem = ~std::uint64_t{0};

// What each worker position shows the caller, in the call's shared memory:
// the item it is running (for task_timeout and for naming the item a dead
// worker took with it). One cache line pair each: a worker stores its item
// index before every call, and slots sharing a line made the workers of a
// trivial map pass that line back and forth at every item (measured: most
// of a 1M-int map's compute time).
//
// `item` is a plain word, read by the caller through running_item(). In a
// pool with task_timeout the worker stores it atomically (the caller reads
// it while the worker runs); without one the worker's item loop stores it
// plainly, and the caller reads it only once that worker has ended. A plain
// store lets the compiler vectorise a loop whose f it inlines (keeping only
// the last store of a run of items), yet it must still make the store before
// any call f makes (the word is reachable from outside), so a worker that
// dies in abort, raise, _exit or any other call names its item exactly.
struct alignas(128) PoolSlot {
  std::uint64_t item = kNoItem;
  std::atomic<std::int64_t> since_ns{0};
};

// The item a worker runs now (kNoItem: none), as the caller sees it.
inline std::uint64_t running_item(PoolSlot& slot) {
  return std::atomic_ref<std::uint64_t>(slot.item).load(std::memory_order_acquire);
}

// A pool's settings, shared by its calls.
struct PoolSettings {
  int processes = 1;
  std::function<void()> initializer;
  int maxtasksperchild = 0;
  std::int64_t task_timeout_ns = 0;  // 0: none
  std::string name_prefix = "ForkPoolWorker";
  bool resident = false;  // WorkerStart::once
};

// The worker's side of its pipe, in the child.
class WorkerLink {
 public:
  WorkerLink(Endpoint& end, PoolSlot& slot, bool timed, int max_tasks)
      : end_(end), slot_(slot), timed_(timed), max_tasks_(max_tasks) {}
  void send(std::span<const std::byte> frame);
  // The next frame from the caller; none once the caller closed its end.
  std::optional<std::vector<std::byte>> recv();
  // True when a frame (or the end) is there to read now.
  bool ready();
  void begin_item(std::uint64_t index) {
    if (timed_) slot_.since_ns.store(Deadline::monotonic_ns(), std::memory_order_relaxed);
    std::atomic_ref<std::uint64_t>(slot_.item).store(index, std::memory_order_release);
  }
  void end_item() { std::atomic_ref<std::uint64_t>(slot_.item).store(kNoItem, std::memory_order_release); }
  bool timed() const { return timed_; }
  // The word an item loop of a pool without task_timeout stores its item's
  // index in, plainly (PoolSlot).
  std::uint64_t* untimed_item_word() { return timed_ ? nullptr : &slot_.item; }
  // Tasks (chunks) a worker runs before it ends; 0: no limit.
  int max_tasks() const { return max_tasks_; }

 private:
  Endpoint& end_;
  PoolSlot& slot_;
  bool timed_;
  int max_tasks_;
};

// One call's work, as the engine sees it.
class PoolWork {
 public:
  virtual ~PoolWork() = default;
  // In a worker process: its whole life; it ends when this returns.
  virtual void run_worker(WorkerLink& link) = 0;
  // In the caller: a frame the worker at `position` sent.
  virtual void on_frame(int position, std::span<const std::byte> frame) = 0;
  // In the caller: the worker at `position` ended. item: what it was running
  // (kNoItem if nothing); failure: why that item failed (it died, or ran
  // past task_timeout), null for a worker that ended between items.
  virtual void on_worker_end(int position, std::uint64_t item, std::exception_ptr failure) = 0;
  // Workers keep dying before taking any item (an initializer that kills
  // its process): fail what is left (as WorkerLostError with this pid and
  // exit code) instead of forking forever.
  virtual void fail_remaining(int pid, int exitcode) = 0;
  // True when a worker forked now would find work.
  virtual bool wants_worker() = 0;
  // True when no result is still expected.
  virtual bool complete() = 0;
};

// The worker processes of one call.
// Thread-safety: one thread at a time (the caller, or the pool's supervisor).
class PoolRunner {
 public:
  PoolRunner(std::shared_ptr<const PoolSettings> settings, PoolWork& work, int max_workers,
             PoolSlot* slots);
  ~PoolRunner();  // kills and reaps any worker still running
  PoolRunner(const PoolRunner&) = delete;
  PoolRunner& operator=(const PoolRunner&) = delete;

  // Forks workers while the work wants them, up to max_workers live.
  void start_workers();
  // True once the work is complete and every worker is reaped.
  bool finished() const;
  // Waits until something happens or the deadline passes, and handles it.
  void step(Deadline deadline);
  // start_workers() then step() until finished().
  void run();
  // Ends every worker at once (SIGKILL) and reaps it; nothing is reported.
  void kill_all();
  // Closes the caller's end of every pipe: workers waiting for a task end.
  void close_all();
  // A frame to the worker at `position`; false if it is gone.
  bool send(int position, std::span<const std::byte> frame);
  // Positions with a live worker.
  std::vector<int> live_positions() const;
  int live_count() const;

  // For a supervisor polling many runners at once.
  void collect(std::vector<pollfd>& fds) const;
  std::int64_t next_deadline_ns() const;
  void handle(const pollfd* fds, std::size_t count);

 private:
  struct Worker;
  void fork_worker(int position);
  void read_frames(Worker& w, bool draining);
  void end_worker(Worker& w);
  void check_timeouts();

  std::shared_ptr<const PoolSettings> settings_;
  PoolWork& work_;
  int max_workers_;
  PoolSlot* slots_;
  std::vector<std::unique_ptr<Worker>> workers_;  // by position; null when free
  int idle_deaths_ = 0;
};

// The supervisor of a pool's asynchronous calls (apply_async, map_async):
// one internal thread, started with the first such call, that drives their
// workers and sets their results. A call that finds `processes` workers of
// earlier asynchronous calls still running waits here for its turn, and its
// workers are forked when it starts.
class PoolSupervisor {
 public:
  struct Job {
    std::unique_ptr<PoolWork> work;
    std::shared_ptr<void> memory;  // the call's shared memory
    std::unique_ptr<PoolRunner> runner;
    std::function<void()> finish;                  // sets the result
    std::function<void(std::exception_ptr)> fail;  // terminate(): the result fails
  };

  explicit PoolSupervisor(std::shared_ptr<const PoolSettings> settings);
  ~PoolSupervisor();  // terminate() then join

  // In the calling thread: forks the job's workers now when the pool has
  // room for them, then hands the job over.
  void submit(Job job);
  // Waits until every job has finished, then stops the thread.
  void join();
  // Kills every job's workers; their results fail.
  void terminate();

 private:
  struct State;
  std::shared_ptr<State> state_;
};

// An eventfd that wakes a thread sleeping in poll(): wake() from any
// thread; the sleeper polls fd() and drain()s it once it is readable.
class WakeFd {
 public:
  WakeFd();  // std::system_error if no eventfd can be made
  ~WakeFd();
  WakeFd(const WakeFd&) = delete;
  WakeFd& operator=(const WakeFd&) = delete;

  int fd() const { return fd_; }
  void wake() const;
  void drain() const;

 private:
  int fd_ = -1;
};

// poll()'s timeout, in whole milliseconds rounded up, until a monotonic
// deadline (Deadline::kNever: -1, none).
int poll_timeout_ms(std::int64_t deadline_ns);

// The calling exception as its demangled type name and message.
std::pair<std::string, std::string> exception_parts(const std::exception_ptr& e);

}  // namespace concur::detail
