// Several processes hammer the process-shared primitives and the Queue for
// a bounded time; then the invariants are checked: exact counts, checksums
// of every item, barrier cycles in step.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <vector>

#include "concur/multiprocessing.hpp"

namespace {

namespace mp = concur::multiprocessing;
using namespace std::chrono_literals;

double stress_seconds() {
  const char* env = std::getenv("CONCUR_STRESS_SECONDS");
  return env != nullptr ? std::atof(env) : 0.5;
}

// Starts n processes running body(i, stop); stops them after the stress
// time and joins them with a bound (killing any that hang, which fails).
void hammer(int n, const std::function<void(int, mp::Event)>& body) {
  mp::Event stop;
  std::vector<std::unique_ptr<mp::Process>> procs;
  for (int i = 0; i < n; ++i) {
    procs.push_back(std::make_unique<mp::Process>([&body, i, stop] { body(i, stop); }));
    procs.back()->start();
  }
  mp::Event().wait(std::chrono::duration<double>(stress_seconds()));  // the stress time itself
  stop.set();
  for (auto& p : procs) {
    if (!p->join(60s)) {
      p->kill();
      p->join();
      ADD_FAILURE() << p->name() << " hung";
    }
    EXPECT_EQ(p->exitcode(), 0) << p->name();
  }
}

class Processes : public ::testing::TestWithParam<int> {};
INSTANTIATE_TEST_SUITE_P(Counts, Processes, ::testing::Values(2, 4));

TEST_P(Processes, ValueUnderItsLockCountsExactly) {
  mp::Value<long> counter(0);
  mp::Array<long> done(GetParam());
  hammer(GetParam(), [&](int i, mp::Event stop) {
    long mine = 0;
    while (!stop.is_set()) {
      std::scoped_lock guard(counter.get_lock());
      ++counter.value();
      ++mine;
    }
    done[i] = mine;
  });
  long total = 0;
  for (long d : done) total += d;
  EXPECT_EQ(counter.value(), total);
  EXPECT_GT(total, 0);
}

TEST_P(Processes, QueueCarriesEveryItemOnce) {
  const int producers = GetParam() / 2;
  mp::Queue<long> items(256);
  mp::Array<long> sent(producers);
  mp::Array<long> received(GetParam());
  mp::Value<int> producers_left(producers);
  hammer(GetParam(), [&](int i, mp::Event stop) {
    if (i < producers) {
      long sum = 0;
      for (long n = 1; !stop.is_set(); ++n) {
        const long v = i * 1'000'000'000L + n;
        try {
          items.put(v, 10ms);
        } catch (const concur::Full&) {
          continue;
        }
        sum += v;
      }
      sent[i] = sum;
      std::scoped_lock guard(producers_left.get_lock());
      --producers_left.value();
    } else {
      long sum = 0;
      for (;;) {
        try {
          sum += items.get(10ms);
        } catch (const concur::Empty&) {
          std::scoped_lock guard(producers_left.get_lock());
          if (producers_left.value() == 0 && items.empty()) break;
        }
      }
      received[i] = sum;
    }
  });
  long s = 0, r = 0;
  for (long v : sent) s += v;
  for (long v : received) r += v;
  EXPECT_EQ(s, r);
  EXPECT_TRUE(items.empty());
}

TEST_P(Processes, BarrierCyclesStayInStep) {
  const int parties = GetParam();
  mp::Value<long> actions(0);
  mp::Barrier barrier(parties, [&] { ++actions.value(); });
  mp::Array<long> cycles(parties);
  mp::Value<int> stop_all(0);
  hammer(parties, [&](int i, mp::Event stop) {
    for (;;) {
      barrier.wait(30s);
      ++cycles[i];
      if (stop.is_set()) std::atomic_ref<int>(stop_all.value()).store(1);
      barrier.wait(30s);
      if (std::atomic_ref<int>(stop_all.value()).load()) return;
    }
  });
  for (long c : cycles) EXPECT_EQ(c, cycles[0]);
  EXPECT_EQ(actions.value(), 2 * cycles[0]);
}

}  // namespace
