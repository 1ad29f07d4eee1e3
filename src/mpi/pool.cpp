// concur::mpi::Pool over Open MPI: the task registry, functions by module
// and offset, and the messages between rank 0 and the serving ranks.
#include "concur/mpi/pool.hpp"

#include <dlfcn.h>
#include <link.h>
#include <mpi.h>
#include <sched.h>
#include <time.h>

#include <unistd.h>

#include <algorithm>
#include <climits>
#include <cstdio>
#include <list>
#include <vector>
#include <cstring>
#include <mutex>
#include <stdexcept>
#include <string>
#include <unordered_map>

namespace concur::mpi::detail {

namespace {

// Message tags. A message is one buffer; a buffer larger than kPiece is sent
// as several MPI messages with the same tag (MPI counts are ints).
constexpr int kTaskTag = 7101;
constexpr int kReplyTag = 7102;
constexpr int kStopTag = 7103;
constexpr int kEndTag = 7104;  // the job is being aborted: end this process
constexpr std::size_t kPiece = std::size_t{1} << 30;
constexpr const char* kUnknownTask =
    "no task of this kind is known on this rank; run the same build of the program on every rank";

std::unordered_map<std::uint64_t, TaskRunner>& registry() {
  static std::unordered_map<std::uint64_t, TaskRunner> tasks;
  return tasks;
}
std::mutex& registry_mutex() {
  static std::mutex m;
  return m;
}

// The runner registered under `key`; null when this build has none.
TaskRunner find_runner(std::uint64_t key) {
  std::scoped_lock guard(registry_mutex());
  auto it = registry().find(key);
  return it != registry().end() ? it->second : nullptr;
}

std::uint64_t fnv1a(const char* text) {
  std::uint64_t h = 1469598103934665603ull;
  for (; *text != '\0'; ++text) {
    h ^= static_cast<unsigned char>(*text);
    h *= 1099511628211ull;
  }
  return h;
}

MPI_Comm& comm_of(void* p) { return *static_cast<MPI_Comm*>(p); }

// Tasks are sent without blocking: rank 0 must keep reading replies while a
// large task is on its way, or a serving rank blocked sending its reply and
// rank 0 blocked sending it the next task would wait for each other.
struct Outbox {
  struct Message {
    int destination = 0;
    std::string body;
    std::vector<MPI_Request> requests;
  };
  std::list<Message> messages;
  // Sends to a lost rank: never waited for (they may never complete), and
  // kept, as MPI may still read their buffers, until the job ends.
  std::list<Message> abandoned;

  void abandon(int destination) {
    for (auto it = messages.begin(); it != messages.end();) {
      if (it->destination == destination) {
        auto next = std::next(it);
        abandoned.splice(abandoned.end(), messages, it);
        it = next;
      } else {
        ++it;
      }
    }
  }

