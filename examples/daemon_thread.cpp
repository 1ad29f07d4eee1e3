// daemon_thread: a background thread that never ends on its own -- a
// heartbeat -- made a daemon, so it never holds the program at exit; beside
// it, an ordinary (non-daemon) thread that the program does wait for.
//
// The Python it translates:
//
//   def heartbeat():
//       while not stop.wait(0.005):
//           beats += 1
//   threading.Thread(target=heartbeat, name="heartbeat", daemon=True).start()
//   threading.Thread(target=save, name="saver").start()
//   # the end of the script: Python waits for "saver", not for "heartbeat"
//
// As in Python, the program waits for every non-daemon thread and for no
// daemon one. In C++ one more rule matters: a daemon thread outlives main,
// so it must not touch main's local variables. This one owns its state
// through a shared_ptr captured by value. Destroying the heartbeat's Thread
// object at the end of main detaches the thread; destroying the saver's
// joins it.
//
// Exits 1 if the heartbeat does not beat or a thread's daemon flag is wrong.
// If the daemon held the program, it would run for ten minutes, past the
// two-minute limit ctest gives this example: that would fail it too.
#include <atomic>
#include <chrono>
#include <cstdio>
#include <memory>
#include <thread>

#include "check.hpp"  // fail(): print why, exit 1 at once
#include "concur/concur.hpp"

namespace th = concur::threading;  // import threading
using namespace std::chrono_literals;

// What the heartbeat uses: kept alive by the thread itself, not by main.
struct Heartbeat {
  th::Event stop;         // never set here: the daemon just runs on
  th::Event three_beats;  // set once it has beaten 3 times
  std::atomic<long> beats{0};
};

int main() {
  auto state = std::make_shared<Heartbeat>();
  // daemon=True; [state] copies the shared_ptr: the thread co-owns its state.
  th::Thread heartbeat(th::ThreadOptions{"heartbeat", true}, [state] {
    const auto give_up = std::chrono::steady_clock::now() + 10min;  // bounded, but far away
    while (!state->stop.wait(5ms) && std::chrono::steady_clock::now() < give_up) {
      if (++state->beats == 3) state->three_beats.set();
    }
  });
  heartbeat.start();
  if (!state->three_beats.wait(5s)) fail("the heartbeat did not beat");

  th::Event main_returning;
  // daemon=False. It may use main's locals: it is joined before they go.
  th::Thread saver(th::ThreadOptions{"saver", false}, [&main_returning] {
    if (!main_returning.wait(5s)) return;
    std::this_thread::sleep_for(20ms);  // stands for writing a file
    std::printf("saver: finished after main's last line; the program waited for it\n");
  });
  saver.start();

  std::printf("threads: %s (daemon=%s), %s (daemon=%s); the heartbeat beat %ld times so far\n",
              heartbeat.name().c_str(), heartbeat.daemon() ? "true" : "false", saver.name().c_str(),
              saver.daemon() ? "true" : "false", state->beats.load());
  if (!heartbeat.daemon() || saver.daemon() || !heartbeat.is_alive()) fail("wrong daemon flags");
  std::printf("main: returning while the heartbeat still runs\n");
  std::fflush(stdout);
  main_returning.set();
  return 0;  // ~saver joins the saver; ~heartbeat lets the daemon run on until the process ends
}
