// The watchdogs of the stress and soak tests print the stack of every
// thread before they fail a hung run (docs/guarantees.md).
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <string>
#include <thread>

#include "test_support.hpp"

namespace {

std::atomic<bool> g_release{false};

// A frame with a name to look for in the dump.
__attribute__((noinline)) void watchdog_test_parked_thread() {
  while (!g_release.load()) std::this_thread::yield();
}

TEST(Watchdog, DumpsTheStackOfEveryThread) {
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    ::dup2(fds[1], 2);
    ::close(fds[0]);
    ::close(fds[1]);
    std::thread parked(watchdog_test_parked_thread);
    concur::testing::dump_all_stacks();
    g_release = true;
    parked.join();
    ::_exit(0);
  }
  ::close(fds[1]);
  std::string out;
  char buf[4096];
  for (ssize_t n; (n = ::read(fds[0], buf, sizeof buf)) > 0;) out.append(buf, static_cast<std::size_t>(n));
  ::close(fds[0]);
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  EXPECT_NE(out.find("Thread 2"), std::string::npos) << out;
  EXPECT_NE(out.find("watchdog_test_parked_thread"), std::string::npos) << out;
}

}  // namespace
