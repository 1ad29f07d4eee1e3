// libFuzzer: cpu_count()'s cgroup parsers (detail::cgroup_cpu_limit): the
// /proc/self/cgroup and /proc/self/mountinfo texts, and the cpu.max (v2)
// and cpu.cfs_quota_us / cpu.cfs_period_us (v1) files they lead to.
//
// The input is up to six texts separated by NUL bytes: the cgroup file,
// mountinfo, then the files written under a scratch file-system root
// before the call:
//   sys/fs/cgroup/cpu.max, sys/fs/cgroup/app/cpu.max,
//   sys/fs/cgroup/cpu/app/cpu.cfs_quota_us, .../cpu.cfs_period_us
// (the seeds mount cgroup2 at /sys/fs/cgroup and cgroup v1's cpu
// controller at /sys/fs/cgroup/cpu, and put the process in /app).
//
// Anything but a limit in [0, 1000000] is a bug: a crash, a sanitizer
// report, an exception, a hang. Seeds: tests/fuzz/corpus/cgroup/.
#include <sys/stat.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <string>
#include <string_view>
#include <vector>

#include "concur/multiprocessing/process.hpp"

namespace {

const char* const kFiles[] = {
    "/sys/fs/cgroup/cpu.max",
    "/sys/fs/cgroup/app/cpu.max",
    "/sys/fs/cgroup/cpu/app/cpu.cfs_quota_us",
    "/sys/fs/cgroup/cpu/app/cpu.cfs_period_us",
};

std::string g_root;

void remove_root() {
  const std::string command = "rm -rf '" + g_root + "'";
  [[maybe_unused]] const int rc = std::system(command.c_str());
}

const std::string& root() {
  if (g_root.empty()) {
    char pattern[] = "/tmp/concur-cgroup-fuzz-XXXXXX";
    if (::mkdtemp(pattern) == nullptr) std::abort();
    g_root = pattern;
    for (const char* dir : {"/sys", "/sys/fs", "/sys/fs/cgroup", "/sys/fs/cgroup/app",
                            "/sys/fs/cgroup/cpu", "/sys/fs/cgroup/cpu/app"}) {
      ::mkdir((g_root + dir).c_str(), 0700);
    }
    std::atexit(remove_root);
  }
  return g_root;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  std::vector<std::string_view> parts;
  std::size_t start = 0;
  while (parts.size() < 6) {
    const std::size_t end = input.find('\0', start);
    parts.push_back(input.substr(start, end == std::string_view::npos ? end : end - start));
    if (end == std::string_view::npos) break;
    start = end + 1;
  }
  parts.resize(6);
  for (int i = 0; i < 4; ++i) {
    std::ofstream(root() + kFiles[i], std::ios::trunc | std::ios::binary)
        .write(parts[2 + i].data(), static_cast<std::streamsize>(parts[2 + i].size()));
  }
  const int limit = concur::detail::cgroup_cpu_limit(parts[0], parts[1], root());
  if (limit < 0 || limit > 1'000'000) __builtin_trap();
  return 0;
}
