// ThreadPool's workers and task queue.
#include "concur/multiprocessing/thread_pool.hpp"

#include <sched.h>

#include <atomic>
#include <cstdio>
#include <deque>
#include <mutex>
#include <string>
#include <thread>

#include "concur/detail/futex.hpp"
#include "concur/detail/spin.hpp"
#include "concur/threading/lock.hpp"

namespace concur::multiprocessing {

int cpu_count();

namespace {

enum class PoolState { kRun, kClose, kTerminate };

// An idle worker spins this many rounds (a pause instruction each, about
// 20-50 us in all) before it sleeps, so that back-to-back calls find it
// awake. Every kYieldEvery-th round it yields its core instead: on a machine
// with no core to spare, a spinning worker otherwise keeps the caller (which
// queues the tasks, or waits for a map's end) off the core for a scheduler
// slice; measured, yielding halved tasks10k and took a fifth off map1M
// (docs/benchmarks.md).
constexpr int kIdleSpins = 4000;
constexpr int kYieldEvery = 32;
// After wake_idle_workers(): long enough for the caller to allocate a large
// map's results (4 MB take ~50 us) before it queues the chunks.
constexpr int kWokenSpins = 4 * kIdleSpins;

int checked_processes(const PoolOptions& options) {
  if (options.processes < 0) {
    throw std::invalid_argument(
        "ThreadPool(): processes must be at least 1 (or 0 for cpu_count()), got " +
        std::to_string(options.processes));
  }
  if (options.maxtasksperchild < 0) {
    throw std::invalid_argument("ThreadPool(): maxtasksperchild must be >= 0, got " +
                                std::to_string(options.maxtasksperchild));
  }
  if (options.task_timeout) {
    throw std::invalid_argument(
        "ThreadPool(): task_timeout cannot be honoured: a running thread cannot be stopped; use "
        "a process Pool");
  }
  return options.processes == 0 ? cpu_count() : options.processes;
}

// Vyukov's intrusive multi-producer queue. A producer links its node with
// one exchange and never waits, so a caller queueing many tasks never
// contends with the workers; consumers take nodes one at a time, each
// holding the pool's consumer lock.
class TaskQueue {
 public:
  TaskQueue() = default;
  TaskQueue(const TaskQueue&) = delete;
  TaskQueue& operator=(const TaskQueue&) = delete;

  void push(detail::TaskNode* node) noexcept {
    node->next.store(nullptr, std::memory_order_relaxed);
    detail::TaskNode* prev = tail_.exchange(node, std::memory_order_seq_cst);
    prev->next.store(node, std::memory_order_release);
  }

  // With the consumer lock held. Null when the queue is empty.
  detail::TaskNode* pop() noexcept {
    for (int round = 0;; ++round) {
      if (round > 0) pause(round);
      detail::TaskNode* head = head_;
      detail::TaskNode* next = head->next.load(std::memory_order_acquire);
      if (head == &stub_) {
        if (next == nullptr) {
          if (tail_.load(std::memory_order_seq_cst) == &stub_) return nullptr;
          continue;  // a producer is between its exchange and its link
        }
        head_ = next;
        head = next;
        next = next->next.load(std::memory_order_acquire);
      }
      if (next != nullptr) {
        head_ = next;
        return head;
      }
      if (head != tail_.load(std::memory_order_seq_cst)) continue;  // a link is on its way
      push(&stub_);  // head is the last node: the stub takes its place
      next = head->next.load(std::memory_order_acquire);
      if (next != nullptr) {
        head_ = next;
        return head;
      }
    }
  }

  // True once every node pushed so far has been popped (or is being popped).
  bool empty() const noexcept { return tail_.load(std::memory_order_seq_cst) == &stub_; }

 private:
  // A producer preempted between its two steps holds up the consumers: spin
  // briefly, then give it the core.
  static void pause(int round) {
    if (round < 64) {
      detail::cpu_relax();
    } else {
      sched_yield();
    }
  }

  struct Stub final : detail::TaskNode {
    void run() noexcept override {}
    void cancel(std::exception_ptr) noexcept override {}
    void release() noexcept override {}
  };

  Stub stub_;
  detail::TaskNode* head_ = &stub_;  // consumers only
  alignas(64) std::atomic<detail::TaskNode*> tail_{&stub_};
};

}  // namespace

// The pool (its Core) whose worker the calling thread is, if any.
thread_local const void* t_worker_of = nullptr;

// Idle workers sleep on `epoch` (an event count): a worker registers in
// `sleepers`, reads the epoch, checks for work once more and sleeps only if
// the epoch is unchanged; whoever makes work or changes the state bumps the
// epoch and wakes sleepers only when there are any. Every step of that
// handshake is sequentially consistent, so a worker either sees the new work
// or is woken.
struct ThreadPool::Core final : detail::TaskSink, std::enable_shared_from_this<Core> {
  explicit Core(PoolOptions opts)
      : options(std::move(opts)), size(checked_processes(options)) {}

