// ThreadPool's workers and task queue.
#include "concur/multiprocessing/thread_pool.hpp"

#include <atomic>
#include <cstdio>
#include <deque>
#include <mutex>
#include <string>
#include <thread>

#include "concur/detail/spin.hpp"
#include "concur/threading/condition.hpp"
#include "concur/threading/lock.hpp"

namespace concur::multiprocessing {

int cpu_count();

namespace {

enum class PoolState { kRun, kClose, kTerminate };

// About 20-50 us of pause instructions on current x86.
constexpr int kIdleSpins = 4000;
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

}  // namespace

// The pool (its Core) whose worker the calling thread is, if any.
thread_local const void* t_worker_of = nullptr;

struct ThreadPool::Core final : detail::TaskSink, std::enable_shared_from_this<Core> {
  explicit Core(PoolOptions opts)
      : options(std::move(opts)), size(checked_processes(options)), spare_cores(size < cores()) {}

  // cpu_count() reads cgroup files: once per program is enough for a
  // heuristic.
  static int cores() {
    static const int n = cpu_count();
    return n;
  }

  struct Entry {
    Task task;
    Cancel cancel;
  };

  void submit(Task task, Cancel cancel, bool from_producer) override {
    {
      std::scoped_lock guard(lock);
      if (state == PoolState::kRun || (from_producer && state == PoolState::kClose)) {
        queue.push_back(Entry{std::move(task), std::move(cancel)});
        queued.store(queue.size(), std::memory_order_relaxed);
        ready.notify();
        return;
      }
    }
    // Closed to new work: a lazy producer's late chunk fails, it never hangs.
    cancel(std::make_exception_ptr(std::invalid_argument(
        state_is_terminated() ? "ThreadPool: the pool was terminated before this task ran"
                              : "ThreadPool: the pool is closed")));
  }
  void producer_started() override {
    std::scoped_lock guard(lock);
    ++producers;
  }
  void producer_done() override {
    std::scoped_lock guard(lock);
    if (--producers == 0) ready.notify_all();
  }
  std::size_t workers() const override { return static_cast<std::size_t>(size); }

  bool state_is_terminated() {
    std::scoped_lock guard(lock);
    return state == PoolState::kTerminate;
  }

  // With the lock held.
  void start_worker() {
    auto self = shared_from_this();
    threads.emplace_back([self] { self->work(); });
  }

  void work() {
    t_worker_of = this;
    running_workers.fetch_add(1, std::memory_order_relaxed);
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
      // An idle worker looks at the queue for a few tens of microseconds
      // before it sleeps: a caller issuing maps back to back (the common
      // case) then finds it awake, as OpenMP's workers are.
      for (int spin = 0; spin < spins && queued.load(std::memory_order_relaxed) == 0; ++spin) {
        detail::cpu_relax();
      }
      spins = kIdleSpins;
      Entry entry;
      {
        std::scoped_lock guard(lock);
        const unsigned seen = wake_epoch.load(std::memory_order_relaxed);
        sleepers.fetch_add(1, std::memory_order_relaxed);
        ready.wait_for([&] {
          return !queue.empty() || state == PoolState::kTerminate ||
                 (state == PoolState::kClose && producers == 0) ||
                 wake_epoch.load(std::memory_order_relaxed) != seen;
        });
        sleepers.fetch_sub(1, std::memory_order_relaxed);
        if (state == PoolState::kTerminate) return;
        if (queue.empty()) {
          if (state == PoolState::kClose && producers == 0) return;
          spins = kWokenSpins;  // woken ahead of a map: wait for its chunks awake
          continue;
        }
        entry = std::move(queue.front());
        queue.pop_front();
        queued.store(queue.size(), std::memory_order_relaxed);
      }
      entry.task();  // every task catches its own exceptions
      if (options.maxtasksperchild > 0 && ++done >= options.maxtasksperchild) {
        std::scoped_lock guard(lock);
        if (state != PoolState::kTerminate) start_worker();
        return;
      }
    }
  }

