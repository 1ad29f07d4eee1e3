// Length-prefixed, checked frames on a stream socket: what Connection sends
// and receives.
//
// A frame is a 32-byte header, then the payload:
//   bytes  0..3   magic "CCFR"
//   byte   4      format version (1); bytes 5..7 zero
//   bytes  8..15  the payload's type tag (type_tag<T>, or kBytesTag for send_bytes)
//   bytes 16..23  the payload's length
//   bytes 24..27  CRC-32C of the payload
//   bytes 28..31  CRC-32C of bytes 0..27
// (native byte order: both ends are one program on one machine.)
//
// The header is checked completely (magic, version, its own CRC, the length
// against max_frame_bytes()) before anything is allocated for the payload,
// and the payload buffer grows only as bytes really arrive, so a lying
// length cannot make the receiver allocate. The payload's CRC is checked
// before it is decoded.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

namespace concur::detail {

inline constexpr std::size_t kFrameHeaderBytes = 32;
inline constexpr std::uint8_t kFrameVersion = 1;
// The tag of a send_bytes() frame: raw bytes, no type.
inline constexpr std::uint64_t kBytesTag = 0x5241572d42595445ull;
// The default bound on a received payload; see set_max_frame_bytes().
inline constexpr std::uint64_t kDefaultMaxFrameBytes = std::uint64_t{1} << 30;  // 1 GiB

// The largest payload a receiver in this process accepts. A header that
// claims more is a FrameError (and the stream is lost). Process-wide,
// thread-safe; the default is kDefaultMaxFrameBytes.
std::uint64_t max_frame_bytes();
void set_max_frame_bytes(std::uint64_t bytes);

// CRC-32C (Castagnoli), SSE4.2 where the CPU has it, a table otherwise.
std::uint32_t crc32c(std::span<const std::byte> bytes, std::uint32_t crc = 0);

// Fills a header for a payload of `length` bytes whose CRC-32C is `crc`.
void write_header(std::byte (&header)[kFrameHeaderBytes], std::uint64_t tag, std::uint64_t length,
                  std::uint32_t crc);

struct FrameHeader {
  std::uint64_t tag;
  std::uint64_t length;
  std::uint32_t payload_crc;
};
// Checks a header: FrameError for a wrong magic or version, a CRC mismatch,
// nonzero reserved bytes, or a length above `limit`.
FrameHeader parse_header(const std::byte (&header)[kFrameHeaderBytes], std::uint64_t limit);

// Sends one frame: all of it, or an exception. BrokenPipeError when the
// peer is gone (never SIGPIPE); std::system_error for other failures.
void send_frame(int fd, std::uint64_t tag, std::span<const std::byte> payload);
// The same for a buffer whose first kFrameHeaderBytes bytes are room for
// the header (filled here) and the rest is the payload: one copy less.
void send_framed(int fd, std::uint64_t tag, std::span<std::byte> buffer);

// Receives a header. EOFError when the peer closed before a frame began.
// FrameError when it is cut short or invalid; then `stream_lost` is set if
// the stream can no longer be read frame by frame (a corrupt header).
FrameHeader recv_header(int fd, bool& stream_lost);
// Receives the payload a header announced and checks its CRC. FrameError
// when the peer closes before all of it came (the next read then meets EOF)
// or when the CRC does not match (the stream stays in step).
std::vector<std::byte> recv_payload(int fd, const FrameHeader& header);
// Reads and drops n payload bytes, to stay in step after refusing a frame.
// False when the peer closed first (the next read then meets EOF).
bool skip_payload(int fd, std::uint64_t n);

}  // namespace concur::detail
