// The rules of Timer.
#include "concur/threading/timer.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <string>

#include "concur/threading/event.hpp"
#include "multiprocessing/hygiene.hpp"
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

TEST(Timer, IsAThreadWithTheNextThreadName) {
  th::Thread before([] {});
  th::Timer t(0ms, [] {});
  ASSERT_EQ(t.name().rfind("Thread-", 0), 0u) << t.name();
  EXPECT_EQ(std::stoi(t.name().substr(7)), std::stoi(before.name().substr(7)) + 1);
  EXPECT_FALSE(t.daemon());
  th::Thread& base = t;
  base.start();
  base.join();
}

TEST(Timer, ArgumentsAreCopiedAtConstruction) {
  std::string text = "at construction";
  std::string seen;
  th::Timer t(
      0ms, [&](const std::string& s) { seen = s; }, text);
  text = "changed";
  t.start();
  t.join();
  EXPECT_EQ(seen, "at construction");
}

TEST(Timer, DestroyingARunningTimerJoinsIt) {
  std::atomic<bool> called{false};
  {
    th::Timer t(kTestTimeout, [&] { called = true; });
    t.start();
    t.cancel();
  }  // ~Timer joins; the thread never reads the object's vptr, which ~Thread rewrites
  EXPECT_FALSE(called);
}

TEST(Timer, DaemonTimerMayBeDestroyedWhileWaiting) {
  // Its thread waits on, past the test: a daemon may.
  concur::testing::listener_hygiene().expect_threads_left_running();
  auto called = std::make_shared<std::atomic<bool>>(false);
  {
    th::Timer t(kTestTimeout, [called] { *called = true; });
    t.set_daemon(true);
    t.start();
  }
  EXPECT_FALSE(*called);
}

TEST(Timer, DaemonTimerDestroyedWhileWaitingStillFires) {
  auto fired = std::make_shared<th::Event>();
  {
    th::Timer t(1ms, [fired] { fired->set(); });
    t.set_daemon(true);
    t.start();
  }
  EXPECT_TRUE(fired->wait(kTestTimeout));
}

}  // namespace