  void reap() {
    for (auto it = messages.begin(); it != messages.end();) {
      int done = 0;
      MPI_Testall(static_cast<int>(it->requests.size()), it->requests.data(), &done,
                  MPI_STATUSES_IGNORE);
      it = done ? messages.erase(it) : std::next(it);
    }
  }
  void drain() {
    for (auto& m : messages) {
      MPI_Waitall(static_cast<int>(m.requests.size()), m.requests.data(), MPI_STATUSES_IGNORE);
    }
    messages.clear();
  }
};
Outbox& outbox_of(void* p) { return *static_cast<Outbox*>(p); }

void check(int rc, const char* what) {
  if (rc != MPI_SUCCESS) {
    char text[MPI_MAX_ERROR_STRING];
    int length = 0;
    MPI_Error_string(rc, text, &length);
    throw std::runtime_error(std::string("mpi::Pool: ") + what + ": " + std::string(text, static_cast<std::size_t>(length)));
  }
}

void put_u64(std::string& out, std::uint64_t v) { out.append(reinterpret_cast<const char*>(&v), sizeof v); }
std::uint64_t get_u64(const std::string& in, std::size_t& at) {
  if (at + 8 > in.size()) throw std::runtime_error("mpi::Pool: a message is truncated");
  std::uint64_t v;
  std::memcpy(&v, in.data() + at, 8);
  at += 8;
  return v;
}
std::string get_bytes(const std::string& in, std::size_t& at) {
  const std::uint64_t n = get_u64(in, at);
  if (n > in.size() - at) throw std::runtime_error("mpi::Pool: a message is truncated");
  std::string out = in.substr(at, static_cast<std::size_t>(n));
  at += static_cast<std::size_t>(n);
  return out;
}
void put_bytes(std::string& out, const std::string& bytes) {
  put_u64(out, bytes.size());
  out += bytes;
}

// One buffer: its length first (8 bytes), then the bytes, in pieces.
void send_buffer(MPI_Comm comm, int dest, int tag, const std::string& body) {
  std::string first;
  put_u64(first, body.size());
  const std::size_t head = std::min(body.size(), kPiece - 8);
  first.append(body, 0, head);
  check(MPI_Send(first.data(), static_cast<int>(first.size()), MPI_BYTE, dest, tag, comm), "MPI_Send");
  for (std::size_t at = head; at < body.size(); at += kPiece) {
    const std::size_t n = std::min(kPiece, body.size() - at);
    check(MPI_Send(body.data() + at, static_cast<int>(n), MPI_BYTE, dest, tag, comm), "MPI_Send");
  }
}

// The rest of a buffer whose first message `status` announced.
std::string recv_buffer(MPI_Comm comm, const MPI_Status& status) {
  int count = 0;
  MPI_Get_count(&status, MPI_BYTE, &count);
  std::string first(static_cast<std::size_t>(count), '\0');
  check(MPI_Recv(first.data(), count, MPI_BYTE, status.MPI_SOURCE, status.MPI_TAG, comm,
                 MPI_STATUS_IGNORE),
        "MPI_Recv");
  std::size_t at = 0;
  const std::uint64_t total = get_u64(first, at);
  std::string body = first.substr(8);
  while (body.size() < total) {
    const std::size_t n = std::min<std::uint64_t>(kPiece, total - body.size());
    std::string piece(n, '\0');
    check(MPI_Recv(piece.data(), static_cast<int>(n), MPI_BYTE, status.MPI_SOURCE, status.MPI_TAG,
                   comm, MPI_STATUS_IGNORE),
          "MPI_Recv");
    body += piece;
  }
  return body;
}

// The loaded module that contains `address`: its name as dl_iterate_phdr
// reports it ("" for the program itself) and its load bias.
struct ModuleHit {
  const void* address;
  std::string name;
  std::uintptr_t bias = 0;
  bool executable = false;
  bool found = false;
};

int find_by_address(dl_phdr_info* info, std::size_t, void* data) {
  auto* hit = static_cast<ModuleHit*>(data);
  const auto a = reinterpret_cast<std::uintptr_t>(hit->address);
  for (int i = 0; i < info->dlpi_phnum; ++i) {
    const auto& ph = info->dlpi_phdr[i];
    if (ph.p_type != PT_LOAD) continue;
    const std::uintptr_t start = info->dlpi_addr + ph.p_vaddr;
    if (a >= start && a < start + ph.p_memsz) {
      hit->name = info->dlpi_name != nullptr ? info->dlpi_name : "";
      hit->bias = info->dlpi_addr;
      hit->executable = (ph.p_flags & PF_X) != 0;
      hit->found = true;
      return 1;
    }
  }
  return 0;
}

struct ModuleByName {
  std::string name;
  std::uintptr_t offset;
  std::uintptr_t address = 0;
  bool found = false;
  bool executable = false;
};

int find_by_name(dl_phdr_info* info, std::size_t, void* data) {
  auto* want = static_cast<ModuleByName*>(data);
  const std::string name = info->dlpi_name != nullptr ? info->dlpi_name : "";
  if (name != want->name) return 0;
  want->found = true;
  want->address = info->dlpi_addr + want->offset;
  for (int i = 0; i < info->dlpi_phnum; ++i) {
    const auto& ph = info->dlpi_phdr[i];
    const std::uintptr_t start = info->dlpi_addr + ph.p_vaddr;
    if (ph.p_type == PT_LOAD && (ph.p_flags & PF_X) != 0 && want->address >= start &&
        want->address < start + ph.p_memsz) {
      want->executable = true;
    }
  }
  return 1;
}

// The first bytes of a function's code: checked on the receiving rank, so
// that a rank running another build of the program is refused, not run.
std::uint64_t code_fingerprint(const void* address) {
  std::uint64_t h = 1469598103934665603ull;
  const auto* p = static_cast<const unsigned char*>(address);
  for (int i = 0; i < 16; ++i) {
    h ^= p[i];
    h *= 1099511628211ull;
  }
  return h;
}

void pause_briefly(int& idle) {
  // Spin a little (replies often come within microseconds), then sleep in
  // growing steps up to 200 us so that an idle rank 0 does not burn a core.
  if (++idle < 200) {
    sched_yield();
    return;
  }
  const long ns = std::min(200'000L, 1'000L * (idle - 199));
  timespec t{0, ns};
  nanosleep(&t, nullptr);
}

}  // namespace

std::uint64_t register_task(const char* type_name, TaskRunner runner) {
  const std::uint64_t key = fnv1a(type_name);
  std::scoped_lock guard(registry_mutex());
  registry().emplace(key, runner);
  return key;
}

std::string function_to_wire(const void* address) {
  ModuleHit hit{address, {}, 0, false, false};
  dl_iterate_phdr(&find_by_address, &hit);
  if (!hit.found || !hit.executable) {
    throw std::invalid_argument("mpi::Pool: the function is not in the code of any loaded module");
  }
  std::string wire;
  put_bytes(wire, hit.name);
  put_u64(wire, reinterpret_cast<std::uintptr_t>(address) - hit.bias);
  put_u64(wire, code_fingerprint(address));
  return wire;
}

const void* function_from_wire(const std::string& wire) {
  std::size_t at = 0;
  ModuleByName want;
  want.name = get_bytes(wire, at);
  want.offset = get_u64(wire, at);
  const std::uint64_t fingerprint = get_u64(wire, at);
  dl_iterate_phdr(&find_by_name, &want);
  const std::string module = want.name.empty() ? "the program" : "'" + want.name + "'";
  if (!want.found) {
    throw std::runtime_error("mpi::Pool: this rank has not loaded " + module +
                             ", where rank 0's function is; run the same program on every rank");
  }
  const void* address = reinterpret_cast<const void*>(want.address);
  if (!want.executable || code_fingerprint(address) != fingerprint) {
    throw std::runtime_error("mpi::Pool: rank 0's function is not at the same place in " + module +
                             " on this rank; run the same build of the program on every rank");
  }
  return address;
}

Engine::Engine() {
  int initialized = 0;
  MPI_Initialized(&initialized);
  int provided = MPI_THREAD_SINGLE;
  if (!initialized) {
    check(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_SERIALIZED, &provided), "MPI_Init_thread");
    finalize_ = true;
  } else {
    MPI_Query_thread(&provided);
  }
  // One thread of rank 0 makes every MPI call; that needs SERIALIZED. A
  // program that initialized MPI with less gets the same pool, driven by the
  // thread that waits (map_async is then ready when it returns).
  threaded_ = provided >= MPI_THREAD_SERIALIZED;
  auto* comm = new MPI_Comm;
  check(MPI_Comm_dup(MPI_COMM_WORLD, comm), "MPI_Comm_dup");
  comm_ = comm;
  outbox_ = new Outbox;
  MPI_Comm_rank(*comm, &rank_);
  MPI_Comm_size(*comm, &size_);
  in_flight_.assign(static_cast<std::size_t>(size_), 0);
  heard_.assign(static_cast<std::size_t>(size_), {});
  lost_.assign(static_cast<std::size_t>(size_), 0);
  // Each rank's process id, for the errors about a lost rank.
  pids_.assign(static_cast<std::size_t>(size_), 0);
  const int pid = static_cast<int>(::getpid());
  check(MPI_Gather(&pid, 1, MPI_INT, pids_.data(), 1, MPI_INT, 0, *comm), "MPI_Gather");
}

