// cpu_count(): the CPUs this process may run on, as a worker count.
#include <sched.h>
#include <unistd.h>

#include <cmath>
#include <fstream>
#include <sstream>
#include <string>

namespace concur::multiprocessing {

namespace {

// A cgroup v2 cpu.max quota ("200000 100000": two CPUs' worth), if any
// applies to this process; 0 when unlimited or unknown.
int cgroup_cpu_limit() {
  std::ifstream cgroup("/proc/self/cgroup");
  std::string line;
  std::string path;
  while (std::getline(cgroup, line)) {
    if (line.rfind("0::", 0) == 0) path = line.substr(3);
  }
  if (path.empty()) return 0;
  // Walk up: a parent's quota limits its children too.
  int limit = 0;
  for (;;) {
    std::ifstream max("/sys/fs/cgroup" + path + "/cpu.max");
    std::string quota;
    long period = 0;
    if (max >> quota >> period && quota != "max" && period > 0) {
      const int cpus = static_cast<int>(std::ceil(std::stod(quota) / static_cast<double>(period)));
      if (cpus > 0 && (limit == 0 || cpus < limit)) limit = cpus;
    }
    if (path.empty() || path == "/") break;
    const auto slash = path.find_last_of('/');
    path = slash == 0 || slash == std::string::npos ? "/" : path.substr(0, slash);
  }
  return limit;
}

}  // namespace

int cpu_count() {
  int cpus = 0;
  cpu_set_t set;
  CPU_ZERO(&set);
  if (::sched_getaffinity(0, sizeof set, &set) == 0) cpus = CPU_COUNT(&set);
  if (cpus <= 0) cpus = static_cast<int>(::sysconf(_SC_NPROCESSORS_ONLN));
  const int quota = cgroup_cpu_limit();
  if (quota > 0 && quota < cpus) cpus = quota;
  return cpus > 0 ? cpus : 1;
}

}  // namespace concur::multiprocessing
