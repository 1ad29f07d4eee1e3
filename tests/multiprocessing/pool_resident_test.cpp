// A process Pool with WorkerStart::once: workers forked when the pool is
// made, kept across calls (docs/pool.md, "When workers are forked").
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdint>
#include <chrono>
#include <numeric>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "concur/errors.hpp"
#include "concur/detail/resident.hpp"
#include "concur/multiprocessing/event.hpp"
#include "concur/multiprocessing/pool.hpp"
#include "concur/multiprocessing/process.hpp"
#include "concur/multiprocessing/value.hpp"
#include "hygiene.hpp"
#include "test_support.hpp"
#include "throwing_input_checks.hpp"

namespace {

namespace mp = concur::multiprocessing;
using namespace concur::testing;
using namespace std::chrono_literals;

class ResidentPool : public HygieneTest {};

mp::PoolOptions resident(int processes) {
  mp::PoolOptions options;
  options.processes = processes;
  options.worker_start = mp::WorkerStart::once;
  return options;
}

std::vector<int> iota(int n) {
  std::vector<int> v(static_cast<std::size_t>(n));
  std::iota(v.begin(), v.end(), 0);
  return v;
}

int g_seen_by_workers = 1;  // changed after the pool is made

TEST_F(ResidentPool, MapStarmapAndApplyGiveTheResultsInOrder) {
  mp::Pool pool(resident(2));
  const auto squares = pool.map([](int x) { return x * x; }, iota(1000));
  ASSERT_EQ(squares.size(), 1000u);
  for (int i = 0; i < 1000; ++i) ASSERT_EQ(squares[static_cast<std::size_t>(i)], i * i);
  const std::vector<std::tuple<int, int>> pairs{{1, 2}, {3, 4}, {5, 6}};
  EXPECT_EQ(pool.starmap([](int a, int b) { return a * b; }, pairs), (std::vector<int>{2, 12, 30}));
  EXPECT_EQ(pool.apply([](int a, int b) { return a - b; }, 10, 3), 7);
  pool.apply([] {});  // void
  const std::vector<std::string> words{"a", "bb", "ccc"};
  EXPECT_EQ(pool.map([](const std::string& s) { return s + s; }, words),
            (std::vector<std::string>{"aa", "bbbb", "cccccc"}));
  EXPECT_TRUE(pool.map([](int x) { return x; }, std::vector<int>{}).empty());
}

TEST_F(ResidentPool, WorkersAreForkedWithThePoolAndServeEveryCall) {
  mp::Pool pool(resident(2));
  std::set<int> pids;
  for (int call = 0; call < 50; ++call) {
    for (int pid : pool.map([](int) { return static_cast<int>(::getpid()); }, iota(8), 1)) {
      pids.insert(pid);
    }
  }
  EXPECT_LE(pids.size(), 2u);
  EXPECT_EQ(pids.count(static_cast<int>(::getpid())), 0u);
}

// Python's fork start method: what the program changes after the pool is
// made is not seen by its workers.
TEST_F(ResidentPool, WorkersSeeTheProgramAsItWasWhenThePoolWasMade) {
  g_seen_by_workers = 1;
  int local = 7;
  mp::Pool pool(resident(2));
  g_seen_by_workers = 2;
  local = 8;
  const auto seen = pool.map([](int) { return g_seen_by_workers; }, iota(4), 1);
  EXPECT_EQ(seen, (std::vector<int>{1, 1, 1, 1}));
  // Captured by reference: the worker reads its own copy, as it was.
  EXPECT_EQ(pool.apply([&local] { return local; }), 7);
  EXPECT_EQ(local, 8);
}

TEST_F(ResidentPool, AsyncCallsFinishInAnyOrder) {
  mp::Pool pool(resident(2));
  auto a = pool.map_async([](int x) { return x + 1; }, iota(100));
  auto b = pool.apply_async([](int x) { return x * 3; }, 14);
  auto c = pool.apply_async([] {});
  EXPECT_EQ(b.get(), 42);
  const auto out = a.get();
  ASSERT_EQ(out.size(), 100u);
  EXPECT_EQ(out[99], 100);
  c.get();
  EXPECT_TRUE(c.successful());
}

TEST_F(ResidentPool, TheLowestFailingIndexReachesTheCallerAsRemoteError) {
  mp::Pool pool(resident(2));
  for (std::size_t chunksize : {1u, 3u, 0u}) {
    try {
      pool.map(fails_at_5_17_90, iota(100), chunksize);
      FAIL() << "no exception";
    } catch (const mp::RemoteError& e) {
      EXPECT_EQ(e.index(), 5u);
      EXPECT_EQ(e.type_name(), "std::domain_error");
      EXPECT_EQ(e.message(), "bad 5");
    }
  }
  EXPECT_EQ(pool.map([](int x) { return x; }, iota(3)), (std::vector<int>{0, 1, 2}));
}

TEST_F(ResidentPool, AWorkerThatDiesFailsItsItemAndIsReplaced) {
  mp::Pool pool(resident(2));
  const int parent = static_cast<int>(::getpid());
  try {
    pool.map(
        [parent](int x) {
          if (x == 3 && static_cast<int>(::getpid()) != parent) ::raise(SIGKILL);
          return x;
        },
        iota(8), 1);
    FAIL() << "no exception";
  } catch (const mp::WorkerLostError& e) {
    EXPECT_EQ(e.index(), 3u);
    EXPECT_EQ(e.exitcode(), -SIGKILL);
  }
  // The pool replaced it and stays usable.
  EXPECT_EQ(pool.map([](int x) { return 2 * x; }, iota(20)), [] {
    std::vector<int> v;
    for (int i = 0; i < 20; ++i) v.push_back(2 * i);
    return v;
  }());
}

TEST_F(ResidentPool, TaskTimeoutStopsARunawayItem) {
  auto options = resident(2);
  options.task_timeout = 200ms;
  mp::Pool pool(options);
  try {
    pool.map(
        [](int x) {
          if (x == 1) {
            for (;;) ::pause();
          }
          return x;
        },
        iota(4), 1);
    FAIL() << "no exception";
  } catch (const concur::TimeoutError& e) {
    EXPECT_NE(std::string(e.what()).find("item 1"), std::string::npos) << e.what();
  }
  EXPECT_EQ(pool.apply([] { return 5; }), 5);
}

TEST_F(ResidentPool, MaxtasksperchildReplacesWorkers) {
  auto options = resident(2);
  options.maxtasksperchild = 1;
  mp::Pool pool(options);
  std::set<int> pids;
  for (int pid : pool.map([](int) { return static_cast<int>(::getpid()); }, iota(6), 1)) pids.insert(pid);
  EXPECT_EQ(pids.size(), 6u);  // one chunk per worker
}

TEST_F(ResidentPool, TheInitializerRunsOncePerWorker) {
  mp::Value<int> started(0);
  auto options = resident(2);
  options.initializer = [started]() mutable {
    std::scoped_lock guard(started.get_lock());
    ++started.value();
  };
  {
    mp::Pool pool(options);
    for (int call = 0; call < 10; ++call) pool.map([](int x) { return x; }, iota(10));
  }
  std::scoped_lock guard(started.get_lock());
  EXPECT_EQ(started.value(), 2);
}

TEST_F(ResidentPool, TerminateFailsWhatIsStillRunningAndNeverHangs) {
  mp::Pool pool(resident(2));
  auto stuck = pool.apply_async([] {
    for (;;) ::pause();
  });
  EXPECT_FALSE(stuck.wait(50ms));
  pool.terminate();
  ASSERT_TRUE(stuck.wait(kTestTimeout));
  EXPECT_THROW(stuck.get(), std::runtime_error);
  EXPECT_THROW(pool.map([](int x) { return x; }, iota(2)), std::invalid_argument);
  pool.join();
}

TEST_F(ResidentPool, CloseLetsTheCallsFinishThenTheWorkersEnd) {
  mp::Pool pool(resident(2));
  auto pending = pool.map_async([](int x) { return x; }, iota(1000));
  pool.close();
  pool.join();
  ASSERT_TRUE(pending.ready());
  EXPECT_EQ(pending.get().size(), 1000u);
}

TEST_F(ResidentPool, LargeItemsAndResultsDoNotStallThePipes) {
  mp::Pool pool(resident(2));
  std::vector<std::string> big;
  for (int i = 0; i < 24; ++i) big.emplace_back(std::size_t{300} * 1024, static_cast<char>('a' + i));
  const auto echoed = pool.map([](const std::string& s) { return s + "!"; }, big, 1);
  ASSERT_EQ(echoed.size(), big.size());
  for (std::size_t i = 0; i < big.size(); ++i) ASSERT_EQ(echoed[i], big[i] + "!");
}

TEST_F(ResidentPool, ACallableOrItemThatCannotBeSentIsRefused) {
  mp::Pool pool(resident(2));
  const std::string suffix = "!";  // a capture that is not trivially copyable
  EXPECT_THROW(pool.map([suffix](int x) { return std::to_string(x) + suffix; }, iota(3)),
               std::invalid_argument);
  EXPECT_THROW(pool.apply_async([suffix] { return suffix; }), std::invalid_argument);
  struct Opaque {  // neither trivially copyable nor serializable
    std::string text;
  };
  const std::vector<Opaque> opaque(2);
  EXPECT_THROW(pool.map([](const Opaque& o) { return static_cast<int>(o.text.size()); }, opaque),
               std::invalid_argument);
  EXPECT_EQ(pool.map([](int x) { return x; }, iota(2)), (std::vector<int>{0, 1}));  // still usable
}

// imap and imap_unordered read their input lazily, after the call: they
// fork their own workers per call in either mode (docs/pool.md).
TEST_F(ResidentPool, ImapWorks) {
  mp::Pool pool(resident(2));
  std::vector<int> got;
  for (int v : pool.imap([](int x) { return x * 10; }, iota(5))) got.push_back(v);
  EXPECT_EQ(got, (std::vector<int>{0, 10, 20, 30, 40}));
}

// Later calls of a function whose items are quick get larger chunks: a
// chunk's round trip costs more than such items. Python's rule cuts 400
// items into 8 chunks for 2 workers; once measured, these items (a few ns
// each) get at most 4. A worker preempted mid-chunk makes one measurement
// look slow: several calls first, so that one outlier has faded.
TEST_F(ResidentPool, QuickItemsGetLargerChunksOnceMeasured) {
  mp::Pool pool(resident(2));
  const auto pids_of = [&pool] {
    return pool.map(
        [](int) {
          static const int pid = static_cast<int>(::getpid());  // quick: no system call per item
          return pid;
        },
        iota(400));
  };
  for (int call = 0; call < 5; ++call) (void)pids_of();
  const auto pids = pids_of();
  // Each chunk comes from one worker: runs of one pid are at most the chunks.
  int runs = 1;
  for (std::size_t i = 1; i < pids.size(); ++i) runs += pids[i] != pids[i - 1] ? 1 : 0;
  EXPECT_LE(runs, 4);
}

TEST_F(ResidentPool, ManyThreadsCallOnePool) {
  mp::Pool pool(resident(2));
  std::vector<std::thread> threads;
  std::vector<int> wrong(4, 0);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&pool, &wrong, t] {
      for (int call = 0; call < 25; ++call) {
        const auto out = pool.map([t](int x) { return x + t; }, iota(50));
        for (int i = 0; i < 50; ++i) wrong[static_cast<std::size_t>(t)] += out[static_cast<std::size_t>(i)] != i + t;
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(wrong, (std::vector<int>{0, 0, 0, 0}));
}

// An input that throws while the pool reads it (throwing_input_checks.hpp).
// It used to leave the pool stuck: the exception left the driver's loop
// with the right to drive still taken.
TEST_F(ResidentPool, MapOverAnInputThatThrowsRaisesItsOwnException) {
  mp::Pool pool(resident(2));
  check_map_over_a_throwing_input<mp::RemoteError>(pool);
}

// --- chunks read from and answered into the caller's memory ------------------
// A chunk of at least detail::kInPlaceBlockBytes of trivially copyable items
// with trivially copyable results is read by its worker where it lies
// (process_vm_readv) and its results written into place (docs/pool.md).

struct Sample {
  double weight;
  int id;
};

TEST_F(ResidentPool, LargeChunksOfPlainItemsAreReadAndAnsweredInTheCallersMemory) {
  mp::Pool pool(resident(2));
  const auto items = iota(1'000'000);
  for (std::size_t chunksize : {0u, 65'536u, 1'000'000u}) {
    const auto out = pool.map([](int x) { return 2 * x + 1; }, items, chunksize);
    ASSERT_EQ(out.size(), items.size());
    for (std::size_t i = 0; i < out.size(); ++i) ASSERT_EQ(out[i], 2 * static_cast<int>(i) + 1) << i;
  }
  std::vector<Sample> samples(200'000);
  for (std::size_t i = 0; i < samples.size(); ++i) samples[i] = {0.5 * static_cast<double>(i), static_cast<int>(i)};
  const auto scaled = pool.map([](const Sample& s) { return Sample{s.weight * 2, -s.id}; }, samples);
  ASSERT_EQ(scaled.size(), samples.size());
  for (std::size_t i = 0; i < scaled.size(); ++i) {
    ASSERT_EQ(scaled[i].weight, static_cast<double>(i));
    ASSERT_EQ(scaled[i].id, -static_cast<int>(i));
  }
  // An asynchronous call owns its items: the caller's copy may go at once.
  auto pending = pool.map_async([](int x) { return x - 1; }, iota(300'000));
  const auto minus = pending.get(kTestTimeout);
  ASSERT_EQ(minus.size(), 300'000u);
  for (std::size_t i = 0; i < minus.size(); ++i) ASSERT_EQ(minus[i], static_cast<int>(i) - 1);
}

TEST_F(ResidentPool, AnErrorInALargeChunkReachesTheCallerAndThePoolStaysUsable) {
  mp::Pool pool(resident(2));
  for (int round = 0; round < 3; ++round) {
    try {
      pool.map(
          [](int x) {
            if (x == 123'456 || x == 350'000) throw std::domain_error("bad " + std::to_string(x));
            return x;
          },
          iota(400'000));
      FAIL() << "no exception";
    } catch (const mp::RemoteError& e) {
      EXPECT_EQ(e.index(), 123'456u);
      EXPECT_EQ(e.message(), "bad 123456");
    }
  }
  const auto out = pool.map([](int x) { return x / 2; }, iota(400'000));
  for (std::size_t i = 0; i < out.size(); ++i) ASSERT_EQ(out[i], static_cast<int>(i) / 2);
}

TEST_F(ResidentPool, AWorkerThatDiesInALargeChunkFailsThatItem) {
  mp::Pool pool(resident(2));
  const int parent = static_cast<int>(::getpid());
  try {
    pool.map(
        [parent](int x) {
          if (x == 150'001 && static_cast<int>(::getpid()) != parent) ::raise(SIGKILL);
          return x;
        },
        iota(300'000), 50'000);
    FAIL() << "no exception";
  } catch (const mp::WorkerLostError& e) {
    EXPECT_EQ(e.index(), 150'001u);
  }
  const auto out = pool.map([](int x) { return x + 7; }, iota(300'000), 50'000);
  for (std::size_t i = 0; i < out.size(); ++i) ASSERT_EQ(out[i], static_cast<int>(i) + 7);
}

// Two large calls in flight at once, their chunks on the same workers,
// each written into its own vector.
TEST_F(ResidentPool, TwoLargeCallsAtOnceBothGetTheirResults) {
  mp::Event gate;        // made before the pool: its workers share it
  mp::Event second_runs;
  mp::Pool pool(resident(2));
  auto first = pool.map_async(
      [&gate](int x) {
        if (x == 0) gate.wait(kTestTimeout);
        return x + 1;
      },
      iota(400'000));
  auto second = pool.map_async(
      [&second_runs](int x) {
        if (x == 0) second_runs.set();
        return 3 * x;
      },
      iota(300'000));
  // The second runs while the first, which came in before it, is held.
  ASSERT_TRUE(second_runs.wait(kTestTimeout));
  ASSERT_TRUE(second.wait(kTestTimeout));
  const auto thrice = second.get();
  gate.set();
  const auto plus_one = first.get(kTestTimeout);
  ASSERT_EQ(plus_one.size(), 400'000u);
  for (std::size_t i = 0; i < plus_one.size(); ++i) ASSERT_EQ(plus_one[i], static_cast<int>(i) + 1) << i;
  ASSERT_EQ(thrice.size(), 300'000u);
  for (std::size_t i = 0; i < thrice.size(); ++i) ASSERT_EQ(thrice[i], 3 * static_cast<int>(i)) << i;
  const auto again = pool.map([](int x) { return x - 5; }, iota(500'000));
  for (std::size_t i = 0; i < again.size(); ++i) ASSERT_EQ(again[i], static_cast<int>(i) - 5) << i;
}

// The caller's side of the open flag: a call that has returned (here with
// an error) has closed it, so a worker reads nothing more of its items.
// Worker 1 is held in its first chunk, with another queued behind it,
// while the call fails on worker 0 and returns; the test then overwrites
// the items and lets worker 1 go. Any item it ran from then on would be
// one of the overwritten ones.
TEST_F(ResidentPool, NoItemIsReadAfterItsCallHasReturned) {
  constexpr int kHold = 100'000;  // the first item of worker 1's first chunk
  mp::Event gate;                 // made before the pool: its workers share them
  mp::Event overwritten_seen;
  mp::Pool pool(resident(2));
  const auto f = [&gate, &overwritten_seen](int x) {
    if (x == 0) throw std::runtime_error("item 0");
    if (x == kHold) (void)gate.wait(kTestTimeout);
    if (x < 0) overwritten_seen.set();
    return x;
  };
  // The same f once before, on items it passes: its chunks are then known
  // to be quick, and queue two deep on each worker.
  std::vector<int> items = iota(400'000);
  std::vector<int> warm(items.begin() + 1, items.begin() + kHold);
  ASSERT_EQ(pool.map(f, warm).size(), warm.size());
  try {
    pool.map(f, items, 100'000);  // chunks 0, 2 to worker 0; 1, 3 to worker 1
    FAIL() << "no exception";
  } catch (const mp::RemoteError& e) {
    EXPECT_EQ(e.index(), 0u);
  }
  std::fill(items.begin(), items.end(), -1);
  gate.set();
  // A call with chunks for both workers: each runs it after what was queued.
  const auto later = pool.map([](int x) { return x + 1; }, iota(1'000), 1);
  ASSERT_EQ(later.size(), 1'000u);
  EXPECT_FALSE(overwritten_seen.is_set());
}

// The worker's side, alone: a chunk whose call has finished is left
// unread (its items may be gone); one it may not read says why.
TEST_F(ResidentPool, AWorkerReadsAChunkOnlyWhileItsCallIsOpen) {
  const std::vector<int> items = iota(5'000);
  std::atomic<std::uint8_t> open{1};
  std::atomic<std::uint8_t> closed{0};
  const auto caller = static_cast<std::uint64_t>(::getpid());
  // Two pages: the first readable, the second not.
  const auto page = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
  void* fence = ::mmap(nullptr, 2 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(fence, MAP_FAILED);
  ASSERT_EQ(::mprotect(static_cast<char*>(fence) + page, page, PROT_NONE), 0);
  mp::Process child([&] {
    namespace detail = concur::detail;
    detail::ResidentTask task;
    task.caller_pid = caller;
    task.remote_items = reinterpret_cast<std::uint64_t>(items.data());
    task.remote_count = items.size();
    task.remote_open = reinterpret_cast<std::uint64_t>(&open);
    std::vector<int> seen(1'000, -1);
    int error = -1;
    // From item 2,000 on: the offset is in bytes.
    if (detail::read_remote_items(task, 2'000 * sizeof(int), seen.data(), seen.size() * sizeof(int), error) !=
            detail::Placement::kInPlace ||
        error != 0 || seen.front() != 2'000 || seen.back() != 2'999) {
      ::_exit(2);
    }
    task.remote_open = reinterpret_cast<std::uint64_t>(&closed);
    if (detail::read_remote_items(task, 0, seen.data(), sizeof(int), error) != detail::Placement::kCallClosed) {
      ::_exit(3);
    }
    task.remote_open = reinterpret_cast<std::uint64_t>(&open);
    task.remote_items = 4096;  // not mapped in the caller
    if (detail::read_remote_items(task, 0, seen.data(), sizeof(int), error) != detail::Placement::kNoAccess ||
        error != EFAULT) {
      ::_exit(4);
    }
    // Readable up to a page that is not: the first system call stops
    // there, the second finds the fault.
    task.remote_items = reinterpret_cast<std::uint64_t>(fence) + page - 2 * sizeof(int);
    if (detail::read_remote_items(task, 0, seen.data(), 4 * sizeof(int), error) != detail::Placement::kNoAccess ||
        error != EFAULT) {
      ::_exit(5);
    }
    ::_exit(0);
  });
  child.start();
  const bool joined = child.join(kTestTimeout);
  ::munmap(fence, 2 * page);
  ASSERT_TRUE(joined);
  EXPECT_EQ(child.exitcode(), 0);
}

}  // namespace