Engine::~Engine() {
  if (rank_ == 0) {
    try {
      close();
      join();
    } catch (...) {
      // A destructor never throws; the serving ranks end with the job anyway.
    }
  }
  if (thread_.joinable()) thread_.join();
  if (!broken_.empty() || lost_any_) {
    // A serving rank did not answer within the timeout: it cannot be told
    // to stop, and MPI_Finalize would wait for it. End the job.
    std::fprintf(stderr, "mpi::Pool: a rank did not reply; ending the MPI job (MPI_Abort)\n");
    if (rank_ == 0) {
      for (int w = 1; w < size_; ++w) {
        if (!lost_[static_cast<std::size_t>(w)]) MPI_Send(nullptr, 0, MPI_BYTE, w, kEndTag, comm_of(comm_));
      }
    }
    MPI_Abort(comm_of(comm_), 1);
  }
  auto* comm = static_cast<MPI_Comm*>(comm_);
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized) {
    outbox_of(outbox_).drain();
    MPI_Comm_free(comm);
    if (finalize_) MPI_Finalize();
  }
  delete static_cast<Outbox*>(outbox_);
  delete comm;
}

void Engine::set_timeout(std::chrono::duration<double> timeout) {
  std::scoped_lock guard(state_mutex_);
  timeout_ = timeout;
}

