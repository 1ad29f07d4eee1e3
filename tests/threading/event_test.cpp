// The rules of Event, thread and process-shared.
#include "concur/multiprocessing/event.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

#include "concur/threading/event.hpp"
#include "test_support.hpp"

namespace {

namespace th = concur::threading;
namespace mp = concur::multiprocessing;
using namespace concur::testing;

template <class T>
class EventTest : public ::testing::Test {};
using Events = ::testing::Types<th::Event, mp::Event>;
TYPED_TEST_SUITE(EventTest, Events);

TYPED_TEST(EventTest, StartsClear) {
  TypeParam e;
  EXPECT_FALSE(e.is_set());
}

TYPED_TEST(EventTest, SetAndClear) {
  TypeParam e;
  e.set();
  EXPECT_TRUE(e.is_set());
  e.set();
  EXPECT_TRUE(e.is_set());
  e.clear();
  EXPECT_FALSE(e.is_set());
  e.clear();
  EXPECT_FALSE(e.is_set());
}

TYPED_TEST(EventTest, WaitReturnsTrueAtOnceWhenSet) {
  TypeParam e;
  e.set();
  EXPECT_TRUE(e.wait());
  EXPECT_TRUE(e.wait(0s));
  EXPECT_TRUE(e.wait(-1s));
}

TYPED_TEST(EventTest, WaitTimesOutWithFalse) {
  TypeParam e;
  EXPECT_FALSE(e.wait(0s));
  EXPECT_FALSE(e.wait(-1s));
  const auto start = std::chrono::steady_clock::now();
  EXPECT_FALSE(e.wait(50ms));
  const double elapsed = seconds_since(start);
  EXPECT_GE(elapsed, 0.049);
  EXPECT_LT(elapsed, 5.0);
}

TYPED_TEST(EventTest, SetWakesEveryWaiter) {
  TypeParam e;
  std::atomic<int> woken{0};
  std::atomic<int> started{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < 5; ++i) {
    threads.emplace_back([&] {
      ++started;
      if (e.wait(kTestTimeout)) ++woken;
    });
  }
  ASSERT_TRUE(eventually([&] { return started == 5; }));
  e.set();
  for (auto& t : threads) t.join();
  EXPECT_EQ(woken, 5);
}

TYPED_TEST(EventTest, WaitIsTrueIfSetAndClearedDuringTheWait) {
  // Python: wait() returns true if the flag was set during the wait, even if
  // it was cleared again before the waiter ran.
  TypeParam e;
  std::atomic<long> tid{0};
  std::atomic<int> result{-1};
  std::thread t([&] {
    tid = this_tid();
    result = e.wait(kTestTimeout) ? 1 : 0;
  });
  ASSERT_TRUE(eventually([&] { return tid != 0; }));
  ASSERT_TRUE(blocked_in_kernel(tid));
  e.set();
  e.clear();
  t.join();
  EXPECT_EQ(result, 1);
}

TYPED_TEST(EventTest, WaitUntilPastTimePointOnlyLooks) {
  TypeParam e;
  EXPECT_FALSE(e.wait_until(std::chrono::steady_clock::now() - 1s));
  e.set();
  EXPECT_TRUE(e.wait_until(std::chrono::system_clock::now() - 1s));
}

TYPED_TEST(EventTest, HugeTimeoutDoesNotOverflow) {
  TypeParam e;
  e.set();
  EXPECT_TRUE(e.wait(std::chrono::hours::max()));
  EXPECT_TRUE(e.wait(std::chrono::duration<double>(1e300)));
}

TYPED_TEST(EventTest, SetPublishesWritesToTheWaiter) {
  TypeParam e;
  int data = 0;
  std::thread t([&] {
    data = 42;
    e.set();
  });
  ASSERT_TRUE(e.wait(kTestTimeout));
  EXPECT_EQ(data, 42);
  t.join();
}

TYPED_TEST(EventTest, PingPongLosesNoWakeup) {
  TypeParam ping;
  TypeParam pong;
  constexpr int kRounds = 2000;
  std::atomic<bool> ok{true};
  std::thread t([&] {
    for (int i = 0; i < kRounds; ++i) {
      if (!ping.wait(kTestTimeout)) {
        ok = false;
        return;
      }
      ping.clear();
      pong.set();
    }
  });
  for (int i = 0; i < kRounds && ok; ++i) {
    ping.set();
    if (!pong.wait(kTestTimeout)) ok = false;
    pong.clear();
  }
  t.join();
  EXPECT_TRUE(ok);
}

TEST(MpEvent, CopiesReferToTheSameEvent) {
  mp::Event a;
  mp::Event b = a;
  a.set();
  EXPECT_TRUE(b.is_set());
}

}  // namespace
