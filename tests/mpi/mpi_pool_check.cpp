// The rules of concur::mpi::Pool, run under mpirun (-np 3 and -np 1, see
// tests/CMakeLists.txt): every rank makes the pool, the serving ranks call
// serve(), rank 0 runs these tests with GoogleTest and then closes the pool.
#include <gtest/gtest.h>

#include <mpi.h>
#include <time.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <memory>

#include <cstdlib>
#include <cstring>
#include <ranges>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "concur/errors.hpp"
#include "concur/mpi.hpp"

namespace {

namespace mp = concur::multiprocessing;
concur::mpi::Pool* g_pool = nullptr;

int square(int x) { return x * x; }
std::string shout(const std::string& s) { return s + "!"; }
int fails_at_7(int x) {
  if (x == 7 || x == 9) throw std::domain_error("no " + std::to_string(x));
  return x;
}
struct Scale {  // a default-constructible function object
  double operator()(double x) const { return 2.5 * x; }
};
struct Named {
  std::string name;
  std::vector<int> values;
  template <class Archive>
  void serialize(Archive& archive) {
    archive(name, values);
  }
};

std::vector<int> iota(int n) {
  std::vector<int> v(static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i) v[static_cast<std::size_t>(i)] = i;
  return v;
}

TEST(MpiPool, SizeIsTheNumberOfServingRanks) {
  EXPECT_TRUE(g_pool->is_master());
  EXPECT_GE(g_pool->size(), 0);
}

TEST(MpiPool, MapOfAFunctionInOrder) {
  const auto out = g_pool->map(square, iota(1000));
  ASSERT_EQ(out.size(), 1000u);
  for (int i = 0; i < 1000; ++i) EXPECT_EQ(out[static_cast<std::size_t>(i)], i * i);
}

TEST(MpiPool, MapOfACapturelessLambdaAndAFunctionObject) {
  const auto out = g_pool->map([](int x) { return x + 1; }, iota(100), 7);
  EXPECT_EQ(out[99], 100);
  const auto scaled = g_pool->map(Scale{}, std::vector<double>{1.0, 2.0, 4.0});
  EXPECT_EQ(scaled, (std::vector<double>{2.5, 5.0, 10.0}));
}

TEST(MpiPool, EmptyInputAndChunkSizes) {
  EXPECT_TRUE(g_pool->map(square, std::vector<int>{}).empty());
  EXPECT_EQ(g_pool->map(square, iota(10), 1)[9], 81);
  EXPECT_EQ(g_pool->map(square, iota(10), 1000)[9], 81);
}

TEST(MpiPool, StringsVectorsAndUserTypes) {
  const auto out = g_pool->map(shout, std::vector<std::string>{"a", "bb", "ccc"});
  EXPECT_EQ(out, (std::vector<std::string>{"a!", "bb!", "ccc!"}));
  const auto named = g_pool->map([](int n) { return Named{"n" + std::to_string(n), {n, n}}; }, iota(5));
  EXPECT_EQ(named[4].name, "n4");
  EXPECT_EQ(named[4].values, (std::vector<int>{4, 4}));
}

TEST(MpiPool, Starmap) {
  const std::vector<std::tuple<int, int>> pairs{{1, 2}, {3, 4}, {5, 6}};
  EXPECT_EQ(g_pool->starmap([](int a, int b) { return a * b; }, pairs), (std::vector<int>{2, 12, 30}));
}

TEST(MpiPool, AnExceptionReachesRankZeroForTheLowestIndex) {
  try {
    g_pool->map(fails_at_7, iota(20), 3);
    FAIL() << "map should have thrown";
  } catch (const mp::RemoteError& e) {
    EXPECT_EQ(e.index(), 7u);
    EXPECT_EQ(e.type_name(), "std::domain_error");
    EXPECT_EQ(e.message(), "no 7");
  }
  EXPECT_EQ(g_pool->map(square, iota(3))[2], 4);  // still usable
}

TEST(MpiPool, ApplyAndAsync) {
  EXPECT_EQ(g_pool->apply([](int a, int b) { return a - b; }, 10, 4), 6);
  auto r = g_pool->apply_async(square, 12);
  EXPECT_EQ(r.get(), 144);
  auto m = g_pool->map_async(square, iota(50));
  EXPECT_EQ(m.get()[49], 49 * 49);
  auto bad = g_pool->map_async(fails_at_7, iota(10));
  ASSERT_TRUE(bad.wait(std::chrono::seconds(60)));
  EXPECT_FALSE(bad.successful());
  EXPECT_THROW(bad.get(), mp::RemoteError);
}

TEST(MpiPool, ImapInOrderAndUnordered) {
  std::vector<int> ordered;
  for (int v : g_pool->imap(square, iota(100), 4)) ordered.push_back(v);
  ASSERT_EQ(ordered.size(), 100u);
  for (int i = 0; i < 100; ++i) EXPECT_EQ(ordered[static_cast<std::size_t>(i)], i * i);
  std::multiset<int> unordered;
  for (int v : g_pool->imap_unordered(square, iota(100))) unordered.insert(v);
  EXPECT_EQ(unordered.size(), 100u);
  EXPECT_EQ(*unordered.rbegin(), 99 * 99);
}

TEST(MpiPool, ImapOverAnEndlessLazyInputStopsEarly) {
  long long sum = 0;
  int taken = 0;
  for (long long v : g_pool->imap([](long long x) { return x * 2; }, std::views::iota(0LL), 16)) {
    sum += v;
    if (++taken == 500) break;
  }
  EXPECT_EQ(sum, 249500);
  EXPECT_EQ(g_pool->map(square, iota(4))[3], 9);  // replies still due were drained
}

TEST(MpiPool, ImapErrorsAtTheirItem) {
  int ok = 0;
  int failed = 0;
  auto results = g_pool->imap(fails_at_7, iota(12), 2);
  for (auto it = results.begin(); it != results.end(); ++it) {
    try {
      (void)*it;
      ++ok;
    } catch (const mp::RemoteError& e) {
      EXPECT_TRUE(e.index() == 7 || e.index() == 9);
      ++failed;
    }
  }
  EXPECT_EQ(ok, 10);
  EXPECT_EQ(failed, 2);
}

// CPython's exception_throwing_generator: reading the input throws at `when`.
struct SayWhenError : std::runtime_error {
  using std::runtime_error::runtime_error;
};
auto throwing_input(int total, int when) {
  return std::views::iota(0, total) | std::views::transform([when](int i) {
           if (i == when) throw SayWhenError("somebody said when");
           return i;
         });
}

// As mp::Pool: an input that throws gives the results before the chunk it
// failed in, then its own exception (imap); map raises it at once.
TEST(MpiPool, AnInputThatThrowsEndsTheCallWithItsOwnException) {
  std::vector<int> seen;
  bool thrown = false;
  try {
    for (int v : g_pool->imap(square, throwing_input(20, 7), 2)) seen.push_back(v);
  } catch (const SayWhenError&) {
    thrown = true;
  }
  EXPECT_TRUE(thrown);
  EXPECT_EQ(seen, (std::vector<int>{0, 1, 4, 9, 16, 25}));
  EXPECT_THROW(g_pool->map(square, throwing_input(10, 3), 1), SayWhenError);
  EXPECT_EQ(g_pool->map(square, iota(3))[2], 4);  // still usable
}

TEST(MpiPool, LargeItemsStream) {
  const std::vector<std::string> big{std::string(24u << 20, 'x'), std::string(3u << 20, 'y')};
  const auto sizes = g_pool->map([](const std::string& s) { return s.size(); }, big, 1);
  EXPECT_EQ(sizes, (std::vector<std::size_t>{24u << 20, 3u << 20}));
}

// A job whose task no rank knows: what a rank running another build sees.
struct UnknownTask final : concur::mpi::detail::Job {
  UnknownTask() : Job(0x1234567890abcdefull, "") {}
  Next next_chunk(Chunk& out) override {
    if (sent) return Next::kDone;
    sent = true;
    out.first = 0;
    return Next::kChunk;
  }
  void on_reply(std::uint64_t, const std::string&) override { replied = true; }
  void on_failure(std::exception_ptr e) override { failure = e; }
  void on_lost(std::uint64_t, std::exception_ptr e) override { failure = e; }
  void on_finish() override {}
  bool sent = false;
  bool replied = false;
  std::exception_ptr failure;
};

TEST(MpiPool, ARankThatCannotResolveATaskAnswersWithAClearError) {
  auto& engine = g_pool->engine_for_testing();
  auto job = std::make_shared<UnknownTask>();
  engine.submit(job);
  engine.wait([&job] { return job->finished(); });
  EXPECT_FALSE(job->replied);
  try {
    ASSERT_TRUE(job->failure);
    std::rethrow_exception(job->failure);
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("no task of this kind"), std::string::npos) << e.what();
  }
  // A function pointer that does not point into code is refused before sending.
  EXPECT_THROW((void)concur::mpi::detail::function_to_wire(&engine), std::invalid_argument);
  EXPECT_EQ(g_pool->map(square, iota(3))[2], 4);
}

