// concur::threading against its std peers, in one binary so every ratio
// comes from one run. scripts/bench.sh runs it; bench/compare.py prints the
// ratios; docs/benchmarks.md records them.
#include <benchmark/benchmark.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <barrier>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <semaphore>
#include <thread>

#include "concur/threading.hpp"

namespace {

namespace th = concur::threading;

// The floor: the smallest correct futex lock (Drepper's "mutex2"), inline.
class BareFutexLock {
 public:
  void lock() {
    std::uint32_t c = 0;
    if (word_.compare_exchange_strong(c, 1, std::memory_order_acquire)) return;
    if (c != 2) c = word_.exchange(2, std::memory_order_acquire);
    while (c != 0) {
      ::syscall(SYS_futex, &word_, FUTEX_WAIT_PRIVATE, 2, nullptr, nullptr, 0);
      c = word_.exchange(2, std::memory_order_acquire);
    }
  }
  void unlock() {
    if (word_.exchange(0, std::memory_order_release) == 2) {
      ::syscall(SYS_futex, &word_, FUTEX_WAKE_PRIVATE, 1, nullptr, nullptr, 0);
    }
  }

 private:
  std::atomic<std::uint32_t> word_{0};
};

// --- uncontended acquire + release --------------------------------------------

template <class L>
void BM_Uncontended(benchmark::State& state) {
  L lock;
  for (auto _ : state) {
    lock.lock();
    benchmark::ClobberMemory();
    lock.unlock();
  }
}
BENCHMARK(BM_Uncontended<th::Lock>)->Name("uncontended/concur::Lock");
BENCHMARK(BM_Uncontended<std::mutex>)->Name("uncontended/std::mutex");
BENCHMARK(BM_Uncontended<BareFutexLock>)->Name("uncontended/bare_futex_lock");
BENCHMARK(BM_Uncontended<th::RLock>)->Name("uncontended/concur::RLock");
BENCHMARK(BM_Uncontended<std::recursive_mutex>)->Name("uncontended/std::recursive_mutex");

void BM_SemaphoreConcur(benchmark::State& state) {
  th::Semaphore s(1);
  for (auto _ : state) {
    s.acquire();
    benchmark::ClobberMemory();
    s.release();
  }
}
BENCHMARK(BM_SemaphoreConcur)->Name("uncontended/concur::Semaphore");

void BM_SemaphoreStd(benchmark::State& state) {
  std::counting_semaphore<> s(1);
  for (auto _ : state) {
    s.acquire();
    benchmark::ClobberMemory();
    s.release();
  }
}
BENCHMARK(BM_SemaphoreStd)->Name("uncontended/std::counting_semaphore");

// --- two threads contending on one counter ------------------------------------

constexpr long kContendedIncrements = 1'000'000;

template <class L>
void BM_Contended(benchmark::State& state) {
  for (auto _ : state) {
    L lock;
    long counter = 0;
    auto work = [&] {
      for (long i = 0; i < kContendedIncrements / 2; ++i) {
        std::scoped_lock guard(lock);
        ++counter;
      }
    };
    std::thread a(work);
    std::thread b(work);
    a.join();
    b.join();
    benchmark::DoNotOptimize(counter);
  }
  state.SetItemsProcessed(state.iterations() * kContendedIncrements);
}
BENCHMARK(BM_Contended<th::Lock>)
    ->Name("contended2/concur::Lock")
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Contended<std::mutex>)
    ->Name("contended2/std::mutex")
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

// --- ping-pong round trip between two threads ---------------------------------

constexpr int kRoundTrips = 20000;

void BM_PingPongEvent(benchmark::State& state) {
  for (auto _ : state) {
    th::Event ping;
    th::Event pong;
    std::thread partner([&] {
      for (int i = 0; i < kRoundTrips; ++i) {
        ping.wait();
        ping.clear();
        pong.set();
      }
    });
    for (int i = 0; i < kRoundTrips; ++i) {
      ping.set();
      pong.wait();
      pong.clear();
    }
    partner.join();
  }
  state.SetItemsProcessed(state.iterations() * kRoundTrips);
}
BENCHMARK(BM_PingPongEvent)
    ->Name("pingpong/concur::Event")
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

void BM_PingPongAtomicWait(benchmark::State& state) {
  for (auto _ : state) {
    std::atomic<int> ping{0};
    std::atomic<int> pong{0};
    std::thread partner([&] {
      for (int i = 1; i <= kRoundTrips; ++i) {
        ping.wait(i - 1);
        pong.store(i);
        pong.notify_one();
      }
    });
    for (int i = 1; i <= kRoundTrips; ++i) {
      ping.store(i);
      ping.notify_one();
      pong.wait(i - 1);
    }
    partner.join();
  }
  state.SetItemsProcessed(state.iterations() * kRoundTrips);
}
BENCHMARK(BM_PingPongAtomicWait)
    ->Name("pingpong/std::atomic_wait")
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

