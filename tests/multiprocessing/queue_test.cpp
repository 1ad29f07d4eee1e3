// Queue and JoinableQueue: Python's blocking, timeout, Empty and Full
// semantics, across threads and processes, items of any size and number,
// and no item lost or duplicated when processes are killed mid-stream.
#include "concur/multiprocessing/queue.hpp"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/mman.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <map>
#include <new>
#include <numeric>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <variant>
#include <vector>

#include "multiprocessing/fork_support.hpp"
#include "multiprocessing/hygiene.hpp"

namespace {

namespace mp = concur::multiprocessing;
namespace detail = concur::detail;
using namespace concur::testing;

class QueueTest : public HygieneTest {};

// A T in MAP_SHARED memory: children forked after it report through it.
template <class T>
class Shared {
 public:
  Shared() {
    void* p = ::mmap(nullptr, sizeof(T), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) throw std::bad_alloc();
    value_ = ::new (p) T();
  }
  ~Shared() { ::munmap(value_, sizeof(T)); }
  Shared(const Shared&) = delete;
  Shared& operator=(const Shared&) = delete;
  T& operator*() { return *value_; }
  T* operator->() { return value_; }

 private:
  T* value_;
};

// "pid: state S, waiting in futex_wait_queue" -- for failure messages.
std::string describe(pid_t pid) {
  const std::string dir = "/proc/" + std::to_string(pid);
  std::string wchan;
  if (FILE* f = std::fopen((dir + "/wchan").c_str(), "r")) {
    char buf[128] = {};
    if (std::fgets(buf, sizeof buf, f) != nullptr) wchan = buf;
    std::fclose(f);
  }
  const char state = proc_state(dir + "/stat");
  return std::to_string(pid) + ": state " + (state ? std::string(1, state) : "gone") +
         ", waiting in " + (wchan.empty() ? "-" : wchan);
}

// True once process `pid` sleeps in the kernel (after any spinning).
bool process_blocked(pid_t pid) {
  const std::string path = "/proc/" + std::to_string(pid) + "/stat";
  return eventually([&] { return proc_state(path) == 'S'; });
}

// An item that carries its index and a size-dependent pattern, so a torn or
// mixed-up item is caught.
std::string make_item(int i, std::size_t size) {
  std::string s = std::to_string(i) + ':';
  s.reserve(s.size() + size);
  for (std::size_t k = 0; k < size; ++k) s.push_back(static_cast<char>('a' + (i + k) % 26));
  return s;
}
// The index, or -1 if the item is damaged.
int check_item(const std::string& s) {
  const auto colon = s.find(':');
  if (colon == std::string::npos || colon == 0) return -1;
  const int i = std::stoi(s.substr(0, colon));
  for (std::size_t k = 0; k + colon + 1 < s.size(); ++k) {
    if (s[colon + 1 + k] != static_cast<char>('a' + (i + k) % 26)) return -1;
  }
  return i;
}

struct Plain {
  int a;
  double b;
  char c[5];
};

struct NoDefault {
  explicit NoDefault(int v) : value(v) {}
  int value;
};

// --- single process ---------------------------------------------------------------

TEST_F(QueueTest, FifoOrder) {
  mp::Queue<int> q;
  for (int i = 0; i < 100; ++i) q.put(i);
  EXPECT_EQ(q.qsize(), 100u);
  for (int i = 0; i < 100; ++i) EXPECT_EQ(q.get(), i);
  EXPECT_TRUE(q.empty());
}

TEST_F(QueueTest, SerializedItems) {
  mp::Queue<std::map<std::string, std::vector<int>>> q;
  q.put({{"a", {1, 2}}, {"b", {}}});
  EXPECT_EQ(q.get(), (std::map<std::string, std::vector<int>>{{"a", {1, 2}}, {"b", {}}}));
  mp::Queue<std::string> s;
  s.put(std::string(100000, 'x'));
  s.put("");
  EXPECT_EQ(s.get().size(), 100000u);
  EXPECT_EQ(s.get(), "");
  mp::Queue<std::variant<int, std::string>> v;
  v.put(std::string("seven"));
  v.put(7);
  EXPECT_EQ(std::get<std::string>(v.get()), "seven");
  EXPECT_EQ(std::get<int>(v.get()), 7);
}

TEST_F(QueueTest, TriviallyCopyableItemsCrossAsBytes) {
  mp::Queue<Plain> q;
  q.put(Plain{1, 2.5, "abcd"});
  const Plain p = q.get();
  EXPECT_EQ(p.a, 1);
  EXPECT_EQ(p.b, 2.5);
  EXPECT_STREQ(p.c, "abcd");
  mp::Queue<NoDefault> n;
  n.put(NoDefault(42));
  EXPECT_EQ(n.get().value, 42);
  mp::Queue<bool> b;
  b.put(true);
  b.put(false);
  EXPECT_TRUE(b.get());
  EXPECT_FALSE(b.get());
}

TEST_F(QueueTest, GetWithoutBlockingOnEmptyThrowsEmpty) {
  mp::Queue<int> q;
  EXPECT_THROW(q.get(false), concur::Empty);
  EXPECT_THROW(q.get_nowait(), concur::Empty);
  EXPECT_THROW(q.get(0s), concur::Empty);
  EXPECT_THROW(q.get(0.0s), concur::Empty);
  q.put(1);
  EXPECT_EQ(q.get(false), 1);
  q.put(2);
  EXPECT_EQ(q.get(0s), 2);
}

TEST_F(QueueTest, GetTimeoutThrowsEmptyAfterTheTimeout) {
  mp::Queue<int> q;
  auto start = std::chrono::steady_clock::now();
  EXPECT_THROW(q.get(50ms), concur::Empty);
  EXPECT_GE(seconds_since(start), 0.049);
  EXPECT_LT(seconds_since(start), 5.0);
  start = std::chrono::steady_clock::now();
  EXPECT_THROW(q.get(std::chrono::duration<double>(0.05)), concur::Empty);
  EXPECT_GE(seconds_since(start), 0.049);
}

TEST_F(QueueTest, PutOnFullThrowsFull) {
  mp::Queue<int> q(2);
  q.put(1);
  q.put(2);
  EXPECT_TRUE(q.full());
  EXPECT_THROW(q.put(3, false), concur::Full);
  EXPECT_THROW(q.put_nowait(3), concur::Full);
  EXPECT_THROW(q.put(3, 0s), concur::Full);
  const auto start = std::chrono::steady_clock::now();
  EXPECT_THROW(q.put(3, 50ms), concur::Full);
  EXPECT_GE(seconds_since(start), 0.049);
  EXPECT_LT(seconds_since(start), 5.0);
  EXPECT_EQ(q.qsize(), 2u);
  EXPECT_EQ(q.get(), 1);
  EXPECT_FALSE(q.full());
  q.put_nowait(3);
  EXPECT_EQ(q.get(), 2);
  EXPECT_EQ(q.get(), 3);
}

TEST_F(QueueTest, UnboundedPutNeverBlocksNorThrowsFull) {
  mp::Queue<int> q;
  EXPECT_FALSE(q.full());
  for (int i = 0; i < 10000; ++i) q.put(i, false);
  EXPECT_FALSE(q.full());
  EXPECT_EQ(q.qsize(), 10000u);
}

TEST_F(QueueTest, NegativeTimeoutIsInvalidArgumentAndChangesNothing) {
  mp::Queue<int> q(1);
  EXPECT_THROW(q.get(-1s), std::invalid_argument);
  EXPECT_THROW(q.get(std::chrono::duration<double>(-0.5)), std::invalid_argument);
  EXPECT_THROW(q.put(1, -1ms), std::invalid_argument);
  EXPECT_TRUE(q.empty());
  q.put(1);
  EXPECT_THROW(q.get(-1ns), std::invalid_argument);
  EXPECT_EQ(q.qsize(), 1u);
}

TEST_F(QueueTest, HugeTimeoutMeansForeverWithoutOverflow) {
  mp::Queue<int> q(1);
  q.put(5, std::chrono::hours::max());
  EXPECT_EQ(q.get(std::chrono::nanoseconds::max()), 5);
  q.put(6, std::chrono::duration<double>(1e300));
  EXPECT_EQ(q.get(std::chrono::duration<double>(1e300)), 6);
}

TEST_F(QueueTest, PutAndGetAfterCloseAreInvalid) {
  mp::Queue<int> q;
  mp::Queue<int> copy = q;
  q.put(1);
  q.close();
  q.close();  // twice: nothing
  try {
    q.put(2);
    FAIL() << "put after close";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("is closed"), std::string::npos) << e.what();
  }
  EXPECT_THROW(q.get(), std::invalid_argument);
  EXPECT_THROW(q.put_nowait(2), std::invalid_argument);
  EXPECT_THROW(q.get_nowait(), std::invalid_argument);
  EXPECT_THROW(q.put(2, 1s), std::invalid_argument);
  EXPECT_THROW(copy.get(1s), std::invalid_argument);  // every handle in this process
  EXPECT_EQ(q.qsize(), 1u);                           // the item is still there
  EXPECT_FALSE(q.empty());
}

