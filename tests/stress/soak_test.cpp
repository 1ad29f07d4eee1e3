// Soak: every primitive and both pools at once, across threads and
// processes, under random timing, for a bounded time (CONCUR_SOAK_SECONDS,
// 20 s by default, which is what scripts/test.sh runs in every build),
// checking invariants all along: no item lost, none duplicated, no counter
// off, no deadlock. A watchdog fails the run, after printing where every
// thread of this process is blocked, if no activity makes progress for 10 s.
//
// The activities, each in its own thread here (numbered as below):
//   every build: 2 Lock/RLock/Semaphore counters, 3 a Condition buffer,
//     6 Events and Timers, 9 a BoundedSemaphore, and under a sanitizer the
//     ThreadPool half of 4;
//   release build (they fork): 1 a Queue from a producer process, 4 Pool
//     and ThreadPool maps, 5 a Barrier with a child, 7 a Pipe and a Value,
//     8 a JoinableQueue with consumer processes and an Array, 10 named
//     SharedMemory, 11 mp::Lock, RLock, BoundedSemaphore, Condition and
//     Event shared with a child.
// The watchdog covers every wait. Those of activities 8 to 11 (and the
// acquires of 2) are bounded by kBound too: a wait that times out is a
// failure, and its activity ends cleanly (children killed and reaped, with
// bounds).
#include <gtest/gtest.h>
#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <fstream>
#include <functional>
#include <memory>
#include <numeric>
#include <random>
#include <span>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "concur/concur.hpp"
#include "multiprocessing/hygiene.hpp"
#include "test_support.hpp"

namespace {

namespace th = concur::threading;
namespace mp = concur::multiprocessing;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// The bound of every wait that a correct library always ends well before.
constexpr auto kBound = std::chrono::seconds(10);

int soak_seconds() {
  const char* text = std::getenv("CONCUR_SOAK_SECONDS");
  const int s = text != nullptr ? std::atoi(text) : 20;
  return s > 0 ? s : 20;
}

// Random jitter between operations: a short busy spin or a yield.
class Jitter {
 public:
  explicit Jitter(unsigned seed) : rng_(seed) {}
  void operator()() {
    const unsigned r = rng_() % 64;
    if (r < 8) {
      sched_yield();
    } else if (r < 16) {
      const auto until = Clock::now() + std::chrono::microseconds(rng_() % 50);
      while (Clock::now() < until) {
      }
    }
  }
  unsigned next(unsigned bound) { return rng_() % bound; }

 private:
  std::mt19937 rng_;
};

struct Soak {
  std::atomic<bool> stop{false};
  th::Event stopped;  // set with stop, for the activities that only wait for it
  std::atomic<long> progress{0};
  std::atomic<int> failures{0};
  std::vector<std::string> notes;
  th::Lock notes_lock;