void BM_PingPongBinarySemaphore(benchmark::State& state) {
  for (auto _ : state) {
    std::binary_semaphore ping(0);
    std::binary_semaphore pong(0);
    std::thread partner([&] {
      for (int i = 0; i < kRoundTrips; ++i) {
        ping.acquire();
        pong.release();
      }
    });
    for (int i = 0; i < kRoundTrips; ++i) {
      ping.release();
      pong.acquire();
    }
    partner.join();
  }
  state.SetItemsProcessed(state.iterations() * kRoundTrips);
}
BENCHMARK(BM_PingPongBinarySemaphore)
    ->Name("pingpong/std::binary_semaphore")
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

void BM_PingPongCondvar(benchmark::State& state) {
  for (auto _ : state) {
    std::mutex m;
    std::condition_variable cv;
    int turn = 0;
    std::thread partner([&] {
      for (int i = 0; i < kRoundTrips; ++i) {
        std::unique_lock guard(m);
        cv.wait(guard, [&] { return turn == 1; });
        turn = 0;
        cv.notify_one();
      }
    });
    for (int i = 0; i < kRoundTrips; ++i) {
      std::unique_lock guard(m);
      turn = 1;
      cv.notify_one();
      cv.wait(guard, [&] { return turn == 0; });
    }
    partner.join();
  }
  state.SetItemsProcessed(state.iterations() * kRoundTrips);
}
BENCHMARK(BM_PingPongCondvar)
    ->Name("pingpong/std::mutex+condition_variable")
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

void BM_PingPongCondition(benchmark::State& state) {
  for (auto _ : state) {
    th::Condition cond;
    int turn = 0;
    std::thread partner([&] {
      for (int i = 0; i < kRoundTrips; ++i) {
        std::scoped_lock guard(cond);
        cond.wait_for([&] { return turn == 1; });
        turn = 0;
        cond.notify();
      }
    });
    for (int i = 0; i < kRoundTrips; ++i) {
      std::scoped_lock guard(cond);
      turn = 1;
      cond.notify();
      cond.wait_for([&] { return turn == 0; });
    }
    partner.join();
  }
  state.SetItemsProcessed(state.iterations() * kRoundTrips);
}
BENCHMARK(BM_PingPongCondition)
    ->Name("pingpong/concur::Condition")
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

// --- barrier cycle with two threads -------------------------------------------

constexpr int kCycles = 20000;

void BM_BarrierConcur(benchmark::State& state) {
  for (auto _ : state) {
    th::Barrier barrier(2);
    std::thread partner([&] {
      for (int i = 0; i < kCycles; ++i) barrier.wait();
    });
    for (int i = 0; i < kCycles; ++i) barrier.wait();
    partner.join();
  }
  state.SetItemsProcessed(state.iterations() * kCycles);
}
BENCHMARK(BM_BarrierConcur)
    ->Name("barrier2/concur::Barrier")
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

void BM_BarrierStd(benchmark::State& state) {
  for (auto _ : state) {
    std::barrier barrier(2);
    std::thread partner([&] {
      for (int i = 0; i < kCycles; ++i) barrier.arrive_and_wait();
    });
    for (int i = 0; i < kCycles; ++i) barrier.arrive_and_wait();
    partner.join();
  }
  state.SetItemsProcessed(state.iterations() * kCycles);
}
BENCHMARK(BM_BarrierStd)
    ->Name("barrier2/std::barrier")
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

// --- sizes, as counters on one trivial case -------------------------------------

void BM_Sizes(benchmark::State& state) {
  for (auto _ : state) benchmark::DoNotOptimize(state.iterations());
  state.counters["concur::Lock"] = sizeof(th::Lock);
  state.counters["concur::RLock"] = sizeof(th::RLock);
  state.counters["concur::Semaphore"] = sizeof(th::Semaphore);
  state.counters["concur::Event"] = sizeof(th::Event);
  state.counters["concur::Condition"] = sizeof(th::Condition);
  state.counters["concur::Barrier"] = sizeof(th::Barrier);
  state.counters["std::mutex"] = sizeof(std::mutex);
  state.counters["std::recursive_mutex"] = sizeof(std::recursive_mutex);
  state.counters["std::counting_semaphore"] = sizeof(std::counting_semaphore<>);
  state.counters["std::binary_semaphore"] = sizeof(std::binary_semaphore);
  state.counters["std::condition_variable"] = sizeof(std::condition_variable);
  state.counters["std::barrier"] = sizeof(std::barrier<>);
}
BENCHMARK(BM_Sizes)->Name("sizes")->Iterations(1);

}  // namespace
