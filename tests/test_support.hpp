// Shared by the tests: one bound for every wait, and small helpers that
// hand off between threads without sleeping.
#pragma once

#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <functional>
#include <iterator>
#include <thread>
#include <vector>

namespace concur::testing {

using namespace std::chrono_literals;

// Every wait in a test is bounded by this, so a broken build fails instead
// of hanging CI.
inline constexpr auto kTestTimeout = std::chrono::seconds(10);

// A short interval for checks that something does *not* happen soon.
inline constexpr auto kShort = std::chrono::milliseconds(50);

inline double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// Spins (yielding) until pred() holds or kTestTimeout passes; returns pred().
template <class Pred>
bool eventually(Pred pred, std::chrono::steady_clock::duration bound = kTestTimeout) {
  const auto deadline = std::chrono::steady_clock::now() + bound;
  while (!pred()) {
    if (std::chrono::steady_clock::now() > deadline) return pred();
    std::this_thread::yield();
  }
  return true;
}

inline long this_tid() { return ::syscall(SYS_gettid); }

// True once the thread `tid` of this process is asleep in the kernel (state
// S: a futex wait, after any spinning). This is how a test knows a waiter is
// really inside wait() without sleeping itself.
inline bool blocked_in_kernel(long tid, std::chrono::steady_clock::duration bound = kTestTimeout) {
  const std::string path = "/proc/self/task/" + std::to_string(tid) + "/stat";
  return eventually(
      [&] {
        std::ifstream in(path);
        std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        const auto paren = text.rfind(')');
        return paren != std::string::npos && paren + 2 < text.size() && text[paren + 2] == 'S';
      },
      bound);
}

// Runs body(i) in n std::threads and joins them.
inline void run_threads(int n, const std::function<void(int)>& body) {
  std::vector<std::thread> threads;
  threads.reserve(n);
  for (int i = 0; i < n; ++i) threads.emplace_back(body, i);
  for (auto& t : threads) t.join();
}

}  // namespace concur::testing
