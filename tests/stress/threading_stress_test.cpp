// Many threads hammer each primitive for a bounded time; then the
// invariants are checked: mutual exclusion, permits conserved, no lost
// wake-up, barrier generations. A deadlock fails the test through a
// watchdog instead of hanging CI.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <vector>

#include "concur/threading.hpp"

namespace {

namespace th = concur::threading;
using namespace std::chrono_literals;

double stress_seconds() {
  const char* env = std::getenv("CONCUR_STRESS_SECONDS");
  return env != nullptr ? std::atof(env) : 0.5;
}

// Runs body(i, stop) in n concur threads until the stress time is up; fails
// (and aborts, so nothing hangs) if they do not all finish in time after.
void hammer(int n, const std::function<void(int, const std::atomic<bool>&)>& body) {
  std::atomic<bool> stop{false};
  std::vector<std::unique_ptr<th::Thread>> threads;
  for (int i = 0; i < n; ++i) {
    threads.push_back(std::make_unique<th::Thread>([&, i] { body(i, stop); }));
    threads.back()->start();
  }
  th::Event().wait(std::chrono::duration<double>(stress_seconds()));  // the stress time itself
  stop = true;
  for (auto& t : threads) {
    if (!t->join(60s)) {
      std::fprintf(stderr, "watchdog: %s did not finish 60 s after the stress ended\n",
                   t->name().c_str());
      std::abort();
    }
  }
}

class Threads : public ::testing::TestWithParam<int> {};
INSTANTIATE_TEST_SUITE_P(Counts, Threads, ::testing::Values(2, 4, 8, 16));

TEST_P(Threads, LockExcludesAndEndsUnlocked) {
  th::Lock lock;
  long counter = 0;
  std::atomic<long> acquisitions{0};
  std::atomic<int> inside{0};
  std::atomic<bool> overlap{false};
  hammer(GetParam(), [&](int i, const std::atomic<bool>& stop) {
    std::minstd_rand rng(i);
    while (!stop) {
      bool got = false;
      switch (rng() % 3) {
        case 0:
          got = lock.acquire();
          break;
        case 1:
          got = lock.try_lock();
          break;
        default:
          got = lock.try_lock_for(100us);
          break;
      }
      if (!got) continue;
      if (++inside != 1) overlap = true;
      ++counter;
      --inside;
      ++acquisitions;
      lock.release();
    }
  });
  EXPECT_FALSE(overlap);
  EXPECT_EQ(counter, acquisitions.load());
  EXPECT_FALSE(lock.locked());
}

TEST_P(Threads, LockHandedOffBetweenThreadsIsReleasedByAnother) {
  // Lock is not owned: thread i acquires, thread i+1 releases.
  th::Lock lock;
  th::Semaphore handed(0);
  std::atomic<long> rounds{0};
  hammer(GetParam(), [&](int i, const std::atomic<bool>& stop) {
    while (!stop) {
      if (i % 2 == 0) {
        if (!lock.acquire(10ms)) continue;
        handed.release();
      } else if (handed.acquire(10ms)) {
        lock.release();
        ++rounds;
      }
    }
  });
  // Drain a hand-off the stop interrupted.
  while (handed.acquire(false)) lock.release();
  EXPECT_FALSE(lock.locked());
  EXPECT_GT(rounds.load(), 0);
}

TEST_P(Threads, RLockRecursesUnderContention) {
  th::RLock lock;
  long counter = 0;
  std::atomic<long> expected{0};
  std::atomic<bool> bad{false};
  hammer(GetParam(), [&](int i, const std::atomic<bool>& stop) {
    std::minstd_rand rng(i);
    while (!stop) {
      const int depth = 1 + static_cast<int>(rng() % 4);
      for (int d = 0; d < depth; ++d) lock.acquire();
      if (!lock.is_owned()) bad = true;
      ++counter;
      ++expected;
      for (int d = 0; d < depth; ++d) lock.release();
    }
  });
  EXPECT_FALSE(bad);
  EXPECT_EQ(counter, expected.load());
  EXPECT_FALSE(lock.locked());
}

TEST_P(Threads, SemaphoreConservesPermits) {
  constexpr int kPermits = 3;
  th::BoundedSemaphore sem(kPermits);
  std::atomic<int> inside{0};
  std::atomic<bool> too_many{false};
  hammer(GetParam(), [&](int i, const std::atomic<bool>& stop) {
    std::minstd_rand rng(i);
    while (!stop) {
      const bool got = rng() % 2 ? sem.acquire(200us) : sem.acquire();
      if (!got) continue;
      if (++inside > kPermits) too_many = true;
      --inside;
      sem.release();
    }
  });
  EXPECT_FALSE(too_many);
  EXPECT_EQ(sem.value(), kPermits);
}

TEST_P(Threads, ConditionProducerConsumerLosesNothing) {
  th::Condition cond;
  std::deque<long> buffer;
  constexpr std::size_t kCapacity = 4;
  std::atomic<long> produced_sum{0};
  std::atomic<long> consumed_sum{0};
  std::atomic<int> producers_left{GetParam() / 2};
  const int producers = GetParam() / 2;
  hammer(GetParam(), [&](int i, const std::atomic<bool>& stop) {
    std::minstd_rand rng(i);
    if (i < producers) {
      long next = i * 1000000L;
      while (!stop) {
        std::scoped_lock guard(cond);
        if (!cond.wait_for([&] { return buffer.size() < kCapacity; }, 5ms)) continue;
        buffer.push_back(++next);
        produced_sum += next;
        if (rng() % 2) {
          cond.notify_all();
        } else {
          cond.notify(2);
        }
      }
      std::scoped_lock guard(cond);
      --producers_left;
      cond.notify_all();
    } else {
      for (;;) {
        std::scoped_lock guard(cond);
        cond.wait_for([&] { return !buffer.empty() || producers_left == 0; }, 5ms);
        if (buffer.empty()) {
          if (producers_left == 0) return;
          continue;
        }
        consumed_sum += buffer.front();
        buffer.pop_front();
        cond.notify_all();
      }
    }
  });
  EXPECT_TRUE(buffer.empty());
  EXPECT_EQ(produced_sum.load(), consumed_sum.load());
}

TEST_P(Threads, ConditionNotifyNWakesExactlyN) {
  const int waiters = GetParam() - 1;
  th::Lock lock;
  th::Condition cond(lock);  // the waiters wait here
  th::Condition done(lock);  // the notifier waits here for the count
  int waiting = 0;
  int woken = 0;
  bool leave = false;
  std::atomic<bool> wrong{false};
  hammer(GetParam(), [&](int i, const std::atomic<bool>& stop) {
    if (i == 0) {
      std::minstd_rand rng(7);
      while (!stop) {
        std::scoped_lock guard(lock);
        if (!done.wait_for([&] { return waiting == waiters; }, 5ms)) continue;
        const int n = 1 + static_cast<int>(rng() % waiters);
        woken = 0;
        cond.notify(n);
        // The notified ones count themselves once they retake the lock.
        done.wait_for([&] { return woken == n; }, 5s);
        if (woken != n) wrong = true;
      }
      std::scoped_lock guard(lock);
      leave = true;
      cond.notify_all();
    } else {
      std::scoped_lock guard(lock);
      while (!leave) {
        ++waiting;
        done.notify();
        const bool notified = cond.wait(50ms);
        --waiting;
        if (notified && !leave) {
          ++woken;
          done.notify();
        }
      }
    }
  });
  EXPECT_FALSE(wrong);
}

TEST_P(Threads, EventPingPongNeverLosesAWakeup) {
  const int pairs = GetParam() / 2;
  std::vector<std::unique_ptr<th::Event>> pings;
  std::vector<std::unique_ptr<th::Event>> pongs;
  for (int p = 0; p < pairs; ++p) {
    pings.push_back(std::make_unique<th::Event>());
    pongs.push_back(std::make_unique<th::Event>());
  }
  std::atomic<bool> lost{false};
  hammer(pairs * 2, [&](int i, const std::atomic<bool>& stop) {
    th::Event& ping = *pings[i / 2];
    th::Event& pong = *pongs[i / 2];
    while (!stop && !lost) {
      if (i % 2 == 0) {
        ping.set();
        if (!pong.wait(10s)) lost = true;
        pong.clear();
      } else {
        if (!ping.wait(10s)) lost = true;
        ping.clear();
        pong.set();
      }
    }
    // Let the partner finish its round.
    ping.set();
    pong.set();
  });
  EXPECT_FALSE(lost);
}

TEST_P(Threads, BarrierCyclesStayInStep) {
  const int parties = GetParam();
  std::atomic<long> actions{0};
  th::Barrier barrier(parties, [&] { ++actions; });
  std::vector<long> cycles(parties, 0);
  std::atomic<bool> bad_index{false};
  std::atomic<bool> stop_all{false};
  hammer(parties, [&](int i, const std::atomic<bool>& stop) {
    for (;;) {
      // Everyone decides to stop in the same cycle: the action's count.
      const int index = barrier.wait(30s);
      if (index < 0 || index >= parties) bad_index = true;
      ++cycles[i];
      if (stop) stop_all = true;
      barrier.wait(30s);
      if (stop_all) return;
    }
  });
  for (long c : cycles) EXPECT_EQ(c, cycles[0]);
  EXPECT_EQ(actions.load(), 2 * cycles[0]);
  EXPECT_FALSE(bad_index);
}

TEST_P(Threads, BarrierAbortAndResetRacingWaitersEndUsable) {
  const int parties = GetParam();
  th::Barrier barrier(parties);
  std::atomic<long> broken{0};
  hammer(parties + 1, [&](int i, const std::atomic<bool>& stop) {
    std::minstd_rand rng(i);
    while (!stop) {
      if (i == parties) {
        if (rng() % 2) {
          barrier.abort();
        } else {
          barrier.reset();
        }
        th::Event().wait(100us);
        continue;
      }
      try {
        barrier.wait(20ms);
      } catch (const concur::BrokenBarrierError&) {
        ++broken;
      }
    }
  });
  barrier.reset();
  EXPECT_FALSE(barrier.broken());
  EXPECT_EQ(barrier.n_waiting(), 0);
  // Still works: one full cycle.
  std::vector<std::unique_ptr<th::Thread>> threads;
  std::atomic<int> passed{0};
  for (int i = 0; i < parties; ++i) {
    threads.push_back(std::make_unique<th::Thread>([&] {
      if (barrier.wait(10s) >= 0) ++passed;
    }));
    threads.back()->start();
  }
  for (auto& t : threads) ASSERT_TRUE(t->join(20s));
  EXPECT_EQ(passed, parties);
}

}  // namespace