  ~Core() override { drain_and_cancel(terminated_error()); }

  static std::exception_ptr terminated_error() {
    return std::make_exception_ptr(
        std::runtime_error("ThreadPool.terminate(): the task was dropped before it ran"));
  }

  // False, with the task cancelled, if the pool no longer takes work.
  bool try_submit(detail::TaskPtr task, bool from_producer) {
    // `submitting` tells close() and terminate() that a task may still land
    // in the queue after they changed the state.
    submitting.fetch_add(1, std::memory_order_seq_cst);
    const PoolState now = state.load(std::memory_order_seq_cst);
    if (now == PoolState::kRun || (from_producer && now == PoolState::kClose)) {
      queue.push(task.release());
      done_submitting();
      wake(1);
      return true;
    }
    done_submitting();
    task->cancel(std::make_exception_ptr(std::invalid_argument(
        now == PoolState::kTerminate ? "ThreadPool: the pool was terminated before this task ran"
                                     : "ThreadPool: the pool is closed; make a new pool")));
    return false;
  }
  // A worker that saw a submit in flight after close() went to sleep
  // waiting for it to land or be refused: the last such submit wakes them.
  void done_submitting() {
    if (submitting.fetch_sub(1, std::memory_order_seq_cst) == 1 &&
        state.load(std::memory_order_seq_cst) != PoolState::kRun) {
      wake(detail::kWakeAll, true);
    }
  }
  // A lazy producer's late chunk fails, it never hangs.
  void submit(detail::TaskPtr task, bool from_producer) override {
    try_submit(std::move(task), from_producer);
  }
  void producer_started() override { producers.fetch_add(1, std::memory_order_seq_cst); }
  void producer_done() override {
    if (producers.fetch_sub(1, std::memory_order_seq_cst) == 1) wake(detail::kWakeAll, true);
  }
  std::size_t workers() const override { return static_cast<std::size_t>(size); }

  // Wakes up to n sleeping workers; `always` bumps the epoch even when none
  // sleeps (a state change every worker must see).
  void wake(int n, bool always = false) {
    if (!always && sleepers.load(std::memory_order_seq_cst) == 0) return;
    epoch.fetch_add(1, std::memory_order_seq_cst);
    if (sleepers.load(std::memory_order_seq_cst) != 0) {
      detail::futex_wake(epoch, n, detail::Scope::kPrivate);
    }
  }

  void set_state(PoolState next) {
    std::scoped_lock guard(threads_lock);
    if (state.load(std::memory_order_relaxed) != PoolState::kTerminate) {
      state.store(next, std::memory_order_seq_cst);
    }
  }

  // Null if the queue is empty or the pool was terminated.
  detail::TaskNode* take() {
    lock_consumers();
    detail::TaskNode* task =
        state.load(std::memory_order_seq_cst) == PoolState::kTerminate ? nullptr : queue.pop();
    consumer_lock.release();
    return task;
  }

  // Consumers hold the lock for a few instructions: a contender retries a
  // few times before it sleeps.
  void lock_consumers() {
    for (int i = 0; i < 64; ++i) {
      if (consumer_lock.acquire(false)) return;
      detail::cpu_relax();
    }
    consumer_lock.acquire();
  }

  void drain_and_cancel(const std::exception_ptr& why) {
    // A submit that read the state before it changed may still push.
    while (submitting.load(std::memory_order_seq_cst) != 0) sched_yield();
    for (;;) {
      lock_consumers();
      detail::TaskNode* task = queue.pop();
      consumer_lock.release();
      if (task == nullptr) return;
      task->cancel(why);
      task->release();
    }
  }

  // After close(): no task is queued or on its way, and no lazy producer
  // can add one.
  bool closed_and_drained() const {
    return state.load(std::memory_order_seq_cst) == PoolState::kClose &&
           producers.load(std::memory_order_seq_cst) == 0 &&
           submitting.load(std::memory_order_seq_cst) == 0 && queue.empty();
  }

  // With threads_lock held.
  void start_worker() {
    auto self = shared_from_this();
    threads.emplace_back([self] { self->work(); });
  }

