// The fault-injection seam (see fault_injection.hpp). Empty in the library
// that programs link.
#include "fault_injection.hpp"

#ifdef CONCUR_FAULT_INJECTION

#include <atomic>
#include <cerrno>

namespace concur::detail::fault {
namespace {

// Lock-free: inject() runs inside futex waits and right before fork.
struct Plan {
  std::atomic<int> error{0};
  std::atomic<int> skip{0};
  std::atomic<int> times{0};   // one-shot failures left
  std::atomic<int> period{0};  // > 0: every period-th call fails
  std::atomic<unsigned> calls{0};
  std::atomic<int> injected{0};
};

Plan g_plans[static_cast<int>(Call::kCount)];

Plan& plan_of(Call call) { return g_plans[static_cast<int>(call)]; }

// Takes one from `counter` if it is positive.
bool take_one(std::atomic<int>& counter) {
  int n = counter.load(std::memory_order_relaxed);
  while (n > 0) {
    if (counter.compare_exchange_weak(n, n - 1, std::memory_order_acq_rel)) return true;
  }
  return false;
}

}  // namespace

bool inject(Call call) noexcept {
  Plan& p = plan_of(call);
  bool fail = false;
  if (const int period = p.period.load(std::memory_order_acquire); period > 0) {
    fail = (p.calls.fetch_add(1, std::memory_order_relaxed) + 1) % static_cast<unsigned>(period) == 0;
  } else if (p.times.load(std::memory_order_acquire) > 0) {
    fail = !take_one(p.skip) && take_one(p.times);
  }
  if (!fail) return false;
  p.injected.fetch_add(1, std::memory_order_relaxed);
  errno = p.error.load(std::memory_order_relaxed);
  return true;
}

void arm(Call call, int error, int times, int skip) noexcept {
  Plan& p = plan_of(call);
  p.period.store(0, std::memory_order_relaxed);
  p.error.store(error, std::memory_order_relaxed);
  p.skip.store(skip, std::memory_order_relaxed);
  p.times.store(times, std::memory_order_release);
}

void arm_every(Call call, int error, int period) noexcept {
  Plan& p = plan_of(call);
  p.times.store(0, std::memory_order_relaxed);
  p.error.store(error, std::memory_order_relaxed);
  p.calls.store(0, std::memory_order_relaxed);
  p.period.store(period, std::memory_order_release);
}

void disarm_all() noexcept {
  for (Plan& p : g_plans) {
    p.period.store(0, std::memory_order_relaxed);
    p.times.store(0, std::memory_order_relaxed);
    p.skip.store(0, std::memory_order_relaxed);
    p.injected.store(0, std::memory_order_relaxed);
  }
}

int injected(Call call) noexcept { return plan_of(call).injected.load(std::memory_order_relaxed); }

}  // namespace concur::detail::fault

#endif  // CONCUR_FAULT_INJECTION
