#pragma once

#include <chrono>
#include <functional>
#include <optional>

namespace concur::multiprocessing {

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
};

}  // namespace concur::multiprocessing
