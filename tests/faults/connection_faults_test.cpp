// Faults on a Connection: a peer killed in the middle of a message, and
// forged frames (garbage, truncated, flipped bytes, another type, lying
// lengths, another format version) end in EOFError or FrameError in the
// receiver -- never a crash, a hang, or an allocation of what a header
// claims.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "concur/multiprocessing/connection.hpp"
#include "multiprocessing/fork_support.hpp"
#include "multiprocessing/hygiene.hpp"

namespace {

namespace mp = concur::multiprocessing;
namespace detail = concur::detail;
using namespace concur::testing;

class ConnectionFaults : public HygieneTest {};

TEST_F(ConnectionFaults, PeerKilledInTheMiddleOfASendGivesAnErrorNotAHang) {
  auto pipe = mp::Pipe<std::string>();
  auto& mine = pipe.first;
  auto& theirs = pipe.second;
  const pid_t child = fork_child([&] {
    mine.close();
    theirs.send(std::string(std::size_t{64} << 20, 'x'));  // blocks: nobody reads yet
    return 0;
  });
  theirs.close();
  // The header and the first part arrive; then the sender blocks on a full
  // socket buffer, and dies there.
  ASSERT_TRUE(mine.poll(kTestTimeout));
  ASSERT_TRUE(eventually([&] {
    const std::string path = "/proc/" + std::to_string(child) + "/stat";
    return proc_state(path) == 'S';
  }));
  ::kill(child, SIGKILL);
  wait_child(child);
  try {
    (void)mine.recv();
    ADD_FAILURE() << "no exception";
  } catch (const concur::FrameError& e) {
    EXPECT_NE(std::string(e.what()).find("truncated"), std::string::npos) << e.what();
  }
  EXPECT_THROW(mine.recv(), concur::EOFError);  // nothing more will come
}

TEST_F(ConnectionFaults, PeerKilledBetweenMessagesGivesEOF) {
  auto pipe = mp::Pipe<int>();
  auto& mine = pipe.first;
  auto& theirs = pipe.second;
  const pid_t child = fork_child([&] {
    theirs.send(1);
    ::raise(SIGKILL);
    return 0;
  });
  theirs.close();
  EXPECT_EQ(mine.recv(), 1);
  EXPECT_THROW(mine.recv(), concur::EOFError);
  wait_child(child);
}

TEST_F(ConnectionFaults, ForgedHeaderPromisingMoreThanArrives) {
  int fds[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
  auto reader =
      mp::Connection<std::vector<char>>(std::make_shared<detail::Endpoint>(fds[0], true, true));
  const pid_t child = fork_child([&] {
    // A header promising 1 MiB, then a little of it, then death.
    std::byte header[detail::kFrameHeaderBytes];
    detail::write_header(header, detail::type_tag<std::vector<char>>(), 1 << 20, 0);
    if (::write(fds[1], header, sizeof header) != sizeof header) return 1;
    char some[100] = {};
    if (::write(fds[1], some, sizeof some) != sizeof some) return 1;
    ::raise(SIGKILL);
    return 0;
  });
  ::close(fds[1]);
  EXPECT_THROW(reader.recv(), concur::FrameError);
  wait_child(child);
}

// Writes raw bytes into a Connection's peer socket to forge frames.
class ForgedFrame : public ConnectionFaults {
 protected:
  void SetUp() override {
    ConnectionFaults::SetUp();
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds_), 0);
    reader_ = std::make_shared<detail::Endpoint>(fds_[0], true, true);
  }
  void TearDown() override {
    if (fds_[1] >= 0) ::close(fds_[1]);
    reader_.reset();
    ConnectionFaults::TearDown();
  }
  void write_raw(const void* data, std::size_t n) {
    ASSERT_EQ(::write(fds_[1], data, n), static_cast<ssize_t>(n));
  }
  template <class T>
  void write_frame(std::uint64_t tag, const std::vector<std::byte>& payload, T&& tamper) {
    std::vector<std::byte> frame(detail::kFrameHeaderBytes);
    std::byte header[detail::kFrameHeaderBytes];
    detail::write_header(header, tag, payload.size(), detail::crc32c(payload));
    std::memcpy(frame.data(), header, sizeof header);
    frame.insert(frame.end(), payload.begin(), payload.end());
    tamper(frame);
    write_raw(frame.data(), frame.size());
  }
  void write_good(const std::string& s) {
    write_frame(detail::type_tag<std::string>(), detail::encode(s), [](auto&) {});
  }
  void close_writer() {
    ::close(fds_[1]);
    fds_[1] = -1;
  }
  mp::Connection<std::string> reader() { return mp::Connection<std::string>(reader_); }

