// The transfer layer: round trips of every kind of transferable value, and
// undecodable bytes that must fail cleanly without allocating what they claim.
#include "concur/multiprocessing/transfer.hpp"

#include <gtest/gtest.h>

#include <cstring>
#include <list>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <tuple>
#include <variant>
#include <vector>

namespace {

namespace detail = concur::detail;

struct Plain {
  int a;
  char b[3];
  double c;
};

struct WithSerialize {
  std::string name;
  std::vector<double> values;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(name, values);
  }
  bool operator==(const WithSerialize&) const = default;
};

template <class T>
T round_trip(const T& value) {
  return detail::decode<T>(detail::encode(value));
}

TEST(Transfer, TriviallyCopyableCrossesAsItsBytes) {
  static_assert(concur::multiprocessing::trivially_transferable<Plain>);
  const Plain p{1, {'x', 'y', 'z'}, 2.5};
  EXPECT_EQ(detail::encode(p).size(), sizeof(Plain));
  const Plain q = round_trip(p);
  EXPECT_EQ(q.a, 1);
  EXPECT_EQ(q.b[2], 'z');
  EXPECT_EQ(q.c, 2.5);
}

TEST(Transfer, StandardTypesRoundTrip) {
  EXPECT_EQ(round_trip(std::string("text")), "text");
  EXPECT_EQ(round_trip(std::vector<std::string>{"a", "", "c"}),
            (std::vector<std::string>{"a", "", "c"}));
  EXPECT_EQ(round_trip(std::map<int, std::list<int>>{{1, {2, 3}}}),
            (std::map<int, std::list<int>>{{1, {2, 3}}}));
  EXPECT_EQ(round_trip(std::set<std::string>{"x", "y"}), (std::set<std::string>{"x", "y"}));
  EXPECT_EQ(round_trip(std::optional<std::string>{}), std::nullopt);
  EXPECT_EQ(round_trip(std::variant<int, std::string>{std::string("v")}),
            (std::variant<int, std::string>{std::string("v")}));
  EXPECT_EQ(round_trip(std::make_tuple(1, std::string("two"), 3.0)),
            std::make_tuple(1, std::string("two"), 3.0));
  EXPECT_EQ(round_trip(std::pair<std::string, int>{"k", 9}), (std::pair<std::string, int>{"k", 9}));
}

TEST(Transfer, UserTypeWithSerialize) {
  const WithSerialize w{"w", {1.5, 2.5}};
  EXPECT_EQ(round_trip(w), w);
}

TEST(Transfer, WrongSizeForATriviallyCopyableTypeIsAFrameError) {
  const std::vector<std::byte> three(3);
  EXPECT_THROW(detail::decode<int>(three), concur::FrameError);
}

TEST(Transfer, TruncatedSerializedValueIsAFrameError) {
  const auto bytes = detail::encode(std::string("hello world"));
  ASSERT_GT(bytes.size(), 3u);
  const std::vector<std::byte> cut(bytes.begin(), bytes.end() - 3);
  EXPECT_THROW(detail::decode<std::string>(cut), concur::FrameError);
}

TEST(Transfer, LeftoverBytesAreAFrameError) {
  auto bytes = detail::encode(std::string("x"));
  bytes.push_back(std::byte{0});
  EXPECT_THROW(detail::decode<std::string>(bytes), concur::FrameError);
}

TEST(Transfer, AHugeClaimedSizeFailsWithoutAllocatingIt) {
  // A vector claiming 2^50 ints, followed by 8 bytes.
  std::vector<std::byte> bytes(16);
  const std::uint64_t claimed = std::uint64_t{1} << 50;
  std::memcpy(bytes.data(), &claimed, 8);
  EXPECT_THROW(detail::decode<std::vector<int>>(bytes), concur::FrameError);
  EXPECT_THROW(detail::decode<std::string>(bytes), concur::FrameError);
  EXPECT_THROW((detail::decode<std::map<int, int>>(bytes)), concur::FrameError);
}

TEST(Transfer, TypeTagsDifferByType) {
  EXPECT_NE(detail::type_tag<int>(), detail::type_tag<long>());
  EXPECT_NE(detail::type_tag<std::string>(), detail::type_tag<std::vector<char>>());
  EXPECT_EQ(detail::type_tag<int>(), detail::type_tag<int>());
}

}  // namespace

namespace {

TEST(Transfer, ABoolByteOtherThanZeroOrOneIsAFrameErrorNotUndefinedBehaviour) {
  // Found by tests/fuzz/frame_fuzz.cpp: an optional's "engaged" flag of 13.
  std::vector<std::byte> bytes(1, std::byte{13});
  EXPECT_THROW(concur::detail::decode<std::optional<long>>(bytes), concur::FrameError);
}

}  // namespace