void Engine::start_thread() {
  if (threaded_ && !thread_.joinable()) thread_ = std::thread([this] { drive_loop(); });
}

void Engine::submit(std::shared_ptr<Job> job) {
  std::scoped_lock guard(state_mutex_);
  if (!broken_.empty()) throw std::runtime_error(broken_);
  jobs_.push_back(std::move(job));
  woken_ = true;
  start_thread();
  work_.notify_one();
}

void Engine::wake() {
  std::scoped_lock guard(state_mutex_);
  woken_ = true;
  work_.notify_one();
}

// A thread that waits drives MPI itself (no hand-over to the background
// thread and back for a map called and awaited at once); other waiters
// sleep until it is done. The background thread drives only while no one
// waits.
void Engine::wait(const std::function<bool()>& ready) {
  std::unique_lock lock(state_mutex_);
  ++waiters_;
  int idle = 0;
  while (!ready()) {
    if (driving_) {
      progress_.wait(lock);
      continue;
    }
    driving_ = true;
    lock.unlock();
    bool did = false;
    try {
      did = drive_once();
    } catch (...) {
      lock.lock();
      driving_ = false;
      --waiters_;
      progress_.notify_all();
      work_.notify_one();
      throw;
    }
    if (did) {
      idle = 0;
    } else {
      pause_briefly(idle);
    }
    lock.lock();
    driving_ = false;
  }
  --waiters_;
  // Hand driving on: to another waiter, or to the background thread, which
  // looks again (other jobs may have chunks that could not be sent yet).
  woken_ = true;
  progress_.notify_all();
  work_.notify_one();
}

void Engine::close() {
  std::scoped_lock guard(state_mutex_);
  closing_ = true;
  woken_ = true;
  work_.notify_one();
}

void Engine::join() {
  wait([this] { return stopped_; });
  if (thread_.joinable() && thread_.get_id() != std::this_thread::get_id()) thread_.join();
}

void Engine::drive_loop() {
  int idle = 0;
  std::unique_lock lock(state_mutex_);
  for (;;) {
    work_.wait(lock, [this] {
      return stopped_ || (waiters_ == 0 && !driving_ && (woken_ || outstanding_ > 0 || closing_));
    });
    if (stopped_) return;
    driving_ = true;
    lock.unlock();
    bool did = false;
    try {
      did = drive_once();
    } catch (const std::exception& e) {
      // An MPI call failed: nothing can be sent or received any more.
      lock.lock();
      driving_ = false;
      if (broken_.empty()) fail_everything(std::string(e.what()));
      stopped_ = true;
      progress_.notify_all();
      return;
    }
    lock.lock();
    driving_ = false;
    if (waiters_ > 0) progress_.notify_all();
    if (did) {
      idle = 0;
      woken_ = true;  // more may be ready to send at once
    } else if (outstanding_ > 0 || closing_) {
      lock.unlock();
      pause_briefly(idle);  // replies are due: poll for them
      lock.lock();
    }
  }
}