  void fail(const std::string& what) {
    std::scoped_lock guard(notes_lock);
    notes.push_back(what);
    failures.fetch_add(1);
  }
  void tick() { progress.fetch_add(1, std::memory_order_relaxed); }
};

// Where each thread of this process is blocked: /proc/self/task/*/{comm,wchan,stat}.
void dump_threads() {
  std::fprintf(stderr, "soak watchdog: no progress; the threads of pid %d:\n", static_cast<int>(::getpid()));
  const auto tasks = concur::testing::list_dir("/proc/self/task");
  for (const auto& tid : tasks) {
    std::ifstream comm("/proc/self/task/" + tid + "/comm");
    std::ifstream wchan("/proc/self/task/" + tid + "/wchan");
    std::ifstream stat("/proc/self/task/" + tid + "/stat");
    std::string c, w, st;
    std::getline(comm, c);
    std::getline(wchan, w);
    std::getline(stat, st);
    const auto close = st.rfind(')');
    const char state = close != std::string::npos && close + 2 < st.size() ? st[close + 2] : '?';
    std::fprintf(stderr, "  tid %s (%s): state %c, waiting in %s\n", tid.c_str(), c.c_str(), state,
                 w.empty() ? "-" : w.c_str());
  }
}

// One increment of counters[which] under the lock that guards it: a Lock
// (0), an RLock taken twice (1) or a Semaphore(1) (2), of either module.
// Every acquire is bounded; false when one timed out.
template <class L, class R, class S>
bool increment_under(unsigned which, L& lock, R& rlock, S& sem, long* counters) {
  switch (which) {
    case 0: {
      std::unique_lock guard(lock, kBound);
      if (!guard) return false;
      ++counters[0];
      return true;
    }
    case 1: {
      std::unique_lock outer(rlock, kBound);
      if (!outer) return false;
      std::unique_lock inner(rlock, kBound);
      if (!inner) return false;
      ++counters[1];
      return true;
    }
    default: {
      if (!sem.acquire(kBound)) return false;
      ++counters[2];
      sem.release();
      return true;
    }
  }
}

// Waits, bounded, for a child to end; one that does not is reported, killed
// and reaped. True when it ended on its own with exit code 0.
[[maybe_unused]] bool end_child(Soak& soak, mp::Process& child, const std::string& what) {
  if (!child.join(kBound)) {
    soak.fail(what + ": a child did not end within 10 s");
    child.kill();
    child.join(kBound);
    return false;
  }
  if (child.exitcode() != 0) {
    soak.fail(what + ": a child ended with " + std::to_string(child.exitcode().value_or(-1)));
    return false;
  }
  return true;
}

// Activity 1: a producer process puts numbered items into a Queue; two
// consumer threads here take them; every number arrives exactly once.
[[maybe_unused]] void queue_pipeline(Soak& soak, unsigned seed) {
  mp::Queue<std::pair<long, long>> q(64);
  mp::Event producer_stop;
  auto produced = mp::Value<long>(0);
  mp::Process producer(mp::ProcessOptions{"soak-producer", true}, [q, producer_stop, produced, seed]() mutable {
    Jitter jitter(seed);
    long n = 0;
    while (!producer_stop.is_set()) {
      try {
        q.put({n, n * 7 + 3}, true);
      } catch (...) {
        return;
      }
      ++n;
      produced.value() = n;
      jitter();
    }
    q.put({-1, 0});
    q.put({-1, 0});
  });
  producer.start();
  std::vector<std::vector<char>> seen(2);
  std::vector<std::thread> consumers;
  consumers.reserve(2);
  for (int c = 0; c < 2; ++c) {
    consumers.emplace_back([&, c] {
      Jitter jitter(seed + 17 + static_cast<unsigned>(c));
      for (;;) {
        const auto [n, check] = q.get();
        if (n < 0) return;
        if (check != n * 7 + 3) soak.fail("queue: item " + std::to_string(n) + " corrupt");
        auto& mine = seen[static_cast<std::size_t>(c)];
        if (mine.size() <= static_cast<std::size_t>(n)) mine.resize(static_cast<std::size_t>(n) + 1, 0);
        mine[static_cast<std::size_t>(n)]++;
        soak.tick();
        jitter();
      }
    });
  }
  soak.stopped.wait();
  producer_stop.set();
  for (auto& t : consumers) t.join();
  producer.join();
  const long total = produced.value();
  for (long n = 0; n < total; ++n) {
    int count = 0;
    for (const auto& mine : seen) count += static_cast<std::size_t>(n) < mine.size() ? mine[static_cast<std::size_t>(n)] : 0;
    if (count != 1) {
      soak.fail("queue: item " + std::to_string(n) + " arrived " + std::to_string(count) + " times");
      break;
    }
  }
  if (producer.exitcode() != 0) soak.fail("queue: the producer ended with " + std::to_string(producer.exitcode().value_or(-1)));
}

// Activity 2: threads increment three counters, each under its own lock:
// a Lock, an RLock taken twice, and a Semaphore(1); each counter equals the
// increments made under its lock.
void lock_counters(Soak& soak, unsigned seed) {
  th::Lock lock;
  th::RLock rlock;
  th::Semaphore sem(1);
  long counters[3] = {0, 0, 0};
  std::atomic<long> increments[3] = {0, 0, 0};
  std::vector<std::thread> threads;
  threads.reserve(4);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      Jitter jitter(seed + static_cast<unsigned>(t));
      while (!soak.stop.load(std::memory_order_relaxed)) {
        const unsigned which = jitter.next(3);
        if (!increment_under(which, lock, rlock, sem, counters)) {
          soak.fail("lock counters: an acquire waited 10 s");
          return;
        }
        increments[which].fetch_add(1, std::memory_order_relaxed);
        soak.tick();
        jitter();
      }
    });
  }
  for (auto& t : threads) t.join();
  const char* names[3] = {"Lock", "RLock", "Semaphore"};
  for (int i = 0; i < 3; ++i) {
    if (counters[i] != increments[i].load()) {
      soak.fail(std::string(names[i]) + ": counter " + std::to_string(counters[i]) + " != " +
                std::to_string(increments[i].load()));
    }
  }
}