// Blocks until the file `gate` exists (bounded: 60 s), then returns its
// name's length: a task that rank 0 lets finish when it chooses.
std::size_t wait_for_gate(const std::string& gate) {
  for (int tick = 0; tick < 60'000 && ::access(gate.c_str(), F_OK) != 0; ++tick) {
    timespec t{0, 1'000'000};
    ::nanosleep(&t, nullptr);
  }
  return gate.size();
}

std::string gate_path(const char* name) {
  return "/tmp/concur-mpi-gate-" + std::to_string(::getpid()) + "-" + name;
}

void open_gate(const std::string& gate) {
  FILE* f = std::fopen(gate.c_str(), "w");
  ASSERT_NE(f, nullptr);
  std::fclose(f);
}

bool threaded() { return g_pool->engine_for_testing().threaded(); }

TEST(MpiPool, MapAsyncAndApplyAsyncReturnBeforeTheWorkIsDone) {
  if (!threaded()) GTEST_SKIP() << "MPI initialized without thread support: async calls are done at once";
  const std::string gate = gate_path("async");
  auto mapped = g_pool->map_async(wait_for_gate, std::vector<std::string>(4, gate), 1);
  auto applied = g_pool->apply_async(wait_for_gate, gate);
  EXPECT_FALSE(mapped.ready());
  EXPECT_FALSE(applied.ready());
  EXPECT_THROW(mapped.get(std::chrono::milliseconds(1)), concur::TimeoutError);
  open_gate(gate);
  EXPECT_EQ(mapped.get(std::chrono::seconds(60)), std::vector<std::size_t>(4, gate.size()));
  EXPECT_EQ(applied.get(std::chrono::seconds(60)), gate.size());
  std::remove(gate.c_str());
}

