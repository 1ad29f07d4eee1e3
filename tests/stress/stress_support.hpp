// Shared by the stress tests: how long and how hard to hammer, a runner that
// starts the workers under a watchdog, and a collector for what the workers
// find wrong.
//
// A stress test ends at whichever comes first: its iteration budget or the
// stress time (CONCUR_STRESS_SECONDS, default 1.0 s). Budgets are counted in
// iterations per second of stress time for a release build and shrink under a
// sanitizer, so a release run finishes well inside the time and a TSan run on
// a small machine is cut by the time. CONCUR_STRESS_SECONDS=30 soaks 30 times
// as long and as hard.
//
// A deadlock must fail, never hang: the runner gives the workers the stress
// time plus kGrace; past it, it prints what each unfinished worker last said
// it was doing, runs the test's own diagnostics (itself bounded) and aborts.
// CONCUR_STRESS_VERBOSE=1 prints each run's iterations and time.
// Waits inside the workers are bounded too: a wait that a correct library
// always ends uses kHang and reports a failure when it times out.
//
// Workers are std::threads, so the stress tests do not depend on
// concur::threading::Thread.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "test_support.hpp"

#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
#define CONCUR_STRESS_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer) || __has_feature(address_sanitizer)
#define CONCUR_STRESS_SANITIZED 1
#endif
#endif

namespace concur::stress {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

// How much smaller the iteration budgets are in this build. Measured on two
// cores: the sanitizers slow the CPU-bound loops (Lock, RLock) four to eight
// times but hardly the ones that block, so budgets halve and the stress
// time cuts the rest.
#ifdef CONCUR_STRESS_SANITIZED
inline constexpr int kSlowdown = 2;
#else
inline constexpr int kSlowdown = 1;
#endif

// A wait that a correct library always ends well before this: long enough
// for 17 threads on two loaded cores under TSan, short enough to report a
// lost wake-up as a failure before the watchdog's kGrace runs out.
inline constexpr auto kHang = 20s;

// How long after the stress time the watchdog waits for the workers.
inline constexpr auto kGrace = 60s;

// The stress time in seconds: CONCUR_STRESS_SECONDS, else 1.0. A value that
// does not parse, is not positive or is above an hour is ignored.
inline double seconds() {
  static const double value = [] {
    const char* env = std::getenv("CONCUR_STRESS_SECONDS");
    if (env == nullptr || *env == '\0') return 1.0;
    char* end = nullptr;
    const double v = std::strtod(env, &end);
    if (end == env || !(v > 0) || v > 3600) return 1.0;
    return v;
  }();
  return value;
}

inline Clock::duration stress_time() {
  return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds()));
}

// An iteration budget: per_second iterations for each second of stress
// time in a release build, kSlowdown times fewer under a sanitizer; never 0.
inline long iterations(long per_second) {
  const double n = static_cast<double>(per_second) * seconds() / kSlowdown;
  return std::max(1L, static_cast<long>(n));
}

// Iterations left and time left, for a count kept by the test itself (a
// barrier action deciding when every party stops).
class Budget {
 public:
  explicit Budget(long iterations) : iterations_(iterations), end_(Clock::now() + stress_time()) {}
  bool more(long done) const { return done < iterations_ && Clock::now() < end_; }
  long iterations() const { return iterations_; }

 private:
  long iterations_;
  Clock::time_point end_;
};

class Failures;

namespace detail {

// Every live Failures, so the watchdog can print what the workers found
// before it aborts.
inline std::mutex& failures_registry_mutex() {
  static std::mutex m;
  return m;
}
inline std::vector<const Failures*>& failures_registry() {
  static std::vector<const Failures*> all;
  return all;
}

}  // namespace detail

// Failures seen inside the workers, where a gtest assertion would flood the
// output or return from the wrong function. Keeps the first few messages.
class Failures {
 public:
  Failures() {
    std::scoped_lock guard(detail::failures_registry_mutex());
    detail::failures_registry().push_back(this);
  }
  ~Failures() {
    std::scoped_lock guard(detail::failures_registry_mutex());
    auto& all = detail::failures_registry();
    all.erase(std::find(all.begin(), all.end(), this));
  }
  Failures(const Failures&) = delete;
  Failures& operator=(const Failures&) = delete;

  void add(std::string what) {
    count_.fetch_add(1, std::memory_order_relaxed);
    std::scoped_lock guard(mutex_);
    if (messages_.size() < kKept) messages_.push_back(std::move(what));
  }
  long count() const { return count_.load(std::memory_order_relaxed); }
  bool empty() const { return count() == 0; }
  std::string summary() const {
    std::scoped_lock guard(mutex_);
    std::string text = std::to_string(count()) + " failure(s) in the workers";
    for (const auto& m : messages_) text += "\n  " + m;
    if (count() > static_cast<long>(messages_.size())) text += "\n  ...";
    return text;
  }

 private:
  static constexpr std::size_t kKept = 8;
  std::atomic<long> count_{0};
  mutable std::mutex mutex_;
  std::vector<std::string> messages_;
};

