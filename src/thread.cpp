// Threads: start, join, names, the registry behind enumerate(), the
// excepthook, the wait for non-daemon threads at exit, and fork.
#include "concur/threading/thread.hpp"

#include <pthread.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <new>
#include <stdexcept>
#include <system_error>

#include "concur/detail/annotate.hpp"
#include "concur/threading/event.hpp"
#include "exception_text.hpp"
#include "fork_page.hpp"

namespace concur::detail {

// What a Thread object and its OS thread share. The object, the thread (for
// as long as its thread_local objects live) and the registry each hold a
// reference, so either side may go first.
struct ThreadState {
  // os_thread is also written with a plain atomic store (reap), which
  // Helgrind would take for a race with another joiner's compare-and-swap.
  ThreadState() { CONCUR_ATOMIC_WORD_BEGIN(&os_thread); }

  // The OS thread, as far as reaping it is concerned.
  enum OsThread : int {
    kNone,      // not started, or not a thread concur started (main, dummies)
    kJoinable,  // started joinable; nobody has joined or detached it yet
    kReaping,   // one caller is in pthread_join; the others wait on `reaped`
    kGone,      // joined or detached
  };

  std::function<void()> target;
  mutable std::mutex mutex;  // guards name, daemon, and start() against set_daemon()
  std::string name;
  bool daemon = false;
  bool dummy = false;                // a thread concur did not start
  std::atomic<bool> started{false};  // start() was called (and did not fail)
  // Written by the new thread before `running` is set, fixed afterwards
  // (except in a child of fork, where only one thread is left).
  std::uint64_t ident = 0;
  std::int64_t native_id = 0;
  pthread_t handle{};
  pid_t owner = 0;  // the process `handle` belongs to; a fork child must not join it
  std::atomic<int> os_thread{kNone};
  threading::Event running;   // the thread runs: ident and native_id are set
  threading::Event released;  // the thread no longer touches the Thread object
  threading::Event finished;  // run() returned and the excepthook is done
  threading::Event reaped;    // os_thread left kReaping
};

}  // namespace concur::detail