TEST_F(QueueTest, CloseInOneProcessLeavesOthersOpen) {
  mp::Queue<int> q;
  Shared<std::atomic<int>> go;
  const pid_t child = fork_child([&] {
    while (go->load() == 0) std::this_thread::yield();
    q.put(7);  // closed only in the parent
    return 0;
  });
  q.close();
  go->store(1);
  EXPECT_EQ(exit_code(wait_child(child)), 0);
  EXPECT_EQ(q.qsize(), 1u);
}

TEST_F(QueueTest, QsizeEmptyFullTrackTheItems) {
  mp::Queue<int> q(3);
  EXPECT_TRUE(q.empty());
  EXPECT_FALSE(q.full());
  q.put(1);
  EXPECT_FALSE(q.empty());
  EXPECT_EQ(q.qsize(), 1u);
  q.put(2);
  q.put(3);
  EXPECT_TRUE(q.full());
  EXPECT_EQ(q.qsize(), 3u);
  q.get();
  EXPECT_FALSE(q.full());
  EXPECT_EQ(q.qsize(), 2u);
}

TEST_F(QueueTest, CopiesReferToTheSameQueue) {
  mp::Queue<int> a;
  mp::Queue<int> b = a;
  mp::Queue<int> c(5);
  c = a;
  a.put(4);
  EXPECT_EQ(b.qsize(), 1u);
  EXPECT_EQ(c.get(), 4);
  EXPECT_TRUE(a.empty());
}