// Activity 3: a bounded buffer on a Condition, two producers, two consumers;
// the consumed sum equals the produced sum.
void condition_buffer(Soak& soak, unsigned seed) {
  th::Condition cv;
  std::deque<long> buffer;
  bool producers_done = false;
  std::atomic<long> produced_sum{0}, consumed_sum{0};
  std::vector<std::thread> producers, consumers;
  producers.reserve(2);
  consumers.reserve(2);
  for (int p = 0; p < 2; ++p) {
    producers.emplace_back([&, p] {
      Jitter jitter(seed + 100 + static_cast<unsigned>(p));
      for (long n = 1; !soak.stop.load(std::memory_order_relaxed); ++n) {
        std::scoped_lock guard(cv);
        if (!cv.wait_for([&] { return buffer.size() < 16; }, std::chrono::seconds(5))) {
          soak.fail("condition: producer waited 5 s for room");
          return;
        }
        buffer.push_back(n);
        produced_sum += n;
        cv.notify_all();
        soak.tick();
        jitter();
      }
    });
  }
  for (int c = 0; c < 2; ++c) {
    consumers.emplace_back([&, c] {
      Jitter jitter(seed + 200 + static_cast<unsigned>(c));
      for (;;) {
        std::scoped_lock guard(cv);
        cv.wait_for([&] { return !buffer.empty() || producers_done; });
        if (buffer.empty()) return;
        consumed_sum += buffer.front();
        buffer.pop_front();
        cv.notify_all();
        jitter();
      }
    });
  }
  for (auto& t : producers) t.join();
  {
    std::scoped_lock guard(cv);
    producers_done = true;
    cv.notify_all();
  }
  for (auto& t : consumers) t.join();
  if (produced_sum != consumed_sum) soak.fail("condition: produced " + std::to_string(produced_sum.load()) + ", consumed " + std::to_string(consumed_sum.load()));
}

// Activity 4: process Pool maps and ThreadPool maps of random sizes, with a
// worker that sometimes kills itself (WorkerLostError at exactly that item).
[[maybe_unused]] void pools(Soak& soak, unsigned seed) {
  Jitter jitter(seed);
  mp::Pool pool(2);
  mp::ThreadPool threads(3);
  while (!soak.stop.load(std::memory_order_relaxed)) {
    const int n = static_cast<int>(jitter.next(2000)) + 1;
    std::vector<int> items(static_cast<std::size_t>(n));
    std::iota(items.begin(), items.end(), 0);
    const int victim = jitter.next(8) == 0 ? static_cast<int>(jitter.next(static_cast<unsigned>(n))) : -1;
    try {
      const auto out = pool.map(
          [victim](int x) {
            if (x == victim) ::raise(SIGKILL);
            return x * 3;
          },
          items, jitter.next(4) == 0 ? 1 : 0);
      if (victim >= 0) soak.fail("pool: the killed worker's item did not fail");
      for (int i = 0; i < n; ++i) {
        if (out[static_cast<std::size_t>(i)] != i * 3) {
          soak.fail("pool: wrong result at " + std::to_string(i));
          break;
        }
      }
    } catch (const mp::WorkerLostError& e) {
      if (static_cast<int>(e.index()) != victim) soak.fail("pool: WorkerLostError at " + std::to_string(e.index()) + ", expected " + std::to_string(victim));
    }
    soak.tick();
    auto r = threads.map_async([](int x) { return x + 1; }, items);
    const auto out = r.get(std::chrono::seconds(10));
    if (out.back() != n) soak.fail("threadpool: wrong result");
    soak.tick();
    jitter();
  }
}

// Activity 4, under ThreadSanitizer: the ThreadPool part of `pools`.
[[maybe_unused]] void thread_pool_only(Soak& soak, unsigned seed) {
  Jitter jitter(seed);
  mp::ThreadPool threads(3);
  while (!soak.stop.load(std::memory_order_relaxed)) {
    const int n = static_cast<int>(jitter.next(2000)) + 1;
    std::vector<int> items(static_cast<std::size_t>(n));
    std::iota(items.begin(), items.end(), 0);
    const auto out = threads.map_async([](int x) { return x + 1; }, items).get(std::chrono::seconds(10));
    if (out.back() != n) soak.fail("threadpool: wrong result");
    soak.tick();
    jitter();
  }
}

// Activity 5: a Barrier shared with a child process, cycle after cycle, with
// an mp::Event to end it.
[[maybe_unused]] void barrier_cycles(Soak& soak) {
  mp::Barrier barrier(2);
  mp::Event done;
  mp::Process child(mp::ProcessOptions{"soak-barrier", true}, [barrier, done]() mutable {
    while (!done.is_set()) {
      try {
        barrier.wait(std::chrono::seconds(10));
      } catch (const concur::BrokenBarrierError&) {
        return;
      }
    }
  });
  child.start();
  while (!soak.stop.load(std::memory_order_relaxed)) {
    try {
      barrier.wait(std::chrono::seconds(10));
    } catch (const concur::BrokenBarrierError&) {
      soak.fail("barrier: broken");
      break;
    }
    soak.tick();
  }
  done.set();
  barrier.abort();
  child.join();
}

