// Timeouts as absolute CLOCK_MONOTONIC deadlines, computed once per call so a
// wait that is woken early and goes back to sleep never extends its bound.
//
// Conventions (API.md): a negative or zero duration, or a time point already
// past, means one attempt that does not block; a duration too large to
// represent means "forever", without overflow.
#pragma once

#include <chrono>
#include <cstdint>
#include <limits>
#include <ratio>
#include <stdexcept>
#include <type_traits>

namespace concur::detail {

// Nanoseconds on CLOCK_MONOTONIC (std::chrono::steady_clock on Linux).
class Deadline {
 public:
  static constexpr std::int64_t kNever = std::numeric_limits<std::int64_t>::max();
  static constexpr std::int64_t kNow = std::numeric_limits<std::int64_t>::min();

  static constexpr Deadline never() { return Deadline(kNever); }
  static constexpr Deadline now_only() { return Deadline(kNow); }

  // A deadline `d` from now. Floating and integral durations of any period.
  template <class Rep, class Period>
  static Deadline after(std::chrono::duration<Rep, Period> d) {
    const std::int64_t ns = saturating_ns(d);
    if (ns <= 0) return now_only();
    if (ns == kNever) return never();
    const std::int64_t start = monotonic_ns();
    if (ns > kNever - start) return never();
    return Deadline(start + ns);
  }

  // A deadline at a time point of any clock. steady_clock is taken as is;
  // any other clock is converted through its own now().
  template <class Clock, class Dur>
  static Deadline at(std::chrono::time_point<Clock, Dur> t) {
    if constexpr (std::is_same_v<Clock, std::chrono::steady_clock>) {
      const std::int64_t ns = saturating_ns(t.time_since_epoch());
      if (ns == kNever) return never();
      return Deadline(ns <= monotonic_ns() ? kNow : ns);
    } else {
      return after(t - Clock::now());
    }
  }

  bool is_never() const { return ns_ == kNever; }
  bool is_now_only() const { return ns_ == kNow; }
  std::int64_t ns() const { return ns_; }
  bool expired() const { return ns_ != kNever && (ns_ == kNow || monotonic_ns() >= ns_); }
  // Nanoseconds left, 0 when expired; kNever for never.
  std::int64_t remaining_ns() const {
    if (ns_ == kNever) return kNever;
    if (ns_ == kNow) return 0;
    const std::int64_t left = ns_ - monotonic_ns();
    return left > 0 ? left : 0;
  }

  static std::int64_t monotonic_ns() {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
  }

  // d in nanoseconds, saturated to kNever above ~292 years, and to a
  // negative number below zero.
  template <class Rep, class Period>
  static std::int64_t saturating_ns(std::chrono::duration<Rep, Period> d) {
    if constexpr (std::is_floating_point_v<Rep>) {
      const long double ns = static_cast<long double>(d.count()) * Period::num * 1e9L / Period::den;
      if (ns != ns) return kNever;  // NaN: treat as forever rather than as garbage
      if (ns >= static_cast<long double>(kNever)) return kNever;
      if (ns <= 0) return ns < 0 ? -1 : 0;
      return static_cast<std::int64_t>(ns);
    } else {
      using Ns = std::chrono::duration<long double, std::nano>;
      const long double ns = std::chrono::duration_cast<Ns>(d).count();
      if (ns >= static_cast<long double>(kNever)) return kNever;
      if (ns < 0) return -1;
      return std::chrono::duration_cast<std::chrono::nanoseconds>(d).count();
    }
  }

 private:
  constexpr explicit Deadline(std::int64_t ns) : ns_(ns) {}
  std::int64_t ns_;
};

// For the calls where Python raises ValueError on a negative timeout
// (Lock.acquire, RLock.acquire, Queue.get, Queue.put).
template <class Rep, class Period>
Deadline checked_timeout(std::chrono::duration<Rep, Period> d, const char* call) {
  if (Deadline::saturating_ns(d) < 0) {
    throw std::invalid_argument(std::string(call) + ": timeout must be a non-negative duration");
  }
  return Deadline::after(d);
}

}  // namespace concur::detail