// The program initialized MPI with MPI_Init (MPI_THREAD_SINGLE): no
// background thread, the caller drives, and the async calls are ready when
// they return.
TEST(MpiPool, WithoutThreadSupportAsyncCallsAreReadyWhenTheyReturn) {
  if (threaded()) GTEST_SKIP() << "the pool initialized MPI: it has its background thread";
  auto mapped = g_pool->map_async(square, iota(20), 1);
  auto applied = g_pool->apply_async(square, 9);
  EXPECT_TRUE(mapped.ready());
  EXPECT_TRUE(applied.ready());
  EXPECT_EQ(mapped.get()[19], 361);
  EXPECT_EQ(applied.get(), 81);
}

TEST(MpiPool, CallsFromSeveralThreadsOfRankZeroRunSideBySide) {
  if (!threaded()) GTEST_SKIP() << "MPI initialized without thread support: one thread only";
  std::vector<std::thread> threads;
  std::vector<int> wrong(4, 0);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([t, &wrong] {
      for (int call = 0; call < 10; ++call) {
        const auto out = g_pool->map(square, iota(40 + t), 3);
        for (int i = 0; i < 40 + t; ++i) wrong[static_cast<std::size_t>(t)] += out[static_cast<std::size_t>(i)] != i * i;
        wrong[static_cast<std::size_t>(t)] += g_pool->apply(square, t) != t * t;
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(wrong, std::vector<int>(4, 0));
}

TEST(MpiPool, AMapWhileAnImapIsHalfReadGetsItsOwnResults) {
  auto squares = g_pool->imap(square, iota(60), 1);
  auto it = squares.begin();
  for (int i = 0; i < 10; ++i, ++it) EXPECT_EQ(*it, i * i);
  const auto negated = g_pool->map([](int x) { return -x; }, iota(30), 1);
  for (int i = 0; i < 30; ++i) EXPECT_EQ(negated[static_cast<std::size_t>(i)], -i);
  auto pending = g_pool->map_async([](int x) { return x + 1000; }, iota(20), 1);
  for (int i = 10; i < 60; ++i, ++it) EXPECT_EQ(*it, i * i);
  EXPECT_TRUE(it == squares.end());
  EXPECT_EQ(pending.get(std::chrono::seconds(60))[19], 1019);
}

// The network namespace a rank runs in: in tests/mpi/cross_host.sh each
// "host" is one.
std::string net_namespace(int) {
  char link[256] = {};
  const ssize_t n = ::readlink("/proc/self/ns/net", link, sizeof link - 1);
  return n > 0 ? std::string(link, static_cast<std::size_t>(n)) : std::string("?");
}

TEST(MpiPool, RanksRunWhereTheyWereStarted) {
  const auto where = g_pool->map(net_namespace, iota(64), 1);
  const std::set<std::string> hosts(where.begin(), where.end());
  std::printf("serving ranks ran in %zu network namespace(s); rank 0 in %s\n", hosts.size(),
              net_namespace(0).c_str());
  if (const char* expect = std::getenv("CONCUR_EXPECT_HOSTS")) {
    // Every serving rank is on a host of its own, none on rank 0's.
    EXPECT_EQ(static_cast<int>(hosts.size()), std::atoi(expect) - 1);
    EXPECT_EQ(hosts.count(net_namespace(0)), 0u);
  }
}

}  // namespace

int run(int argc, char** argv) {
  concur::mpi::Pool pool;
  if (!pool.is_master()) return pool.serve();
  g_pool = &pool;
  ::testing::InitGoogleTest(&argc, argv);
  const int rc = RUN_ALL_TESTS();
  // Work queued before close() still finishes: join() waits for it.
  auto last = pool.map_async(square, iota(100), 1);
  pool.close();
  bool refused = false;
  try {
    pool.map(square, iota(2));
  } catch (const std::invalid_argument&) {
    refused = true;
  }
  if (!refused) {
    std::fprintf(stderr, "FAILED: map after close() was not refused\n");
    return 1;
  }
  pool.join();
  if (!last.ready() || last.get()[99] != 99 * 99) {
    std::fprintf(stderr, "FAILED: work queued before close() did not finish by join()\n");
    return 1;
  }
  return rc;
}

// With --mpi-init-single (last argument) the program initializes MPI itself
// without thread support, and finalizes it after the pool is gone.
int main(int argc, char** argv) {
  const bool init_single = argc > 1 && std::strcmp(argv[argc - 1], "--mpi-init-single") == 0;
  if (init_single) {
    --argc;
    MPI_Init(nullptr, nullptr);
  }
  const int rc = run(argc, argv);
  if (init_single) MPI_Finalize();
  return rc;
}
