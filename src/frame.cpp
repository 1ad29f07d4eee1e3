// Frames on stream sockets: checked headers, CRC-32C, no SIGPIPE.
#include "concur/detail/frame.hpp"

#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <string>
#include <system_error>

#include "concur/detail/deadline.hpp"
#include "concur/errors.hpp"

namespace concur::detail {

namespace {

constexpr std::byte kMagic[4] = {std::byte{'C'}, std::byte{'C'}, std::byte{'F'}, std::byte{'R'}};

std::atomic<std::uint64_t> g_max_frame_bytes{kDefaultMaxFrameBytes};

std::array<std::uint32_t, 256> make_table() {
  std::array<std::uint32_t, 256> table{};
  for (std::uint32_t i = 0; i < 256; ++i) {
    std::uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
    table[i] = c;
  }
  return table;
}
const std::array<std::uint32_t, 256> kTable = make_table();

std::uint32_t crc32c_table(const unsigned char* p, std::size_t n, std::uint32_t crc) {
  for (std::size_t i = 0; i < n; ++i) crc = kTable[(crc ^ p[i]) & 0xff] ^ (crc >> 8);
  return crc;
}

#if defined(__x86_64__)
__attribute__((target("sse4.2"))) std::uint32_t crc32c_hw(const unsigned char* p, std::size_t n,
                                                          std::uint32_t crc) {
  std::uint64_t c = crc;
  while (n >= 8) {
    std::uint64_t word;
    std::memcpy(&word, p, 8);
    c = __builtin_ia32_crc32di(c, word);
    p += 8;
    n -= 8;
  }
  std::uint32_t c32 = static_cast<std::uint32_t>(c);
  while (n-- > 0) c32 = __builtin_ia32_crc32qi(c32, *p++);
  return c32;
}
const bool kHaveSse42 = __builtin_cpu_supports("sse4.2");
#endif

void put64(std::byte* out, std::uint64_t v) { std::memcpy(out, &v, 8); }
void put32(std::byte* out, std::uint32_t v) { std::memcpy(out, &v, 4); }
std::uint64_t get64(const std::byte* in) {
  std::uint64_t v;
  std::memcpy(&v, in, 8);
  return v;
}
std::uint32_t get32(const std::byte* in) {
  std::uint32_t v;
  std::memcpy(&v, in, 4);
  return v;
}

[[noreturn]] void throw_send_error(int err) {
  if (err == EPIPE || err == ECONNRESET) throw BrokenPipeError();
  throw std::system_error(err, std::generic_category(), "Connection.send()");
}

// Writes every iovec, resuming after partial writes and EINTR; MSG_NOSIGNAL
// so a closed peer is an error, not SIGPIPE.
void send_all(int fd, iovec* iov, int count) {
  while (count > 0) {
    msghdr msg{};
    msg.msg_iov = iov;
    msg.msg_iovlen = static_cast<std::size_t>(count);
    const ssize_t n = ::sendmsg(fd, &msg, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw_send_error(errno);
    }
    std::size_t left = static_cast<std::size_t>(n);
    while (count > 0 && left >= iov->iov_len) {
      left -= iov->iov_len;
      ++iov;
      --count;
    }
    if (count > 0) {
      iov->iov_base = static_cast<char*>(iov->iov_base) + left;
      iov->iov_len -= left;
    }
  }
}

// Reads exactly n bytes; returns how many arrived before the peer closed.
std::size_t recv_all(int fd, std::byte* out, std::size_t n) {
  std::size_t got = 0;
  while (got < n) {
    const ssize_t r = ::read(fd, out + got, n - got);
    if (r == 0) break;
    if (r < 0) {
      if (errno == EINTR) continue;
      if (errno == ECONNRESET) break;
      throw std::system_error(errno, std::generic_category(), "Connection.recv()");
    }
    got += static_cast<std::size_t>(r);
  }
  return got;
}

// Tries without blocking for up to kSpinNs before the blocking read: a peer
// that answers within microseconds is then seen without a sleep and a
// wake-up in the kernel, which cost tens of microseconds here.
constexpr std::int64_t kSpinNs = 20'000;

std::size_t recv_first(int fd, std::byte* out, std::size_t n) {
  const std::int64_t until = Deadline::monotonic_ns() + kSpinNs;
  do {
    const ssize_t r = ::recv(fd, out, n, MSG_DONTWAIT);
    if (r > 0) {
      const auto got = static_cast<std::size_t>(r);
      return got + recv_all(fd, out + got, n - got);
    }
    if (r == 0) return 0;
    if (errno == ECONNRESET) return 0;
    if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) break;
  } while (Deadline::monotonic_ns() < until);
  return recv_all(fd, out, n);
}

}  // namespace

std::uint64_t max_frame_bytes() { return g_max_frame_bytes.load(std::memory_order_relaxed); }
void set_max_frame_bytes(std::uint64_t bytes) {
  g_max_frame_bytes.store(bytes, std::memory_order_relaxed);
}

