// io_bound_threads: where threads shine. 40 requests to a slow local
// service, each of which spends its time blocked on a socket, not on the
// CPU: one after another, then on a ThreadPool as large as the machine's
// CPU count, then on a ThreadPool with one thread per request.
//
// The Python it translates (threads are the classic answer for I/O, in
// CPython too: a thread blocked in recv() releases the GIL):
//
//   from multiprocessing.pool import ThreadPool
//   replies = [fetch(i) for i in ids]                 # one after another
//   with ThreadPool(40) as pool:
//       assert pool.map(fetch, ids, chunksize=1) == replies
//
// The "service" is in this program: one socketpair per connection and a
// server thread per connection that answers each request after 10 ms (a
// sleep that stands for network and disk latency). The clients block in
// poll()/recv() exactly as they would on a remote server.
//
// Exits 1 if a reply is wrong or missing. The times are printed, never
// checked: the machine may be busy.
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <deque>
#include <numeric>
#include <stdexcept>
#include <thread>
#include <vector>

#include "concur/concur.hpp"

namespace th = concur::threading;        // import threading
namespace mp = concur::multiprocessing;  // import multiprocessing as mp
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

constexpr int kRequests = 40;
constexpr auto kLatency = 10ms;
// Every wait on a socket is bounded: a reply within 5 s, a server's next
// request within 30 s (it ends then).
constexpr int kReplyLimitMs = 5'000;
constexpr int kIdleLimitMs = 30'000;

// Waits until fd is readable; false after limit_ms.
bool readable(int fd, int limit_ms) {
  pollfd p{fd, POLLIN, 0};
  return ::poll(&p, 1, limit_ms) == 1;
}

// A slow service reached over `connections` local connections. Each server
// thread answers id with id * id, kLatency after the request came in, until
// its client closes the connection.
class SlowService {
 public:
  explicit SlowService(int connections) {
    for (int i = 0; i < connections; ++i) {
      int pair[2];
      if (::socketpair(AF_UNIX, SOCK_STREAM, 0, pair) != 0) throw std::runtime_error("socketpair");
      clients_.push_back(pair[0]);
      servers_.emplace_back(serve, pair[1]);  // threading.Thread(target=serve, args=(fd,))
      servers_.back().start();
    }
  }
  ~SlowService() {
    for (int fd : clients_) ::close(fd);  // each server sees end-of-file and returns
    for (auto& server : servers_) server.join();
  }
  int client(int connection) const { return clients_[static_cast<std::size_t>(connection)]; }

 private:
  static void serve(int fd) {
    int id = 0;
    while (readable(fd, kIdleLimitMs) && ::recv(fd, &id, sizeof id, MSG_WAITALL) == sizeof id) {
      std::this_thread::sleep_for(kLatency);  // the latency of a real service
      const int reply = id * id;
      if (::send(fd, &reply, sizeof reply, MSG_NOSIGNAL) != sizeof reply) break;
    }
    ::close(fd);
  }

  std::vector<int> clients_;
  std::deque<th::Thread> servers_;  // a deque: Threads are not movable, and it never moves them
};

// One request: send id on connection id and block until the reply; -1 when
// it does not come.
int fetch(const SlowService& service, int id) {
  const int fd = service.client(id);
  if (::send(fd, &id, sizeof id, MSG_NOSIGNAL) != sizeof id) return -1;
  if (!readable(fd, kReplyLimitMs)) return -1;  // blocked here: no CPU used while waiting
  int reply = -1;
  return ::recv(fd, &reply, sizeof reply, MSG_WAITALL) == sizeof reply ? reply : -1;
}

double milliseconds_since(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

int main() {
  SlowService service(kRequests);
  std::vector<int> ids(kRequests);
  std::iota(ids.begin(), ids.end(), 0);
  std::vector<int> expected;
  for (int id : ids) expected.push_back(id * id);
  std::printf("%d requests to a service that answers each after %lld ms\n", kRequests,
              static_cast<long long>(kLatency.count()));

  auto start = Clock::now();
  std::vector<int> replies;
  for (int id : ids) replies.push_back(fetch(service, id));
  const double sequential = milliseconds_since(start);
  bool ok = replies == expected;
  std::printf("  %-20s %6.1f ms\n", "one after another", sequential);

  // While map() waits, the calling thread runs queued tasks too, so a pool
  // of N threads has N + 1 requests in flight.
  const auto fetch_one = [&service](int id) { return fetch(service, id); };
  for (int threads : {mp::cpu_count(), kRequests}) {
    mp::ThreadPool pool(threads);
    start = Clock::now();
    replies = pool.map(fetch_one, ids, 1);  // chunksize 1: each request is its own task
    const double ms = milliseconds_since(start);
    ok = ok && replies == expected;
    char label[32];
    std::snprintf(label, sizeof label, "ThreadPool(%d).map", threads);
    std::printf("  %-20s %6.1f ms  speed-up %.1fx\n", label, ms, sequential / ms);
  }

  if (!ok) {
    std::printf("io_bound_threads: a reply was wrong or did not come\n");
    return 1;
  }
  std::printf(
      "the threads wait side by side while the CPUs idle: their number, not the cores, "
      "sets the pace\n");
  return 0;
}