bool Engine::drive_once() {
  std::unique_lock lock(state_mutex_);
  woken_ = false;
  bool did = send_chunks(lock);
  did = take_replies(lock) || did;
  if (outstanding_ > 0 && broken_.empty()) did = lose_silent_ranks() || did;
  std::erase_if(jobs_, [](const std::shared_ptr<Job>& job) { return job->finished_; });
  if (closing_ && !stopped_ && jobs_.empty() && outstanding_ == 0) {
    // The serving ranks are told only when nothing of theirs is still due.
    if (broken_.empty()) stop_workers();
    stopped_ = true;
    progress_.notify_all();
    work_.notify_one();
  }
  return did;
}

void Engine::finish_if_done(Job& job) {
  if (job.done_sending_ && job.in_flight_ == 0 && !job.finished_) {
    job.on_finish();
    job.finished_ = true;
    progress_.notify_all();
  }
}

// Hands chunks to ranks with fewer than two in flight, from the oldest job
// that has one; with no serving rank, runs one chunk here.
bool Engine::send_chunks(std::unique_lock<std::mutex>& lock) {
  if (!broken_.empty()) return false;
  bool did = false;
  auto next_job = [&](Job::Chunk& chunk) -> std::shared_ptr<Job> {
    for (auto& job : jobs_) {
      if (job->done_sending_) continue;
      const Job::Next next = job->next_chunk(chunk);
      if (next == Job::Next::kChunk) return job;
      if (next == Job::Next::kLater && closing_) {
        job->on_failure(std::make_exception_ptr(std::invalid_argument(
            "mpi::Pool.imap(): the pool was closed before the input was read to its end")));
        job->done_sending_ = true;
      }
      if (next == Job::Next::kDone) job->done_sending_ = true;
      finish_if_done(*job);
    }
    return nullptr;
  };
  if (workers() == 0) {
    Job::Chunk chunk;
    if (auto job = next_job(chunk)) {
      const TaskRunner runner = find_runner(job->key());
      ++job->in_flight_;
      lock.unlock();  // f runs here; waiters may look at other jobs meanwhile
      std::string report;
      std::exception_ptr error;
      try {
        if (runner == nullptr) throw std::runtime_error(kUnknownTask);
        report = runner(job->function(), chunk.items, chunk.first);
      } catch (const std::exception& e) {
        error = std::make_exception_ptr(std::runtime_error(
            std::string("mpi::Pool: rank 0 could not run the task: ") + e.what()));
      }
      lock.lock();
      --job->in_flight_;
      deliver(*job, chunk.first, error, report);
      did = true;
    }
  } else {
    for (int round = 0; round < 2; ++round) {
      for (int w = 1; w <= workers(); ++w) {
        if (in_flight_[static_cast<std::size_t>(w)] >= 2 || lost_[static_cast<std::size_t>(w)]) continue;
        Job::Chunk chunk;
        auto job = next_job(chunk);
        if (!job) break;
        const std::uint64_t tag = next_tag_++;
        send_task(w, *job, tag, chunk);
        routes_.emplace(tag, Route{job, w, chunk.first});
        if (in_flight_[static_cast<std::size_t>(w)] == 0) heard_[static_cast<std::size_t>(w)] = std::chrono::steady_clock::now();
        ++in_flight_[static_cast<std::size_t>(w)];
        ++job->in_flight_;
        ++outstanding_;
        did = true;
      }
    }
  }
  return did;
}

void Engine::deliver(Job& job, std::uint64_t first, std::exception_ptr error, const std::string& report) {
  if (!error) {
    try {
      job.on_reply(first, report);
    } catch (const std::exception& e) {
      error = std::make_exception_ptr(
          std::runtime_error(std::string("mpi::Pool: a reply could not be read: ") + e.what()));
    }
  }
  if (error) {
    job.on_failure(error);
    job.done_sending_ = true;
  }
  finish_if_done(job);
  progress_.notify_all();  // an imap reader may be waiting for this chunk
}

