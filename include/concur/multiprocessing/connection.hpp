#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
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
// interleave. close() while another thread is inside send/recv/poll marks
// the end closed at once but closes the descriptor only when that call
// returns, so a descriptor number is never reused under a running call.
class Endpoint {
 public:
  // Takes ownership of fd.
  Endpoint(int fd, bool readable, bool writable)
      : fd_(fd), readable_(readable), writable_(writable) {}
  ~Endpoint();
  Endpoint(const Endpoint&) = delete;
  Endpoint& operator=(const Endpoint&) = delete;

  void send(std::uint64_t tag, std::span<const std::byte> payload);
  // buffer: kFrameHeaderBytes of room, then the payload.
  void send_framed(std::uint64_t tag, std::span<std::byte> buffer);
  // A frame tagged `tag` or kBytesTag (tag 0: any frame). A frame of
  // another type is read past and refused with FrameError. A frame longer
  // than max_length closes this end and throws std::system_error(EMSGSIZE),
  // as Python's recv_bytes(maxlength) does.
  std::vector<std::byte> recv(std::uint64_t tag, std::uint64_t max_length = UINT64_MAX);
  bool poll(Deadline deadline);
  void close();
  bool closed() const;
  int fileno() const;
  bool readable() const { return readable_; }
  bool writable() const { return writable_; }

 private:
  class Use;  // one call's hold on the descriptor

  int acquire(const char* call) const;
  void release() const;

  mutable std::mutex state_mutex_;  // guards fd_, closed_, users_
  std::mutex send_mutex_;
  std::mutex recv_mutex_;
  mutable int fd_;  // -1 once closed and no call holds it
  bool closed_ = false;
  mutable int users_ = 0;
  bool stream_lost_ = false;  // guarded by recv_mutex_
  const bool readable_;
  const bool writable_;
};

}  // namespace concur::detail

namespace concur::multiprocessing {

/// One end of a Pipe, carrying values of a transferable type T.
/// - Python: multiprocessing.connection.Connection.
/// - A cheap copyable handle: copies (also in children forked after it was
///   made) refer to the same end; its descriptor is closed by close() or when
///   the last handle in a process is gone. As in Python, a process that does
///   not use an end should close its copy, so that the other side sees EOF.
/// - Thread-safety: every member may be called from any thread; concurrent
///   sends (or recvs) are serialized whole, frame by frame. Between
///   processes, as in Python, two processes sending on one end at once may
///   interleave their bytes: give each sender its own Pipe, or use a Queue.
///   A child forked while another thread of its parent was inside send() or
///   recv() on an end must not use that end (its per-direction lock was
///   copied held).
/// - Blocks: recv() until a message arrives; send() while the peer's socket
///   buffer is full; poll() never; poll(timeout) at most that long (a zero or
///   negative timeout does not block).
/// - Messages: send_bytes() frames raw bytes. recv_bytes() returns the payload
///   of any message (of a send() too: its encoding, as Python's recv_bytes
///   returns the pickle); recv() decodes a message sent by send() with the
///   same T, or by send_bytes() with bytes that are a T's encoding (as
///   Python's recv() unpickles what send_bytes sent).
/// - Throws:
///   - concur::EOFError from recv() once the peer closed and nothing is left;
///   - concur::BrokenPipeError from send() to a closed peer (never SIGPIPE);
///   - concur::FrameError for a message that cannot be decoded: cut short by
///     the peer's end (then EOFError), corrupt, of another type, or longer
///     than max_message_bytes(). After a frame of another type or a corrupt
///     payload the connection stays in step; after a corrupt header (or one
///     over the limit) where the next message starts is unknown, so every
///     later recv() throws FrameError too: close it;
///   - std::logic_error for using an end of a one-way pipe the wrong way;
///   - std::system_error(EBADF) for any call but close() and closed() after
///     close() (Python: OSError "handle is closed").
template <class T>
class Connection {
  static_assert(transferable<T>,
                "Connection<T>: T must be transferable (see concur/multiprocessing/transfer.hpp)");

 public:
  /// Wraps an end made by Pipe() (or a socket descriptor it then owns).
  explicit Connection(std::shared_ptr<detail::Endpoint> endpoint) : end_(std::move(endpoint)) {}

