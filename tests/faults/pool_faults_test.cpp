// Faults around the process Pool: a worker killed from outside mid-map, a
// parent interrupted with Ctrl-C or killed while its workers run. After
// each: no zombie, descriptor or /dev/shm entry is left (HygieneTest).
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "concur/errors.hpp"
#include "concur/multiprocessing/array.hpp"
#include "concur/multiprocessing/event.hpp"
#include "concur/multiprocessing/pool.hpp"
#include "helpers/process_spawn.hpp"
#include "multiprocessing/hygiene.hpp"

namespace {

namespace mp = concur::multiprocessing;
using namespace concur::testing;
using namespace std::chrono_literals;

class PoolFaults : public HygieneTest {};

// kill -9 from outside, while the worker runs item 3: that item fails with
// WorkerLostError, the map does not hang, and the next map works.
TEST_F(PoolFaults, WorkerKilledFromOutsideMidMap) {
  mp::Pool pool(2);
  auto pid_of_3 = mp::Array<int>(1);
  mp::Event release;
  std::thread killer([&] {
    ASSERT_TRUE(eventually([&] { return std::atomic_ref<int>(pid_of_3[0]).load() != 0; }));
    ::kill(std::atomic_ref<int>(pid_of_3[0]).load(), SIGKILL);
  });
  try {
    pool.map(
        [pid_of_3, release](int x) mutable {
          if (x == 3) {
            std::atomic_ref<int>(pid_of_3[0]).store(::getpid());
            release.wait(kTestTimeout);  // killed long before this bound
          }
          return x;
        },
        std::vector<int>{0, 1, 2, 3, 4, 5, 6, 7}, 1);
    ADD_FAILURE() << "map should have thrown";
  } catch (const mp::WorkerLostError& e) {
    EXPECT_EQ(e.index(), 3u);
    EXPECT_EQ(e.exitcode(), -SIGKILL);
    EXPECT_EQ(e.pid(), std::atomic_ref<int>(pid_of_3[0]).load());
  }
  killer.join();
  EXPECT_EQ(pool.map([](int x) { return x + 1; }, std::vector<int>{1, 2, 3})[2], 4);
}

// A map_async whose worker is killed: its result fails, nothing hangs.
TEST_F(PoolFaults, WorkerOfAnAsyncMapKilled) {
  mp::Pool pool(2);
  auto result = pool.map_async(
      [](int x) {
        if (x == 5) ::raise(SIGKILL);
        return x;
      },
      std::vector<int>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}, 1);
  try {
    result.get(kTestTimeout);
    ADD_FAILURE() << "get should have thrown";
  } catch (const mp::WorkerLostError& e) {
    EXPECT_EQ(e.index(), 5u);
  }
}

std::vector<pid_t> start_helper(const char* mode, Spawned& s) {
  s = spawn_helper("pool_interrupted", mode);
  std::istringstream line(read_line(s.out));
  std::vector<pid_t> pids;
  pid_t pid;
  while (line >> pid) pids.push_back(pid);
  return pids;
}

void interrupt_and_check(const char* mode, int signal) {
  Spawned s;
  const auto pids = start_helper(mode, s);
  ASSERT_EQ(pids.size(), 2u);
  for (pid_t p : pids) EXPECT_FALSE(pid_gone(p));
  ::kill(s.pid, signal);
  const auto status = wait_exit(s.pid);
  ASSERT_TRUE(status.has_value());
  EXPECT_TRUE(WIFSIGNALED(*status));
  for (pid_t p : pids) EXPECT_TRUE(gone_within(p, 1000ms)) << "worker " << p << " outlived its parent";
  ::close(s.out);
}

TEST_F(PoolFaults, CtrlCInTheParentEndsEveryWorker) { interrupt_and_check("main", SIGINT); }
TEST_F(PoolFaults, CtrlCEndsTheWorkersOfAMapCalledFromAThread) {
  interrupt_and_check("thread", SIGINT);
}
TEST_F(PoolFaults, KilledParentTakesItsWorkersAlong) { interrupt_and_check("main", SIGKILL); }
TEST_F(PoolFaults, CtrlCEndsTheWorkersMadeWithThePool) { interrupt_and_check("once", SIGINT); }
TEST_F(PoolFaults, CtrlCEndsTheWorkersOfAPoolMadeOnAThread) {
  interrupt_and_check("once-thread", SIGINT);
}
TEST_F(PoolFaults, KilledParentTakesTheWorkersMadeWithThePoolAlong) {
  interrupt_and_check("once", SIGKILL);
}

}  // namespace
