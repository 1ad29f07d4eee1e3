// The rules of Process and the module functions (API.md "Process").
#include "concur/multiprocessing/process.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>

#include "concur/multiprocessing/event.hpp"
#include "concur/multiprocessing/value.hpp"
#include "multiprocessing/hygiene.hpp"

extern char** environ;

namespace {

namespace mp = concur::multiprocessing;
using namespace concur::testing;

class ProcessTest : public HygieneTest {};

// Gone, or a zombie that its new parent has not reaped yet: it runs no more.
bool pid_gone(pid_t pid) {
  if (::kill(pid, 0) != 0 && errno == ESRCH) return true;
  const char state = proc_state("/proc/" + std::to_string(pid) + "/stat");
  return state == 0 || state == 'Z';
}

// Runs fn in a child with its stderr sent to a pipe; returns what it wrote.
std::string child_stderr(mp::Process& p) {
  int fds[2];
  EXPECT_EQ(::pipe(fds), 0);
  const int saved = ::dup(2);
  ::dup2(fds[1], 2);
  p.start();
  ::dup2(saved, 2);
  ::close(saved);
  ::close(fds[1]);
  EXPECT_TRUE(p.join(kTestTimeout));
  std::string out;
  char buf[256];
  ssize_t n;
  while ((n = ::read(fds[0], buf, sizeof buf)) > 0) out.append(buf, static_cast<std::size_t>(n));
  ::close(fds[0]);
  return out;
}

TEST_F(ProcessTest, TargetRunsInAChildWithItsArguments) {
  mp::Value<int> result(0);
  mp::Process p([result](int a, int b) mutable { result.value() = a * b; }, 6, 7);
  p.start();
  p.join();
  EXPECT_EQ(result.value(), 42);
  EXPECT_EQ(p.exitcode(), 0);
}

TEST_F(ProcessTest, ChildChangesStayInTheChild) {
  int local = 1;
  mp::Process p([&] { local = 2; });
  p.start();
  p.join();
  EXPECT_EQ(local, 1);
}

TEST_F(ProcessTest, ExitcodeIsNoneBeforeStartAndWhileRunning) {
  mp::Event release;
  mp::Process p([release]() mutable { release.wait(kTestTimeout); });
  EXPECT_FALSE(p.exitcode().has_value());
  p.start();
  EXPECT_FALSE(p.exitcode().has_value());
  EXPECT_TRUE(p.is_alive());
  release.set();
  p.join();
  EXPECT_EQ(p.exitcode(), 0);
  EXPECT_FALSE(p.is_alive());
}

TEST_F(ProcessTest, TargetThatThrowsGivesExitcodeOneAndPrints) {
  mp::Process p(mp::ProcessOptions{"thrower", false}, [] { throw std::domain_error("bad input"); });
  const std::string err = child_stderr(p);
  EXPECT_EQ(p.exitcode(), 1);
  EXPECT_NE(err.find("Process thrower:"), std::string::npos) << err;
  EXPECT_NE(err.find("std::domain_error: bad input"), std::string::npos) << err;
}

TEST_F(ProcessTest, ExitNGivesExitcodeN) {
  mp::Process p([] { std::exit(7); });
  p.start();
  p.join();
  EXPECT_EQ(p.exitcode(), 7);
  mp::Process q([] { ::_exit(3); });
  q.start();
  q.join();
  EXPECT_EQ(q.exitcode(), 3);
}

TEST_F(ProcessTest, KilledBySignalGivesMinusSignal) {
  mp::Process p([] { ::pause(); });
  p.start();
  p.kill();
  p.join();
  EXPECT_EQ(p.exitcode(), -SIGKILL);
  mp::Process q([] { ::pause(); });
  q.start();
  q.terminate();
  q.join();
  EXPECT_EQ(q.exitcode(), -SIGTERM);
  mp::Process r([] { std::abort(); });
  r.start();
  r.join();
  EXPECT_EQ(r.exitcode(), -SIGABRT);
}

TEST_F(ProcessTest, TimedJoinIsFalseWhileRunningThenTrue) {
  mp::Event release;
  mp::Process p([release]() mutable { release.wait(kTestTimeout); });
  p.start();
  EXPECT_FALSE(p.join(10ms));
  EXPECT_FALSE(p.join(0s));
  EXPECT_FALSE(p.join(-1s));
  release.set();
  EXPECT_TRUE(p.join(kTestTimeout));
  EXPECT_TRUE(p.join(0s));
}

TEST_F(ProcessTest, StartTwiceThrowsLogicError) {
  mp::Process p([] {});
  p.start();
  EXPECT_THROW(p.start(), std::logic_error);
  p.join();
}

TEST_F(ProcessTest, JoinBeforeStartThrowsLogicError) {
  mp::Process p([] {});
  EXPECT_THROW(p.join(), std::logic_error);
  EXPECT_THROW((void)p.join(1ms), std::logic_error);
}

TEST_F(ProcessTest, CloseWhileRunningThrowsLogicError) {
  mp::Event release;
  mp::Process p([release]() mutable { release.wait(kTestTimeout); });
  p.start();
  EXPECT_THROW(p.close(), std::logic_error);
  release.set();
  p.join();
  p.close();
}

TEST_F(ProcessTest, CallsAfterCloseThrowInvalidArgument) {
  mp::Process p([] {});
  p.start();
  p.join();
  p.close();
  p.close();  // again: nothing
  EXPECT_THROW(p.join(), std::invalid_argument);
  EXPECT_THROW(p.is_alive(), std::invalid_argument);
  EXPECT_THROW(p.exitcode(), std::invalid_argument);
  EXPECT_THROW(p.sentinel(), std::invalid_argument);
  EXPECT_THROW(p.terminate(), std::invalid_argument);
  EXPECT_THROW(p.start(), std::invalid_argument);
}

TEST_F(ProcessTest, SentinelBecomesReadableWhenTheChildEnds) {
  mp::Event release;
  mp::Process p([release]() mutable { release.wait(kTestTimeout); });
  EXPECT_THROW(p.sentinel(), std::invalid_argument);
  p.start();
  pollfd fd{p.sentinel(), POLLIN, 0};
  EXPECT_EQ(::poll(&fd, 1, 0), 0);
  release.set();
  EXPECT_EQ(::poll(&fd, 1, 10000), 1);
  p.join();
}

TEST_F(ProcessTest, PidIsSetOnceStarted) {
  mp::Value<int> seen(0);
  mp::Process p([seen]() mutable { seen.value() = ::getpid(); });
  EXPECT_FALSE(p.pid().has_value());
  p.start();
  ASSERT_TRUE(p.pid().has_value());
  p.join();
  EXPECT_EQ(*p.pid(), seen.value());
}

TEST_F(ProcessTest, DefaultNamesCountUp) {
  mp::Process a([] {});
  mp::Process b([] {});
  ASSERT_EQ(a.name().rfind("Process-", 0), 0u);
  EXPECT_EQ(std::stoi(b.name().substr(8)), std::stoi(a.name().substr(8)) + 1);
  mp::Process named(mp::ProcessOptions{"worker", false}, [] {});
  EXPECT_EQ(named.name(), "worker");
  named.set_name("renamed");
  EXPECT_EQ(named.name(), "renamed");
}

TEST_F(ProcessTest, ChildrenOfAChildAreNumberedUnderIt) {
  mp::Value<int> ok(0);
  mp::Process outer(mp::ProcessOptions{"", false}, [ok]() mutable {
    const std::string mine = mp::current_process().name;
    mp::Process inner([] {});
    ok.value() = inner.name() == mine + ":1" ? 1 : 2;
  });
  outer.start();
  outer.join();
  EXPECT_EQ(ok.value(), 1) << outer.name();
}

TEST_F(ProcessTest, DaemonFlagRules) {
  mp::Process p([] {});
  EXPECT_FALSE(p.daemon());
  p.set_daemon(true);
  EXPECT_TRUE(p.daemon());
  p.start();
  EXPECT_THROW(p.set_daemon(false), std::logic_error);
  p.join();
}

TEST_F(ProcessTest, DaemonProcessMayNotHaveChildren) {
  mp::Value<int> result(0);
  mp::Process p(mp::ProcessOptions{"", true}, [result]() mutable {
    mp::Process child([] {});
    try {
      child.start();
      child.join();
      result.value() = 2;
    } catch (const std::logic_error&) {
      result.value() = 1;
    }
  });
  p.start();
  p.join();
  EXPECT_EQ(result.value(), 1);
}

TEST_F(ProcessTest, SubclassOverridingRun) {
  struct Worker : mp::Process {
    explicit Worker(mp::Value<int> v) : out(v) {}
    void run() override { out.value() = 9; }
    mp::Value<int> out;
  };
  mp::Value<int> v(0);
  Worker w(v);
  w.start();
  w.join();
  EXPECT_EQ(v.value(), 9);
}

TEST_F(ProcessTest, DestroyingARunningProcessLeavesNoZombie) {
  mp::Event release;
  pid_t pid = 0;
  {
    mp::Process p([release]() mutable { release.wait(kTestTimeout); });
    p.start();
    pid = *p.pid();
  }
  EXPECT_FALSE(pid_gone(pid));  // destroying the object does not stop the child
  release.set();
  EXPECT_TRUE(eventually([&] { return pid_gone(pid); }));
}

TEST_F(ProcessTest, CurrentAndParentProcess) {
  EXPECT_EQ(mp::current_process().name, "MainProcess");
  EXPECT_EQ(mp::current_process().pid, ::getpid());
  EXPECT_FALSE(mp::parent_process().has_value());
  mp::Value<int> ok(0);
  const pid_t me = ::getpid();
  mp::Process p(mp::ProcessOptions{"kid", false}, [ok, me]() mutable {
    const auto cur = mp::current_process();
    const auto parent = mp::parent_process();
    ok.value() = cur.name == "kid" && cur.pid == ::getpid() && parent && parent->pid == me &&
                         parent->name == "MainProcess"
                     ? 1
                     : 2;
  });
  p.start();
  p.join();
  EXPECT_EQ(ok.value(), 1);
}

TEST_F(ProcessTest, CurrentProcessInABareForkChildReportsItsPid) {
  const pid_t child = ::fork();
  if (child == 0) ::_exit(mp::current_process().pid == ::getpid() ? 0 : 1);
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  EXPECT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
}

TEST_F(ProcessTest, ActiveChildrenListsRunningOnes) {
  mp::Event release;
  mp::Process p(mp::ProcessOptions{"listed", false},
                [release]() mutable { release.wait(kTestTimeout); });
  p.start();
  auto children = mp::active_children();
  bool found = false;
  for (const auto& c : children) found = found || (c.name == "listed" && c.pid == *p.pid());
  EXPECT_TRUE(found);
  release.set();
  p.join();
  for (const auto& c : mp::active_children()) EXPECT_NE(c.name, "listed");
}

TEST_F(ProcessTest, CpuCountRespectsAffinity) {
  const int n = mp::cpu_count();
  EXPECT_GE(n, 1);
  EXPECT_LE(n, static_cast<int>(::sysconf(_SC_NPROCESSORS_ONLN)));
  mp::Value<int> in_child(0);
  mp::Process p([in_child]() mutable {
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(0, &one);
    ::sched_setaffinity(0, sizeof one, &one);
    in_child.value() = mp::cpu_count();
  });
  p.start();
  p.join();
  EXPECT_EQ(in_child.value(), 1);
}

// --- helper programs ------------------------------------------------------------

struct Spawned {
  pid_t pid = -1;
  int out = -1;  // the read end of its stdout
};

Spawned spawn_helper(const std::string& name, const char* arg = nullptr) {
  int fds[2];
  EXPECT_EQ(::pipe2(fds, O_CLOEXEC), 0);
  posix_spawn_file_actions_t actions;
  ::posix_spawn_file_actions_init(&actions);
  ::posix_spawn_file_actions_adddup2(&actions, fds[1], 1);
  ::posix_spawn_file_actions_adddup2(&actions, fds[1], 2);
  const std::string path = std::string(CONCUR_HELPER_DIR) + "/" + name;
  char* argv[] = {const_cast<char*>(path.c_str()), const_cast<char*>(arg), nullptr};
  Spawned s;
  EXPECT_EQ(::posix_spawn(&s.pid, path.c_str(), &actions, nullptr, argv, environ), 0);
  ::posix_spawn_file_actions_destroy(&actions);
  ::close(fds[1]);
  s.out = fds[0];
  return s;
}

std::string read_line(int fd) {
  std::string line;
  char c;
  pollfd p{fd, POLLIN, 0};
  while (::poll(&p, 1, 10000) == 1 && ::read(fd, &c, 1) == 1 && c != '\n') line += c;
  return line;
}

std::string read_all(int fd) {
  std::string out;
  char buf[256];
  pollfd p{fd, POLLIN, 0};
  ssize_t n;
  while (::poll(&p, 1, 20000) == 1 && (n = ::read(fd, buf, sizeof buf)) > 0) {
    out.append(buf, static_cast<std::size_t>(n));
  }
  return out;
}

int wait_status(pid_t pid) {
  const auto status = [&] {
    int st = 0;
    for (int i = 0; i < 200000; ++i) {
      if (::waitpid(pid, &st, WNOHANG) == pid) return st;
      ::usleep(100);  // polling a helper's end, bounded to 20 s
    }
    ::kill(pid, SIGKILL);
    ::waitpid(pid, &st, 0);
    return -1;
  }();
  return status;
}

TEST_F(ProcessTest, StdioFlushedBeforeForkSoNothingPrintsTwice) {
  Spawned s = spawn_helper("process_no_double_print");
  const std::string out = read_all(s.out);
  ::close(s.out);
  EXPECT_EQ(wait_status(s.pid), 0) << out;
  EXPECT_EQ(out.find("buffered-before-fork"), out.rfind("buffered-before-fork")) << out;
  EXPECT_EQ(out.find("cout-before-fork"), out.rfind("cout-before-fork")) << out;
  EXPECT_NE(out.find("child"), std::string::npos) << out;
}

TEST_F(ProcessTest, ParentAtexitAndStaticsDoNotRunInTheChild) {
  Spawned s = spawn_helper("process_atexit_not_in_child");
  const std::string out = read_all(s.out);
  ::close(s.out);
  EXPECT_EQ(wait_status(s.pid), 0) << out;
  EXPECT_NE(out.find("child ran"), std::string::npos) << out;
  EXPECT_EQ(out.find("parent atexit"), out.rfind("parent atexit")) << out;
  EXPECT_NE(out.find("parent atexit"), std::string::npos) << out;
  EXPECT_EQ(out.find("static destructor"), out.rfind("static destructor")) << out;
}

TEST_F(ProcessTest, NonDaemonChildIsJoinedAtTheParentsExit) {
  Spawned s = spawn_helper("process_joins_at_exit");
  const std::string out = read_all(s.out);
  ::close(s.out);
  EXPECT_EQ(wait_status(s.pid), 0) << out;
  const auto main_line = out.find("main returning");
  const auto child_line = out.find("child done");
  ASSERT_NE(main_line, std::string::npos) << out;
  ASSERT_NE(child_line, std::string::npos) << out;
  EXPECT_LT(main_line, child_line);
}

TEST_F(ProcessTest, DaemonChildIsTerminatedAtTheParentsNormalExit) {
  Spawned s = spawn_helper("process_daemon_ends_with_parent");
  const pid_t child = std::stoi(read_line(s.out));
  const std::string rest = read_all(s.out);
  ::close(s.out);
  EXPECT_EQ(wait_status(s.pid), 0) << rest;
  EXPECT_TRUE(eventually([&] { return pid_gone(child); }, std::chrono::seconds(1)));
}

TEST_F(ProcessTest, DaemonChildDiesWithAKilledParent) {
  Spawned s = spawn_helper("process_daemon_ends_with_parent", "hang");
  const pid_t child = std::stoi(read_line(s.out));
  EXPECT_FALSE(pid_gone(child));
  ::kill(s.pid, SIGKILL);
  wait_status(s.pid);
  ::close(s.out);
  EXPECT_TRUE(eventually([&] { return pid_gone(child); }, std::chrono::seconds(1)));
}

}  // namespace
