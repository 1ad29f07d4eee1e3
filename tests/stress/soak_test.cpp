// Soak: the primitives and both pools at once, across threads and
// processes, under random timing, for a bounded time (CONCUR_SOAK_SECONDS,
// 20 s by default; scripts/test.sh gives the release build more), checking
// invariants all along: no item lost, none duplicated, no counter off, no
// deadlock. A watchdog fails the run, after printing where every thread of
// this process is blocked, if no activity makes progress for 10 s.
#include <gtest/gtest.h>
#include <sched.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <fstream>
#include <functional>
#include <numeric>
#include <random>
#include <string>
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
        switch (which) {
          case 0: {
            std::scoped_lock guard(lock);
            ++counters[0];
            break;
          }
          case 1: {
            std::scoped_lock outer(rlock);
            std::scoped_lock inner(rlock);
            ++counters[1];
            break;
          }
          default: {
            if (!sem.acquire(std::chrono::seconds(5))) {
              soak.fail("semaphore: acquire timed out");
              return;
            }
            ++counters[2];
            sem.release();
          }
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

class Soaking : public concur::testing::HygieneTest {};

TEST_F(Soaking, EverythingAtOnceKeepsItsInvariants) {
  const int seconds = soak_seconds();
  const unsigned seed = static_cast<unsigned>(Clock::now().time_since_epoch().count());
  std::printf("soak: %d s, seed %u\n", seconds, seed);
  Soak soak;
  std::vector<std::thread> activities;
  activities.reserve(7);
  activities.emplace_back([&] { lock_counters(soak, seed + 1); });
  activities.emplace_back([&] { condition_buffer(soak, seed + 2); });
  activities.emplace_back([&] { events_and_timers(soak, seed + 4); });
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
