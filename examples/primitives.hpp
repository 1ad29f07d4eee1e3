// Every primitive of concur::threading in a small, real scenario, each the
// line-by-line translation of its Python idiom. Used by quickstart.cpp and
// by concur-demo (concur_demo.cpp).
#pragma once

#include <chrono>
#include <cstdio>
#include <deque>
#include <mutex>
#include <string>
#include <vector>

#include "concur/concur.hpp"

namespace scenarios {

namespace th = concur::threading;  // import threading
using namespace std::chrono_literals;

// Producer/consumer with a Condition: a bounded buffer of jobs.
inline void producer_consumer() {
  th::Condition ready;  // threading.Condition()
  std::deque<int> jobs;
  bool finished = false;
  long total = 0;

  th::Thread consumer([&] {
    for (;;) {
      std::scoped_lock guard(ready);  // with ready:
      ready.wait_for([&] { return !jobs.empty() || finished; });
      if (jobs.empty()) return;
      total += jobs.front();
      jobs.pop_front();
      ready.notify_all();
    }
  });
  consumer.start();
  for (int job = 1; job <= 100; ++job) {
    std::scoped_lock guard(ready);
    ready.wait_for([&] { return jobs.size() < 8; });  // at most 8 queued
    jobs.push_back(job);
    ready.notify_all();
  }
  {
    std::scoped_lock guard(ready);
    finished = true;
    ready.notify_all();
  }
  consumer.join();
  std::printf("Condition   producer/consumer: consumed jobs 1..100, total %ld\n", total);
}

// A connection limit with a BoundedSemaphore: at most 3 "connections" at once.
inline void connection_limit() {
  th::BoundedSemaphore connections(3);
  th::Lock stats;
  int open = 0, peak = 0;
  std::vector<std::unique_ptr<th::Thread>> clients;
  for (int i = 0; i < 10; ++i) {
    clients.push_back(std::make_unique<th::Thread>([&] {
      std::scoped_lock slot(connections);  // with connections:
      {
        std::scoped_lock guard(stats);
        peak = std::max(peak, ++open);
      }
      th::Event().wait(2ms);  // "talk to the server" for a moment
      std::scoped_lock guard(stats);
      --open;
    }));
    clients.back()->start();
  }
  for (auto& c : clients) c->join();
  std::printf("Semaphore   10 clients, connection limit 3: peak %d open at once\n", peak);
  try {
    connections.release();  // one release too many
  } catch (const std::invalid_argument& e) {
    std::printf("            over-release refused: %s\n", e.what());
  }
}

// Phases with a Barrier: workers finish phase 1 together before phase 2.
inline void phases() {
  int phase_changes = 0;
  th::Barrier barrier(3, [&] { ++phase_changes; });  // action runs once per cycle
  std::vector<std::unique_ptr<th::Thread>> workers;
  for (int w = 0; w < 3; ++w) {
    workers.push_back(std::make_unique<th::Thread>([&] {
      for (int phase = 0; phase < 4; ++phase) barrier.wait();
    }));
    workers.back()->start();
  }
  for (auto& w : workers) w->join();
  std::printf("Barrier     3 workers through 4 phases: the action ran %d times\n", phase_changes);
}

// Shutdown with an Event, a Timer that pulls the trigger, a daemon heartbeat.
inline void shutdown() {
  th::Event stop;
  th::Lock counter_lock;
  int ticks = 0;
  th::Thread heartbeat(th::ThreadOptions{"heartbeat", true}, [&] {
    while (!stop.wait(1ms)) {  // until stop is set
      std::scoped_lock guard(counter_lock);
      ++ticks;
    }
  });
  heartbeat.start();
  th::Timer trigger(30ms, [&] { stop.set(); });  // threading.Timer(0.03, stop.set)
  const auto start = std::chrono::steady_clock::now();
  trigger.start();
  stop.wait();
  const auto waited = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::steady_clock::now() - start);
  trigger.join();
  heartbeat.join();
  std::printf(
      "Event+Timer the timer set the stop event after %lld ms; the %s thread (daemon=%s) "
      "ticked %d times\n",
      static_cast<long long>(waited.count()), heartbeat.name().c_str(),
      heartbeat.daemon() ? "true" : "false", ticks);
}

// RLock: a function that takes the lock calls another that takes it again.
inline void reentrant() {
  th::RLock lock;
  int depth = 0;
  auto inner = [&] {
    std::scoped_lock guard(lock);
    ++depth;
  };
  {
    std::scoped_lock guard(lock);
    ++depth;
    inner();  // would deadlock with a plain Lock
  }
  std::printf("RLock       re-entered to depth %d; held now: %s\n", depth,
              lock.locked() ? "yes" : "no");
}

// A daemon thread never holds the program at exit, as in Python.
inline void daemon_thread() {
  // Never destroyed: it is still running when the program ends.
  static auto* forever = new th::Thread(th::ThreadOptions{"forever", true}, [] { th::Event().wait(); });
  forever->start();
  std::printf("Daemon      a daemon thread is still blocked; main returns and the program ends\n");
}

}  // namespace scenarios
