// parallel_primes: the same CPU-bound job three ways -- a sequential loop,
// a ThreadPool and a process Pool -- with the time and speed-up of each.
//
// The Python it translates ("parallelism in one line"):
//
//   from multiprocessing import Pool
//   from multiprocessing.pool import ThreadPool
//   blocks = range(0, 1_000_000, 25_000)
//   counts = list(map(primes_in, blocks))             # sequential
//   with Pool() as pool:
//       assert pool.map(primes_in, blocks) == counts   # processes
//   with ThreadPool() as pool:
//       assert pool.map(primes_in, blocks) == counts   # threads
//
// In CPython the ThreadPool line brings no speed-up for this job: the GIL
// lets one thread run Python code at a time. C++ has no GIL, so here both
// pools use every core. What differs is the price: a Pool forks its workers
// at each call (they see the program as it is at that moment, see
// docs/pool.md), a ThreadPool keeps its threads and shares memory.
//
// Exits 1 if a pool's counts differ from the loop's or the total is not
// pi(1,000,000) = 78,498. The times are printed, never checked: the machine
// may be busy.
#include <chrono>
#include <cstdio>
#include <numeric>
#include <vector>

#include "concur/concur.hpp"

namespace mp = concur::multiprocessing;  // import multiprocessing as mp
using Clock = std::chrono::steady_clock;

constexpr long kBlock = 25'000;
constexpr long kLimit = 1'000'000;
constexpr long kPrimesBelowLimit = 78'498;

// Trial division: slow on purpose, all arithmetic, no shared memory.
bool is_prime(long n) {
  if (n < 2) return false;
  for (long d = 2; d * d <= n; ++d) {
    if (n % d == 0) return false;
  }
  return true;
}

// The task: the number of primes in [first, first + kBlock), a few
// milliseconds of work.
long primes_in(long first) {
  long count = 0;
  for (long n = first; n < first + kBlock; ++n) count += is_prime(n) ? 1 : 0;
  return count;
}

double milliseconds_since(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

int main() {
  std::vector<long> blocks;
  for (long first = 0; first < kLimit; first += kBlock) blocks.push_back(first);
  std::printf("counting the primes below %ld in %zu blocks on %d CPUs\n", kLimit, blocks.size(),
              mp::cpu_count());

  auto start = Clock::now();
  std::vector<long> expected;
  for (long first : blocks) expected.push_back(primes_in(first));
  const double sequential = milliseconds_since(start);
  const long total = std::accumulate(expected.begin(), expected.end(), 0L);
  std::printf("  sequential loop      %7.1f ms  %ld primes\n", sequential, total);

  bool same = true;

  // The process Pool first: forking while other threads run is unsafe (a
  // lock one of them holds stays locked in the child), and the ThreadPool
  // below starts threads. This program has none yet.
  {
    mp::Pool pool;  // cpu_count() workers, forked by each call
    start = Clock::now();
    const std::vector<long> counts = pool.map(primes_in, blocks);  // the one line
    const double ms = milliseconds_since(start);
    same = same && counts == expected;
    std::printf("  Pool().map           %7.1f ms  speed-up %.2fx\n", ms, sequential / ms);
  }
  {
    mp::ThreadPool pool;  // cpu_count() threads, started here, joined at the end of the block
    start = Clock::now();
    const std::vector<long> counts = pool.map(primes_in, blocks);
    const double ms = milliseconds_since(start);
    same = same && counts == expected;
    std::printf("  ThreadPool().map     %7.1f ms  speed-up %.2fx\n", ms, sequential / ms);
  }

  if (!same || total != kPrimesBelowLimit) {
    std::printf("parallel_primes: WRONG RESULT (expected %ld primes, the same from each pool)\n",
                kPrimesBelowLimit);
    return 1;
  }
  std::printf("all three agree\n");
  return 0;
}
