// The memory promises of issue #2: a Lock, a Semaphore and an Event are one
// 32-bit word; an RLock at most 16 bytes; a Condition at most 16 bytes plus
// the lock it owns.
#include <gtest/gtest.h>

#include <cstdint>

#include "concur/threading/condition.hpp"
#include "concur/threading/event.hpp"
#include "concur/threading/lock.hpp"
#include "concur/threading/rlock.hpp"
#include "concur/threading/semaphore.hpp"

namespace {

namespace th = concur::threading;

static_assert(sizeof(th::Lock) == sizeof(std::uint32_t));
static_assert(sizeof(th::Semaphore) == sizeof(std::uint32_t));
static_assert(sizeof(th::Event) == sizeof(std::uint32_t));
static_assert(sizeof(th::RLock) <= 16);
static_assert(sizeof(th::Condition) <= 16 + sizeof(th::RLock));

TEST(Sizes, LockSemaphoreEventAreOneWord) {
  EXPECT_EQ(sizeof(th::Lock), 4u);
  EXPECT_EQ(sizeof(th::Semaphore), 4u);
  EXPECT_EQ(sizeof(th::Event), 4u);
}

TEST(Sizes, RLockAndConditionAreSmall) {
  EXPECT_LE(sizeof(th::RLock), 16u);
  EXPECT_LE(sizeof(th::Condition), 16u + sizeof(th::RLock));
}

}  // namespace