  const PoolOptions options;
  const int size;
  const bool spare_cores;  // fewer workers than cores: a waiting caller may run chunks too
  threading::Lock lock;
  threading::Condition ready{lock};
  std::deque<Entry> queue;
  std::atomic<std::size_t> queued{0};  // queue.size(), for idle workers to watch without the lock
  std::atomic<int> sleepers{0};        // workers waiting on `ready`
  std::atomic<int> running_workers{0};  // workers whose thread has started
  std::atomic<unsigned> wake_epoch{0};  // changed by wake_idle_workers()
  std::deque<std::thread> threads;
  PoolState state = PoolState::kRun;
  int producers = 0;
};

ThreadPool::ThreadPool(int processes) : ThreadPool(PoolOptions{processes, {}, 0, std::nullopt}) {}

ThreadPool::ThreadPool(PoolOptions options) : core_(std::make_shared<Core>(std::move(options))) {
  std::scoped_lock guard(core_->lock);
  for (int i = 0; i < core_->size; ++i) core_->start_worker();
}

ThreadPool::~ThreadPool() {
  try {
    {
      std::scoped_lock guard(core_->lock);
      if (core_->state == PoolState::kRun) core_->state = PoolState::kClose;
      core_->ready.notify_all();
    }
    join();
  } catch (...) {
    // A destructor never throws; join() can only fail on a misuse that
    // cannot happen here.
  }
}

void ThreadPool::close() {
  std::scoped_lock guard(core_->lock);
  if (core_->state == PoolState::kRun) core_->state = PoolState::kClose;
  core_->ready.notify_all();
}

void ThreadPool::terminate() {
  std::deque<Core::Entry> dropped;
  {
    std::scoped_lock guard(core_->lock);
    core_->state = PoolState::kTerminate;
    dropped.swap(core_->queue);
    core_->queued.store(0, std::memory_order_relaxed);
    core_->ready.notify_all();
  }
  auto error = std::make_exception_ptr(
      std::runtime_error("ThreadPool.terminate(): the task was dropped before it ran"));
  for (auto& entry : dropped) entry.cancel(error);
}

void ThreadPool::join() {
  {
    std::scoped_lock guard(core_->lock);
    if (core_->state == PoolState::kRun) {
      throw std::invalid_argument(
          "ThreadPool.join(): the pool is still running; call close() or terminate() first");
    }
  }
  const auto self = std::this_thread::get_id();
  for (;;) {
    std::thread t;
    {
      std::scoped_lock guard(core_->lock);
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

void ThreadPool::submit(Task task, Cancel cancel) {
  core_->submit(std::move(task), std::move(cancel), false);
}

bool ThreadPool::run_one_queued() {
  Core::Entry entry;
  {
    std::scoped_lock guard(core_->lock);
    if (core_->queue.empty() || core_->state == PoolState::kTerminate) return false;
    entry = std::move(core_->queue.front());
    core_->queue.pop_front();
    core_->queued.store(core_->queue.size(), std::memory_order_relaxed);
  }
  entry.task();  // every task catches its own exceptions
  return true;
}

bool ThreadPool::caller_should_help() const {
  if (core_->spare_cores || t_worker_of == core_.get()) return true;
  // Stands in for a worker whose thread has not started yet: a fresh
  // pool's first map does not wait for thread start-up.
  return core_->running_workers.load(std::memory_order_relaxed) < core_->size;
}

void ThreadPool::wake_idle_workers() {
  if (core_->sleepers.load(std::memory_order_relaxed) == 0) return;  // all awake: nothing to do
  std::scoped_lock guard(core_->lock);
  core_->wake_epoch.fetch_add(1, std::memory_order_relaxed);
  core_->ready.notify_all();
}

std::shared_ptr<detail::TaskSink> ThreadPool::sink() const { return core_; }

void ThreadPool::require_running(const char* call) const {
  std::scoped_lock guard(core_->lock);
  if (core_->state != PoolState::kRun) {
    throw std::invalid_argument(std::string(call) + ": the pool is closed; make a new pool");
  }
}

std::size_t ThreadPool::worker_count() const { return static_cast<std::size_t>(core_->size); }

}  // namespace concur::multiprocessing
