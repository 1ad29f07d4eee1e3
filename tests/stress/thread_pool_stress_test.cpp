// ThreadPool under many producers: every task submitted runs exactly once,
// and close() or terminate() racing with submits never strands a task (its
// AsyncResult always becomes ready). The pool's queue is lock-free for
// producers, so these are the races its close/terminate handshake must win.
//
// A deadlock or a stranded task aborts through the watchdog in
// stress_support.hpp; each wait inside is bounded by kHang.
#include <gtest/gtest.h>

#include <atomic>
#include <memory>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "concur/detail/spin.hpp"
#include "concur/multiprocessing/thread_pool.hpp"
#include "concur/threading/event.hpp"
#include "stress_support.hpp"

namespace {

namespace mp = concur::multiprocessing;
namespace th = concur::threading;
namespace st = concur::stress;

class ThreadPoolStress : public ::testing::TestWithParam<int> {
 protected:
  int producers() const { return GetParam(); }
};

std::string producer_count_name(const ::testing::TestParamInfo<int>& info) {
  return std::to_string(info.param) + "producers";
}

INSTANTIATE_TEST_SUITE_P(Producers, ThreadPoolStress, ::testing::Values(1, 2, 4, 8),
                         producer_count_name);

// Producers mix apply_async batches and maps on one pool; each task bumps
// its own counter, so a task run twice or never shows.
TEST_P(ThreadPoolStress, EveryTaskFromManyProducersRunsExactlyOnce) {
  const int n = producers();
  constexpr int kBatch = 64;
  mp::ThreadPool pool(2);
  st::Failures failures;
  std::atomic<long> submitted{0};
  std::atomic<long> ran{0};

  st::run("ThreadPool producers", n, st::iterations(20'000) / n, [&](st::Worker& w) {
    std::minstd_rand rng(static_cast<unsigned>(w.index()) + 1);
    while (w.more()) {
      if (rng() % 4 == 0) {
        w.note("map");
        std::vector<int> items(static_cast<std::size_t>(rng() % 200));
        for (std::size_t i = 0; i < items.size(); ++i) items[i] = static_cast<int>(i);
        const auto out = pool.map([&](int x) {
          ran.fetch_add(1, std::memory_order_relaxed);
          return 3 * x;
        }, items, 1 + rng() % 8);
        submitted.fetch_add(static_cast<long>(items.size()), std::memory_order_relaxed);
        for (std::size_t i = 0; i < out.size(); ++i) {
          if (out[i] != 3 * items[i]) failures.add("map returned a wrong or misplaced result");
        }
        continue;
      }
      w.note("apply_async batch");
      auto counts = std::make_shared<std::vector<std::atomic<int>>>(kBatch);
      std::vector<mp::AsyncResult<int>> results;
      results.reserve(kBatch);
      for (int i = 0; i < kBatch; ++i) {
        results.push_back(pool.apply_async([counts, i, &ran] {
          (*counts)[static_cast<std::size_t>(i)].fetch_add(1, std::memory_order_relaxed);
          ran.fetch_add(1, std::memory_order_relaxed);
          return i;
        }));
      }
      submitted.fetch_add(kBatch, std::memory_order_relaxed);
      w.note("apply_async get");
      for (int i = 0; i < kBatch; ++i) {
        auto& r = results[static_cast<std::size_t>(i)];
        if (!r.wait(st::kHang)) {
          failures.add("an AsyncResult was not ready after kHang: a stranded task");
          return;
        }
        if (r.get() != i) failures.add("apply_async returned another task's result");
      }
      for (auto& c : *counts) {
        if (c.load() != 1) failures.add("a task ran " + std::to_string(c.load()) + " times");
      }
    }
  });

  EXPECT_TRUE(failures.empty()) << failures.summary();
  EXPECT_EQ(ran.load(), submitted.load());
  EXPECT_GT(submitted.load(), 0);
}

// Rounds of: a fresh pool, producers submitting as fast as they can, and
// close() or terminate() at a random moment. Every submit either throws
// std::invalid_argument or returns an AsyncResult that becomes ready:
// successful after close(); after terminate(), successful or failed with
// the pool's error -- never left waiting.
void race_with_shutdown(int n, bool terminate) {
  st::Failures failures;
  std::atomic<long> rounds{0};
  st::run(terminate ? "terminate racing submits" : "close racing submits", 1,
          st::iterations(300), [&](st::Worker& w) {
            std::minstd_rand rng(7);
            while (w.more()) {
              w.note("round");
              mp::ThreadPool pool(2);
              th::Event go;
              std::vector<std::vector<mp::AsyncResult<int>>> taken(static_cast<std::size_t>(n));
              std::vector<std::thread> threads;
              for (int p = 0; p < n; ++p) {
                threads.emplace_back([&, p] {
                  go.wait(st::kHang);
                  for (int i = 0; i < 2000; ++i) {
                    try {
                      taken[static_cast<std::size_t>(p)].push_back(pool.apply_async([i] { return i; }));
                    } catch (const std::invalid_argument&) {
                      return;  // closed: every later submit is refused too
                    }
                  }
                });
              }
              const unsigned delay = rng() % 2000;
              go.set();
              for (unsigned spin = 0; spin < delay; ++spin) concur::detail::cpu_relax();
              w.note(terminate ? "terminate" : "close");
              if (terminate) {
                pool.terminate();
              } else {
                pool.close();
              }
              for (auto& t : threads) t.join();
              w.note("waiting for the results");
              for (auto& results : taken) {
                for (std::size_t i = 0; i < results.size(); ++i) {
                  auto& r = results[i];
                  if (!r.wait(st::kHang)) {
                    failures.add("a task submitted around the shutdown was stranded");
                    return;
                  }
                  if (!terminate && !r.successful()) failures.add("close() failed a queued task");
                  if (r.successful() && r.get() != static_cast<int>(i)) {
                    failures.add("a result does not match its task");
                  }
                }
              }
              w.note("join");
              pool.join();
              rounds.fetch_add(1, std::memory_order_relaxed);
            }
          });
  EXPECT_TRUE(failures.empty()) << failures.summary();
  EXPECT_GT(rounds.load(), 0);
}

TEST_P(ThreadPoolStress, CloseRacingSubmitsStrandsNoTask) { race_with_shutdown(producers(), false); }

TEST_P(ThreadPoolStress, TerminateRacingSubmitsStrandsNoTask) {
  race_with_shutdown(producers(), true);
}

}  // namespace