// Activity 6: two threads play ping-pong with two Events, strictly in turn;
// now and then a Timer with a random interval sets a third Event, which its
// waiter must see within its bound.
void events_and_timers(Soak& soak, unsigned seed) {
  th::Event ping;
  th::Event pong;
  th::Event fired;
  std::atomic<bool> finish{false};
  long pongs = 0;
  std::thread partner([&] {
    for (;;) {
      if (!ping.wait(std::chrono::seconds(10))) {
        soak.fail("event: a ping was lost");
        return;
      }
      ping.clear();
      if (finish.load()) return;
      ++pongs;
      pong.set();
    }
  });
  Jitter jitter(seed);
  long pings = 0;
  while (!soak.stop.load(std::memory_order_relaxed)) {
    ping.set();
    if (!pong.wait(std::chrono::seconds(10))) {
      soak.fail("event: a pong was lost");
      break;
    }
    pong.clear();
    ++pings;
    if (jitter.next(64) == 0) {
      th::Timer timer(std::chrono::microseconds(jitter.next(2000)), [&fired] { fired.set(); });
      timer.start();
      if (!fired.wait(std::chrono::seconds(10))) soak.fail("timer: it never fired");
      fired.clear();
      if (!timer.join(std::chrono::seconds(10))) soak.fail("timer: its thread did not end");
    }
    soak.tick();
    jitter();
  }
  finish.store(true);
  ping.set();
  partner.join();
  if (pings != pongs) soak.fail("event: " + std::to_string(pings) + " pings, " + std::to_string(pongs) + " pongs");
}

// Activity 7: round trips through a Pipe with a child process that echoes
// each number plus one; both sides count the round trips in a shared Value
// under its lock.
[[maybe_unused]] void pipe_and_value(Soak& soak, unsigned seed) {
  auto [here, there] = mp::Pipe<long>();
  mp::Value<long> trips(0);
  mp::Process child(mp::ProcessOptions{"soak-echo", true}, [there = there, trips]() mutable {
    for (;;) {
      if (!there.poll(std::chrono::seconds(10))) return;
      const long v = there.recv();
      if (v < 0) return;
      {
        std::scoped_lock guard(trips.get_lock());
        ++trips.value();
      }
      there.send(v + 1);
    }
  });
  child.start();
  there.close();  // the child's end, in this process
  Jitter jitter(seed);
  long sent = 0;
  bool broken = false;
  try {
    while (!soak.stop.load(std::memory_order_relaxed)) {
      here.send(sent);
      {
        std::scoped_lock guard(trips.get_lock());
        ++trips.value();
      }
      if (!here.poll(std::chrono::seconds(10)) || here.recv() != sent + 1) {
        soak.fail("pipe: no echo, or a wrong one");
        broken = true;
        break;
      }
      ++sent;
      soak.tick();
      jitter();
    }
    here.send(-1);
  } catch (const std::exception& e) {
    soak.fail(std::string("pipe: ") + e.what());
    broken = true;
    child.kill();
  }
  if (!child.join(std::chrono::seconds(10))) soak.fail("pipe: the echo child did not end");
  std::scoped_lock guard(trips.get_lock());
  if (!broken && trips.value() != 2 * sent) {
    soak.fail("value: " + std::to_string(trips.value()) + " trips counted, " + std::to_string(2 * sent) + " made");
  }
}

