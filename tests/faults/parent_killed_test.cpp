// A parent killed with SIGKILL takes its daemon children along within a
// second (PR_SET_PDEATHSIG), at every level and whichever thread started
// them; its non-daemon children run on, as in Python. Each case runs a
// helper program (tests/helpers/process_parent_killed.cpp) and kills it.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <sstream>
#include <string>

#include "helpers/process_spawn.hpp"
#include "multiprocessing/hygiene.hpp"

namespace {

using namespace concur::testing;
using namespace std::chrono_literals;

class ParentKilled : public HygieneTest {};

// Runs the helper in `mode`; returns the pids it printed.
std::vector<pid_t> start_helper(const char* mode, Spawned& s) {
  s = spawn_helper("process_parent_killed", mode);
  std::istringstream line(read_line(s.out));
  std::vector<pid_t> pids;
  pid_t pid;
  while (line >> pid) pids.push_back(pid);
  return pids;
}

void kill_and_reap(const Spawned& s) {
  ::kill(s.pid, SIGKILL);
  const auto status = wait_exit(s.pid);
  ASSERT_TRUE(status.has_value());
  EXPECT_TRUE(WIFSIGNALED(*status));
  ::close(s.out);
}

TEST_F(ParentKilled, DaemonChildVanishesWithinASecond) {
  Spawned s;
  const auto pids = start_helper("main", s);
  ASSERT_EQ(pids.size(), 1u);
  EXPECT_FALSE(pid_gone(pids[0]));
  kill_and_reap(s);
  EXPECT_TRUE(gone_within(pids[0], 1000ms));
}

// The thread that started the daemon child has ended before the parent is
// killed: the child lived on (PR_SET_PDEATHSIG is per thread), and still
// dies with the parent.
TEST_F(ParentKilled, DaemonChildStartedByAnEndedThreadVanishesWithinASecond) {
  Spawned s;
  const auto pids = start_helper("thread", s);
  ASSERT_EQ(pids.size(), 1u);
  EXPECT_FALSE(pid_gone(pids[0]));
  kill_and_reap(s);
  EXPECT_TRUE(gone_within(pids[0], 1000ms));
}

// One level down: a concur child killed takes its own daemon child along;
// the helper, joined on that child, then returns.
TEST_F(ParentKilled, DaemonGrandchildVanishesWhenItsParentIsKilled) {
  Spawned s;
  const auto pids = start_helper("nested", s);
  ASSERT_EQ(pids.size(), 2u);
  EXPECT_FALSE(pid_gone(pids[1]));
  ::kill(pids[0], SIGKILL);
  EXPECT_TRUE(gone_within(pids[1], 1000ms));
  const auto status = wait_exit(s.pid);
  ASSERT_TRUE(status.has_value());
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0);
  ::close(s.out);
}

TEST_F(ParentKilled, NonDaemonChildRunsOn) {
  Spawned s;
  const auto pids = start_helper("nondaemon", s);
  ASSERT_EQ(pids.size(), 1u);
  kill_and_reap(s);
  // Nothing will end it: the kernel would have done so within this bound.
  EXPECT_FALSE(gone_within(pids[0], 200ms));
  ::kill(pids[0], SIGKILL);  // no longer our descendant's child: init reaps it
  EXPECT_TRUE(gone_within(pids[0], 1000ms));
}

}  // namespace
