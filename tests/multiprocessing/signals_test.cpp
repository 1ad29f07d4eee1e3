// concur installs no signal handler (docs/guarantees.md, "Signals"): a
// program's own handlers for SIGINT, SIGTERM, SIGCHLD and SIGPIPE stay in
// place through processes, pools, pipes and threads, and still run.
#include <gtest/gtest.h>
#include <signal.h>

#include <atomic>
#include <vector>

#include "concur/errors.hpp"
#include "concur/multiprocessing/connection.hpp"
#include "concur/multiprocessing/pool.hpp"
#include "concur/multiprocessing/process.hpp"
#include "concur/multiprocessing/thread_pool.hpp"
#include "concur/threading/thread.hpp"
#include "hygiene.hpp"
#include "test_support.hpp"

namespace {

namespace mp = concur::multiprocessing;
namespace th = concur::threading;
using namespace concur::testing;

std::atomic<int> g_sigchld{0};
void on_sigchld(int) { g_sigchld.fetch_add(1, std::memory_order_relaxed); }
void on_other(int) {}

class Signals : public HygieneTest {
 protected:
  void SetUp() override {
    HygieneTest::SetUp();
    for (int sig : kSignals) {
      struct sigaction sa {};
      sa.sa_handler = sig == SIGCHLD ? &on_sigchld : &on_other;
      ::sigemptyset(&sa.sa_mask);
      sa.sa_flags = SA_RESTART;
      ASSERT_EQ(::sigaction(sig, &sa, &saved_[index(sig)]), 0);
    }
  }
  void TearDown() override {
    for (int sig : kSignals) ::sigaction(sig, &saved_[index(sig)], nullptr);
    HygieneTest::TearDown();
  }
  static void (*handler_of(int sig))(int) {
    struct sigaction now {};
    ::sigaction(sig, nullptr, &now);
    return now.sa_handler;
  }
  static constexpr int kSignals[] = {SIGINT, SIGTERM, SIGCHLD, SIGPIPE};
  static int index(int sig) {
    for (int i = 0; i < 4; ++i) {
      if (kSignals[i] == sig) return i;
    }
    return 0;
  }
  struct sigaction saved_[4];
};

TEST_F(Signals, TheProgramsHandlersStayInPlace) {
  mp::Process child([] {});
  child.start();
  child.join();
  mp::Pool pool(2);
  EXPECT_EQ(pool.map([](int x) { return x + 1; }, std::vector<int>{1, 2, 3})[2], 4);
  mp::ThreadPool threads(2);
  EXPECT_EQ(threads.apply([] { return 7; }), 7);
  th::Thread t([] {});
  t.start();
  t.join();
  auto [a, b] = mp::Pipe<int>();
  b.close();
  EXPECT_THROW(a.send(1), concur::BrokenPipeError);  // an exception, not SIGPIPE
  for (int sig : kSignals) {
    EXPECT_EQ(handler_of(sig), sig == SIGCHLD ? &on_sigchld : &on_other) << "signal " << sig;
  }
}

TEST_F(Signals, TheProgramsSigchldHandlerStillRuns) {
  const int before = g_sigchld.load();
  mp::Process child([] {});
  child.start();
  child.join();
  EXPECT_EQ(child.exitcode(), 0);  // concur reaps by pid: the handler does not disturb it
  EXPECT_TRUE(eventually([&] { return g_sigchld.load() > before; }));
}

}  // namespace
