// Pipe ends over Unix stream sockets.
#include "concur/multiprocessing/connection.hpp"

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <ctime>
#include <string>
#include <system_error>

#include "concur/errors.hpp"
#include "fault_injection.hpp"

namespace concur::detail {

// Holds the descriptor open for one call.
class Endpoint::Use {
 public:
  Use(const Endpoint& end, const char* call) : end_(end), fd_(end.acquire(call)) {}
  ~Use() { end_.release(); }
  Use(const Use&) = delete;
  Use& operator=(const Use&) = delete;
  int fd() const { return fd_; }

 private:
  const Endpoint& end_;
  int fd_;
};

Endpoint::~Endpoint() {
  if (fd_ >= 0) ::close(fd_);
}

int Endpoint::acquire(const char* call) const {
  std::scoped_lock guard(state_mutex_);
  if (closed_) {
    throw std::system_error(EBADF, std::generic_category(),
                            std::string(call) + ": the connection is closed");
  }
  ++users_;
  return fd_;
}

void Endpoint::release() const {
  std::scoped_lock guard(state_mutex_);
  if (--users_ == 0 && closed_ && fd_ >= 0) {
    ::close(fd_);
    fd_ = -1;
  }
}

void Endpoint::send(std::uint64_t tag, std::span<const std::byte> payload) {
  Use use(*this, "Connection.send()");
  if (!writable_) {
    throw std::logic_error("Connection.send(): this end of a one-way Pipe only receives");
  }
  std::scoped_lock guard(send_mutex_);
  send_frame(use.fd(), tag, payload);
}

void Endpoint::send_framed(std::uint64_t tag, std::span<std::byte> buffer) {
  Use use(*this, "Connection.send()");
  if (!writable_) {
    throw std::logic_error("Connection.send(): this end of a one-way Pipe only receives");
  }
  std::scoped_lock guard(send_mutex_);
  concur::detail::send_framed(use.fd(), tag, buffer);
}

std::vector<std::byte> Endpoint::recv(std::uint64_t tag, std::uint64_t max_length) {
  const char* call = tag == 0 ? "Connection.recv_bytes()" : "Connection.recv()";
  Use use(*this, call);
  if (!readable_) {
    throw std::logic_error(std::string(call) + ": this end of a one-way Pipe only sends");
  }
  std::scoped_lock guard(recv_mutex_);
  if (stream_lost_) {
    throw FrameError(std::string(call) +
                     ": an earlier frame could not be read to its end, so where the next one "
                     "starts is unknown; close this connection");
  }
  const FrameHeader h = recv_header(use.fd(), stream_lost_);
  if (h.length > max_length) {
    stream_lost_ = true;
    close();  // as Python does: the rest of this message cannot be read
    throw std::system_error(EMSGSIZE, std::generic_category(),
                            std::string(call) + ": the message has " + std::to_string(h.length) +
                                " bytes, more than maxlength " + std::to_string(max_length));
  }
  if (tag != 0 && h.tag != tag && h.tag != kBytesTag) {
    skip_payload(use.fd(), h.length);  // cut short: the next recv meets EOF
    throw FrameError(std::string(call) +
                     ": the message was sent by a Connection of another type than this one's");
  }
  return recv_payload(use.fd(), h);
}

bool Endpoint::poll(Deadline deadline) {
  Use use(*this, "Connection.poll()");
  if (!readable_) {
    throw std::logic_error("Connection.poll(): this end of a one-way Pipe only sends");
  }
  for (;;) {
    timespec ts{0, 0};
    timespec* timeout = &ts;
    if (deadline.is_never()) {
      timeout = nullptr;
    } else {
      const std::int64_t left = deadline.remaining_ns();
      ts.tv_sec = static_cast<time_t>(left / 1'000'000'000);
      ts.tv_nsec = static_cast<long>(left % 1'000'000'000);
    }
    pollfd p{use.fd(), POLLIN, 0};
    const int rc = ::ppoll(&p, 1, timeout, nullptr);
    if (rc > 0) return true;
    if (rc == 0) {
      if (deadline.is_now_only() || deadline.expired()) return false;
      continue;
    }
    if (errno != EINTR) {
      throw std::system_error(errno, std::generic_category(), "Connection.poll()");
    }
  }
}

void Endpoint::close() {
  std::scoped_lock guard(state_mutex_);
  if (closed_) return;
  closed_ = true;
  if (users_ == 0 && fd_ >= 0) {
    ::close(fd_);
    fd_ = -1;
  }
}

bool Endpoint::closed() const {
  std::scoped_lock guard(state_mutex_);
  return closed_;
}

int Endpoint::fileno() const {
  std::scoped_lock guard(state_mutex_);
  if (closed_) {
    throw std::system_error(EBADF, std::generic_category(),
                            "Connection.fileno(): the connection is closed");
  }
  return fd_;
}

}  // namespace concur::detail

namespace concur::multiprocessing::detail_pipe {

std::pair<std::shared_ptr<concur::detail::Endpoint>, std::shared_ptr<concur::detail::Endpoint>>
make_pipe(bool duplex) {
  int fds[2];
  if (concur::detail::fault::inject(concur::detail::fault::Call::kSocketpair) ||
      ::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) {
    throw std::system_error(errno, std::generic_category(), "Pipe(): socketpair() failed");
  }
  if (!duplex) {
    // One way, as Python's os.pipe(): the first end receives, the second sends.
    ::shutdown(fds[0], SHUT_WR);
    ::shutdown(fds[1], SHUT_RD);
  }
  std::shared_ptr<concur::detail::Endpoint> first;
  try {
    first = std::make_shared<concur::detail::Endpoint>(fds[0], true, duplex);
  } catch (...) {
    ::close(fds[0]);
    ::close(fds[1]);
    throw;
  }
  try {
    return {std::move(first), std::make_shared<concur::detail::Endpoint>(fds[1], duplex, true)};
  } catch (...) {
    ::close(fds[1]);  // fds[0] is first's, closed with it
    throw;
  }
}

}  // namespace concur::multiprocessing::detail_pipe