TEST_F(QueueTest, BlockedProducerWakesWhenSpaceFrees) {
  mp::Queue<int> q(1);
  q.put(1);
  std::atomic<long> tid{0};
  std::atomic<bool> put_done{false};
  std::thread producer([&] {
    tid = this_tid();
    q.put(2, kTestTimeout);
    put_done = true;
  });
  ASSERT_TRUE(eventually([&] { return tid != 0; }));
  ASSERT_TRUE(blocked_in_kernel(tid));
  EXPECT_FALSE(put_done);
  EXPECT_EQ(q.get(kTestTimeout), 1);
  producer.join();
  EXPECT_TRUE(put_done);
  EXPECT_EQ(q.get(kTestTimeout), 2);
}

TEST_F(QueueTest, BlockedConsumerWakesOnPut) {
  mp::Queue<std::string> q;
  std::atomic<long> tid{0};
  std::string got;
  std::thread consumer([&] {
    tid = this_tid();
    got = q.get(kTestTimeout);
  });
  ASSERT_TRUE(eventually([&] { return tid != 0; }));
  ASSERT_TRUE(blocked_in_kernel(tid));
  q.put("hello");
  consumer.join();
  EXPECT_EQ(got, "hello");
}

TEST_F(QueueTest, ManyThreadsPutAndGetEveryItemOnce) {
  mp::Queue<long> q(8);
  constexpr int kThreads = 4;
  constexpr long kPerThread = 5000;
  std::atomic<long> sum{0};
  std::atomic<long> count{0};
  run_threads(2 * kThreads, [&](int i) {
    if (i < kThreads) {
      for (long k = 1; k <= kPerThread; ++k) q.put(i * 100000L + k, kTestTimeout);
    } else {
      for (long k = 0; k < kPerThread; ++k) {
        sum += q.get(kTestTimeout);
        ++count;
      }
    }
  });
  long expected = 0;
  for (int i = 0; i < kThreads; ++i) {
    expected += i * 100000L * kPerThread + kPerThread * (kPerThread + 1) / 2;
  }
  EXPECT_EQ(count, kThreads * kPerThread);
  EXPECT_EQ(sum, expected);
  EXPECT_TRUE(q.empty());
}

// --- any size, any number -----------------------------------------------------------

