#pragma once

#include <chrono>
#include <functional>
#include <optional>

namespace concur::multiprocessing {

/// When a process Pool forks its workers (docs/pool.md, "When workers are
/// forked"). A ThreadPool's threads are made once whichever is chosen.
enum class WorkerStart {
  /// Each call forks its workers: they see the program as it is at the call,
  /// so f may be any callable and captures by reference read current data;
  /// the items are not sent. About 0.1-0.3 ms of forking per call.
  per_call,
  /// Python's fork start method: the workers are forked when the pool is
  /// made and serve every call; they see the program as it was then. f must
  /// be trivially copyable (it is copied into them byte for byte) and the
  /// items are sent to them. For many small calls.
  once,
};

/// How a Pool or ThreadPool is built. Python: Pool(processes, initializer,
/// initargs, maxtasksperchild), plus a per-task timeout Python lacks.
/// initargs has no field of its own: bind them into the initializer.
struct PoolOptions {
  int processes = 0;                  ///< 0: cpu_count(); negative: std::invalid_argument
  std::function<void()> initializer;  ///< runs once in each worker as it starts
  int maxtasksperchild = 0;           ///< 0: workers live as long as the pool
  /// A task running longer is stopped and fails with concur::TimeoutError.
  /// Process pools only: a ThreadPool cannot stop a thread (std::invalid_argument).
  std::optional<std::chrono::duration<double>> task_timeout;
  /// When a process Pool forks its workers; WorkerStart::per_call by default.
  WorkerStart worker_start = WorkerStart::per_call;
};

}  // namespace concur::multiprocessing
