// The rules of Thread and the module functions (API.md; CPython
// Lib/test/test_threading.py).
#include "concur/threading/thread.hpp"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdio>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>

#include "concur/threading/event.hpp"
#include "test_support.hpp"

namespace {

namespace th = concur::threading;
using namespace concur::testing;

int thread_number(const std::string& name) {
  EXPECT_EQ(name.rfind("Thread-", 0), 0u) << name;
  return std::stoi(name.substr(7));
}

TEST(Thread, RunsTargetWithCopiedArguments) {
  int seen = 0;
  std::string text = "before";
  th::Thread t([&seen](int a, const std::string& s) { seen = a + static_cast<int>(s.size()); }, 40,
               text);
  text = "changed after construction";
  t.start();
  t.join();
  EXPECT_EQ(seen, 46);
}

TEST(Thread, SubclassOverridingRunIsCalled) {
  struct Worker : th::Thread {
    void run() override { ran = true; }
    bool ran = false;
  };
  Worker w;
  w.start();
  w.join();
  EXPECT_TRUE(w.ran);
}

TEST(Thread, NoTargetDoesNothing) {
  th::Thread t;
  t.start();
  t.join();
  EXPECT_FALSE(t.is_alive());
}

TEST(Thread, StartTwiceThrowsLogicError) {
  th::Thread t([] {});
  t.start();
  EXPECT_THROW(t.start(), std::logic_error);
  t.join();
  EXPECT_THROW(t.start(), std::logic_error);
}

TEST(Thread, JoinBeforeStartThrowsLogicError) {
  th::Thread t([] {});
  EXPECT_THROW(t.join(), std::logic_error);
  EXPECT_THROW((void)t.join(10ms), std::logic_error);
}

TEST(Thread, JoinFromItselfThrowsLogicError) {
  std::unique_ptr<th::Thread> t;
  std::atomic<int> threw{0};
  th::Event go;
  t = std::make_unique<th::Thread>([&] {
    go.wait(kTestTimeout);
    try {
      t->join();
    } catch (const std::logic_error&) {
      ++threw;
    }
    try {
      (void)t->join(1ms);
    } catch (const std::logic_error&) {
      ++threw;
    }
  });
  t->start();
  go.set();
  t->join();
  EXPECT_EQ(threw, 2);
}

TEST(Thread, TimedJoinIsFalseWhileRunningThenTrue) {
  th::Event release;
  th::Thread t([&] { release.wait(kTestTimeout); });
  t.start();
  EXPECT_FALSE(t.join(10ms));
  EXPECT_FALSE(t.join(0s));
  EXPECT_FALSE(t.join(-1s));
  EXPECT_TRUE(t.is_alive());
  release.set();
  EXPECT_TRUE(t.join(kTestTimeout));
  EXPECT_FALSE(t.is_alive());
  EXPECT_TRUE(t.join(0s));
}

TEST(Thread, IsAliveFromStartUntilTheEnd) {
  th::Event release;
  th::Thread t([&] { release.wait(kTestTimeout); });
  EXPECT_FALSE(t.is_alive());
  t.start();
  EXPECT_TRUE(t.is_alive());
  release.set();
  t.join();
  EXPECT_FALSE(t.is_alive());
}

TEST(Thread, SeveralThreadsMayJoinTheSameThread) {
  th::Event release;
  th::Thread t([&] { release.wait(kTestTimeout); });
  t.start();
  std::atomic<int> joined{0};
  std::thread a([&] {
    t.join();
    ++joined;
  });
  std::thread b([&] {
    if (t.join(kTestTimeout)) ++joined;
  });
  release.set();
  a.join();
  b.join();
  EXPECT_EQ(joined, 2);
}

TEST(Thread, DefaultNamesAreConsecutive) {
  th::Thread a([] {});
  th::Thread b([] {});
  EXPECT_EQ(thread_number(b.name()), thread_number(a.name()) + 1);
}

TEST(Thread, ExplicitNamesDoNotUseNumbers) {
  th::Thread a([] {});
  th::Thread named(th::ThreadOptions{"worker", std::nullopt}, [] {});
  th::Thread b([] {});
  EXPECT_EQ(named.name(), "worker");
  EXPECT_EQ(thread_number(b.name()), thread_number(a.name()) + 1);
}

TEST(Thread, SetNameIsSeenByCurrentThread) {
  std::string inside;
  th::Event named;
  th::Thread t([&] {
    named.wait(kTestTimeout);
    inside = th::current_thread().name;
  });
  t.start();
  t.set_name("renamed");
  named.set();
  t.join();
  EXPECT_EQ(t.name(), "renamed");
  EXPECT_EQ(inside, "renamed");
}

TEST(Thread, DaemonInheritedFromTheMainThreadIsFalse) {
  th::Thread t([] {});
  EXPECT_FALSE(t.daemon());
}

TEST(Thread, DaemonInheritedFromADaemonThread) {
  bool child_daemon = false;
  th::Thread parent(th::ThreadOptions{"", true}, [&] {
    th::Thread child([] {});
    child_daemon = child.daemon();
  });
  parent.start();
  parent.join();
  EXPECT_TRUE(child_daemon);
}

TEST(Thread, DaemonInheritedFromAForeignThreadIsTrue) {
  bool child_daemon = false;
  std::thread([&] {
    th::Thread child([] {});
    child_daemon = child.daemon();
  }).join();
  EXPECT_TRUE(child_daemon);
}

TEST(Thread, ExplicitDaemonOptionWins) {
  th::Thread t(th::ThreadOptions{"", false}, [] {});
  EXPECT_FALSE(t.daemon());
  t.set_daemon(true);
  EXPECT_TRUE(t.daemon());
}

TEST(Thread, SetDaemonAfterStartThrowsLogicError) {
  th::Event release;
  th::Thread t([&] { release.wait(kTestTimeout); });
  t.start();
  EXPECT_THROW(t.set_daemon(true), std::logic_error);
  EXPECT_FALSE(t.daemon());
  release.set();
  t.join();
  EXPECT_THROW(t.set_daemon(true), std::logic_error);
}

TEST(Thread, IdentsAreUnsetBeforeStartAndMatchInside) {
  std::uint64_t ident_inside = 0;
  std::int64_t native_inside = 0;
  th::Event release;
  th::Thread t([&] {
    ident_inside = th::get_ident();
    native_inside = th::get_native_id();
    release.wait(kTestTimeout);
  });
  EXPECT_FALSE(t.ident().has_value());
  EXPECT_FALSE(t.native_id().has_value());
  t.start();
  ASSERT_TRUE(t.ident().has_value());
  ASSERT_TRUE(t.native_id().has_value());
  release.set();
  t.join();
  EXPECT_EQ(*t.ident(), ident_inside);
  EXPECT_EQ(*t.native_id(), native_inside);
  EXPECT_NE(*t.ident(), th::get_ident());
}

TEST(Thread, CurrentThreadInsideReportsItsOwnThread) {
  th::ThreadInfo inside{};
  th::Thread t(th::ThreadOptions{"reporter", std::nullopt}, [&] { inside = th::current_thread(); });
  t.start();
  t.join();
  EXPECT_EQ(inside.name, "reporter");
  EXPECT_FALSE(inside.daemon);
  EXPECT_EQ(inside.ident, *t.ident());
  EXPECT_EQ(inside.native_id, *t.native_id());
}

TEST(Thread, MainThreadIsNamedMainThread) {
  const th::ThreadInfo main = th::main_thread();
  EXPECT_EQ(main.name, "MainThread");
  EXPECT_FALSE(main.daemon);
  EXPECT_EQ(main.native_id, ::getpid());
  EXPECT_EQ(th::current_thread().name, "MainThread");
  EXPECT_EQ(th::current_thread().ident, main.ident);
  th::ThreadInfo from_other{};
  std::thread([&] { from_other = th::main_thread(); }).join();
  EXPECT_EQ(from_other.ident, main.ident);
}

TEST(Thread, ForeignThreadIsADaemonDummy) {
  th::ThreadInfo info{};
  std::uint64_t ident = 0;
  std::thread([&] {
    info = th::current_thread();
    ident = th::get_ident();
  }).join();
  EXPECT_EQ(info.name.rfind("Dummy-", 0), 0u) << info.name;
  EXPECT_TRUE(info.daemon);
  EXPECT_EQ(info.ident, ident);
}

TEST(Thread, EnumerateListsRunningThreadsOnly) {
  th::Event release;
  th::Thread t(th::ThreadOptions{"listed", std::nullopt}, [&] { release.wait(kTestTimeout); });
  const int before = th::active_count();
  t.start();
  auto names = th::enumerate();
  EXPECT_TRUE(std::any_of(names.begin(), names.end(), [](auto& i) { return i.name == "listed"; }));
  EXPECT_TRUE(
      std::any_of(names.begin(), names.end(), [](auto& i) { return i.name == "MainThread"; }));
  EXPECT_EQ(th::active_count(), before + 1);
  release.set();
  t.join();
  names = th::enumerate();
  EXPECT_FALSE(std::any_of(names.begin(), names.end(), [](auto& i) { return i.name == "listed"; }));
  EXPECT_EQ(th::active_count(), before);
}

TEST(Thread, DummyLeavesEnumerateWhenItsThreadEnds) {
  const int before = th::active_count();
  int inside = 0;
  std::thread([&] {
    (void)th::current_thread();
    inside = th::active_count();
  }).join();
  EXPECT_EQ(inside, before + 1);
  EXPECT_EQ(th::active_count(), before);
}

TEST(Thread, DestroyingARunningNonDaemonThreadJoinsIt) {
  std::atomic<bool> finished{false};
  th::Event release;
  std::thread releaser;
  {
    th::Thread t([&] {
      release.wait(kTestTimeout);
      finished = true;
    });
    t.start();
    releaser = std::thread([&] { release.set(); });
  }
  EXPECT_TRUE(finished);
  releaser.join();
}

TEST(Thread, DestroyingARunningDaemonThreadReturnsAtOnce) {
  auto release = std::make_shared<th::Event>();
  auto finished = std::make_shared<th::Event>();
  {
    th::Thread t(th::ThreadOptions{"", true}, [release, finished] {
      release->wait(kTestTimeout);
      finished->set();
    });
    t.start();
  }
  EXPECT_FALSE(finished->is_set());
  release->set();
  EXPECT_TRUE(finished->wait(kTestTimeout));
}

// --- excepthook -------------------------------------------------------------

struct HookReset {
  ~HookReset() { th::set_excepthook({}); }
};

TEST(Thread, ExceptionGoesToTheHookBeforeJoinReturns) {
  HookReset reset;
  std::string name;
  std::string message;
  th::set_excepthook([&](const th::ExceptHookArgs& args) {
    name = args.thread_name;
    try {
      std::rethrow_exception(args.exception);
    } catch (const std::exception& e) {
      message = e.what();
    }
  });
  th::Thread t(th::ThreadOptions{"failing", std::nullopt},
               [] { throw std::runtime_error("boom"); });
  t.start();
  t.join();
  EXPECT_EQ(name, "failing");
  EXPECT_EQ(message, "boom");
}

TEST(Thread, DefaultHookPrintsNameTypeAndMessage) {
  th::Thread t(th::ThreadOptions{"printer", std::nullopt},
               [] { throw std::domain_error("bad domain"); });
  ::testing::internal::CaptureStderr();
  t.start();
  t.join();
  const std::string err = ::testing::internal::GetCapturedStderr();
  EXPECT_NE(err.find("Exception in thread printer:"), std::string::npos) << err;
  EXPECT_NE(err.find("std::domain_error: bad domain"), std::string::npos) << err;
}

TEST(Thread, DefaultHookPrintsTheTypeOfANonStdException) {
  th::Thread t(th::ThreadOptions{"int-thrower", std::nullopt}, [] { throw 42; });
  ::testing::internal::CaptureStderr();
  t.start();
  t.join();
  const std::string err = ::testing::internal::GetCapturedStderr();
  EXPECT_NE(err.find("Exception in thread int-thrower:"), std::string::npos) << err;
  EXPECT_NE(err.find("int"), std::string::npos) << err;
}

TEST(Thread, ThrowingHookIsPrintedAndDropped) {
  HookReset reset;
  th::set_excepthook([](const th::ExceptHookArgs&) { throw std::logic_error("hook broke"); });
  th::Thread t(th::ThreadOptions{"hooked", std::nullopt}, [] { throw std::runtime_error("x"); });
  ::testing::internal::CaptureStderr();
  t.start();
  t.join();
  const std::string err = ::testing::internal::GetCapturedStderr();
  EXPECT_NE(err.find("std::logic_error: hook broke"), std::string::npos) << err;
}

TEST(Thread, SetExcepthookReturnsThePreviousAndEmptyRestoresDefault) {
  HookReset reset;
  int calls = 0;
  th::ExceptHook first = [&](const th::ExceptHookArgs&) { ++calls; };
  th::ExceptHook previous = th::set_excepthook(first);
  ASSERT_TRUE(static_cast<bool>(previous));  // the default, callable
  th::ExceptHook mine = th::set_excepthook({});
  ASSERT_TRUE(static_cast<bool>(mine));
  mine(th::ExceptHookArgs{std::make_exception_ptr(std::runtime_error("x")), "t"});
  EXPECT_EQ(calls, 1);
  th::Thread t(th::ThreadOptions{"after-restore", std::nullopt},
               [] { throw std::runtime_error("restored"); });
  ::testing::internal::CaptureStderr();
  t.start();
  t.join();
  const std::string err = ::testing::internal::GetCapturedStderr();
  EXPECT_NE(err.find("Exception in thread after-restore:"), std::string::npos) << err;
  EXPECT_EQ(calls, 1);
}

// --- exit ---------------------------------------------------------------------

struct RunResult {
  int status = -1;
  std::string output;
};

// Runs a helper program with a bound on its run time.
RunResult run_helper(const std::string& name) {
  const std::string command = "timeout 20 " + std::string(CONCUR_HELPER_DIR) + "/" + name + " 2>&1";
  RunResult result;
  FILE* pipe = ::popen(command.c_str(), "r");
  if (pipe == nullptr) return result;
  std::array<char, 256> buf{};
  while (std::fgets(buf.data(), buf.size(), pipe) != nullptr) result.output += buf.data();
  result.status = ::pclose(pipe);
  return result;
}

TEST(Thread, ExitWaitsForANonDaemonThread) {
  const RunResult r = run_helper("exit_waits_for_thread");
  ASSERT_TRUE(WIFEXITED(r.status)) << r.output;
  EXPECT_EQ(WEXITSTATUS(r.status), 0) << r.output;
  const auto main_line = r.output.find("main returning");
  const auto thread_line = r.output.find("thread finished");
  ASSERT_NE(main_line, std::string::npos) << r.output;
  ASSERT_NE(thread_line, std::string::npos) << r.output;
  EXPECT_LT(main_line, thread_line) << r.output;
}

TEST(Thread, StdExitWaitsForANonDaemonThread) {
  const RunResult r = run_helper("std_exit_waits_for_thread");
  ASSERT_TRUE(WIFEXITED(r.status)) << r.output;
  EXPECT_EQ(WEXITSTATUS(r.status), 3) << r.output;
  EXPECT_NE(r.output.find("thread finished"), std::string::npos) << r.output;
}

TEST(Thread, DaemonThreadDoesNotHoldExit) {
  const RunResult r = run_helper("daemon_does_not_hold_exit");
  ASSERT_TRUE(WIFEXITED(r.status)) << r.output;
  EXPECT_EQ(WEXITSTATUS(r.status), 0) << r.output;
  EXPECT_NE(r.output.find("main returning"), std::string::npos) << r.output;
}

}  // namespace
