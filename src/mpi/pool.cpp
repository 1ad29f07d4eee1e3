// concur::mpi::Pool over Open MPI: the task registry, functions by module
// and offset, and the messages between rank 0 and the serving ranks.
#include "concur/mpi/pool.hpp"

#include <dlfcn.h>
#include <link.h>
#include <mpi.h>
#include <sched.h>
#include <time.h>

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
constexpr std::size_t kPiece = std::size_t{1} << 30;

std::unordered_map<std::uint64_t, TaskRunner>& registry() {
  static std::unordered_map<std::uint64_t, TaskRunner> tasks;
  return tasks;
}
std::mutex& registry_mutex() {
  static std::mutex m;
  return m;
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
    std::string body;
    std::vector<MPI_Request> requests;
  };
  std::list<Message> messages;

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
  if (!initialized) {
    int provided = 0;
    check(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided), "MPI_Init_thread");
    finalize_ = true;
  }
  auto* comm = new MPI_Comm;
  check(MPI_Comm_dup(MPI_COMM_WORLD, comm), "MPI_Comm_dup");
  comm_ = comm;
  outbox_ = new Outbox;
  MPI_Comm_rank(*comm, &rank_);
  MPI_Comm_size(*comm, &size_);
}

Engine::~Engine() {
  if (broken_) {
    // A serving rank did not answer within the timeout: it cannot be told
    // to stop, and MPI_Finalize would wait for it. End the job.
    std::fprintf(stderr, "mpi::Pool: a rank did not reply; ending the MPI job (MPI_Abort)\n");
    MPI_Abort(comm_of(comm_), 1);
  }
  try {
    if (rank_ == 0) stop_workers();
  } catch (...) {
    // A destructor never throws; the serving ranks end with the job anyway.
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

void Engine::send_task(int worker, std::uint64_t key, const std::string& function, std::uint64_t tag,
                       std::uint64_t first, const std::string& items) {
  Outbox& outbox = outbox_of(outbox_);
  outbox.reap();
  auto& message = outbox.messages.emplace_back();
  std::string& body = message.body;
  put_u64(body, items.size() + function.size() + 32);  // the buffer's length (see send_buffer)
  put_u64(body, key);
  put_u64(body, tag);
  put_u64(body, first);
  put_bytes(body, function);
  body += items;
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

Engine::Reply Engine::next_reply() {
  MPI_Comm comm = comm_of(comm_);
  const auto deadline = std::chrono::steady_clock::now() +
                        std::chrono::duration_cast<std::chrono::steady_clock::duration>(timeout);
  int idle = 0;
  for (;;) {
    outbox_of(outbox_).reap();
    int flag = 0;
    MPI_Status status;
    check(MPI_Iprobe(MPI_ANY_SOURCE, kReplyTag, comm, &flag, &status), "MPI_Iprobe");
    if (flag) {
      std::string body = recv_buffer(comm, status);
      std::size_t at = 0;
      const std::uint64_t ok = get_u64(body, at);
      Reply reply{status.MPI_SOURCE, get_u64(body, at), body.substr(at)};
      if (ok != 1) {
        throw std::runtime_error("mpi::Pool: rank " + std::to_string(status.MPI_SOURCE) +
                                 " could not run the task: " + reply.report);
      }
      return reply;
    }
    if (std::chrono::steady_clock::now() > deadline) {
      broken_ = true;
      throw std::runtime_error("mpi::Pool: no rank replied for " + std::to_string(timeout.count()) +
                               " s; a rank may have died (set_timeout() changes the bound)");
    }
    pause_briefly(idle);
  }
}

void Engine::stop_workers() {
  if (stopped_) return;
  stopped_ = true;
  outbox_of(outbox_).drain();
  for (int w = 1; w < size_; ++w) {
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
    const std::string body = recv_buffer(comm, status);
    std::string reply;
    std::uint64_t tag = 0;
    try {
      std::size_t at = 0;
      const std::uint64_t key = get_u64(body, at);
      tag = get_u64(body, at);
      const std::uint64_t first = get_u64(body, at);
      const std::string function = get_bytes(body, at);
      TaskRunner runner = nullptr;
      {
        std::scoped_lock guard(registry_mutex());
        auto it = registry().find(key);
        if (it != registry().end()) runner = it->second;
      }
      if (runner == nullptr) {
        throw std::runtime_error("no task of this kind is known on this rank; run the same build of "
                                 "the program on every rank");
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
    if (is_master()) close();
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
  engine_->stop_workers();
}

void Pool::join() {
  if (!closed_) throw std::invalid_argument("mpi::Pool.join(): the pool is still running; call close() first");
}

}  // namespace concur::mpi
