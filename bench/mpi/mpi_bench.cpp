// concur::mpi::Pool beside multiprocessing::Pool on the same work: map
// throughput (tasks/s) of trivial tasks and of 1 ms tasks, and the per-task
// overhead. Run with three ranks (two serving), e.g.
//   mpirun --oversubscribe --allow-run-as-root -np 3 --mca btl self,tcp
//          --mca mpi_warn_on_fork 0 build/release/bench/bench_mpi
// Prints the median of 5 runs of each case.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <numeric>
#include <vector>

#include "concur/mpi.hpp"
#include "concur/multiprocessing/pool.hpp"

namespace {

namespace mp = concur::multiprocessing;

int trivial(int x) { return 2 * x + 1; }

// About 1 ms of arithmetic, calibrated once on rank 0's machine (every rank
// runs the same loop count, passed in the item).
__attribute__((noinline)) double spin(long rounds) {
  double x = 1.0;
  for (long i = 0; i < rounds; ++i) x = x * 1.0000001 + 1e-9;
  return x;
}

long rounds_for_1ms() {
  long rounds = 100'000;
  for (;;) {
    const auto t0 = std::chrono::steady_clock::now();
    volatile double sink = spin(rounds);
    (void)sink;
    const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    if (ms > 5) return static_cast<long>(static_cast<double>(rounds) / ms);
    rounds *= 4;
  }
}

template <class Run>
double median_seconds(Run run) {
  std::vector<double> s;
  for (int i = 0; i < 5; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    run();
    s.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(s.begin(), s.end());
  return s[2];
}

}  // namespace

int main() {
  concur::mpi::Pool pool;
  if (!pool.is_master()) return pool.serve();
  mp::Pool local(2);

  std::vector<int> ints(100'000);
  std::iota(ints.begin(), ints.end(), 0);
  const long rounds = rounds_for_1ms();
  const std::vector<long> ms_tasks(200, rounds);

  std::printf("mpi::Pool: %d serving ranks; mp::Pool: 2 worker processes\n", pool.size());
  auto report = [](const char* name, std::size_t tasks, double seconds) {
    std::printf("%-44s %10.0f tasks/s  %8.2f us/task  (median %.4f s)\n", name,
                static_cast<double>(tasks) / seconds, seconds * 1e6 / static_cast<double>(tasks),
                seconds);
  };
  report("trivial x100000, chunk auto, mpi::Pool", ints.size(),
         median_seconds([&] { (void)pool.map(trivial, ints); }));
  report("trivial x100000, chunk auto, mp::Pool", ints.size(),
         median_seconds([&] { (void)local.map(trivial, ints); }));
  const std::vector<int> few(ints.begin(), ints.begin() + 5000);
  report("trivial x5000, chunk 1, mpi::Pool", few.size(),
         median_seconds([&] { (void)pool.map(trivial, few, 1); }));
  report("trivial x5000, chunk 1, mp::Pool", few.size(),
         median_seconds([&] { (void)local.map(trivial, few, 1); }));
  report("1 ms x200, chunk 1, mpi::Pool", ms_tasks.size(),
         median_seconds([&] { (void)pool.map(spin, ms_tasks, 1); }));
  report("1 ms x200, chunk 1, mp::Pool", ms_tasks.size(),
         median_seconds([&] { (void)local.map(spin, ms_tasks, 1); }));
  // Rank 0's own 100 ms of work beside a map of 200 ms of work: after it
  // (map, then the work) or while it runs (map_async, the work, get).
  const std::vector<long> own(100, rounds);
  auto own_work = [&own] {
    for (long r : own) {
      volatile double sink = spin(r);
      (void)sink;
    }
  };
  report("1 ms x200 then 100 ms on rank 0, map", ms_tasks.size(), median_seconds([&] {
           (void)pool.map(spin, ms_tasks, 1);
           own_work();
         }));
  report("1 ms x200 beside 100 ms on rank 0, map_async", ms_tasks.size(), median_seconds([&] {
           auto pending = pool.map_async(spin, ms_tasks, 1);
           own_work();
           (void)pending.get();
         }));
  report("1 ms x200, sequential", ms_tasks.size(), median_seconds([&] {
           for (long r : ms_tasks) {
             volatile double sink = spin(r);
             (void)sink;
           }
         }));
  return 0;
}
