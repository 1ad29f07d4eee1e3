// Pool and ThreadPool against OpenMP, oneTBB and a sequential loop.
// Side by side with CPython: bench/python_pool.py; ratios: bench/pool_report.py.
#include <benchmark/benchmark.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <numeric>
#include <vector>

#include "concur/multiprocessing/pool.hpp"
#include "concur/multiprocessing/thread_pool.hpp"

#ifdef CONCUR_HAVE_OPENMP
#include <omp.h>
#endif
#ifdef CONCUR_HAVE_TBB
#include <tbb/blocked_range.h>
#include <tbb/global_control.h>
#include <tbb/parallel_for.h>
#include <tbb/task_group.h>
#endif

namespace {

namespace mp = concur::multiprocessing;
constexpr int kWorkers = 2;

// A Pool whose workers are forked once, with the pool (Python's own model).
mp::PoolOptions once() {
  mp::PoolOptions options;
  options.processes = kWorkers;
  options.worker_start = mp::WorkerStart::once;
  return options;
}

const std::vector<int>& million() {
  static const std::vector<int> items = [] {
    std::vector<int> v(1'000'000);
    std::iota(v.begin(), v.end(), 0);
    return v;
  }();
  return items;
}

// A lambda, as a user would write it: every implementation can inline it.
constexpr auto trivial = [](int x) { return 2 * x + 1; };

// --- map of a trivial function over 1,000,000 ints --------------------------

void BM_Map1M_Sequential(benchmark::State& state) {
  const auto& items = million();
  for (auto _ : state) {
    std::vector<int> out(items.size());
    for (std::size_t i = 0; i < items.size(); ++i) out[i] = trivial(items[i]);
    benchmark::DoNotOptimize(out.data());
  }
}
BENCHMARK(BM_Map1M_Sequential)->Name("map1M/sequential")->UseRealTime()->Unit(benchmark::kMicrosecond);

void BM_Map1M_Pool(benchmark::State& state) {
  const auto& items = million();
  mp::Pool pool(kWorkers);
  for (auto _ : state) {
    auto out = pool.map(trivial, items);
    benchmark::DoNotOptimize(out.data());
  }
}
BENCHMARK(BM_Map1M_Pool)->Name("map1M/concur::Pool")->UseRealTime()->Unit(benchmark::kMicrosecond);

void BM_Map1M_PoolOnce(benchmark::State& state) {
  const auto& items = million();
  mp::Pool pool(once());
  for (auto _ : state) {
    auto out = pool.map(trivial, items);
    benchmark::DoNotOptimize(out.data());
  }
}
BENCHMARK(BM_Map1M_PoolOnce)->Name("map1M/concur::Pool(once)")->UseRealTime()->Unit(benchmark::kMicrosecond);

void BM_Map1M_ThreadPool(benchmark::State& state) {
  const auto& items = million();
  mp::ThreadPool pool(kWorkers);
  for (auto _ : state) {
    auto out = pool.map(trivial, items);
    benchmark::DoNotOptimize(out.data());
  }
}
BENCHMARK(BM_Map1M_ThreadPool)->Name("map1M/concur::ThreadPool")->UseRealTime()->Unit(benchmark::kMicrosecond);

#ifdef CONCUR_HAVE_OPENMP
void BM_Map1M_OpenMP(benchmark::State& state) {
  const auto& items = million();
  omp_set_num_threads(kWorkers);
  for (auto _ : state) {
    std::vector<int> out(items.size());
    const long n = static_cast<long>(items.size());
#pragma omp parallel for schedule(static)
    for (long i = 0; i < n; ++i) out[static_cast<std::size_t>(i)] = trivial(items[static_cast<std::size_t>(i)]);
    benchmark::DoNotOptimize(out.data());
  }
}
BENCHMARK(BM_Map1M_OpenMP)->Name("map1M/OpenMP")->UseRealTime()->Unit(benchmark::kMicrosecond);
#endif

#ifdef CONCUR_HAVE_TBB
void BM_Map1M_TBB(benchmark::State& state) {
  const auto& items = million();
  tbb::global_control limit(tbb::global_control::max_allowed_parallelism, kWorkers);
  for (auto _ : state) {
    std::vector<int> out(items.size());
    tbb::parallel_for(tbb::blocked_range<std::size_t>(0, items.size()),
                      [&](const tbb::blocked_range<std::size_t>& r) {
                        for (std::size_t i = r.begin(); i != r.end(); ++i) out[i] = trivial(items[i]);
                      });
    benchmark::DoNotOptimize(out.data());
  }
}
BENCHMARK(BM_Map1M_TBB)->Name("map1M/oneTBB")->UseRealTime()->Unit(benchmark::kMicrosecond);
#endif

// The floor under any Pool call that forks its workers at the call (the
// default, which gives them the caller's state as of the call): two forks of
// this process whose children exit at once, and the two waits. No map work.
void BM_Map1M_ForkFloor(benchmark::State& state) {
  const auto& items = million();
  benchmark::DoNotOptimize(items.data());
  for (auto _ : state) {
    pid_t children[kWorkers];
    for (auto& pid : children) {
      pid = ::fork();
      if (pid == 0) ::_exit(0);
      if (pid < 0) state.SkipWithError("fork failed");
    }
    for (pid_t pid : children) {
      if (pid > 0) ::waitpid(pid, nullptr, 0);
    }
  }
}
BENCHMARK(BM_Map1M_ForkFloor)->Name("map1M/fork+exit+wait x2 (floor)")->UseRealTime()->Unit(benchmark::kMicrosecond);

// --- CPU-bound: about 50 us of arithmetic per item, 20,000 items ------------

int g_spin_rounds = 0;

__attribute__((noinline)) double burn(int seed) {
  double x = seed * 1e-6 + 1.0;
  for (int i = 0; i < g_spin_rounds; ++i) x = std::sqrt(x * x + 1.0) * 0.999;
  return x;
}

// Rounds for ~50 us on this machine, measured once.
void calibrate() {
  if (g_spin_rounds != 0) return;
  g_spin_rounds = 1000;
  for (;;) {
    const auto start = std::chrono::steady_clock::now();
    for (int i = 0; i < 200; ++i) benchmark::DoNotOptimize(burn(i));
    const double us = std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start).count() / 200;
    if (us > 5) {
      g_spin_rounds = static_cast<int>(g_spin_rounds * 50.0 / us);
      return;
    }
    g_spin_rounds *= 4;
  }
}

