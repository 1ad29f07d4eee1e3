// timer_timeout: a deadline for work that has none of its own. A Timer calls
// a function once an interval has passed, unless cancel() came first. Here
// it sets an "expired" Event that the work checks between steps: a quick job
// finishes first and cancels its timer; a slow one is stopped by it.
//
// The Python it translates:
//
//   def run_with_deadline(steps, seconds):
//       expired = threading.Event()
//       timer = threading.Timer(seconds, expired.set)
//       timer.start()
//       done = 0
//       while done < steps and not expired.is_set():
//           download_chunk(); done += 1
//       timer.cancel()           # a no-op if it already fired
//       timer.join()
//       return done, expired.is_set()
//
// A Timer is a Thread that waits on an Event of its own for the interval, so
// cancel() wakes it at once and join() returns promptly. The callback runs
// in the timer's thread: keep it short and thread-safe (Event::set is).
//
// Exits 1 if the quick job was stopped, the slow one was not, or the slow
// one was stopped before its deadline.
#include <chrono>
#include <cstdio>
#include <thread>

#include "check.hpp"  // fail(): print why, exit 1 at once
#include "concur/concur.hpp"

namespace th = concur::threading;  // import threading
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

constexpr auto kStep = 5ms;       // one chunk of the download
constexpr int kMaxSteps = 1'000;  // bounds the loop whatever happens (5 s)
constexpr auto kDeadline = 100ms;

struct Outcome {
  int steps_done;
  bool expired;
  std::chrono::milliseconds took;
};

// Runs up to `steps` steps, stopping early when the deadline passes.
Outcome run_with_deadline(int steps) {
  th::Event expired;
  th::Timer timer(kDeadline, [&expired] { expired.set(); });  // Timer(0.1, expired.set)
  const auto start = Clock::now();
  timer.start();
  int done = 0;
  while (done < steps && done < kMaxSteps && !expired.is_set()) {
    std::this_thread::sleep_for(kStep);  // stands for the real work of one step
    ++done;
  }
  timer.cancel();  // nothing happens if it fired already
  if (!timer.join(5s)) fail("the timer did not end after cancel()");
  return {done, expired.is_set(),
          std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start)};
}

int main() {
  const Outcome quick = run_with_deadline(4);         // ~20 ms of work
  const Outcome slow = run_with_deadline(kMaxSteps);  // ~5 s of work: stopped at the deadline
  std::printf("deadline %lld ms: the quick job did %d of 4 steps in %lld ms; its timer %s\n",
              static_cast<long long>(kDeadline.count()), quick.steps_done,
              static_cast<long long>(quick.took.count()),
              quick.expired ? "fired anyway (a slow machine)" : "was cancelled before it fired");
  std::printf(
      "deadline %lld ms: the slow job was stopped after %d steps, at %lld ms; its timer %s\n",
      static_cast<long long>(kDeadline.count()), slow.steps_done,
      static_cast<long long>(slow.took.count()), slow.expired ? "fired" : "never fired");

  // The quick job's timer must not have fired... unless the machine was so
  // slow that 4 steps took longer than the deadline: only then is it allowed.
  const bool quick_ok = quick.steps_done == 4 && (!quick.expired || quick.took >= kDeadline);
  const bool slow_ok = slow.expired && slow.steps_done < kMaxSteps && slow.took >= kDeadline;
  if (!quick_ok || !slow_ok) fail("a deadline was not kept");
  return 0;
}
