// libFuzzer: the transfer layer's decoder (detail::decode<T>, cereal frames
// read through BoundedInputArchive) for one type at a time, chosen by the
// first byte; the rest is the message. Covers what every Connection,
// Queue and Pool message goes through: strings, every standard container,
// nested ones, optionals, variants, tuples, enums, plain structs inside
// containers, and user types with serialize, with save/load, and with a
// class version.
//
// Anything but a value or concur::FrameError (or the user type's own
// exception) is a bug, and so is a decoded value that does not survive a
// second trip: encode(v) must decode again, to the same bytes (to an equal
// value for the unordered containers, whose order may change).
// scripts/fuzz.sh bounds allocations (-malloc_limit_mb): a message that
// makes the decoder allocate far more than its own size is a finding.
// Seeds: tests/fuzz/corpus/transfer/.
#include <array>
#include <chrono>
#include <complex>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <forward_list>
#include <list>
#include <map>
#include <optional>
#include <queue>
#include <set>
#include <span>
#include <stack>
#include <stdexcept>
#include <string>
#include <tuple>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <variant>
#include <vector>

#include "concur/errors.hpp"
#include "concur/multiprocessing/transfer.hpp"

namespace {

namespace detail = concur::detail;

enum class Color : std::uint8_t { kRed, kGreen, kBlue };

struct Plain {  // trivially copyable, no cereal function: crosses as bytes
  int a;
  double b;
  bool operator==(const Plain&) const = default;
};

struct Record {  // serialize()
  std::string name;
  std::vector<Plain> points;
  std::optional<Color> color;
  std::map<std::string, std::vector<int>> tags;
  bool operator==(const Record&) const = default;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(name, points, color, tags);
  }
};

struct BadRange : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct Checked {  // save()/load(); load refuses values out of range
  int percent = 0;
  std::string label;
  bool operator==(const Checked&) const = default;
  template <class Archive>
  void save(Archive& ar) const {
    ar(percent, label);
  }
  template <class Archive>
  void load(Archive& ar) {
    ar(percent, label);
    if (percent < 0 || percent > 100) throw BadRange("percent out of range");
  }
};

struct Versioned {  // serialize(ar, version): cereal reads a class version
  std::uint32_t seen = 0;
  std::list<std::string> lines;
  bool operator==(const Versioned&) const = default;
  template <class Archive>
  void serialize(Archive& ar, std::uint32_t version) {
    seen = version;
    ar(lines);
  }
};

struct Empty {  // encodes to nothing
  bool operator==(const Empty&) const = default;
  template <class Archive>
  void serialize(Archive&) {}
};

// A kilobyte of plain data: the decoder must not allocate many of these
// for a message that holds few.
using Blob = std::array<std::uint64_t, 128>;

using Message = std::map<std::string, std::vector<std::variant<int, std::string, bool>>>;

template <class T>
T decode(std::span<const std::byte> bytes) {
  return detail::decode<T>(bytes);
}

[[noreturn]] void fail() { __builtin_trap(); }

// Decodes; if that works, checks the second trip.
template <class T, bool kUnordered = false>
void check(std::span<const std::byte> bytes) {
  T value;
  try {
    value = decode<T>(bytes);
  } catch (const concur::FrameError&) {
    return;
  } catch (const BadRange&) {
    return;
  }
  // A trivially copyable value crosses as its bytes; copies of it need not
  // keep its padding, so there is nothing more to compare.
  if constexpr (concur::multiprocessing::trivially_transferable<T>) return;
  const std::vector<std::byte> once = detail::encode(value);
  T again;
  try {
    again = decode<T>(once);
  } catch (...) {
    fail();  // a value the decoder made must decode again
  }
  if constexpr (kUnordered) {
    if (!(again == value)) fail();
  } else {
    if (detail::encode(again) != once) fail();
  }
}

}  // namespace

CEREAL_CLASS_VERSION(Versioned, 3)

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::span<const std::byte> bytes(reinterpret_cast<const std::byte*>(data + 1), size - 1);
  switch (data[0] % 30) {
    case 0: check<std::string>(bytes); break;
    case 1: check<std::vector<int>>(bytes); break;
    case 2: check<std::vector<bool>>(bytes); break;
    case 3: check<std::vector<std::string>>(bytes); break;
    case 4: check<std::map<std::string, int>>(bytes); break;
    case 5: check<std::multimap<int, std::string>>(bytes); break;
    case 6: check<std::unordered_map<std::string, std::vector<int>>, true>(bytes); break;
    case 7: check<std::set<long>>(bytes); break;
    case 8: check<std::unordered_multiset<std::string>, true>(bytes); break;
    case 9: check<std::deque<double>>(bytes); break;
    case 10: check<std::list<std::pair<int, std::string>>>(bytes); break;
    case 11: check<std::forward_list<short>>(bytes); break;
    case 12: check<std::array<std::string, 3>>(bytes); break;
    case 13: check<std::optional<std::vector<char>>>(bytes); break;
    case 14: check<std::variant<std::monostate, int, std::string, std::vector<double>>>(bytes); break;
    case 15: check<std::tuple<bool, std::uint64_t, std::string>>(bytes); break;
    case 16: check<std::vector<std::chrono::nanoseconds>>(bytes); break;
    case 17: check<std::vector<std::complex<float>>>(bytes); break;
    case 18: check<std::stack<int>>(bytes); break;
    case 19: check<std::queue<std::string>>(bytes); break;
    case 20: check<std::priority_queue<int>>(bytes); break;
    case 21: check<Record>(bytes); break;
    case 22: check<std::vector<Checked>>(bytes); break;
    case 23: check<Versioned>(bytes); break;
    case 24: check<std::vector<Color>>(bytes); break;
    case 25: check<Plain>(bytes); break;
    case 26: check<std::vector<Blob>>(bytes); break;
    case 27: check<std::vector<std::vector<Empty>>>(bytes); break;
    case 28: check<Message>(bytes); break;
    case 29: check<std::pair<std::multiset<std::string>, std::unordered_map<int, Record>>, true>(bytes); break;
  }
  return 0;
}
