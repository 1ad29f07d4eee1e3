// Shared by the tests: one bound for every wait, and small helpers that
// hand off between threads without sleeping.
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <iterator>
#include <ranges>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace concur::testing {

using namespace std::chrono_literals;

// Every wait in a test is bounded by this, so a broken build fails instead
// of hanging CI.
inline constexpr auto kTestTimeout = std::chrono::seconds(10);

// Prints the user-space stack of every thread of this process on stderr
// (gdb -batch "thread apply all bt", Debian gdb), for a watchdog about to
// fail a hung run. Bounded: gdb is killed after 60 s. Safe to call with
// other threads running: the child only execs.
inline void dump_all_stacks() {
  const std::string pid = std::to_string(::getpid());
  std::fflush(stderr);
  const pid_t child = ::fork();
  if (child < 0) return;
  if (child == 0) {
    ::dup2(2, 1);  // gdb's output goes with the watchdog's, on stderr
    ::execlp("gdb", "gdb", "-p", pid.c_str(), "-batch", "-nx", "-ex", "set pagination off", "-ex",
             "thread apply all bt", static_cast<char*>(nullptr));
    ::_exit(127);
  }
  ::prctl(PR_SET_PTRACER, child, 0, 0, 0);  // Yama: let this child attach to us
  for (int waited_ms = 0;; waited_ms += 10) {
    if (::waitpid(child, nullptr, WNOHANG) == child) return;
    if (waited_ms >= 60'000) {
      ::kill(child, SIGKILL);
      ::waitpid(child, nullptr, 0);
      return;
    }
    ::usleep(10'000);  // polls the end of a process that has no other signal to give
  }
}

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

// The state letter of /proc/.../stat (R, S, D, Z, ...), or 0 if it cannot be
// read (the task is gone). Plain read(): a vanishing task makes read() fail,
// which std::ifstream would turn into an exception.
inline char proc_state(const std::string& stat_path) {
  const int fd = ::open(stat_path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  char buf[512];
  const ssize_t n = ::read(fd, buf, sizeof buf - 1);
  ::close(fd);
  if (n <= 0) return 0;
  const std::string text(buf, static_cast<std::size_t>(n));
  const auto paren = text.rfind(')');
  return paren != std::string::npos && paren + 2 < text.size() ? text[paren + 2] : 0;
}

// True once the thread `tid` of this process is asleep in the kernel (state
// S: a futex wait, after any spinning). This is how a test knows a waiter is
// really inside wait() without sleeping itself.
inline bool blocked_in_kernel(long tid, std::chrono::steady_clock::duration bound = kTestTimeout) {
  const std::string path = "/proc/self/task/" + std::to_string(tid) + "/stat";
  return eventually([&] { return proc_state(path) == 'S'; }, bound);
}

// Runs body(i) in n std::threads and joins them.
inline void run_threads(int n, const std::function<void(int)>& body) {
  std::vector<std::thread> threads;
  threads.reserve(n);
  for (int i = 0; i < n; ++i) threads.emplace_back(body, i);
  for (auto& t : threads) t.join();
}

// A map's f that fails at items 5, 17 and 90 (std::domain_error "bad N"):
// every pool must report item 5, the lowest, whatever order its chunks end in.
inline int fails_at_5_17_90(int x) {
  if (x == 17 || x == 5 || x == 90) throw std::domain_error("bad " + std::to_string(x));
  return x;
}

// CPython's exception_throwing_generator(total, when): the ints 0..total-1,
// whose reading throws SayWhenError at `when` (-1: at the first). A view:
// the input itself fails, not f.
struct SayWhenError : std::runtime_error {
  using std::runtime_error::runtime_error;
};
inline auto exception_throwing_input(int total, int when) {
  return std::views::iota(0, total) | std::views::transform([when](int i) {
           if (i == when || (when == -1 && i == 0)) throw SayWhenError("somebody said when");
           return i;
         });
}
// The results a pool's imap gave before it threw `E`, and whether it did.
template <class E, class Range>
std::pair<std::vector<int>, bool> read_until_thrown(Range&& results) {
  std::vector<int> seen;
  try {
    for (int value : results) seen.push_back(value);
  } catch (const E&) {
    return {seen, true};
  }
  return {seen, false};
}

}  // namespace concur::testing