const std::vector<int>& cpu_items() {
  static const std::vector<int> items = [] {
    std::vector<int> v(20'000);
    std::iota(v.begin(), v.end(), 0);
    return v;
  }();
  return items;
}

void BM_Cpu_Sequential(benchmark::State& state) {
  calibrate();
  for (auto _ : state) {
    std::vector<double> out;
    out.reserve(cpu_items().size());
    for (int x : cpu_items()) out.push_back(burn(x));
    benchmark::DoNotOptimize(out.data());
  }
}
BENCHMARK(BM_Cpu_Sequential)->Name("cpu50us/sequential")->UseRealTime()->Unit(benchmark::kMillisecond)->Iterations(2);

void BM_Cpu_Pool(benchmark::State& state) {
  calibrate();
  mp::Pool pool(kWorkers);
  for (auto _ : state) {
    auto out = pool.map(burn, cpu_items());
    benchmark::DoNotOptimize(out.data());
  }
}
BENCHMARK(BM_Cpu_Pool)->Name("cpu50us/concur::Pool")->UseRealTime()->Unit(benchmark::kMillisecond)->Iterations(2);

void BM_Cpu_PoolOnce(benchmark::State& state) {
  calibrate();
  mp::Pool pool(once());
  for (auto _ : state) {
    auto out = pool.map(burn, cpu_items());
    benchmark::DoNotOptimize(out.data());
  }
}
BENCHMARK(BM_Cpu_PoolOnce)->Name("cpu50us/concur::Pool(once)")->UseRealTime()->Unit(benchmark::kMillisecond)->Iterations(2);

void BM_Cpu_ThreadPool(benchmark::State& state) {
  calibrate();
  mp::ThreadPool pool(kWorkers);
  for (auto _ : state) {
    auto out = pool.map(burn, cpu_items());
    benchmark::DoNotOptimize(out.data());
  }
}
BENCHMARK(BM_Cpu_ThreadPool)->Name("cpu50us/concur::ThreadPool")->UseRealTime()->Unit(benchmark::kMillisecond)->Iterations(2);

// --- many small calls: map of 100 items, timed per call ---------------------

void BM_SmallCalls_Pool(benchmark::State& state) {
  std::vector<int> items(100);
  std::iota(items.begin(), items.end(), 0);
  mp::Pool pool(kWorkers);
  for (auto _ : state) {
    auto out = pool.map(trivial, items);
    benchmark::DoNotOptimize(out.data());
  }
}
BENCHMARK(BM_SmallCalls_Pool)->Name("small_map100/concur::Pool")->UseRealTime()->Unit(benchmark::kMicrosecond)->Iterations(1000);

void BM_SmallCalls_PoolOnce(benchmark::State& state) {
  std::vector<int> items(100);
  std::iota(items.begin(), items.end(), 0);
  mp::Pool pool(once());
  for (auto _ : state) {
    auto out = pool.map(trivial, items);
    benchmark::DoNotOptimize(out.data());
  }
}
BENCHMARK(BM_SmallCalls_PoolOnce)->Name("small_map100/concur::Pool(once)")->UseRealTime()->Unit(benchmark::kMicrosecond)->Iterations(1000);

void BM_SmallCalls_ThreadPool(benchmark::State& state) {
  std::vector<int> items(100);
  std::iota(items.begin(), items.end(), 0);
  mp::ThreadPool pool(kWorkers);
  for (auto _ : state) {
    auto out = pool.map(trivial, items);
    benchmark::DoNotOptimize(out.data());
  }
}
BENCHMARK(BM_SmallCalls_ThreadPool)->Name("small_map100/concur::ThreadPool")->UseRealTime()->Unit(benchmark::kMicrosecond)->Iterations(1000);

// --- per-task overhead: 10,000 independent tiny tasks, then wait for all ---

constexpr int kTasks = 10'000;

void BM_Tasks_ThreadPool(benchmark::State& state) {
  mp::ThreadPool pool(kWorkers);
  std::vector<mp::AsyncResult<int>> results;
  results.reserve(kTasks);
  for (auto _ : state) {
    results.clear();
    for (int i = 0; i < kTasks; ++i) results.push_back(pool.apply_async(trivial, i));
    for (auto& r : results) benchmark::DoNotOptimize(r.get());
  }
  state.SetItemsProcessed(state.iterations() * kTasks);
}
BENCHMARK(BM_Tasks_ThreadPool)->Name("tasks10k/concur::ThreadPool")->UseRealTime()->Unit(benchmark::kMicrosecond);

#ifdef CONCUR_HAVE_TBB
void BM_Tasks_TBB(benchmark::State& state) {
  tbb::global_control limit(tbb::global_control::max_allowed_parallelism, kWorkers);
  std::vector<int> out(kTasks);
  for (auto _ : state) {
    tbb::task_group group;
    for (int i = 0; i < kTasks; ++i) group.run([&out, i] { out[static_cast<std::size_t>(i)] = trivial(i); });
    group.wait();
    benchmark::DoNotOptimize(out.data());
  }
  state.SetItemsProcessed(state.iterations() * kTasks);
}
BENCHMARK(BM_Tasks_TBB)->Name("tasks10k/oneTBB task_group")->UseRealTime()->Unit(benchmark::kMicrosecond);
#endif

// --- a pool's whole life: construction, one map of 100 items, teardown ------

void BM_Lifecycle_Pool(benchmark::State& state) {
  std::vector<int> items(100);
  std::iota(items.begin(), items.end(), 0);
  for (auto _ : state) {
    mp::Pool pool(kWorkers);
    auto out = pool.map(trivial, items);
    benchmark::DoNotOptimize(out.data());
  }
}
BENCHMARK(BM_Lifecycle_Pool)->Name("lifecycle/concur::Pool")->UseRealTime()->Unit(benchmark::kMicrosecond);

void BM_Lifecycle_PoolOnce(benchmark::State& state) {
  std::vector<int> items(100);
  std::iota(items.begin(), items.end(), 0);
  for (auto _ : state) {
    mp::Pool pool(once());
    auto out = pool.map(trivial, items);
    benchmark::DoNotOptimize(out.data());
  }
}
BENCHMARK(BM_Lifecycle_PoolOnce)->Name("lifecycle/concur::Pool(once)")->UseRealTime()->Unit(benchmark::kMicrosecond);

void BM_Lifecycle_ThreadPool(benchmark::State& state) {
  std::vector<int> items(100);
  std::iota(items.begin(), items.end(), 0);
  for (auto _ : state) {
    mp::ThreadPool pool(kWorkers);
    auto out = pool.map(trivial, items);
    benchmark::DoNotOptimize(out.data());
  }
}
BENCHMARK(BM_Lifecycle_ThreadPool)->Name("lifecycle/concur::ThreadPool")->UseRealTime()->Unit(benchmark::kMicrosecond);

}  // namespace
