// A process that dies holding an mp::Lock or mp::RLock never leaves the
// others deadlocked: the next acquire takes the lock over and owner_died()
// says so until it is released.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <thread>

#include "concur/multiprocessing/event.hpp"
#include "concur/multiprocessing/lock.hpp"
#include "concur/multiprocessing/rlock.hpp"
#include "multiprocessing/fork_support.hpp"
#include "multiprocessing/hygiene.hpp"

namespace {

namespace mp = concur::multiprocessing;
using namespace concur::testing;

class LockHolderKilled : public HygieneTest {};

TEST_F(LockHolderKilled, KilledHolderIsTakenOverAndReportsOwnerDied) {
  mp::Lock lock;
  mp::Event holding;
  const pid_t child = fork_child([&] {
    lock.acquire();
    holding.set();
    ::pause();  // killed here, holding the lock
    return 0;
  });
  ASSERT_TRUE(holding.wait(kTestTimeout));
  ::kill(child, SIGKILL);
  ASSERT_TRUE(wait_child(child).has_value());
  EXPECT_TRUE(lock.acquire(kTestTimeout));
  EXPECT_TRUE(lock.owner_died());
  lock.release();
  EXPECT_FALSE(lock.owner_died());
  EXPECT_TRUE(lock.acquire(false));
  EXPECT_FALSE(lock.owner_died());
  lock.release();
}

TEST_F(LockHolderKilled, WaiterBlockedWhenTheHolderDiesIsReleased) {
  mp::RLock lock;
  mp::Event holding;
  const pid_t child = fork_child([&] {
    lock.acquire();
    lock.acquire();
    holding.set();
    ::pause();
    return 0;
  });
  ASSERT_TRUE(holding.wait(kTestTimeout));
  std::atomic<bool> got{false};
  std::thread waiter([&] {
    got = lock.acquire(kTestTimeout);
    if (got) {
      EXPECT_TRUE(lock.owner_died());
      lock.release();  // one level: the dead owner's count is not inherited
      EXPECT_FALSE(lock.locked());
    }
  });
  ::kill(child, SIGKILL);
  waiter.join();
  ASSERT_TRUE(wait_child(child).has_value());
  EXPECT_TRUE(got);
}

TEST_F(LockHolderKilled, HolderThatExitsWithoutReleasingIsTakenOver) {
  mp::Lock lock;
  const pid_t child = fork_child([&] {
    lock.acquire();
    return 0;  // _exit while holding
  });
  ASSERT_EQ(exit_code(wait_child(child)), 0);
  EXPECT_TRUE(lock.acquire(kTestTimeout));
  EXPECT_TRUE(lock.owner_died());
  lock.release();
}

}  // namespace
