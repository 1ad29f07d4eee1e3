// Counting primes on every core with a process Pool: "parallelism in one
// line". examples/mpi/mpi_map.cpp is the same program across the ranks of
// an MPI job: only the pool's type and one line differ.
#include <cstdio>
#include <vector>

#include "concur/concur.hpp"

namespace mp = concur::multiprocessing;

long count_primes_below(long limit) {
  long count = 0;
  for (long n = 2; n < limit; ++n) {
    bool prime = true;
    for (long d = 2; d * d <= n; ++d) {
      if (n % d == 0) {
        prime = false;
        break;
      }
    }
    count += prime ? 1 : 0;
  }
  return count;
}

int main() {
  mp::Pool pool;

  std::vector<long> limits;
  for (long k = 1; k <= 12; ++k) limits.push_back(k * 10'000);
  const std::vector<long> counts = pool.map(count_primes_below, limits);
  for (std::size_t i = 0; i < limits.size(); ++i) {
    std::printf("primes below %6ld: %5ld\n", limits[i], counts[i]);
  }
  return counts.back() == 11'301 ? 0 : 1;  // pi(120000)
}