// Reads every reply that has come, and gives each to its job.
bool Engine::take_replies(std::unique_lock<std::mutex>& lock) {
  if (outstanding_ == 0) return false;
  MPI_Comm comm = comm_of(comm_);
  bool did = false;
  for (;;) {
    outbox_of(outbox_).reap();
    int flag = 0;
    MPI_Status status;
    check(MPI_Iprobe(MPI_ANY_SOURCE, kReplyTag, comm, &flag, &status), "MPI_Iprobe");
    if (!flag) break;
    lock.unlock();  // a large reply takes a while; waiters need not
    std::string body;
    try {
      body = recv_buffer(comm, status);
    } catch (...) {
      lock.lock();
      throw;
    }
    lock.lock();
    did = true;
    std::size_t at = 0;
    const std::uint64_t ok = get_u64(body, at);
    const std::uint64_t tag = get_u64(body, at);
    auto it = routes_.find(tag);
    if (it == routes_.end()) continue;  // a job that was failed by the timeout
    Route route = std::move(it->second);
    routes_.erase(it);
    --in_flight_[static_cast<std::size_t>(route.worker)];
    --outstanding_;
    --route.job->in_flight_;
    heard_[static_cast<std::size_t>(route.worker)] = std::chrono::steady_clock::now();
    std::exception_ptr error;
    if (ok != 1) {
      error = std::make_exception_ptr(std::runtime_error(
          "mpi::Pool: rank " + std::to_string(status.MPI_SOURCE) + " could not run the task: " + body.substr(at)));
    }
    deliver(*route.job, route.first, error, ok == 1 ? body.substr(at) : std::string());
    if (outstanding_ == 0) break;
  }
  return did;
}

// A rank that holds chunks and has not replied for the timeout is taken out
// of the pool: the items of its chunks fail with WorkerLostError, the other
// ranks go on. With none left, every job fails.
bool Engine::lose_silent_ranks() {
  const auto now = std::chrono::steady_clock::now();
  bool lost = false;
  for (int w = 1; w <= workers(); ++w) {
    const auto r = static_cast<std::size_t>(w);
    if (lost_[r] || in_flight_[r] == 0 || now - heard_[r] <= timeout_) continue;
    lost_[r] = 1;
    lost_any_ = true;
    lost = true;
    outbox_of(outbox_).abandon(w);
    for (auto it = routes_.begin(); it != routes_.end();) {
      if (it->second.worker != w) {
        ++it;
        continue;
      }
      Route route = std::move(it->second);
      it = routes_.erase(it);
      --outstanding_;
      --route.job->in_flight_;
      const std::string what =
          "mpi::Pool: rank " + std::to_string(w) + " (pid " + std::to_string(pids_[r]) +
          ") did not reply for " + std::to_string(timeout_.count()) + " s while running the task for item " +
          std::to_string(route.first) + "; it is out of the pool (set_timeout() changes the bound)";
      route.job->on_lost(route.first, std::make_exception_ptr(WorkerLostError(
                                          static_cast<std::size_t>(route.first), pids_[r], 0, what)));
      finish_if_done(*route.job);
    }
    in_flight_[r] = 0;
  }
  if (lost && std::count(lost_.begin() + 1, lost_.end(), 1) == workers()) {
    fail_everything("mpi::Pool: no serving rank is left: each one did not reply for " +
                    std::to_string(timeout_.count()) + " s (set_timeout() changes the bound)");
  }
  if (lost) progress_.notify_all();
  return lost;
}

void Engine::fail_everything(const std::string& why) {
  broken_ = why;
  for (auto& job : jobs_) {
    job->on_failure(std::make_exception_ptr(std::runtime_error(why)));
    job->done_sending_ = true;
    job->in_flight_ = 0;
    finish_if_done(*job);
  }
  jobs_.clear();
  routes_.clear();
  outstanding_ = 0;
}