  int fds_[2] = {-1, -1};
  std::shared_ptr<detail::Endpoint> reader_;
};

TEST_F(ForgedFrame, GarbageIsAFrameError) {
  write_raw("not a frame at all, just text....", 32);
  EXPECT_THROW(reader().recv(), concur::FrameError);
  EXPECT_THROW(reader().recv(), concur::FrameError);  // and the stream is given up
}

TEST_F(ForgedFrame, TruncatedHeaderIsAFrameError) {
  write_raw("CCFR", 4);
  close_writer();
  EXPECT_THROW(reader().recv(), concur::FrameError);
  EXPECT_THROW(reader().recv(), concur::EOFError);
}

TEST_F(ForgedFrame, TruncatedPayloadIsAFrameError) {
  write_frame(detail::type_tag<std::string>(), detail::encode(std::string(1000, 'p')),
              [](std::vector<std::byte>& f) { f.resize(f.size() - 10); });
  close_writer();
  EXPECT_THROW(reader().recv(), concur::FrameError);
  EXPECT_THROW(reader().recv(), concur::EOFError);
}

TEST_F(ForgedFrame, FlippedPayloadByteIsAFrameErrorAndTheNextFrameArrives) {
  write_frame(detail::type_tag<std::string>(), detail::encode(std::string("payload")),
              [](std::vector<std::byte>& f) { f.back() ^= std::byte{0x40}; });
  write_good("next");
  try {
    (void)reader().recv();
    ADD_FAILURE() << "no exception";
  } catch (const concur::FrameError& e) {
    EXPECT_NE(std::string(e.what()).find("checksum"), std::string::npos) << e.what();
  }
  EXPECT_EQ(reader().recv(), "next");
}

