// libFuzzer: arbitrary bytes into the frame header parser and the decoders
// of several types. Anything but a clean FrameError (or a decoded value) is
// a bug: a crash, a sanitizer report, a hang, or a huge allocation.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <tuple>
#include <variant>
#include <vector>

#include "concur/detail/frame.hpp"
#include "concur/errors.hpp"
#include "concur/multiprocessing/transfer.hpp"

namespace {

template <class T>
void try_decode(std::span<const std::byte> bytes) {
  try {
    (void)concur::detail::decode<T>(bytes);
  } catch (const concur::FrameError&) {
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::span<const std::byte> bytes(reinterpret_cast<const std::byte*>(data), size);
  if (size >= 32) {
    std::byte header[32];
    std::memcpy(header, data, 32);
    try {
      (void)concur::detail::parse_header(header);
    } catch (const concur::FrameError&) {
    }
  }
  try_decode<int>(bytes);
  try_decode<std::string>(bytes);
  try_decode<std::vector<int>>(bytes);
  try_decode<std::map<std::string, std::vector<double>>>(bytes);
  try_decode<std::tuple<int, std::string, std::optional<long>>>(bytes);
  try_decode<std::variant<int, std::string, std::vector<char>>>(bytes);
  (void)concur::detail::crc32c(bytes);
  return 0;
}
