// A serving rank that dies or hangs never leaves rank 0 waiting forever.
// Modes (tests/CMakeLists.txt runs each under mpirun -np 3):
//   stuck  both serving ranks block in f; rank 0, with set_timeout(3 s),
//          loses them one by one: the map fails with WorkerLostError for
//          item 0, later calls with std::runtime_error (no rank is left), and
//          the pool's destructor ends the job with MPI_Abort (a stuck rank
//          can never finalize)
//   die    a serving rank ends with _exit(3) inside f. Under
//          `mpirun --enable-recovery` the job outlives it: rank 0 gets
//          WorkerLostError for item 3 after the timeout, the next map runs
//          on the rank that is left, then the destructor ends the job.
//          Without --enable-recovery Open MPI's launcher ends the whole job
//          at once: mpirun exits non-zero.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <stdexcept>
#include <vector>

#include "concur/errors.hpp"
#include "concur/mpi.hpp"

int block_forever(int) {
  for (;;) ::pause();
}
int exit_on_3(int x) {
  if (x == 3) ::_exit(3);
  return x;
}
int twice(int x) { return 2 * x; }

// Runs one map and prints how it ended.
template <class F>
void report(concur::mpi::Pool& pool, const char* label, F f, const std::vector<int>& items) {
  try {
    const auto out = pool.map(f, items, 1);
    std::printf("%s: ok (%zu results, last %d)\n", label, out.size(), out.empty() ? -1 : out.back());
  } catch (const concur::WorkerLostError& e) {
    std::printf("%s: WorkerLostError for item %zu: %s\n", label, e.index(), e.what());
  } catch (const std::runtime_error& e) {
    std::printf("%s: runtime_error: %s\n", label, e.what());
  }
  std::fflush(stdout);
}

int main(int argc, char** argv) {
  const bool stuck = argc > 1 && std::strcmp(argv[1], "stuck") == 0;
  concur::mpi::Pool pool;
  if (!pool.is_master()) return pool.serve();
  pool.set_timeout(std::chrono::seconds(3));
  if (stuck) {
    report(pool, "rank 0 got", block_forever, std::vector<int>{1, 2});
    report(pool, "then", twice, std::vector<int>{1, 2});
  } else {
    report(pool, "rank 0 got", exit_on_3, std::vector<int>{0, 1, 2, 3, 4, 5, 6, 7});
    report(pool, "then", twice, std::vector<int>{0, 1, 2, 3, 4, 5, 6, 7});
  }
  return 0;
}
