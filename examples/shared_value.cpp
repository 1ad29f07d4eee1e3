// shared_value: four processes add to one counter in shared memory. An
// mp::Value holds the number where every process forked after it sees it,
// with a process-shared lock (get_lock()) that makes `+= 1` indivisible
// across processes. An ordinary global, incremented the same way, shows what
// fork does without shared memory: each child changes only its own copy.
//
// The Python it translates:
//
//   def work(counter):
//       for _ in range(10_000):
//           with counter.get_lock():
//               counter.value += 1
//
//   counter = mp.Value('l', 0)
//   procs = [mp.Process(target=work, args=(counter,)) for _ in range(4)]
//   for p in procs: p.start()
//   for p in procs: p.join(10)
//   assert counter.value == 40_000
//
// As in Python, reading or writing value() is not itself atomic: hold the
// lock around every read-modify-write. The lock is a futex in the shared
// block: taken and released without a system call when uncontended. A
// process that dies while holding it does not deadlock the others (see
// owner_died() in docs/python-to-cpp.md).
//
// Exits 1 if the shared counter is not exactly 40,000, the global changed in
// the parent, or a process failed.
#include <chrono>
#include <cstdio>
#include <deque>
#include <mutex>

#include "concur/concur.hpp"

namespace mp = concur::multiprocessing;  // import multiprocessing as mp
using namespace std::chrono_literals;

constexpr int kProcesses = 4;
constexpr long kIncrements = 10'000;

long g_plain = 0;  // not shared: after the fork each child has its own

void work(mp::Value<long> counter) {  // a handle: the copy refers to the same shared value
  for (long k = 0; k < kIncrements; ++k) {
    std::scoped_lock guard(counter.get_lock());  // with counter.get_lock():
    ++counter.value();                           //     counter.value += 1
    ++g_plain;                                   // the child's copy only
  }
}

int main() {
  mp::Value<long> counter(0);  // made before the fork: shared by every child

  std::deque<mp::Process> processes;  // Processes never move; a deque never moves them
  for (int i = 0; i < kProcesses; ++i) processes.emplace_back(work, counter);
  for (auto& p : processes) p.start();
  bool ended = true;
  for (auto& p : processes) {
    if (!p.join(10s)) {
      p.kill();  // SIGKILL: the join below cannot wait long
      p.join();
    }
    ended = ended && p.exitcode() == 0;
  }

  long total;
  {
    std::scoped_lock guard(counter.get_lock());
    total = counter.value();
  }
  std::printf("%d processes x %ld increments: shared Value = %ld, plain global here = %ld\n",
              kProcesses, kIncrements, total, g_plain);
  if (!ended || total != kProcesses * kIncrements || g_plain != 0) {
    std::printf("shared_value: FAILED: an increment was lost or a process failed\n");
    return 1;
  }
  return 0;
}
