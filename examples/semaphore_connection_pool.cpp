// semaphore_connection_pool: ten client threads share three database
// connections. A BoundedSemaphore(3) counts the free connections: acquire()
// waits for one, release() hands it back, and a release too many is an
// error instead of a silent fourth connection.
//
// The Python it translates:
//
//   free = threading.BoundedSemaphore(3)
//   def client(i):
//       if not free.acquire(timeout=5):
//           raise TimeoutError
//       try:
//           conn = pool.take(); conn.query(i); pool.give_back(conn)
//       finally:
//           free.release()
//
// Dijkstra's P and V are acquire() and release(). A Semaphore guards a
// resource of limited capacity; BoundedSemaphore also catches the bug of
// releasing more often than acquiring (Python raises ValueError, concur
// throws std::invalid_argument). A Lock guards the list of free connections
// itself: the semaphore only counts them.
//
// Exits 1 if more than three connections were ever in use at once, a query
// went missing, or either over-release check does not behave as documented.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <deque>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <vector>

#include "check.hpp"  // fail(): print why, exit 1 at once
#include "concur/concur.hpp"

namespace th = concur::threading;  // import threading
using namespace std::chrono_literals;

constexpr int kConnections = 3;
constexpr int kClients = 10;
constexpr int kQueriesPerClient = 5;

// Three connections, each counting the queries it served.
class ConnectionPool {
 public:
  ConnectionPool() : free_(kConnections) {
    for (int c = 0; c < kConnections; ++c) idle_.push_back(c);
  }

  // Runs one query on a free connection; false when none came free in time.
  bool query() {
    if (!free_.acquire(5s)) return false;  // P(): wait for a free connection
    int connection;
    {
      std::scoped_lock guard(lock_);
      connection = idle_.back();
      idle_.pop_back();
      in_use_peak_ = std::max(in_use_peak_, kConnections - static_cast<int>(idle_.size()));
    }
    std::this_thread::sleep_for(2ms);  // the query's latency
    {
      std::scoped_lock guard(lock_);
      ++served_[static_cast<std::size_t>(connection)];
      idle_.push_back(connection);
    }
    free_.release();  // V(): one more is free
    return true;
  }

  th::BoundedSemaphore& permits() { return free_; }
  int peak() {
    std::scoped_lock guard(lock_);
    return in_use_peak_;
  }
  std::vector<int> served() {
    std::scoped_lock guard(lock_);
    return served_;
  }

 private:
  th::BoundedSemaphore free_;  // free connections, never above 3
  th::Lock lock_;              // guards the members below
  std::vector<int> idle_;
  std::vector<int> served_ = std::vector<int>(kConnections, 0);
  int in_use_peak_ = 0;
};

int main() {
  ConnectionPool pool;
  int failed = 0;
  th::Lock failed_lock;

  std::deque<th::Thread> clients;  // Threads never move; a deque never moves them
  for (int i = 0; i < kClients; ++i) {
    clients.emplace_back([&] {
      for (int q = 0; q < kQueriesPerClient; ++q) {
        if (!pool.query()) {
          std::scoped_lock guard(failed_lock);
          ++failed;
        }
      }
    });
  }
  for (auto& c : clients) c.start();
  for (auto& c : clients) {
    if (!c.join(20s)) fail("a client did not finish");
  }
  const std::vector<int> served = pool.served();
  std::printf(
      "%d clients, %d queries each, %d connections: at most %d in use at once; "
      "served %d, %d, %d\n",
      kClients, kQueriesPerClient, kConnections, pool.peak(), served[0], served[1], served[2]);
  if (failed != 0 || pool.peak() > kConnections ||
      served[0] + served[1] + served[2] != kClients * kQueriesPerClient) {
    fail("the connection limit or the query count is wrong");
  }

  // All three taken: the next acquire times out instead of waiting forever.
  th::BoundedSemaphore& permits = pool.permits();
  for (int c = 0; c < kConnections; ++c) {
    if (!permits.acquire(false)) fail("a connection was not handed back");  // false: never waits
  }
  const bool fourth = permits.acquire(10ms);
  for (int c = 0; c < kConnections; ++c) permits.release();
  std::printf("all %d taken: a fourth acquire(10ms) returned %s\n", kConnections,
              fourth ? "true" : "false");

  // One release too many: refused by the BoundedSemaphore, value unchanged...
  bool refused = false;
  try {
    permits.release();
  } catch (const std::invalid_argument& e) {
    refused = true;
    std::printf("BoundedSemaphore: over-release refused (%s); value still %d\n", e.what(),
                permits.value());
  }
  // ...while a plain Semaphore quietly grows a fourth permit.
  th::Semaphore plain(kConnections);
  plain.release();
  std::printf("Semaphore: over-release accepted; value now %d\n", plain.value());

  if (fourth || !refused || permits.value() != kConnections || plain.value() != kConnections + 1) {
    fail("a semaphore did not behave as documented");
  }
  return 0;
}
