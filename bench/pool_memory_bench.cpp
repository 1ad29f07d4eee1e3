// Peak memory of imap over 100,000,000 lazily produced items: the input is
// std::views::iota, never stored; at most 2 x workers chunks are in flight.
// Run each case alone (ru_maxrss is a per-process peak):
//   build/release/bench/bench_pool_memory_bench --benchmark_filter=imap100M/concur::Pool
//   build/release/bench/bench_pool_memory_bench --benchmark_filter=imap100M/concur::ThreadPool
#include <benchmark/benchmark.h>
#include <sys/resource.h>

#include <cstdint>
#include <ranges>

#include "concur/multiprocessing/pool.hpp"
#include "concur/multiprocessing/thread_pool.hpp"

namespace {

namespace mp = concur::multiprocessing;
constexpr std::int64_t kItems = 100'000'000;
constexpr std::size_t kChunk = 10'000;

double peak_mib(int who) {
  rusage usage{};
  ::getrusage(who, &usage);
  return static_cast<double>(usage.ru_maxrss) / 1024.0;
}

template <class Pool>
void run(benchmark::State& state) {
  const double before = peak_mib(RUSAGE_SELF);
  std::int64_t sum = 0;
  for (auto _ : state) {
    Pool pool(2);
    for (std::int64_t v : pool.imap([](std::int64_t x) { return x & 7; },
                                    std::views::iota(std::int64_t{0}, kItems), kChunk)) {
      sum += v;
    }
  }
  benchmark::DoNotOptimize(sum);
  state.counters["items"] = static_cast<double>(kItems);
  state.counters["peak_rss_MiB"] = peak_mib(RUSAGE_SELF);
  state.counters["peak_rss_before_MiB"] = before;
  state.counters["worker_peak_rss_MiB"] = peak_mib(RUSAGE_CHILDREN);
}

void BM_Pool(benchmark::State& state) { run<mp::Pool>(state); }
void BM_ThreadPool(benchmark::State& state) { run<mp::ThreadPool>(state); }
BENCHMARK(BM_Pool)->Name("imap100M/concur::Pool")->Iterations(1)->UseRealTime()->Unit(benchmark::kSecond);
BENCHMARK(BM_ThreadPool)->Name("imap100M/concur::ThreadPool")->Iterations(1)->UseRealTime()->Unit(benchmark::kSecond);

}  // namespace
