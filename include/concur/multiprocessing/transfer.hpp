// The one serialization layer for everything that crosses a process
// boundary (Connection, Queue, the pools).
//
// Transferable (API.md, "Data that crosses a process boundary"): arithmetic
// types, enums, trivially copyable structs, std::string, the standard
// containers, std::pair, std::tuple, std::optional and std::variant of
// transferable types, and user types with a cereal-style
// `serialize(Archive&)` (or save/load). `mp::transferable<T>` says whether T
// is one; Connection<T> and Queue<T> refuse other types at compile time.
//
// Encoding:
//   - a trivially copyable T (top level) crosses as its bytes: no serializer
//     runs and nothing is allocated;
//   - everything else goes through cereal with this file's two archives: a
//     binary output archive that appends to a std::vector<std::byte>, and a
//     binary input archive over a byte span that checks every read. Inside
//     a serialized value, a trivially copyable struct with no cereal function
//     of its own (a `Point` in a `std::vector<Point>`) is also copied as its
//     bytes.
//
// Decoding never trusts the bytes: a read past the end, a bool that is
// neither 0 nor 1, a variant index out of range, bytes left over, or
// containers that claim more elements than the message could hold throw
// concur::FrameError (errors.hpp). Elements claimed by all containers of one
// message together may not exceed the message's size plus kZeroSizeAllowance
// (for elements that encode to nothing, such as std::monostate), so a
// hostile message cannot make the receiver allocate much more than its own
// size (at most a factor of sizeof(element) over its encoded size).
//
// Caveats: the type tag (type_tag<T>) is derived from the compiler's
// spelling of T, so both ends must be built by the same compiler from the
// same definitions (one program, forked, as multiprocessing does). A
// trivially copyable struct that holds pointers is copied as is; its
// pointers mean nothing in another process unless they point into memory
// mapped at the same address there (shared memory made before fork).
#pragma once

#include <array>
#include <bit>
#include <cereal/archives/binary.hpp>
#include <cereal/cereal.hpp>
#include <cereal/types/array.hpp>
#include <cereal/types/chrono.hpp>
#include <cereal/types/complex.hpp>
#include <cereal/types/deque.hpp>
#include <cereal/types/forward_list.hpp>
#include <cereal/types/list.hpp>
#include <cereal/types/map.hpp>
#include <cereal/types/optional.hpp>
#include <cereal/types/queue.hpp>
#include <cereal/types/set.hpp>
#include <cereal/types/stack.hpp>
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
#include <deque>
#include <forward_list>
#include <list>
#include <map>
#include <memory>
#include <new>
#include <optional>
#include <queue>
#include <set>
#include <span>
#include <stack>
#include <stdexcept>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <variant>
#include <vector>

#include "concur/errors.hpp"

