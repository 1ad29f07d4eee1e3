// The rules of Lock and RLock (API.md; CPython Lib/test/lock_tests.py),
// run on the thread types and on their process-shared namesakes.
#include "concur/multiprocessing/lock.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <stdexcept>
#include <thread>

#include "concur/multiprocessing/rlock.hpp"
#include "concur/threading/event.hpp"
#include "concur/threading/lock.hpp"
#include "concur/threading/rlock.hpp"
#include "test_support.hpp"

namespace {

namespace th = concur::threading;
namespace mp = concur::multiprocessing;
using namespace concur::testing;

template <class T>
class AnyLock : public ::testing::Test {};
using AllLocks = ::testing::Types<th::Lock, th::RLock, mp::Lock, mp::RLock>;
TYPED_TEST_SUITE(AnyLock, AllLocks);

template <class T>
class PlainLock : public ::testing::Test {};
using PlainLocks = ::testing::Types<th::Lock, mp::Lock>;
TYPED_TEST_SUITE(PlainLock, PlainLocks);

template <class T>
class ReentrantLock : public ::testing::Test {};
using ReentrantLocks = ::testing::Types<th::RLock, mp::RLock>;
TYPED_TEST_SUITE(ReentrantLock, ReentrantLocks);

TYPED_TEST(AnyLock, StartsUnlocked) {
  TypeParam lock;
  EXPECT_FALSE(lock.locked());
}

TYPED_TEST(AnyLock, AcquireThenReleaseChangesLocked) {
  TypeParam lock;
  EXPECT_TRUE(lock.acquire());
  EXPECT_TRUE(lock.locked());
  lock.release();
  EXPECT_FALSE(lock.locked());
}

TYPED_TEST(AnyLock, ReleaseWhenUnlockedThrowsLogicError) {
  TypeParam lock;
  EXPECT_THROW(lock.release(), std::logic_error);
  EXPECT_FALSE(lock.locked());
}

TYPED_TEST(AnyLock, NonBlockingAcquireFailsWhileAnotherThreadHolds) {
  TypeParam lock;
  lock.acquire();
  bool got = true;
  std::thread([&] { got = lock.acquire(false); }).join();
  EXPECT_FALSE(got);
  lock.release();
  std::thread([&] {
    got = lock.acquire(false);
    if (got) lock.release();
  }).join();
  EXPECT_TRUE(got);
}

TYPED_TEST(AnyLock, NegativeTimeoutThrowsInvalidArgumentAndChangesNothing) {
  TypeParam lock;
  EXPECT_THROW((void)lock.acquire(-1s), std::invalid_argument);
  EXPECT_THROW((void)lock.acquire(-100ms), std::invalid_argument);
  EXPECT_THROW((void)lock.acquire(std::chrono::duration<double>(-0.5)), std::invalid_argument);
  EXPECT_FALSE(lock.locked());
}

TYPED_TEST(AnyLock, ZeroTimeoutIsOneAttempt) {
  TypeParam lock;
  EXPECT_TRUE(lock.acquire(0s));
  bool got = true;
  std::chrono::steady_clock::time_point start;
  double elapsed = 1;
  std::thread([&] {
    start = std::chrono::steady_clock::now();
    got = lock.acquire(0s);
    elapsed = seconds_since(start);
  }).join();
  EXPECT_FALSE(got);
  EXPECT_LT(elapsed, 1.0);
  lock.release();
}

TYPED_TEST(AnyLock, ShortTimeoutExpiresAfterAtLeastTheTimeout) {
  TypeParam lock;
  lock.acquire();
  bool got = true;
  double elapsed = 0;
  std::thread([&] {
    const auto start = std::chrono::steady_clock::now();
    got = lock.acquire(100ms);
    elapsed = seconds_since(start);
  }).join();
  EXPECT_FALSE(got);
  EXPECT_GE(elapsed, 0.099);
  EXPECT_LT(elapsed, 5.0);
  lock.release();
}

TYPED_TEST(AnyLock, HugeTimeoutsMeanForeverWithoutOverflow) {
  TypeParam lock;
  EXPECT_TRUE(lock.acquire(std::chrono::hours::max()));
  lock.release();
  EXPECT_TRUE(lock.acquire(std::chrono::duration<double>(1e300)));
  lock.release();
  EXPECT_TRUE(lock.try_lock_for(std::chrono::nanoseconds::max()));
  lock.release();
  EXPECT_TRUE(lock.try_lock_until(std::chrono::steady_clock::time_point::max()));
  lock.release();
}

TYPED_TEST(AnyLock, PastTimePointIsOneAttempt) {
  TypeParam lock;
  EXPECT_TRUE(lock.try_lock_until(std::chrono::steady_clock::now() - 1s));
  bool got_steady = true;
  bool got_system = true;
  std::thread([&] {
    got_steady = lock.try_lock_until(std::chrono::steady_clock::now() - 1s);
    got_system = lock.try_lock_until(std::chrono::system_clock::now() - 1s);
  }).join();
  EXPECT_FALSE(got_steady);
  EXPECT_FALSE(got_system);
  lock.release();
}

TYPED_TEST(AnyLock, NegativeTryLockForIsOneAttempt) {
  TypeParam lock;
  EXPECT_TRUE(lock.try_lock_for(-1s));
  lock.unlock();
}

TYPED_TEST(AnyLock, AcquireUntilSystemClockTimesOut) {
  TypeParam lock;
  lock.acquire();
  bool got = true;
  std::thread([&] { got = lock.acquire_until(std::chrono::system_clock::now() + 50ms); }).join();
  EXPECT_FALSE(got);
  lock.release();
}

TYPED_TEST(AnyLock, BlockedAcquireSucceedsOnceReleased) {
  TypeParam lock;
  lock.acquire();
  th::Event waiting;
  std::atomic<bool> got{false};
  std::thread t([&] {
    waiting.set();
    got = lock.acquire(kTestTimeout);
    if (got) lock.release();
  });
  ASSERT_TRUE(waiting.wait(kTestTimeout));
  lock.release();
  t.join();
  EXPECT_TRUE(got);
}

TYPED_TEST(AnyLock, MutualExclusionUnderContention) {
  TypeParam lock;
  long counter = 0;
  run_threads(4, [&](int) {
    for (int i = 0; i < 20000; ++i) {
      std::scoped_lock guard(lock);
      ++counter;
    }
  });
  EXPECT_EQ(counter, 80000);
  EXPECT_FALSE(lock.locked());
}

TYPED_TEST(AnyLock, WorksWithStdUniqueLock) {
  TypeParam lock;
  {
    std::unique_lock guard(lock);
    EXPECT_TRUE(lock.locked());
    guard.unlock();
    EXPECT_FALSE(lock.locked());
    EXPECT_TRUE(guard.try_lock_for(10ms));
  }
  {
    std::unique_lock guard(lock, std::try_to_lock);
    EXPECT_TRUE(guard.owns_lock());
  }
  std::unique_lock guard(lock, std::defer_lock);
  EXPECT_TRUE(guard.try_lock_until(std::chrono::steady_clock::now() + 10ms));
}

TYPED_TEST(AnyLock, StdLockTakesTwoWithoutDeadlock) {
  TypeParam a;
  TypeParam b;
  run_threads(2, [&](int i) {
    for (int k = 0; k < 2000; ++k) {
      if (i == 0) {
        std::scoped_lock guard(a, b);
      } else {
        std::scoped_lock guard(b, a);
      }
    }
  });
  EXPECT_FALSE(a.locked());
  EXPECT_FALSE(b.locked());
}

TYPED_TEST(PlainLock, AnotherThreadMayRelease) {
  TypeParam lock;
  lock.acquire();
  std::thread([&] { lock.release(); }).join();
  EXPECT_FALSE(lock.locked());
}

TYPED_TEST(PlainLock, IsNotReentrant) {
  TypeParam lock;
  lock.acquire();
  EXPECT_FALSE(lock.acquire(false));
  EXPECT_FALSE(lock.acquire(10ms));
  lock.release();
}

TYPED_TEST(PlainLock, StateAfterTimeoutAllowsAcquire) {
  // lock_tests.py test_state_after_timeout: a timed-out waiter leaves no trace.
  TypeParam lock;
  lock.acquire();
  bool got = true;
  std::thread([&] { got = lock.acquire(10ms); }).join();
  EXPECT_FALSE(got);
  lock.release();
  EXPECT_TRUE(lock.acquire(false));
  lock.release();
}

TYPED_TEST(ReentrantLock, OwnerReacquiresAndReleasesAsManyTimes) {
  TypeParam lock;
  for (int i = 0; i < 5; ++i) EXPECT_TRUE(lock.acquire());
  EXPECT_TRUE(lock.acquire(false));
  for (int i = 0; i < 6; ++i) {
    EXPECT_TRUE(lock.locked());
    lock.release();
  }
  EXPECT_FALSE(lock.locked());
  EXPECT_THROW(lock.release(), std::logic_error);
}

TYPED_TEST(ReentrantLock, ReleaseByNonOwnerThrowsAndKeepsItHeld) {
  TypeParam lock;
  lock.acquire();
  bool threw = false;
  std::thread([&] {
    try {
      lock.release();
    } catch (const std::logic_error&) {
      threw = true;
    }
  }).join();
  EXPECT_TRUE(threw);
  EXPECT_TRUE(lock.locked());
  EXPECT_TRUE(lock.is_owned());
  lock.release();
}

TYPED_TEST(ReentrantLock, IsOwnedOnlyInTheHoldingThread) {
  TypeParam lock;
  EXPECT_FALSE(lock.is_owned());
  lock.acquire();
  EXPECT_TRUE(lock.is_owned());
  bool other_owned = true;
  bool other_locked = false;
  std::thread([&] {
    other_owned = lock.is_owned();
    other_locked = lock.locked();
  }).join();
  EXPECT_FALSE(other_owned);
  EXPECT_TRUE(other_locked);
  lock.release();
  EXPECT_FALSE(lock.is_owned());
}

TYPED_TEST(ReentrantLock, ReleaseUnownedThrows) {
  TypeParam lock;
  EXPECT_THROW(lock.release(), std::logic_error);
}

TYPED_TEST(ReentrantLock, NegativeTimeoutWhileOwnedStillThrows) {
  TypeParam lock;
  lock.acquire();
  EXPECT_THROW((void)lock.acquire(-1s), std::invalid_argument);
  lock.release();
  EXPECT_FALSE(lock.locked());
}

TEST(MpLock, CopiesReferToTheSameLock) {
  mp::Lock a;
  mp::Lock b = a;
  a.acquire();
  EXPECT_TRUE(b.locked());
  b.release();
  EXPECT_FALSE(a.locked());
}

TEST(MpLock, OwnerDiedIsFalseForALiveHolder) {
  mp::Lock lock;
  lock.acquire();
  EXPECT_FALSE(lock.owner_died());
  lock.release();
}

TEST(MpRLock, CopiesReferToTheSameLock) {
  mp::RLock a;
  mp::RLock b = a;
  a.acquire();
  EXPECT_TRUE(b.is_owned());
  b.release();
  EXPECT_FALSE(a.locked());
}

}  // namespace