// One worker's view of a run: its index, its budget, and what it says it is
// doing (printed by the watchdog if the run hangs).
class Worker {
 public:
  Worker(int index, long iterations, Clock::time_point end)
      : index_(index), iterations_(iterations), end_(end) {}

  int index() const { return index_; }
  // Counts one iteration; false once the iteration budget or the stress
  // time is spent.
  bool more() {
    const long done = ops_.load(std::memory_order_relaxed);
    if (done >= iterations_ || Clock::now() >= end_) return false;
    ops_.store(done + 1, std::memory_order_relaxed);
    return true;
  }
  // Counts one iteration of a loop whose length the test fixes itself.
  void tick() { ops_.store(ops_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed); }
  // A static string naming the step this worker is at, for the watchdog.
  void note(const char* what) { note_.store(what, std::memory_order_relaxed); }

  long ops() const { return ops_.load(std::memory_order_relaxed); }
  const char* last_note() const { return note_.load(std::memory_order_relaxed); }
  bool finished() const { return finished_.load(std::memory_order_acquire); }
  void set_finished() { finished_.store(true, std::memory_order_release); }

 private:
  const int index_;
  const long iterations_;
  const Clock::time_point end_;
  std::atomic<long> ops_{0};
  std::atomic<const char*> note_{"started"};
  std::atomic<bool> finished_{false};
};

namespace detail {

// Runs diagnose() on a thread of its own and gives it a few seconds: it may
// touch the very primitive that deadlocked.
inline void bounded_diagnose(const std::function<void()>& diagnose) {
  if (!diagnose) return;
  struct Shared {
    std::mutex m;
    std::condition_variable cv;
    bool done = false;
  };
  auto shared = std::make_shared<Shared>();
  std::thread([shared, diagnose] {
    diagnose();
    std::scoped_lock guard(shared->m);
    shared->done = true;
    shared->cv.notify_all();
  }).detach();
  std::unique_lock guard(shared->m);
  if (!shared->cv.wait_for(guard, 5s, [&] { return shared->done; })) {
    std::fprintf(stderr, "watchdog: the diagnostics themselves hung\n");
  }
}

}  // namespace detail

// Runs body(worker) on n std::threads, each worker with iterations_per_worker
// iterations and the stress time; returns once every body has returned. An
// exception escaping a body is a test failure. If the bodies have not all
// returned within the stress time plus kGrace, prints every unfinished
// worker's step and iteration count, calls diagnose and aborts.
template <class Body>
void run(const char* what, int n, long iterations_per_worker, Body&& body,
         std::function<void()> diagnose = {}) {
  const auto start = Clock::now();
  const auto end = start + stress_time();
  std::vector<std::unique_ptr<Worker>> workers;
  for (int i = 0; i < n; ++i)
    workers.push_back(std::make_unique<Worker>(i, iterations_per_worker, end));

  std::mutex m;
  std::condition_variable cv;
  int finished = 0;
  std::vector<std::thread> threads;
  threads.reserve(n);
  for (int i = 0; i < n; ++i) {
    threads.emplace_back([&, i] {
      Worker& w = *workers[i];
      try {
        body(w);
      } catch (const std::exception& e) {
        ADD_FAILURE() << what << ": worker " << i << " threw: " << e.what();
      } catch (...) {
        ADD_FAILURE() << what << ": worker " << i << " threw a non-std exception";
      }
      w.set_finished();
      std::scoped_lock guard(m);
      ++finished;
      cv.notify_all();
    });
  }

  {
    std::unique_lock guard(m);
    if (!cv.wait_until(guard, end + kGrace, [&] { return finished == n; })) {
      std::fprintf(stderr,
                   "\nwatchdog: %s: %d of %d workers still running %.1f s after the %.1f s "
                   "stress time ended: a deadlock or a lost wake-up\n",
                   what, n - finished, n, std::chrono::duration<double>(kGrace).count(), seconds());
      for (const auto& w : workers) {
        std::fprintf(stderr, "  worker %2d: %s after %ld iterations, at: %s\n", w->index(),
                     w->finished() ? "finished" : "RUNNING ", w->ops(), w->last_note());
      }
      {
        std::scoped_lock registry(detail::failures_registry_mutex());
        for (const Failures* f : detail::failures_registry()) {
          if (!f->empty()) std::fprintf(stderr, "  before that, %s\n", f->summary().c_str());
        }
      }
      std::fflush(stderr);
      guard.unlock();
      detail::bounded_diagnose(diagnose);
      concur::testing::dump_all_stacks();
      std::fflush(stderr);
      std::abort();
    }
  }
  for (auto& t : threads) t.join();
  if (std::getenv("CONCUR_STRESS_VERBOSE") != nullptr) {
    long total = 0;
    for (const auto& w : workers) total += w->ops();
    std::fprintf(stderr,
                 "[ stress   ] %s: %d workers, %ld iterations (budget %ld each) in %.3f s\n", what,
                 n, total, iterations_per_worker,
                 std::chrono::duration<double>(Clock::now() - start).count());
  }
}

}  // namespace concur::stress
