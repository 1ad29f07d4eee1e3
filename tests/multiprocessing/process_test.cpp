// The rules of Process and the module functions (API.md "Process"; CPython's
// _TestProcess, _TestSubclassingProcess and _TestPollEintr where they apply).
#include "concur/multiprocessing/process.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "concur/multiprocessing/event.hpp"
#include "concur/multiprocessing/value.hpp"
#include "concur/threading/thread.hpp"
#include "helpers/process_spawn.hpp"
#include "multiprocessing/hygiene.hpp"

namespace {

namespace mp = concur::multiprocessing;
namespace th = concur::threading;
using namespace concur::testing;

class ProcessTest : public HygieneTest {};
class ProcessModule : public HygieneTest {};

// Starts p with the child's stderr on a pipe; joins it; returns the text.
std::string child_stderr(mp::Process& p) {
  int fds[2];
  EXPECT_EQ(::pipe2(fds, O_CLOEXEC), 0);
  std::fflush(stderr);
  const int saved = ::fcntl(2, F_DUPFD_CLOEXEC, 10);
  ::dup2(fds[1], 2);
  p.start();
  ::dup2(saved, 2);
  ::close(saved);
  ::close(fds[1]);
  EXPECT_TRUE(p.join(kTestTimeout));
  const std::string out = read_all(fds[0]);
  ::close(fds[0]);
  return out;
}

// For a child of ours: it has ended and been reaped (by concur), so its pid
// is free; polled, bounded.
bool reaped_within(pid_t pid, std::chrono::milliseconds bound = kTestTimeout) {
  return eventually([pid] { return ::kill(pid, 0) != 0 && errno == ESRCH; }, bound);
}

bool readable(int fd, int timeout_ms) {
  pollfd p{fd, POLLIN, 0};
  return ::poll(&p, 1, timeout_ms) == 1;
}

// Switches start() to the pipe sentinel for one test.
struct PipeSentinel {
  PipeSentinel() { concur::detail::set_sentinel_mode_for_testing(2); }
  ~PipeSentinel() { concur::detail::set_sentinel_mode_for_testing(0); }
};

// --- running a target ------------------------------------------------------

TEST_F(ProcessTest, TargetRunsInAChildWithItsArguments) {
  mp::Value<int> result(0);
  mp::Value<int> where(0);
  mp::Process p(
      [result, where](int a, const std::string& b) mutable {
        result.value() = a * static_cast<int>(b.size());
        where.value() = ::getpid();
      },
      6, std::string("seven!!"));
  p.start();
  p.join();
  EXPECT_EQ(result.value(), 42);
  EXPECT_NE(where.value(), ::getpid());
  EXPECT_EQ(p.exitcode(), 0);
}

TEST_F(ProcessTest, ArgumentsAreCopiedAtConstruction) {
  mp::Value<int> seen(0);
  int n = 1;
  mp::Process p([seen](int v) mutable { seen.value() = v; }, n);
  n = 2;
  p.start();
  p.join();
  EXPECT_EQ(seen.value(), 1);
}

TEST_F(ProcessTest, ChildChangesStayInTheChild) {
  int local = 1;
  mp::Process p([&local] { local = 2; });
  p.start();
  p.join();
  EXPECT_EQ(local, 1);
  EXPECT_EQ(p.exitcode(), 0);
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
  EXPECT_EQ(w.exitcode(), 0);
}

TEST_F(ProcessTest, NoTargetDoesNothingAndExitsZero) {
  mp::Process p;
  p.start();
  p.join();
  EXPECT_EQ(p.exitcode(), 0);
}

// CPython test_lose_target_ref: start() drops the parent's copy of the target.
TEST_F(ProcessTest, StartReleasesTheTargetInTheParent) {
  auto token = std::make_shared<int>(5);
  mp::Value<int> seen(0);
  mp::Process p([token, seen]() mutable { seen.value() = *token; });
  EXPECT_EQ(token.use_count(), 2);
  p.start();
  EXPECT_EQ(token.use_count(), 1);
  p.join();
  EXPECT_EQ(seen.value(), 5);
}

// --- exit codes --------------------------------------------------------------

TEST_F(ProcessTest, ExitcodeIsNoneBeforeStartAndWhileRunning) {
  mp::Event release;
  mp::Process p([release]() mutable { release.wait(kTestTimeout); });
  EXPECT_FALSE(p.exitcode().has_value());
  EXPECT_FALSE(p.is_alive());
  p.start();
  EXPECT_FALSE(p.exitcode().has_value());
  EXPECT_TRUE(p.is_alive());
  release.set();
  p.join();
  EXPECT_EQ(p.exitcode(), 0);
  EXPECT_FALSE(p.is_alive());
}

TEST_F(ProcessTest, TargetThatThrowsGivesExitcodeOneAndPrintsNameTypeAndMessage) {
  mp::Process p(mp::ProcessOptions{"thrower", false}, [] { throw std::domain_error("bad input"); });
  const std::string err = child_stderr(p);
  EXPECT_EQ(p.exitcode(), 1);
  EXPECT_NE(err.find("Process thrower:\nstd::domain_error: bad input\n"), std::string::npos) << err;
}

TEST_F(ProcessTest, NonStandardExceptionPrintsItsType) {
  mp::Process p(mp::ProcessOptions{"odd", false}, [] { throw 42; });
  const std::string err = child_stderr(p);
  EXPECT_EQ(p.exitcode(), 1);
  EXPECT_NE(err.find("Process odd:\nint\n"), std::string::npos) << err;
}

TEST_F(ProcessTest, ExceptionMessageUsesTheDefaultName) {
  mp::Process p([] { throw std::runtime_error("boom"); });
  const std::string err = child_stderr(p);
  EXPECT_EQ(p.exitcode(), 1);
  EXPECT_NE(err.find("Process " + p.name() + ":\nstd::runtime_error: boom\n"), std::string::npos)
      << err;
}

TEST_F(ProcessTest, ExitNGivesExitcodeN) {
  mp::Process p([] { std::exit(7); });
  p.start();
  p.join();
  EXPECT_EQ(p.exitcode(), 7);
}

TEST_F(ProcessTest, UnderscoreExitNGivesExitcodeN) {
  mp::Process p([] { ::_exit(3); });
  p.start();
  p.join();
  EXPECT_EQ(p.exitcode(), 3);
}

TEST_F(ProcessTest, KillGivesMinusSigkill) {
  mp::Event started;
  mp::Process p([started]() mutable {
    started.set();
    for (;;) ::pause();
  });
  p.start();
  ASSERT_TRUE(started.wait(kTestTimeout));
  p.kill();
  p.join();
  EXPECT_EQ(p.exitcode(), -SIGKILL);
}

TEST_F(ProcessTest, TerminateGivesMinusSigterm) {
  mp::Event started;
  mp::Process p([started]() mutable {
    started.set();
    for (;;) ::pause();
  });
  p.start();
  ASSERT_TRUE(started.wait(kTestTimeout));
  EXPECT_FALSE(p.join(0s));
  p.terminate();
  p.join();
  EXPECT_EQ(p.exitcode(), -SIGTERM);
  EXPECT_FALSE(p.is_alive());
}

TEST_F(ProcessTest, AbortGivesMinusSigabrt) {
  mp::Process p([] { std::abort(); });
  p.start();
  p.join();
  EXPECT_EQ(p.exitcode(), -SIGABRT);
}

// CPython test_many_processes: terminated straight after start, each one
// still reports -SIGTERM.
TEST_F(ProcessTest, TerminateRightAfterStartGivesMinusSigterm) {
  std::vector<std::unique_ptr<mp::Process>> procs;
  for (int i = 0; i < 20; ++i) {
    procs.push_back(std::make_unique<mp::Process>([] {
      for (;;) ::pause();
    }));
  }
  for (auto& p : procs) p->start();
  for (auto& p : procs) p->terminate();
  for (auto& p : procs) EXPECT_TRUE(p->join(kTestTimeout));
  for (auto& p : procs) EXPECT_EQ(p->exitcode(), -SIGTERM);
}

TEST_F(ProcessTest, SignalsAfterTheEndChangeNothing) {
  mp::Process p([] {});
  p.start();
  p.join();
  p.terminate();
  p.kill();
  EXPECT_EQ(p.exitcode(), 0);
}

TEST_F(ProcessTest, SignalBeforeStartThrowsLogicError) {
  mp::Process p([] {});
  EXPECT_THROW(p.terminate(), std::logic_error);
  EXPECT_THROW(p.kill(), std::logic_error);
}

// A last flush into a pipe nobody reads is no SIGPIPE death (Python ignores
// SIGPIPE; CPython test_error_on_stdio_flush).
TEST_F(ProcessTest, BrokenStdoutDoesNotChangeTheExitcode) {
  mp::Process p([] {
    int fds[2];
    if (::pipe(fds) != 0) ::_exit(9);
    ::close(fds[0]);
    ::dup2(fds[1], 1);
    std::printf("into a closed pipe");  // buffered: written by the last flush
  });
  p.start();
  p.join();
  EXPECT_EQ(p.exitcode(), 0);
}

// --- join ----------------------------------------------------------------------

TEST_F(ProcessTest, TimedJoinIsFalseWhileRunningThenTrue) {
  mp::Event release;
  mp::Process p([release]() mutable { release.wait(kTestTimeout); });
  p.start();
  const auto start = std::chrono::steady_clock::now();
  EXPECT_FALSE(p.join(20ms));
  EXPECT_GE(seconds_since(start), 0.019);
  EXPECT_FALSE(p.join(0s));
  EXPECT_FALSE(p.join(-1s));
  EXPECT_TRUE(p.is_alive());
  release.set();
  EXPECT_TRUE(p.join(kTestTimeout));
  EXPECT_TRUE(p.join(0s));
  EXPECT_TRUE(p.join(-1s));
  EXPECT_EQ(p.exitcode(), 0);
}

TEST_F(ProcessTest, HugeJoinTimeoutWaitsForever) {
  mp::Event release;
  mp::Process p([release]() mutable { release.wait(kTestTimeout); });
  p.start();
  release.set();
  EXPECT_TRUE(p.join(std::chrono::hours::max()));
  EXPECT_TRUE(p.join(std::chrono::duration<double>(1e300)));
  EXPECT_EQ(p.exitcode(), 0);
}

TEST_F(ProcessTest, JoinBeforeStartThrowsLogicError) {
  mp::Process p([] {});
  EXPECT_THROW(p.join(), std::logic_error);
  EXPECT_THROW((void)p.join(1ms), std::logic_error);
}

TEST_F(ProcessTest, SeveralThreadsMayJoinAtOnce) {
  mp::Event release;
  mp::Process p([release]() mutable { release.wait(kTestTimeout); });
  p.start();
  std::atomic<int> joined{0};
  std::vector<std::thread> joiners;
  for (int i = 0; i < 4; ++i) {
    joiners.emplace_back([&, i] {
      if (i % 2 ? p.join(kTestTimeout) : (p.join(), true)) joined.fetch_add(1);
    });
  }
  release.set();
  for (auto& t : joiners) t.join();
  EXPECT_EQ(joined.load(), 4);
  EXPECT_EQ(p.exitcode(), 0);
}

int g_usr1_count = 0;
extern "C" void count_usr1(int) { ++g_usr1_count; }

// CPython test_poll_eintr: a signal handler interrupting join() does not end it.
TEST_F(ProcessTest, JoinGoesOnAfterASignalHandlerRuns) {
  struct sigaction action {
  }, old{};
  action.sa_handler = &count_usr1;  // no SA_RESTART: waits fail with EINTR
  ::sigemptyset(&action.sa_mask);
  ASSERT_EQ(::sigaction(SIGUSR1, &action, &old), 0);
  g_usr1_count = 0;
  mp::Event release;
  mp::Process sleeper([release]() mutable { release.wait(kTestTimeout); });
  sleeper.start();
  const pid_t me = ::getpid();
  mp::Process killer([me, release]() mutable {
    ::kill(me, SIGUSR1);
    release.set();
  });
  killer.start();
  sleeper.join();
  killer.join();
  EXPECT_EQ(sleeper.exitcode(), 0);
  EXPECT_EQ(killer.exitcode(), 0);
  EXPECT_EQ(g_usr1_count, 1);
  ::sigaction(SIGUSR1, &old, nullptr);
}

// --- misuse ----------------------------------------------------------------------

TEST_F(ProcessTest, StartTwiceThrowsLogicError) {
  mp::Event release;
  mp::Process p([release]() mutable { release.wait(kTestTimeout); });
  p.start();
  EXPECT_THROW(p.start(), std::logic_error);
  release.set();
  p.join();
  EXPECT_THROW(p.start(), std::logic_error);
}

TEST_F(ProcessTest, CloseWhileRunningThrowsInvalidArgument) {
  mp::Event release;
  mp::Process p([release]() mutable { release.wait(kTestTimeout); });
  p.start();
  EXPECT_THROW(p.close(), std::invalid_argument);  // Python: ValueError
  EXPECT_TRUE(p.is_alive());
  release.set();
  p.join();
  p.close();
}

TEST_F(ProcessTest, CallsAfterCloseThrowInvalidArgument) {
  mp::Process p(mp::ProcessOptions{"closing", false}, [] {});
  p.start();
  p.join();
  EXPECT_EQ(p.exitcode(), 0);
  p.close();
  p.close();  // again: nothing
  EXPECT_THROW(p.join(), std::invalid_argument);
  EXPECT_THROW((void)p.join(1ms), std::invalid_argument);
  EXPECT_THROW(p.is_alive(), std::invalid_argument);
  EXPECT_THROW(p.sentinel(), std::invalid_argument);
  EXPECT_THROW(p.terminate(), std::invalid_argument);
  EXPECT_THROW(p.kill(), std::invalid_argument);
  EXPECT_THROW(p.pid(), std::invalid_argument);
  EXPECT_THROW(p.start(), std::invalid_argument);
  EXPECT_FALSE(p.exitcode().has_value());  // Python: None once closed
  EXPECT_EQ(p.name(), "closing");
}

TEST_F(ProcessTest, CloseBeforeStartThenStartThrowsInvalidArgument) {
  mp::Process p([] {});
  p.close();
  EXPECT_THROW(p.start(), std::invalid_argument);
}

TEST_F(ProcessTest, DaemonFlagRules) {
  mp::Process p([] {});
  EXPECT_FALSE(p.daemon());
  p.set_daemon(true);
  EXPECT_TRUE(p.daemon());
  p.set_daemon(false);
  p.set_daemon(true);
  p.start();
  EXPECT_THROW(p.set_daemon(false), std::logic_error);
  EXPECT_TRUE(p.daemon());
  p.join();
  EXPECT_THROW(p.set_daemon(false), std::logic_error);
  mp::Process q(mp::ProcessOptions{"", true}, [] {});
  EXPECT_TRUE(q.daemon());
}

TEST_F(ProcessTest, DaemonProcessMayNotHaveChildren) {
  mp::Value<int> result(0);
  mp::Process p(mp::ProcessOptions{"", true}, [result]() mutable {
    mp::Process child([] {});
    EXPECT_TRUE(child.daemon());  // the default is the creating process's flag, as Python
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
  EXPECT_EQ(p.exitcode(), 0);
}

// In the child, its own Process object: alive, its own pid, not joinable.
TEST_F(ProcessTest, TheChildSeesItselfAliveAndCannotJoinItself) {
  mp::Value<int> alive(0), pid_ok(0), join_refused(0), exitcode_none(0);
  std::unique_ptr<mp::Process> p;
  p = std::make_unique<mp::Process>([&p, alive, pid_ok, join_refused, exitcode_none]() mutable {
    alive.value() = p->is_alive() ? 1 : 2;
    pid_ok.value() = p->pid() == ::getpid() ? 1 : 2;
    exitcode_none.value() = p->exitcode().has_value() ? 2 : 1;
    try {
      p->join();
      join_refused.value() = 2;
    } catch (const std::logic_error&) {
      join_refused.value() = 1;
    }
  });
  p->start();
  p->join();
  EXPECT_EQ(p->exitcode(), 0);
  EXPECT_EQ(alive.value(), 1);
  EXPECT_EQ(pid_ok.value(), 1);
  EXPECT_EQ(exitcode_none.value(), 1);
  EXPECT_EQ(join_refused.value(), 1);
}

// A Process object made by the parent cannot be started in a child.
TEST_F(ProcessTest, OnlyTheCreatingProcessMayStartIt) {
  mp::Process unstarted([] {});
  mp::Value<int> refused(0);
  mp::Process p([&unstarted, refused]() mutable {
    try {
      unstarted.start();
      refused.value() = 2;
    } catch (const std::logic_error&) {
      refused.value() = 1;
    }
  });
  p.start();
  p.join();
  EXPECT_EQ(refused.value(), 1);
}

// --- sentinel and pid ----------------------------------------------------------

TEST_F(ProcessTest, SentinelBecomesReadableWhenTheChildEnds) {
  mp::Event release;
  mp::Process p([release]() mutable { release.wait(kTestTimeout); });
  EXPECT_THROW(p.sentinel(), std::invalid_argument);
  p.start();
  const int fd = p.sentinel();
  EXPECT_GE(fd, 0);
  EXPECT_FALSE(readable(fd, 0));
  release.set();
  EXPECT_TRUE(readable(fd, 10000));
  p.join();
  EXPECT_TRUE(readable(fd, 0));  // and it stays readable
  EXPECT_EQ(p.sentinel(), fd);
}

TEST_F(ProcessTest, PipeSentinelWhenPidfdIsUnavailable) {
  PipeSentinel mode;
  mp::Event release;
  mp::Process p([release]() mutable { release.wait(kTestTimeout); });
  p.start();
  const int fd = p.sentinel();
  EXPECT_FALSE(readable(fd, 0));
  EXPECT_FALSE(p.join(0s));
  release.set();
  EXPECT_TRUE(readable(fd, 10000));
  EXPECT_TRUE(p.join(kTestTimeout));
  EXPECT_EQ(p.exitcode(), 0);
  mp::Process q([] {
    for (;;) ::pause();
  });
  q.start();
  q.kill();
  q.join();
  EXPECT_EQ(q.exitcode(), -SIGKILL);
}

// The write end of a pipe sentinel is closed in the child's own children:
// a grandchild that lives on does not hold the child's sentinel.
TEST_F(ProcessTest, PipeSentinelIsNotHeldByGrandchildren) {
  PipeSentinel mode;
  mp::Event release;
  mp::Value<int> grandchild(0);
  mp::Process p([release, grandchild]() mutable {
    const pid_t pid = ::fork();  // a bare fork: concur does not wait for it
    if (pid == 0) {
      release.wait(kTestTimeout);
      ::_exit(0);
    }
    grandchild.value() = pid;
  });
  p.start();
  EXPECT_TRUE(readable(p.sentinel(), 10000));
  p.join();
  EXPECT_EQ(p.exitcode(), 0);
  EXPECT_FALSE(pid_gone(grandchild.value()));
  release.set();
  EXPECT_TRUE(gone_within(grandchild.value(), kTestTimeout));
}

TEST_F(ProcessTest, DestroyedOrphanWithPipeSentinelIsReaped) {
  PipeSentinel mode;
  mp::Event release;
  pid_t pid = 0;
  {
    mp::Process p([release]() mutable { release.wait(kTestTimeout); });
    p.start();
    pid = *p.pid();
  }
  release.set();
  EXPECT_TRUE(reaped_within(pid));
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

// --- names -------------------------------------------------------------------------

TEST_F(ProcessTest, DefaultNamesCountUp) {
  mp::Process a([] {});
  mp::Process b;
  mp::Process named(mp::ProcessOptions{"worker", false}, [] {});
  mp::Process c([] {});
  ASSERT_EQ(a.name().rfind("Process-", 0), 0u);
  const int first = std::stoi(a.name().substr(8));
  EXPECT_GE(first, 1);
  EXPECT_EQ(b.name(), "Process-" + std::to_string(first + 1));
  EXPECT_EQ(named.name(), "worker");  // a named one takes a number too, as Python
  EXPECT_EQ(c.name(), "Process-" + std::to_string(first + 3));
  named.set_name("renamed");
  EXPECT_EQ(named.name(), "renamed");
}

TEST_F(ProcessTest, ChildrenOfAChildAreNumberedUnderIt) {
  mp::Value<int> ok(0);
  mp::Process outer([ok]() mutable {
    const std::string mine = mp::current_process().name;
    mp::Process first([] {});
    mp::Process second([] {});
    ok.value() = first.name() == mine + ":1" && second.name() == mine + ":2" ? 1 : 2;
    mp::Process nested([ok, mine]() mutable {
      mp::Process inner([] {});
      if (inner.name() != mine + ":3:1") ok.value() = 3;
    });
    nested.start();
    nested.join();
  });
  outer.start();
  outer.join();
  EXPECT_EQ(outer.exitcode(), 0);
  EXPECT_EQ(ok.value(), 1) << outer.name();
}

// The numbers follow Python's _identity, whatever the name.
TEST_F(ProcessTest, NamedChildNumbersItsChildrenByItsIdentity) {
  mp::Process probe([] {});
  const int next = std::stoi(probe.name().substr(8)) + 1;
  mp::Value<int> ok(0);
  mp::Process named(mp::ProcessOptions{"boss", false}, [ok, next]() mutable {
    mp::Process inner([] {});
    ok.value() = mp::current_process().name == "boss" &&
                         inner.name() == "Process-" + std::to_string(next) + ":1"
                     ? 1
                     : 2;
  });
  named.start();
  named.join();
  EXPECT_EQ(ok.value(), 1);
}

// --- lifetime, reaping ---------------------------------------------------------

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
  EXPECT_TRUE(reaped_within(pid));  // reaped by concur: not even a zombie is left
}

TEST_F(ProcessTest, ManyDestroyedProcessesAreAllReaped) {
  std::vector<mp::Event> releases(8);
  std::vector<pid_t> pids;
  for (auto& release : releases) {
    mp::Process p([release]() mutable { release.wait(kTestTimeout); });
    p.start();
    pids.push_back(*p.pid());
  }
  for (std::size_t i = releases.size(); i-- > 0;) releases[i].set();
  for (pid_t pid : pids) EXPECT_TRUE(reaped_within(pid));
}

TEST_F(ProcessTest, DestroyingAFinishedProcessReapsIt) {
  pid_t pid = 0;
  {
    mp::Process p([] {});
    p.start();
    pid = *p.pid();
    EXPECT_TRUE(readable(p.sentinel(), 10000));  // ended, not yet reaped
  }
  EXPECT_NE(::kill(pid, 0), 0);  // reaped by the destructor
}

// Python's _bootstrap: a child that finishes its target terminates its
// daemon children and joins the others before it ends.
TEST_F(ProcessTest, ChildFinishesItsOwnChildrenWhenItsTargetEnds) {
  mp::Event release;
  mp::Value<int> daemon_pid(0), worker_pid(0), target_done(0);
  mp::Process p([=]() mutable {
    auto* daemon = new mp::Process(mp::ProcessOptions{"", true}, [] {
      for (;;) ::pause();
    });
    auto* worker = new mp::Process([release]() mutable { release.wait(kTestTimeout); });
    daemon->start();
    worker->start();
    daemon_pid.value() = *daemon->pid();
    worker_pid.value() = *worker->pid();
    target_done.value() = 1;  // the objects are never destroyed, never joined
  });
  p.start();
  EXPECT_TRUE(eventually([&] { return target_done.value() == 1; }));
  EXPECT_FALSE(p.join(kShort));  // waits for the non-daemon grandchild
  EXPECT_TRUE(gone_within(daemon_pid.value(), kTestTimeout));  // terminated meanwhile
  release.set();
  EXPECT_TRUE(p.join(kTestTimeout));
  EXPECT_EQ(p.exitcode(), 0);
  EXPECT_TRUE(pid_gone(worker_pid.value()));
}

// The same at exit(): exit(N) in a child finishes its children, then gives N.
TEST_F(ProcessTest, ExitInAChildFinishesItsChildren) {
  mp::Value<int> daemon_pid(0);
  mp::Process p([daemon_pid]() mutable {
    auto* daemon = new mp::Process(mp::ProcessOptions{"", true}, [] {
      for (;;) ::pause();
    });
    daemon->start();
    daemon_pid.value() = *daemon->pid();
    std::exit(4);
  });
  p.start();
  EXPECT_TRUE(p.join(kTestTimeout));
  EXPECT_EQ(p.exitcode(), 4);
  EXPECT_TRUE(pid_gone(daemon_pid.value()));
}

// CPython test_wait_for_threads: a child waits for its non-daemon threads.
TEST_F(ProcessTest, ChildWaitsForItsNonDaemonThreads) {
  mp::Event go, target_done, thread_done;
  mp::Process q([=]() mutable {
    auto* worker = new th::Thread([=]() mutable {
      go.wait(kTestTimeout);
      thread_done.set();
    });
    auto* idler = new th::Thread(th::ThreadOptions{"", true}, [] {
      for (;;) ::pause();
    });
    worker->start();
    idler->start();
    target_done.set();  // returns with both threads running, objects alive
  });
  q.start();
  ASSERT_TRUE(target_done.wait(kTestTimeout));
  EXPECT_FALSE(q.join(kShort));
  go.set();
  EXPECT_TRUE(q.join(kTestTimeout));
  EXPECT_TRUE(thread_done.is_set());
  EXPECT_EQ(q.exitcode(), 0);
}

// --- PR_SET_PDEATHSIG and the thread that starts a daemon ---------------------

// The kernel sends PR_SET_PDEATHSIG when the forking *thread* ends: a daemon
// child started by a thread that has ended must live on.
TEST_F(ProcessTest, DaemonStartedByAThreadThatEndsLivesOn) {
  mp::Event release;
  std::unique_ptr<mp::Process> p;
  std::atomic<long> tid{0};
  std::thread starter([&] {
    tid = this_tid();
    p = std::make_unique<mp::Process>(mp::ProcessOptions{"", true},
                                      [release]() mutable { release.wait(kTestTimeout); });
    p->start();
  });
  starter.join();
  // Once the thread is gone from the kernel, any death signal has been sent.
  EXPECT_TRUE(eventually(
      [&] { return proc_state("/proc/self/task/" + std::to_string(tid.load()) + "/stat") == 0; }));
  release.set();
  EXPECT_TRUE(p->join(kTestTimeout));
  EXPECT_EQ(p->exitcode(), 0);  // not -SIGKILL
}

// The child of such a start is still the caller's: its signal mask and
// CPU affinity, and the rules of the child (name, current_process()).
TEST_F(ProcessTest, DaemonStartedByAThreadKeepsTheCallersAttributes) {
  mp::Value<int> usr2_blocked(0), cpus(0), named(0);
  std::unique_ptr<mp::Process> p;
  std::thread starter([&] {
    sigset_t usr2;
    ::sigemptyset(&usr2);
    ::sigaddset(&usr2, SIGUSR2);
    ::pthread_sigmask(SIG_BLOCK, &usr2, nullptr);
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(0, &one);
    ::sched_setaffinity(0, sizeof one, &one);
    p = std::make_unique<mp::Process>(mp::ProcessOptions{"pinned", true}, [=]() mutable {
      sigset_t now;
      ::pthread_sigmask(SIG_SETMASK, nullptr, &now);
      usr2_blocked.value() = ::sigismember(&now, SIGUSR2) && !::sigismember(&now, SIGTERM) ? 1 : 2;
      cpus.value() = mp::cpu_count();
      named.value() =
          mp::current_process().name == "pinned" && mp::current_process().daemon ? 1 : 2;
    });
    p->start();
  });
  starter.join();
  EXPECT_TRUE(p->join(kTestTimeout));
  EXPECT_EQ(p->exitcode(), 0);
  EXPECT_EQ(usr2_blocked.value(), 1);
  EXPECT_EQ(cpus.value(), 1);
  EXPECT_EQ(named.value(), 1);
}

TEST_F(ProcessTest, DaemonStartedByAThreadCanBeTerminated) {
  mp::Event started;
  std::unique_ptr<mp::Process> p;
  std::thread starter([&] {
    p = std::make_unique<mp::Process>(mp::ProcessOptions{"", true}, [started]() mutable {
      started.set();
      for (;;) ::pause();
    });
    p->start();
  });
  starter.join();
  ASSERT_TRUE(started.wait(kTestTimeout));
  p->terminate();
  EXPECT_TRUE(p->join(kTestTimeout));
  EXPECT_EQ(p->exitcode(), -SIGTERM);
}

// --- module functions ------------------------------------------------------------

TEST_F(ProcessModule, CurrentProcessInTheMainProcess) {
  const auto cur = mp::current_process();
  EXPECT_EQ(cur.name, "MainProcess");
  EXPECT_EQ(cur.pid, ::getpid());
  EXPECT_FALSE(cur.daemon);
  EXPECT_FALSE(mp::parent_process().has_value());
}

TEST_F(ProcessModule, CurrentAndParentProcessInAChild) {
  mp::Value<int> ok(0);
  const pid_t me = ::getpid();
  mp::Process p(mp::ProcessOptions{"kid", true}, [ok, me]() mutable {
    const auto cur = mp::current_process();
    const auto parent = mp::parent_process();
    ok.value() = cur.name == "kid" && cur.pid == ::getpid() && cur.daemon && parent &&
                         parent->pid == me && parent->name == "MainProcess" && !parent->daemon
                     ? 1
                     : 2;
  });
  p.start();
  p.join();
  EXPECT_EQ(ok.value(), 1);
}

TEST_F(ProcessModule, CurrentProcessInABareForkChildReportsItsOwnPid) {
  mp::Value<int> ok(0);
  const pid_t me = ::getpid();
  std::fflush(nullptr);
  const pid_t child = ::fork();
  if (child == 0) {
    const auto cur = mp::current_process();
    const auto parent = mp::parent_process();
    ok.value() =
        cur.pid == ::getpid() && cur.name == "MainProcess" && parent && parent->pid == me ? 1 : 2;
    ::_exit(0);
  }
  const auto status = wait_exit(child);
  ASSERT_TRUE(status.has_value());
  EXPECT_EQ(ok.value(), 1);
}

TEST_F(ProcessModule, ActiveChildrenListsRunningOnesAndReapsEnded) {
  mp::Event release;
  mp::Process p(mp::ProcessOptions{"listed", true},
                [release]() mutable { release.wait(kTestTimeout); });
  mp::Process quick(mp::ProcessOptions{"quick", false}, [] {});
  for (const auto& c : mp::active_children()) EXPECT_NE(c.name, "listed");
  p.start();
  quick.start();
  ASSERT_TRUE(readable(quick.sentinel(), 10000));
  bool found = false;
  for (const auto& c : mp::active_children()) {
    EXPECT_NE(c.name, "quick");  // ended: reaped, not listed
    if (c.name == "listed") {
      found = true;
      EXPECT_EQ(c.pid, *p.pid());
      EXPECT_TRUE(c.daemon);
    }
  }
  EXPECT_TRUE(found);
  EXPECT_EQ(::kill(*quick.pid(), 0), -1);  // reaped by active_children()
  EXPECT_EQ(quick.exitcode(), 0);
  release.set();
  p.join();
  for (const auto& c : mp::active_children()) EXPECT_NE(c.name, "listed");
}

TEST_F(ProcessModule, CpuCountRespectsAffinity) {
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

// cpu_count()'s quota part, on a made-up /sys/fs/cgroup.
class CgroupQuota : public ProcessModule {
 protected:
  void SetUp() override {
    ProcessModule::SetUp();
    char pattern[] = "/tmp/concur-cgroup-XXXXXX";
    ASSERT_NE(::mkdtemp(pattern), nullptr);
    root_ = pattern;
  }
  void TearDown() override {
    std::filesystem::remove_all(root_);
    ProcessModule::TearDown();
  }
  void write(const std::string& path, const std::string& text) {
    std::filesystem::create_directories(std::filesystem::path(root_ + path).parent_path());
    std::ofstream(root_ + path) << text;
  }
  int limit(const std::string& cgroup, const std::string& mountinfo) {
    return concur::detail::cgroup_cpu_limit(cgroup, mountinfo, root_);
  }
  std::string root_;
};

const char* const kV2Only = "30 23 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n";

TEST_F(CgroupQuota, V2QuotaRoundsUp) {
  write("/sys/fs/cgroup/app/cpu.max", "150000 100000\n");
  EXPECT_EQ(limit("0::/app\n", kV2Only), 2);
  write("/sys/fs/cgroup/app/cpu.max", "50000 100000\n");
  EXPECT_EQ(limit("0::/app\n", kV2Only), 1);
}

TEST_F(CgroupQuota, V2MaxMeansNoLimit) {
  write("/sys/fs/cgroup/app/cpu.max", "max 100000\n");
  EXPECT_EQ(limit("0::/app\n", kV2Only), 0);
  EXPECT_EQ(limit("0::/elsewhere\n", kV2Only), 0);  // no file: no limit
}

TEST_F(CgroupQuota, TheSmallestQuotaOnTheWayUpWins) {
  write("/sys/fs/cgroup/a/cpu.max", "200000 100000\n");
  write("/sys/fs/cgroup/a/b/cpu.max", "max 100000\n");
  write("/sys/fs/cgroup/a/b/c/cpu.max", "400000 100000\n");
  EXPECT_EQ(limit("0::/a/b/c\n", kV2Only), 2);
}

TEST_F(CgroupQuota, MountRootIsStrippedInsideAContainer) {
  write("/sys/fs/cgroup/cpu.max", "300000 100000\n");
  EXPECT_EQ(
      limit("0::/docker/abc\n", "30 23 0:26 /docker/abc /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n"),
      3);
  // A prefix that is not a whole path component is another cgroup.
  EXPECT_EQ(limit("0::/docker/abcdef\n",
                  "30 23 0:26 /docker/abc /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n"),
            0);
  EXPECT_EQ(limit("", ""), 0);
  EXPECT_EQ(limit("garbage\n::\n0::\n", "garbage - \n"), 0);
}

TEST_F(CgroupQuota, V1AndHybridHierarchies) {
  const std::string mountinfo =
      "32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct\n"
      "41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n";
  write("/sys/fs/cgroup/cpu,cpuacct/job/cpu.cfs_quota_us", "250000\n");
  write("/sys/fs/cgroup/cpu,cpuacct/job/cpu.cfs_period_us", "100000\n");
  write("/sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us", "-1\n");
  write("/sys/fs/cgroup/cpu,cpuacct/cpu.cfs_period_us", "100000\n");
  EXPECT_EQ(limit("4:cpu,cpuacct:/job\n0::/\n", mountinfo), 3);
  write("/sys/fs/cgroup/unified/cpu.max", "100000 100000\n");
  EXPECT_EQ(limit("4:cpu,cpuacct:/job\n0::/\n", mountinfo), 1);
  EXPECT_EQ(limit("4:cpuacct:/job\n", mountinfo), 0);  // not the cpu controller
}

// --- helper programs: the parent's exit, stdio ----------------------------------

TEST_F(ProcessTest, StdioFlushedBeforeForkSoNothingPrintsTwice) {
  Spawned s = spawn_helper("process_no_double_print");
  const std::string out = read_all(s.out);
  ::close(s.out);
  const auto status = wait_exit(s.pid);
  ASSERT_TRUE(status.has_value());
  EXPECT_EQ(*status, 0) << out;
  const auto once = [&out](const std::string& text) {
    const auto first = out.find(text);
    return first != std::string::npos && out.find(text, first + 1) == std::string::npos;
  };
  EXPECT_TRUE(once("buffered-before-fork")) << out;
  EXPECT_TRUE(once("cout-before-fork")) << out;
  EXPECT_TRUE(once("child")) << out;
  EXPECT_TRUE(once("parent")) << out;
}

void expect_parent_handlers_run_once(const char* mode) {
  Spawned s = spawn_helper("process_atexit_not_in_child", mode);
  const std::string out = read_all(s.out);
  ::close(s.out);
  const auto status = wait_exit(s.pid);
  ASSERT_TRUE(status.has_value());
  EXPECT_EQ(*status, 0) << out;  // and the child's exit code was the expected one
  const auto count = [&out](const std::string& text) {
    int n = 0;
    for (auto at = out.find(text); at != std::string::npos; at = out.find(text, at + 1)) ++n;
    return n;
  };
  EXPECT_EQ(count("child ran"), 1) << out;
  EXPECT_EQ(count("parent atexit"), 1) << out;
  EXPECT_EQ(count("static destructor"), 1) << out;
}

TEST_F(ProcessTest, ParentAtexitAndStaticsDoNotRunInTheChild) {
  expect_parent_handlers_run_once(nullptr);
}

TEST_F(ProcessTest, ExitInTheChildRunsNeitherParentAtexitNorStatics) {
  expect_parent_handlers_run_once("exit");
}

TEST_F(ProcessTest, NonDaemonChildIsJoinedAtTheParentsExit) {
  Spawned s = spawn_helper("process_joins_at_exit");
  const pid_t child = static_cast<pid_t>(std::stoi(read_line(s.out)));
  const auto status = wait_exit(s.pid);
  ASSERT_TRUE(status.has_value());
  EXPECT_EQ(*status, 0);
  // Joined before the helper ended: reaped by it, so gone.
  EXPECT_NE(::kill(child, 0), 0);
  const std::string out = read_all(s.out);
  ::close(s.out);
  const auto main_line = out.find("main returned");
  const auto child_line = out.find("child done");
  ASSERT_NE(main_line, std::string::npos) << out;
  ASSERT_NE(child_line, std::string::npos) << out;
  EXPECT_LT(main_line, child_line);
}

TEST_F(ProcessTest, DaemonChildIsTerminatedAtTheParentsNormalExit) {
  Spawned s = spawn_helper("process_daemon_ends_with_parent");
  const pid_t child = static_cast<pid_t>(std::stoi(read_line(s.out)));
  const auto status = wait_exit(s.pid);
  ASSERT_TRUE(status.has_value());
  EXPECT_EQ(*status, 0);
  EXPECT_NE(::kill(child, 0), 0);  // terminated and reaped before the helper ended
  ::close(s.out);
}

}  // namespace
