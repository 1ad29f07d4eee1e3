// Pipe ends over Unix stream sockets.
#include "concur/multiprocessing/connection.hpp"

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <string>
#include <system_error>

namespace concur::detail {

Endpoint::~Endpoint() {
  if (fd_ >= 0) ::close(fd_);
}

int Endpoint::checked_fd(const char* call) const {
  std::scoped_lock guard(state_mutex_);
  if (fd_ < 0) {
    throw std::system_error(EBADF, std::generic_category(),
                            std::string(call) + ": the connection is closed");
  }
  return fd_;
}

void Endpoint::send(std::uint64_t tag, std::span<const std::byte> payload) {
  const int fd = checked_fd("Connection.send()");
  if (!writable_) {
    throw std::logic_error("Connection.send(): this end of a one-way Pipe only receives");
  }
  std::scoped_lock guard(send_mutex_);
  send_frame(fd, tag, payload);
}

std::vector<std::byte> Endpoint::recv(std::uint64_t tag) {
  const int fd = checked_fd("Connection.recv()");
  if (!readable_) {
    throw std::logic_error("Connection.recv(): this end of a one-way Pipe only sends");
  }
  std::scoped_lock guard(recv_mutex_);
  return recv_frame(fd, tag);
}

bool Endpoint::poll(Deadline deadline) {
  const int fd = checked_fd("Connection.poll()");
  if (!readable_) {
    throw std::logic_error("Connection.poll(): this end of a one-way Pipe only sends");
  }
  for (;;) {
    int timeout_ms = -1;
    if (!deadline.is_never()) {
      const std::int64_t left = deadline.remaining_ns();
      timeout_ms = static_cast<int>(std::min<std::int64_t>((left + 999'999) / 1'000'000, INT_MAX));
    }
    pollfd p{fd, POLLIN, 0};
    const int rc = ::poll(&p, 1, timeout_ms);
    if (rc > 0) return true;
    if (rc == 0) {
      if (deadline.is_now_only() || deadline.expired()) return false;
      continue;
    }
    if (errno != EINTR)
      throw std::system_error(errno, std::generic_category(), "Connection.poll()");
  }
}

void Endpoint::close() {
  std::scoped_lock guard(state_mutex_);
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

bool Endpoint::closed() const {
  std::scoped_lock guard(state_mutex_);
  return fd_ < 0;
}

int Endpoint::fileno() const { return checked_fd("Connection.fileno()"); }

}  // namespace concur::detail

namespace concur::multiprocessing::detail_pipe {

std::pair<std::shared_ptr<concur::detail::Endpoint>, std::shared_ptr<concur::detail::Endpoint>>
make_pipe(bool duplex) {
  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) {
    throw std::system_error(errno, std::generic_category(), "Pipe(): socketpair failed");
  }
  if (!duplex) {
    // One way, as Python's os.pipe(): the first end receives, the second sends.
    ::shutdown(fds[0], SHUT_WR);
    ::shutdown(fds[1], SHUT_RD);
  }
  return {std::make_shared<concur::detail::Endpoint>(fds[0], true, duplex),
          std::make_shared<concur::detail::Endpoint>(fds[1], duplex, true)};
}

}  // namespace concur::multiprocessing::detail_pipe