  void work() {
    t_worker_of = this;
    if (options.initializer) {
      try {
        options.initializer();
      } catch (const std::exception& e) {
        std::fprintf(stderr, "ThreadPool: the initializer threw: %s\n", e.what());
      } catch (...) {
        std::fprintf(stderr, "ThreadPool: the initializer threw\n");
      }
    }
    int done = 0;
    int spins = kIdleSpins;
    for (;;) {
      if (detail::TaskNode* task = take()) {
        task->run();  // every task catches its own exceptions
        task->release();
        spins = kIdleSpins;
        if (options.maxtasksperchild > 0 && ++done >= options.maxtasksperchild) {
          std::scoped_lock guard(threads_lock);
          if (state.load(std::memory_order_relaxed) != PoolState::kTerminate) start_worker();
          return;
        }
        continue;
      }
      if (state.load(std::memory_order_seq_cst) == PoolState::kTerminate || closed_and_drained()) {
        return;
      }
      // An idle worker looks at the queue for a few tens of microseconds
      // before it sleeps: a caller issuing maps back to back (the common
      // case) then finds it awake, as OpenMP's workers are.
      const unsigned seen_before_spin = epoch.load(std::memory_order_relaxed);
      for (int spin = 0; spin < spins && queue.empty() &&
                         epoch.load(std::memory_order_relaxed) == seen_before_spin;
           ++spin) {
        if (spin % kYieldEvery == kYieldEvery - 1) {
          sched_yield();
        } else {
          detail::cpu_relax();
        }
      }
      spins = kIdleSpins;
      if (!queue.empty()) continue;
      sleepers.fetch_add(1, std::memory_order_seq_cst);
      const unsigned seen = epoch.load(std::memory_order_seq_cst);
      if (queue.empty() && state.load(std::memory_order_seq_cst) != PoolState::kTerminate &&
          !closed_and_drained()) {
        detail::futex_wait(epoch, seen, detail::Scope::kPrivate, detail::Deadline::never());
        // Woken with nothing queued: a map is about to queue its chunks.
        if (queue.empty()) spins = kWokenSpins;
      }
      sleepers.fetch_sub(1, std::memory_order_seq_cst);
    }
  }

  const PoolOptions options;
  const int size;
  TaskQueue queue;
  threading::Lock consumer_lock;
  // Read on every take and submit, written only by close and terminate: on
  // a line of its own, away from the counters producers write.
  alignas(64) std::atomic<PoolState> state{PoolState::kRun};
  alignas(64) std::atomic<int> submitting{0};  // submit() calls between their state check and their push
  std::atomic<int> producers{0};        // lazy producers (imap) still running
  alignas(64) std::atomic<std::uint32_t> epoch{0};  // the idle workers' futex word
  std::atomic<int> sleepers{0};         // workers about to sleep or sleeping on `epoch`
  threading::Lock threads_lock;         // guards `threads` and state changes
  std::deque<std::thread> threads;
};

ThreadPool::ThreadPool(int processes) : ThreadPool(PoolOptions{processes, {}, 0, std::nullopt}) {}

ThreadPool::ThreadPool(PoolOptions options) : core_(std::make_shared<Core>(std::move(options))) {
  std::scoped_lock guard(core_->threads_lock);
  for (int i = 0; i < core_->size; ++i) core_->start_worker();
}

ThreadPool::~ThreadPool() {
  try {
    close();
    join();
  } catch (...) {
    // A destructor never throws; join() can only fail on a misuse that
    // cannot happen here.
  }
}

void ThreadPool::close() {
  core_->set_state(PoolState::kClose);
  core_->wake(detail::kWakeAll, true);
}

void ThreadPool::terminate() {
  core_->set_state(PoolState::kTerminate);
  core_->wake(detail::kWakeAll, true);
  core_->drain_and_cancel(Core::terminated_error());
}

void ThreadPool::join() {
  if (core_->state.load(std::memory_order_seq_cst) == PoolState::kRun) {
    throw std::invalid_argument(
        "ThreadPool.join(): the pool is still running; call close() or terminate() first");
  }
  const auto self = std::this_thread::get_id();
  for (;;) {
    std::thread t;
    {
      std::scoped_lock guard(core_->threads_lock);
      if (core_->threads.empty()) return;
      t = std::move(core_->threads.front());
      core_->threads.pop_front();
    }
    // join() from a task of this very pool: leave that worker to finish.
    if (t.get_id() == self) {
      t.detach();
    } else if (t.joinable()) {
      t.join();
    }
  }
}

int ThreadPool::processes() const { return core_->size; }

bool ThreadPool::submit(detail::TaskPtr task) { return core_->try_submit(std::move(task), false); }

bool ThreadPool::run_one_queued() {
  detail::TaskNode* task = core_->take();
  if (task == nullptr) return false;
  task->run();  // every task catches its own exceptions
  task->release();
  return true;
}

bool ThreadPool::caller_should_help() const {
  // A task that maps on its own pool must help: the workers may all be
  // waiting on such maps. Otherwise the caller, which would only wait, runs
  // chunks too, as OpenMP's master thread does (measured: a 1M-item map
  // 15% faster even with a worker on every core, since idle workers yield).
  // Not with an initializer: f may rely on what it set up in each worker.
  return t_worker_of == core_.get() || !core_->options.initializer;
}

void ThreadPool::wake_idle_workers() { core_->wake(detail::kWakeAll); }

std::shared_ptr<detail::TaskSink> ThreadPool::sink() const { return core_; }

void ThreadPool::require_running(const char* call) const {
  if (core_->state.load(std::memory_order_seq_cst) != PoolState::kRun) {
    throw std::invalid_argument(std::string(call) + ": the pool is closed; make a new pool");
  }
}

std::size_t ThreadPool::worker_count() const { return static_cast<std::size_t>(core_->size); }

}  // namespace concur::multiprocessing