std::uint32_t crc32c(std::span<const std::byte> bytes, std::uint32_t crc) {
  const auto* p = reinterpret_cast<const unsigned char*>(bytes.data());
  crc = ~crc;
#if defined(__x86_64__)
  crc = kHaveSse42 ? crc32c_hw(p, bytes.size(), crc) : crc32c_table(p, bytes.size(), crc);
#else
  crc = crc32c_table(p, bytes.size(), crc);
#endif
  return ~crc;
}

void write_header(std::byte (&header)[kFrameHeaderBytes], std::uint64_t tag, std::uint64_t length,
                  std::uint32_t crc) {
  std::memcpy(header, kMagic, 4);
  header[4] = std::byte{kFrameVersion};
  header[5] = header[6] = header[7] = std::byte{0};
  put64(header + 8, tag);
  put64(header + 16, length);
  put32(header + 24, crc);
  put32(header + 28, crc32c(std::span<const std::byte>(header, 28)));
}

FrameHeader parse_header(const std::byte (&header)[kFrameHeaderBytes], std::uint64_t limit) {
  if (std::memcmp(header, kMagic, 4) != 0) {
    throw FrameError("recv(): the data does not start with a frame header (corrupt stream)");
  }
  if (get32(header + 28) != crc32c(std::span<const std::byte>(header, 28))) {
    throw FrameError("recv(): the frame header is corrupt (checksum mismatch)");
  }
  if (header[4] != std::byte{kFrameVersion}) {
    throw FrameError("recv(): the frame has format version " +
                     std::to_string(static_cast<int>(header[4])) + ", this build reads " +
                     std::to_string(static_cast<int>(kFrameVersion)));
  }
  if (header[5] != std::byte{0} || header[6] != std::byte{0} || header[7] != std::byte{0}) {
    throw FrameError("recv(): the frame header's reserved bytes are not zero");
  }
  const FrameHeader h{get64(header + 8), get64(header + 16), get32(header + 24)};
  if (h.length > limit) {
    throw FrameError("recv(): the frame claims " + std::to_string(h.length) +
                     " bytes, more than the limit of " + std::to_string(limit) +
                     " (see concur::multiprocessing::set_max_message_bytes)");
  }
  return h;
}

void send_frame(int fd, std::uint64_t tag, std::span<const std::byte> payload) {
  std::byte header[kFrameHeaderBytes];
  write_header(header, tag, payload.size(), crc32c(payload));
  iovec iov[2] = {{header, sizeof header},
                  {const_cast<std::byte*>(payload.data()), payload.size()}};
  send_all(fd, iov, payload.empty() ? 1 : 2);
}

void send_framed(int fd, std::uint64_t tag, std::span<std::byte> buffer) {
  const auto payload = buffer.subspan(kFrameHeaderBytes);
  std::byte header[kFrameHeaderBytes];
  write_header(header, tag, payload.size(), crc32c(payload));
  std::memcpy(buffer.data(), header, kFrameHeaderBytes);
  iovec iov[1] = {{buffer.data(), buffer.size()}};
  send_all(fd, iov, 1);
}

FrameHeader recv_header(int fd, bool& stream_lost) {
  std::byte header[kFrameHeaderBytes];
  const std::size_t got = recv_first(fd, header, sizeof header);
  if (got == 0) throw EOFError();
  if (got < sizeof header) {
    throw FrameError("recv(): the peer closed in the middle of a frame header (truncated frame)");
  }
  try {
    return parse_header(header, max_frame_bytes());
  } catch (const FrameError&) {
    stream_lost = true;  // where the next frame starts is unknown
    throw;
  }
}

std::vector<std::byte> recv_payload(int fd, const FrameHeader& h) {
  // Grow with what arrives (doubling from 1 MiB), so a header that lies
  // about its length costs at most 1 MiB, or twice what really came, before
  // the stream runs dry.
  constexpr std::size_t kFirst = std::size_t{1} << 20;
  const auto length = static_cast<std::size_t>(h.length);
  std::vector<std::byte> payload;
  while (payload.size() < length) {
    const std::size_t old = payload.size();
    const std::size_t want = std::min(length - old, std::max(kFirst, old));
    payload.resize(old + want);
    const std::size_t got = recv_all(fd, payload.data() + old, want);
    if (got < want) {  // the peer closed: the next read meets EOF
      throw FrameError("recv(): the peer closed after " + std::to_string(old + got) + " of " +
                       std::to_string(length) + " bytes of a message (truncated frame)");
    }
  }
  if (crc32c(payload) != h.payload_crc) {
    throw FrameError("recv(): the message is corrupt (checksum mismatch)");
  }
  return payload;
}

bool skip_payload(int fd, std::uint64_t n) {
  std::byte sink[64 * 1024];
  while (n > 0) {
    const std::size_t want = static_cast<std::size_t>(std::min<std::uint64_t>(n, sizeof sink));
    const std::size_t got = recv_all(fd, sink, want);
    if (got < want) return false;
    n -= got;
  }
  return true;
}

}  // namespace concur::detail