// Activity 8: rounds of numbered items go into a JoinableQueue; two consumer
// processes take them, count each in a shared Array and call task_done().
// join() here, bounded (a helper thread sets an Event), returns once the
// round is done, and by then every item of it was counted exactly once: its
// own element and the shared total are raised under the Array's lock, and
// each consumer's own element, which only it writes, without the lock (the
// own elements add up to the total). A task_done() too many is
// std::invalid_argument and changes nothing (the next round's join()).
[[maybe_unused]] void joinable_queue_and_array(Soak& soak, unsigned seed) {
  constexpr std::size_t kMaxRound = 256;
  constexpr std::size_t kTotal = kMaxRound;    // every item counted, under the lock
  constexpr std::size_t kOwn = kMaxRound + 1;  // kOwn + c: consumer c's items, without it
  constexpr int kConsumers = 2;
  mp::JoinableQueue<long> q(32);
  mp::Array<long> counts(kOwn + kConsumers);
  std::vector<std::unique_ptr<mp::Process>> consumers;
  for (int c = 0; c < kConsumers; ++c) {
    const auto own = kOwn + static_cast<std::size_t>(c);
    consumers.push_back(std::make_unique<mp::Process>(
        mp::ProcessOptions{"soak-joinable-" + std::to_string(c), true}, [q, counts, own, seed]() mutable {
          Jitter jitter(seed + static_cast<unsigned>(own));
          for (;;) {
            const long n = q.get(kBound);  // concur::Empty after 10 s: the child fails
            if (n >= 0) {
              {
                std::unique_lock guard(counts.get_lock(), kBound);
                if (!guard) throw std::runtime_error("the Array's lock waited 10 s");
                ++counts[static_cast<std::size_t>(n)];
                ++counts[kTotal];
              }
              ++counts[own];
            }
            q.task_done();
            if (n < 0) return;
            jitter();
          }
        }));
    consumers.back()->start();
  }
  Jitter jitter(seed);
  long total = 0;
  bool healthy = true;
  while (healthy && !soak.stop.load(std::memory_order_relaxed)) {
    const std::size_t n = 1 + jitter.next(kMaxRound);
    for (std::size_t i = 0; i < n && healthy; ++i) {
      try {
        q.put(static_cast<long>(i), kBound);
        soak.tick();
      } catch (const concur::Full&) {
        soak.fail("joinable queue: put waited 10 s for room");
        healthy = false;
      }
    }
    if (!healthy) break;
    th::Event joined;
    std::thread joiner([&] {
      q.join();
      joined.set();
    });
    if (!joined.wait(kBound)) {
      // The consumers go, and task_done() until it refuses lets join() return.
      soak.fail("joinable queue: join() waited 10 s");
      healthy = false;
      for (auto& p : consumers) p->kill();
      for (auto& p : consumers) p->join(kBound);
      for (;;) {
        try {
          q.task_done();
        } catch (const std::invalid_argument&) {
          break;
        }
      }
    }
    joiner.join();
    if (!healthy) break;
    {
      std::unique_lock guard(counts.get_lock(), kBound);
      if (!guard) {
        soak.fail("joinable queue: the Array's lock waited 10 s");
        healthy = false;
        break;
      }
      total += static_cast<long>(n);
      for (std::size_t i = 0; i < n; ++i) {
        if (counts[i] != 1) {
          soak.fail("joinable queue: after join(), item " + std::to_string(i) + " of a round counted " +
                    std::to_string(counts[i]) + " times");
          healthy = false;
          break;
        }
      }
      if (counts[kTotal] != total) {
        soak.fail("array: total " + std::to_string(counts[kTotal]) + ", " + std::to_string(total) + " items");
        healthy = false;
      }
      std::fill(counts.begin(), counts.begin() + static_cast<std::ptrdiff_t>(n), 0L);
    }
    if (jitter.next(8) == 0) {
      try {
        q.task_done();
        soak.fail("joinable queue: a task_done() too many was accepted");
        healthy = false;
      } catch (const std::invalid_argument&) {
      }
    }
    soak.tick();
  }
  // The consumers end on a -1 each, or are killed when something went wrong.
  for (int c = 0; c < kConsumers && healthy; ++c) {
    try {
      q.put(-1, kBound);
    } catch (const concur::Full&) {
      soak.fail("joinable queue: put waited 10 s for room");
      healthy = false;
    }
  }
  for (auto& p : consumers) {
    if (healthy) {
      healthy = end_child(soak, *p, "joinable queue");
    } else {
      p->kill();
      p->join(kBound);
    }
  }
  if (healthy) {
    long own = 0;
    for (int c = 0; c < kConsumers; ++c) own += counts[kOwn + static_cast<std::size_t>(c)];
    if (own != total || counts[kTotal] != total) {
      soak.fail("array: the consumers' own counts add up to " + std::to_string(own) + ", the total is " +
                std::to_string(counts[kTotal]) + ", " + std::to_string(total) + " items were put");
    }
  }
}

