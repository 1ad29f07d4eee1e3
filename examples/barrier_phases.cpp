// barrier_phases: a computation in lock-step phases. Three worker threads
// each compute a third of a row of cells from the previous row (Rule 90: a
// cell is on when exactly one of its two neighbours was); no one may start
// row n + 1 before everyone has finished row n. A Barrier is that rule: each
// worker waits at it after its share, and its action -- run once per cycle,
// by one thread, before any is released -- publishes the new row.
//
// The Python it translates:
//
//   def next_row():                       # the barrier's action
//       global row, new_row
//       row, new_row = new_row, row
//       print(''.join('#' if c else '.' for c in row))
//   barrier = threading.Barrier(3, action=next_row, timeout=5)
//   def worker(lo, hi):
//       for _ in range(GENERATIONS):
//           for i in range(lo, hi):
//               new_row[i] = row[i - 1] ^ row[i + 1]
//           barrier.wait()
//
// A worker reads its neighbours' cells of the old row and writes only its own
// cells of the new one; the barrier orders every write of a phase before
// every read of the next, so no lock is needed (ThreadSanitizer checks it in
// CI). The timeout breaks the barrier instead of hanging if a worker is lost.
//
// Exits 1 if the rows differ from a sequential computation or the barrier
// broke.
#include <chrono>
#include <cstdio>
#include <deque>
#include <string>
#include <utility>
#include <vector>

#include "check.hpp"  // fail(): print why, exit 1 at once
#include "concur/concur.hpp"

namespace th = concur::threading;  // import threading
using namespace std::chrono_literals;

constexpr int kWorkers = 3;
constexpr int kWidth = 31;
constexpr int kGenerations = 15;

using Row = std::vector<char>;

// Cell i of the row after `row`; cells beyond the edges are off.
char rule90(const Row& row, int i) {
  const char left = i > 0 ? row[static_cast<std::size_t>(i - 1)] : 0;
  const char right = i + 1 < kWidth ? row[static_cast<std::size_t>(i + 1)] : 0;
  return static_cast<char>(left ^ right);
}

std::string draw(const Row& row) {
  std::string line;
  for (char cell : row) line += cell ? '#' : '.';
  return line;
}

int main() {
  Row row(kWidth, 0), new_row(kWidth, 0);
  row[kWidth / 2] = 1;  // one seed in the middle
  std::vector<std::string> drawn{draw(row)};

  // The action runs in exactly one thread per cycle, after all three have
  // arrived and before any leaves: the only moment it is safe to swap.
  th::Barrier barrier(
      kWorkers,
      [&] {
        std::swap(row, new_row);
        drawn.push_back(draw(row));
      },
      5s);

  std::deque<th::Thread> workers;  // Threads never move; a deque never moves them
  for (int w = 0; w < kWorkers; ++w) {
    const int lo = w * kWidth / kWorkers, hi = (w + 1) * kWidth / kWorkers;
    workers.emplace_back([&, lo, hi] {
      try {
        for (int g = 0; g < kGenerations; ++g) {
          for (int i = lo; i < hi; ++i) new_row[static_cast<std::size_t>(i)] = rule90(row, i);
          barrier.wait();  // phase g is over for everyone when this returns
        }
      } catch (const concur::BrokenBarrierError&) {
        // Timed out or aborted: barrier.broken() tells main.
      }
    });
  }
  for (auto& w : workers) w.start();
  for (auto& w : workers) {
    if (!w.join(10s)) fail("a worker did not finish");
  }
  for (const std::string& line : drawn) std::printf("%s\n", line.c_str());

  // The same rows, one thread, no barrier.
  Row check(kWidth, 0);
  check[kWidth / 2] = 1;
  bool same = drawn.size() == kGenerations + 1 && drawn[0] == draw(check);
  for (int g = 1; same && g <= kGenerations; ++g) {
    Row next(kWidth, 0);
    for (int i = 0; i < kWidth; ++i) next[static_cast<std::size_t>(i)] = rule90(check, i);
    check = std::move(next);
    same = drawn[static_cast<std::size_t>(g)] == draw(check);
  }
  std::printf("%d workers, %d phases, one barrier: %s\n", kWorkers, kGenerations,
              same ? "the rows match a sequential run" : "the rows DIFFER");
  if (barrier.broken() || !same) fail("the phases did not stay in step");
  return 0;
}
