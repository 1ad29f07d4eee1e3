// The rules of the process Pool (API.md "Pool and ThreadPool").
#include "concur/multiprocessing/pool.hpp"

#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <list>
#include <map>
#include <mutex>
#include <numeric>
#include <ranges>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "concur/errors.hpp"
#include "concur/multiprocessing/process.hpp"
#include "concur/multiprocessing/thread_pool.hpp"
#include "concur/multiprocessing/value.hpp"
#include "concur/threading/event.hpp"
#include "concur/threading/lock.hpp"
#include "hygiene.hpp"
#include "test_support.hpp"
#include "throwing_input_checks.hpp"

namespace {

namespace mp = concur::multiprocessing;
namespace th = concur::threading;
using namespace concur::testing;
using namespace std::chrono_literals;

class PoolTest : public HygieneTest {};

std::vector<int> iota(int n) {
  std::vector<int> v(n);
  std::iota(v.begin(), v.end(), 0);
  return v;
}

struct Point {  // trivially copyable: its results land in shared memory
  int x;
  double y;
};

struct Named {  // a user type with serialize()
  std::string name;
  std::vector<int> values;
  template <class Archive>
  void serialize(Archive& archive) {
    archive(name, values);
  }
  bool operator==(const Named&) const = default;
};

TEST_F(PoolTest, MapReturnsResultsInOrder) {
  mp::Pool pool(2);
  const auto out = pool.map([](int x) { return x * x; }, iota(10000));
  ASSERT_EQ(out.size(), 10000u);
  for (int i = 0; i < 10000; ++i) ASSERT_EQ(out[i], i * i);
}

// map keeps the results' buffer out of its workers while they run
// (MADV_DONTFORK); once it returns, the buffer is ordinary memory again:
// children forked later (and the next map's workers) see it whole.
TEST_F(PoolTest, MapResultsAreInheritedByLaterChildren) {
  mp::Pool pool(2);
  const auto first = pool.map([](int x) { return 3 * x; }, iota(200000));
  const auto second = pool.map([&first](int x) { return first[static_cast<std::size_t>(x)] + 1; },
                               iota(200000));
  for (int i = 0; i < 200000; ++i) ASSERT_EQ(second[i], 3 * i + 1);
  mp::Process child([&first] {
    long long sum = 0;
    for (int v : first) sum += v;
    if (sum != 3LL * 199999 * 200000 / 2) std::_Exit(3);
  });
  child.start();
  ASSERT_TRUE(child.join(kTestTimeout));
  EXPECT_EQ(child.exitcode(), 0);
}

TEST_F(PoolTest, MapRunsInOtherProcesses) {
  mp::Pool pool(2);
  const auto pids = pool.map([](int) { return static_cast<int>(::getpid()); }, iota(100), 1);
  for (int pid : pids) EXPECT_NE(pid, ::getpid());
}

TEST_F(PoolTest, MapOverEmptyInput) {
  mp::Pool pool(2);
  EXPECT_TRUE(pool.map([](int x) { return x; }, std::vector<int>{}).empty());
}

TEST_F(PoolTest, MapWithChunksizeOneAndLargerThanTheInput) {
  mp::Pool pool(2);
  const auto items = iota(37);
  EXPECT_EQ(pool.map([](int x) { return x + 1; }, items, 1)[36], 37);
  EXPECT_EQ(pool.map([](int x) { return x + 1; }, items, 1000)[36], 37);
}

TEST_F(PoolTest, MapOverAListOfStringsToStrings) {
  mp::Pool pool(2);
  const std::list<std::string> words{"a", "bb", "ccc", "dddd", "eeeee"};
  const auto upper = pool.map([](const std::string& s) { return s + "!" + std::to_string(s.size()); },
                              words, 2);
  EXPECT_EQ(upper, (std::vector<std::string>{"a!1", "bb!2", "ccc!3", "dddd!4", "eeeee!5"}));
}

TEST_F(PoolTest, MapOfVectorsAndUserTypes) {
  mp::Pool pool(2);
  const auto vectors = pool.map([](int n) { return std::vector<int>(static_cast<std::size_t>(n), n); },
                                iota(20));
  for (int n = 0; n < 20; ++n) EXPECT_EQ(vectors[n], std::vector<int>(static_cast<std::size_t>(n), n));
  const auto named =
      pool.map([](int n) { return Named{"item" + std::to_string(n), {n, n + 1}}; }, iota(9), 2);
  EXPECT_EQ(named[7], (Named{"item7", {7, 8}}));
  const auto points = pool.map([](int n) { return Point{n, n / 2.0}; }, iota(50));
  EXPECT_EQ(points[49].x, 49);
  EXPECT_EQ(points[49].y, 24.5);
}

TEST_F(PoolTest, BoolResultsFromMapAndImap) {
  mp::Pool pool(2);
  const auto even = pool.map([](int x) { return x % 2 == 0; }, iota(9));
  EXPECT_EQ(even, (std::vector<bool>{true, false, true, false, true, false, true, false, true}));
  int count = 0;
  for (bool b : pool.imap([](int x) { return x % 3 == 0; }, iota(9))) count += b ? 1 : 0;
  EXPECT_EQ(count, 3);
}

TEST_F(PoolTest, StarmapUnpacksTuples) {
  mp::Pool pool(2);
  const std::vector<std::tuple<int, std::string>> args{{1, "a"}, {2, "b"}, {3, "c"}};
  const auto out =
      pool.starmap([](int n, const std::string& s) { return std::to_string(n) + s; }, args);
  EXPECT_EQ(out, (std::vector<std::string>{"1a", "2b", "3c"}));
}

TEST_F(PoolTest, LambdaCapturingByReferenceSeesTheStateOfTheCall) {
  mp::Pool pool(2);
  int offset = 1;
  auto add = [&offset](int x) { return x + offset; };
  EXPECT_EQ(pool.map(add, iota(5))[4], 5);
  offset = 100;  // a later call sees the new value: its workers are forked at the call
  EXPECT_EQ(pool.map(add, iota(5))[4], 104);
}

TEST_F(PoolTest, WhatFChangesStaysInTheWorker) {
  mp::Pool pool(2);
  std::vector<int> seen;
  const auto sizes = pool.map(
      [&seen](int x) {
        seen.push_back(x);
        return seen.size();
      },
      iota(100));
  EXPECT_TRUE(seen.empty());
  EXPECT_EQ(sizes.size(), 100u);
}

TEST_F(PoolTest, AnExceptionReachesTheCallerForTheLowestFailingIndex) {
  mp::Pool pool(2);
  try {
    pool.map(
        [](int x) {
          if (x % 7 == 3) throw std::domain_error("bad item " + std::to_string(x));
          return x;
        },
        iota(1000), 5);
    FAIL() << "map should have thrown";
  } catch (const mp::RemoteError& e) {
    EXPECT_EQ(e.index(), 3u);
    EXPECT_EQ(e.type_name(), "std::domain_error");
    EXPECT_EQ(e.message(), "bad item 3");
    EXPECT_NE(std::string(e.what()).find("std::domain_error"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("bad item 3"), std::string::npos);
  }
  // The pool stays usable.
  EXPECT_EQ(pool.map([](int x) { return x; }, iota(10))[9], 9);
}

TEST_F(PoolTest, AWorkerKilledMidTaskFailsThatTaskWithWorkerLostError) {
  mp::Pool pool(2);
  try {
    pool.map(
        [](int x) {
          if (x == 13) ::kill(::getpid(), SIGKILL);
          return x;
        },
        iota(40), 1);
    FAIL() << "map should have thrown";
  } catch (const mp::WorkerLostError& e) {
    EXPECT_EQ(e.index(), 13u);
    EXPECT_EQ(e.exitcode(), -SIGKILL);
    EXPECT_GT(e.pid(), 0);
  }
  EXPECT_EQ(pool.map([](int x) { return x * 2; }, iota(10))[9], 18);
}

TEST_F(PoolTest, AWorkerThatAbortsOrExitsFailsItsTask) {
  mp::Pool pool(2);
  try {
    pool.map(
        [](int x) {
          if (x == 5) std::abort();
          return x;
        },
        iota(10), 1);
    FAIL() << "map should have thrown";
  } catch (const mp::WorkerLostError& e) {
    EXPECT_EQ(e.index(), 5u);
    EXPECT_EQ(e.exitcode(), -SIGABRT);
  }
  try {
    pool.apply([] { ::_exit(7); });
    FAIL() << "apply should have thrown";
  } catch (const mp::WorkerLostError& e) {
    EXPECT_EQ(e.index(), 0u);
    EXPECT_EQ(e.exitcode(), 7);
  }
}

// The index of the running item is a plain store in a loop the compiler
// may vectorise (PoolSlot): a call f makes still finds it up to date.
TEST_F(PoolTest, AWorkerThatAbortsInAQuickLoopNamesItsItem) {
  const auto items = iota(1'000'000);
  for (const auto start : {mp::WorkerStart::per_call, mp::WorkerStart::once}) {
    mp::PoolOptions options;
    options.processes = 2;
    options.worker_start = start;
    mp::Pool pool(options);
    try {
      pool.map(
          [](int x) {
            if (x == 777'777) std::abort();
            return 2 * x + 1;
          },
          items);
      FAIL() << "map should have thrown";
    } catch (const mp::WorkerLostError& e) {
      EXPECT_EQ(e.index(), 777'777u);
      EXPECT_EQ(e.exitcode(), -SIGABRT);
    }
  }
}

TEST_F(PoolTest, TaskTimeoutStopsAnEndlessTask) {
  mp::PoolOptions options;
  options.processes = 2;
  options.task_timeout = 200ms;
  mp::Pool pool(options);
  const auto start = std::chrono::steady_clock::now();
  try {
    pool.map(
        [](int x) {
          if (x == 2) {
            for (;;) ::getppid();  // an endless task that never sleeps
          }
          return x;
        },
        iota(6), 1);
    FAIL() << "map should have thrown";
  } catch (const concur::TimeoutError& e) {
    EXPECT_NE(std::string(e.what()).find("item 2"), std::string::npos) << e.what();
  }
  EXPECT_LT(std::chrono::steady_clock::now() - start, kTestTimeout);
  EXPECT_EQ(pool.map([](int x) { return x; }, iota(4))[3], 3);
}

TEST_F(PoolTest, MaxtasksperchildReplacesWorkers) {
  mp::PoolOptions options;
  options.processes = 2;
  options.maxtasksperchild = 1;
  mp::Pool pool(options);
  const auto pids = pool.map([](int) { return static_cast<int>(::getpid()); }, iota(12), 1);
  const std::set<int> distinct(pids.begin(), pids.end());
  EXPECT_EQ(distinct.size(), 12u);  // one chunk per worker
}

TEST_F(PoolTest, InitializerRunsInEachWorker) {
  static int initialized = 0;  // set in the workers only
  mp::PoolOptions options;
  options.processes = 2;
  options.initializer = [] { initialized = 42; };
  mp::Pool pool(options);
  const auto seen = pool.map([](int) { return initialized; }, iota(20), 1);
  for (int v : seen) EXPECT_EQ(v, 42);
  EXPECT_EQ(initialized, 0);
}

TEST_F(PoolTest, ApplyAndApplyAsync) {
  mp::Pool pool(2);
  EXPECT_EQ(pool.apply([](int a, int b) { return a * b; }, 6, 7), 42);
  pool.apply([] {});  // void
  auto r = pool.apply_async([](const std::string& s) { return s + s; }, std::string("ab"));
  EXPECT_EQ(r.get(), "abab");
  EXPECT_TRUE(r.ready());
  EXPECT_TRUE(r.successful());
  auto failing = pool.apply_async([]() -> int { throw std::out_of_range("nope"); });
  EXPECT_THROW(failing.get(), mp::RemoteError);
  EXPECT_FALSE(failing.successful());
}

TEST_F(PoolTest, ManyApplyAsyncCallsAllComplete) {
  mp::Pool pool(2);
  std::vector<mp::AsyncResult<int>> results;
  for (int i = 0; i < 30; ++i) results.push_back(pool.apply_async([](int x) { return x * 3; }, i));
  for (int i = 0; i < 30; ++i) EXPECT_EQ(results[static_cast<std::size_t>(i)].get(kTestTimeout), i * 3);
}

TEST_F(PoolTest, MapAsync) {
  mp::Pool pool(2);
  auto r = pool.map_async([](int x) { return x + 1; }, iota(1000));
  ASSERT_TRUE(r.wait(kTestTimeout));
  const auto out = r.get();
  EXPECT_EQ(out[999], 1000);
  auto bad = pool.map_async(
      [](int x) {
        if (x == 10) throw std::runtime_error("ten");
        return x;
      },
      iota(100));
  try {
    bad.get(kTestTimeout);
    FAIL();
  } catch (const mp::RemoteError& e) {
    EXPECT_EQ(e.index(), 10u);
  }
}

TEST_F(PoolTest, ImapIsOrderedAndImapUnorderedGivesEveryResult) {
  mp::Pool pool(2);
  std::vector<int> ordered;
  for (int v : pool.imap([](int x) { return x * 10; }, iota(50), 3)) ordered.push_back(v);
  ASSERT_EQ(ordered.size(), 50u);
  for (int i = 0; i < 50; ++i) EXPECT_EQ(ordered[i], i * 10);
  std::multiset<int> unordered;
  for (int v : pool.imap_unordered([](int x) { return x * 10; }, iota(50))) unordered.insert(v);
  EXPECT_EQ(unordered.size(), 50u);
  EXPECT_EQ(*unordered.rbegin(), 490);
}

TEST_F(PoolTest, ImapOverALazyEndlessInputStopsWhenTheConsumerStops) {
  mp::Pool pool(2);
  int taken = 0;
  long long sum = 0;
  for (long long v : pool.imap([](long long x) { return x * x; }, std::views::iota(0LL))) {
    sum += v;
    if (++taken == 1000) break;
  }
  EXPECT_EQ(taken, 1000);
  EXPECT_EQ(sum, 332833500LL);
}

// An input that throws while it is read (throwing_input_checks.hpp).
TEST_F(PoolTest, ImapGivesTheResultsBeforeAnInputThatThrowsThenItsException) {
  mp::Pool pool(2);
  check_imap_over_a_throwing_input(pool);
}
TEST_F(PoolTest, MapOverAnInputThatThrowsRaisesItsOwnException) {
  mp::Pool pool(2);
  check_map_over_a_throwing_input<mp::RemoteError>(pool);
}

TEST_F(PoolTest, ImapErrorsAtTheirItemAndIterationGoesOn) {
  mp::Pool pool(2);
  int ok = 0;
  int failed = 0;
  auto results = pool.imap(
      [](int x) {
        if (x == 4) throw std::invalid_argument("four");
        if (x == 7) ::kill(::getpid(), SIGKILL);
        return x;
      },
      iota(10), 2);
  for (auto it = results.begin(); it != results.end(); ++it) {
    try {
      EXPECT_GE(*it, 0);
      ++ok;
    } catch (const mp::RemoteError& e) {
      EXPECT_EQ(e.index(), 4u);
      ++failed;
    } catch (const mp::WorkerLostError& e) {
      EXPECT_EQ(e.index(), 7u);
      ++failed;
    }
  }
  EXPECT_EQ(ok, 8);
  EXPECT_EQ(failed, 2);
}

TEST_F(PoolTest, CallsAfterCloseOrTerminateAreRefused) {
  mp::Pool pool(2);
  EXPECT_THROW(pool.join(), std::logic_error);
  pool.close();
  EXPECT_THROW(pool.map([](int x) { return x; }, iota(3)), std::invalid_argument);
  EXPECT_THROW(pool.apply_async([] { return 1; }), std::invalid_argument);
  pool.join();
  mp::Pool other(2);
  other.terminate();
  EXPECT_THROW(other.apply([] { return 1; }), std::invalid_argument);
  other.join();
}

TEST_F(PoolTest, OptionsAreChecked) {
  EXPECT_THROW(mp::Pool(-1), std::invalid_argument);
  mp::PoolOptions options;
  options.maxtasksperchild = -1;
  EXPECT_THROW(mp::Pool{options}, std::invalid_argument);
  options.maxtasksperchild = 0;
  options.task_timeout = -1s;
  EXPECT_THROW(mp::Pool{options}, std::invalid_argument);
  EXPECT_EQ(mp::Pool().processes(), mp::cpu_count());
}

TEST_F(PoolTest, TerminateFailsTheOutstandingResults) {
  mp::Pool pool(1);
  auto r = pool.apply_async([] {
    for (;;) ::pause();
    return 0;
  });
  pool.terminate();
  EXPECT_THROW(r.get(kTestTimeout), std::runtime_error);
  pool.join();
}

TEST_F(PoolTest, DestroyingAPoolFinishesItsAsyncWork) {
  auto counter = mp::Value<int>(0);
  {
    mp::Pool pool(2);
    for (int i = 0; i < 5; ++i) {
      pool.apply_async([counter]() mutable {
        std::scoped_lock guard(counter.get_lock());
        counter.value() += 1;
      });
    }
  }
  EXPECT_EQ(counter.value(), 5);
}

TEST_F(PoolTest, HugeResults) {
  mp::Pool pool(2);
  const auto out = pool.map([](int n) { return std::string(50u << 20, static_cast<char>('a' + n)); },
                            iota(2), 1);
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0].size(), 50u << 20);
  EXPECT_EQ(out[1][12345], 'b');
}

TEST_F(PoolTest, ATaskOfAThreadPoolUsesAPool) {
  mp::ThreadPool threads(2);
  const auto sums = threads.map(
      [](int n) {
        mp::Pool pool(2);
        const auto squares = pool.map([](int x) { return x * x; }, iota(n));
        return std::accumulate(squares.begin(), squares.end(), 0);
      },
      std::vector<int>{10, 20, 30});
  EXPECT_EQ(sums, (std::vector<int>{285, 2470, 8555}));
}

// Python 3.14 left fork because forking a process whose other threads hold
// locks can deadlock the child. A worker here only touches what the call
// gave it, glibc's malloc and stdio are fork-safe, and concur resets its own
// locks in the child: a pool used while other threads allocate, print and
// hold locks never hangs.
TEST_F(PoolTest, PoolUsedWhileOtherThreadsHoldLocksAndAllocate) {
#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
  // What this proves is glibc's: its malloc is fork-safe. The sanitizer
  // runtimes' allocators are not (a child forked while another thread holds
  // one of their internal locks stops at its first malloc: seen with GCC
  // 12's libasan in tests/stress/soak_test.cpp), so this runs in the
  // release build only.
  GTEST_SKIP() << "the sanitizer allocators are not fork-safe; run in the release build";
#endif
  std::atomic<bool> stop{false};
  th::Lock held;
  std::mutex std_lock;
  std::vector<std::thread> busy;
  for (int t = 0; t < 2; ++t) {
    busy.emplace_back([&] {
      while (!stop.load(std::memory_order_relaxed)) {
        std::vector<std::string> junk;
        for (int i = 0; i < 64; ++i) junk.emplace_back(static_cast<std::size_t>(i * 13), 'x');
        std::scoped_lock guard(std_lock);
      }
    });
  }
  busy.emplace_back([&] {
    while (!stop.load(std::memory_order_relaxed)) {
      std::scoped_lock guard(held);
      std::fprintf(stderr, "%s", "");
    }
  });
  mp::Pool pool(2);
  for (int round = 0; round < 50; ++round) {
    const auto out = pool.map(
        [](int x) {
          std::vector<std::string> v(16, std::string(100, 'y'));
          return static_cast<int>(v.size()) + x;
        },
        iota(64), 4);
    ASSERT_EQ(out[63], 79);
  }
  stop = true;
  for (auto& t : busy) t.join();
}

}  // namespace