TEST_F(QueueTest, ItemsOfEverySizeKeepTheirOrder) {
  mp::Queue<std::string> q;
  const std::vector<std::size_t> sizes = {
      0, 10, 70000, 5, std::size_t{3} << 20, 7, 65535, 65536, 1, 200000, 100, 1 << 16};
  for (std::size_t i = 0; i < sizes.size(); ++i) q.put(make_item(static_cast<int>(i), sizes[i]));
  for (std::size_t i = 0; i < sizes.size(); ++i) {
    const std::string s = q.get(kTestTimeout);
    EXPECT_EQ(check_item(s), static_cast<int>(i));
    EXPECT_EQ(s.size(), std::to_string(i).size() + 1 + sizes[i]);
  }
  EXPECT_TRUE(q.empty());
}

// Where items go, seen through the untyped core.
struct ByteSink final : detail::ItemSink {
  std::byte* prepare(std::size_t n) override {
    bytes.resize(n);
    return bytes.data();
  }
  std::string text() const {
    return std::string(reinterpret_cast<const char*>(bytes.data()), bytes.size());
  }
  std::vector<std::byte> bytes;
};

TEST_F(QueueTest, LargeItemsAndThoseAfterThemSpillAndTheSpillFileShrinks) {
  detail::SharedQueue core(0);
  auto put = [&](const std::string& s) {
    ASSERT_TRUE(core.put(std::as_bytes(std::span(s)), detail::Deadline::now_only()));
  };
  put("small");
  put(std::string(detail::SharedQueue::kInlineMax + 1, 'L'));  // too big for the ring
  put("after");  // behind a spilled item: spills too, to stay in order
  auto layout = core.layout();
  EXPECT_EQ(layout.ring_items, 1u);
  EXPECT_EQ(layout.log_items, 2u);
  EXPECT_GT(layout.log_file_bytes, detail::SharedQueue::kInlineMax);
  ByteSink sink;
  ASSERT_TRUE(core.get(sink, detail::Deadline::now_only()));
  EXPECT_EQ(sink.text(), "small");
  ASSERT_TRUE(core.get(sink, detail::Deadline::now_only()));
  EXPECT_EQ(sink.bytes.size(), detail::SharedQueue::kInlineMax + 1);
  ASSERT_TRUE(core.get(sink, detail::Deadline::now_only()));
  EXPECT_EQ(sink.text(), "after");
  layout = core.layout();
  EXPECT_EQ(layout.log_items, 0u);
  EXPECT_EQ(layout.log_file_bytes, 0u);  // emptied: its memory is given back
  put("ring again");
  EXPECT_EQ(core.layout().ring_items, 1u);
}

TEST_F(QueueTest, ADrainingSpillFileGivesBackConsumedPages) {
  detail::SharedQueue core(0);
  const std::string item(detail::SharedQueue::kInlineMax * 2, 'x');
  for (int i = 0; i < 64; ++i) {  // 8 MiB in the spill file
    ASSERT_TRUE(core.put(std::as_bytes(std::span(item)), detail::Deadline::now_only()));
  }
  const auto full = core.layout().log_file_bytes;
  ByteSink sink;
  for (int i = 0; i < 60; ++i) ASSERT_TRUE(core.get(sink, detail::Deadline::now_only()));
  EXPECT_LT(core.layout().log_file_bytes, full / 4);
}

TEST_F(QueueTest, UnboundedQueueHoldsMoreThanItsRing) {
  mp::Queue<std::int64_t> q;
  // 16 bytes a record: a million items are twice the ring.
  constexpr std::int64_t kItems = 1'000'000;
  for (std::int64_t i = 0; i < kItems; ++i) q.put(i, false);
  EXPECT_EQ(q.qsize(), static_cast<std::size_t>(kItems));
  for (std::int64_t i = 0; i < kItems; ++i) {
    const std::int64_t v = q.get(false);
    if (v != i) {
      ADD_FAILURE() << "item " << i << " came out as " << v;
      break;
    }
  }
  EXPECT_TRUE(q.empty());
}

TEST_F(QueueTest, ItemLargerThan64MiB) {
  mp::Queue<std::vector<char>> q(1);
  std::vector<char> big((std::size_t{65} << 20) + 123);
  for (std::size_t i = 0; i < big.size(); i += 4096) big[i] = static_cast<char>(i / 4096);
  q.put(big);
  EXPECT_TRUE(q.full());
  EXPECT_EQ(q.get(), big);
}

