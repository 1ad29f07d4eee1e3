// The rules of ThreadPool and AsyncResult (API.md "Pool and ThreadPool").
#include "concur/multiprocessing/thread_pool.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <list>
#include <map>
#include <memory>
#include <numeric>
#include <ranges>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "concur/errors.hpp"
#include "concur/threading/event.hpp"
#include "concur/threading/lock.hpp"
#include "test_support.hpp"
#include "throwing_input_checks.hpp"

namespace {

namespace mp = concur::multiprocessing;
namespace th = concur::threading;
using namespace concur::testing;

std::vector<int> iota(int n) {
  std::vector<int> v(n);
  std::iota(v.begin(), v.end(), 0);
  return v;
}

TEST(ThreadPool, MapReturnsResultsInOrder) {
  mp::ThreadPool pool(3);
  const auto out = pool.map([](int x) { return x * x; }, iota(1000));
  ASSERT_EQ(out.size(), 1000u);
  for (int i = 0; i < 1000; ++i) EXPECT_EQ(out[i], i * i);
}

TEST(ThreadPool, BoolResultsFromImap) {
  mp::ThreadPool pool(2);
  int count = 0;
  for (bool b : pool.imap([](int x) { return x % 3 == 0; }, iota(9))) count += b ? 1 : 0;
  EXPECT_EQ(count, 3);
}

// std::vector<bool> packs bits: neighbouring results written by different
// workers must not share a byte (TSan checks it; a lost bit shows here).
TEST(ThreadPool, BoolResultsFromMapWithChunksOfOddSizes) {
  mp::ThreadPool pool(3);
  const auto odd = pool.map([](int x) { return x % 2 == 1; }, iota(1001), 3);
  ASSERT_EQ(odd.size(), 1001u);
  for (int i = 0; i < 1001; ++i) ASSERT_EQ(odd[static_cast<std::size_t>(i)], i % 2 == 1) << i;
}

TEST(ThreadPool, MapOverEmptyInput) {
  mp::ThreadPool pool(2);
  EXPECT_TRUE(pool.map([](int x) { return x; }, std::vector<int>{}).empty());
}

TEST(ThreadPool, MapWithChunksizeOneAndLargerThanTheInput) {
  mp::ThreadPool pool(2);
  const auto items = iota(37);
  EXPECT_EQ(pool.map([](int x) { return x + 1; }, items, 1)[36], 37);
  EXPECT_EQ(pool.map([](int x) { return x + 1; }, items, 1000)[36], 37);
}

TEST(ThreadPool, MapOverAListOfStrings) {
  mp::ThreadPool pool(2);
  const std::list<std::string> words{"a", "bb", "ccc"};
  const auto lengths = pool.map([](const std::string& s) { return s.size(); }, words);
  EXPECT_EQ(lengths, (std::vector<std::size_t>{1, 2, 3}));
}

TEST(ThreadPool, LambdaCapturingByReferenceSeesCurrentState) {
  mp::ThreadPool pool(2);
  int offset = 1;
  offset = 100;
  const auto out = pool.map([&](int x) { return x + offset; }, iota(4));
  EXPECT_EQ(out, (std::vector<int>{100, 101, 102, 103}));
}

TEST(ThreadPool, ResultTypeWithoutDefaultConstructor) {
  struct NoDefault {
    explicit NoDefault(int v) : value(v) {}
    int value;
  };
  mp::ThreadPool pool(2);
  const auto out = pool.map([](int x) { return NoDefault(x * 2); }, iota(10));
  EXPECT_EQ(out[9].value, 18);
}

// apply hands over the result f returned, without copying it (a large
// value would cost its size again); apply_async's get() copies, because it
// may be called again.
struct CopyCounted {
  static inline std::atomic<int> copies{0};
  std::vector<int> payload;
  CopyCounted() = default;
  explicit CopyCounted(std::vector<int> p) : payload(std::move(p)) {}
  CopyCounted(const CopyCounted& other) : payload(other.payload) { ++copies; }
  CopyCounted(CopyCounted&&) noexcept = default;
  CopyCounted& operator=(const CopyCounted& other) {
    payload = other.payload;
    ++copies;
    return *this;
  }
  CopyCounted& operator=(CopyCounted&&) noexcept = default;
};

TEST(ThreadPool, ApplyMovesTheResultToTheCaller) {
  mp::ThreadPool pool(2);
  CopyCounted::copies = 0;
  const CopyCounted out = pool.apply([] { return CopyCounted(std::vector<int>(1000, 7)); });
  EXPECT_EQ(out.payload.size(), 1000u);
  EXPECT_EQ(CopyCounted::copies.load(), 0);
  auto pending = pool.apply_async([] { return CopyCounted(std::vector<int>(10, 1)); });
  EXPECT_EQ(pending.get(kTestTimeout).payload.size(), 10u);
  EXPECT_EQ(pending.get(kTestTimeout).payload.size(), 10u);  // again: the value stays
  EXPECT_EQ(CopyCounted::copies.load(), 2);
}

TEST(ThreadPool, ExceptionOfTheLowestFailingIndexReachesTheCaller) {
  mp::ThreadPool pool(4);
  for (std::size_t chunksize : {1u, 3u, 0u}) {
    try {
      pool.map(fails_at_5_17_90, iota(100), chunksize);
      FAIL() << "no exception";
    } catch (const std::domain_error& e) {
      EXPECT_STREQ(e.what(), "bad 5");
    }
  }
}

// The caller lets go of its AsyncResult before its handler reads the error
// (a temporary), and the worker drops the last reference afterwards, ordered
// by nothing ThreadSanitizer can see -- as libstdc++'s own count on the
// exception is invisible to it. Under ThreadSanitizer this failed as a race
// on the exception's memory until ResultState released it through
// detail::release_exception; in every build it checks the error arrives.
TEST(ThreadPool, ErrorReadByTheCallerAfterTheWorkerKeptTheLastReference) {
  auto state = std::make_shared<concur::detail::ResultState<int>>();
  std::atomic<bool> handled{false};
  std::thread worker([held = state, &handled]() mutable {
    held->set_exception(std::make_exception_ptr(std::runtime_error("raised by the worker")));
    // Relaxed on purpose: no happens-before from the caller's handler.
    while (!handled.load(std::memory_order_relaxed)) std::this_thread::yield();
    held.reset();
  });
  try {
    mp::AsyncResult<int>(std::move(state)).get();
    ADD_FAILURE() << "no exception";
  } catch (const std::runtime_error& e) {
    EXPECT_STREQ(e.what(), "raised by the worker");
  }
  handled.store(true, std::memory_order_relaxed);
  worker.join();
}

TEST(ThreadPool, StarmapUnpacksTuples) {
  mp::ThreadPool pool(2);
  const std::vector<std::tuple<int, int>> pairs{{1, 2}, {3, 4}, {5, 6}};
  EXPECT_EQ(pool.starmap([](int a, int b) { return a * b; }, pairs), (std::vector<int>{2, 12, 30}));
  const std::vector<std::pair<std::string, int>> reps{{"ab", 2}};
  EXPECT_EQ(pool.starmap(
                [](const std::string& s, int n) {
                  std::string out;
                  for (int i = 0; i < n; ++i) out += s;
                  return out;
                },
                reps)[0],
            "abab");
}

TEST(ThreadPool, ApplyRunsInAWorkerAndReturns) {
  mp::ThreadPool pool(1);
  const auto caller = std::this_thread::get_id();
  EXPECT_EQ(pool.apply([](int a, int b) { return a - b; }, 10, 3), 7);
  EXPECT_NE(pool.apply([] { return std::this_thread::get_id(); }), caller);
}

TEST(ThreadPool, ApplyRethrowsTheVeryException) {
  mp::ThreadPool pool(1);
  EXPECT_THROW(pool.apply([] { throw std::out_of_range("x"); }), std::out_of_range);
}

TEST(ThreadPool, ApplyAsyncGivesAnAsyncResult) {
  mp::ThreadPool pool(2);
  th::Event release;
  auto r = pool.apply_async([&] {
    release.wait(kTestTimeout);
    return std::string("done");
  });
  EXPECT_FALSE(r.ready());
  EXPECT_THROW((void)r.successful(), std::logic_error);
  EXPECT_FALSE(r.wait(10ms));
  EXPECT_THROW((void)r.get(10ms), concur::TimeoutError);
  release.set();
  EXPECT_EQ(r.get(kTestTimeout), "done");
  EXPECT_TRUE(r.ready());
  EXPECT_TRUE(r.successful());
  EXPECT_EQ(r.get(), "done");  // again: the value is kept
}

TEST(ThreadPool, ApplyAsyncOfVoid) {
  mp::ThreadPool pool(1);
  std::atomic<int> ran{0};
  auto r = pool.apply_async([&] { ++ran; });
  r.get();
  EXPECT_EQ(ran, 1);
  EXPECT_TRUE(r.successful());
}

TEST(ThreadPool, FailedAsyncResultIsUnsuccessfulAndRethrows) {
  mp::ThreadPool pool(1);
  auto r = pool.apply_async([]() -> int { throw std::invalid_argument("no"); });
  r.wait();
  EXPECT_TRUE(r.ready());
  EXPECT_FALSE(r.successful());
  EXPECT_THROW(r.get(), std::invalid_argument);
  EXPECT_THROW(r.get(), std::invalid_argument);
}

TEST(ThreadPool, MapAsyncCopiesItsInputs) {
  mp::ThreadPool pool(2);
  auto r = [&] {
    std::vector<int> local = iota(50);
    return pool.map_async([](int x) { return x * 3; }, local);
  }();
  const auto out = r.get(kTestTimeout);
  EXPECT_EQ(out.size(), 50u);
  EXPECT_EQ(out[49], 147);
}

TEST(ThreadPool, ImapIsInOrderAndLazyOverALazyInput) {
  mp::ThreadPool pool(2);
  std::atomic<long> produced{0};
  auto numbers = std::views::iota(0L, 100000L) | std::views::transform([&](long x) {
                   ++produced;
                   return x;
                 });
  long expected = 0;
  for (long v : pool.imap([](long x) { return x * 2; }, numbers, 8)) {
    EXPECT_EQ(v, expected * 2);
    ++expected;
    if (expected == 100) break;
  }
  // Stopping early stopped the input: only a bounded window was read ahead.
  EXPECT_LT(produced.load(), 100 + 4 * 8 * 2 + 8);
}

TEST(ThreadPool, ImapOverAnEndlessInputStopsWhenTheConsumerStops) {
  mp::ThreadPool pool(2);
  int seen = 0;
  for (long v : pool.imap([](long x) { return x; }, std::views::iota(0L))) {
    EXPECT_EQ(v, seen);
    if (++seen == 1000) break;
  }
  EXPECT_EQ(seen, 1000);
}

TEST(ThreadPool, ImapUnorderedYieldsEveryResultOnce) {
  mp::ThreadPool pool(3);
  std::multiset<int> got;
  for (int v : pool.imap_unordered([](int x) { return x * x; }, iota(500), 7)) got.insert(v);
  ASSERT_EQ(got.size(), 500u);
  for (int i = 0; i < 500; ++i) EXPECT_EQ(got.count(i * i), 1u);
}

TEST(ThreadPool, ImapRethrowsAtTheFailingItemAndGoesOn) {
  mp::ThreadPool pool(2);
  auto results = pool.imap(
      [](int x) {
        if (x == 3) throw std::runtime_error("three");
        return x;
      },
      iota(6), 2);
  std::vector<int> seen;
  int errors = 0;
  for (auto it = results.begin(); it != results.end(); ++it) {
    try {
      seen.push_back(*it);
    } catch (const std::runtime_error&) {
      ++errors;
    }
  }
  EXPECT_EQ(errors, 1);
  EXPECT_EQ(seen, (std::vector<int>{0, 1, 2, 4, 5}));
}

// An input that throws while it is read (throwing_input_checks.hpp).
TEST(ThreadPool, ImapGivesTheResultsBeforeAnInputThatThrowsThenItsException) {
  mp::ThreadPool pool(2);
  check_imap_over_a_throwing_input(pool);
}
TEST(ThreadPool, MapOverAnInputThatThrowsRaisesItsOwnException) {
  mp::ThreadPool pool(2);
  check_map_over_a_throwing_input<std::domain_error>(pool);
}

TEST(ThreadPool, ImapOverEmptyInput) {
  mp::ThreadPool pool(2);
  int n = 0;
  for (int v : pool.imap([](int x) { return x; }, std::vector<int>{})) n += v + 1;
  EXPECT_EQ(n, 0);
}

TEST(ThreadPool, CallsAfterCloseThrowInvalidArgument) {
  mp::ThreadPool pool(2);
  pool.close();
  EXPECT_THROW(pool.map([](int x) { return x; }, iota(3)), std::invalid_argument);
  EXPECT_THROW(pool.apply([] { return 1; }), std::invalid_argument);
  EXPECT_THROW(pool.apply_async([] { return 1; }), std::invalid_argument);
  EXPECT_THROW(pool.imap([](int x) { return x; }, iota(3)), std::invalid_argument);
  pool.join();
}

TEST(ThreadPool, CallsAfterTerminateThrowInvalidArgument) {
  mp::ThreadPool pool(2);
  pool.terminate();
  EXPECT_THROW(pool.map([](int x) { return x; }, iota(3)), std::invalid_argument);
  pool.join();
}

TEST(ThreadPool, JoinWhileRunningThrowsLogicError) {
  mp::ThreadPool pool(2);
  EXPECT_THROW(pool.join(), std::logic_error);
}

TEST(ThreadPool, CloseLetsQueuedWorkFinish) {
  mp::ThreadPool pool(1);
  th::Event release;
  std::vector<mp::AsyncResult<int>> results;
  results.push_back(pool.apply_async([&] {
    release.wait(kTestTimeout);
    return 0;
  }));
  for (int i = 1; i < 10; ++i) results.push_back(pool.apply_async([i] { return i; }));
  pool.close();
  release.set();
  pool.join();
  for (int i = 0; i < 10; ++i) EXPECT_EQ(results[i].get(0s), i);
}

TEST(ThreadPool, TerminateFailsQueuedWorkInsteadOfHanging) {
  mp::ThreadPool pool(1);
  th::Event started;
  th::Event release;
  auto running = pool.apply_async([&] {
    started.set();
    release.wait(kTestTimeout);
    return 1;
  });
  ASSERT_TRUE(started.wait(kTestTimeout));
  auto queued = pool.apply_async([] { return 2; });
  pool.terminate();
  release.set();
  pool.join();
  EXPECT_EQ(running.get(kTestTimeout), 1);
  EXPECT_TRUE(queued.wait(kTestTimeout));
  EXPECT_FALSE(queued.successful());
}

TEST(ThreadPool, DestructorFinishesOutstandingWork) {
  std::atomic<int> done{0};
  {
    mp::ThreadPool pool(2);
    for (int i = 0; i < 20; ++i) (void)pool.apply_async([&] { ++done; });
  }
  EXPECT_EQ(done, 20);
}

TEST(ThreadPool, TaskTimeoutIsRefused) {
  mp::PoolOptions options;
  options.processes = 1;
  options.task_timeout = std::chrono::duration<double>(1.0);
  EXPECT_THROW(mp::ThreadPool pool(options), std::invalid_argument);
}

TEST(ThreadPool, NegativeProcessesIsRefused) {
  EXPECT_THROW(mp::ThreadPool pool(-1), std::invalid_argument);
}

TEST(ThreadPool, ZeroProcessesMeansCpuCount) {
  mp::ThreadPool pool(0);
  EXPECT_GE(pool.processes(), 1);
}

TEST(ThreadPool, InitializerRunsOnceInEachWorker) {
  std::atomic<int> inits{0};
  mp::PoolOptions options;
  options.processes = 3;
  options.initializer = [&] { ++inits; };
  {
    mp::ThreadPool pool(options);
    pool.map([](int x) { return x; }, iota(100));
  }
  EXPECT_EQ(inits, 3);
}

TEST(ThreadPool, MaxTasksPerChildReplacesWorkers) {
  std::atomic<int> inits{0};
  mp::PoolOptions options;
  options.processes = 1;
  options.maxtasksperchild = 2;
  options.initializer = [&] { ++inits; };
  {
    mp::ThreadPool pool(options);
    for (int i = 0; i < 6; ++i) EXPECT_EQ(pool.apply([i] { return i; }), i);
  }
  EXPECT_GE(inits, 3);
}

TEST(ThreadPool, NestedUseFromATask) {
  mp::ThreadPool outer(2);
  const int total = outer.apply([] {
    mp::ThreadPool inner(2);
    const auto v = inner.map([](int x) { return x; }, iota(10));
    return std::accumulate(v.begin(), v.end(), 0);
  });
  EXPECT_EQ(total, 45);
}

// Every worker runs a task that maps on the same pool: the workers, waiting
// in their own map, run the inner chunks themselves.
TEST(ThreadPool, TasksThatMapOnTheirOwnPoolDoNotDeadlock) {
  mp::ThreadPool pool(2);
  auto outer = pool.map_async(
      [&pool](int x) {
        const auto v = pool.map([x](int y) { return x * y; }, iota(100), 1);
        return std::accumulate(v.begin(), v.end(), 0);
      },
      iota(4), 1);
  const auto sums = outer.get(kTestTimeout);
  for (int x = 0; x < 4; ++x) EXPECT_EQ(sums[static_cast<std::size_t>(x)], x * 4950);
}

// A caller waiting in map runs chunks of its own map only. Here the one
// worker is busy and another thread's task, queued ahead of the map's
// chunks, needs a lock the caller holds: had the caller run that task, it
// would have waited on itself (the task gives up after kTestTimeout and
// reports it).
TEST(ThreadPool, CallerRunsOnlyChunksOfItsOwnMap) {
  mp::ThreadPool pool(1);
  th::Lock held;
  th::Event busy;
  th::Event release;
  auto blocker = pool.apply_async([&] {
    busy.set();
    return release.wait(kTestTimeout);
  });
  ASSERT_TRUE(busy.wait(kTestTimeout));
  held.acquire();
  auto foreign = pool.apply_async([&] {
    const bool got = held.acquire(kTestTimeout);
    if (got) held.release();
    return got;
  });
  const auto caller = std::this_thread::get_id();
  std::atomic<int> on_caller{0};
  const auto out = pool.map(
      [&](int x) {
        if (std::this_thread::get_id() == caller) ++on_caller;
        return x + 1;
      },
      iota(8), 1);
  held.release();
  release.set();
  EXPECT_EQ(out, (std::vector<int>{1, 2, 3, 4, 5, 6, 7, 8}));
  EXPECT_EQ(on_caller.load(), 8) << "the worker was busy: the caller ran every chunk";
  EXPECT_TRUE(blocker.get(kTestTimeout));
  EXPECT_TRUE(foreign.get(kTestTimeout)) << "the caller ran another thread's task";
}

// With an initializer, f may rely on what it set up in each worker thread:
// the caller then never runs chunks itself.
TEST(ThreadPool, WithAnInitializerFRunsOnlyInWorkers) {
  static thread_local bool initialized = false;
  mp::PoolOptions options;
  options.processes = 2;
  options.initializer = [] { initialized = true; };
  mp::ThreadPool pool(options);
  const auto seen = pool.map([](int) { return initialized; }, iota(1000), 1);
  for (bool s : seen) ASSERT_TRUE(s);
}

// As CPython's worker drops its task, the callable and the arguments are
// destroyed once the task has run, while its AsyncResult is still held.
TEST(ThreadPool, ApplyAsyncDropsItsCallableAndArgumentsOnceRun) {
  mp::ThreadPool pool(1);
  auto arg = std::make_shared<int>(41);
  auto captured = std::make_shared<int>(1);
  auto result = pool.apply_async([captured](const std::shared_ptr<int>& p) { return *p + *captured; },
                                 arg);
  EXPECT_EQ(result.get(kTestTimeout), 42);
  EXPECT_EQ(arg.use_count(), 1);
  EXPECT_EQ(captured.use_count(), 1);
}

TEST(ThreadPool, ManySmallCallsFromSeveralThreads) {
  mp::ThreadPool pool(2);
  run_threads(4, [&](int t) {
    for (int i = 0; i < 50; ++i) {
      const auto v = pool.map([t](int x) { return x + t; }, iota(20));
      EXPECT_EQ(v[19], 19 + t);
    }
  });
}

}  // namespace
