// cpu_count(): the CPUs this process may run on, as a worker count: the
// affinity mask, further limited by a CPU quota of its cgroup.
#include <sched.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "concur/multiprocessing/process.hpp"

namespace concur::detail {

namespace {

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

std::vector<std::string> split(std::string_view text, char separator) {
  std::vector<std::string> out;
  std::size_t start = 0;
  for (;;) {
    const std::size_t end = text.find(separator, start);
    out.emplace_back(text.substr(start, end == std::string_view::npos ? end : end - start));
    if (end == std::string_view::npos) return out;
    start = end + 1;
  }
}

bool has_token(const std::string& list, const std::string& token) {
  for (const auto& t : split(list, ',')) {
    if (t == token) return true;
  }
  return false;
}

// ceil(quota / period), or 0 for "no limit" and anything unreadable.
int cpus_of(const std::string& quota, const std::string& period) {
  char* end = nullptr;
  const double q = std::strtod(quota.c_str(), &end);
  if (end == quota.c_str() || !(q > 0)) return 0;  // "max", -1, garbage
  const double p = std::strtod(period.c_str(), &end);
  if (end == period.c_str() || !(p > 0)) return 0;
  const double cpus = std::ceil(q / p);
  return cpus >= 1 ? (cpus > 1e6 ? 1'000'000 : static_cast<int>(cpus)) : 1;
}

struct Mount {
  std::string root;         // the cgroup path the mount shows at its top
  std::string mount_point;  // where it is mounted
};

// The smallest quota on the way from `path` up to the mount's root.
template <class ReadQuota>
int walk_up(const Mount& m, const std::string& path, const std::string& fs_root,
            ReadQuota read_quota) {
  // Below the mount: "" for its top, else "/a/b".
  std::string below = path;
  if (m.root != "/") {
    const bool under = below.rfind(m.root, 0) == 0 &&
                       (below.size() == m.root.size() || below[m.root.size()] == '/');
    if (!under) return 0;  // a cgroup this mount does not show
    below.erase(0, m.root.size());
  }
  while (!below.empty() && below.back() == '/') below.pop_back();
  if (!below.empty() && below[0] != '/') return 0;
  int limit = 0;
  for (;;) {
    const int cpus = read_quota(fs_root + m.mount_point + below);
    if (cpus > 0 && (limit == 0 || cpus < limit)) limit = cpus;
    if (below.empty()) return limit;
    below.resize(below.find_last_of('/'));  // below starts with '/'
  }
}

std::string first_word(const std::string& text) {
  std::istringstream in(text);
  std::string word;
  in >> word;
  return word;
}

}  // namespace

// The CPU limit of a process whose /proc/self/cgroup and
// /proc/self/mountinfo read as given, with the file system under fs_root;
// 0 when no quota applies. cgroup v2 (cpu.max: "max 100000", "200000
// 100000") and v1 (cpu.cfs_quota_us, cpu.cfs_period_us), also both at once
// (hybrid systems); the smallest quota found on the way to the root wins.
int cgroup_cpu_limit(std::string_view cgroup_text, std::string_view mountinfo_text,
                     const std::string& fs_root) {
  std::vector<Mount> v2_mounts, v1_cpu_mounts;
  for (const auto& line : split(mountinfo_text, '\n')) {
    // "36 25 0:31 / /sys/fs/cgroup/cpu rw,relatime shared:1 - cgroup cgroup rw,cpu"
    const auto dash = line.find(" - ");
    if (dash == std::string::npos) continue;
    std::istringstream before(line.substr(0, dash));
    std::string id, parent, device, root, mount_point;
    if (!(before >> id >> parent >> device >> root >> mount_point)) continue;
    std::istringstream after(line.substr(dash + 3));
    std::string fstype, source, options;
    after >> fstype >> source >> options;
    if (fstype == "cgroup2") v2_mounts.push_back({root, mount_point});
    if (fstype == "cgroup" && has_token(options, "cpu"))
      v1_cpu_mounts.push_back({root, mount_point});
  }
  int limit = 0;
  const auto take = [&limit](int cpus) {
    if (cpus > 0 && (limit == 0 || cpus < limit)) limit = cpus;
  };
  for (const auto& line : split(cgroup_text, '\n')) {
    // "0::/user.slice" (v2) or "4:cpu,cpuacct:/user.slice" (v1)
    const auto first = line.find(':');
    const auto second = first == std::string::npos ? first : line.find(':', first + 1);
    if (second == std::string::npos) continue;
    const std::string controllers = line.substr(first + 1, second - first - 1);
    const std::string path = line.substr(second + 1);
    if (path.empty() || path[0] != '/') continue;
    if (line.compare(0, first, "0") == 0 && controllers.empty()) {
      for (const auto& m : v2_mounts) {
        take(walk_up(m, path, fs_root, [](const std::string& dir) {
          std::istringstream in(read_file(dir + "/cpu.max"));
          std::string quota, period;
          in >> quota >> period;
          return cpus_of(quota, period);
        }));
      }
    } else if (has_token(controllers, "cpu")) {
      for (const auto& m : v1_cpu_mounts) {
        take(walk_up(m, path, fs_root, [](const std::string& dir) {
          return cpus_of(first_word(read_file(dir + "/cpu.cfs_quota_us")),
                         first_word(read_file(dir + "/cpu.cfs_period_us")));
        }));
      }
    }
  }
  return limit;
}

}  // namespace concur::detail

namespace concur::multiprocessing {

int cpu_count() {
  int cpus = 0;
  // A mask big enough for the machine: CPU_SETSIZE (1024) may be too small.
  for (std::size_t n = 1024; n <= (1u << 20) && cpus == 0; n *= 4) {
    cpu_set_t* set = CPU_ALLOC(n);
    if (set == nullptr) break;
    const std::size_t bytes = CPU_ALLOC_SIZE(n);
    CPU_ZERO_S(bytes, set);
    if (::sched_getaffinity(0, bytes, set) == 0) {
      cpus = CPU_COUNT_S(bytes, set);
      CPU_FREE(set);
      break;
    }
    CPU_FREE(set);
    if (errno != EINVAL) break;
  }
  if (cpus <= 0) cpus = static_cast<int>(::sysconf(_SC_NPROCESSORS_ONLN));
  try {
    const int quota =
        concur::detail::cgroup_cpu_limit(concur::detail::read_file("/proc/self/cgroup"),
                                         concur::detail::read_file("/proc/self/mountinfo"), "");
    if (quota > 0 && quota < cpus) cpus = quota;
  } catch (...) {  // cannot read: the affinity alone
  }
  return cpus > 0 ? cpus : 1;
}

}  // namespace concur::multiprocessing
