// Many threads hammer each concur::threading primitive for a bounded time;
// then the invariants are checked: mutual exclusion, the lock word back to
// unlocked, permits conserved and never above the bound, every item through
// a Condition exactly once and in order, notify(n) waking exactly n, no lost
// wake-up, barrier indices distinct and generations in step.
//
// Each test runs with 2, 4, 8 and 16 threads. Data guarded by a primitive is
// deliberately not atomic, so ThreadSanitizer checks the primitive's memory
// ordering. A deadlock aborts through the watchdog in stress_support.hpp.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <climits>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <deque>
#include <memory>
#include <mutex>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "concur/detail/spin.hpp"
#include "concur/errors.hpp"
#include "concur/threading/barrier.hpp"
#include "concur/threading/condition.hpp"
#include "concur/threading/event.hpp"
#include "concur/threading/lock.hpp"
#include "concur/threading/rlock.hpp"
#include "concur/threading/semaphore.hpp"
#include "stress_support.hpp"

namespace {

namespace th = concur::threading;
namespace st = concur::stress;
using namespace std::chrono_literals;
using st::Clock;
using us = std::chrono::microseconds;

class Stress : public ::testing::TestWithParam<int> {
 protected:
  int threads() const { return GetParam(); }
};

std::string thread_count_name(const ::testing::TestParamInfo<int>& info) {
  return std::to_string(info.param) + "threads";
}

#define CONCUR_STRESS_SUITE(Suite) \
  class Suite : public Stress {};  \
  INSTANTIATE_TEST_SUITE_P(Threads, Suite, ::testing::Values(2, 4, 8, 16), thread_count_name)

CONCUR_STRESS_SUITE(LockStress);
CONCUR_STRESS_SUITE(RLockStress);
CONCUR_STRESS_SUITE(SemaphoreStress);
CONCUR_STRESS_SUITE(BoundedSemaphoreStress);
CONCUR_STRESS_SUITE(ConditionStress);
CONCUR_STRESS_SUITE(EventStress);
CONCUR_STRESS_SUITE(BarrierStress);

// A short random timeout; sometimes zero or negative, which means one
// attempt that does not block.
us short_timeout(std::minstd_rand& rng, int max_us = 200) {
  switch (rng() % 8) {
    case 0:
      return us(0);
    case 1:
      return us(-1);
    default:
      return us(static_cast<int>(rng() % static_cast<unsigned>(max_us)));
  }
}

// ---------------------------------------------------------------- Lock

// Every way of taking a Lock, mixed; a plain counter and an "inside" flag
// prove mutual exclusion.
TEST_P(LockStress, MutualExclusionUnderEveryAcquireMode) {
  const int n = threads();
  th::Lock lock;
  long counter = 0;  // guarded by lock
  std::atomic<bool> inside{false};
  std::atomic<long> acquisitions{0};
  st::Failures failures;

  auto critical = [&] {
    if (inside.exchange(true, std::memory_order_relaxed))
      failures.add("two threads inside the Lock");
    if (!lock.locked()) failures.add("locked() is false while the Lock is held");
    ++counter;
    inside.store(false, std::memory_order_relaxed);
  };

  st::run(
      "Lock mutual exclusion", n, st::iterations(2'000'000) / n,
      [&](st::Worker& w) {
        std::minstd_rand rng(w.index() + 1);
        long mine = 0;
        while (w.more()) {
          const unsigned mode = rng() % 8;
          if (mode == 7) {
            w.note("std::scoped_lock");
            std::scoped_lock guard(lock);
            critical();
            ++mine;
            continue;
          }
          bool got = false;
          w.note("acquiring");
          switch (mode) {
            case 0:
              if (!lock.acquire()) failures.add("blocking acquire() returned false");
              got = true;
              break;
            case 1:
              got = lock.acquire(false);
              break;
            case 2: {
              const auto t = short_timeout(rng);
              got = lock.acquire(t < us(0) ? us(0) : t);  // negative: invalid_argument
              break;
            }
            case 3:
              got = lock.try_lock();
              break;
            case 4:
              got = lock.try_lock_for(short_timeout(rng));
              break;
            case 5:
              got = lock.try_lock_until(Clock::now() + short_timeout(rng));
              break;
            default:
              got = lock.acquire_until(Clock::now() + short_timeout(rng));
              break;
          }
          if (!got) continue;
          critical();
          ++mine;
          w.note("releasing");
          lock.release();
        }
        acquisitions += mine;
      },
      [&] { std::fprintf(stderr, "  lock.locked() = %d\n", lock.locked()); });

  EXPECT_TRUE(failures.empty()) << failures.summary();
  EXPECT_EQ(counter, acquisitions.load());
  EXPECT_GT(acquisitions.load(), 0);
  EXPECT_FALSE(lock.locked()) << "the lock word is not back to unlocked";
  EXPECT_TRUE(lock.try_lock());
  lock.release();
  EXPECT_THROW(lock.release(), std::logic_error);
}

// Lock is not owned: thread A of each pair acquires (any mode, contending
// with the other pairs' A threads) and hands the held lock to its partner B,
// which releases it. The hand-off channel is std::, not concur.
TEST_P(LockStress, AcquiredByOneThreadReleasedByAnother) {
  const int pairs = std::max(1, threads() / 2);
  th::Lock lock;
  long counter = 0;  // guarded by lock: written by A, read by B
  std::atomic<bool> inside{false};
  std::atomic<long> handed{0}, released{0};
  st::Failures failures;

  struct Channel {
    std::mutex m;
    std::condition_variable cv;
    int tokens = 0;
    long value = 0;
    bool closed = false;
  };
  std::vector<Channel> channels(static_cast<std::size_t>(pairs));

  st::run(
      "Lock hand-off", 2 * pairs, st::iterations(20'000) / pairs,
      [&](st::Worker& w) {
        Channel& ch = channels[static_cast<std::size_t>(w.index() / 2)];
        std::minstd_rand rng(w.index() + 11);
        if (w.index() % 2 == 0) {  // A: acquire, hand off
          while (w.more()) {
            w.note("A acquiring");
            bool got = false;
            switch (rng() % 3) {
              case 0:
                got = lock.acquire();
                break;
              case 1:
                got = lock.try_lock();
                break;
              default:
                got = lock.try_lock_for(short_timeout(rng, 500));
                break;
            }
            if (!got) continue;
            if (inside.exchange(true, std::memory_order_relaxed))
              failures.add("two holders of the Lock");
            const long value = ++counter;
            ++handed;
            w.note("A handing off");
            std::scoped_lock guard(ch.m);
            ++ch.tokens;
            ch.value = value;
            ch.cv.notify_one();
          }
          std::scoped_lock guard(ch.m);
          ch.closed = true;
          ch.cv.notify_one();
        } else {  // B: release what A handed over
          for (;;) {
            w.note("B waiting for a hand-off");
            long value = 0;
            {
              std::unique_lock guard(ch.m);
              if (!ch.cv.wait_for(guard, st::kHang, [&] { return ch.tokens > 0 || ch.closed; })) {
                failures.add("B: no hand-off and no close within kHang");
                return;
              }
              if (ch.tokens == 0) return;  // closed and drained
              --ch.tokens;
              value = ch.value;
            }
            if (counter != value) failures.add("counter changed while the Lock was held");
            if (!lock.locked()) failures.add("handed-off Lock is not locked");
            inside.store(false, std::memory_order_relaxed);
            w.note("B releasing");
            lock.release();
            ++released;
            w.tick();
          }
        }
      },
      [&] { std::fprintf(stderr, "  lock.locked() = %d\n", lock.locked()); });

  EXPECT_TRUE(failures.empty()) << failures.summary();
  EXPECT_GT(handed.load(), 0);
  EXPECT_EQ(handed.load(), released.load());
  EXPECT_EQ(counter, handed.load());
  EXPECT_FALSE(lock.locked()) << "the lock word is not back to unlocked";
  EXPECT_THROW(lock.release(), std::logic_error);
}

// ---------------------------------------------------------------- RLock

// Random recursion depth under contention, first level in any mode, deeper
// levels must never block or fail; is_owned() tracks each step; a thread
// that does not hold it cannot release it, even while another holds it.
TEST_P(RLockStress, RandomDepthUnderContention) {
  const int n = threads();
  th::RLock lock;
  long counter = 0;  // guarded by lock
  std::atomic<bool> inside{false};
  std::atomic<long> acquisitions{0}, foreign_release_probes{0};
  st::Failures failures;

  st::run(
      "RLock recursion", n, st::iterations(1'500'000) / n,
      [&](st::Worker& w) {
        std::minstd_rand rng(w.index() + 21);
        long mine = 0;
        while (w.more()) {
          w.note("acquiring the first level");
          bool got = false;
          switch (rng() % 5) {
            case 0:
              got = lock.acquire();
              break;
            case 1:
              got = lock.acquire(false);
              break;
            case 2: {
              const auto t = short_timeout(rng);
              got = lock.acquire(t < us(0) ? us(0) : t);
              break;
            }
            case 3:
              got = lock.try_lock_for(short_timeout(rng));
              break;
            default:
              got = lock.try_lock();
              break;
          }
          if (!got) {
            if (lock.is_owned()) failures.add("is_owned() after a failed acquire");
            if (rng() % 4 == 0) {
              ++foreign_release_probes;
              try {
                lock.release();
                failures.add("release() by a thread that does not hold the RLock succeeded");
              } catch (const std::logic_error&) {
              }
            }
            continue;
          }
          if (!lock.is_owned()) failures.add("is_owned() false after acquire");
          if (inside.exchange(true, std::memory_order_relaxed))
            failures.add("two threads inside the RLock");
          const int depth = 1 + static_cast<int>(rng() % 5);
          w.note("recursing");
          for (int d = 1; d < depth; ++d) {
            bool again = false;
            switch (rng() % 4) {
              case 0:
                again = lock.acquire();
                break;
              case 1:
                again = lock.acquire(false);
                break;
              case 2:
                again = lock.acquire(0s);
                break;
              default:
                again = lock.try_lock();
                break;
            }
            if (!again) failures.add("a recursive acquire by the owner failed");
          }
          ++counter;
          ++mine;
          w.note("unwinding");
          for (int d = 1; d < depth; ++d) {
            lock.release();
            if (!lock.is_owned())
              failures.add("is_owned() false before the last level was released");
          }
          inside.store(false, std::memory_order_relaxed);
          lock.release();
          if (lock.is_owned()) failures.add("is_owned() true after the last release");
        }
        acquisitions += mine;
      },
      [&] { std::fprintf(stderr, "  lock.locked() = %d\n", lock.locked()); });

  EXPECT_TRUE(failures.empty()) << failures.summary();
  EXPECT_EQ(counter, acquisitions.load());
  EXPECT_GT(acquisitions.load(), 0);
  EXPECT_FALSE(lock.locked()) << "the lock word is not back to unlocked";
  EXPECT_FALSE(lock.is_owned());
  EXPECT_THROW(lock.release(), std::logic_error);
  RecordProperty("foreign_release_probes",
                 static_cast<int>(std::min<long>(foreign_release_probes.load(), INT_MAX)));
}

// ---------------------------------------------------------------- Semaphore

int permits_for(int threads) { return 1 + threads / 3; }  // 2->1 4->2 8->3 16->6

// N permits, threads take one or two with every acquire mode and give them
// back with release() or release(n): never more than N held at once, and N
// again at the end.
TEST_P(SemaphoreStress, PermitsConservedAndNeverExceeded) {
  const int n = threads();
  const int permits = permits_for(n);
  th::Semaphore sem(permits);
  std::atomic<int> held{0};
  std::atomic<long> acquisitions{0};
  st::Failures failures;

  st::run(
      "Semaphore permits", n, st::iterations(1'000'000) / n,
      [&](st::Worker& w) {
        std::minstd_rand rng(w.index() + 31);
        while (w.more()) {
          w.note("acquiring a permit");
          bool got = false;
          switch (rng() % 7) {
            case 0:
              got = sem.acquire();
              break;
            case 1:
              got = sem.acquire(false);
              break;
            case 2:
              got = sem.acquire(short_timeout(rng));  // negative: one attempt
              break;
            case 3:
              got = sem.try_lock();
              break;
            case 4:
              got = sem.try_lock_for(short_timeout(rng));
              break;
            case 5:
              got = sem.try_lock_until(Clock::now() + short_timeout(rng));
              break;
            default:
              got = sem.acquire_until(Clock::now() + short_timeout(rng));
              break;
          }
          if (!got) continue;
          int k = 1;
          // A second permit only with a timeout: holding one while blocking
          // for another could deadlock legitimately.
          if (permits > 1 && rng() % 3 == 0) {
            w.note("acquiring a second permit");
            if (sem.acquire(short_timeout(rng, 20))) k = 2;
          }
          const int now_held = held.fetch_add(k) + k;
          if (now_held > permits) {
            failures.add(std::to_string(now_held) + " permits held of " + std::to_string(permits));
          }
          if (sem.value() > permits) failures.add("value() above the initial value");
          held.fetch_sub(k);
          acquisitions += k;
          w.note("releasing");
          if (k == 2 && rng() % 2) {
            sem.release(2);
          } else {
            for (int i = 0; i < k; ++i) sem.release();
          }
        }
      },
      [&] { std::fprintf(stderr, "  sem.value() = %d\n", sem.value()); });

  EXPECT_TRUE(failures.empty()) << failures.summary();
  EXPECT_GT(acquisitions.load(), 0);
  EXPECT_EQ(sem.value(), permits);
  for (int i = 0; i < permits; ++i) EXPECT_TRUE(sem.acquire(false));
  EXPECT_FALSE(sem.acquire(false));
  sem.release(permits);
  EXPECT_EQ(sem.value(), permits);
}

// A Semaphore as a signal, starting at 0: producers release(k), consumers
// acquire. When the producers are done, one poison permit per consumer is
// added; a consumer whose ticket is beyond the real permits leaves. Every
// consumer leaves only if no release was lost: the consumers that block do
// so without a timeout (kHang for some), and the watchdog ends a hang.
TEST_P(SemaphoreStress, SignallingNeverLosesAWakeup) {
  const int n = threads();
  const int producers = std::max(1, n / 2);
  const int consumers = n - producers;
  th::Semaphore sem(0);
  std::atomic<long> released{0}, taken{0};
  std::atomic<long> real_permits{LONG_MAX};
  const long kBacklog = 16L * consumers;
  std::atomic<int> producers_done{0};
  st::Failures failures;

  st::run(
      "Semaphore signalling", n, st::iterations(1'500'000) / producers,
      [&](st::Worker& w) {
        std::minstd_rand rng(w.index() + 41);
        if (w.index() < producers) {
          while (w.more()) {
            // Keep the backlog small, so the consumers block often and the
            // drain after the stress time is short. Pacing, not
            // synchronization.
            if (released.load() - taken.load() > kBacklog) {
              w.note("backlog full: yield");
              std::this_thread::yield();
              continue;
            }
            const int k = 1 + static_cast<int>(rng() % 3);
            released += k;
            w.note("release(k)");
            if (k == 1 && rng() % 2) {
              sem.release();
            } else {
              sem.release(k);
            }
          }
          if (producers_done.fetch_add(1) + 1 == producers) {
            real_permits.store(released.load());
            w.note("releasing the poison permits");
            sem.release(consumers);
          }
          return;
        }
        for (;;) {
          bool got = false;
          switch (rng() % 4) {
            case 0:
            case 1:
              w.note("acquire()");
              got = sem.acquire();
              break;
            case 2:
              w.note("acquire(kHang)");
              got = sem.acquire(st::kHang);
              if (!got) failures.add("acquire(kHang) timed out: a release was lost");
              break;
            default: {
              // Short timed attempts racing the releases, bounded as a whole.
              w.note("acquire(short) loop");
              const auto give_up = Clock::now() + st::kHang;
              while (!(got = sem.acquire(short_timeout(rng, 300))) && Clock::now() < give_up) {
              }
              if (!got) failures.add("short acquires found no permit for kHang");
              break;
            }
          }
          if (!got) continue;
          w.tick();
          const long ticket = taken.fetch_add(1) + 1;
          if (ticket > real_permits.load()) return;  // a poison permit: leave
        }
      },
      [&] {
        std::fprintf(stderr, "  sem.value() = %d, taken = %ld, released = %ld, real = %ld\n",
                     sem.value(), taken.load(), released.load(), real_permits.load());
      });

  EXPECT_TRUE(failures.empty()) << failures.summary();
  EXPECT_EQ(taken.load(), released.load() + consumers);
  EXPECT_EQ(sem.value(), 0);
  EXPECT_FALSE(sem.acquire(false));
}

// ---------------------------------------------------------------- BoundedSemaphore

// Well-behaved holders plus a prober that tries releases that must always
// pass the bound (n > initial value), also through a Semaphore&: each throws
// std::invalid_argument and changes nothing.
TEST_P(BoundedSemaphoreStress, NeverOverReleasedByHolders) {
  const int n = threads();
  const int permits = permits_for(n);
  th::BoundedSemaphore sem(permits);
  std::atomic<int> held{0};
  std::atomic<long> acquisitions{0}, probes{0};
  st::Failures failures;

  st::run(
      "BoundedSemaphore holders", n, st::iterations(300'000) / n,
      [&](st::Worker& w) {
        std::minstd_rand rng(w.index() + 51);
        th::Semaphore& base = sem;
        while (w.more()) {
          if (w.index() == 0 && rng() % 2 == 0) {
            w.note("probing an over-release");
            const int too_many = permits + 1 + static_cast<int>(rng() % 3);
            try {
              if (rng() % 2) {
                sem.release(too_many);
              } else {
                base.release(too_many);
              }
              failures.add("release(" + std::to_string(too_many) + ") passed the bound " +
                           std::to_string(permits));
            } catch (const std::invalid_argument&) {
            }
            ++probes;
            if (sem.value() > permits) failures.add("value() above the bound");
            continue;
          }
          w.note("acquiring");
          bool got = false;
          switch (rng() % 4) {
            case 0:
              got = sem.acquire();
              break;
            case 1:
              got = sem.acquire(false);
              break;
            case 2:
              got = sem.acquire(short_timeout(rng));
              break;
            default:
              got = sem.try_lock_for(short_timeout(rng));
              break;
          }
          if (!got) continue;
          const int now_held = held.fetch_add(1) + 1;
          if (now_held > permits) failures.add(std::to_string(now_held) + " permits held");
          if (sem.value() > permits) failures.add("value() above the bound");
          held.fetch_sub(1);
          ++acquisitions;
          w.note("releasing");
          if (rng() % 2) {
            sem.release();
          } else {
            sem.unlock();
          }
        }
      },
      [&] { std::fprintf(stderr, "  sem.value() = %d\n", sem.value()); });

  EXPECT_TRUE(failures.empty()) << failures.summary();
  EXPECT_GT(acquisitions.load(), 0);
  EXPECT_EQ(sem.value(), permits);
  EXPECT_THROW(sem.release(), std::invalid_argument);
  EXPECT_THROW(sem.unlock(), std::invalid_argument);
  EXPECT_THROW(static_cast<th::Semaphore&>(sem).release(), std::invalid_argument);
  EXPECT_EQ(sem.value(), permits);
}

// Releases racing each other and the acquires, with no discipline: the ones
// that would pass the bound throw and change nothing, so the value stays in
// [0, N] and equals N - acquired + released at the end.
TEST_P(BoundedSemaphoreStress, RacingReleasesNeverPassTheBound) {
  const int n = threads();
  const int permits = permits_for(n);
  th::BoundedSemaphore sem(permits);
  std::atomic<long> acquired{0}, released{0}, refused{0};
  st::Failures failures;

  st::run(
      "BoundedSemaphore racing releases", n, st::iterations(200'000) / n,
      [&](st::Worker& w) {
        std::minstd_rand rng(w.index() + 61);
        while (w.more()) {
          const unsigned op = rng() % 4;
          if (op < 2) {
            w.note("acquiring");
            const bool got = op == 0 || rng() % 4 != 0 ? sem.acquire(false)
                                                       : sem.acquire(short_timeout(rng, 20));
            if (got) ++acquired;
          } else {
            const int k = 1 + static_cast<int>(rng() % 2);
            w.note("releasing");
            try {
              sem.release(k);
              released += k;
            } catch (const std::invalid_argument&) {
              ++refused;
            }
          }
          const int v = sem.value();
          if (v < 0 || v > permits)
            failures.add("value() = " + std::to_string(v) + " outside [0, N]");
        }
      },
      [&] { std::fprintf(stderr, "  sem.value() = %d\n", sem.value()); });

  EXPECT_TRUE(failures.empty()) << failures.summary();
  EXPECT_EQ(sem.value(), permits - acquired.load() + released.load());
  EXPECT_GE(sem.value(), 0);
  EXPECT_LE(sem.value(), permits);
  RecordProperty("refused_releases", static_cast<int>(std::min<long>(refused.load(), INT_MAX)));
}

// ---------------------------------------------------------------- Condition

struct Item {
  int producer;  // -1: a poison pill
  long seq;
};

// What each consumer saw of each producer: a count and a sum of sequence
// numbers, checked against what each producer made.
struct Tally {
  explicit Tally(int producers)
      : count(static_cast<std::size_t>(producers)), sum(static_cast<std::size_t>(producers)) {}
  std::vector<long> count;
  std::vector<long> sum;
};

void expect_every_item_once(const std::vector<long>& produced, const std::vector<Tally>& tallies) {
  for (std::size_t p = 0; p < produced.size(); ++p) {
    long count = 0, sum = 0;
    for (const auto& t : tallies) {
      count += t.count[p];
      sum += t.sum[p];
    }
    const long made = produced[p];
    EXPECT_EQ(count, made) << "items of producer " << p;
    EXPECT_EQ(sum, made * (made - 1) / 2) << "checksum of producer " << p;
  }
}

// The textbook bounded buffer: one Lock, two Conditions, notify() of one
// thread per change. Waits have no timeout (or kHang, which must not
// expire), so a lost wake-up hangs -> watchdog, or fails.
TEST_P(ConditionStress, BoundedBufferNotifyOneLosesNothing) {
  const int n = threads();
  const int producers = std::max(1, n / 2);
  const int consumers = n - producers;
  constexpr std::size_t kCapacity = 2;
  th::Lock lock;
  th::Condition not_full(lock), not_empty(lock);
  std::deque<Item> buffer;  // guarded by lock
  int producers_done = 0;   // guarded by lock
  std::vector<long> produced(static_cast<std::size_t>(producers), 0);
  std::vector<Tally> tallies(static_cast<std::size_t>(consumers), Tally(producers));
  st::Failures failures;

  auto wait_on = [&](th::Condition& cond, std::minstd_rand& rng) {
    if (rng() % 2) {
      cond.wait();
    } else if (!cond.wait(st::kHang)) {
      failures.add("Condition.wait(kHang) timed out: a notify was lost");
    }
  };
  auto put = [&](st::Worker& w, std::minstd_rand& rng, Item item) {
    std::scoped_lock guard(lock);
    w.note("waiting for room");
    while (buffer.size() >= kCapacity) wait_on(not_full, rng);
    buffer.push_back(item);
    not_empty.notify();
  };

  st::run("Condition bounded buffer, notify(1)", n, st::iterations(12'000) / producers,
          [&](st::Worker& w) {
            std::minstd_rand rng(w.index() + 71);
            if (w.index() < producers) {
              long seq = 0;
              while (w.more()) put(w, rng, Item{w.index(), seq++});
              produced[static_cast<std::size_t>(w.index())] = seq;
              bool last = false;
              {
                std::scoped_lock guard(lock);
                last = ++producers_done == producers;
              }
              if (last) {
                for (int c = 0; c < consumers; ++c) put(w, rng, Item{-1, 0});
              }
              return;
            }
            Tally& tally = tallies[static_cast<std::size_t>(w.index() - producers)];
            std::vector<long> last_seq(static_cast<std::size_t>(producers), -1);
            for (;;) {
              Item item{};
              {
                std::scoped_lock guard(lock);
                w.note("waiting for an item");
                while (buffer.empty()) wait_on(not_empty, rng);
                item = buffer.front();
                buffer.pop_front();
                not_full.notify();
              }
              w.tick();
              if (item.producer < 0) return;
              auto& last = last_seq[static_cast<std::size_t>(item.producer)];
              if (item.seq <= last) failures.add("items of one producer out of order");
              last = item.seq;
              ++tally.count[static_cast<std::size_t>(item.producer)];
              tally.sum[static_cast<std::size_t>(item.producer)] += item.seq;
            }
          });

  EXPECT_TRUE(failures.empty()) << failures.summary();
  EXPECT_TRUE(buffer.empty());
  EXPECT_FALSE(lock.locked());
  expect_every_item_once(produced, tallies);
}

// Everyone on one Condition (its own RLock, sometimes held twice), timed
// waits from zero to 2 ms racing notify(1), notify(2), notify(n) and
// notify_all(). Under the lock the test keeps the books: a ticket per wait,
// in the order the waits began, and which tickets each notify chose (the
// longest waiting). A wait returns true exactly when its ticket was chosen:
// no spurious or extra wake-up, and no notify lost to a timeout expiring at
// the same moment.
TEST_P(ConditionStress, TimedWaitsRacingNotifiesKeepTheBooks) {
  const int n = threads();
  const int producers = std::max(1, n / 2);
  const int consumers = n - producers;
  constexpr std::size_t kCapacity = 2;
  th::Condition cond;
  // All guarded by cond:
  std::deque<Item> buffer;
  int producers_done = 0;
  long next_ticket = 0;
  std::deque<long> queued;   // tickets waiting and not chosen, oldest first
  std::vector<long> chosen;  // tickets chosen by a notify, not yet returned
  long chosen_total = 0, woken_total = 0, timeouts = 0;
  std::vector<long> produced(static_cast<std::size_t>(producers), 0);
  std::vector<Tally> tallies(static_cast<std::size_t>(consumers), Tally(producers));
  st::Failures failures;

  // With cond held.
  auto notify_some = [&](std::minstd_rand& rng) {
    const bool all = rng() % 4 == 0;
    const int m = rng() % 3 == 0 ? n : 1 + static_cast<int>(rng() % 2);
    const std::size_t k = all ? queued.size() : std::min<std::size_t>(m, queued.size());
    chosen.insert(chosen.end(), queued.begin(), queued.begin() + static_cast<long>(k));
    queued.erase(queued.begin(), queued.begin() + static_cast<long>(k));
    chosen_total += static_cast<long>(k);
    if (all) {
      cond.notify_all();
    } else {
      cond.notify(m);
    }
  };
  // With cond held once; sometimes takes it a second time around the wait.
  auto timed_wait = [&](std::minstd_rand& rng) {
    const bool twice = rng() % 4 == 0;
    if (twice) cond.acquire();
    const long ticket = next_ticket++;
    queued.push_back(ticket);
    static constexpr us kTimeouts[] = {us(0), us(20), us(200), us(2000)};
    const bool notified = cond.wait(kTimeouts[rng() % 4]);
    const auto was_chosen = std::find(chosen.begin(), chosen.end(), ticket);
    if (was_chosen != chosen.end()) {
      chosen.erase(was_chosen);
      if (!notified) failures.add("a notified waiter reported a timeout");
    } else {
      queued.erase(std::find(queued.begin(), queued.end(), ticket));
      if (notified) {
        failures.add(
            "wait() returned true but no notify chose it (spurious, too many woken, "
            "or not the longest waiting)");
      }
    }
    if (notified) {
      ++woken_total;
    } else {
      ++timeouts;
    }
    if (twice) cond.release();  // throws if the wait did not restore both levels
  };
  auto put = [&](st::Worker& w, std::minstd_rand& rng, Item item) {
    std::scoped_lock guard(cond);
    w.note("waiting for room");
    while (buffer.size() >= kCapacity) timed_wait(rng);
    buffer.push_back(item);
    notify_some(rng);
  };

  st::run("Condition timed waits and notify(n)", n, st::iterations(8'000) / producers,
          [&](st::Worker& w) {
            std::minstd_rand rng(w.index() + 81);
            if (w.index() < producers) {
              long seq = 0;
              while (w.more()) put(w, rng, Item{w.index(), seq++});
              produced[static_cast<std::size_t>(w.index())] = seq;
              bool last = false;
              {
                std::scoped_lock guard(cond);
                last = ++producers_done == producers;
              }
              if (last) {
                for (int c = 0; c < consumers; ++c) put(w, rng, Item{-1, 0});
              }
              return;
            }
            Tally& tally = tallies[static_cast<std::size_t>(w.index() - producers)];
            std::vector<long> last_seq(static_cast<std::size_t>(producers), -1);
            for (;;) {
              Item item{};
              {
                std::scoped_lock guard(cond);
                w.note("waiting for an item");
                while (buffer.empty()) timed_wait(rng);
                item = buffer.front();
                buffer.pop_front();
                notify_some(rng);
              }
              w.tick();
              if (item.producer < 0) return;
              auto& last = last_seq[static_cast<std::size_t>(item.producer)];
              if (item.seq <= last) failures.add("items of one producer out of order");
              last = item.seq;
              ++tally.count[static_cast<std::size_t>(item.producer)];
              tally.sum[static_cast<std::size_t>(item.producer)] += item.seq;
            }
          });

  EXPECT_TRUE(failures.empty()) << failures.summary();
  EXPECT_TRUE(queued.empty());
  EXPECT_TRUE(chosen.empty()) << "notified waiters that never returned";
  EXPECT_EQ(woken_total, chosen_total);
  EXPECT_TRUE(buffer.empty());
  EXPECT_FALSE(cond.locked());
  expect_every_item_once(produced, tallies);
  RecordProperty("timeouts", static_cast<int>(std::min<long>(timeouts, INT_MAX)));
}

// Rounds of: k waiters wait (holding an RLock 1-3 levels deep), the
// notifier calls notify(j) for j in [0, k+1] or notify_all(), and exactly
// min(j, k) wake -- the ones that waited longest. Each waiter counts itself
// under the lock; the round ends when all k wait again, so an extra wake-up
// shows as an extra count.
TEST_P(ConditionStress, NotifyNWakesExactlyNLongestWaiting) {
  const int n = threads();
  const int k = n - 1;
  th::RLock lock;
  th::Condition cond(lock);  // the waiters wait here
  th::Condition done(lock);  // the notifier waits here for the waiters
  // All guarded by lock:
  int waiting = 0;
  bool leave = false;
  long next_ticket = 0;
  std::deque<long> queue;             // tickets of the waiters, in the order they began to wait
  std::vector<long> woken, expected;  // tickets woken this round, tickets that should be
  long rounds = 0;
  st::Failures failures;

  auto check_round = [&] {
    std::vector<long> got = woken;
    std::sort(got.begin(), got.end());
    if (got != expected) {
      failures.add("round " + std::to_string(rounds) + ": expected " +
                   std::to_string(expected.size()) + " woken (the longest waiting), got " +
                   std::to_string(got.size()) +
                   (got.size() == expected.size() ? " but not the longest waiting" : ""));
    }
    woken.clear();
    expected.clear();
  };

  // Every waiter the last notify chose has counted itself and waits again.
  auto round_over = [&] { return waiting == k && woken.size() >= expected.size(); };

  st::run(
      "Condition notify(n) exactness", n, st::iterations(12'000) / k,
      [&](st::Worker& w) {
        std::minstd_rand rng(w.index() + 91);
        if (w.index() == 0) {  // the notifier
          std::scoped_lock guard(lock);
          while (w.more()) {
            w.note("waiting for every waiter to wait");
            if (!done.wait_for(round_over, st::kHang)) {
              failures.add("the waiters did not all come back within kHang");
              break;
            }
            check_round();
            ++rounds;
            const int j = static_cast<int>(rng() % static_cast<unsigned>(k + 2));
            const bool all = rng() % 8 == 0;
            const int wake = all ? k : std::min(j, k);
            expected.assign(queue.begin(), queue.begin() + wake);
            std::sort(expected.begin(), expected.end());
            w.note("notifying");
            if (all) {
              cond.notify_all();
            } else {
              cond.notify(j);
            }
          }
          if (done.wait_for(round_over, st::kHang)) check_round();
          leave = true;
          cond.notify_all();
          return;
        }
        const int depth = 1 + static_cast<int>(rng() % 3);
        for (int d = 0; d < depth; ++d) lock.acquire();
        while (!leave) {
          const long ticket = next_ticket++;
          queue.push_back(ticket);
          ++waiting;
          done.notify();
          w.note("waiting");
          if (rng() % 2) {
            cond.wait();
          } else if (!cond.wait(st::kHang)) {
            failures.add("wait(kHang) timed out: a notify was lost");
          }
          w.tick();
          if (!lock.is_owned()) failures.add("the RLock is not owned after wait()");
          --waiting;
          queue.erase(std::find(queue.begin(), queue.end(), ticket));
          if (!leave) woken.push_back(ticket);
        }
        for (int d = 0; d < depth; ++d) {
          if (!lock.is_owned()) failures.add("wait() did not restore every level of the RLock");
          lock.release();  // throws if a level is missing
        }
      },
      [&] { std::fprintf(stderr, "  lock.locked() = %d\n", lock.locked()); });

  EXPECT_TRUE(failures.empty()) << failures.summary();
  EXPECT_GT(rounds, 0);
  EXPECT_EQ(waiting, 0);
  EXPECT_FALSE(lock.locked());
}

// ---------------------------------------------------------------- Event

// Pairs of threads bat a value back and forth through two Events for many
// rounds. The value is plain data: set() must publish it to the waiter. A
// lost wake-up hangs (watchdog) or times out after kHang (failure).
TEST_P(EventStress, PingPongNeverLosesAWakeup) {
  const int pairs = std::max(1, threads() / 2);
  struct Pair {
    th::Event ping, pong;
    long ball = 0;  // published by set(), read after wait()
    long rounds = 0;
  };
  std::vector<std::unique_ptr<Pair>> table;
  for (int p = 0; p < pairs; ++p) table.push_back(std::make_unique<Pair>());
  st::Failures failures;

  auto wait_on = [&](th::Event& ev, std::minstd_rand& rng) {
    if (rng() % 2) {
      if (!ev.wait()) failures.add("Event.wait() returned false");
    } else if (!ev.wait(st::kHang)) {
      failures.add("Event.wait(kHang) timed out: a set() was lost");
    }
  };

  st::run("Event ping-pong", 2 * pairs, st::iterations(30'000) / pairs, [&](st::Worker& w) {
    Pair& p = *table[static_cast<std::size_t>(w.index() / 2)];
    std::minstd_rand rng(w.index() + 101);
    if (w.index() % 2 == 0) {
      for (long r = 1; w.more(); ++r) {
        p.ball = r;
        w.note("A: set ping, wait pong");
        p.ping.set();
        wait_on(p.pong, rng);
        if (p.ball != -r) failures.add("A saw a wrong reply");
        p.pong.clear();
        ++p.rounds;
      }
      p.ball = 0;  // quit
      p.ping.set();
    } else {
      for (;;) {
        w.note("B: wait ping");
        wait_on(p.ping, rng);
        const long b = p.ball;
        p.ping.clear();
        if (b == 0) return;
        p.ball = -b;
        w.tick();
        p.pong.set();
      }
    }
  });

  EXPECT_TRUE(failures.empty()) << failures.summary();
  for (const auto& p : table) EXPECT_GT(p->rounds, 0);
}

// Storm threads set() and clear() at random (also twice in a row) while
// waiters wait with short timeouts: a wait that reports a timeout must have
// lasted its timeout. Then the storm stops with the flag clear, every waiter
// waits without a timeout, and the last to arrive sets it: all must wake.
TEST_P(EventStress, SetClearStormThenEveryWaiterWakes) {
  const int n = threads();
  const int storms = std::max(1, n / 4);
  const int waiters = n - storms;
  th::Event ev;
  std::atomic<int> storms_done{0}, arrived{0};
  std::atomic<bool> storm_over{false};
  std::atomic<long> true_results{0}, false_results{0};
  // The storm lasts until the waiters have waited this often (or the time is up).
  const long target_waits = st::iterations(200'000);
  st::Failures failures;

  st::run(
      "Event set/clear storm", n, LONG_MAX,
      [&](st::Worker& w) {
        std::minstd_rand rng(w.index() + 111);
        if (w.index() < storms) {
          while (w.more() && true_results.load(std::memory_order_relaxed) +
                                     false_results.load(std::memory_order_relaxed) <
                                 target_waits) {
            w.note("storming");
            switch (rng() % 5) {
              case 0:
              case 1:
                ev.set();
                break;
              case 2:
              case 3:
                ev.clear();
                break;
              default:
                ev.set();
                ev.set();
                ev.clear();
                ev.clear();
                break;
            }
          }
          if (storms_done.fetch_add(1) + 1 == storms) {
            ev.clear();
            storm_over.store(true);
          }
          return;
        }
        while (!storm_over.load()) {
          static constexpr us kTimeouts[] = {us(-1), us(0), us(10), us(100), us(1000)};
          const us timeout = kTimeouts[rng() % 5];
          w.note("timed wait in the storm");
          const auto start = Clock::now();
          const bool r = ev.wait(timeout);
          w.tick();
          if (r) {
            ++true_results;
          } else {
            ++false_results;
            if (Clock::now() - start < timeout) failures.add("wait() reported a timeout too early");
          }
        }
        if (arrived.fetch_add(1) + 1 == waiters) {
          w.note("the last waiter: set()");
          if (ev.is_set()) failures.add("is_set() after the storm ended with clear()");
          ev.set();
        }
        w.note("final wait()");
        if (!ev.wait()) failures.add("wait() returned false");
      },
      [&] {
        std::fprintf(stderr, "  ev.is_set() = %d, arrived = %d of %d\n", ev.is_set(),
                     arrived.load(), waiters);
      });

  EXPECT_TRUE(failures.empty()) << failures.summary();
  EXPECT_TRUE(ev.is_set());
  EXPECT_TRUE(ev.wait(0s));
  ev.clear();
  EXPECT_FALSE(ev.is_set());
  EXPECT_FALSE(ev.wait(0s));
  RecordProperty("true_results", static_cast<int>(std::min<long>(true_results.load(), INT_MAX)));
  RecordProperty("false_results", static_cast<int>(std::min<long>(false_results.load(), INT_MAX)));
}

// ---------------------------------------------------------------- Barrier

// parties = threads, many cycles: the action runs once per cycle after all
// parties arrived and before any leaves; each thread sees the generation its
// own cycle count predicts; the indices of a cycle are distinct. The action
// decides when all stop, so they stop in the same cycle.
TEST_P(BarrierStress, CyclesInStepWithDistinctIndices) {
  const int parties = threads();
  const long max_cycles = st::iterations(12'000) / parties + 1;
  std::atomic<long> arrived{0};
  long generation = 0;  // written by the action only
  bool stop = false;    // likewise
  std::vector<std::atomic<std::uint32_t>> seen(static_cast<std::size_t>(max_cycles) + 1);
  st::Failures failures;
  st::Budget budget(max_cycles);
  th::Barrier barrier(parties, [&] {
    if (arrived.load() != (generation + 1) * parties) failures.add("action ran before all arrived");
    ++generation;
    stop = !budget.more(generation);
  });

  st::run(
      "Barrier cycles", parties, max_cycles,
      [&](st::Worker& w) {
        for (long cycle = 0;; ++cycle) {
          arrived.fetch_add(1);
          int index = -1;
          w.note("waiting at the barrier");
          try {
            index = cycle % 2 ? barrier.wait() : barrier.wait(st::kHang);
          } catch (const concur::BrokenBarrierError&) {
            failures.add("BrokenBarrierError in a barrier nobody breaks (a wait hit kHang?)");
            return;
          }
          w.tick();
          if (generation != cycle + 1) {
            failures.add("cycle " + std::to_string(cycle) + " saw generation " +
                         std::to_string(generation));
          }
          if (index < 0 || index >= parties) {
            failures.add("index " + std::to_string(index) + " out of range");
          } else {
            const std::uint32_t bit = 1u << index;
            if (seen[static_cast<std::size_t>(cycle)].fetch_or(bit) & bit) {
              failures.add("index " + std::to_string(index) + " twice in cycle " +
                           std::to_string(cycle));
            }
          }
          if (stop) return;
        }
      },
      [&] {
        std::fprintf(stderr, "  barrier: n_waiting = %d, broken = %d\n", barrier.n_waiting(),
                     barrier.broken());
      });

  EXPECT_TRUE(failures.empty()) << failures.summary();
  EXPECT_GT(generation, 0);
  const std::uint32_t all = parties == 32 ? ~0u : (1u << parties) - 1;
  for (long c = 0; c < generation; ++c) {
    ASSERT_EQ(seen[static_cast<std::size_t>(c)].load(), all) << "indices of cycle " << c;
  }
  EXPECT_EQ(seen[static_cast<std::size_t>(generation)].load(), 0u);
  EXPECT_EQ(barrier.n_waiting(), 0);
  EXPECT_FALSE(barrier.broken());
}

// Twice as many threads as parties, passing a number of times in all that
// is a multiple of parties: the barrier must group them parties at a time,
// so the action runs passes / parties times and every index is handed out
// once per cycle.
TEST_P(BarrierStress, MoreThreadsThanPartiesGroupExactly) {
  const int n = threads();
  const int parties = std::max(1, n / 2);
  // Exactly `total` waits start, a multiple of parties, so every waiter
  // finds a full cycle. (A fixed count per thread could leave one thread
  // alone with waits to do: a legitimate hang.)
  std::mutex tickets_mutex;  // std::, not under test
  long limit = (st::iterations(5'000) / parties + 1) * parties;
  long issued = 0;
  const st::Budget budget(limit);
  long actions = 0;  // written by the action only
  std::vector<std::atomic<long>> per_index(static_cast<std::size_t>(parties));
  st::Failures failures;
  th::Barrier barrier(parties, [&] { ++actions; });

  // A ticket per wait; when the time is up, the limit drops to the next
  // multiple of parties, so the cycle being filled still fills.
  auto take_ticket = [&] {
    std::scoped_lock guard(tickets_mutex);
    if (!budget.more(issued)) limit = std::min(limit, (issued + parties - 1) / parties * parties);
    if (issued >= limit) return false;
    ++issued;
    return true;
  };

  st::run(
      "Barrier oversubscribed", n, LONG_MAX,
      [&](st::Worker& w) {
        std::minstd_rand rng(w.index() + 121);
        while (take_ticket()) {
          w.note("waiting at the barrier");
          int index = -1;
          try {
            index = rng() % 2 ? barrier.wait() : barrier.wait(st::kHang);
          } catch (const concur::BrokenBarrierError&) {
            failures.add("BrokenBarrierError in a barrier nobody breaks (a wait hit kHang?)");
            return;
          }
          w.tick();
          if (index < 0 || index >= parties) {
            failures.add("index " + std::to_string(index) + " out of range");
          } else {
            ++per_index[static_cast<std::size_t>(index)];
          }
        }
      },
      [&] {
        std::fprintf(stderr, "  barrier: n_waiting = %d, broken = %d\n", barrier.n_waiting(),
                     barrier.broken());
      });

  EXPECT_TRUE(failures.empty()) << failures.summary();
  EXPECT_EQ(issued % parties, 0);
  const long cycles = issued / parties;
  EXPECT_EQ(actions, cycles);
  for (int i = 0; i < parties; ++i) {
    EXPECT_EQ(per_index[static_cast<std::size_t>(i)].load(), cycles) << "index " << i;
  }
  EXPECT_EQ(barrier.n_waiting(), 0);
  EXPECT_FALSE(barrier.broken());
}

// A chaos thread calls abort() and reset() at random while the parties wait
// with timeouts of every kind; waits end by returning or with
// BrokenBarrierError, never hang. The last arrival of a completed cycle runs
// the action and returns parties-1, so that index is returned exactly once
// per action. Afterwards reset() leaves a barrier that works for full cycles.
TEST_P(BarrierStress, AbortAndResetRacingWaitersEndUsable) {
  const int parties = threads();
  long actions = 0;      // written by the action only
  th::Event cycle_done;  // set by the action: ends the chaos thread's quiet spells
  std::vector<std::atomic<long>> per_index(static_cast<std::size_t>(parties));
  std::atomic<long> broken_waits{0};
  std::atomic<bool> ending{false};
  // Bumped after each repair, so a waiter that found the barrier broken
  // blocks until then instead of spinning on exceptions (std::, not under test).
  std::mutex repair_mutex;
  std::condition_variable repaired;
  long repairs = 0;
  st::Failures failures;
  th::Barrier barrier(parties, [&] {
    ++actions;
    cycle_done.set();
  });
  auto repair = [&] {
    barrier.reset();
    std::scoped_lock guard(repair_mutex);
    ++repairs;
    repaired.notify_all();
  };

  st::run(
      "Barrier abort/reset race", parties + 1, st::iterations(2'500),
      [&](st::Worker& w) {
        std::minstd_rand rng(w.index() + 131);
        if (w.index() == parties) {  // chaos
          // Pacing, not synchronization: a short spin between the blows.
          auto pace = [&] {
            for (unsigned i = rng() % 512; i > 0; --i) concur::detail::cpu_relax();
          };
          while (w.more()) {
            w.note("chaos");
            switch (rng() % 4) {
              case 0:  // a broken spell: waits fail at once until the repair
                barrier.abort();
                pace();
                repair();
                break;
              case 1:  // breaks whoever waits now
                repair();
                break;
              case 2:
                (void)barrier.n_waiting();
                (void)barrier.broken();
                break;
              default:  // a quiet spell: give a cycle up to 2 ms to complete
                w.note("chaos: quiet spell");
                cycle_done.clear();
                (void)cycle_done.wait(2ms);
                break;
            }
            pace();
          }
          ending.store(true);
          w.note("final abort");
          barrier.abort();  // everyone still waiting, or about to, gets BrokenBarrierError
          std::scoped_lock guard(repair_mutex);
          repaired.notify_all();
          return;
        }
        while (!ending.load()) {
          w.note("waiting at the barrier");
          try {
            // A short or zero timeout breaks the barrier, so they are rare
            // enough (about one in 8 cycles) for most cycles to complete.
            const unsigned pick = rng() % static_cast<unsigned>(8 * parties);
            int index = -1;
            if (pick == 0) {
              index = barrier.wait(us(0));
            } else if (pick == 1) {
              index = barrier.wait(us(rng() % 2000));
            } else if (pick % 2) {
              index = barrier.wait();
            } else {
              index = barrier.wait(st::kHang);
            }
            if (index < 0 || index >= parties) {
              failures.add("index " + std::to_string(index) + " out of range");
            } else {
              ++per_index[static_cast<std::size_t>(index)];
            }
          } catch (const concur::BrokenBarrierError&) {
            ++broken_waits;
            w.note("waiting for a repair");
            std::unique_lock guard(repair_mutex);
            const long seen = repairs;
            repaired.wait_for(guard, st::kHang, [&] {
              return repairs != seen || !barrier.broken() || ending.load();
            });
          }
          w.tick();
        }
      },
      [&] {
        std::fprintf(stderr, "  barrier: n_waiting = %d, broken = %d\n", barrier.n_waiting(),
                     barrier.broken());
      });

  EXPECT_TRUE(failures.empty()) << failures.summary();
  EXPECT_EQ(per_index[static_cast<std::size_t>(parties - 1)].load(), actions)
      << "the thread that runs the action returns parties-1";
  for (int i = 0; i < parties; ++i) {
    EXPECT_LE(per_index[static_cast<std::size_t>(i)].load(), actions);
  }
  RecordProperty("completed_cycles", static_cast<int>(std::min<long>(actions, INT_MAX)));
  RecordProperty("broken_waits", static_cast<int>(std::min<long>(broken_waits.load(), INT_MAX)));

  // Usable again: reset, then full cycles with the action.
  barrier.reset();
  EXPECT_FALSE(barrier.broken());
  EXPECT_EQ(barrier.n_waiting(), 0);
  const long before = actions;
  constexpr int kCycles = 3;
  std::vector<std::atomic<std::uint32_t>> seen(kCycles);
  st::run("Barrier after the race", parties, kCycles, [&](st::Worker& w) {
    for (int c = 0; c < kCycles; ++c) {
      w.note("waiting at the reset barrier");
      const int index = barrier.wait(st::kHang);
      w.tick();
      if (index < 0 || index >= parties) {
        failures.add("index out of range after reset");
      } else if (seen[static_cast<std::size_t>(c)].fetch_or(1u << index) & (1u << index)) {
        failures.add("index twice in a cycle after reset");
      }
    }
  });
  EXPECT_TRUE(failures.empty()) << failures.summary();
  EXPECT_EQ(actions, before + kCycles);
  const std::uint32_t all = (1u << parties) - 1;
  for (int c = 0; c < kCycles; ++c) EXPECT_EQ(seen[static_cast<std::size_t>(c)].load(), all);
  EXPECT_FALSE(barrier.broken());
  EXPECT_EQ(barrier.n_waiting(), 0);
}

}  // namespace
