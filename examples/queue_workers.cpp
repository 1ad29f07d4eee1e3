// queue_workers: a task queue served by worker processes. The parent puts
// 100 numbers on a JoinableQueue; three worker processes take them, put each
// answer on a result Queue and mark the task done; tasks.join() returns
// when every task is done. A sentinel per worker then ends them.
//
// The Python it translates:
//
//   def worker(tasks, results):
//       while (n := tasks.get(timeout=5)) is not None:
//           results.put((n, divisors(n), os.getpid()))
//           tasks.task_done()
//       tasks.task_done()                  # for the sentinel
//
//   tasks, results = mp.JoinableQueue(), mp.Queue()
//   workers = [mp.Process(target=worker, args=(tasks, results), daemon=True)
//              for _ in range(3)]
//   for w in workers: w.start()
//   for n in range(1_000_001, 1_000_101): tasks.put(n)
//   tasks.join()                           # every task_done() is in
//   for w in workers: tasks.put(None)
//   for w in workers: w.join(5)
//
// Both queues are made before the fork, so every worker shares them (a copy
// of a handle refers to the same queue). There is no feeder thread: put()
// returns once the item is in shared memory, and a process may exit right
// after it without losing the item. This program starts no thread, so
// forking is safe under the sanitizers too.
//
// Exits 1 if an answer is wrong, missing or duplicated, or a worker failed.
#include <sys/types.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <deque>
#include <map>
#include <string>
#include <vector>

#include "concur/concur.hpp"

namespace mp = concur::multiprocessing;  // import multiprocessing as mp
using namespace std::chrono_literals;

constexpr int kWorkers = 3;
constexpr long kTasks = 100;
constexpr long kFirst = 1'000'000;  // the tasks: kFirst + 1 .. kFirst + kTasks
constexpr long kStop = 0;           // the sentinel (Python's None)

struct Answer {  // trivially copyable: it crosses as its bytes
  long n;
  long divisors;
  pid_t worker;
};

// The task: the number of divisors of n, counted the slow way (a few
// milliseconds for the numbers used here) so that the work is worth sharing.
long divisors(long n) {
  long count = 0;
  for (long d = 1; d <= n; ++d) count += n % d == 0 ? 1 : 0;
  return count;
}

void work(mp::JoinableQueue<long> tasks, mp::Queue<Answer> results) {
  for (;;) {
    const long n = tasks.get(5s);  // concur::Empty after 5 s: the worker fails, exit code 1
    if (n == kStop) {
      tasks.task_done();
      return;
    }
    results.put(Answer{n, divisors(n), ::getpid()});
    tasks.task_done();  // after the answer is queued, so join() means "all answered"
  }
}

int main() {
  // JoinableQueue.join() takes no timeout, in Python neither. The alarm
  // bounds the whole program instead: after 30 s SIGALRM ends it (and its
  // daemon workers with it) rather than letting it hang.
  ::alarm(30);

  mp::JoinableQueue<long> tasks;
  mp::Queue<Answer> results;
  std::deque<mp::Process> workers;  // Processes never move; a deque never moves them
  for (int i = 0; i < kWorkers; ++i) {
    workers.emplace_back(mp::ProcessOptions{"worker-" + std::to_string(i + 1), true}, work, tasks,
                         results);
    workers.back().start();
  }

  for (long k = 1; k <= kTasks; ++k) tasks.put(kFirst + k);
  tasks.join();  // returns when all 100 have been marked done
  std::printf("%ld tasks put; tasks.join() returned: every one was marked done\n", kTasks);

  std::vector<int> seen(kTasks + 1, 0);
  std::map<pid_t, int> per_worker;
  bool right = true;
  try {
    for (long received = 0; received < kTasks; ++received) {
      const Answer a = results.get(5s);  // all are queued already
      const long k = a.n - kFirst;
      right = right && k >= 1 && k <= kTasks && a.divisors == divisors(a.n);
      if (k >= 1 && k <= kTasks) ++seen[static_cast<std::size_t>(k)];
      ++per_worker[a.worker];
    }
  } catch (const concur::Empty&) {
    right = false;  // an answer is missing
  }

  for (int i = 0; i < kWorkers; ++i) tasks.put(kStop);
  bool ended = true;
  for (auto& w : workers) ended = w.join(5s) && w.exitcode() == 0 && ended;

  std::printf("answers per worker process:");
  for (const auto& [pid, count] : per_worker) std::printf(" %d", count);
  std::printf(" (total %ld); the workers %s\n", kTasks, ended ? "ended cleanly" : "did NOT end");
  for (long k = 1; k <= kTasks; ++k) right = right && seen[static_cast<std::size_t>(k)] == 1;
  if (!right || !ended || !results.empty()) {
    std::printf("queue_workers: FAILED: an answer was wrong, missing or duplicated\n");
    return 1;
  }
  return 0;
}
