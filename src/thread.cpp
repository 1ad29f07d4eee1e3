// Threads: start, join, names, the registry behind enumerate(), the
// excepthook, and the wait for non-daemon threads at exit.
#include "concur/threading/thread.hpp"

#include <pthread.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <stdexcept>
#include <system_error>
#include <typeinfo>

#include "concur/threading/event.hpp"
#include "exception_text.hpp"

namespace concur::detail {

struct ThreadState {
  std::function<void()> target;
  mutable std::mutex mutex;  // guards name and the os-thread hand-over below
  std::string name;
  bool daemon = false;
  bool started = false;
  std::uint64_t ident = 0;     // written before `running` is set
  std::int64_t native_id = 0;  // likewise
  threading::Event running;
  threading::Event released;  // the Thread object is no longer touched by the thread
  threading::Event finished;
};

}  // namespace concur::detail

namespace concur::threading {

namespace {

using concur::detail::ThreadState;

// concur's global state is never destroyed: daemon threads may use it while
// the program exits.
struct Registry {
  std::mutex mutex;
  std::vector<std::shared_ptr<ThreadState>> alive;
  std::shared_ptr<ThreadState> main;
  ExceptHook hook;
  bool exit_handler_installed = false;
  Registry* before_fork = nullptr;  // kept reachable, never freed: see reset_in_child
};
Registry* registry = new Registry;

std::atomic<unsigned> name_counter{0};

thread_local ThreadState* t_current = nullptr;

std::int64_t gettid_now() { return static_cast<std::int64_t>(::syscall(SYS_gettid)); }
std::uint64_t ident_now() { return static_cast<std::uint64_t>(::pthread_self()); }

std::string new_name(const char* prefix) {
  return prefix + std::to_string(name_counter.fetch_add(1, std::memory_order_relaxed) + 1);
}

ThreadInfo info_of(const ThreadState& s) {
  std::scoped_lock guard(s.mutex);
  return ThreadInfo{s.name, s.ident, s.native_id, s.daemon};
}

void add_alive(const std::shared_ptr<ThreadState>& s) {
  std::scoped_lock guard(registry->mutex);
  registry->alive.push_back(s);
}
void remove_alive(const ThreadState* s) {
  std::scoped_lock guard(registry->mutex);
  auto& v = registry->alive;
  v.erase(std::remove_if(v.begin(), v.end(), [s](const auto& p) { return p.get() == s; }), v.end());
}

// The main thread: the one whose kernel id is the process id. In a child of
// fork, that is the thread that forked, as in Python.
std::shared_ptr<ThreadState> main_state() {
  std::scoped_lock guard(registry->mutex);
  if (!registry->main) {
    auto s = std::make_shared<ThreadState>();
    s->name = "MainThread";
    s->daemon = false;
    s->started = true;
    s->native_id = ::getpid();
    if (gettid_now() == ::getpid()) s->ident = ident_now();
    s->running.set();
    registry->main = s;
    registry->alive.insert(registry->alive.begin(), s);
  }
  return registry->main;
}

// A thread concur did not start gets a Dummy entry on first look, removed
// when that thread ends.
struct DummyEntry {
  std::shared_ptr<ThreadState> state;
  ~DummyEntry() {
    if (state) remove_alive(state.get());
  }
};
thread_local DummyEntry t_dummy;

ThreadState* current_state() {
  if (t_current != nullptr) return t_current;
  if (gettid_now() == ::getpid()) {
    auto s = main_state();
    if (s->ident == 0) s->ident = ident_now();
    t_current = s.get();
    return t_current;
  }
  auto s = std::make_shared<ThreadState>();
  s->name = new_name("Dummy-");
  s->daemon = true;
  s->started = true;
  s->ident = ident_now();
  s->native_id = gettid_now();
  s->running.set();
  add_alive(s);
  t_dummy.state = s;
  t_current = s.get();
  return t_current;
}

void print_exception(const std::string& thread_name, const std::exception_ptr& e) {
  const std::string text =
      "Exception in thread " + thread_name + ":\n" + concur::detail::describe_exception(e) + "\n";
  std::fwrite(text.data(), 1, text.size(), stderr);
  std::fflush(stderr);
}

void report(const std::string& thread_name, std::exception_ptr e) {
  ExceptHook hook;
  {
    std::scoped_lock guard(registry->mutex);
    hook = registry->hook;
  }
  if (!hook) {
    print_exception(thread_name, e);
    return;
  }
  try {
    hook(ExceptHookArgs{std::move(e), thread_name});
  } catch (...) {
    print_exception(thread_name, std::current_exception());
  }
}

// At exit, as Python's threading._shutdown: wait for the non-daemon threads.
void wait_for_non_daemon_threads() {
  const ThreadState* self = t_current;
  for (;;) {
    std::shared_ptr<ThreadState> pending;
    {
      std::scoped_lock guard(registry->mutex);
      for (const auto& s : registry->alive) {
        if (s.get() == self || s == registry->main || s->finished.is_set()) continue;
        std::scoped_lock state_guard(s->mutex);
        if (!s->daemon) {
          pending = s;
          break;
        }
      }
    }
    if (!pending) return;
    pending->finished.wait();
  }
}

// After fork only the forking thread exists in the child.
void reset_in_child() {
  ThreadState* keep = t_current;
  // The old registry's mutex may have been held by a thread that does not
  // exist here: start a new one, and keep the old one reachable.
  Registry* old = registry;
  registry = new Registry;
  registry->before_fork = old;
  if (keep != nullptr && keep->name != "MainThread") {
    // Python: the thread that forked becomes the child's main thread.
    auto s = std::make_shared<ThreadState>();
    s->name = keep->name;
    s->daemon = false;
    s->started = true;
    s->ident = ident_now();
    s->native_id = ::getpid();
    s->running.set();
    registry->main = s;
    registry->alive.push_back(s);
    t_current = s.get();
  } else {
    t_current = nullptr;
  }
}
[[maybe_unused]] const int kAtfork = pthread_atfork(nullptr, nullptr, &reset_in_child);

bool wait_for(Event& event, concur::detail::Deadline deadline) {
  if (deadline.is_never()) return event.wait();
  if (deadline.is_now_only()) return event.is_set();
  return event.wait_until(
      std::chrono::steady_clock::time_point(std::chrono::nanoseconds(deadline.ns())));
}

// Capture the main thread's identity while static initialization runs in it.
[[maybe_unused]] const bool kMainCaptured = [] {
  if (gettid_now() == ::getpid()) main_state();
  return true;
}();

struct Boot {
  std::shared_ptr<ThreadState> state;
  Thread* self;
  void (*run)(Thread*);  // self's run(), looked up before the thread starts
};

// The final overrider of Thread::run for `self`, read from its vtable by the
// thread calling start(). The new thread then never reads self's vptr, which
// a derived destructor rewrites: that is what lets a daemon Timer (or any
// Thread with a target) be destroyed at any time without a data race.
// Itanium C++ ABI (GCC and Clang on Linux): a pointer to a virtual member
// function holds 1 + the byte offset of its vtable slot.
static_assert(sizeof(void(Thread::*)()) == 2 * sizeof(std::uintptr_t));
void (*resolve_run(Thread* self))(Thread*) {
  void (Thread::*member)() = &Thread::run;
  std::uintptr_t rep[2];
  std::memcpy(rep, &member, sizeof rep);
  void* const* vtable = *reinterpret_cast<void* const* const*>(self);
  return reinterpret_cast<void (*)(Thread*)>(vtable[(rep[0] - 1) / sizeof(void*)]);
}

}  // namespace

}  // namespace concur::threading

