// The one serialization layer for everything that crosses a process
// boundary (Connection, Queue, the pools).
//
// Transferable: arithmetic types, enums, trivially copyable structs (sent as
// their bytes, never serialized), std::string, the standard containers,
// std::pair, std::tuple, std::optional, std::variant of transferable types,
// and user types with a cereal-style `serialize(Archive&)`; those go through
// cereal's binary archives.
#pragma once

#include <cereal/archives/binary.hpp>
#include <cereal/types/array.hpp>
#include <cereal/types/chrono.hpp>
#include <cereal/types/complex.hpp>
#include <cereal/types/deque.hpp>
#include <cereal/types/forward_list.hpp>
#include <cereal/types/list.hpp>
#include <cereal/types/map.hpp>
#include <cereal/types/optional.hpp>
#include <cereal/types/set.hpp>
#include <cereal/types/string.hpp>
#include <cereal/types/tuple.hpp>
#include <cereal/types/unordered_map.hpp>
#include <cereal/types/unordered_set.hpp>
#include <cereal/types/utility.hpp>
#include <cereal/types/variant.hpp>
#include <cereal/types/vector.hpp>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <sstream>
#include <streambuf>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "concur/errors.hpp"

namespace concur::multiprocessing {

// Crosses as its bytes: no serializer runs, nothing is allocated.
template <class T>
concept trivially_transferable =
    std::is_trivially_copyable_v<T> && !std::is_pointer_v<T> && !std::is_member_pointer_v<T>;

}  // namespace concur::multiprocessing

namespace concur::detail {

// A stable 64-bit tag for T, the same in every process built from the same
// program: FNV-1a of the compiler's spelling of T.
template <class T>
constexpr std::uint64_t type_tag() {
  constexpr std::string_view name = __PRETTY_FUNCTION__;
  std::uint64_t h = 1469598103934665603ull;
  for (char c : name) {
    h ^= static_cast<unsigned char>(c);
    h *= 1099511628211ull;
  }
  return h;
}

// A read-only streambuf over bytes, for cereal's input archive.
class SpanBuffer : public std::streambuf {
 public:
  explicit SpanBuffer(std::span<const std::byte> bytes) {
    char* p = const_cast<char*>(reinterpret_cast<const char*>(bytes.data()));
    setg(p, p, p + bytes.size());
  }
};

template <class T>
std::vector<std::byte> encode(const T& value) {
  if constexpr (multiprocessing::trivially_transferable<T>) {
    std::vector<std::byte> out(sizeof(T));
    std::memcpy(out.data(), &value, sizeof(T));
    return out;
  } else {
    std::ostringstream stream(std::ios::binary);
    {
      cereal::BinaryOutputArchive archive(stream);
      archive(value);
    }
    const std::string text = std::move(stream).str();
    std::vector<std::byte> out(text.size());
    std::memcpy(out.data(), text.data(), text.size());
    return out;
  }
}

template <class T>
T decode(std::span<const std::byte> bytes) {
  if constexpr (multiprocessing::trivially_transferable<T>) {
    if (bytes.size() != sizeof(T)) {
      throw FrameError("recv(): the message has " + std::to_string(bytes.size()) +
                       " bytes, the type needs " + std::to_string(sizeof(T)));
    }
    T value;
    std::memcpy(static_cast<void*>(&value), bytes.data(), sizeof(T));
    return value;
  } else {
    static_assert(std::is_default_constructible_v<T>,
                  "a serialized type must be default-constructible to be received");
    SpanBuffer buffer(bytes);
    std::istream stream(&buffer);
    T value{};
    try {
      cereal::BinaryInputArchive archive(stream);
      archive(value);
    } catch (const cereal::Exception& e) {
      throw FrameError(std::string("recv(): the message cannot be decoded: ") + e.what());
    } catch (const std::length_error& e) {
      throw FrameError(std::string("recv(): the message cannot be decoded: ") + e.what());
    } catch (const std::bad_alloc&) {
      throw FrameError("recv(): the message cannot be decoded: it claims an impossible size");
    }
    if (stream.rdbuf()->in_avail() != 0) {
      throw FrameError("recv(): the message has bytes left over after decoding");
    }
    return value;
  }
}

}  // namespace concur::detail