// Activity 9: four threads pass through a BoundedSemaphore(2) in rounds;
// never more than two are inside at once (an atomic count of those inside).
// Between rounds, with every thread outside, a release above the bound --
// by release(), through a Semaphore& or by unlock() -- is
// std::invalid_argument and leaves the value at 2. The first failure ends
// the activity (it breaks the round barrier).
void bounded_semaphore(Soak& soak, unsigned seed) {
  constexpr int kPermits = 2;
  constexpr int kThreads = 4;
  th::BoundedSemaphore sem(kPermits);
  th::Barrier rounds(kThreads + 1);  // twice a round: all are outside; the check is done
  std::atomic<int> inside{0};
  std::atomic<bool> finish{false};
  std::atomic<bool> failed{false};
  const auto fail = [&](const std::string& what) {
    soak.fail("bounded semaphore: " + what);
    failed.store(true);
    rounds.abort();
  };
  std::vector<std::thread> threads;
  threads.reserve(kThreads);
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      Jitter jitter(seed + static_cast<unsigned>(t));
      try {
        while (!finish.load()) {
          const unsigned passes = 1 + jitter.next(200);
          for (unsigned p = 0; p < passes && !soak.stop.load(std::memory_order_relaxed); ++p) {
            if (!sem.acquire(kBound)) {
              fail("acquire waited 10 s");
              return;
            }
            const int now = inside.fetch_add(1) + 1;
            jitter();
            inside.fetch_sub(1);
            sem.release();
            if (now > kPermits) {
              fail(std::to_string(now) + " threads inside");
              return;
            }
            soak.tick();
            jitter();
          }
          rounds.wait(kBound);
          rounds.wait(kBound);
        }
      } catch (const concur::BrokenBarrierError&) {
        // A failure, reported by whoever broke the barrier or below.
      }
    });
  }
  try {
    for (unsigned round = 0; !finish.load(); ++round) {
      rounds.wait(kBound);
      const int before = sem.value();
      bool refused = false;
      try {
        if (round % 3 == 0) {
          sem.release();
        } else if (round % 3 == 1) {
          static_cast<th::Semaphore&>(sem).release();
        } else {
          sem.unlock();
        }
      } catch (const std::invalid_argument&) {
        refused = true;
      }
      if (before != kPermits || !refused || sem.value() != kPermits) {
        fail("with every thread outside, value " + std::to_string(before) + ", a release above the bound " +
             (refused ? "refused" : "accepted") + ", value " + std::to_string(sem.value()) + " after it");
        break;
      }
      finish.store(soak.stop.load());
      rounds.wait(kBound);
    }
  } catch (const concur::BrokenBarrierError&) {
    if (!failed.load()) soak.fail("bounded semaphore: a round barrier waited 10 s");
  }
  finish.store(true);
  for (auto& t : threads) t.join();
}

std::byte shm_pattern(std::size_t i, unsigned salt) { return static_cast<std::byte>((i * 131 + salt) & 0xff); }
void fill_pattern(std::span<std::byte> bytes, unsigned salt) {
  for (std::size_t i = 0; i < bytes.size(); ++i) bytes[i] = shm_pattern(i, salt);
}
// The first byte that differs from the pattern; the size if none does.
std::size_t pattern_mismatch(std::span<const std::byte> bytes, unsigned salt) {
  for (std::size_t i = 0; i < bytes.size(); ++i) {
    if (bytes[i] != shm_pattern(i, salt)) return i;
  }
  return bytes.size();
}

// Activity 10: SharedMemory segments of random sizes, named here (half of
// them by the caller, half by SharedMemory itself), to which a child process
// attaches by name: the child finds the size and the pattern written here
// and writes its own, which this process reads back. Then close() and
// unlink(): attaching to the name again is ENOENT, and nothing is left in
// /dev/shm (the hygiene check after the test).
[[maybe_unused]] void shared_memory_segments(Soak& soak, unsigned seed) {
  Jitter jitter(seed);
  const std::string prefix = "concur_soak_" + std::to_string(::getpid()) + "_";
  for (long round = 0; !soak.stop.load(std::memory_order_relaxed); ++round) {
    const std::size_t size = 1 + jitter.next(1U << 18);
    const unsigned salt = jitter.next(256);
    std::unique_ptr<mp::SharedMemory> shm;
    try {
      shm = jitter.next(2) == 0 ? std::make_unique<mp::SharedMemory>(prefix + std::to_string(round), true, size)
                                : std::make_unique<mp::SharedMemory>(size);
    } catch (const std::exception& e) {
      soak.fail(std::string("shared memory: create: ") + e.what());
      return;
    }
    const std::string name = shm->name();
    bool healthy = true;
    try {
      fill_pattern(shm->buf(), salt);
      mp::Process child(mp::ProcessOptions{"soak-shm", true}, [name, size, salt] {
        mp::SharedMemory mine(name, false);
        if (mine.size() != size) throw std::runtime_error("attached " + std::to_string(mine.size()) + " bytes");
        if (pattern_mismatch(mine.buf(), salt) != size) throw std::runtime_error("the pattern differs");
        fill_pattern(mine.buf(), salt + 1);
        mine.close();
      });
      child.start();
      if (end_child(soak, child, "shared memory")) {
        const std::size_t at = pattern_mismatch(shm->buf(), salt + 1);
        if (at != size) {
          soak.fail("shared memory: byte " + std::to_string(at) + " of the child's pattern differs");
          healthy = false;
        }
      } else {
        healthy = false;
      }
      shm->close();
    } catch (const std::exception& e) {
      soak.fail(std::string("shared memory: ") + e.what());
      healthy = false;
    }
    try {
      shm->unlink();
    } catch (const std::exception& e) {
      soak.fail(std::string("shared memory: ") + e.what());
      return;
    }
    try {
      mp::SharedMemory again(name, false);
      soak.fail("shared memory: \"" + name + "\" could be attached to after unlink()");
      again.unlink();
      return;
    } catch (const std::system_error& e) {
      if (e.code().value() != ENOENT) {
        soak.fail(std::string("shared memory: ") + e.what());
        return;
      }
    }
    if (!healthy) return;
    soak.tick();
    jitter();
  }
}

