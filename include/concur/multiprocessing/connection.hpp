#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <mutex>
#include <span>
#include <stdexcept>
#include <utility>
#include <vector>

#include "concur/detail/deadline.hpp"
#include "concur/detail/frame.hpp"
#include "concur/multiprocessing/transfer.hpp"

namespace concur::detail {

// One end of a pipe: the descriptor, which ways it may be used, and a lock
// per direction so that frames sent (or received) by several threads never
// interleave.
class Endpoint {
 public:
  Endpoint(int fd, bool readable, bool writable)
      : fd_(fd), readable_(readable), writable_(writable) {}
  ~Endpoint();
  Endpoint(const Endpoint&) = delete;
  Endpoint& operator=(const Endpoint&) = delete;

  void send(std::uint64_t tag, std::span<const std::byte> payload);
  std::vector<std::byte> recv(std::uint64_t tag);
  bool poll(Deadline deadline);
  void close();
  bool closed() const;
  int fileno() const;

 private:
  int checked_fd(const char* call) const;

  mutable std::mutex state_mutex_;  // guards fd_ against close()
  std::mutex send_mutex_;
  std::mutex recv_mutex_;
  int fd_;
  const bool readable_;
  const bool writable_;
};

}  // namespace concur::detail

namespace concur::multiprocessing {

// One end of a Pipe, carrying values of a transferable type T.
// Python: multiprocessing.connection.Connection.
// A cheap copyable handle: copies (also in children forked after it was
//   made) refer to the same end; its descriptor is closed by close() or when
//   the last handle in a process is gone. As in Python, a process that does
//   not use an end should close it, so the other side sees EOF.
// Thread-safety: every member may be called from any thread; concurrent
//   sends (or recvs) are serialized whole, frame by frame.
// Blocks: recv() until a message arrives; send() while the peer's buffer is
//   full; poll() never, poll(timeout) at most that long.
// Throws: concur::EOFError from recv() once the peer closed and nothing is
//   left; concur::BrokenPipeError from send() to a closed peer (never
//   SIGPIPE); concur::FrameError for a message that cannot be decoded
//   (truncated, corrupt, another type); std::logic_error for using an end of
//   a one-way pipe the wrong way; std::system_error(EBADF) after close().
template <class T>
class Connection {
 public:
  explicit Connection(std::shared_ptr<detail::Endpoint> endpoint) : end_(std::move(endpoint)) {}

  void send(const T& value) {
    if constexpr (trivially_transferable<T>) {
      end_->send(detail::type_tag<T>(),
                 std::span<const std::byte>(reinterpret_cast<const std::byte*>(&value), sizeof(T)));
    } else {
      const std::vector<std::byte> bytes = detail::encode(value);
      end_->send(detail::type_tag<T>(), bytes);
    }
  }
  T recv() {
    const std::vector<std::byte> bytes = end_->recv(detail::type_tag<T>());
    return detail::decode<T>(bytes);
  }
  // True when a message (or EOF) is ready now.
  bool poll() { return end_->poll(detail::Deadline::now_only()); }
  template <class Rep, class Period>
  bool poll(std::chrono::duration<Rep, Period> timeout) {
    return end_->poll(detail::Deadline::after(timeout));
  }
  void send_bytes(std::span<const std::byte> bytes) { end_->send(detail::kBytesTag, bytes); }
  std::vector<std::byte> recv_bytes() { return end_->recv(detail::kBytesTag); }
  void close() { end_->close(); }
  bool closed() const { return end_->closed(); }
  int fileno() const { return end_->fileno(); }

 private:
  std::shared_ptr<detail::Endpoint> end_;
};

namespace detail_pipe {
std::pair<std::shared_ptr<concur::detail::Endpoint>, std::shared_ptr<concur::detail::Endpoint>>
make_pipe(bool duplex);
}

// Python: multiprocessing.Pipe(duplex). duplex false: the first end only
// receives, the second only sends.
template <class T>
std::pair<Connection<T>, Connection<T>> Pipe(bool duplex = true) {
  auto [a, b] = detail_pipe::make_pipe(duplex);
  return {Connection<T>(std::move(a)), Connection<T>(std::move(b))};
}

}  // namespace concur::multiprocessing
