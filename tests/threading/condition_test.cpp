// The rules of Condition, thread and process-shared.
#include "concur/multiprocessing/condition.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <vector>

#include "concur/threading/condition.hpp"
#include "test_support.hpp"

namespace {

namespace th = concur::threading;
namespace mp = concur::multiprocessing;
using namespace concur::testing;

// Each case: the condition type, the lock types it takes.
template <class C, class L, class R>
struct Scope {
  using Condition = C;
  using Lock = L;
  using RLock = R;
};
using ThreadScope = Scope<th::Condition, th::Lock, th::RLock>;
using ProcessScope = Scope<mp::Condition, mp::Lock, mp::RLock>;

template <class S>
class ConditionTest : public ::testing::Test {
 protected:
  using Condition = typename S::Condition;
  using Lock = typename S::Lock;
  using RLock = typename S::RLock;
};
using Scopes = ::testing::Types<ThreadScope, ProcessScope>;
TYPED_TEST_SUITE(ConditionTest, Scopes);

// Starts n threads that wait on c (with the lock) and count themselves woken.
template <class C>
struct Waiters {
  Waiters(C& c, int n, std::atomic<int>& woken) {
    for (int i = 0; i < n; ++i) {
      threads.emplace_back([&c, &woken, this] {
        std::scoped_lock guard(c);
        ++waiting;
        if (c.wait(kTestTimeout)) ++woken;
      });
    }
  }
  ~Waiters() {
    for (auto& t : threads) t.join();
  }
  std::vector<std::thread> threads;
  std::atomic<int> waiting{0};
};

TYPED_TEST(ConditionTest, WaitWithoutTheLockThrowsLogicError) {
  typename TestFixture::Condition c;
  EXPECT_THROW(c.wait(), std::logic_error);
  EXPECT_THROW(c.wait(10ms), std::logic_error);
  EXPECT_THROW(c.wait_for([] { return false; }), std::logic_error);
}

TYPED_TEST(ConditionTest, NotifyWithoutTheLockThrowsLogicError) {
  typename TestFixture::Condition c;
  EXPECT_THROW(c.notify(), std::logic_error);
  EXPECT_THROW(c.notify(3), std::logic_error);
  EXPECT_THROW(c.notify_all(), std::logic_error);
}

TYPED_TEST(ConditionTest, WaitForWithATruePredicateNeedsNoLock) {
  typename TestFixture::Condition c;
  EXPECT_TRUE(c.wait_for([] { return true; }));
  EXPECT_TRUE(c.wait_for([] { return true; }, 10ms));
}

// Whether notify() from another thread throws while this thread holds lock.
template <class Condition, class L>
bool notify_from_another_thread_throws(L& lock) {
  Condition c(lock);
  std::scoped_lock guard(lock);
  bool threw = false;
  std::thread([&] {
    try {
      c.notify();
    } catch (const std::logic_error&) {
      threw = true;
    }
  }).join();
  return threw;
}

TYPED_TEST(ConditionTest, RLockHeldByAnotherThreadIsNotOwned) {
  typename TestFixture::RLock lock;
  EXPECT_TRUE(notify_from_another_thread_throws<typename TestFixture::Condition>(lock));
}

TYPED_TEST(ConditionTest, PlainLockHeldByAnyThreadCounts) {
  // Python's _is_owned for a Lock: held by anyone.
  typename TestFixture::Lock lock;
  EXPECT_FALSE(notify_from_another_thread_throws<typename TestFixture::Condition>(lock));
}

TYPED_TEST(ConditionTest, WaitTimesOutWithFalseAndRetakesTheLock) {
  typename TestFixture::Condition c;
  std::scoped_lock guard(c);
  const auto start = std::chrono::steady_clock::now();
  EXPECT_FALSE(c.wait(50ms));
  const double elapsed = seconds_since(start);
  EXPECT_GE(elapsed, 0.049);
  EXPECT_LT(elapsed, 5.0);
  EXPECT_TRUE(c.locked());
}

TYPED_TEST(ConditionTest, ZeroAndNegativeTimeoutsDoNotBlock) {
  typename TestFixture::Condition c;
  std::scoped_lock guard(c);
  EXPECT_FALSE(c.wait(0s));
  EXPECT_FALSE(c.wait(-1s));
  EXPECT_FALSE(c.wait_for([] { return false; }, -1s));
  EXPECT_TRUE(c.locked());
}

TYPED_TEST(ConditionTest, WaitReleasesTheLockMeanwhile) {
  typename TestFixture::Lock lock;
  typename TestFixture::Condition c(lock);
  std::atomic<bool> done{false};
  std::thread t([&] {
    std::scoped_lock guard(c);
    c.wait_for([&] { return done.load(); }, kTestTimeout);
  });
  // The waiter holds the lock only while not waiting: we can take it.
  ASSERT_TRUE(lock.acquire(kTestTimeout));
  done = true;
  c.notify();
  lock.release();
  t.join();
}

TYPED_TEST(ConditionTest, NotifyWakesOneWaiter) {
  typename TestFixture::Condition c;
  std::atomic<int> woken{0};
  {
    Waiters<typename TestFixture::Condition> w(c, 2, woken);
    ASSERT_TRUE(eventually([&] {
      std::scoped_lock guard(c);
      return w.waiting == 2;
    }));
    {
      std::scoped_lock guard(c);
      c.notify();
    }
    ASSERT_TRUE(eventually([&] { return woken == 1; }));
    {
      std::scoped_lock guard(c);
      c.notify();
    }
  }
  EXPECT_EQ(woken, 2);
}

TYPED_TEST(ConditionTest, NotifyNWakesExactlyN) {
  typename TestFixture::Condition c;
  std::atomic<int> woken{0};
  Waiters<typename TestFixture::Condition> w(c, 5, woken);
  // Every waiter is queued once it has counted itself and released the lock.
  ASSERT_TRUE(eventually([&] {
    std::scoped_lock guard(c);
    return w.waiting == 5;
  }));
  {
    std::scoped_lock guard(c);
    c.notify(3);
  }
  ASSERT_TRUE(eventually([&] { return woken == 3; }));
  // The other two stay asleep: give them a moment to (wrongly) wake.
  {
    std::scoped_lock guard(c);
    EXPECT_FALSE(c.wait(kShort));
  }
  EXPECT_EQ(woken, 3);
  {
    std::scoped_lock guard(c);
    c.notify_all();
  }
  ASSERT_TRUE(eventually([&] { return woken == 5; }));
}

TYPED_TEST(ConditionTest, NotifyMoreThanWaitingWakesAll) {
  typename TestFixture::Condition c;
  std::atomic<int> woken{0};
  {
    Waiters<typename TestFixture::Condition> w(c, 2, woken);
    ASSERT_TRUE(eventually([&] {
      std::scoped_lock guard(c);
      return w.waiting == 2;
    }));
    std::scoped_lock guard(c);
    c.notify(10);
  }
  EXPECT_EQ(woken, 2);
}

TYPED_TEST(ConditionTest, NotifyZeroOrNegativeWakesNobody) {
  typename TestFixture::Condition c;
  std::atomic<int> woken{0};
  Waiters<typename TestFixture::Condition> w(c, 1, woken);
  ASSERT_TRUE(eventually([&] {
    std::scoped_lock guard(c);
    return w.waiting == 1;
  }));
  {
    std::scoped_lock guard(c);
    c.notify(0);
    c.notify(-1);
    EXPECT_FALSE(c.wait(kShort));
  }
  EXPECT_EQ(woken, 0);
  std::scoped_lock guard(c);
  c.notify();
}

TYPED_TEST(ConditionTest, LaterWaiterIsNotWokenByEarlierNotify) {
  typename TestFixture::Condition c;
  std::scoped_lock guard(c);
  c.notify();  // nobody waits: the notification is not kept
  EXPECT_FALSE(c.wait(kShort));
}

TYPED_TEST(ConditionTest, WaitersAreWokenInFifoOrder) {
  typename TestFixture::Condition c;
  std::vector<int> order;
  std::vector<std::thread> threads;
  std::atomic<int> queued{0};
  for (int i = 0; i < 4; ++i) {
    // Start each waiter only once the previous one is queued.
    ASSERT_TRUE(eventually([&] {
      std::scoped_lock guard(c);
      return queued == i;
    }));
    threads.emplace_back([&, i] {
      std::scoped_lock guard(c);
      ++queued;
      if (c.wait(kTestTimeout)) order.push_back(i);
    });
  }
  ASSERT_TRUE(eventually([&] {
    std::scoped_lock guard(c);
    return queued == 4;
  }));
  for (std::size_t i = 0; i < 4; ++i) {
    {
      std::scoped_lock guard(c);
      c.notify();
    }
    // One notified waiter at a time, so the order it records is the wake order.
    ASSERT_TRUE(eventually([&] {
      std::scoped_lock guard(c);
      return order.size() == i + 1;
    }));
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(order, (std::vector<int>{0, 1, 2, 3}));
}

TYPED_TEST(ConditionTest, WaitForReturnsThePredicatesValue) {
  typename TestFixture::Condition c;
  int state = 0;
  std::thread t([&] {
    for (int i = 1; i <= 3; ++i) {
      std::scoped_lock guard(c);
      state = i;
      c.notify_all();
    }
  });
  {
    std::scoped_lock guard(c);
    EXPECT_TRUE(c.wait_for([&] { return state == 3; }, kTestTimeout));
  }
  t.join();
  std::scoped_lock guard(c);
  const auto start = std::chrono::steady_clock::now();
  EXPECT_FALSE(c.wait_for([&] { return state == 4; }, 50ms));
  EXPECT_GE(seconds_since(start), 0.049);
}

TYPED_TEST(ConditionTest, WaitOnRecursiveRLockReleasesEveryLevel) {
  typename TestFixture::RLock lock;
  typename TestFixture::Condition c(lock);
  lock.acquire();
  lock.acquire();
  lock.acquire();
  std::atomic<bool> other_got_it{false};
  std::thread t([&] {
    if (lock.acquire(kTestTimeout)) {
      other_got_it = true;
      c.notify();
      lock.release();
    }
  });
  EXPECT_TRUE(c.wait(kTestTimeout));
  t.join();
  EXPECT_TRUE(other_got_it);
  EXPECT_TRUE(lock.is_owned());
  lock.release();
  lock.release();
  EXPECT_TRUE(lock.is_owned());
  lock.release();
  EXPECT_FALSE(lock.locked());
  EXPECT_THROW(lock.release(), std::logic_error);
}

TYPED_TEST(ConditionTest, DefaultConditionOwnsAnRLock) {
  typename TestFixture::Condition c;
  c.acquire();
  EXPECT_TRUE(c.acquire(false));  // reentrant
  c.release();
  c.release();
  EXPECT_FALSE(c.locked());
  EXPECT_THROW(c.release(), std::logic_error);
}

TYPED_TEST(ConditionTest, ForwardsTheLockMembers) {
  typename TestFixture::Lock lock;
  typename TestFixture::Condition c(lock);
  EXPECT_TRUE(c.try_lock());
  EXPECT_TRUE(lock.locked());
  EXPECT_TRUE(c.locked());
  EXPECT_FALSE(c.try_lock_for(1ms));
  c.unlock();
  EXPECT_TRUE(c.try_lock_until(std::chrono::steady_clock::now() + 1s));
  c.release();
  EXPECT_THROW((void)c.acquire(-1s), std::invalid_argument);
}

TYPED_TEST(ConditionTest, WorksWithConditionVariableAny) {
  typename TestFixture::Lock lock;
  std::condition_variable_any cv;
  bool ready = false;
  std::thread t([&] {
    std::scoped_lock guard(lock);
    ready = true;
    cv.notify_one();
  });
  {
    std::unique_lock guard(lock);
    EXPECT_TRUE(cv.wait_for(guard, kTestTimeout, [&] { return ready; }));
  }
  t.join();
}

TEST(MpCondition, CopiesShareTheQueueAndTheLock) {
  mp::Condition a;
  mp::Condition b = a;
  std::atomic<int> woken{0};
  Waiters<mp::Condition> w(a, 1, woken);
  ASSERT_TRUE(eventually([&] {
    std::scoped_lock guard(b);
    return w.waiting == 1;
  }));
  {
    std::scoped_lock guard(b);
    b.notify();
  }
  ASSERT_TRUE(eventually([&] { return woken == 1; }));
}

}  // namespace
