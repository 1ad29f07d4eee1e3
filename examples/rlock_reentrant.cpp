// rlock_reentrant: a class whose methods each take its lock, and one method
// that calls the others while it holds the lock. An RLock lets the thread
// that holds it take it again; a plain Lock would deadlock.
//
// The Python it translates:
//
//   class Ledger:
//       def __init__(self):
//           self.lock = threading.RLock()
//           self.total = 0
//       def add(self, amount):
//           with self.lock:
//               self.total += amount
//       def add_batch(self, amounts):   # all or nothing, as others see it
//           with self.lock:
//               for a in amounts:
//                   self.add(a)         # takes self.lock again
//
// Three threads add batches {1, 2, 3} while an auditor reads the total: it
// must always be a multiple of 6, because no one can see half a batch.
//
// Exits 1 if the auditor saw half a batch or the final total is wrong.
#include <chrono>
#include <cstdio>
#include <deque>
#include <mutex>
#include <vector>

#include "check.hpp"  // fail(): print why, exit 1 at once
#include "concur/concur.hpp"

namespace th = concur::threading;  // import threading
using namespace std::chrono_literals;

class Ledger {
 public:
  void add(long amount) {
    std::scoped_lock guard(lock_);  // the first or a nested level: both fine
    total_ += amount;
  }
  // Holds the lock across the whole batch, and add() takes it again inside.
  void add_batch(const std::vector<long>& amounts) {
    std::scoped_lock guard(lock_);
    for (long amount : amounts) add(amount);
  }
  long total() {
    std::scoped_lock guard(lock_);
    return total_;
  }
  th::RLock& lock() { return lock_; }

 private:
  th::RLock lock_;  // owned: only the holder may release, and it may re-enter
  long total_ = 0;
};

int main() {
  constexpr int kWriters = 3;
  constexpr int kBatches = 2'000;
  const std::vector<long> batch{1, 2, 3};  // sums to 6
  Ledger ledger;

  std::deque<th::Thread> threads;  // Threads never move; a deque never moves them
  for (int w = 0; w < kWriters; ++w) {
    threads.emplace_back([&] {
      for (int b = 0; b < kBatches; ++b) ledger.add_batch(batch);
    });
  }
  long half_batches = 0;
  threads.emplace_back([&] {  // the auditor
    for (int i = 0; i < kBatches; ++i) half_batches += ledger.total() % 6 != 0 ? 1 : 0;
  });
  for (auto& t : threads) t.start();
  for (auto& t : threads) {
    if (!t.join(10s)) fail("a thread did not finish within 10 s");
  }
  std::printf("%d writers x %d batches of {1, 2, 3}: total %ld; the auditor saw %ld half batches\n",
              kWriters, kBatches, ledger.total(), half_batches);

  // The holder itself, two levels deep: is_owned() says "mine".
  {
    std::scoped_lock outer(ledger.lock());
    std::scoped_lock inner(ledger.lock());
    std::printf("held twice by this thread: is_owned() %s\n",
                ledger.lock().is_owned() ? "true" : "false");
  }
  const bool released = !ledger.lock().locked();  // released once per acquire

  // What a plain Lock does instead: it has no owner, so its holder waits on
  // itself. A timed acquire shows it without hanging.
  th::Lock plain;
  plain.acquire();
  const bool again = plain.acquire(10ms);  // would block forever without the timeout
  plain.release();
  std::printf("a plain Lock taken again by its holder: acquire(10ms) returned %s\n",
              again ? "true" : "false");

  if (half_batches != 0 || ledger.total() != 6L * kWriters * kBatches || !released || again) {
    fail("the ledger's invariant broke");
  }
  return 0;
}
