// Value, Array, RawValue, RawArray and SharedMemory.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <mutex>
#include <numeric>
#include <set>
#include <stdexcept>
#include <string>
#include <system_error>

#include "concur/multiprocessing/array.hpp"
#include "concur/multiprocessing/shared_memory.hpp"
#include "concur/multiprocessing/value.hpp"
#include "multiprocessing/fork_support.hpp"
#include "multiprocessing/hygiene.hpp"

namespace {

namespace mp = concur::multiprocessing;
using namespace concur::testing;

class Value : public HygieneTest {};
class RawValue : public HygieneTest {};
class Array : public HygieneTest {};
class RawArray : public HygieneTest {};
class SharedMemory : public HygieneTest {};

bool in_dev_shm(const std::string& name) {
  struct stat st {};
  return ::stat(("/dev/shm/" + name).c_str(), &st) == 0;
}

TEST_F(Value, HoldsItsInitialValue) {
  mp::Value<double> v(2.5);
  EXPECT_EQ(v.value(), 2.5);
  mp::Value<int> zero;
  EXPECT_EQ(zero.value(), 0);
}

TEST_F(Value, ChildWritesAreSeenByTheParent) {
  mp::Value<int> v(1);
  const pid_t child = fork_child([&] {
    std::scoped_lock guard(v.get_lock());
    v.value() = 42;
    return 0;
  });
  EXPECT_EQ(exit_code(wait_child(child)), 0);
  EXPECT_EQ(v.value(), 42);
}

TEST_F(Value, CopiesShareTheValueAndTheLock) {
  mp::Value<int> a(3);
  mp::Value<int> b = a;
  b.value() = 4;
  EXPECT_EQ(a.value(), 4);
  a.get_lock().acquire();
  EXPECT_TRUE(b.get_lock().locked());
  a.get_lock().release();
}

TEST_F(Value, TriviallyCopyableStruct) {
  struct Point {
    int x;
    int y;
  };
  mp::Value<Point> p(Point{1, 2});
  const pid_t child = fork_child([&] {
    p.value().y = 7;
    return 0;
  });
  EXPECT_EQ(exit_code(wait_child(child)), 0);
  EXPECT_EQ(p.value().x, 1);
  EXPECT_EQ(p.value().y, 7);
}

TEST_F(RawValue, SharedWithoutALock) {
  mp::RawValue<long> v(0);
  std::vector<pid_t> children;
  for (int c = 0; c < 3; ++c) {
    children.push_back(fork_child([&] {
      for (int i = 0; i < 1000; ++i) std::atomic_ref<long>(v.value()).fetch_add(1);
      return 0;
    }));
  }
  for (pid_t p : children) EXPECT_EQ(exit_code(wait_child(p)), 0);
  EXPECT_EQ(v.value(), 3000);
}

TEST_F(Array, SizeConstructorZeroFills) {
  mp::Array<int> a(100);
  EXPECT_EQ(a.size(), 100u);
  EXPECT_TRUE(std::all_of(a.begin(), a.end(), [](int x) { return x == 0; }));
}

TEST_F(Array, BracesMakeOneElementAsWithVector) {
  mp::Array<int> a{8};
  ASSERT_EQ(a.size(), 1u);
  EXPECT_EQ(a[0], 8);
  mp::Array<int> b{1, 2, 3};
  EXPECT_EQ(b.size(), 3u);
  EXPECT_EQ(std::accumulate(b.begin(), b.end(), 0), 6);
}

TEST_F(Array, ChildrenFillSlicesTheParentReads) {
  mp::Array<int> a(1000);
  std::vector<pid_t> children;
  for (int c = 0; c < 4; ++c) {
    children.push_back(fork_child([&, c] {
      for (int i = c * 250; i < (c + 1) * 250; ++i) a[i] = i * 2;
      return 0;
    }));
  }
  for (pid_t p : children) EXPECT_EQ(exit_code(wait_child(p)), 0);
  for (int i = 0; i < 1000; ++i) EXPECT_EQ(a[i], i * 2);
}

TEST_F(Array, AtChecksBounds) {
  mp::Array<int> a(3);
  EXPECT_NO_THROW(a.at(2));
  EXPECT_THROW(a.at(3), std::out_of_range);
}

TEST_F(Array, GetLockGuardsCompoundUpdates) {
  mp::Array<long> a(1);
  std::vector<pid_t> children;
  for (int c = 0; c < 3; ++c) {
    children.push_back(fork_child([&] {
      for (int i = 0; i < 5000; ++i) {
        std::scoped_lock guard(a.get_lock());
        a[0] = a[0] + 1;
      }
      return 0;
    }));
  }
  for (pid_t p : children) EXPECT_EQ(exit_code(wait_child(p)), 0);
  EXPECT_EQ(a[0], 15000);
}

TEST_F(RawArray, CopiesShareElements) {
  mp::RawArray<char> a(4);
  mp::RawArray<char> b = a;
  b[2] = 'x';
  EXPECT_EQ(a[2], 'x');
}

TEST_F(SharedMemory, CreateAttachAndUnlink) {
  mp::SharedMemory created(4096);
  EXPECT_EQ(created.size(), 4096u);
  EXPECT_EQ(created.name().rfind("psm_", 0), 0u);
  EXPECT_TRUE(in_dev_shm(created.name()));
  std::memcpy(created.buf().data(), "hello", 6);
  mp::SharedMemory attached(created.name(), false);
  EXPECT_EQ(attached.size(), 4096u);
  EXPECT_STREQ(reinterpret_cast<const char*>(attached.buf().data()), "hello");
  attached.close();
  created.unlink();
  EXPECT_FALSE(in_dev_shm(created.name()));
  created.close();
}

TEST_F(SharedMemory, AttachingAMissingNameIsENOENT) {
  try {
    mp::SharedMemory missing("concur_test_no_such_block", false);
    FAIL();
  } catch (const std::system_error& e) {
    EXPECT_EQ(e.code().value(), ENOENT);
  }
}

TEST_F(SharedMemory, CreatingAnExistingNameIsEEXIST) {
  mp::SharedMemory first("concur_test_exists", true, 64);
  try {
    mp::SharedMemory second("concur_test_exists", true, 64);
    ADD_FAILURE();
  } catch (const std::system_error& e) {
    EXPECT_EQ(e.code().value(), EEXIST);
  }
  first.unlink();
  EXPECT_FALSE(in_dev_shm("concur_test_exists"));
}

TEST_F(SharedMemory, CreateWithSizeZeroIsInvalid) {
  EXPECT_THROW(mp::SharedMemory("concur_test_zero", true, 0), std::invalid_argument);
  EXPECT_THROW(mp::SharedMemory(std::size_t{0}), std::invalid_argument);
  EXPECT_FALSE(in_dev_shm("concur_test_zero"));
}

TEST_F(SharedMemory, DefaultNamesAreUnique) {
  std::set<std::string> names;
  for (int i = 0; i < 20; ++i) {
    mp::SharedMemory s(16);
    names.insert(s.name());
    s.unlink();
  }
  EXPECT_EQ(names.size(), 20u);
}

TEST_F(SharedMemory, ChildWritesThroughTheName) {
  mp::SharedMemory shm(64);
  const std::string name = shm.name();
  const pid_t child = fork_child([&] {
    mp::SharedMemory mine(name, false);
    mine.buf()[0] = std::byte{9};
    return 0;
  });
  EXPECT_EQ(exit_code(wait_child(child)), 0);
  EXPECT_EQ(shm.buf()[0], std::byte{9});
  shm.unlink();
}

TEST_F(SharedMemory, CloseEmptiesBuf) {
  mp::SharedMemory shm(64);
  shm.close();
  EXPECT_TRUE(shm.buf().empty());
  shm.unlink();
}

TEST_F(SharedMemory, UnlinkTwiceIsENOENT) {
  mp::SharedMemory shm(64);
  shm.unlink();
  try {
    shm.unlink();
    FAIL();
  } catch (const std::system_error& e) {
    EXPECT_EQ(e.code().value(), ENOENT);
  }
}

}  // namespace