namespace concur::threading {

namespace {

using concur::detail::ThreadState;

// concur's global state is never destroyed: daemon threads may use it while
// the program exits, and it exists before any static constructor asks.
struct Registry {
  std::mutex mutex;  // guards all below; fork() holds it across (see before_fork)
  std::vector<std::shared_ptr<ThreadState>> alive;
  // Started joinable and neither joined nor detached yet: the exit handler
  // reaps those that finished, whose Thread objects nobody destroyed.
  std::vector<std::shared_ptr<ThreadState>> unreaped;
  std::shared_ptr<ThreadState> main;
  ExceptHook hook;
  bool exit_handler_installed = false;
  // Set when a thread other than the main one is listed: until then there
  // is nothing to wait for or reap at the end, and a fork child that started
  // no thread ends without taking the lock (fork_page.hpp).
  std::atomic<bool> listed_others{false};
};

std::atomic<Registry*> g_registry{nullptr};

void before_fork();
void after_fork_in_parent();
void after_fork_in_child();

Registry& registry() {
  static Registry* const r = [] {
    // On the fork page (fork_page.hpp): its lock is held across fork.
    auto* created = new (concur::detail::fork_page_allocate(sizeof(Registry), alignof(Registry)))
        Registry;
    g_registry.store(created, std::memory_order_release);
    ::pthread_atfork(&before_fork, &after_fork_in_parent, &after_fork_in_child);
    return created;
  }();
  return *r;
}

// Default names count from 1 per kind, and only when no name is given.
std::atomic<unsigned> thread_counter{0};
std::atomic<unsigned> dummy_counter{0};

std::string new_name(const char* prefix, std::atomic<unsigned>& counter) {
  return prefix + std::to_string(counter.fetch_add(1, std::memory_order_relaxed) + 1);
}

std::int64_t gettid_now() { return ::gettid(); }
std::uint64_t ident_now() { return static_cast<std::uint64_t>(::pthread_self()); }

// The calling thread's state. It lives as long as the thread's thread_local
// objects, so current_thread() and the self-join check also work in the
// destructors of thread_local objects the target created.
struct CurrentEntry {
  std::shared_ptr<ThreadState> state;
  bool registered = false;  // a dummy this entry added to the registry
  ~CurrentEntry();
};
thread_local CurrentEntry t_entry;
thread_local ThreadState* t_current = nullptr;  // t_entry.state.get(), without touching t_entry
thread_local bool t_exiting = false;            // t_entry is destroyed

ThreadInfo info_of(const ThreadState& s) {
  std::scoped_lock guard(s.mutex);
  return ThreadInfo{s.name, s.ident, s.native_id, s.daemon};
}

std::string name_of(const ThreadState& s) {
  std::scoped_lock guard(s.mutex);
  return s.name;
}

void erase_state(std::vector<std::shared_ptr<ThreadState>>& v, const ThreadState* s) {
  v.erase(std::remove_if(v.begin(), v.end(), [s](const auto& p) { return p.get() == s; }), v.end());
}

void add_alive(const std::shared_ptr<ThreadState>& s, bool joinable) {
  Registry& r = registry();
  std::scoped_lock guard(r.mutex);
  r.alive.push_back(s);
  if (joinable) r.unreaped.push_back(s);
  r.listed_others.store(true, std::memory_order_release);
}

void remove_alive(const ThreadState* s) {
  Registry& r = registry();
  std::scoped_lock guard(r.mutex);
  erase_state(r.alive, s);
}

void remove_unreaped(const ThreadState* s) {
  Registry& r = registry();
  std::scoped_lock guard(r.mutex);
  erase_state(r.unreaped, s);
}

CurrentEntry::~CurrentEntry() {
  if (registered) remove_alive(state.get());
  t_current = nullptr;
  t_exiting = true;
}

std::shared_ptr<ThreadState> make_main_state() {
  auto s = std::make_shared<ThreadState>();
  s->name = "MainThread";
  s->started.store(true, std::memory_order_relaxed);
  s->native_id = ::getpid();
  if (gettid_now() == ::getpid()) s->ident = ident_now();
  s->running.set();
  return s;
}

// The main thread: the one whose kernel id is the process id. In a child of
// fork, the forking thread (see after_fork_in_child).
std::shared_ptr<ThreadState> main_state() {
  Registry& r = registry();
  std::scoped_lock guard(r.mutex);
  if (!r.main) {
    r.main = make_main_state();
    r.alive.insert(r.alive.begin(), r.main);
  }
  return r.main;
}

std::shared_ptr<ThreadState> make_dummy() {
  auto s = std::make_shared<ThreadState>();
  s->name = new_name("Dummy-", dummy_counter);
  s->daemon = true;
  s->dummy = true;
  s->started.store(true, std::memory_order_relaxed);
  s->ident = ident_now();
  s->native_id = gettid_now();
  s->running.set();
  return s;
}

std::shared_ptr<ThreadState> current_state() {
  if (t_exiting) {
    // A thread_local destructor running after concur let go of this
    // thread: report it, but register nothing that would outlive it.
    return gettid_now() == ::getpid() ? main_state() : make_dummy();
  }
  CurrentEntry& e = t_entry;
  if (e.state) return e.state;
  if (gettid_now() == ::getpid()) {
    e.state = main_state();
    std::scoped_lock guard(e.state->mutex);
    // The main state may have been made by another thread, before this one
    // could say who it is.
    if (e.state->ident == 0) e.state->ident = ident_now();
  } else {
    // A thread concur did not start: a Dummy, listed until the thread ends.
    e.state = make_dummy();
    add_alive(e.state, false);
    e.registered = true;
  }
  t_current = e.state.get();
  return e.state;
}

bool current_daemon() {
  const auto s = current_state();
  std::scoped_lock guard(s->mutex);
  return s->daemon;
}

void print_exception(const std::string& thread_name, const std::exception_ptr& e) {
  const std::string text =
      "Exception in thread " + thread_name + ":\n" + concur::detail::describe_exception(e) + "\n";
  std::fwrite(text.data(), 1, text.size(), stderr);
  std::fflush(stderr);
}

// Python's threading.excepthook call, in the thread that failed.
void report(const std::string& thread_name, std::exception_ptr e) {
  ExceptHook hook;
  {
    Registry& r = registry();
    std::scoped_lock guard(r.mutex);
    hook = r.hook;
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

// Once `finished` is set: joins the OS thread exactly once; every caller
// returns after it is gone. A thread of the parent of a fork has nothing to
// reap here.
void reap(ThreadState& s) {
  if (s.owner != ::getpid()) return;
  int expected = ThreadState::kJoinable;
  if (s.os_thread.compare_exchange_strong(expected, ThreadState::kReaping,
                                          std::memory_order_acq_rel)) {
    ::pthread_join(s.handle, nullptr);
    s.os_thread.store(ThreadState::kGone, std::memory_order_release);
    s.reaped.set();
    remove_unreaped(&s);
  } else if (expected == ThreadState::kReaping) {
    s.reaped.wait();
  }
}

// Lets the OS thread end on its own; nobody will join it.
void detach(ThreadState& s) {
  if (s.owner != ::getpid()) return;
  int expected = ThreadState::kJoinable;
  if (s.os_thread.compare_exchange_strong(expected, ThreadState::kGone,
                                          std::memory_order_acq_rel)) {
    ::pthread_detach(s.handle);
    remove_unreaped(&s);
  }
}

// At exit, as Python's threading._shutdown: wait for the non-daemon threads,
// then reap every thread that has finished and that nobody joined, so each
// has ended entirely (its thread_local objects too) before static objects
// are destroyed. exit() may be called by one of them: it is skipped by its
// kernel id, unique among the threads still listed (and its thread_locals
// are gone by now, so t_current cannot tell).
CONCUR_FORK_PATH void wait_for_non_daemon_threads() {
  // Asked only when some thread is to be waited for: at the end of a fork
  // child, gettid would be one more page of libc code to fault in.
  std::int64_t self = 0;
  Registry& r = registry();
  if (!r.listed_others.load(std::memory_order_acquire)) return;
  for (;;) {
    std::shared_ptr<ThreadState> pending;
    {
      std::scoped_lock guard(r.mutex);
      for (const auto& s : r.alive) {
        if (s == r.main || s->dummy || s->finished.is_set()) continue;
        std::scoped_lock state_guard(s->mutex);
        if (s->daemon) continue;
        if (self == 0) self = gettid_now();
        if (s->native_id != self) {
          pending = s;
          break;
        }
      }
    }
    if (!pending) break;
    pending->finished.wait();
  }
  std::vector<std::shared_ptr<ThreadState>> unreaped;
  {
    std::scoped_lock guard(r.mutex);
    unreaped = r.unreaped;
  }
  for (const auto& s : unreaped) {
    if (s->finished.is_set()) reap(*s);
  }
}

void install_exit_handler() {
  Registry& r = registry();
  std::scoped_lock guard(r.mutex);
  if (!r.exit_handler_installed) {
    r.exit_handler_installed = true;
    std::atexit(&wait_for_non_daemon_threads);
  }
}

// Holding the registry across fork() gives the child a consistent list of
// the threads that were alive, which after_fork_in_child stops, as Python's
// threading._after_fork does.
CONCUR_FORK_PATH void before_fork() {
  if (Registry* r = g_registry.load(std::memory_order_acquire)) r->mutex.lock();
}

CONCUR_FORK_PATH void after_fork_in_parent() {
  if (Registry* r = g_registry.load(std::memory_order_acquire)) r->mutex.unlock();
}

CONCUR_FORK_PATH void after_fork_in_child() {
  Registry* r = g_registry.load(std::memory_order_acquire);
  if (r == nullptr) return;
  // Only this thread exists now, and it holds r->mutex (before_fork).
  ThreadState* const self = t_exiting ? nullptr : t_entry.state.get();
  if (self != nullptr && !self->dummy && r->main.get() == self && r->alive.size() == 1 &&
      r->alive.front().get() == self && r->unreaped.empty()) {
    // The common case, a program whose only thread forks: nothing changes
    // but the thread's ids, and no other page is written (fork_page.hpp).
    concur::detail::reset_if_held(self->mutex);
    const auto ident = ident_now();
    if (self->ident != ident) self->ident = ident;
    self->native_id = ::getpid();
    r->listed_others.store(false, std::memory_order_relaxed);
    r->mutex.unlock();
    return;
  }
  std::shared_ptr<ThreadState> keep = t_exiting ? nullptr : t_entry.state;
  for (const auto& s : r->alive) {
    // A thread that is gone here may have held it.
    concur::detail::reset_if_held(s->mutex);
    // Python: every other thread has stopped; join() returns at once, and
    // nothing is reaped here (ThreadState::owner is the parent).
    if (s != keep) s->finished.set();
  }
  r->alive.clear();
  r->unreaped.clear();  // the parent's threads: nothing to reap here
  if (!keep) {
    keep = make_main_state();
  } else if (keep->dummy) {
    // Python 3.13: a dummy that forks becomes the child's MainThread.
    keep->name = "MainThread";
    keep->daemon = false;
    keep->dummy = false;
  }
  keep->ident = ident_now();
  keep->native_id = ::getpid();
  r->main = keep;
  r->alive.push_back(keep);
  r->listed_others.store(false, std::memory_order_relaxed);
  if (!t_exiting) {
    t_entry.state = keep;
    t_entry.registered = false;  // the child's main thread: listed until the process ends
    t_current = keep.get();
  }
  r->mutex.unlock();
}

// Capture the main thread's identity while static initialization runs in
// it, and install the fork handlers before any thread exists.
[[maybe_unused]] const bool kMainCaptured = [] {
  registry();
  if (gettid_now() == ::getpid()) (void)current_state();
  return true;
}();

bool wait_for(Event& event, concur::detail::Deadline deadline) {
  if (deadline.is_never()) return event.wait();
  if (deadline.is_now_only()) return event.is_set();
  return event.wait_until(
      std::chrono::steady_clock::time_point(std::chrono::nanoseconds(deadline.ns())));
}

// The final overrider of Thread::run for `self`, read from its vtable by the
// thread calling start(). The new thread then never reads self's vptr, which
// ~Thread rewrites: a virtual call from the new thread would race with the
// destruction of a daemon Timer or of any derived object (a TSan report).
// Itanium C++ ABI (GCC and Clang on Linux): a pointer to a virtual member
// function is {ptr, adj}; the vtable byte offset is ptr - 1 where the
// virtual bit is in ptr (x86-64, RISC-V), and ptr itself where it is in
// adj (ARM, AArch64, MIPS: adj = 2 * delta + 1).
static_assert(sizeof(void(Thread::*)()) == 2 * sizeof(std::uintptr_t));
using RunFn = void (*)(Thread*);
RunFn resolve_run(Thread* self) {
  void (Thread::*member)() = &Thread::run;
  std::uintptr_t rep[2];
  std::memcpy(rep, &member, sizeof rep);
  const std::uintptr_t offset = (rep[1] & 1) != 0 ? rep[0] : rep[0] - 1;
  void* const* vtable = *reinterpret_cast<void* const* const*>(self);
  return reinterpret_cast<RunFn>(vtable[offset / sizeof(void*)]);
}

struct Boot {
  std::shared_ptr<ThreadState> state;
  Thread* self;
  RunFn run;
};

void* thread_entry(void* arg) {
  std::unique_ptr<Boot> boot(static_cast<Boot*>(arg));
  Thread* const self = boot->self;
  const RunFn run = boot->run;
  ThreadState& s = *boot->state;
  t_entry.state = std::move(boot->state);
  t_current = &s;
  boot.reset();
  s.ident = ident_now();
  s.native_id = gettid_now();
  s.handle = ::pthread_self();
  s.owner = ::getpid();
  s.os_thread.store(ThreadState::kJoinable, std::memory_order_relaxed);
  // A direct call of run() before start() set it; the destructor of a
  // daemon must wait for this run.
  s.released.clear();
  add_alive(t_entry.state, true);
  s.running.set();
  try {
    run(self);
  } catch (...) {
    report(name_of(s), std::current_exception());
  }
  s.released.set();  // for an override of run(); Thread::run set it already
  remove_alive(&s);
  s.finished.set();  // last: a joiner may free what the target used
  return nullptr;
}

}  // namespace

Thread::Thread() : Thread(ThreadOptions{}, std::function<void()>{}) {}

Thread::Thread(ThreadOptions options, std::function<void()> target)
    : state_(std::make_shared<ThreadState>()) {
  state_->target = std::move(target);
  state_->name =
      options.name.empty() ? new_name("Thread-", thread_counter) : std::move(options.name);
  state_->daemon = options.daemon ? *options.daemon : current_daemon();
}

Thread::~Thread() {
  ThreadState& s = *state_;
  if (!s.started.load(std::memory_order_acquire)) return;
  if (t_current == &s) {
    // Destroyed by its own thread: nobody can join it any more.
    detach(s);
    return;
  }
  if (!s.finished.is_set()) {
    if (s.daemon) {
      // It runs on without this object once run() has taken what it needs.
      s.released.wait();
      if (!s.finished.is_set()) {
        detach(s);
        return;
      }
    } else {
      s.finished.wait();
    }
  }
  reap(s);
}

void Thread::run() {
  // Take what the thread needs before letting go of this object, so a
  // daemon Thread may be destroyed while its target runs.
  std::shared_ptr<ThreadState> state = state_;
  std::function<void()> target = std::move(state->target);
  state->target = nullptr;
  state->released.set();
  if (target) target();
}

void Thread::start() {
  ThreadState& s = *state_;
  {
    std::scoped_lock guard(s.mutex);
    if (s.started.load(std::memory_order_relaxed)) {
      throw std::logic_error("Thread.start(): threads can only be started once; make a new Thread");
    }
    s.started.store(true, std::memory_order_release);
  }
  install_exit_handler();
  auto boot = std::make_unique<Boot>(Boot{state_, this, resolve_run(this)});
  pthread_t handle;
  const int rc = ::pthread_create(&handle, nullptr, &thread_entry, boot.get());
  if (rc != 0) {
    std::scoped_lock guard(s.mutex);
    s.started.store(false, std::memory_order_release);
    throw std::system_error(rc, std::generic_category(), "Thread.start(): can't start new thread");
  }
  boot.release();  // the new thread owns it
  s.running.wait();
}

bool Thread::join_until(concur::detail::Deadline deadline) {
  if (!state_->started.load(std::memory_order_acquire)) {
    throw std::logic_error(
        "Thread.join(): cannot join a thread before it is started; call start() first");
  }
  if (t_current == state_.get()) {
    throw std::logic_error("Thread.join(): a thread cannot join itself");
  }
  if (!wait_for(state_->finished, deadline)) return false;
  reap(*state_);
  return true;
}

void Thread::join() { (void)join_until(concur::detail::Deadline::never()); }

bool Thread::is_alive() const { return state_->running.is_set() && !state_->finished.is_set(); }

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
  if (state_->started.load(std::memory_order_relaxed)) {
    throw std::logic_error(
        "Thread.set_daemon(): cannot set the daemon status of a started thread; set it before "
        "start()");
  }
  state_->daemon = daemon;
}

std::optional<std::uint64_t> Thread::ident() const {
  if (!state_->running.is_set()) return std::nullopt;
  std::scoped_lock guard(state_->mutex);  // a fork child rewrites it
  return state_->ident;
}

std::optional<std::int64_t> Thread::native_id() const {
  if (!state_->running.is_set()) return std::nullopt;
  std::scoped_lock guard(state_->mutex);
  return state_->native_id;
}

std::uint64_t get_ident() { return ident_now(); }
std::int64_t get_native_id() { return gettid_now(); }

int active_count() { return static_cast<int>(enumerate().size()); }

ThreadInfo current_thread() { return info_of(*current_state()); }

ThreadInfo main_thread() { return info_of(*main_state()); }

std::vector<ThreadInfo> enumerate() {
  (void)main_state();
  std::vector<std::shared_ptr<ThreadState>> alive;
  {
    Registry& r = registry();
    std::scoped_lock guard(r.mutex);
    alive = r.alive;
  }
  std::vector<ThreadInfo> out;
  out.reserve(alive.size());
  for (const auto& s : alive) out.push_back(info_of(*s));
  return out;
}

ExceptHook set_excepthook(ExceptHook hook) {
  ExceptHook previous;
  {
    Registry& r = registry();
    std::scoped_lock guard(r.mutex);
    previous = std::move(r.hook);
    r.hook = std::move(hook);
  }
  if (!previous) previous = &default_excepthook;
  return previous;
}

void default_excepthook(const ExceptHookArgs& args) {
  print_exception(args.thread_name, args.exception);
}

}  // namespace concur::threading

namespace concur::detail {
CONCUR_FORK_PATH void threading_shutdown() { concur::threading::wait_for_non_daemon_threads(); }
}  // namespace concur::detail