  /// Python: send(obj). Sends one message holding `value`'s encoding (a
  /// trivially copyable T: its bytes); returns once it is in the socket.
  void send(const T& value) {
    if constexpr (trivially_transferable<T> && sizeof(T) <= 4096) {
      std::byte buffer[detail::kFrameHeaderBytes + sizeof(T)];
      std::memcpy(buffer + detail::kFrameHeaderBytes, std::addressof(value), sizeof(T));
      end_->send_framed(detail::type_tag<T>(), buffer);
    } else if constexpr (trivially_transferable<T>) {
      end_->send(detail::type_tag<T>(),
                 std::span<const std::byte>(
                     reinterpret_cast<const std::byte*>(std::addressof(value)), sizeof(T)));
    } else {
      std::vector<std::byte> buffer(detail::kFrameHeaderBytes);
      detail::encode_append(buffer, value);
      end_->send_framed(detail::type_tag<T>(), buffer);
    }
  }
  /// Python: recv(). Waits for the next message and decodes it as a T;
  /// EOFError once the peer closed and nothing is left.
  T recv() {
    const std::vector<std::byte> bytes = end_->recv(detail::type_tag<T>());
    return detail::decode<T>(bytes);
  }

  /// True when a message (or EOF) is ready now.
  bool poll() { return end_->poll(detail::Deadline::now_only()); }
  /// Python: poll(timeout). Waits at most `timeout` for a message (or EOF);
  /// true when one is ready.
  template <class Rep, class Period>
  bool poll(std::chrono::duration<Rep, Period> timeout) {
    return end_->poll(detail::Deadline::after(timeout));
  }

  /// Python: send_bytes(buf). Sends `bytes` as one message, as they are.
  void send_bytes(std::span<const std::byte> bytes) { end_->send(detail::kBytesTag, bytes); }
  /// Python: send_bytes(buf, offset, size). offset or offset + size beyond
  /// the buffer: std::invalid_argument.
  void send_bytes(std::span<const std::byte> bytes, std::size_t offset, std::size_t size) {
    if (offset > bytes.size()) {
      throw std::invalid_argument("Connection.send_bytes(): offset is past the buffer's end");
    }
    if (size > bytes.size() - offset) {
      throw std::invalid_argument(
          "Connection.send_bytes(): offset + size is past the buffer's end");
    }
    send_bytes(bytes.subspan(offset, size));
  }
  /// Python: recv_bytes(). Waits for the next message and returns its payload
  /// undecoded, whichever call sent it; EOFError once the peer closed.
  std::vector<std::byte> recv_bytes() { return end_->recv(0); }
  /// Python: recv_bytes(maxlength). A longer message closes this end and
  /// throws std::system_error(EMSGSIZE) (Python: OSError, and the
  /// connection is closed).
  std::vector<std::byte> recv_bytes(std::size_t maxlength) { return end_->recv(0, maxlength); }

  /// Closes this end for every handle in this process; the peer sees EOF once
  /// every process has closed it. A call inside send/recv/poll on another
  /// thread keeps the descriptor until it returns. Twice: nothing.
  void close() { end_->close(); }
  /// Python: Connection.closed: close() was called in this process.
  bool closed() const { return end_->closed(); }
  /// Python: fileno(): the socket's descriptor, for poll() or select().
  int fileno() const { return end_->fileno(); }
  /// Python: readable. False for the sending end of a one-way pipe (its
  /// unused direction).
  bool readable() const { return end_->readable(); }
  /// Python: writable. False for the receiving end of a one-way pipe.
  bool writable() const { return end_->writable(); }

 private:
  std::shared_ptr<detail::Endpoint> end_;
};

namespace detail_pipe {
std::pair<std::shared_ptr<concur::detail::Endpoint>, std::shared_ptr<concur::detail::Endpoint>>
make_pipe(bool duplex);
}

/// Python: multiprocessing.Pipe(duplex). Both kinds are a Unix stream
/// socket pair with close-on-exec set; duplex false: the first end only
/// receives, the second only sends (the unused directions are shut down).
/// Throws std::system_error when the system is out of descriptors.
template <class T>
std::pair<Connection<T>, Connection<T>> Pipe(bool duplex = true) {
  auto [a, b] = detail_pipe::make_pipe(duplex);
  return {Connection<T>(std::move(a)), Connection<T>(std::move(b))};
}

/// The largest message a recv() in this process accepts (default 1 GiB); a
/// frame announcing more is refused with FrameError before anything is
/// allocated. Process-wide and thread-safe; set it before forking to have
/// it in the children.
inline std::uint64_t max_message_bytes() { return detail::max_frame_bytes(); }
/// Sets max_message_bytes() for this process (and children forked later).
/// Python's recv() has no such limit (only recv_bytes(maxlength) has one).
inline void set_max_message_bytes(std::uint64_t bytes) { detail::set_max_frame_bytes(bytes); }

}  // namespace concur::multiprocessing