// What activity 11 shares between this process and its child.
struct SharedPrimitives {
  // The cells: [0, 3) the counters; [3, 6) the child's tallies of its own
  // increments of them; whose turn it is (0 this process, 1 the child); how
  // often each side handed the turn over.
  enum : std::size_t { kTallies = 3, kTurn = 6, kHandedHere = 7, kHandedThere = 8, kCells = 9 };
  mp::RawArray<long> cells = mp::RawArray<long>(kCells);
  mp::Lock lock;
  mp::RLock rlock;
  mp::BoundedSemaphore sem{1};
  mp::Condition turn;
  mp::Event started;
  mp::Event finish;

  // Increments a random one of the three counters under its lock until
  // `finish` is set, counting its own increments in tally[3]. Empty, or what
  // went wrong.
  std::string count(long* tally, unsigned seed, Soak* soak) {
    Jitter jitter(seed);
    while (!finish.is_set()) {
      const unsigned which = jitter.next(3);
      if (!increment_under(which, lock, rlock, sem, &cells[0])) return "an acquire waited 10 s; ";
      ++tally[which];
      if (soak != nullptr) soak->tick();
      jitter();
    }
    return {};
  }

  // One side of the hand-over (me: 0 this process, 1 the child): waits for
  // its turn, checks that the other side handed over as often as strict
  // turns allow, and hands the turn over; until `finish` is set. Empty, or
  // what went wrong.
  std::string hand_over(long me, unsigned seed, Soak* soak) {
    Jitter jitter(seed);
    const std::size_t mine = me == 0 ? kHandedHere : kHandedThere;
    const std::size_t theirs = me == 0 ? kHandedThere : kHandedHere;
    while (!finish.is_set()) {
      std::unique_lock guard(turn, kBound);
      if (!guard) return "the Condition's lock waited 10 s; ";
      if (!turn.wait_for([&] { return cells[kTurn] == me || finish.is_set(); }, kBound)) {
        return "the turn did not come back within 10 s; ";
      }
      if (cells[kTurn] != me) break;
      if (cells[theirs] != cells[mine] + me) {
        return "the turn came back after " + std::to_string(cells[theirs]) + " hand-overs there and " +
               std::to_string(cells[mine]) + " here; ";
      }
      cells[kTurn] = 1 - me;
      ++cells[mine];
      turn.notify();
      guard.unlock();
      if (soak != nullptr) soak->tick();
      jitter();
    }
    return {};
  }
};

// Activity 11: this process and a child share an mp::Lock, an mp::RLock
// (taken twice) and an mp::BoundedSemaphore(1), each guarding its own
// counter in shared memory, which a thread on each side increments: each
// counter ends equal to the increments both sides made under its lock, and
// afterwards the semaphore refuses a release above its bound. Meanwhile a
// second thread on each side hands a turn back and forth through an
// mp::Condition, strictly in turn (each side checks the other's count of
// hand-overs). mp::Events say that the child started and end it.
[[maybe_unused]] void process_shared_primitives(Soak& soak, unsigned seed) {
  SharedPrimitives shared;
  mp::Process child(mp::ProcessOptions{"soak-primitives", true}, [shared, seed]() mutable {
    shared.started.set();
    long tally[3] = {0, 0, 0};
    std::string counting;
    std::thread counter([&] { counting = shared.count(tally, seed + 1, nullptr); });
    const std::string handing = shared.hand_over(1, seed + 2, nullptr);
    counter.join();
    for (std::size_t i = 0; i < 3; ++i) shared.cells[SharedPrimitives::kTallies + i] = tally[i];
    if (!counting.empty() || !handing.empty()) throw std::runtime_error(counting + handing);
  });
  child.start();
  long tally[3] = {0, 0, 0};
  std::string counting, handing;
  if (shared.started.wait(kBound)) {
    std::thread counter([&] { counting = shared.count(tally, seed + 3, &soak); });
    std::thread hander([&] { handing = shared.hand_over(0, seed + 4, &soak); });
    soak.stopped.wait();
    shared.finish.set();
    {
      // Wakes a hand-over that waits for its turn, on either side.
      std::unique_lock guard(shared.turn, kBound);
      if (guard) shared.turn.notify_all();
    }
    counter.join();
    hander.join();
  } else {
    soak.fail("process-shared primitives: the child did not start within 10 s");
    shared.finish.set();
  }
  if (!counting.empty() || !handing.empty()) soak.fail("process-shared primitives: " + counting + handing);
  if (!end_child(soak, child, "process-shared primitives")) return;
  const char* names[3] = {"mp::Lock", "mp::RLock", "mp::BoundedSemaphore"};
  for (std::size_t i = 0; i < 3; ++i) {
    const long made = tally[i] + shared.cells[SharedPrimitives::kTallies + i];
    if (shared.cells[i] != made) {
      soak.fail(std::string(names[i]) + ": counter " + std::to_string(shared.cells[i]) + ", " +
                std::to_string(made) + " increments made");
    }
  }
  try {
    shared.sem.release();
    soak.fail("mp::BoundedSemaphore: a release above the bound was accepted");
  } catch (const std::invalid_argument&) {
  }
  if (shared.sem.value() != 1) soak.fail("mp::BoundedSemaphore: value " + std::to_string(shared.sem.value()) + " at the end");
}

