// concur-demo: what concur does and why it matters, measured on this
// machine as it runs. It walks through the notes the project started from:
// fork; parallelism in one line (the same CPU-bound job sequentially, on a
// ThreadPool and on a process Pool); an I/O-bound job where threads shine;
// and every primitive of threading in a small real scenario.
// The long steps draw a progress bar on a terminal and print plain lines
// otherwise.
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <numeric>
#include <string>
#include <vector>

#include "concur/concur.hpp"
#include "primitives.hpp"

namespace {

namespace th = concur::threading;
namespace mp = concur::multiprocessing;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

const bool kTerminal = ::isatty(STDOUT_FILENO) == 1;

void heading(int number, const char* title) {
  std::printf("\n%s%d. %s%s\n", kTerminal ? "\033[1m" : "", number, title, kTerminal ? "\033[0m" : "");
}

// A one-line progress bar on a terminal; a single line at the end otherwise.
class Progress {
 public:
  Progress(std::string label, std::size_t total) : label_(std::move(label)), total_(total) { draw(0); }
  void draw(std::size_t done) {
    if (!kTerminal) return;
    const int width = 30;
    const int filled = total_ == 0 ? width : static_cast<int>(width * done / total_);
    std::printf("\r   %-38s [%s%s] %3zu%%", label_.c_str(), std::string(static_cast<std::size_t>(filled), '#').c_str(),
                std::string(static_cast<std::size_t>(width - filled), '.').c_str(),
                total_ == 0 ? std::size_t{100} : done * 100 / total_);
    std::fflush(stdout);
  }
  void done(double seconds, const std::string& note) {
    if (kTerminal) std::printf("\r%*s\r", 80, "");
    std::printf("   %-38s %8.1f ms  %s\n", label_.c_str(), seconds * 1e3, note.c_str());
  }

 private:
  std::string label_;
  std::size_t total_;
};

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// 1. fork -----------------------------------------------------------------
void fork_section() {
  heading(1, "fork: one program, two processes");
  std::printf("   Python: newpid = os.fork(); concur: mp::Process(target).start()\n");
  std::fflush(stdout);
  mp::Process child([] {
    std::printf("   child : pid %d, parent %d\n", static_cast<int>(::getpid()), static_cast<int>(::getppid()));
  });
  child.start();
  child.join();
  std::printf("   parent: pid %d; the child ended with exit code %d\n", static_cast<int>(::getpid()),
              child.exitcode().value_or(-1));
}

// 2. parallelism in one line ----------------------------------------------
// Counts the primes in [first, first + width) by trial division: a CPU-bound
// task of a few milliseconds.
long primes_in(long first) {
  constexpr long kWidth = 25'000;
  long count = 0;
  for (long n = std::max(first, 2L); n < first + kWidth; ++n) {
    bool prime = true;
    for (long d = 2; d * d <= n; ++d) {
      if (n % d == 0) {
        prime = false;
        break;
      }
    }
    count += prime ? 1 : 0;
  }
  return count;
}

void cpu_section() {
  heading(2, "parallelism in one line: a CPU-bound job");
  std::vector<long> blocks;
  for (long k = 0; k < 48; ++k) blocks.push_back(k * 25'000);
  std::printf("   counting the primes below %ld in %zu blocks, on %d CPUs\n", 48 * 25'000L, blocks.size(),
              mp::cpu_count());

  Progress sequential_bar("sequential loop", blocks.size());
  auto start = Clock::now();
  std::vector<long> expected;
  for (std::size_t i = 0; i < blocks.size(); ++i) {
    expected.push_back(primes_in(blocks[i]));
    sequential_bar.draw(i + 1);
  }
  const double sequential = seconds_since(start);
  const long total = std::accumulate(expected.begin(), expected.end(), 0L);
  sequential_bar.done(sequential, std::to_string(total) + " primes");

  auto run = [&](const char* label, auto& pool) {
    Progress bar(label, blocks.size());
    const auto t0 = Clock::now();
    std::size_t done = 0;
    std::vector<long> counts;
    for (long c : pool.imap(primes_in, blocks, 4)) {  // imap: results as they come, for the bar
      counts.push_back(c);
      bar.draw(++done);
    }
    const double s = seconds_since(t0);
    char note[96];
    std::snprintf(note, sizeof note, "speed-up %.2fx%s", sequential / s,
                  counts == expected ? "" : "  (WRONG RESULT)");
    bar.done(s, note);
  };
  mp::ThreadPool threads;
  run("ThreadPool().imap(primes_in, blocks)", threads);
  mp::Pool processes;
  run("Pool().imap(primes_in, blocks)", processes);
  const auto t0 = Clock::now();
  const auto counts = processes.map(primes_in, blocks);  // the one line
  Progress one_line("Pool().map(primes_in, blocks)", 0);
  char note[96];
  std::snprintf(note, sizeof note, "speed-up %.2fx", sequential / seconds_since(t0));
  one_line.done(seconds_since(t0), counts == expected ? note : "WRONG RESULT");
}

// 3. I/O-bound: many blocking waits -----------------------------------------
// A request to a slow local service: a pipe whose answer a Timer writes
// 20 ms later. The caller blocks in read(), as on a socket.
int slow_request(int id) {
  int fds[2];
  if (::pipe(fds) != 0) return -1;
  th::Timer answer(20ms, [fd = fds[1], id] {
    [[maybe_unused]] const ssize_t n = ::write(fd, &id, sizeof id);
  });
  answer.start();
  int reply = -1;
  [[maybe_unused]] const ssize_t n = ::read(fds[0], &reply, sizeof reply);
  answer.join();
  ::close(fds[0]);
  ::close(fds[1]);
  return reply;
}

void io_section() {
  heading(3, "an I/O-bound job: 40 requests that each wait 20 ms");
  std::vector<int> ids(40);
  std::iota(ids.begin(), ids.end(), 0);
  auto t0 = Clock::now();
  for (int id : ids) slow_request(id);
  const double sequential = seconds_since(t0);
  Progress("one after another", 0).done(sequential, "");
  for (int workers : {8, 40}) {
    mp::ThreadPool pool(workers);
    t0 = Clock::now();
    const auto replies = pool.map(slow_request, ids, 1);
    const double s = seconds_since(t0);
    char label[64], note[64];
    std::snprintf(label, sizeof label, "ThreadPool(%d).map", workers);
    std::snprintf(note, sizeof note, "speed-up %.1fx%s", sequential / s, replies == ids ? "" : " (WRONG)");
    Progress(label, 0).done(s, note);
  }
  std::printf("   threads wait in parallel; no CPU is busy, so their number, not the cores, sets the pace\n");
}

}  // namespace

int main() {
  std::printf("concur-demo: Python's threading and multiprocessing, in C++\n");
  const auto start = Clock::now();
  fork_section();
  cpu_section();
  io_section();
  heading(4, "every primitive in a small real scenario");
  scenarios::producer_consumer();
  scenarios::connection_limit();
  scenarios::phases();
  scenarios::reentrant();
  scenarios::shutdown();
  scenarios::daemon_thread();
  std::printf("\nconcur-demo: done in %.2f s. Tests: bash scripts/test.sh; docs: README.md, docs/.\n",
              seconds_since(start));
  return 0;
}
