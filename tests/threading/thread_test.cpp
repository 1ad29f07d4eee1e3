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
#include <type_traits>

#include "concur/threading/event.hpp"
#include "multiprocessing/fork_support.hpp"
#include "test_support.hpp"

namespace {

namespace th = concur::threading;
using namespace concur::testing;

int numbered(const std::string& name, const std::string& prefix) {
  EXPECT_EQ(name.rfind(prefix, 0), 0u) << name;
  return name.rfind(prefix, 0) == 0 ? std::stoi(name.substr(prefix.size())) : -1;
}
int thread_number(const std::string& name) { return numbered(name, "Thread-"); }

// Sets a flag when the thread that touched it ends: join() must wait for it.
// It lingers first (a bounded pause nobody ends early, not a hand-off), so a
// join() that returned before the thread was gone would see the flag clear.
struct SetOnThreadExit {
  std::atomic<bool>* flag = nullptr;
  ~SetOnThreadExit() {
    if (flag == nullptr) return;
    (void)th::Event().wait(kShort);
    flag->store(true);
  }
};
thread_local SetOnThreadExit t_on_exit;

TEST(Thread, IsNeitherCopyableNorMovable) {
  static_assert(!std::is_copy_constructible_v<th::Thread>);
  static_assert(!std::is_move_constructible_v<th::Thread>);
  static_assert(!std::is_copy_assignable_v<th::Thread>);
  static_assert(!std::is_move_assignable_v<th::Thread>);
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

TEST(Thread, RunCalledDirectlyRunsTheTargetInTheCallerOnce) {
  int calls = 0;
  std::uint64_t where = 0;
  th::Thread t([&] {
    ++calls;
    where = th::get_ident();
  });
  t.run();
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(where, th::get_ident());
  t.start();
  t.join();
  EXPECT_EQ(calls, 1);
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

TEST(Thread, JoinWithAHugeTimeoutWaitsWithoutOverflow) {
  th::Event release;
  th::Thread t([&] { release.wait(kTestTimeout); });
  t.start();
  EXPECT_FALSE(t.join(-std::chrono::hours::max()));
  release.set();
  EXPECT_TRUE(t.join(std::chrono::hours::max()));
}

TEST(Thread, JoinReturnsOnceTheThreadIsGoneWithItsThreadLocals) {
  std::atomic<bool> gone{false};
  th::Thread t([&] { t_on_exit.flag = &gone; });
  t.start();
  t.join();
  EXPECT_TRUE(gone);
}

TEST(Thread, TimedJoinReturnsTrueOnceTheThreadIsGone) {
  std::atomic<bool> gone{false};
  th::Thread t([&] { t_on_exit.flag = &gone; });
  t.start();
  ASSERT_TRUE(t.join(kTestTimeout));
  EXPECT_TRUE(gone);
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
  std::atomic<bool> gone{false};
  th::Thread t([&] {
    t_on_exit.flag = &gone;
    release.wait(kTestTimeout);
  });
  t.start();
  std::atomic<int> joined{0};
  std::thread a([&] {
    t.join();
    if (gone) ++joined;
  });
  std::thread b([&] {
    if (t.join(kTestTimeout) && gone) ++joined;
  });
  th::Thread c([&] {
    t.join();
    if (gone) ++joined;
  });
  c.start();
  release.set();
  t.join();
  a.join();
  b.join();
  c.join();
  EXPECT_EQ(joined, 3);
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

TEST(Thread, DummyNamesAreCountedApartFromThreadNames) {
  th::Thread a([] {});
  std::string first;
  std::string second;
  std::thread([&] { first = th::current_thread().name; }).join();
  std::thread([&] { second = th::current_thread().name; }).join();
  th::Thread b([] {});
  EXPECT_EQ(thread_number(b.name()), thread_number(a.name()) + 1);
  EXPECT_EQ(numbered(second, "Dummy-"), numbered(first, "Dummy-") + 1);
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

TEST(Thread, DestroyedByItsOwnThreadDetachesIt) {
  auto holder = std::make_shared<std::unique_ptr<th::Thread>>();
  auto done = std::make_shared<th::Event>();
  auto go = std::make_shared<th::Event>();
  *holder = std::make_unique<th::Thread>([holder, done, go] {
    go->wait(kTestTimeout);
    holder->reset();  // ~Thread in its own thread: neither a join nor a deadlock
    done->set();
  });
  (*holder)->start();
  go->set();
  EXPECT_TRUE(done->wait(kTestTimeout));
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

TEST(Thread, ExceptionGoesToTheHookInTheThreadBeforeJoinReturns) {
  HookReset reset;
  std::string name;
  std::string message;
  std::uint64_t hook_ident = 0;
  th::set_excepthook([&](const th::ExceptHookArgs& args) {
    name = args.thread_name;
    hook_ident = th::get_ident();
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
  EXPECT_EQ(hook_ident, *t.ident());
}

TEST(Thread, DefaultHookPrintsNameTypeAndMessage) {
  th::Thread t(th::ThreadOptions{"printer", std::nullopt},
               [] { throw std::runtime_error("boom"); });
  ::testing::internal::CaptureStderr();
  t.start();
  t.join();
  EXPECT_EQ(::testing::internal::GetCapturedStderr(),
            "Exception in thread printer:\nstd::runtime_error: boom\n");
}

TEST(Thread, DefaultHookPrintsTheDynamicTypeOfTheException) {
  th::Thread t(th::ThreadOptions{"derived", std::nullopt},
               [] { throw std::out_of_range("index 3"); });
  ::testing::internal::CaptureStderr();
  t.start();
  t.join();
  EXPECT_EQ(::testing::internal::GetCapturedStderr(),
            "Exception in thread derived:\nstd::out_of_range: index 3\n");
}

TEST(Thread, DefaultHookPrintsTheTypeOfANonStdException) {
  th::Thread t(th::ThreadOptions{"int-thrower", std::nullopt}, [] { throw 42; });
  ::testing::internal::CaptureStderr();
  t.start();
  t.join();
  EXPECT_EQ(::testing::internal::GetCapturedStderr(), "Exception in thread int-thrower:\nint\n");
}

TEST(Thread, ThrowingHookIsPrintedAndDropped) {
  HookReset reset;
  th::set_excepthook([](const th::ExceptHookArgs&) { throw std::logic_error("hook broke"); });
  th::Thread t(th::ThreadOptions{"hooked", std::nullopt}, [] { throw std::runtime_error("x"); });
  ::testing::internal::CaptureStderr();
  t.start();
  t.join();
  EXPECT_EQ(::testing::internal::GetCapturedStderr(),
            "Exception in thread hooked:\nstd::logic_error: hook broke\n");
  EXPECT_FALSE(t.is_alive());
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

// --- fork -------------------------------------------------------------------

TEST(Thread, InAForkChildTheOtherThreadsHaveEnded) {
  th::Event release;
  th::Thread t(th::ThreadOptions{"left-behind", std::nullopt}, [&] { release.wait(kTestTimeout); });
  t.start();
  const pid_t pid = fork_child([&] {
    if (t.is_alive()) return 1;
    if (!t.join(0s)) return 2;
    t.join();
    const auto all = th::enumerate();
    if (all.size() != 1 || all[0].name != "MainThread" || th::active_count() != 1) return 3;
    const th::ThreadInfo main = th::main_thread();
    if (main.native_id != ::getpid() || main.ident != th::get_ident()) return 4;
    if (th::current_thread().name != "MainThread") return 5;
    return 0;
  });
  const auto status = wait_child(pid);
  EXPECT_TRUE(t.is_alive());
  release.set();
  t.join();
  EXPECT_EQ(exit_code(status), 0);
}

TEST(Thread, AForkChildOfAThreadHasItAsItsMainThread) {
  int code = -1;
  th::Thread t(th::ThreadOptions{"forker", std::nullopt}, [&] {
    const pid_t pid = fork_child([] {
      const th::ThreadInfo main = th::main_thread();
      if (main.name != "forker" || main.daemon) return 1;
      if (main.native_id != ::getpid() || th::get_native_id() != ::getpid()) return 2;
      if (main.ident != th::get_ident()) return 3;
      if (th::current_thread().name != "forker" || th::active_count() != 1) return 4;
      return 0;
    });
    code = exit_code(wait_child(pid));
  });
  t.start();
  t.join();
  EXPECT_EQ(code, 0);
}

TEST(Thread, AForkChildOfADummyHasAMainThreadNamedMainThread) {
  int code = -1;
  std::thread([&] {
    (void)th::current_thread();  // a Dummy now
    const pid_t pid = fork_child([] {
      const th::ThreadInfo current = th::current_thread();
      if (current.name != "MainThread" || current.daemon) return 1;
      if (current.native_id != ::getpid() || th::active_count() != 1) return 2;
      return 0;
    });
    code = exit_code(wait_child(pid));
  }).join();
  EXPECT_EQ(code, 0);
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