TEST_F(ForgedFrame, EveryFlippedHeaderBitIsAFrameError) {
  for (std::size_t bit = 0; bit < detail::kFrameHeaderBytes * 8; ++bit) {
    int fds[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
    auto conn = mp::Connection<std::string>(std::make_shared<detail::Endpoint>(fds[0], true, true));
    const auto payload = detail::encode(std::string("x"));
    std::byte header[detail::kFrameHeaderBytes];
    detail::write_header(header, detail::type_tag<std::string>(), payload.size(),
                         detail::crc32c(payload));
    header[bit / 8] ^= std::byte{static_cast<unsigned char>(1u << (bit % 8))};
    ASSERT_EQ(::write(fds[1], header, sizeof header), static_cast<ssize_t>(sizeof header));
    ASSERT_EQ(::write(fds[1], payload.data(), payload.size()),
              static_cast<ssize_t>(payload.size()));
    ::close(fds[1]);
    EXPECT_THROW(conn.recv(), concur::FrameError) << "bit " << bit;
  }
}

TEST_F(ForgedFrame, AnotherTypeIsAFrameErrorAndTheNextFrameArrives) {
  write_frame(detail::type_tag<int>(), detail::encode(7), [](auto&) {});
  write_good("next");
  try {
    (void)reader().recv();
    ADD_FAILURE() << "no exception";
  } catch (const concur::FrameError& e) {
    EXPECT_NE(std::string(e.what()).find("another type"), std::string::npos) << e.what();
  }
  EXPECT_EQ(reader().recv(), "next");
}

TEST_F(ForgedFrame, AnotherFormatVersionIsAFrameError) {
  write_frame(detail::type_tag<std::string>(), detail::encode(std::string("v")),
              [](std::vector<std::byte>& f) {
                f[4] = std::byte{2};
                // A valid header CRC, so only the version is wrong.
                std::byte header[detail::kFrameHeaderBytes];
                std::memcpy(header, f.data(), sizeof header);
                const std::uint32_t crc = detail::crc32c(std::span<const std::byte>(header, 28));
                std::memcpy(f.data() + 28, &crc, 4);
              });
  try {
    (void)reader().recv();
    ADD_FAILURE() << "no exception";
  } catch (const concur::FrameError& e) {
    EXPECT_NE(std::string(e.what()).find("version"), std::string::npos) << e.what();
  }
}

TEST_F(ForgedFrame, OversizedLengthIsRefusedBeforeAllocating) {
  // 2^62 bytes could never be allocated: the refusal must come first.
  std::byte header[detail::kFrameHeaderBytes];
  detail::write_header(header, detail::type_tag<std::string>(), std::uint64_t{1} << 62, 0);
  write_raw(header, sizeof header);
  try {
    (void)reader().recv();
    ADD_FAILURE() << "no exception";
  } catch (const concur::FrameError& e) {
    EXPECT_NE(std::string(e.what()).find("limit"), std::string::npos) << e.what();
  }
}

TEST_F(ForgedFrame, ALyingLengthBelowTheLimitCostsOnlyWhatArrives) {
  // 900 MiB promised, 1 KiB sent, then the peer closes: a FrameError, after
  // allocating no more than the first growth step (1 MiB).
  std::byte header[detail::kFrameHeaderBytes];
  detail::write_header(header, detail::type_tag<std::string>(), std::uint64_t{900} << 20, 0);
  write_raw(header, sizeof header);
  std::vector<char> some(1024, 'x');
  write_raw(some.data(), some.size());
  close_writer();
  rusage before{}, after{};
  ::getrusage(RUSAGE_SELF, &before);
  EXPECT_THROW(reader().recv(), concur::FrameError);
  ::getrusage(RUSAGE_SELF, &after);
  EXPECT_LT(after.ru_maxrss - before.ru_maxrss, 64 * 1024);  // KiB: far below 900 MiB
}

TEST_F(ForgedFrame, ValidFrameWithAnUndecodablePayloadIsAFrameError) {
  // A std::string whose encoded length claims more bytes than follow.
  std::vector<std::byte> payload(8);
  const std::uint64_t claimed = 1000;
  std::memcpy(payload.data(), &claimed, 8);
  write_frame(detail::type_tag<std::string>(), payload, [](auto&) {});
  write_good("next");
  EXPECT_THROW(reader().recv(), concur::FrameError);
  EXPECT_EQ(reader().recv(), "next");  // the frame itself was whole: still in step
}

TEST_F(ForgedFrame, ABoolThatIsNeitherZeroNorOneIsAFrameError) {
  auto conn = mp::Connection<std::optional<int>>(reader_);
  std::vector<std::byte> payload(5, std::byte{0});
  payload[0] = std::byte{2};
  write_frame(detail::type_tag<std::optional<int>>(), payload, [](auto&) {});
  EXPECT_THROW(conn.recv(), concur::FrameError);
}

TEST_F(ForgedFrame, RawBytesOfTheWrongSizeForATriviallyCopyableType) {
  auto conn = mp::Connection<double>(reader_);
  write_frame(detail::kBytesTag, std::vector<std::byte>(3), [](auto&) {});
  EXPECT_THROW(conn.recv(), concur::FrameError);
}

}  // namespace