TEST_F(QueueTest, LargeItemCrossesBetweenProcesses) {
  mp::Queue<std::string> q;
  const pid_t child = fork_child([&] {
    q.put(make_item(1, std::size_t{20} << 20));
    q.put(make_item(2, 10));
    return 0;
  });
  EXPECT_EQ(exit_code(wait_child(child)), 0);  // put never waits for a reader
  EXPECT_EQ(check_item(q.get(kTestTimeout)), 1);
  EXPECT_EQ(check_item(q.get(kTestTimeout)), 2);
}

// --- across processes ------------------------------------------------------------

TEST_F(QueueTest, ProducersAndConsumersAcrossProcessesWithChecksums) {
  mp::Queue<long> q(64);
  mp::Queue<long> sums;
  constexpr int kProducers = 2;
  constexpr int kConsumers = 2;
  constexpr long kPerProducer = 20000;
  std::vector<pid_t> producers, consumers;
  for (int p = 0; p < kProducers; ++p) {
    producers.push_back(fork_child([&, p] {
      for (long i = 1; i <= kPerProducer; ++i) q.put(p * 1000000L + i, kTestTimeout);
      return 0;
    }));
  }
  for (int c = 0; c < kConsumers; ++c) {
    consumers.push_back(fork_child([&] {
      long sum = 0;
      for (;;) {
        const long v = q.get(kTestTimeout);
        if (v < 0) break;
        sum += v;
      }
      sums.put(sum);
      return 0;
    }));
  }
  for (pid_t p : producers) EXPECT_EQ(exit_code(wait_child(p)), 0);
  for (int c = 0; c < kConsumers; ++c) q.put(-1);
  long total = 0;
  for (int c = 0; c < kConsumers; ++c) total += sums.get(kTestTimeout);
  for (pid_t c : consumers) EXPECT_EQ(exit_code(wait_child(c)), 0);
  long expected = 0;
  for (int p = 0; p < kProducers; ++p) {
    expected += p * 1000000L * kPerProducer + kPerProducer * (kPerProducer + 1) / 2;
  }
  EXPECT_EQ(total, expected);
  EXPECT_TRUE(q.empty());
}

TEST_F(QueueTest, ProducerMayExitRightAfterPut) {
  mp::Queue<std::string> q;
  const pid_t child = fork_child([&] {
    q.put("left behind");
    return 0;
  });
  EXPECT_EQ(exit_code(wait_child(child)), 0);  // never waits for a reader
  EXPECT_EQ(q.get(0s), "left behind");
}

TEST_F(QueueTest, ProducerBlockedInAnotherProcessWakesWhenSpaceFrees) {
  mp::Queue<int> q(1);
  q.put(1);
  const pid_t child = fork_child([&] {
    q.put(2, kTestTimeout);
    return 0;
  });
  ASSERT_TRUE(process_blocked(child));
  EXPECT_EQ(q.get(kTestTimeout), 1);
  EXPECT_EQ(exit_code(wait_child(child)), 0);
  EXPECT_EQ(q.get(kTestTimeout), 2);
}

TEST_F(QueueTest, ConsumerBlockedInAnotherProcessWakesOnPut) {
  mp::Queue<int> q;
  mp::Queue<int> back;
  const pid_t child = fork_child([&] {
    back.put(q.get(kTestTimeout) + 1);
    return 0;
  });
  ASSERT_TRUE(process_blocked(child));
  q.put(41);
  EXPECT_EQ(back.get(kTestTimeout), 42);
  EXPECT_EQ(exit_code(wait_child(child)), 0);
}

TEST_F(QueueTest, ConsumerKilledWhileHoldingTheLockLosesNothing) {
  // A consumer that dies inside get(), with the lock held, after reading the
  // item's length: the item stays queued and the next get() takes the lock
  // over.
  detail::SharedQueue core(0);
  const std::string item = "survivor";
  ASSERT_TRUE(core.put(std::as_bytes(std::span(item)), detail::Deadline::never()));
  const pid_t child = fork_child([&] {
    struct DieSink final : detail::ItemSink {
      std::byte* prepare(std::size_t) override {
        ::raise(SIGKILL);
        return nullptr;
      }
    } sink;
    core.get(sink, detail::Deadline::never());
    return 0;
  });
  const auto status = wait_child(child);
  ASSERT_TRUE(status && WIFSIGNALED(*status));
  struct Sink final : detail::ItemSink {
    std::byte* prepare(std::size_t n) override {
      bytes.resize(n);
      return bytes.data();
    }
    std::vector<std::byte> bytes;
  } sink;
  ASSERT_TRUE(core.get(sink, detail::Deadline::after(kTestTimeout)));
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(sink.bytes.data()), sink.bytes.size()), item);
  EXPECT_EQ(core.qsize(), 0u);
}

