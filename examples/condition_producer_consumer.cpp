// condition_producer_consumer: a bounded buffer. Two producers put jobs in,
// two consumers take them out; a Condition makes a producer wait while the
// buffer is full and a consumer wait while it is empty.
//
// The Python it translates:
//
//   cv = threading.Condition()
//   buffer = collections.deque()
//   def produce(jobs):
//       for job in jobs:
//           with cv:
//               cv.wait_for(lambda: len(buffer) < CAPACITY)
//               buffer.append(job)
//               cv.notify_all()
//   def consume():
//       while True:
//           with cv:
//               cv.wait_for(lambda: buffer or producers_done)
//               if not buffer: return
//               total += buffer.popleft()
//               cv.notify_all()
//
// wait_for(predicate, timeout) takes the predicate, as Python's does (not a
// duration, as std::condition_variable::wait_for): it releases the lock
// while it sleeps, retakes it, and returns the predicate's last value --
// false only when the timeout ran out. Every wait here has one, so a bug
// fails the program instead of hanging it.
//
// Exits 1 if a job was lost or duplicated or the buffer overflowed.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <deque>
#include <mutex>

#include "check.hpp"  // fail(): print why, exit 1 at once
#include "concur/concur.hpp"

namespace th = concur::threading;  // import threading
using namespace std::chrono_literals;

constexpr std::size_t kCapacity = 4;
constexpr int kProducers = 2;
constexpr int kConsumers = 2;
constexpr long kJobsPerProducer = 500;
constexpr auto kTimeout = 5s;

int main() {
  th::Condition cv;  // with its own RLock, as threading.Condition()
  // Everything below is guarded by cv's lock.
  std::deque<long> buffer;
  int producers_running = kProducers;
  std::size_t peak = 0;
  long consumed = 0, total = 0;
  bool timed_out = false;

  std::deque<th::Thread> threads;  // Threads never move; a deque never moves them
  for (int p = 0; p < kProducers; ++p) {
    threads.emplace_back([&] {
      for (long job = 1; job <= kJobsPerProducer; ++job) {
        std::scoped_lock guard(cv);  // with cv:
        if (!cv.wait_for([&] { return buffer.size() < kCapacity; }, kTimeout)) {
          timed_out = true;
          return;
        }
        buffer.push_back(job);
        peak = std::max(peak, buffer.size());
        cv.notify_all();  // consumers wait for "not empty"
      }
      std::scoped_lock guard(cv);
      --producers_running;
      cv.notify_all();  // consumers also wait for "no producer left"
    });
  }
  for (int c = 0; c < kConsumers; ++c) {
    threads.emplace_back([&] {
      for (;;) {
        std::scoped_lock guard(cv);
        if (!cv.wait_for([&] { return !buffer.empty() || producers_running == 0; }, kTimeout)) {
          timed_out = true;
          return;
        }
        if (buffer.empty()) return;  // drained, and no producer left
        total += buffer.front();
        buffer.pop_front();
        ++consumed;
        cv.notify_all();  // producers wait for "not full"
      }
    });
  }
  for (auto& t : threads) t.start();
  for (auto& t : threads) {
    if (!t.join(2 * kTimeout)) fail("a thread did not finish");
  }

  // The producers' jobs are 1..500 each: 2 x 125,250.
  const long expected = kProducers * kJobsPerProducer * (kJobsPerProducer + 1) / 2;
  std::printf(
      "%d producers, %d consumers, a buffer of %zu: %ld jobs consumed, total %ld, "
      "at most %zu buffered\n",
      kProducers, kConsumers, kCapacity, consumed, total, peak);
  if (timed_out) fail("a wait timed out");
  if (consumed != kProducers * kJobsPerProducer || total != expected || peak > kCapacity) {
    fail("a job was lost or duplicated, or the buffer overflowed");
  }
  return 0;
}
