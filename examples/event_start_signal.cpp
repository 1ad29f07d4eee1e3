// event_start_signal: a starting gun. Four runner threads get ready and wait
// at the line; the starter lays out the course, then fires: one set() on an
// Event releases every waiter at once. A second Event tells the starter
// that everyone is at the line.
//
// The Python it translates:
//
//   go = threading.Event()
//   def runner():
//       if not go.wait(timeout=5):
//           raise TimeoutError
//       run(course)
//   ...start the runners...
//   course = lay_out()
//   go.set()
//
// set() publishes what was written before it: a runner that returns from
// wait() sees the whole course without taking any lock (ThreadSanitizer
// checks that in CI). An Event stays set until clear(): a runner that
// arrives late does not wait at all.
//
// Exits 1 if the gun fired early, a runner saw a half-laid course, or a wait
// timed out.
#include <chrono>
#include <cstdio>
#include <deque>
#include <mutex>
#include <numeric>
#include <vector>

#include "check.hpp"  // fail(): print why, exit 1 at once
#include "concur/concur.hpp"

namespace th = concur::threading;  // import threading
using namespace std::chrono_literals;

constexpr int kRunners = 4;
constexpr int kCones = 100;
constexpr auto kTimeout = 5s;

int main() {
  th::Event go;           // the gun
  th::Event all_at_line;  // set by the last runner to arrive
  th::Lock line_lock;     // guards at_line
  int at_line = 0;
  std::vector<int> course;                   // written by the starter before go.set(), read after
  std::vector<long> distance(kRunners, -1);  // each runner writes only its own slot

  std::deque<th::Thread> runners;  // Threads never move; a deque never moves them
  for (int r = 0; r < kRunners; ++r) {
    runners.emplace_back([&, r] {
      {
        std::scoped_lock guard(line_lock);
        if (++at_line == kRunners) all_at_line.set();
      }
      if (!go.wait(kTimeout)) return;  // false: the gun never fired; distance stays -1
      distance[static_cast<std::size_t>(r)] = std::accumulate(course.begin(), course.end(), 0L);
    });
  }
  for (auto& r : runners) r.start();

  if (!all_at_line.wait(kTimeout)) fail("the runners did not reach the line");
  const bool early = go.is_set();  // nobody may have fired yet
  course.resize(kCones);
  std::iota(course.begin(), course.end(), 1);  // cones 1..100, then the gun
  go.set();
  for (auto& r : runners) {
    if (!r.join(kTimeout)) fail("a runner did not finish");
  }

  const long expected = long{kCones} * (kCones + 1) / 2;
  int finished = 0;
  for (long d : distance) finished += d == expected ? 1 : 0;
  std::printf(
      "%d runners waited at the line; after the gun %d of them ran the whole course "
      "(%d cones, %ld m)\n",
      kRunners, finished, kCones, expected);

  // A late runner: the Event is still set, so it does not wait.
  const bool late = go.wait(0ms);
  // clear() lowers the flag; wait(timeout) then returns false when time runs out.
  go.clear();
  const bool after_clear = go.wait(10ms);
  std::printf("a late runner's wait(0ms): %s; after clear(), wait(10ms): %s\n",
              late ? "true" : "false", after_clear ? "true" : "false");

  if (early || finished != kRunners || !late || after_clear) fail("the start signal misbehaved");
  return 0;
}
