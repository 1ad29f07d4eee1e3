// Resources that run out: fork, mmap, socketpair, eventfd, memfd, shm_open
// and pidfd_open failing with EAGAIN, ENOMEM or EMFILE, and futex waits that
// return early (EINTR, EAGAIN), simulated through the fault-injection seam
// (src/fault_injection.hpp; this binary links the test build of the
// library). Each failure must end in a clear std::system_error carrying the
// errno (Python's OSError), leave the library usable, and leak nothing: the
// hygiene fixture checks children, descriptors and /dev/shm after each test,
// and the tests below compare the mappings of this process too.
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <deque>
#include <fstream>
#include <numeric>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "concur/multiprocessing.hpp"
#include "concur/threading.hpp"
#include "fault_injection.hpp"
#include "hygiene.hpp"
#include "test_support.hpp"

namespace {

namespace mp = concur::multiprocessing;
namespace th = concur::threading;
namespace fault = concur::detail::fault;
using fault::Call;
using namespace concur::testing;
using namespace std::chrono_literals;

class Injection : public HygieneTest {
 protected:
  void TearDown() override {
    fault::disarm_all();
    HygieneTest::TearDown();
  }
};

// The shared mappings of this process: every mapping concur makes is
// shared; the sanitizers' runtimes add private ones of their own.
int mapping_count() {
  std::ifstream maps("/proc/self/maps");
  int n = 0;
  for (std::string line; std::getline(maps, line);) {
    const auto space = line.find(' ');
    if (space != std::string::npos && space + 4 < line.size() && line[space + 4] == 's') ++n;
  }
  return n;
}

std::vector<int> iota(int n) {
  std::vector<int> v(static_cast<std::size_t>(n));
  std::iota(v.begin(), v.end(), 0);
  return v;
}

// Runs `f`, which must throw std::system_error with `error`; returns its text.
template <class F>
std::string expect_system_error(F&& f, int error) {
  try {
    f();
  } catch (const std::system_error& e) {
    EXPECT_EQ(e.code().value(), error) << e.what();
    return e.what();
  }
  ADD_FAILURE() << "no std::system_error";
  return {};
}

// --- Process ------------------------------------------------------------------

TEST_F(Injection, ForkFailureRaisesAndTheProcessCanBeStartedLater) {
  mp::Process p([] {});
  fault::arm(Call::kFork, EAGAIN);
  const std::string text = expect_system_error([&] { p.start(); }, EAGAIN);
  EXPECT_NE(text.find("fork"), std::string::npos) << text;
  EXPECT_FALSE(p.is_alive());
  EXPECT_EQ(p.exitcode(), std::nullopt);
  p.start();  // the failure left it unstarted, as before the call
  ASSERT_TRUE(p.join(kTestTimeout));
  EXPECT_EQ(p.exitcode(), 0);
}

TEST_F(Injection, PidfdFailureKillsAndReapsTheChildItForked) {
  {
    mp::Process probe([] {});  // settles pidfd vs pipe sentinels first
    probe.start();
    ASSERT_TRUE(probe.join(kTestTimeout));
  }
  mp::Process p([] {
    for (;;) ::pause();  // must be killed by start()'s clean-up
  });
  fault::arm(Call::kPidfdOpen, EMFILE);
  expect_system_error([&] { p.start(); }, EMFILE);
  // The hygiene check fails the test if the child is left running or a
  // zombie; a new Process starts normally.
  mp::Process next([] {});
  next.start();
  ASSERT_TRUE(next.join(kTestTimeout));
  EXPECT_EQ(next.exitcode(), 0);
}

// --- Pool ---------------------------------------------------------------------

TEST_F(Injection, PoolMapFailsWhenNoWorkerCanBeForkedAndWorksAfterwards) {
  mp::Pool pool(2);
  fault::arm(Call::kFork, EAGAIN);
  const std::string text = expect_system_error(
      [&] { (void)pool.map([](int x) { return x + 1; }, iota(1000)); }, EAGAIN);
  EXPECT_NE(text.find("fork"), std::string::npos) << text;
  const auto out = pool.map([](int x) { return x + 1; }, iota(1000));
  ASSERT_EQ(out.size(), 1000u);
  EXPECT_EQ(out[999], 1000);
}

TEST_F(Injection, PoolMapCarriesOnWithTheWorkersThatStarted) {
  mp::Pool pool(2);
  mp::Event go;  // holds the first worker at item 0, so a second is wanted
  fault::arm(Call::kFork, EAGAIN, 1000, 1);  // every fork after the first fails
  auto result = pool.map_async(
      [go](int x) mutable {
        if (x == 0) go.wait(kTestTimeout);
        return 2 * x;
      },
      iota(10000), 100);
  // map_async forks in the caller's thread: the second fork has failed by now.
  EXPECT_GE(fault::injected(Call::kFork), 1);
  go.set();
  const auto out = result.get(kTestTimeout);
  ASSERT_EQ(out.size(), 10000u);
  for (int i = 0; i < 10000; ++i) ASSERT_EQ(out[static_cast<std::size_t>(i)], 2 * i);
}

TEST_F(Injection, PoolMapFailsWhenReplacementsCannotBeForked) {
  mp::PoolOptions options;
  options.processes = 1;
  options.maxtasksperchild = 1;  // the first worker ends after one chunk
  mp::Pool pool(options);
  fault::arm(Call::kFork, EAGAIN, 1000, 1);
  expect_system_error([&] { (void)pool.map([](int x) { return x; }, iota(100), 10); }, EAGAIN);
  fault::disarm_all();
  EXPECT_EQ(pool.map([](int x) { return x; }, iota(100), 10).size(), 100u);
}

// WorkerStart::once: the workers are forked when the pool is made.
TEST_F(Injection, PoolWithWorkersMadeOnceFailsToBeMadeWhenNoWorkerCanBeForked) {
  mp::PoolOptions options;
  options.processes = 2;
  options.worker_start = mp::WorkerStart::once;
  fault::arm(Call::kFork, EAGAIN, 2);
  expect_system_error([&] { mp::Pool pool(options); }, EAGAIN);
  fault::disarm_all();
  mp::Pool pool(options);
  EXPECT_EQ(pool.map([](int x) { return x; }, iota(100)).size(), 100u);
}

TEST_F(Injection, PoolWithWorkersMadeOnceFailsACallWhenNoReplacementCanBeForked) {
  mp::PoolOptions options;
  options.processes = 1;
  options.maxtasksperchild = 1;  // its worker ends after one chunk
  options.worker_start = mp::WorkerStart::once;
  mp::Pool pool(options);
  fault::arm(Call::kFork, EAGAIN, 1000);
  expect_system_error([&] { (void)pool.map([](int x) { return x; }, iota(100), 10); }, EAGAIN);
  fault::disarm_all();
  EXPECT_EQ(pool.map([](int x) { return x; }, iota(100), 10).size(), 100u);
}

// A worker that may not read or write the caller's memory (a seccomp
// filter, a ptrace policy): its chunk is sent again with its items, and the
// pool sends every later one so. Armed before the pool is made, so that
// the workers, forked then, carry the plan.
TEST_F(Injection, PoolWithWorkersMadeOnceSendsTheItemsWhenTheCallersMemoryIsClosed) {
  for (const int skip : {0, 2}) {  // the first read fails; the first write fails
    fault::arm(Call::kProcessVm, EPERM, 1'000'000'000, skip);
    mp::PoolOptions options;
    options.processes = 2;
    options.worker_start = mp::WorkerStart::once;
    mp::Pool pool(options);
    fault::disarm_all();  // in this process: the workers keep their copy
    for (int call = 0; call < 2; ++call) {
      auto pending = pool.map_async([](int x) { return 3 * x; }, iota(300'000));
      if (!pending.wait(kTestTimeout)) {
        pool.terminate();  // the chunk went round and round
        FAIL() << "the map did not finish (skip " << skip << ")";
      }
      const auto out = pending.get();
      ASSERT_EQ(out.size(), 300'000u);
      for (std::size_t i = 0; i < out.size(); ++i) ASSERT_EQ(out[i], 3 * static_cast<int>(i)) << "skip " << skip;
    }
  }
}

TEST_F(Injection, PoolMapWhenTheWorkerLinkCannotBeMade) {
  mp::Pool pool(2);
  fault::arm(Call::kSocketpair, EMFILE);
  const std::string text =
      expect_system_error([&] { (void)pool.map([](int x) { return x; }, iota(100)); }, EMFILE);
  EXPECT_NE(text.find("socketpair"), std::string::npos) << text;
  EXPECT_EQ(pool.map([](int x) { return x; }, iota(100)).size(), 100u);
}

TEST_F(Injection, PoolMapWhenSharedMemoryCannotBeMapped) {
  mp::Pool pool(2);
  const int maps_before = mapping_count();
  fault::arm(Call::kMmap, ENOMEM);
  expect_system_error([&] { (void)pool.map([](int x) { return x; }, iota(100)); }, ENOMEM);
  EXPECT_EQ(mapping_count(), maps_before);
  EXPECT_EQ(pool.map([](int x) { return x; }, iota(100)).size(), 100u);
}

TEST_F(Injection, MapAsyncWhenForkFailsFailsItsResult) {
  mp::Pool pool(2);
  fault::arm(Call::kFork, EAGAIN);
  auto result = pool.map_async([](int x) { return x; }, iota(100));
  ASSERT_TRUE(result.wait(kTestTimeout));
  expect_system_error([&] { (void)result.get(); }, EAGAIN);
  EXPECT_EQ(pool.map_async([](int x) { return x; }, iota(100)).get(kTestTimeout).size(), 100u);
}

// --- Pipe, Queue, Value, SharedMemory -----------------------------------------

TEST_F(Injection, PipeWhenOutOfDescriptors) {
  fault::arm(Call::kSocketpair, EMFILE);
  const std::string text = expect_system_error([] { (void)mp::Pipe<int>(); }, EMFILE);
  EXPECT_NE(text.find("Pipe"), std::string::npos) << text;
  auto [a, b] = mp::Pipe<int>();
  a.send(7);
  ASSERT_TRUE(b.poll(kTestTimeout));
  EXPECT_EQ(b.recv(), 7);
}

TEST_F(Injection, QueueWhenAnyOfItsMappingsOrItsSpillFileFails) {
  const int maps_before = mapping_count();
  int failures = 0;
  for (int skip = 0; skip < 4; ++skip) {
    fault::disarm_all();
    fault::arm(Call::kMmap, ENOMEM, 1, skip);
    try {
      mp::Queue<int> q;
      q.put(1);
      EXPECT_EQ(q.get(kTestTimeout), 1);
    } catch (const std::system_error& e) {
      EXPECT_EQ(e.code().value(), ENOMEM) << e.what();
      ++failures;
    }
    EXPECT_EQ(mapping_count(), maps_before) << "skip " << skip;
  }
  EXPECT_GE(failures, 2);  // the control block and the ring
  fault::disarm_all();
  fault::arm(Call::kMemfd, EMFILE);
  expect_system_error([] { mp::Queue<int> q; }, EMFILE);
  EXPECT_EQ(mapping_count(), maps_before);
  mp::Queue<int> q;
  q.put(2);
  EXPECT_EQ(q.get(kTestTimeout), 2);
}

TEST_F(Injection, SharedObjectsWhenMmapFails) {
  fault::arm(Call::kMmap, ENOMEM, 5);
  expect_system_error([] { mp::Value<int> v(1); }, ENOMEM);
  expect_system_error([] { mp::Array<double> a(100); }, ENOMEM);
  expect_system_error([] { mp::Lock lock; }, ENOMEM);
  expect_system_error([] { mp::Event event; }, ENOMEM);
  expect_system_error([] { mp::Barrier barrier(2); }, ENOMEM);
  fault::disarm_all();
  mp::Value<int> v(41);
  ++v.value();
  EXPECT_EQ(v.value(), 42);
}

TEST_F(Injection, SharedMemoryLeavesNothingInDevShmWhenItFails) {
  fault::arm(Call::kShmOpen, EMFILE);
  expect_system_error([] { mp::SharedMemory block(4096); }, EMFILE);
  fault::arm(Call::kMmap, ENOMEM);
  expect_system_error([] { mp::SharedMemory block(4096); }, ENOMEM);
  // The hygiene check fails the test if a segment was created and left.
  mp::SharedMemory block(4096);
  block.unlink();
}

// --- futex waits that return early ----------------------------------------------

// Every other futex wait returns at once, as a signal or a racing wake
// would make it. No primitive may lose a wake-up, let a second owner in, or
// end a timed wait early.
class SpuriousWakeups : public Injection, public ::testing::WithParamInterface<int> {};

TEST_P(SpuriousWakeups, PrimitivesKeepTheirGuarantees) {
  fault::arm_every(Call::kFutexWait, GetParam(), 2);
  constexpr int kThreads = 4;
  constexpr int kRounds = 5000;

  th::Lock lock;
  th::RLock rlock;
  th::Semaphore semaphore(2);
  long counter = 0;
  long rcounter = 0;
  std::atomic<int> inside{0};
  std::atomic<int> most_inside{0};
  {
    std::deque<th::Thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&] {
        for (int i = 0; i < kRounds; ++i) {
          lock.acquire();
          ++counter;
          lock.release();
          rlock.acquire();
          rlock.acquire();
          ++rcounter;
          rlock.release();
          rlock.release();
          semaphore.acquire();
          const int now = inside.fetch_add(1) + 1;
          int seen = most_inside.load();
          while (now > seen && !most_inside.compare_exchange_weak(seen, now)) {
          }
          inside.fetch_sub(1);
          semaphore.release();
        }
      });
    }
    for (auto& t : threads) t.start();
    for (auto& t : threads) ASSERT_TRUE(t.join(kTestTimeout));
  }
  EXPECT_EQ(counter, kThreads * kRounds);
  EXPECT_EQ(rcounter, kThreads * kRounds);
  EXPECT_LE(most_inside.load(), 2);

  // Condition: a bounded buffer, every item once.
  th::Condition cond;
  std::vector<int> buffer;
  constexpr int kItems = 20000;
  long long sum = 0;
  th::Thread consumer([&] {
    for (int got = 0; got < kItems;) {
      cond.acquire();
      cond.wait_for([&] { return !buffer.empty(); });
      for (int x : buffer) sum += x;
      got += static_cast<int>(buffer.size());
      buffer.clear();
      cond.notify_all();
      cond.release();
    }
  });
  consumer.start();
  for (int i = 1; i <= kItems; ++i) {
    cond.acquire();
    cond.wait_for([&] { return buffer.size() < 16; });
    buffer.push_back(i);
    cond.notify_all();
    cond.release();
  }
  ASSERT_TRUE(consumer.join(kTestTimeout));
  EXPECT_EQ(sum, static_cast<long long>(kItems) * (kItems + 1) / 2);

  // A timed wait is not cut short.
  th::Event never;
  const auto start = std::chrono::steady_clock::now();
  EXPECT_FALSE(never.wait(50ms));
  EXPECT_GE(std::chrono::steady_clock::now() - start, 50ms);
  th::Lock held;
  held.acquire();
  const auto lock_start = std::chrono::steady_clock::now();
  EXPECT_FALSE(held.acquire(30ms));
  EXPECT_GE(std::chrono::steady_clock::now() - lock_start, 30ms);
  held.release();

  // Barrier cycles.
  th::Barrier barrier(3);
  std::atomic<int> passed{0};
  {
    std::deque<th::Thread> parties;
    for (int t = 0; t < 3; ++t) {
      parties.emplace_back([&] {
        for (int round = 0; round < 300; ++round) {
          barrier.wait(kTestTimeout);
          passed.fetch_add(1);
        }
      });
    }
    for (auto& t : parties) t.start();
    for (auto& t : parties) ASSERT_TRUE(t.join(kTestTimeout));
  }
  EXPECT_EQ(passed.load(), 900);
  EXPECT_GT(fault::injected(Call::kFutexWait), 0);
}

INSTANTIATE_TEST_SUITE_P(Errors, SpuriousWakeups, ::testing::Values(EINTR, EAGAIN),
                         [](const auto& info) { return info.param == EINTR ? "EINTR" : "EAGAIN"; });

}  // namespace