// Several consumers in turn, each killed at an arbitrary point (often inside
// get(), holding the lock, in the middle of copying a large item), while a
// producer fills a bounded queue with items of mixed sizes. Every item must
// arrive once, intact and in order, except at most one per killed consumer:
// the item it had taken but not yet recorded.
TEST_F(QueueTest, ConsumersKilledMidStreamLoseAndDuplicateNothing) {
  constexpr int kItems = 6000;
  constexpr int kKills = 12;
  struct Log {
    std::atomic<int> n{0};
    std::atomic<int> damaged{0};
    int values[kItems];
  };
  Shared<Log> log;
  mp::Queue<std::string> q(32);
  auto size_of = [](int i) { return i % 97 == 0 ? std::size_t{100000} : std::size_t(i % 200); };
  const pid_t producer = fork_child([&] {
    for (int i = 0; i < kItems; ++i) q.put(make_item(i, size_of(i)), kTestTimeout);
    return 0;
  });
  for (int round = 0; round < kKills; ++round) {
    const int start = log->n.load();
    const pid_t consumer = fork_child([&] {
      for (;;) {
        const int v = check_item(q.get(kTestTimeout));
        if (v < 0) log->damaged.fetch_add(1);
        const int at = log->n.load(std::memory_order_relaxed);
        log->values[at] = v;
        log->n.store(at + 1, std::memory_order_release);
      }
      return 0;
    });
    // Let it take some items, then kill it wherever it is.
    const int step = 1 + round * 37 % 150;
    EXPECT_TRUE(eventually([&] { return log->n.load() >= std::min(start + step, kItems); }))
        << "round " << round << ", " << log->n.load() << " items taken; consumer "
        << describe(consumer) << "; producer " << describe(producer);
    ::kill(consumer, SIGKILL);
    EXPECT_TRUE(wait_child(consumer).has_value()) << "consumer " << describe(consumer);
  }
  std::vector<int> seen(log->values, log->values + log->n.load());
  // The rest, here.
  while (true) {
    if (seen.size() >= static_cast<std::size_t>(kItems)) break;
    try {
      seen.push_back(check_item(q.get(kTestTimeout)));
    } catch (const concur::Empty&) {
      break;
    }
    if (!seen.empty() && seen.back() == kItems - 1) break;
  }
  EXPECT_EQ(exit_code(wait_child(producer)), 0);
  EXPECT_EQ(log->damaged.load(), 0);
  EXPECT_TRUE(std::is_sorted(seen.begin(), seen.end()));
  EXPECT_EQ(std::adjacent_find(seen.begin(), seen.end()), seen.end()) << "an item came twice";
  EXPECT_GE(seen.size() + kKills, static_cast<std::size_t>(kItems));
  EXPECT_EQ(seen.back(), kItems - 1);
  EXPECT_EQ(std::count(seen.begin(), seen.end(), -1), 0);
  EXPECT_TRUE(q.empty());
}

// A producer killed at arbitrary points leaves only whole items.
TEST_F(QueueTest, ProducerKilledMidPutLeavesOnlyWholeItems) {
  for (int round = 0; round < 5; ++round) {
    mp::Queue<std::string> q;
    Shared<std::atomic<int>> put_count;
    const pid_t producer = fork_child([&] {
      for (int i = 0;; ++i) {
        q.put(make_item(i, i % 5 == 0 ? 70000 : 50));
        put_count->store(i + 1);
      }
      return 0;
    });
    EXPECT_TRUE(eventually([&] { return put_count->load() >= 20 + round * 30; }));
    ::kill(producer, SIGKILL);
    wait_child(producer);
    const std::size_t n = q.qsize();
    EXPECT_GE(n, static_cast<std::size_t>(put_count->load()));
    EXPECT_LE(n, static_cast<std::size_t>(put_count->load()) + 1);
    for (std::size_t i = 0; i < n; ++i) EXPECT_EQ(check_item(q.get(0s)), static_cast<int>(i));
    EXPECT_THROW(q.get(0s), concur::Empty);
  }
}