void Engine::send_task(int worker, const Job& job, std::uint64_t tag, const Job::Chunk& chunk) {
  Outbox& outbox = outbox_of(outbox_);
  outbox.reap();
  auto& message = outbox.messages.emplace_back();
  message.destination = worker;
  std::string& body = message.body;
  const std::string& function = job.function();
  put_u64(body, chunk.items.size() + function.size() + 32);  // the buffer's length (see send_buffer)
  put_u64(body, job.key());
  put_u64(body, tag);
  put_u64(body, chunk.first);
  put_bytes(body, function);
  body += chunk.items;
  // As send_buffer, without blocking: the first piece carries the length.
  for (std::size_t at = 0; at < body.size(); at += kPiece) {
    const std::size_t n = std::min(kPiece, body.size() - at);
    MPI_Request request;
    check(MPI_Isend(body.data() + at, static_cast<int>(n), MPI_BYTE, worker, kTaskTag,
                    comm_of(comm_), &request),
          "MPI_Isend");
    message.requests.push_back(request);
  }
}

void Engine::stop_workers() {
  outbox_of(outbox_).drain();
  for (int w = 1; w < size_; ++w) {
    if (lost_[static_cast<std::size_t>(w)]) continue;
    check(MPI_Send(nullptr, 0, MPI_BYTE, w, kStopTag, comm_of(comm_)), "MPI_Send");
  }
}

int Engine::serve() {
  MPI_Comm comm = comm_of(comm_);
  int idle = 0;
  for (;;) {
    int flag = 0;
    MPI_Status status;
    check(MPI_Iprobe(0, MPI_ANY_TAG, comm, &flag, &status), "MPI_Iprobe");
    if (!flag) {
      pause_briefly(idle);
      continue;
    }
    idle = 0;
    if (status.MPI_TAG == kStopTag) {
      check(MPI_Recv(nullptr, 0, MPI_BYTE, 0, kStopTag, comm, MPI_STATUS_IGNORE), "MPI_Recv");
      return 0;
    }
    if (status.MPI_TAG == kEndTag) {
      // Rank 0 lost a rank and aborts the job. Under mpirun --enable-recovery
      // its MPI_Abort may not reach this rank, and MPI_Finalize would wait
      // for the lost one: end here, as an abort does.
      std::fflush(nullptr);
      ::_exit(1);
    }
    const std::string body = recv_buffer(comm, status);
    std::string reply;
    std::uint64_t tag = 0;
    try {
      std::size_t at = 0;
      const std::uint64_t key = get_u64(body, at);
      tag = get_u64(body, at);
      const std::uint64_t first = get_u64(body, at);
      const std::string function = get_bytes(body, at);
      const TaskRunner runner = find_runner(key);
      if (runner == nullptr) {
        throw std::runtime_error(kUnknownTask);
      }
      const std::string report = runner(function, body.substr(at), first);
      put_u64(reply, 1);
      put_u64(reply, tag);
      reply += report;
    } catch (const std::exception& e) {
      reply.clear();
      put_u64(reply, 0);
      put_u64(reply, tag);
      reply += e.what();
    }
    send_buffer(comm, 0, kReplyTag, reply);
  }
}

}  // namespace concur::mpi::detail

namespace concur::mpi {

Pool::Pool() : engine_(std::make_unique<detail::Engine>()) {}

Pool::~Pool() {
  try {
    if (is_master()) {
      close();
      join();
    }
  } catch (...) {
    // A destructor never throws.
  }
}

int Pool::serve() {
  if (is_master()) {
    throw std::logic_error("mpi::Pool.serve(): rank 0 runs the program; only the other ranks serve");
  }
  return engine_->serve();
}

void Pool::require_running(const char* call) const {
  if (!is_master()) {
    throw std::logic_error(std::string(call) + ": only rank 0 runs tasks; other ranks call serve()");
  }
  if (closed_) throw std::invalid_argument(std::string(call) + ": the pool is closed; make a new pool");
}

void Pool::close() {
  if (!is_master()) return;
  closed_ = true;
  engine_->close();
}

void Pool::join() {
  if (!closed_) throw std::invalid_argument("mpi::Pool.join(): the pool is still running; call close() first");
  engine_->join();
}

}  // namespace concur::mpi
