// Length-prefixed, checked frames on a stream descriptor: what Connection
// sends and receives.
//
// A frame is a 32-byte header then the payload:
//   magic "CCF1", the payload's type tag (8 bytes), its length (8 bytes),
//   CRC-32C of the payload, CRC-32C of the header's first 24 bytes.
// The header is checked before anything is allocated, so a corrupt length
// can never make the receiver allocate; the payload is checked before it is
// decoded.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

namespace concur::detail {

inline constexpr std::uint64_t kBytesTag = 0x5241572d42595445ull;        // send_bytes: raw bytes
inline constexpr std::uint64_t kMaxFrameBytes = std::uint64_t{1} << 36;  // 64 GiB

std::uint32_t crc32c(std::span<const std::byte> bytes, std::uint32_t crc = 0);

// Encodes a header for a payload of `length` bytes whose CRC is `crc`.
void write_header(std::byte (&header)[32], std::uint64_t tag, std::uint64_t length,
                  std::uint32_t crc);

// Sends one frame; all of it or an exception. BrokenPipeError when the peer
// is gone (never SIGPIPE); std::system_error otherwise.
void send_frame(int fd, std::uint64_t tag, std::span<const std::byte> payload);

// Receives one frame. EOFError when the peer closed before a frame began;
// FrameError when it is truncated, corrupt, too large, or has another tag
// than `expected_tag` (0: any tag); std::system_error otherwise.
std::vector<std::byte> recv_frame(int fd, std::uint64_t expected_tag);

// Decodes and checks a header; returns the payload length and crc.
struct FrameHeader {
  std::uint64_t tag;
  std::uint64_t length;
  std::uint32_t payload_crc;
};
FrameHeader parse_header(const std::byte (&header)[32]);

}  // namespace concur::detail
