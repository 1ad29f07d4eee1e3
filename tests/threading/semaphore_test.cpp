// The rules of Semaphore and BoundedSemaphore, thread and process-shared.
#include "concur/multiprocessing/semaphore.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <vector>

#include "concur/threading/event.hpp"
#include "concur/threading/semaphore.hpp"
#include "test_support.hpp"

namespace {

namespace th = concur::threading;
namespace mp = concur::multiprocessing;
using namespace concur::testing;

template <class T>
struct Kinds;
template <>
struct Kinds<th::Semaphore> {
  using Semaphore = th::Semaphore;
  using Bounded = th::BoundedSemaphore;
};
template <>
struct Kinds<mp::Semaphore> {
  using Semaphore = mp::Semaphore;
  using Bounded = mp::BoundedSemaphore;
};

template <class T>
class SemaphoreTest : public ::testing::Test {
 protected:
  using Semaphore = typename Kinds<T>::Semaphore;
  using Bounded = typename Kinds<T>::Bounded;
};
using Scopes = ::testing::Types<th::Semaphore, mp::Semaphore>;
TYPED_TEST_SUITE(SemaphoreTest, Scopes);

TYPED_TEST(SemaphoreTest, DefaultValueIsOne) {
  typename TestFixture::Semaphore s;
  EXPECT_EQ(s.value(), 1);
}

TYPED_TEST(SemaphoreTest, NegativeInitialValueThrowsInvalidArgument) {
  using S = typename TestFixture::Semaphore;
  using B = typename TestFixture::Bounded;
  EXPECT_THROW(S(-1), std::invalid_argument);
  EXPECT_THROW(B(-1), std::invalid_argument);
  EXPECT_NO_THROW(S(0));
}

TYPED_TEST(SemaphoreTest, ReleaseOfLessThanOneThrowsInvalidArgument) {
  typename TestFixture::Semaphore s(2);
  EXPECT_THROW(s.release(0), std::invalid_argument);
  EXPECT_THROW(s.release(-3), std::invalid_argument);
  EXPECT_EQ(s.value(), 2);
}

TYPED_TEST(SemaphoreTest, AcquireTakesAPermitAndReleaseGivesBack) {
  typename TestFixture::Semaphore s(3);
  EXPECT_TRUE(s.acquire());
  EXPECT_TRUE(s.acquire());
  EXPECT_EQ(s.value(), 1);
  s.release(2);
  EXPECT_EQ(s.value(), 3);
}

TYPED_TEST(SemaphoreTest, NonBlockingAcquireFailsAtZero) {
  typename TestFixture::Semaphore s(0);
  EXPECT_FALSE(s.acquire(false));
  EXPECT_FALSE(s.try_lock());
  s.release();
  EXPECT_TRUE(s.acquire(false));
  EXPECT_EQ(s.value(), 0);
}

TYPED_TEST(SemaphoreTest, ZeroAndNegativeTimeoutsDoNotBlock) {
  typename TestFixture::Semaphore s(0);
  const auto start = std::chrono::steady_clock::now();
  EXPECT_FALSE(s.acquire(0s));
  EXPECT_FALSE(s.acquire(-1s));
  EXPECT_FALSE(s.try_lock_for(-5ms));
  EXPECT_LT(seconds_since(start), 1.0);
}

TYPED_TEST(SemaphoreTest, ShortTimeoutExpires) {
  typename TestFixture::Semaphore s(0);
  const auto start = std::chrono::steady_clock::now();
  EXPECT_FALSE(s.acquire(50ms));
  const double elapsed = seconds_since(start);
  EXPECT_GE(elapsed, 0.049);
  EXPECT_LT(elapsed, 5.0);
}

TYPED_TEST(SemaphoreTest, ReleaseWakesABlockedAcquirer) {
  typename TestFixture::Semaphore s(0);
  th::Event waiting;
  std::atomic<bool> got{false};
  std::thread t([&] {
    waiting.set();
    got = s.acquire(kTestTimeout);
  });
  ASSERT_TRUE(waiting.wait(kTestTimeout));
  s.release();
  t.join();
  EXPECT_TRUE(got);
  EXPECT_EQ(s.value(), 0);
}

TYPED_TEST(SemaphoreTest, ReleaseNWakesNWaiters) {
  typename TestFixture::Semaphore s(0);
  std::atomic<int> acquired{0};
  std::atomic<int> started{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < 5; ++i) {
    threads.emplace_back([&] {
      ++started;
      if (s.acquire(kTestTimeout)) ++acquired;
    });
  }
  ASSERT_TRUE(eventually([&] { return started == 5; }));
  s.release(3);
  ASSERT_TRUE(eventually([&] { return acquired == 3; }));
  EXPECT_EQ(s.value(), 0);
  s.release(2);
  for (auto& t : threads) t.join();
  EXPECT_EQ(acquired, 5);
}

TYPED_TEST(SemaphoreTest, LimitsConcurrency) {
  typename TestFixture::Semaphore s(3);
  std::atomic<int> inside{0};
  std::atomic<int> peak{0};
  run_threads(8, [&](int) {
    for (int i = 0; i < 500; ++i) {
      std::scoped_lock guard(s);
      const int now = ++inside;
      int seen = peak;
      while (now > seen && !peak.compare_exchange_weak(seen, now)) {
      }
      --inside;
    }
  });
  EXPECT_LE(peak, 3);
  EXPECT_EQ(s.value(), 3);
}

TYPED_TEST(SemaphoreTest, HugeTimeoutDoesNotOverflow) {
  typename TestFixture::Semaphore s(1);
  EXPECT_TRUE(s.acquire(std::chrono::hours::max()));
  s.release();
  EXPECT_TRUE(s.try_lock_until(std::chrono::steady_clock::time_point::max()));
}

TYPED_TEST(SemaphoreTest, UnboundedReleasePassesInitialValue) {
  typename TestFixture::Semaphore s(1);
  s.release(5);
  EXPECT_EQ(s.value(), 6);
}

TYPED_TEST(SemaphoreTest, BoundedOverReleaseThrowsAndKeepsValue) {
  typename TestFixture::Bounded b(2);
  EXPECT_THROW(b.release(), std::invalid_argument);
  EXPECT_EQ(b.value(), 2);
  b.acquire();
  EXPECT_THROW(b.release(2), std::invalid_argument);
  EXPECT_EQ(b.value(), 1);
  b.release();
  EXPECT_EQ(b.value(), 2);
}

TYPED_TEST(SemaphoreTest, BoundHoldsThroughSemaphoreReference) {
  typename TestFixture::Bounded b(1);
  typename TestFixture::Semaphore& s = b;
  EXPECT_THROW(s.release(), std::invalid_argument);
  EXPECT_EQ(s.value(), 1);
}

TYPED_TEST(SemaphoreTest, BoundHoldsThroughUnlock) {
  typename TestFixture::Bounded b(1);
  EXPECT_THROW(b.unlock(), std::invalid_argument);
  EXPECT_EQ(b.value(), 1);
  {
    std::scoped_lock guard(b);
    EXPECT_EQ(b.value(), 0);
  }
  EXPECT_EQ(b.value(), 1);
}

TYPED_TEST(SemaphoreTest, BoundedZeroRefusesAnyRelease) {
  typename TestFixture::Bounded b(0);
  EXPECT_THROW(b.release(), std::invalid_argument);
  EXPECT_EQ(b.value(), 0);
}

TEST(Semaphore, ValueAboveTheWordLimitIsRefused) {
  EXPECT_THROW(th::Semaphore(th::Semaphore::kMaxValue + 1), std::invalid_argument);
  th::Semaphore s(th::Semaphore::kMaxValue);
  EXPECT_THROW(s.release(), std::overflow_error);
  EXPECT_EQ(s.value(), th::Semaphore::kMaxValue);
}

TEST(MpSemaphore, CopiesReferToTheSameSemaphore) {
  mp::Semaphore a(0);
  mp::Semaphore b = a;
  a.release();
  EXPECT_EQ(b.value(), 1);
  EXPECT_TRUE(b.acquire(false));
  EXPECT_EQ(a.value(), 0);
}

}  // namespace
