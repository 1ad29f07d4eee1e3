// For tests/faults/pool_faults_test.cpp: a program that runs a Pool map
// whose tasks block, after printing one line with the workers' pids; the
// test then sends it SIGINT (Ctrl-C) or SIGKILL. Modes:
//   main     map called from the main thread
//   thread   map called from another thread (its workers are forked by
//            concur's fork thread)
//   once, once-thread   the same with a pool whose workers are forked when
//            it is made (WorkerStart::once)
#include <signal.h>
#include <unistd.h>

#include <sched.h>

#include <atomic>
#include <cstdio>
#include <cstring>
#include <thread>
#include <vector>

#include "concur/multiprocessing/array.hpp"
#include "concur/multiprocessing/pool.hpp"

namespace mp = concur::multiprocessing;

int main(int argc, char** argv) {
  const char* mode = argc > 1 ? argv[1] : "main";
  const bool on_thread = std::strcmp(mode, "thread") == 0 || std::strcmp(mode, "once-thread") == 0;
  const bool once = std::strncmp(mode, "once", 4) == 0;
  auto pids = mp::Array<int>(2);
  int* shared = &pids[0];  // shared memory: the same in the workers
  auto body = [shared, once] {
    mp::PoolOptions options;
    options.processes = 2;
    if (once) options.worker_start = mp::WorkerStart::once;
    mp::Pool pool(options);
    // Each worker takes one item, records its pid, and, once both have,
    // the first one prints the line; then every task blocks until killed.
    pool.map(
        [shared](int slot) {
          std::atomic_ref<int>(shared[slot]).store(::getpid());
          if (slot == 0) {
            while (std::atomic_ref<int>(shared[1]).load() == 0) ::sched_yield();
            std::printf("%d %d\n", shared[0], shared[1]);
            std::fflush(stdout);
          }
          for (;;) ::pause();
          return 0;
        },
        std::vector<int>{0, 1}, 1);
  };
  if (on_thread) {
    std::thread(body).join();
  } else {
    body();
  }
  return 0;
}
