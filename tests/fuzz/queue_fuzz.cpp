// libFuzzer: mp::Queue's record writer and reader (detail::SharedQueue):
// the ring's length-prefixed records, which may wrap around its end, and
// the spill log's records, with the switch between the two, the log's
// truncation and the punching of its consumed pages.
//
// The input is a program run against a model (a std::deque):
//   byte 0          maxsize: 0 (unbounded) or 1..15
//   then per step   op = byte & 7:
//     0..3  put an item: its size from the next two bytes, scaled by op
//           (up to 255 B, 64 KiB, 128 KiB: the ring's limit is 64 KiB),
//           its bytes made from its number; refused only when full
//     4..5  get: must give the model's oldest item, byte for byte
//     6     task_done: true exactly while items were put and not done
//     7     qsize, full and unfinished against the model
// and at the end every item left is taken and checked.
// Anything but agreement with the model is a bug. Seeds:
// tests/fuzz/corpus/queue/.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <deque>
#include <memory>
#include <span>
#include <vector>

#include "concur/detail/deadline.hpp"
#include "concur/multiprocessing/queue.hpp"

namespace {

namespace detail = concur::detail;

[[noreturn]] void fail() { __builtin_trap(); }

struct Item {
  std::uint32_t size;
  std::uint32_t seed;
};

// An item's bytes: its number in every byte, and at both ends its number
// and size in full (cheap to make and compare, and no two items alike).
void fill(std::vector<std::byte>& out, const Item& item) {
  out.assign(item.size, static_cast<std::byte>(item.seed));
  if (item.size >= 8) {
    std::memcpy(out.data(), &item.seed, 4);
    std::memcpy(out.data() + item.size - 4, &item.size, 4);
  }
}


struct Sink final : detail::ItemSink {
  std::byte* prepare(std::size_t n) override {
    bytes.resize(n);
    return bytes.data();
  }
  std::vector<std::byte> bytes;
};

void take_and_check(detail::SharedQueue& queue, std::deque<Item>& model) {
  Sink sink;
  const bool got = queue.get(sink, detail::Deadline::now_only());
  if (got != !model.empty()) fail();
  if (!got) return;
  const Item want = model.front();
  model.pop_front();
  std::vector<std::byte> expected;
  fill(expected, want);
  if (sink.bytes != expected) fail();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::size_t maxsize = data[0] & 15;
  detail::SharedQueue queue(maxsize);
  std::deque<Item> model;
  std::uint64_t unfinished = 0;
  std::uint32_t counter = 0;
  std::uint64_t traffic = 0;
  std::vector<std::byte> item;
  for (std::size_t at = 1; at < size && traffic < (std::uint64_t{16} << 20);) {
    const int op = data[at++] & 7;
    if (op <= 3) {
      std::uint32_t n = 0;
      if (at < size) n = data[at++];
      if (at < size) n |= std::uint32_t{data[at++]} << 8;
      const std::uint32_t length = op == 0 ? (n & 0xff) : op == 1 ? n : op == 2 ? n + 1 : n * 2;
      const Item next{length, ++counter};
      fill(item, next);
      const bool full = maxsize != 0 && model.size() >= maxsize;
      const bool put = queue.put(item, detail::Deadline::now_only());
      if (put == full) fail();
      if (put) {
        model.push_back(next);
        ++unfinished;
        traffic += length;
      }
    } else if (op <= 5) {
      take_and_check(queue, model);
    } else if (op == 6) {
      if (queue.task_done() != (unfinished > 0)) fail();
      if (unfinished > 0) --unfinished;
    } else {
      if (queue.qsize() != model.size()) fail();
      if (queue.full() != (maxsize != 0 && model.size() >= maxsize)) fail();
      if (queue.unfinished() != unfinished) fail();
    }
  }
  while (!model.empty()) take_and_check(queue, model);
  take_and_check(queue, model);  // and now it is empty
  return 0;
}
