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
#include <memory>
#include <sstream>
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

// cereal's binary input archive, reading from memory, that refuses a
// container or string claiming more elements than there are bytes left (plus
// a small allowance for elements of size 0): a corrupt or hostile message can
// then never make the receiver allocate more than about its own size.
class BoundedInputArchive
    : public cereal::InputArchive<BoundedInputArchive, cereal::AllowEmptyClassElision> {
 public:
  explicit BoundedInputArchive(std::span<const std::byte> bytes)
      : InputArchive(this), next_(bytes.data()), left_(bytes.size()) {}

  void loadBinary(void* out, std::size_t size) {
    if (size > left_) throw FrameError("recv(): the message is truncated");
    if (size == 0) return;  // out may be null then (an empty string's data)
    std::memcpy(out, next_, size);
    next_ += size;
    left_ -= size;
  }
  std::size_t remaining() const { return left_; }

 private:
  const std::byte* next_;
  std::size_t left_;
};

template <class T>
  requires(std::is_arithmetic_v<T> && !std::is_same_v<T, bool>)
void CEREAL_LOAD_FUNCTION_NAME(BoundedInputArchive& ar, T& t) {
  ar.loadBinary(std::addressof(t), sizeof(t));
}
// A bool is one byte, 0 or 1; any other byte would be undefined behaviour
// to load as a bool (found by tests/fuzz/frame_fuzz.cpp).
inline void CEREAL_LOAD_FUNCTION_NAME(BoundedInputArchive& ar, bool& b) {
  unsigned char byte = 0;
  ar.loadBinary(&byte, 1);
  if (byte > 1) throw FrameError("recv(): the message holds a bool that is neither 0 nor 1");
  b = byte != 0;
}
template <class T>
void CEREAL_SERIALIZE_FUNCTION_NAME(BoundedInputArchive& ar, cereal::NameValuePair<T>& t) {
  ar(t.value);
}
template <class T>
void CEREAL_SERIALIZE_FUNCTION_NAME(BoundedInputArchive& ar, cereal::SizeTag<T>& t) {
  std::uint64_t n = 0;
  ar.loadBinary(&n, sizeof n);
  constexpr std::uint64_t kEmptyElementAllowance = std::uint64_t{1} << 20;
  if (n > ar.remaining() + kEmptyElementAllowance) {
    throw FrameError("recv(): the message claims " + std::to_string(n) +
                     " elements with only " + std::to_string(ar.remaining()) + " bytes left");
  }
  t.size = static_cast<std::remove_reference_t<T>>(n);
}
template <class T>
void CEREAL_SERIALIZE_FUNCTION_NAME(BoundedInputArchive& ar, cereal::BinaryData<T>& data) {
  ar.loadBinary(data.data, static_cast<std::size_t>(data.size));
}

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
    T value{};
    try {
      BoundedInputArchive archive(bytes);
      archive(value);
      if (archive.remaining() != 0) {
        throw FrameError("recv(): the message has bytes left over after decoding");
      }
    } catch (const cereal::Exception& e) {
      throw FrameError(std::string("recv(): the message cannot be decoded: ") + e.what());
    } catch (const std::length_error& e) {
      throw FrameError(std::string("recv(): the message cannot be decoded: ") + e.what());
    } catch (const std::bad_alloc&) {
      throw FrameError("recv(): the message cannot be decoded: it claims an impossible size");
    }
    return value;
  }
}

}  // namespace concur::detail

// Pairs the archive with the binary output archive for cereal's checks of
// types with separate save and load members (only this direction: the output
// archive already pairs with cereal's own binary input archive).
namespace cereal::traits::detail {
template <>
struct get_output_from_input<concur::detail::BoundedInputArchive> {
  using type = cereal::BinaryOutputArchive;
};
}  // namespace cereal::traits::detail
