// Pipe and Connection: transferable types, EOF, broken pipes, one-way ends,
// poll and its timeouts, raw bytes, large messages, handles, threads and
// processes.
#include "concur/multiprocessing/connection.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cstring>
#include <map>
#include <optional>
#include <string>
#include <system_error>
#include <thread>
#include <tuple>
#include <variant>
#include <vector>

#include "multiprocessing/fork_support.hpp"
#include "multiprocessing/hygiene.hpp"

namespace {

namespace mp = concur::multiprocessing;
namespace detail = concur::detail;
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

std::vector<std::byte> bytes_of(const std::string& s) {
  const auto b = std::as_bytes(std::span(s));
  return {b.begin(), b.end()};
}

bool fd_open(int fd) { return ::fcntl(fd, F_GETFD) != -1; }

TEST_F(ConnectionTest, SendAndReceiveTriviallyCopyable) {
  auto pipe = mp::Pipe<Point>();
  auto& a = pipe.first;
  auto& b = pipe.second;
  a.send(Point{3, 4.5});
  const Point p = b.recv();
  EXPECT_EQ(p.x, 3);
  EXPECT_EQ(p.y, 4.5);
}

TEST_F(ConnectionTest, LargeTriviallyCopyableStruct) {
  using Big = std::array<std::uint64_t, 2048>;  // 16 KiB
  auto pipe = mp::Pipe<Big>();
  auto& a = pipe.first;
  auto& b = pipe.second;
  Big big{};
  for (std::size_t i = 0; i < big.size(); ++i) big[i] = i * 7;
  a.send(big);
  EXPECT_EQ(b.recv(), big);
}

TEST_F(ConnectionTest, DuplexWorksBothWays) {
  auto pipe = mp::Pipe<int>();
  auto& a = pipe.first;
  auto& b = pipe.second;
  EXPECT_TRUE(a.readable() && a.writable() && b.readable() && b.writable());
  a.send(1);
  b.send(2);
  EXPECT_EQ(b.recv(), 1);
  EXPECT_EQ(a.recv(), 2);
}

TEST_F(ConnectionTest, SerializedTypes) {
  {
    auto pipe = mp::Pipe<std::string>();
    auto& a = pipe.first;
    auto& b = pipe.second;
    a.send("hello");
    a.send("");
    EXPECT_EQ(b.recv(), "hello");
    EXPECT_EQ(b.recv(), "");
  }
  {
    using Mixed = std::tuple<std::map<std::string, int>, std::optional<double>,
                             std::variant<int, std::string>, std::vector<std::pair<int, int>>>;
    auto pipe = mp::Pipe<Mixed>();
    auto& a = pipe.first;
    auto& b = pipe.second;
    const Mixed sent{{{"a", 1}, {"b", 2}}, 2.5, std::string("v"), {{1, 2}, {3, 4}}};
    a.send(sent);
    EXPECT_EQ(b.recv(), sent);
  }
  {
    auto pipe = mp::Pipe<Person>();
    auto& a = pipe.first;
    auto& b = pipe.second;
    a.send(Person{"ada", {1, 2, 3}});
    EXPECT_EQ(b.recv(), (Person{"ada", {1, 2, 3}}));
  }
  {
    auto pipe = mp::Pipe<std::vector<Point>>();
    auto& a = pipe.first;
    auto& b = pipe.second;
    a.send({{1, 1.5}, {2, 2.5}});
    const auto got = b.recv();
    ASSERT_EQ(got.size(), 2u);
    EXPECT_EQ(got[1].x, 2);
    EXPECT_EQ(got[1].y, 2.5);
  }
}

TEST_F(ConnectionTest, RecvAfterThePeerClosedIsEOFError) {
  auto pipe = mp::Pipe<int>();
  auto& a = pipe.first;
  auto& b = pipe.second;
  a.send(7);
  a.send(8);
  a.close();
  EXPECT_EQ(b.recv(), 7);  // what was sent is still delivered
  EXPECT_EQ(b.recv(), 8);
  EXPECT_THROW(b.recv(), concur::EOFError);
  EXPECT_THROW(b.recv(), concur::EOFError);  // and stays so
  EXPECT_THROW(b.recv_bytes(), concur::EOFError);
}

TEST_F(ConnectionTest, RecvAfterThePeerProcessEndedIsEOFError) {
  auto pipe = mp::Pipe<std::string>();
  auto& mine = pipe.first;
  auto& theirs = pipe.second;
  const pid_t child = fork_child([&] {
    theirs.send("last words");
    return 0;  // the child's descriptors close as it exits
  });
  theirs.close();
  EXPECT_EQ(mine.recv(), "last words");
  EXPECT_THROW(mine.recv(), concur::EOFError);
  EXPECT_EQ(exit_code(wait_child(child)), 0);
}

TEST_F(ConnectionTest, SendToAClosedPeerIsBrokenPipeNeverSigpipe) {
  struct sigaction old {};
  struct sigaction dfl {};
  dfl.sa_handler = SIG_DFL;
  ::sigaction(SIGPIPE, &dfl, &old);  // a SIGPIPE would kill this process
  {
    auto pipe = mp::Pipe<int>();
    auto& a = pipe.first;
    auto& b = pipe.second;
    b.close();
    EXPECT_THROW(a.send(1), concur::BrokenPipeError);
    EXPECT_THROW(a.send_bytes(bytes_of("x")), concur::BrokenPipeError);
  }
  {
    // The peer closed with unread data: the kernel resets the connection.
    auto pipe = mp::Pipe<int>();
    auto& a = pipe.first;
    auto& b = pipe.second;
    b.send(1);
    a.send(2);
    b.close();
    EXPECT_THROW(
        {
          for (int i = 0; i < 1000; ++i) a.send(i);
        },
        concur::BrokenPipeError);
  }
  {
    // The peer's process ended.
    auto pipe = mp::Pipe<std::string>();
    auto& mine = pipe.first;
    auto& theirs = pipe.second;
    const pid_t child = fork_child([] { return 0; });
    theirs.close();
    EXPECT_EQ(exit_code(wait_child(child)), 0);
    EXPECT_THROW(mine.send(std::string(1 << 20, 'x')), concur::BrokenPipeError);
  }
  ::sigaction(SIGPIPE, &old, nullptr);
}

TEST_F(ConnectionTest, OneWayPipeEnds) {
  auto pipe = mp::Pipe<int>(false);
  auto& reader = pipe.first;
  auto& writer = pipe.second;
  EXPECT_TRUE(reader.readable());
  EXPECT_FALSE(reader.writable());
  EXPECT_FALSE(writer.readable());
  EXPECT_TRUE(writer.writable());
  writer.send(5);
  EXPECT_EQ(reader.recv(), 5);
  EXPECT_THROW(reader.send(1), std::logic_error);
  EXPECT_THROW(reader.send_bytes(bytes_of("x")), std::logic_error);
  EXPECT_THROW(writer.recv(), std::logic_error);
  EXPECT_THROW(writer.recv_bytes(), std::logic_error);
  EXPECT_THROW(writer.poll(), std::logic_error);
  EXPECT_THROW(writer.poll(1s), std::logic_error);
  writer.close();
  EXPECT_THROW(reader.recv(), concur::EOFError);
}

TEST_F(ConnectionTest, PollNeverBlocksAndHonoursItsTimeout) {
  auto pipe = mp::Pipe<int>();
  auto& a = pipe.first;
  auto& b = pipe.second;
  EXPECT_FALSE(b.poll());
  auto start = std::chrono::steady_clock::now();
  EXPECT_FALSE(b.poll(50ms));
  EXPECT_GE(seconds_since(start), 0.049);
  EXPECT_LT(seconds_since(start), 5.0);
  start = std::chrono::steady_clock::now();
  EXPECT_FALSE(b.poll(0s));
  EXPECT_FALSE(b.poll(-1s));  // negative: one look, no wait, no error
  EXPECT_FALSE(b.poll(std::chrono::duration<double>(-0.5)));
  EXPECT_LT(seconds_since(start), 1.0);
  a.send(1);
  EXPECT_TRUE(b.poll());
  EXPECT_TRUE(b.poll(kTestTimeout));
  EXPECT_TRUE(b.poll(-1s));
  EXPECT_TRUE(b.poll(std::chrono::hours::max()));  // forever, without overflow
  EXPECT_EQ(b.recv(), 1);
  EXPECT_FALSE(b.poll());
  a.close();
  EXPECT_TRUE(b.poll());  // EOF is readable
}

TEST_F(ConnectionTest, PollWithATimeoutWakesWhenDataArrives) {
  auto pipe = mp::Pipe<int>();
  auto& a = pipe.first;
  auto& b = pipe.second;
  std::atomic<long> tid{0};
  bool ready = false;
  std::thread poller([&, b = b]() mutable {
    tid = this_tid();
    ready = b.poll(kTestTimeout);
  });
  ASSERT_TRUE(eventually([&] { return tid != 0; }));
  ASSERT_TRUE(blocked_in_kernel(tid));
  a.send(3);
  poller.join();
  EXPECT_TRUE(ready);
  EXPECT_EQ(b.recv(), 3);
}

TEST_F(ConnectionTest, ClosedConnectionRefusesWithEBADF) {
  auto pipe = mp::Pipe<int>();
  auto& a = pipe.first;
  auto& b = pipe.second;
  const int fd = a.fileno();
  a.close();
  EXPECT_FALSE(fd_open(fd));
  EXPECT_TRUE(a.closed());
  EXPECT_FALSE(b.closed());
  a.close();  // twice: nothing
  auto expect_ebadf = [](auto&& call) {
    try {
      call();
      ADD_FAILURE() << "no exception";
    } catch (const std::system_error& e) {
      EXPECT_EQ(e.code().value(), EBADF) << e.what();
    }
  };
  expect_ebadf([&] { a.send(1); });
  expect_ebadf([&] { (void)a.recv(); });
  expect_ebadf([&] { (void)a.poll(); });
  expect_ebadf([&] { (void)a.poll(1s); });
  expect_ebadf([&] { a.send_bytes(bytes_of("x")); });
  expect_ebadf([&] { (void)a.recv_bytes(); });
  expect_ebadf([&] { (void)a.fileno(); });
  EXPECT_THROW(b.recv(), concur::EOFError);
}

TEST_F(ConnectionTest, CopiesReferToTheSameEnd) {
  auto pipe = mp::Pipe<int>();
  auto& a = pipe.first;
  auto& b = pipe.second;
  mp::Connection<int> a2 = a;
  a2.send(3);
  EXPECT_EQ(b.recv(), 3);
  EXPECT_EQ(a2.fileno(), a.fileno());
  a2.close();
  EXPECT_TRUE(a.closed());
  EXPECT_THROW(b.recv(), concur::EOFError);
}

TEST_F(ConnectionTest, TheDescriptorClosesWithTheLastHandle) {
  int fd = -1;
  std::optional<mp::Connection<int>> keep;
  {
    auto pipe = mp::Pipe<int>();
    auto& a = pipe.first;
    auto& b = pipe.second;
    fd = a.fileno();
    keep.emplace(a);
    b.close();
  }
  EXPECT_TRUE(fd_open(fd));  // a copy still holds it
  EXPECT_FALSE(keep->closed());
  keep.reset();
  EXPECT_FALSE(fd_open(fd));
}

TEST_F(ConnectionTest, DescriptorsAreCloseOnExec) {
  for (bool duplex : {true, false}) {
    auto pipe = mp::Pipe<int>(duplex);
    auto& a = pipe.first;
    auto& b = pipe.second;
    EXPECT_TRUE(::fcntl(a.fileno(), F_GETFD) & FD_CLOEXEC);
    EXPECT_TRUE(::fcntl(b.fileno(), F_GETFD) & FD_CLOEXEC);
  }
}

TEST_F(ConnectionTest, SendBytesAndRecvBytes) {
  auto pipe = mp::Pipe<int>();
  auto& a = pipe.first;
  auto& b = pipe.second;
  const std::vector<std::byte> bytes{std::byte{1}, std::byte{2}, std::byte{3}};
  a.send_bytes(bytes);
  EXPECT_EQ(b.recv_bytes(), bytes);
  a.send_bytes({});
  EXPECT_TRUE(b.recv_bytes().empty());
  a.send_bytes(bytes);
  EXPECT_THROW(b.recv(), concur::FrameError);  // 3 bytes are not an int
  a.send(5);
  EXPECT_EQ(b.recv(), 5);  // still in step
}

TEST_F(ConnectionTest, SendBytesWithOffsetAndSize) {
  auto pipe = mp::Pipe<int>();
  auto& a = pipe.first;
  auto& b = pipe.second;
  const auto bytes = bytes_of("abcdef");
  a.send_bytes(bytes, 2, 3);
  EXPECT_EQ(b.recv_bytes(), bytes_of("cde"));
  a.send_bytes(bytes, 6, 0);
  EXPECT_TRUE(b.recv_bytes().empty());
  EXPECT_THROW(a.send_bytes(bytes, 7, 0), std::invalid_argument);
  EXPECT_THROW(a.send_bytes(bytes, 2, 5), std::invalid_argument);
  EXPECT_THROW(a.send_bytes(bytes, 0, SIZE_MAX), std::invalid_argument);
  EXPECT_FALSE(b.poll());  // nothing was sent by the refused calls
}

TEST_F(ConnectionTest, RecvBytesReturnsTheEncodingOfASentValue) {
  // As Python's recv_bytes returns the pickle of what send() sent, and
  // recv() unpickles what send_bytes() sent.
  auto pipe = mp::Pipe<std::string>();
  auto& a = pipe.first;
  auto& b = pipe.second;
  a.send("value");
  const std::vector<std::byte> encoded = b.recv_bytes();
  EXPECT_EQ(encoded, detail::encode(std::string("value")));
  a.send_bytes(encoded);
  EXPECT_EQ(b.recv(), "value");
}

TEST_F(ConnectionTest, RecvBytesWithMaxlength) {
  auto pipe = mp::Pipe<int>();
  auto& a = pipe.first;
  auto& b = pipe.second;
  a.send_bytes(bytes_of("abc"));
  EXPECT_EQ(b.recv_bytes(3), bytes_of("abc"));
  a.send_bytes(bytes_of("abcd"));
  try {
    (void)b.recv_bytes(3);
    ADD_FAILURE() << "no exception";
  } catch (const std::system_error& e) {
    EXPECT_EQ(e.code().value(), EMSGSIZE) << e.what();
  }
  EXPECT_TRUE(b.closed());  // as in Python
}

TEST_F(ConnectionTest, AFrameOfAnotherTypeIsAFrameErrorAndTheStreamStaysUsable) {
  auto pipe = mp::Pipe<std::string>();
  auto& c = pipe.first;
  auto& d = pipe.second;
  c.send("text");
  c.send("more");
  // Read d's socket as a Connection of ints: the type tag differs.
  auto ints =
      mp::Connection<int>(std::make_shared<detail::Endpoint>(::dup(d.fileno()), true, true));
  EXPECT_THROW(ints.recv(), concur::FrameError);
  EXPECT_EQ(d.recv(), "more");  // the refused frame was read past
}

TEST_F(ConnectionTest, MessageLargerThan64MiB) {
  auto pipe = mp::Pipe<std::vector<char>>();
  auto& a = pipe.first;
  auto& b = pipe.second;
  std::vector<char> big((std::size_t{65} << 20) + 123);
  for (std::size_t i = 0; i < big.size(); i += 4096) big[i] = static_cast<char>(i / 4096);
  std::thread sender([&, a = a]() mutable { a.send(big); });
  const std::vector<char> got = b.recv();
  sender.join();
  EXPECT_EQ(got, big);
}

TEST_F(ConnectionTest, MessageLargerThan64MiBBetweenProcesses) {
  auto pipe = mp::Pipe<std::string>();
  auto& mine = pipe.first;
  auto& theirs = pipe.second;
  const std::size_t size = (std::size_t{70} << 20) + 1;
  const pid_t child = fork_child([&] {
    std::string s = theirs.recv();
    if (s.size() != size) return 2;
    s.back() = 'z';
    theirs.send(s);
    return 0;
  });
  theirs.close();
  std::string big(size, 'q');
  mine.send(big);
  const std::string back = mine.recv();
  EXPECT_EQ(back.size(), size);
  EXPECT_EQ(back.back(), 'z');
  EXPECT_EQ(back.front(), 'q');
  EXPECT_EQ(exit_code(wait_child(child)), 0);
}

TEST_F(ConnectionTest, ConcurrentSendersNeverInterleaveFrames) {
  auto pipe = mp::Pipe<std::string>();
  auto& a = pipe.first;
  auto& b = pipe.second;
  constexpr int kThreads = 4;
  constexpr int kEach = 200;
  std::thread reader([&, b = b]() mutable {
    std::vector<int> next(kThreads, 0);
    for (int n = 0; n < kThreads * kEach; ++n) {
      const std::string s = b.recv();
      const int t = s[0] - 'A';
      ASSERT_GE(t, 0);
      ASSERT_LT(t, kThreads);
      // Each thread's messages come whole and in its order.
      ASSERT_EQ(s.size(), static_cast<std::size_t>(1 + (next[t] % 7) * 40000));
      ASSERT_EQ(s.find_first_not_of(s[0]), std::string::npos);
      ++next[t];
    }
  });
  run_threads(kThreads, [&, a = a](int t) mutable {
    for (int i = 0; i < kEach; ++i) {
      a.send(std::string(1 + (i % 7) * 40000, static_cast<char>('A' + t)));
    }
  });
  reader.join();
}

TEST_F(ConnectionTest, CloseWhileAnotherThreadIsInRecv) {
  auto pipe = mp::Pipe<int>();
  auto& a = pipe.first;
  auto& b = pipe.second;
  std::atomic<long> tid{0};
  int got = 0;
  std::thread receiver([&, b = b]() mutable {
    tid = this_tid();
    got = b.recv();
  });
  ASSERT_TRUE(eventually([&] { return tid != 0; }));
  ASSERT_TRUE(blocked_in_kernel(tid));
  b.close();
  EXPECT_TRUE(b.closed());  // at once, for every later call
  EXPECT_THROW(b.poll(), std::system_error);
  a.send(9);  // the running recv still has its descriptor
  receiver.join();
  EXPECT_EQ(got, 9);
}

TEST_F(ConnectionTest, BetweenProcesses) {
  auto pipe = mp::Pipe<std::string>();
  auto& parent_end = pipe.first;
  auto& child_end = pipe.second;
  const pid_t child = fork_child([&] {
    parent_end.close();
    for (;;) {
      std::string in;
      try {
        in = child_end.recv();
      } catch (const concur::EOFError&) {
        return 0;
      }
      child_end.send(in + " back");
    }
  });
  child_end.close();
  for (int i = 0; i < 100; ++i) {
    parent_end.send("there " + std::to_string(i));
    EXPECT_EQ(parent_end.recv(), "there " + std::to_string(i) + " back");
  }
  parent_end.close();
  EXPECT_EQ(exit_code(wait_child(child)), 0);
}

TEST_F(ConnectionTest, MaxMessageBytesIsConfigurable) {
  const auto old = mp::max_message_bytes();
  EXPECT_EQ(old, std::uint64_t{1} << 30);
  auto pipe = mp::Pipe<std::string>();
  auto& a = pipe.first;
  auto& b = pipe.second;
  mp::set_max_message_bytes(1000);
  a.send(std::string(999, 'x'));  // 8 bytes of length + 999
  a.send(std::string(990, 'x'));
  try {
    (void)b.recv();
    ADD_FAILURE() << "no exception";
  } catch (const concur::FrameError& e) {
    EXPECT_NE(std::string(e.what()).find("limit"), std::string::npos) << e.what();
  }
  // The rest of that message is still in the stream: later calls refuse.
  EXPECT_THROW(b.recv(), concur::FrameError);
  mp::set_max_message_bytes(old);
  EXPECT_EQ(mp::max_message_bytes(), old);
}

}  // namespace
