// libFuzzer: arbitrary bytes into the frame reader and the decoders.
// Anything but a value, EOFError or FrameError is a bug: a crash, a
// sanitizer report, a hang, or a huge allocation (scripts/fuzz.sh runs it
// with -malloc_limit_mb and -rss_limit_mb).
//
// Each input is used three ways:
//   1. decoded directly as each of several types;
//   2. its first 32 bytes parsed as a frame header;
//   3. written into a socket and read back with Connection::recv() until
//      the stream ends. The first byte chooses what goes into the socket:
//      the rest as is (a raw stream: forged headers), or the rest wrapped in
//      a correct frame (valid CRCs, so the decoders behind recv() are
//      reached) tagged as the receiver's type, as raw bytes, or as another
//      type. Bit 2 of the first byte reads with recv_bytes(maxlength)
//      instead, maxlength being the first byte's upper five bits times 97.
//      Seeds: tests/fuzz/corpus/frame/.
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <system_error>
#include <tuple>
#include <variant>
#include <vector>

#include "concur/detail/frame.hpp"
#include "concur/errors.hpp"
#include "concur/multiprocessing/connection.hpp"
#include "concur/multiprocessing/transfer.hpp"

namespace {

namespace detail = concur::detail;

struct Plain {
  int a;
  double b;
};

struct User {
  std::string name;
  std::multimap<int, std::string> notes;
  std::optional<Plain> where;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(name, notes, where);
  }
};

using Message = std::map<std::string, std::vector<std::variant<int, std::string, bool>>>;

template <class T>
void try_decode(std::span<const std::byte> bytes) {
  try {
    (void)detail::decode<T>(bytes);
  } catch (const concur::FrameError&) {
  }
}

void decoders(std::span<const std::byte> bytes) {
  try_decode<int>(bytes);
  try_decode<bool>(bytes);
  try_decode<std::string>(bytes);
  try_decode<std::vector<int>>(bytes);
  try_decode<std::vector<bool>>(bytes);
  try_decode<std::vector<Plain>>(bytes);
  try_decode<std::map<std::string, std::vector<double>>>(bytes);
  try_decode<std::tuple<int, std::string, std::optional<long>>>(bytes);
  try_decode<std::variant<int, std::string, std::vector<char>>>(bytes);
  try_decode<std::vector<std::vector<std::monostate>>>(bytes);
  try_decode<std::multiset<std::string>>(bytes);
  try_decode<User>(bytes);
  try_decode<Message>(bytes);
}

void stream(const std::uint8_t* data, std::size_t size) {
  if (size == 0 || size > (std::size_t{64} << 10)) return;  // must fit the socket's buffer
  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) return;
  const std::span<const std::byte> rest(reinterpret_cast<const std::byte*>(data + 1), size - 1);
  std::vector<std::byte> out;
  const int mode = data[0] & 3;
  if (mode == 0) {
    out.assign(rest.begin(), rest.end());
  } else {
    const std::uint64_t tag = mode == 1   ? detail::type_tag<Message>()
                              : mode == 2 ? detail::kBytesTag
                                          : detail::type_tag<int>();
    std::byte header[detail::kFrameHeaderBytes];
    detail::write_header(header, tag, rest.size(), detail::crc32c(rest));
    out.assign(header, header + sizeof header);
    out.insert(out.end(), rest.begin(), rest.end());
  }
  std::size_t written = 0;
  while (written < out.size()) {
    const ssize_t n = ::write(fds[1], out.data() + written, out.size() - written);
    if (n <= 0) break;
    written += static_cast<std::size_t>(n);
  }
  ::close(fds[1]);  // the reader meets EOF, never blocks
  concur::multiprocessing::Connection<Message> conn(
      std::make_shared<detail::Endpoint>(fds[0], true, true));
  const bool raw = (data[0] & 4) != 0;
  const std::size_t maxlength = static_cast<std::size_t>(data[0] >> 3) * 97;
  int errors = 0;
  for (int i = 0; i < 16 && errors < 3; ++i) {
    try {
      if (raw) {
        (void)conn.recv_bytes(maxlength);
      } else {
        (void)conn.recv();
      }
    } catch (const concur::EOFError&) {
      break;
    } catch (const concur::FrameError&) {
      ++errors;  // after a corrupt header every later recv() fails the same way
    } catch (const std::system_error& e) {
      if (!raw || e.code().value() != EMSGSIZE) throw;
      break;  // longer than maxlength: this end is closed now
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::span<const std::byte> bytes(reinterpret_cast<const std::byte*>(data), size);
  decoders(bytes);
  if (size >= detail::kFrameHeaderBytes) {
    std::byte header[detail::kFrameHeaderBytes];
    std::memcpy(header, data, sizeof header);
    try {
      (void)detail::parse_header(header, detail::max_frame_bytes());
    } catch (const concur::FrameError&) {
    }
  }
  stream(data, size);
  (void)detail::crc32c(bytes);
  return 0;
}
