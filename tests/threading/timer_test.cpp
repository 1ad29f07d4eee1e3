// The rules of Timer.
#include "concur/threading/timer.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <string>

#include "concur/threading/event.hpp"
#include "test_support.hpp"

namespace {

namespace th = concur::threading;
using namespace concur::testing;

TEST(Timer, CallsTheFunctionWithItsArgumentsAfterTheInterval) {
  th::Event called;
  int sum = 0;
  th::Timer t(
      50ms,
      [&](int a, int b) {
        sum = a + b;
        called.set();
      },
      2, 3);
  const auto start = std::chrono::steady_clock::now();
  t.start();
  ASSERT_TRUE(called.wait(kTestTimeout));
  const double elapsed = seconds_since(start);
  t.join();
  EXPECT_EQ(sum, 5);
  EXPECT_GE(elapsed, 0.049);
  EXPECT_LT(elapsed, 5.0);
}

TEST(Timer, CancelBeforeFiringPreventsTheCall) {
  std::atomic<bool> called{false};
  th::Timer t(kTestTimeout, [&] { called = true; });
  t.start();
  t.cancel();
  EXPECT_TRUE(t.join(kTestTimeout));
  EXPECT_FALSE(called);
}

TEST(Timer, CancelBeforeStartPreventsTheCall) {
  std::atomic<bool> called{false};
  th::Timer t(1ms, [&] { called = true; });
  t.cancel();
  t.start();
  t.join();
  EXPECT_FALSE(called);
}

TEST(Timer, CancelAfterFiringIsHarmless) {
  th::Timer t(0ms, [] {});
  t.start();
  t.join();
  t.cancel();
}

TEST(Timer, IsAThreadWithADefaultThreadName) {
  th::Timer t(0ms, [] {});
  EXPECT_EQ(t.name().rfind("Thread-", 0), 0u) << t.name();
  th::Thread& base = t;
  base.start();
  base.join();
}

TEST(Timer, DaemonTimerMayBeDestroyedWhileWaiting) {
  auto called = std::make_shared<std::atomic<bool>>(false);
  {
    th::Timer t(kTestTimeout, [called] { *called = true; });
    t.set_daemon(true);
    t.start();
  }
  EXPECT_FALSE(*called);
}

}  // namespace