namespace concur::multiprocessing {

/// Crosses as its bytes: no serializer runs, nothing is allocated. A
/// trivially copyable type that is not a pointer, a member pointer, an array
/// or std::nullptr_t.
template <class T>
concept trivially_transferable =
    std::is_trivially_copyable_v<T> && !std::is_pointer_v<T> && !std::is_member_pointer_v<T> &&
    !std::is_array_v<T> && !std::is_null_pointer_v<T>;

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

// cereal's binary output archive, appending to a byte vector (no stream, no
// second copy).
class VectorOutputArchive
    : public cereal::OutputArchive<VectorOutputArchive, cereal::AllowEmptyClassElision> {
 public:
  explicit VectorOutputArchive(std::vector<std::byte>& out) : OutputArchive(this), out_(out) {}

  void saveBinary(const void* data, std::size_t size) {
    if (size == 0) return;
    const std::size_t old = out_.size();
    out_.resize(old + size);
    std::memcpy(out_.data() + old, data, size);
  }

 private:
  std::vector<std::byte>& out_;
};

// cereal's binary input archive, reading from memory, that checks every
// read against the bytes left and every container size against a budget
// for the whole message (see the file comment).
class BoundedInputArchive
    : public cereal::InputArchive<BoundedInputArchive, cereal::AllowEmptyClassElision> {
 public:
  // Elements that encode to zero bytes a message may claim in total.
  static constexpr std::uint64_t kZeroSizeAllowance = std::uint64_t{1} << 20;

  explicit BoundedInputArchive(std::span<const std::byte> bytes)
      : InputArchive(this),
        next_(bytes.data()),
        left_(bytes.size()),
        element_budget_(bytes.size() + kZeroSizeAllowance) {}

  void loadBinary(void* out, std::size_t size) {
    if (size > left_) {
      throw FrameError("recv(): the message is truncated: it needs " + std::to_string(size) +
                       " more bytes where " + std::to_string(left_) + " are left");
    }
    if (size == 0) return;  // out may be null then (an empty string's data)
    std::memcpy(out, next_, size);
    next_ += size;
    left_ -= size;
  }
  std::size_t remaining() const { return left_; }
  // Room to make before loading a container that claims n elements: as
  // many as the bytes left could hold (an element that encodes to nothing
  // is not worth making room for).
  std::size_t room_for(std::uint64_t n) const {
    return static_cast<std::size_t>(n < left_ ? n : left_);
  }
  // n elements of `each` bytes read in one go must all be there.
  void require(std::uint64_t n, std::size_t each) {
    if (n > left_ / each) {
      throw FrameError("recv(): the message is truncated: it claims " + std::to_string(n) +
                       " elements of " + std::to_string(each) + " bytes where " +
                       std::to_string(left_) + " bytes are left");
    }
  }

  // A container claims n elements: charge them to the message's budget.
  void charge_elements(std::uint64_t n) {
    if (n > element_budget_ || n > left_ + kZeroSizeAllowance) {
      throw FrameError("recv(): the message claims a container of " + std::to_string(n) +
                       " elements with only " + std::to_string(left_) + " bytes left");
    }
    element_budget_ -= n;
  }

 private:
  const std::byte* next_;
  std::size_t left_;
  std::uint64_t element_budget_;
};

// --- what the two archives do with cereal's building blocks --------------------

template <class T>
requires std::is_arithmetic_v<T>
void CEREAL_SAVE_FUNCTION_NAME(VectorOutputArchive& ar, const T& t) {
  ar.saveBinary(std::addressof(t), sizeof(t));
}
template <class T>
requires(std::is_arithmetic_v<T> &&
         !std::is_same_v<T, bool>) void CEREAL_LOAD_FUNCTION_NAME(BoundedInputArchive& ar, T& t) {
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

template <class Archive, class T>
requires(
    std::is_same_v<Archive, VectorOutputArchive> ||
    std::is_same_v<
        Archive, BoundedInputArchive>) void CEREAL_SERIALIZE_FUNCTION_NAME(Archive& ar,
                                                                           cereal::NameValuePair<T>&
                                                                               t) {
  ar(t.value);
}

template <class T>
void CEREAL_SERIALIZE_FUNCTION_NAME(VectorOutputArchive& ar, cereal::SizeTag<T>& t) {
  const std::uint64_t n = static_cast<std::uint64_t>(t.size);
  ar.saveBinary(&n, sizeof n);
}
template <class T>
void CEREAL_SERIALIZE_FUNCTION_NAME(BoundedInputArchive& ar, cereal::SizeTag<T>& t) {
  std::uint64_t n = 0;
  ar.loadBinary(&n, sizeof n);
  ar.charge_elements(n);
  t.size = static_cast<std::remove_reference_t<T>>(n);
}

template <class T>
void CEREAL_SAVE_FUNCTION_NAME(VectorOutputArchive& ar, const cereal::BinaryData<T>& data) {
  ar.saveBinary(data.data, static_cast<std::size_t>(data.size));
}
template <class T>
void CEREAL_LOAD_FUNCTION_NAME(BoundedInputArchive& ar, cereal::BinaryData<T>& data) {
  ar.loadBinary(data.data, static_cast<std::size_t>(data.size));
}

// A trivially copyable type that cereal knows nothing about (no serialize,
// save or load of its own, not a standard type cereal handles), inside a
// serialized value: its bytes.
template <class T>
concept plain_blob =
    multiprocessing::trivially_transferable<T> && !std::is_arithmetic_v<T> && !std::is_enum_v<T> &&
    cereal::traits::detail::count_output_serializers<T, cereal::BinaryOutputArchive>::value == 0;

template <plain_blob T>
void CEREAL_SAVE_FUNCTION_NAME(VectorOutputArchive& ar, const T& t) {
  ar.saveBinary(std::addressof(t), sizeof(T));
}
template <plain_blob T>
void CEREAL_LOAD_FUNCTION_NAME(BoundedInputArchive& ar, T& t) {
  ar.loadBinary(std::addressof(t), sizeof(T));
}

// cereal 1.3 loads every associative container with emplace_hint at the
// previous element, which reverses the order of equal keys of a multimap or
// multiset; these keep it (each element goes after the ones already there).
template <class K, class V, class C, class A>
void CEREAL_LOAD_FUNCTION_NAME(BoundedInputArchive& ar, std::multimap<K, V, C, A>& map) {
  cereal::size_type size = 0;
  ar(cereal::make_size_tag(size));
  map.clear();
  for (cereal::size_type i = 0; i < size; ++i) {
    K key{};
    V value{};
    ar(cereal::make_map_item(key, value));
    map.emplace_hint(map.end(), std::move(key), std::move(value));
  }
}
template <class K, class C, class A>
void CEREAL_LOAD_FUNCTION_NAME(BoundedInputArchive& ar, std::multiset<K, C, A>& set) {
  cereal::size_type size = 0;
  ar(cereal::make_size_tag(size));
  set.clear();
  for (cereal::size_type i = 0; i < size; ++i) {
    K key{};
    ar(key);
    set.emplace_hint(set.end(), std::move(key));
  }
}

// The containers that cereal fills by first making room for every element
// the message claims (resize, reserve). A claim is checked against the
// bytes left plus the zero-size allowance, so a message of a few bytes may
// claim a million elements; cereal's resize() then allocated a million of
// them, a gigabyte for an element of a kilobyte (found by
// tests/fuzz/transfer_fuzz.cpp). These make room for no more elements than
// the bytes left could hold and grow as elements really arrive.
template <class Contiguous>
void load_contiguous(BoundedInputArchive& ar, Contiguous& contiguous) {
  using T = typename Contiguous::value_type;
  cereal::size_type size = 0;
  ar(cereal::make_size_tag(size));
  ar.require(size, sizeof(T));
  contiguous.resize(static_cast<std::size_t>(size));
  ar(cereal::binary_data(contiguous.data(), static_cast<std::size_t>(size) * sizeof(T)));
}
template <class T, class A>
requires(std::is_arithmetic_v<T> &&
         !std::is_same_v<T, bool>) void CEREAL_LOAD_FUNCTION_NAME(BoundedInputArchive& ar,
                                                                  std::vector<T, A>& vector) {
  load_contiguous(ar, vector);
}
template <class Container>
void load_growing(BoundedInputArchive& ar, Container& container) {
  cereal::size_type size = 0;
  ar(cereal::make_size_tag(size));
  container.clear();
  if constexpr (requires { container.reserve(std::size_t{}); }) {
    container.reserve(ar.room_for(size));
  }
  for (cereal::size_type i = 0; i < size; ++i) {
    if constexpr (requires { container.emplace_back(); }) {
      ar(container.emplace_back());
    } else {  // an unordered set
      typename Container::key_type key{};
      ar(key);
      container.emplace(std::move(key));
    }
  }
}
template <class T, class A>
requires(!std::is_arithmetic_v<T>) void CEREAL_LOAD_FUNCTION_NAME(BoundedInputArchive& ar,
                                                                  std::vector<T, A>& vector) {
  load_growing(ar, vector);
}
template <class T, class A>
void CEREAL_LOAD_FUNCTION_NAME(BoundedInputArchive& ar, std::deque<T, A>& deque) {
  load_growing(ar, deque);
}
template <class T, class A>
void CEREAL_LOAD_FUNCTION_NAME(BoundedInputArchive& ar, std::list<T, A>& list) {
  load_growing(ar, list);
}
template <class T, class A>
void CEREAL_LOAD_FUNCTION_NAME(BoundedInputArchive& ar, std::forward_list<T, A>& list) {
  cereal::size_type size = 0;
  ar(cereal::make_size_tag(size));
  list.clear();
  auto last = list.before_begin();
  for (cereal::size_type i = 0; i < size; ++i) {
    last = list.emplace_after(last);
    ar(*last);
  }
}
template <class C, class Tr, class A>
requires std::is_arithmetic_v<C>
void CEREAL_LOAD_FUNCTION_NAME(BoundedInputArchive& ar, std::basic_string<C, Tr, A>& str) {
  load_contiguous(ar, str);
}
template <class K, class H, class E, class A>
void CEREAL_LOAD_FUNCTION_NAME(BoundedInputArchive& ar, std::unordered_set<K, H, E, A>& set) {
  load_growing(ar, set);
}
template <class K, class H, class E, class A>
void CEREAL_LOAD_FUNCTION_NAME(BoundedInputArchive& ar,
                               std::unordered_multiset<K, H, E, A>& set) {
  load_growing(ar, set);
}

// --- the transferable trait ------------------------------------------------------

template <class T>
struct transferable_trait;

template <class T>
inline constexpr bool is_transferable_v = transferable_trait<std::remove_cv_t<T>>::value;

template <class... Ts>
inline constexpr bool all_transferable_v = (is_transferable_v<Ts> && ...);

// A user type: a class cereal can save and load with these archives (its own
// serialize, or save and load), default-constructible so it can be received.
template <class T>
inline constexpr bool user_serializable_v =
    std::is_class_v<T>&& std::is_default_constructible_v<T>&&
        cereal::traits::is_output_serializable<T, VectorOutputArchive>::value&&
            cereal::traits::is_input_serializable<T, BoundedInputArchive>::value;

template <class T>
struct transferable_trait
    : std::bool_constant<multiprocessing::trivially_transferable<T> || user_serializable_v<T>> {};

template <class C, class Tr, class A>
struct transferable_trait<std::basic_string<C, Tr, A>>
    : std::bool_constant<std::is_arithmetic_v<C>> {};
template <class E, class A>
struct transferable_trait<std::vector<E, A>> : std::bool_constant<is_transferable_v<E>> {};
template <class E, class A>
struct transferable_trait<std::deque<E, A>> : std::bool_constant<is_transferable_v<E>> {};
template <class E, class A>
struct transferable_trait<std::list<E, A>> : std::bool_constant<is_transferable_v<E>> {};
template <class E, class A>
struct transferable_trait<std::forward_list<E, A>> : std::bool_constant<is_transferable_v<E>> {};
template <class E, std::size_t N>
struct transferable_trait<std::array<E, N>> : std::bool_constant<is_transferable_v<E>> {};
template <class K, class C, class A>
struct transferable_trait<std::set<K, C, A>> : std::bool_constant<is_transferable_v<K>> {};
template <class K, class C, class A>
struct transferable_trait<std::multiset<K, C, A>> : std::bool_constant<is_transferable_v<K>> {};
template <class K, class H, class E, class A>
struct transferable_trait<std::unordered_set<K, H, E, A>>
    : std::bool_constant<is_transferable_v<K>> {};
template <class K, class H, class E, class A>
struct transferable_trait<std::unordered_multiset<K, H, E, A>>
    : std::bool_constant<is_transferable_v<K>> {};
template <class K, class V, class C, class A>
struct transferable_trait<std::map<K, V, C, A>> : std::bool_constant<all_transferable_v<K, V>> {};
template <class K, class V, class C, class A>
struct transferable_trait<std::multimap<K, V, C, A>>
    : std::bool_constant<all_transferable_v<K, V>> {};
template <class K, class V, class H, class E, class A>
struct transferable_trait<std::unordered_map<K, V, H, E, A>>
    : std::bool_constant<all_transferable_v<K, V>> {};
template <class K, class V, class H, class E, class A>
struct transferable_trait<std::unordered_multimap<K, V, H, E, A>>
    : std::bool_constant<all_transferable_v<K, V>> {};
template <class E, class C>
struct transferable_trait<std::stack<E, C>> : std::bool_constant<is_transferable_v<C>> {};
template <class E, class C>
struct transferable_trait<std::queue<E, C>> : std::bool_constant<is_transferable_v<C>> {};
template <class E, class C, class Cmp>
struct transferable_trait<std::priority_queue<E, C, Cmp>>
    : std::bool_constant<is_transferable_v<C>> {};
template <class A, class B>
struct transferable_trait<std::pair<A, B>> : std::bool_constant<all_transferable_v<A, B>> {};
template <class... Ts>
struct transferable_trait<std::tuple<Ts...>> : std::bool_constant<all_transferable_v<Ts...>> {};
template <class E>
struct transferable_trait<std::optional<E>> : std::bool_constant<is_transferable_v<E>> {};
template <class... Ts>
struct transferable_trait<std::variant<Ts...>> : std::bool_constant<all_transferable_v<Ts...>> {};
template <>
struct transferable_trait<std::monostate> : std::true_type {};

}  // namespace concur::detail

namespace concur::multiprocessing {

/// True for the types that may cross a process boundary (the comment atop
/// transfer.hpp has the rules). Connection<T>, Queue<T> and the pools require it.
/// They are: arithmetic types, enums, trivially copyable structs,
/// std::string, the standard containers, std::pair, std::tuple,
/// std::optional and std::variant of transferable types, and
/// default-constructible user types with a cereal-style `serialize(Archive&)`
/// (or save and load). Python pickles almost anything; here the compiler
/// refuses the rest.
template <class T>
concept transferable = !std::is_reference_v<T> && detail::is_transferable_v<T>;

}  // namespace concur::multiprocessing

namespace concur::detail {

// Appends value's encoding to out.
template <class T>
void encode_append(std::vector<std::byte>& out, const T& value) {
  static_assert(multiprocessing::transferable<T>,
                "concur: this type cannot cross a process boundary; see "
                "concur::multiprocessing::transferable");
  if constexpr (multiprocessing::trivially_transferable<T>) {
    const std::size_t old = out.size();
    out.resize(old + sizeof(T));
    std::memcpy(out.data() + old, std::addressof(value), sizeof(T));
  } else {
    VectorOutputArchive archive(out);
    archive(value);
  }
}

// value's encoding: its bytes, or cereal's binary form.
template <class T>
std::vector<std::byte> encode(const T& value) {
  std::vector<std::byte> out;
  if constexpr (multiprocessing::trivially_transferable<T>) out.reserve(sizeof(T));
  encode_append(out, value);
  return out;
}

// The value encoded in bytes. FrameError when they are not an encoding of
// a T (see the file comment); exceptions from a user type's own load pass
// through.
template <class T>
T decode(std::span<const std::byte> bytes) {
  static_assert(multiprocessing::transferable<T>,
                "concur: this type cannot cross a process boundary; see "
                "concur::multiprocessing::transferable");
  if constexpr (multiprocessing::trivially_transferable<T>) {
    if (bytes.size() != sizeof(T)) {
      throw FrameError("recv(): the message has " + std::to_string(bytes.size()) +
                       " bytes where the type needs " + std::to_string(sizeof(T)));
    }
    if constexpr (std::is_same_v<T, bool>) {
      const auto byte = static_cast<unsigned char>(bytes[0]);
      if (byte > 1) throw FrameError("recv(): the message holds a bool that is neither 0 nor 1");
      return byte != 0;
    } else if constexpr (std::is_default_constructible_v<T>) {
      T value;
      std::memcpy(static_cast<void*>(std::addressof(value)), bytes.data(), sizeof(T));
      return value;
    } else {
      std::array<std::byte, sizeof(T)> raw;
      std::memcpy(raw.data(), bytes.data(), sizeof(T));
      return std::bit_cast<T>(raw);
    }
  } else {
    T value{};
    try {
      BoundedInputArchive archive(bytes);
      archive(value);
      if (archive.remaining() != 0) {
        throw FrameError("recv(): the message has " + std::to_string(archive.remaining()) +
                         " bytes left over after decoding");
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

// Pairs the two archives for cereal's checks of types with separate save
// and load functions.
CEREAL_SETUP_ARCHIVE_TRAITS(concur::detail::BoundedInputArchive,
                            concur::detail::VectorOutputArchive)
