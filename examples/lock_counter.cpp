// lock_counter: four threads add to one counter; a Lock makes each
// read-modify-write a step no other thread can interleave with.
//
// The Python it translates:
//
//   lock = threading.Lock()
//   counter = 0
//   def work():
//       global counter
//       for _ in range(100_000):
//           with lock:
//               counter += 1
//   threads = [threading.Thread(target=work) for _ in range(4)]
//   for t in threads: t.start()
//   for t in threads: t.join()
//   assert counter == 400_000
//
// Without the lock, CPython may lose updates (the GIL can switch threads
// between the load and the store of `counter += 1`). C++ has no GIL: the
// threads really run at once, and an unguarded `++counter` from two threads
// is a data race -- undefined behaviour, reported by ThreadSanitizer -- so
// this program does not show it.
//
// Exits 1 if the counter is not exactly 400,000.
#include <chrono>
#include <cstdio>
#include <deque>
#include <mutex>

#include "check.hpp"  // fail(): print why, exit 1 at once
#include "concur/concur.hpp"

namespace th = concur::threading;  // import threading
using namespace std::chrono_literals;

constexpr int kThreads = 4;
constexpr long kIncrements = 100'000;

int main() {
  th::Lock lock;  // lock = threading.Lock()
  long counter = 0;

  std::deque<th::Thread> threads;  // Threads neither copy nor move; a deque never moves them
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&] {
      for (long k = 0; k < kIncrements; ++k) {
        std::scoped_lock guard(lock);  // with lock:
        ++counter;                     //     counter += 1
      }
    });
  }
  for (auto& t : threads) t.start();
  for (auto& t : threads) {
    if (!t.join(10s)) fail("a thread did not finish within 10 s");  // join(timeout) tells
  }

  // join() orders each thread's writes before what follows: no lock needed to read.
  std::printf("%d threads x %ld increments under one Lock: counter = %ld (locked now: %s)\n",
              kThreads, kIncrements, counter, lock.locked() ? "yes" : "no");
  if (counter != kThreads * kIncrements || lock.locked()) fail("an increment was lost");
  return 0;
}
