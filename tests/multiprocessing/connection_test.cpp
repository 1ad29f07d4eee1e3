// Pipe and Connection: transferable types, EOF, broken pipes, one-way ends,
// large messages, and frames that cannot be decoded.
#include "concur/multiprocessing/connection.hpp"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <map>
#include <optional>
#include <string>
#include <system_error>
#include <thread>
#include <tuple>
#include <variant>
#include <vector>

#include "concur/multiprocessing/process.hpp"
#include "multiprocessing/fork_support.hpp"
#include "multiprocessing/hygiene.hpp"

namespace {

namespace mp = concur::multiprocessing;
using namespace concur::testing;

class ConnectionTest : public HygieneTest {};

struct Point {
  int x;
  double y;
};

struct Person {
  std::string name;
  std::vector<int> scores;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(name, scores);
  }
  bool operator==(const Person&) const = default;
};

TEST_F(ConnectionTest, SendAndReceiveTriviallyCopyable) {
  auto [a, b] = mp::Pipe<Point>();
  a.send(Point{3, 4.5});
  const Point p = b.recv();
  EXPECT_EQ(p.x, 3);
  EXPECT_EQ(p.y, 4.5);
}

TEST_F(ConnectionTest, DuplexWorksBothWays) {
  auto [a, b] = mp::Pipe<int>();
  a.send(1);
  b.send(2);
  EXPECT_EQ(b.recv(), 1);
  EXPECT_EQ(a.recv(), 2);
}

TEST_F(ConnectionTest, SerializedTypes) {
  {
    auto [a, b] = mp::Pipe<std::string>();
    a.send("hello");
    a.send("");
    EXPECT_EQ(b.recv(), "hello");
    EXPECT_EQ(b.recv(), "");
  }
  {
    using Mixed = std::tuple<std::map<std::string, int>, std::optional<double>,
                             std::variant<int, std::string>, std::vector<std::pair<int, int>>>;
    auto [a, b] = mp::Pipe<Mixed>();
    const Mixed sent{{{"a", 1}, {"b", 2}}, 2.5, std::string("v"), {{1, 2}, {3, 4}}};
    a.send(sent);
    EXPECT_EQ(b.recv(), sent);
  }
  {
    auto [a, b] = mp::Pipe<Person>();
    a.send(Person{"ada", {1, 2, 3}});
    EXPECT_EQ(b.recv(), (Person{"ada", {1, 2, 3}}));
  }
}

TEST_F(ConnectionTest, RecvAfterThePeerClosedIsEOFError) {
  auto [a, b] = mp::Pipe<int>();
  a.send(7);
  a.close();
  EXPECT_EQ(b.recv(), 7);  // what was sent is still delivered
  EXPECT_THROW(b.recv(), concur::EOFError);
}

TEST_F(ConnectionTest, SendToAClosedPeerIsBrokenPipeNotSigpipe) {
  auto [a, b] = mp::Pipe<int>();
  b.close();
  // If SIGPIPE were raised, this process would die here.
  EXPECT_THROW(a.send(1), concur::BrokenPipeError);
}

TEST_F(ConnectionTest, OneWayPipeEnds) {
  auto [reader, writer] = mp::Pipe<int>(false);
  writer.send(5);
  EXPECT_EQ(reader.recv(), 5);
  EXPECT_THROW(reader.send(1), std::logic_error);
  EXPECT_THROW(writer.recv(), std::logic_error);
  EXPECT_THROW(writer.poll(), std::logic_error);
}

TEST_F(ConnectionTest, PollNeverBlocksAndHonoursItsTimeout) {
  auto [a, b] = mp::Pipe<int>();
  EXPECT_FALSE(b.poll());
  const auto start = std::chrono::steady_clock::now();
  EXPECT_FALSE(b.poll(50ms));
  EXPECT_GE(seconds_since(start), 0.049);
  EXPECT_FALSE(b.poll(-1s));
  a.send(1);
  EXPECT_TRUE(b.poll());
  EXPECT_TRUE(b.poll(kTestTimeout));
  EXPECT_EQ(b.recv(), 1);
  a.close();
  EXPECT_TRUE(b.poll());  // EOF is readable
}

TEST_F(ConnectionTest, ClosedConnectionRefusesWithEBADF) {
  auto [a, b] = mp::Pipe<int>();
  a.close();
  EXPECT_TRUE(a.closed());
  EXPECT_FALSE(b.closed());
  a.close();  // twice: nothing
  try {
    a.send(1);
    FAIL();
  } catch (const std::system_error& e) {
    EXPECT_EQ(e.code().value(), EBADF);
  }
  EXPECT_THROW(a.recv(), std::system_error);
  EXPECT_THROW(a.fileno(), std::system_error);
}

TEST_F(ConnectionTest, CopiesReferToTheSameEnd) {
  auto [a, b] = mp::Pipe<int>();
  mp::Connection<int> a2 = a;
  a2.send(3);
  EXPECT_EQ(b.recv(), 3);
  EXPECT_EQ(a2.fileno(), a.fileno());
  a2.close();
  EXPECT_TRUE(a.closed());
}

TEST_F(ConnectionTest, SendBytesAndRecvBytes) {
  auto [a, b] = mp::Pipe<int>();
  const std::vector<std::byte> bytes{std::byte{1}, std::byte{2}, std::byte{3}};
  a.send_bytes(bytes);
  EXPECT_EQ(b.recv_bytes(), bytes);
  a.send_bytes({});
  EXPECT_TRUE(b.recv_bytes().empty());
  a.send_bytes(bytes);
  EXPECT_THROW(b.recv(), concur::FrameError);  // raw bytes are not an int message
}

TEST_F(ConnectionTest, WrongTypeIsAFrameError) {
  auto [c, d] = mp::Pipe<std::string>();
  c.send("text");
  // Reinterpret d's descriptor as carrying ints: the type tag differs.
  const int fd = ::dup(d.fileno());
  auto ints = mp::Connection<int>(std::make_shared<concur::detail::Endpoint>(fd, true, true));
  EXPECT_THROW(ints.recv(), concur::FrameError);
}

TEST_F(ConnectionTest, MessageLargerThan64MiB) {
  auto [a, b] = mp::Pipe<std::vector<char>>();
  std::vector<char> big((std::size_t{65} << 20) + 123);
  for (std::size_t i = 0; i < big.size(); i += 4096) big[i] = static_cast<char>(i / 4096);
  std::thread sender([&, a = a]() mutable { a.send(big); });
  const std::vector<char> got = b.recv();
  sender.join();
  EXPECT_EQ(got, big);
}

TEST_F(ConnectionTest, BetweenProcesses) {
  auto [parent_end, child_end] = mp::Pipe<std::string>();
  mp::Process p([child_end]() mutable {
    const std::string in = child_end.recv();
    child_end.send(in + " back");
  });
  p.start();
  child_end.close();
  parent_end.send("there");
  EXPECT_EQ(parent_end.recv(), "there back");
  p.join();
  EXPECT_EQ(p.exitcode(), 0);
}

}  // namespace
