// For tests/faults/pool_faults_test.cpp: a program that runs a Pool map
// whose tasks block, after printing one line with the workers' pids; the
// test then sends it SIGINT (Ctrl-C) or SIGKILL. Modes:
//   main     map called from the main thread
//   thread   map called from another thread (its workers are forked by
//            concur's fork thread)
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
  const bool on_thread = argc > 1 && std::strcmp(argv[1], "thread") == 0;
  auto pids = mp::Array<int>(2);
  auto body = [pids]() mutable {
    mp::Pool pool(2);
    // Each worker takes one item, records its pid, and, once both have,
    // the first one prints the line; then every task blocks until killed.
    pool.map(
        [pids](int slot) mutable {
          std::atomic_ref<int>(pids[static_cast<std::size_t>(slot)]).store(::getpid());
          if (slot == 0) {
            while (std::atomic_ref<int>(pids[1]).load() == 0) ::sched_yield();
            std::printf("%d %d\n", pids[0], pids[1]);
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
