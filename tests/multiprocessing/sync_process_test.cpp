// The process-shared primitives between processes: each works between the
// threads of every process forked after it was made, and a copy of a handle
// refers to the same object.
#include <gtest/gtest.h>
#include <signal.h>

#include <atomic>
#include <mutex>
#include <stdexcept>
#include <vector>

#include "concur/multiprocessing/array.hpp"
#include "concur/multiprocessing/barrier.hpp"
#include "concur/multiprocessing/condition.hpp"
#include "concur/multiprocessing/event.hpp"
#include "concur/multiprocessing/lock.hpp"
#include "concur/multiprocessing/rlock.hpp"
#include "concur/multiprocessing/semaphore.hpp"
#include "concur/multiprocessing/value.hpp"
#include "multiprocessing/fork_support.hpp"
#include "multiprocessing/hygiene.hpp"

namespace {

namespace mp = concur::multiprocessing;
using namespace concur::testing;

class MpAcrossProcesses : public HygieneTest {};

TEST_F(MpAcrossProcesses, LockHeldByTheParentBlocksAChild) {
  mp::Lock lock;
  lock.acquire();
  const pid_t child = fork_child([&] { return lock.acquire(false) ? 1 : 0; });
  EXPECT_EQ(exit_code(wait_child(child)), 0);
  lock.release();
  const pid_t again = fork_child([&] {
    if (!lock.acquire(false)) return 1;
    lock.release();
    return 0;
  });
  EXPECT_EQ(exit_code(wait_child(again)), 0);
}

TEST_F(MpAcrossProcesses, ChildReleasesALockTheParentHolds) {
  mp::Lock lock;
  lock.acquire();
  const pid_t child = fork_child([&] {
    lock.release();
    return 0;
  });
  EXPECT_EQ(exit_code(wait_child(child)), 0);
  EXPECT_FALSE(lock.locked());
}

TEST_F(MpAcrossProcesses, ValueIncrementedUnderItsLockByManyProcesses) {
  mp::Value<long> counter(0);
  constexpr int kChildren = 4;
  constexpr int kIncrements = 20000;
  std::vector<pid_t> children;
  for (int c = 0; c < kChildren; ++c) {
    children.push_back(fork_child([&] {
      for (int i = 0; i < kIncrements; ++i) {
        std::scoped_lock guard(counter.get_lock());
        ++counter.value();
      }
      return 0;
    }));
  }
  for (pid_t p : children) EXPECT_EQ(exit_code(wait_child(p)), 0);
  EXPECT_EQ(counter.value(), kChildren * kIncrements);
}

TEST_F(MpAcrossProcesses, RLockReleaseByAnotherProcessThrows) {
  mp::RLock lock;
  lock.acquire();
  const pid_t child = fork_child([&] {
    try {
      lock.release();
    } catch (const std::logic_error&) {
      return 0;
    }
    return 1;
  });
  EXPECT_EQ(exit_code(wait_child(child)), 0);
  EXPECT_TRUE(lock.is_owned());
  lock.release();
}

TEST_F(MpAcrossProcesses, EventSetInAChildWakesTheParent) {
  mp::Event event;
  mp::Event go;
  const pid_t child = fork_child([&] {
    if (!go.wait(kTestTimeout)) return 1;
    event.set();
    return 0;
  });
  go.set();
  EXPECT_TRUE(event.wait(kTestTimeout));
  EXPECT_EQ(exit_code(wait_child(child)), 0);
}

TEST_F(MpAcrossProcesses, SemaphorePermitsAreConserved) {
  mp::Semaphore sem(2);
  mp::Value<int> inside(0);
  mp::Value<int> peak(0);
  std::vector<pid_t> children;
  for (int c = 0; c < 4; ++c) {
    children.push_back(fork_child([&] {
      for (int i = 0; i < 2000; ++i) {
        std::scoped_lock slot(sem);
        std::scoped_lock guard(inside.get_lock());
        const int now = ++inside.value();
        if (now > peak.value()) peak.value() = now;
        --inside.value();
      }
      return 0;
    }));
  }
  for (pid_t p : children) EXPECT_EQ(exit_code(wait_child(p)), 0);
  EXPECT_LE(peak.value(), 2);
  EXPECT_EQ(sem.value(), 2);
}

TEST_F(MpAcrossProcesses, BoundedSemaphoreBoundHoldsInAChild) {
  mp::BoundedSemaphore sem(1);
  const pid_t child = fork_child([&] {
    try {
      sem.release();
    } catch (const std::invalid_argument&) {
      return sem.value() == 1 ? 0 : 2;
    }
    return 1;
  });
  EXPECT_EQ(exit_code(wait_child(child)), 0);
}

TEST_F(MpAcrossProcesses, ConditionNotifyNWakesExactlyNChildren) {
  mp::Condition cond;
  mp::Value<int> waiting(0);
  mp::Value<int> woken(0);
  constexpr int kChildren = 4;
  std::vector<pid_t> children;
  for (int c = 0; c < kChildren; ++c) {
    children.push_back(fork_child([&] {
      std::scoped_lock guard(cond);
      ++waiting.value();
      if (cond.wait(kTestTimeout)) ++woken.value();
      return 0;
    }));
  }
  ASSERT_TRUE(eventually([&] {
    std::scoped_lock guard(cond);
    return waiting.value() == kChildren;
  }));
  {
    std::scoped_lock guard(cond);
    cond.notify(3);
  }
  ASSERT_TRUE(eventually([&] {
    std::scoped_lock guard(cond);
    return woken.value() == 3;
  }));
  {
    std::scoped_lock guard(cond);
    EXPECT_FALSE(cond.wait(kShort));
    EXPECT_EQ(woken.value(), 3);
    cond.notify_all();
  }
  for (pid_t p : children) EXPECT_EQ(exit_code(wait_child(p)), 0);
  EXPECT_EQ(woken.value(), kChildren);
}

TEST_F(MpAcrossProcesses, BarrierCyclesAcrossThreeProcesses) {
  constexpr int kParties = 3;
  constexpr int kCycles = 200;
  mp::Value<int> actions(0);
  mp::Barrier barrier(kParties, [&] { ++actions.value(); });
  // seen[cycle * parties + index] is set once per cycle and index.
  mp::Array<int> seen(kCycles * kParties);
  std::vector<pid_t> children;
  auto body = [&] {
    for (int cycle = 0; cycle < kCycles; ++cycle) {
      const int index = barrier.wait(kTestTimeout);
      std::atomic_ref<int>(seen[cycle * kParties + index]).fetch_add(1);
    }
    return 0;
  };
  for (int c = 0; c < kParties - 1; ++c) children.push_back(fork_child(body));
  body();
  for (pid_t p : children) EXPECT_EQ(exit_code(wait_child(p)), 0);
  EXPECT_EQ(actions.value(), kCycles);
  for (int v : seen) EXPECT_EQ(v, 1);
}

TEST_F(MpAcrossProcesses, BarrierAbortInOneProcessBreaksTheOthers) {
  mp::Barrier barrier(3);
  const pid_t child = fork_child([&] {
    try {
      barrier.wait(kTestTimeout);
    } catch (const concur::BrokenBarrierError&) {
      return 0;
    }
    return 1;
  });
  ASSERT_TRUE(eventually([&] { return barrier.n_waiting() == 1; }));
  barrier.abort();
  EXPECT_EQ(exit_code(wait_child(child)), 0);
  EXPECT_TRUE(barrier.broken());
}

TEST_F(MpAcrossProcesses, MemoryOutlivesTheParentsHandle) {
  auto* value = new mp::Value<int>(5);
  mp::Value<int> copy = *value;
  mp::Event done;
  const pid_t child = fork_child([copy, done]() mutable {
    if (!done.wait(kTestTimeout)) return 2;
    return copy.value() == 5 ? 0 : 1;
  });
  delete value;  // the parent's first handle goes; the child's copy still works
  done.set();
  EXPECT_EQ(exit_code(wait_child(child)), 0);
  EXPECT_EQ(copy.value(), 5);
}

}  // namespace