// Called by the new thread; friend-free by going through run().
namespace concur::threading {
namespace {
void* thread_entry(void* arg) {
  std::unique_ptr<Boot> boot(static_cast<Boot*>(arg));
  std::shared_ptr<ThreadState> state = std::move(boot->state);
  Thread* self = boot->self;
  void (*run)(Thread*) = boot->run;
  boot.reset();
  t_current = state.get();
  state->native_id = gettid_now();
  state->ident = ident_now();
  add_alive(state);
  state->running.set();
  try {
    run(self);
  } catch (...) {
    std::string name;
    {
      std::scoped_lock guard(state->mutex);
      name = state->name;
    }
    report(name, std::current_exception());
  }
  state->released.set();
  remove_alive(state.get());
  t_current = nullptr;
  state->finished.set();
  return nullptr;
}
}  // namespace

Thread::Thread() : Thread(ThreadOptions{}, std::function<void()>{}) {}

Thread::Thread(ThreadOptions options, std::function<void()> target)
    : state_(std::make_shared<ThreadState>()) {
  state_->target = std::move(target);
  state_->name = options.name.empty() ? new_name("Thread-") : std::move(options.name);
  state_->daemon = options.daemon ? *options.daemon : current_thread().daemon;
}

Thread::~Thread() {
  ThreadState& s = *state_;
  bool started;
  {
    std::scoped_lock guard(s.mutex);
    started = s.started;
  }
  if (!started || t_current == &s || s.finished.is_set()) return;
  if (daemon()) {
    // Runs on without this object once run() has taken what it needs.
    s.released.wait();
    return;
  }
  s.finished.wait();
}

void Thread::run() {
  // Take what the thread needs before letting go of this object, so a
  // daemon Thread may be destroyed while its target runs.
  std::shared_ptr<ThreadState> state = state_;
  std::function<void()> target = std::move(state->target);
  state->released.set();
  if (target) target();
}

void Thread::start() {
  {
    std::scoped_lock guard(state_->mutex);
    if (state_->started) {
      throw std::logic_error("Thread.start(): threads can only be started once; make a new Thread");
    }
    state_->started = true;
  }
  {
    std::scoped_lock guard(registry->mutex);
    if (!registry->exit_handler_installed) {
      registry->exit_handler_installed = true;
      std::atexit(&wait_for_non_daemon_threads);
    }
  }
  auto* boot = new Boot{state_, this, resolve_run(this)};
  // Detached: join() waits on `finished`, so nothing is left to reap and a
  // thread whose Thread object is never destroyed leaks nothing.
  pthread_attr_t attr;
  ::pthread_attr_init(&attr);
  ::pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  pthread_t handle;
  const int rc = ::pthread_create(&handle, &attr, &thread_entry, boot);
  ::pthread_attr_destroy(&attr);
  if (rc != 0) {
    delete boot;
    std::scoped_lock guard(state_->mutex);
    state_->started = false;
    throw std::system_error(rc, std::generic_category(), "Thread.start(): can't start new thread");
  }
  state_->running.wait();
}

bool Thread::join_until(concur::detail::Deadline deadline) {
  {
    std::scoped_lock guard(state_->mutex);
    if (!state_->started) {
      throw std::logic_error(
          "Thread.join(): cannot join a thread before it is started; call start() first");
    }
  }
  if (t_current == state_.get()) {
    throw std::logic_error("Thread.join(): a thread cannot join itself");
  }
  return wait_for(state_->finished, deadline);
}

void Thread::join() { join_until(concur::detail::Deadline::never()); }

bool Thread::is_alive() const {
  std::scoped_lock guard(state_->mutex);
  return state_->started && !state_->finished.is_set();
}

const std::string& Thread::name() const {
  std::scoped_lock guard(state_->mutex);
  return state_->name;
}

void Thread::set_name(std::string name) {
  std::scoped_lock guard(state_->mutex);
  state_->name = std::move(name);
}

bool Thread::daemon() const {
  std::scoped_lock guard(state_->mutex);
  return state_->daemon;
}

void Thread::set_daemon(bool daemon) {
  std::scoped_lock guard(state_->mutex);
  if (state_->started) {
    throw std::logic_error("Thread.set_daemon(): cannot set the daemon status of a started thread");
  }
  state_->daemon = daemon;
}

std::optional<std::uint64_t> Thread::ident() const {
  if (!state_->running.is_set()) return std::nullopt;
  return state_->ident;
}

std::optional<std::int64_t> Thread::native_id() const {
  if (!state_->running.is_set()) return std::nullopt;
  return state_->native_id;
}

std::uint64_t get_ident() { return ident_now(); }
std::int64_t get_native_id() { return gettid_now(); }

int active_count() { return static_cast<int>(enumerate().size()); }

ThreadInfo current_thread() { return info_of(*current_state()); }

ThreadInfo main_thread() {
  auto s = main_state();
  return info_of(*s);
}

std::vector<ThreadInfo> enumerate() {
  main_state();
  std::vector<std::shared_ptr<ThreadState>> alive;
  {
    std::scoped_lock guard(registry->mutex);
    alive = registry->alive;
  }
  std::vector<ThreadInfo> out;
  out.reserve(alive.size());
  for (const auto& s : alive) out.push_back(info_of(*s));
  return out;
}

ExceptHook set_excepthook(ExceptHook hook) {
  std::scoped_lock guard(registry->mutex);
  ExceptHook previous = std::move(registry->hook);
  registry->hook = std::move(hook);
  if (!previous) previous = &default_excepthook;
  return previous;
}

void default_excepthook(const ExceptHookArgs& args) {
  print_exception(args.thread_name, args.exception);
}

}  // namespace concur::threading
