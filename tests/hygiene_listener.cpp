// Runs the hygiene checks (multiprocessing/hygiene.hpp) around every test of
// the binary it is linked into: no child, zombie, descriptor, /dev/shm entry
// or thread may outlive a test. A listener, so that plain TEST()s are checked
// as well as fixtures. It is registered before Google Test installs its
// result printer, so a failure it adds shows on the test's own line.
//
// A test that leaves children or threads running on purpose says so through
// concur::testing::listener_hygiene().
#include <gtest/gtest.h>

#include <thread>

#include "multiprocessing/hygiene.hpp"

namespace concur::testing {

Hygiene& listener_hygiene() {
  static Hygiene hygiene;
  return hygiene;
}

namespace {

class HygieneListener : public ::testing::EmptyTestEventListener {
  void OnTestStart(const ::testing::TestInfo&) override { listener_hygiene().record(); }
  void OnTestEnd(const ::testing::TestInfo& info) override {
    if (info.result()->Skipped()) return;
    listener_hygiene().check();
  }
};

[[maybe_unused]] const bool kRegistered = [] {
  // ThreadSanitizer starts a background thread of its own at the first
  // pthread_create of the program: start and join one thread first, so that
  // its thread is there before any test counts threads.
  std::thread([] {}).join();
  ::testing::UnitTest::GetInstance()->listeners().Append(new HygieneListener);
  return true;
}();

}  // namespace
}  // namespace concur::testing
