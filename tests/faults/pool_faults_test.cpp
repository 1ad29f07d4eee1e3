// Faults around the process Pool: a worker killed from outside mid-map, a
// parent interrupted with Ctrl-C or killed while its workers run. After
// each: no zombie, descriptor or /dev/shm entry is left (HygieneTest).
#include <gtest/gtest.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <numeric>
#include <chrono>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "concur/errors.hpp"
#include "concur/multiprocessing/array.hpp"
#include "concur/multiprocessing/event.hpp"
#include "concur/multiprocessing/pool.hpp"
#include "concur/multiprocessing/process.hpp"
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

#if defined(__x86_64__)
constexpr std::uint32_t kAuditArch = AUDIT_ARCH_X86_64;
#elif defined(__aarch64__)
constexpr std::uint32_t kAuditArch = AUDIT_ARCH_AARCH64;
#endif

// A program whose seccomp filter forbids process_vm_readv/writev (as a
// sandbox may): a pool made with WorkerStart::once, whose workers would
// read large chunks from the caller's memory, sends them in frames instead,
// with the same results. Run in a child: a filter cannot be taken back.
TEST_F(PoolFaults, WorkersThatMayNotReadTheCallersMemoryGetTheItemsSent) {
  mp::Process child([] {
    sock_filter rules[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, arch)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, kAuditArch, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),  // another ABI (x32, i386): not filtered
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_process_vm_readv, 2, 0),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_process_vm_writev, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
    };
    sock_fprog program{static_cast<unsigned short>(std::size(rules)), rules};
    if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 ||
        ::prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &program) != 0) {
      ::_exit(2);
    }
    std::vector<int> items(300'000);
    std::iota(items.begin(), items.end(), 0);
    int readable = 0;
    iovec mine{&readable, sizeof readable};
    iovec theirs{items.data(), sizeof readable};
    if (::process_vm_readv(::getpid(), &mine, 1, &theirs, 1, 0) != -1 || errno != EPERM) ::_exit(3);
    mp::PoolOptions options;
    options.processes = 2;
    options.worker_start = mp::WorkerStart::once;
    mp::Pool pool(options);
    for (int call = 0; call < 2; ++call) {
      const auto out = pool.map([](int x) { return x ^ 5; }, items);
      if (out.size() != items.size()) ::_exit(4);
      for (std::size_t i = 0; i < out.size(); ++i) {
        if (out[i] != (items[i] ^ 5)) ::_exit(5);
      }
    }
    pool.close();
    pool.join();
    ::_exit(0);
  });
  child.start();
  if (!child.join(kTestTimeout)) {
    child.kill();
    child.join();
    FAIL() << "the map did not finish";
  }
  EXPECT_EQ(child.exitcode(), 0);
}

}  // namespace