class Soaking : public concur::testing::HygieneTest {};

TEST_F(Soaking, EverythingAtOnceKeepsItsInvariants) {
  const int seconds = soak_seconds();
  const unsigned seed = static_cast<unsigned>(Clock::now().time_since_epoch().count());
  std::printf("soak: %d s, seed %u\n", seconds, seed);
  Soak soak;
  std::vector<std::thread> activities;
  activities.reserve(11);
  activities.emplace_back([&] { lock_counters(soak, seed + 1); });
  activities.emplace_back([&] { condition_buffer(soak, seed + 2); });
  activities.emplace_back([&] { events_and_timers(soak, seed + 4); });
  activities.emplace_back([&] { bounded_semaphore(soak, seed + 7); });
#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
  // The sanitizer runtimes' allocators are not fork-safe: a child forked
  // while another thread holds one of their internal locks stops for good
  // at its first malloc (seen with GCC 12's libasan: a forked producer in
  // __sanitizer::SizeClassAllocator64::GetFromAllocator). glibc's malloc
  // is (its fork handlers), so the release build runs every activity; the
  // sanitizer builds run the thread activities and a ThreadPool.
  activities.emplace_back([&] { thread_pool_only(soak, seed + 3); });
#else
  activities.emplace_back([&] { queue_pipeline(soak, seed); });
  activities.emplace_back([&] { pools(soak, seed + 3); });
  activities.emplace_back([&] { barrier_cycles(soak); });
  activities.emplace_back([&] { pipe_and_value(soak, seed + 5); });
  activities.emplace_back([&] { joinable_queue_and_array(soak, seed + 6); });
  activities.emplace_back([&] { shared_memory_segments(soak, seed + 8); });
  activities.emplace_back([&] { process_shared_primitives(soak, seed + 9); });
#endif

  // The watchdog: the run's clock, and progress checked every second.
  const auto end = Clock::now() + std::chrono::seconds(seconds);
  long last = -1;
  auto last_change = Clock::now();
  th::Event tick;  // never set: its timed wait is the watchdog's clock
  while (Clock::now() < end) {
    tick.wait(1s);
    const long now = soak.progress.load();
    if (now != last) {
      last = now;
      last_change = Clock::now();
    } else if (Clock::now() - last_change > 10s) {
      dump_threads();
      concur::testing::dump_all_stacks();
      std::fprintf(stderr, "soak: no progress for 10 s (seed %u)\n", seed);
      std::abort();  // a hung run fails here instead of hanging CI
    }
  }
  soak.stop.store(true);
  soak.stopped.set();
  // The watchdog covers the ends too: every activity must finish within 60 s.
  th::Event all_joined;
  std::thread joiner([&] {
    for (auto& t : activities) t.join();
    all_joined.set();
  });
  if (!all_joined.wait(60s)) {
    dump_threads();
    concur::testing::dump_all_stacks();
    std::fprintf(stderr, "soak: the activities did not end within 60 s of the stop (seed %u)\n", seed);
    std::abort();
  }
  joiner.join();
  std::printf("soak: %ld operations, %d failures\n", soak.progress.load(), soak.failures.load());
  for (const auto& note : soak.notes) ADD_FAILURE() << note << " (seed " << seed << ")";
  EXPECT_EQ(soak.failures.load(), 0);
}

}  // namespace
