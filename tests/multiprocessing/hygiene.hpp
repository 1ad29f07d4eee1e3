// A fixture for every test that makes processes or shared memory: after the
// test, no child of ours is a zombie, no descriptor is left open that was
// not open before, and nothing new is left in /dev/shm.
#pragma once

#include <dirent.h>
#include <gtest/gtest.h>

#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "test_support.hpp"

namespace concur::testing {

inline std::set<std::string> list_dir(const std::string& path) {
  std::set<std::string> out;
  if (DIR* d = ::opendir(path.c_str())) {
    while (dirent* e = ::readdir(d)) {
      const std::string name = e->d_name;
      if (name != "." && name != "..") out.insert(name);
    }
    ::closedir(d);
  }
  return out;
}

// The pids of our children that are zombies (ended, not reaped).
inline std::vector<int> zombie_children() {
  std::vector<int> zombies;
  for (const auto& task : list_dir("/proc/self/task")) {
    std::ifstream in("/proc/self/task/" + task + "/children");
    int pid;
    while (in >> pid) {
      if (proc_state("/proc/" + std::to_string(pid) + "/stat") == 'Z') zombies.push_back(pid);
    }
  }
  return zombies;
}

class HygieneTest : public ::testing::Test {
 protected:
  void SetUp() override {
    fds_ = list_dir("/proc/self/fd").size();
    shm_ = list_dir("/dev/shm");
  }
  void TearDown() override {
    // concur reaps a child whose Process object is gone from another
    // thread: allow it a moment.
    EXPECT_TRUE(eventually([] { return zombie_children().empty(); }, std::chrono::seconds(5)))
        << "zombie children left";
    EXPECT_TRUE(eventually([&] { return list_dir("/proc/self/fd").size() <= fds_; },
                           std::chrono::seconds(5)))
        << "descriptors leaked: " << list_dir("/proc/self/fd").size() << " open, " << fds_
        << " before";
    // /dev/shm is shared with tests running in parallel processes (ctest
    // -j): an entry of theirs may be there for a moment; a leak stays.
    auto leftovers = [&] {
      std::vector<std::string> out;
      for (const auto& name : list_dir("/dev/shm")) {
        if (!shm_.count(name)) out.push_back(name);
      }
      return out;
    };
    EXPECT_TRUE(eventually([&] { return leftovers().empty(); }, std::chrono::seconds(10)))
        << "left in /dev/shm: " << (leftovers().empty() ? std::string() : leftovers().front());
  }

 private:
  std::size_t fds_ = 0;
  std::set<std::string> shm_;
};

}  // namespace concur::testing