TEST_F(QueueTest, ConsumerKilledWhileAsleepDoesNotStrandLaterItems) {
  mp::Queue<int> q;
  const pid_t sleeper = fork_child([&] {
    q.get(kTestTimeout);
    return 0;
  });
  ASSERT_TRUE(process_blocked(sleeper));
  ::kill(sleeper, SIGKILL);
  wait_child(sleeper);
  // Items after the dead waiter still reach live consumers, in order.
  std::atomic<long> tid{0};
  std::vector<int> got;
  std::thread consumer([&] {
    tid = this_tid();
    for (int i = 0; i < 40; ++i) got.push_back(q.get(kTestTimeout));
  });
  ASSERT_TRUE(eventually([&] { return tid != 0; }));
  for (int i = 0; i < 40; ++i) q.put(i);
  consumer.join();
  std::vector<int> expected(40);
  std::iota(expected.begin(), expected.end(), 0);
  EXPECT_EQ(got, expected);
}

// --- JoinableQueue -------------------------------------------------------------------

TEST_F(QueueTest, JoinableQueueJoinWaitsForTaskDoneAcrossProcesses) {
  // CPython's test_task_done: workers in other processes, join twice.
  mp::JoinableQueue<int> q;
  Shared<std::atomic<int>> done;
  std::vector<pid_t> workers;
  for (int w = 0; w < 4; ++w) {
    workers.push_back(fork_child([&] {
      for (;;) {
        const int v = q.get(kTestTimeout);
        if (v < 0) {
          q.task_done();
          return 0;
        }
        done->fetch_add(1);
        q.task_done();
      }
    }));
  }
  for (int i = 0; i < 10; ++i) q.put(i);
  q.join();
  EXPECT_EQ(done->load(), 10);
  EXPECT_TRUE(q.empty());
  for (int w = 0; w < 4; ++w) q.put(-1);
  q.join();
  for (pid_t w : workers) EXPECT_EQ(exit_code(wait_child(w)), 0);
}

TEST_F(QueueTest, JoinBlocksUntilTheLastTaskIsDone) {
  mp::JoinableQueue<int> q;
  q.put(1);
  q.put(2);
  std::atomic<long> tid{0};
  std::atomic<bool> joined{false};
  std::thread joiner([&] {
    tid = this_tid();
    q.join();
    joined = true;
  });
  ASSERT_TRUE(eventually([&] { return tid != 0; }));
  q.get();
  q.get();
  q.task_done();
  ASSERT_TRUE(blocked_in_kernel(tid));
  EXPECT_FALSE(joined);  // one task is still unfinished
  q.task_done();
  joiner.join();
  EXPECT_TRUE(joined);
}

TEST_F(QueueTest, JoinReturnsAtOnceWhenNothingIsUnfinished) {
  mp::JoinableQueue<int> q;
  q.join();
  q.put(1);
  q.get();
  q.task_done();
  q.join();
}

TEST_F(QueueTest, TaskDoneTooOftenIsInvalidArgument) {
  mp::JoinableQueue<int> q;
  EXPECT_THROW(q.task_done(), std::invalid_argument);
  q.put(1);
  q.get();
  q.task_done();
  EXPECT_THROW(q.task_done(), std::invalid_argument);
  q.join();  // nothing unfinished: returns at once
}

TEST_F(QueueTest, TaskDoneCountsItemsPutNotItemsTaken) {
  // As in Python: task_done() may come before get(); only the count matters.
  mp::JoinableQueue<int> q;
  q.put(1);
  q.put(2);
  q.task_done();
  q.task_done();
  EXPECT_THROW(q.task_done(), std::invalid_argument);
  q.join();
  EXPECT_EQ(q.qsize(), 2u);
}

TEST_F(QueueTest, JoinableQueueIsAQueue) {
  mp::JoinableQueue<std::string> q(1);
  mp::Queue<std::string>& base = q;
  base.put("x");
  EXPECT_THROW(base.put_nowait("y"), concur::Full);
  EXPECT_EQ(q.get(), "x");
  q.task_done();
  q.join();
}

}  // namespace
