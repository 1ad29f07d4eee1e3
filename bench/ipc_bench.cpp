// concur::multiprocessing against raw system facilities, one binary, so the
// ratios come from one run. Cross-process cases time whole exchanges with
// manual timing; the partner is a forked child.
#include <benchmark/benchmark.h>
#include <linux/futex.h>
#include <semaphore.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <mutex>

#include "concur/multiprocessing.hpp"
#include "concur/threading/lock.hpp"

namespace {

namespace mp = concur::multiprocessing;
namespace th = concur::threading;
using Clock = std::chrono::steady_clock;

template <class F>
pid_t fork_partner(F body) {
  const pid_t pid = ::fork();
  if (pid == 0) {
    body();
    ::_exit(0);
  }
  return pid;
}

void reap(pid_t pid) { ::waitpid(pid, nullptr, 0); }

bool read_all(int fd, void* p, std::size_t n) {
  auto* b = static_cast<char*>(p);
  while (n > 0) {
    const ssize_t r = ::read(fd, b, n);
    if (r <= 0) return false;
    b += r;
    n -= static_cast<std::size_t>(r);
  }
  return true;
}

// --- process start + join --------------------------------------------------------

void BM_ProcessStartJoin(benchmark::State& state) {
  for (auto _ : state) {
    mp::Process p([] {});
    p.start();
    p.join();
  }
}
BENCHMARK(BM_ProcessStartJoin)->Name("process/concur::Process start+join")->UseRealTime();

void BM_ForkWaitpid(benchmark::State& state) {
  for (auto _ : state) {
    const pid_t pid = ::fork();
    if (pid == 0) ::_exit(0);
    ::waitpid(pid, nullptr, 0);
  }
}
BENCHMARK(BM_ForkWaitpid)->Name("process/fork+waitpid")->UseRealTime();

// --- 8-byte items from one process to another --------------------------------------

constexpr long kItems = 200000;

void BM_QueueThroughput(benchmark::State& state) {
  for (auto _ : state) {
    mp::Queue<std::uint64_t> q(1024);
    const pid_t child = fork_partner([q]() mutable {
      for (long i = 0; i < kItems; ++i) q.put(static_cast<std::uint64_t>(i));
    });
    std::uint64_t sum = 0;
    for (long i = 0; i < kItems; ++i) sum += q.get();
    benchmark::DoNotOptimize(sum);
    reap(child);
  }
  state.SetItemsProcessed(state.iterations() * kItems);
}
BENCHMARK(BM_QueueThroughput)
    ->Name("items8/concur::Queue")
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

void BM_PipeThroughput(benchmark::State& state) {
  for (auto _ : state) {
    int fds[2];
    if (::pipe(fds) != 0) std::abort();
    const pid_t child = fork_partner([&] {
      ::close(fds[0]);
      for (long i = 0; i < kItems; ++i) {
        const std::uint64_t v = static_cast<std::uint64_t>(i);
        if (::write(fds[1], &v, sizeof v) != sizeof v) std::abort();
      }
    });
    ::close(fds[1]);
    std::uint64_t sum = 0;
    for (long i = 0; i < kItems; ++i) {
      std::uint64_t v;
      if (!read_all(fds[0], &v, sizeof v)) std::abort();
      sum += v;
    }
    benchmark::DoNotOptimize(sum);
    ::close(fds[0]);
    reap(child);
  }
  state.SetItemsProcessed(state.iterations() * kItems);
}
BENCHMARK(BM_PipeThroughput)
    ->Name("items8/raw pipe, one write per item")
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

// --- small-message round trip ----------------------------------------------------

constexpr int kRoundTrips = 20000;

void BM_ConnectionRoundTrip(benchmark::State& state) {
  for (auto _ : state) {
    auto [mine, theirs] = mp::Pipe<std::uint64_t>();
    const pid_t child = fork_partner([theirs = theirs]() mutable {
      for (int i = 0; i < kRoundTrips; ++i) theirs.send(theirs.recv() + 1);
    });
    theirs.close();
    std::uint64_t v = 0;
    for (int i = 0; i < kRoundTrips; ++i) {
      mine.send(v);
      v = mine.recv();
    }
    benchmark::DoNotOptimize(v);
    reap(child);
  }
  state.SetItemsProcessed(state.iterations() * kRoundTrips);
}
BENCHMARK(BM_ConnectionRoundTrip)
    ->Name("roundtrip/concur::Connection")
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

void BM_PipeRoundTrip(benchmark::State& state) {
  for (auto _ : state) {
    int there[2], back[2];
    if (::pipe(there) != 0 || ::pipe(back) != 0) std::abort();
    const pid_t child = fork_partner([&] {
      for (int i = 0; i < kRoundTrips; ++i) {
        std::uint64_t v;
        if (!read_all(there[0], &v, sizeof v)) std::abort();
        ++v;
        if (::write(back[1], &v, sizeof v) != sizeof v) std::abort();
      }
    });
    std::uint64_t v = 0;
    for (int i = 0; i < kRoundTrips; ++i) {
      if (::write(there[1], &v, sizeof v) != sizeof v) std::abort();
      if (!read_all(back[0], &v, sizeof v)) std::abort();
    }
    benchmark::DoNotOptimize(v);
    for (int fd : {there[0], there[1], back[0], back[1]}) ::close(fd);
    reap(child);
  }
  state.SetItemsProcessed(state.iterations() * kRoundTrips);
}
BENCHMARK(BM_PipeRoundTrip)
    ->Name("roundtrip/raw pipe")
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

// --- process-shared lock, uncontended ----------------------------------------------

template <class L>
void BM_LockUncontended(benchmark::State& state) {
  L lock;
  for (auto _ : state) {
    lock.lock();
    benchmark::ClobberMemory();
    lock.unlock();
  }
}
BENCHMARK(BM_LockUncontended<mp::Lock>)->Name("uncontended/mp::Lock");
BENCHMARK(BM_LockUncontended<th::Lock>)->Name("uncontended/threading::Lock");

// --- Event ping-pong between two processes -----------------------------------------

void BM_EventPingPong(benchmark::State& state) {
  for (auto _ : state) {
    mp::Event ping, pong;
    const pid_t child = fork_partner([ping, pong]() mutable {
      for (int i = 0; i < kRoundTrips; ++i) {
        ping.wait();
        ping.clear();
        pong.set();
      }
    });
    for (int i = 0; i < kRoundTrips; ++i) {
      ping.set();
      pong.wait();
      pong.clear();
    }
    reap(child);
  }
  state.SetItemsProcessed(state.iterations() * kRoundTrips);
}
BENCHMARK(BM_EventPingPong)
    ->Name("pingpong/mp::Event")
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

// A shared futex word that sleeps at once: no spinning.
struct FutexFlag {
  std::atomic<std::uint32_t> word{0};
  void set() {
    word.store(1);
    ::syscall(SYS_futex, &word, FUTEX_WAKE, 1, nullptr, nullptr, 0);
  }
  void wait_and_clear() {
    while (word.exchange(0) == 0) ::syscall(SYS_futex, &word, FUTEX_WAIT, 0, nullptr, nullptr, 0);
  }
};

void BM_FutexPingPong(benchmark::State& state) {
  for (auto _ : state) {
    auto* flags = static_cast<FutexFlag*>(::mmap(
        nullptr, 2 * sizeof(FutexFlag), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0));
    new (&flags[0]) FutexFlag;
    new (&flags[1]) FutexFlag;
    const pid_t child = fork_partner([&] {
      for (int i = 0; i < kRoundTrips; ++i) {
        flags[0].wait_and_clear();
        flags[1].set();
      }
    });
    for (int i = 0; i < kRoundTrips; ++i) {
      flags[0].set();
      flags[1].wait_and_clear();
    }
    reap(child);
    ::munmap(flags, 2 * sizeof(FutexFlag));
  }
  state.SetItemsProcessed(state.iterations() * kRoundTrips);
}
BENCHMARK(BM_FutexPingPong)
    ->Name("pingpong/raw shared futex, no spin")
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

void BM_SemPingPong(benchmark::State& state) {
  for (auto _ : state) {
    auto* sems = static_cast<sem_t*>(::mmap(nullptr, 2 * sizeof(sem_t), PROT_READ | PROT_WRITE,
                                            MAP_SHARED | MAP_ANONYMOUS, -1, 0));
    ::sem_init(&sems[0], 1, 0);
    ::sem_init(&sems[1], 1, 0);
    const pid_t child = fork_partner([&] {
      for (int i = 0; i < kRoundTrips; ++i) {
        ::sem_wait(&sems[0]);
        ::sem_post(&sems[1]);
      }
    });
    for (int i = 0; i < kRoundTrips; ++i) {
      ::sem_post(&sems[0]);
      ::sem_wait(&sems[1]);
    }
    reap(child);
    ::sem_destroy(&sems[0]);
    ::sem_destroy(&sems[1]);
    ::munmap(sems, 2 * sizeof(sem_t));
  }
  state.SetItemsProcessed(state.iterations() * kRoundTrips);
}
BENCHMARK(BM_SemPingPong)
    ->Name("pingpong/sem_t pshared")
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

}  // namespace
