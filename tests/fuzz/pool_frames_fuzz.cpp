// libFuzzer: the process pools' frames, as the caller and the workers
// decode them: a map's ChunkReport and the items inside it, an imap task
// (IMapTask) and its report (IMapReport), and decode_items() for item
// types that cross as their bytes and for ones that go through cereal.
// The first byte chooses the decoder; the rest is the frame.
//
// Anything but a value or concur::FrameError is a bug, and so is a decoded
// value that does not come back the same from encode and decode.
// Seeds: tests/fuzz/corpus/pool_frames/.
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <tuple>
#include <vector>

#include "concur/errors.hpp"
#include "concur/multiprocessing/pool.hpp"
#include "concur/multiprocessing/pool_imap.hpp"

namespace {

namespace detail = concur::detail;

[[noreturn]] void fail() { __builtin_trap(); }

struct Point {
  int x;
  int y;
  bool operator==(const Point&) const = default;
};

template <class T>
void items(const std::string& text) {
  std::vector<T> values;
  try {
    values = detail::decode_items<T>(text);
  } catch (const concur::FrameError&) {
    return;
  }
  const std::string once = detail::encode_items(values);
  if (detail::encode_items(detail::decode_items<T>(once)) != once) fail();  // bytes: NaN != NaN
}

template <class Report>
Report record(std::span<const std::byte> bytes, bool& ok) {
  ok = false;
  try {
    Report report = detail::decode<Report>(bytes);
    ok = true;
    if (detail::encode(detail::decode<Report>(detail::encode(report))) != detail::encode(report)) {
      fail();
    }
    return report;
  } catch (const concur::FrameError&) {
    return {};
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::span<const std::byte> bytes(reinterpret_cast<const std::byte*>(data + 1), size - 1);
  const std::string text(reinterpret_cast<const char*>(data + 1), size - 1);
  bool ok = false;
  switch (data[0] % 8) {
    case 0: {  // Pool.map: the caller reads a report, then its results
      const auto report = record<detail::ChunkReport>(bytes, ok);
      if (ok) items<std::string>(report.payload);
      if (ok) items<std::vector<int>>(report.payload);
      break;
    }
    case 1: {  // Pool.imap: a worker reads a task, then its items
      const auto task = record<detail::IMapTask>(bytes, ok);
      if (ok) items<long>(task.items);
      if (ok) items<std::tuple<int, std::string>>(task.items);
      break;
    }
    case 2: {  // Pool.imap: the caller reads a report, then its results
      const auto report = record<detail::IMapReport>(bytes, ok);
      if (ok) items<double>(report.results);
      if (ok) items<std::string>(report.results);
      break;
    }
    case 3: items<int>(text); break;
    case 4: items<Point>(text); break;
    case 5: items<bool>(text); break;
    case 6: items<std::string>(text); break;
    case 7: items<std::vector<Point>>(text); break;
  }
  return 0;
}
