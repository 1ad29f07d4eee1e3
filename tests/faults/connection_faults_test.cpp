// Faults on a Connection: a peer killed mid-message and forged frames
// (garbage, truncated, flipped bytes, lying lengths) end in FrameError in
// the receiver, never in a crash, a hang or a huge allocation.
#include <gtest/gtest.h>
#include <signal.h>
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
using namespace concur::testing;

class ConnectionTest : public HygieneTest {};

TEST_F(ConnectionTest, ChildKilledMidSendGivesAnErrorNotAHang) {
  int fds[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
  auto reader = mp::Connection<std::vector<char>>(
      std::make_shared<concur::detail::Endpoint>(fds[0], true, true));
  const pid_t child = fork_child([&] {
    // A header promising 1 MiB, then a little of it, then death.
    std::byte header[32];
    concur::detail::write_header(header, concur::detail::type_tag<std::vector<char>>(), 1 << 20, 0);
    if (::write(fds[1], header, sizeof header) != sizeof header) return 1;
    char some[100] = {};
    if (::write(fds[1], some, sizeof some) != sizeof some) return 1;
    ::kill(::getpid(), SIGKILL);
    return 0;
  });
  ::close(fds[1]);
  EXPECT_THROW(reader.recv(), concur::FrameError);
  wait_child(child);
}

// Writes raw bytes into a Connection's peer to forge bad frames.
class ForgedFrame : public ConnectionTest {
 protected:
  void SetUp() override {
    ConnectionTest::SetUp();
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds_), 0);
    reader_ = std::make_shared<concur::detail::Endpoint>(fds_[0], true, true);
  }
  void TearDown() override {
    if (fds_[1] >= 0) ::close(fds_[1]);
    reader_.reset();
    ConnectionTest::TearDown();
  }
  void write_raw(const void* data, std::size_t n) {
    ASSERT_EQ(::write(fds_[1], data, n), static_cast<ssize_t>(n));
  }
  void close_writer() {
    ::close(fds_[1]);
    fds_[1] = -1;
  }
  mp::Connection<std::string> reader() { return mp::Connection<std::string>(reader_); }

  int fds_[2] = {-1, -1};
  std::shared_ptr<concur::detail::Endpoint> reader_;
};

TEST_F(ForgedFrame, GarbageIsAFrameError) {
  write_raw("not a frame at all, just text....", 32);
  EXPECT_THROW(reader().recv(), concur::FrameError);
}

TEST_F(ForgedFrame, TruncatedHeaderIsAFrameError) {
  write_raw("CCF1", 4);
  close_writer();
  EXPECT_THROW(reader().recv(), concur::FrameError);
}

TEST_F(ForgedFrame, FlippedPayloadByteIsAFrameError) {
  const std::vector<std::byte> payload = concur::detail::encode(std::string("payload"));
  std::byte header[32];
  concur::detail::write_header(header, concur::detail::type_tag<std::string>(), payload.size(),
                               concur::detail::crc32c(payload));
  std::vector<std::byte> bad = payload;
  bad.back() ^= std::byte{0x40};
  write_raw(header, sizeof header);
  write_raw(bad.data(), bad.size());
  EXPECT_THROW(reader().recv(), concur::FrameError);
}

TEST_F(ForgedFrame, FlippedHeaderByteIsAFrameError) {
  const std::vector<std::byte> payload = concur::detail::encode(std::string("x"));
  std::byte header[32];
  concur::detail::write_header(header, concur::detail::type_tag<std::string>(), payload.size(),
                               concur::detail::crc32c(payload));
  header[13] ^= std::byte{0x01};  // the length
  write_raw(header, sizeof header);
  write_raw(payload.data(), payload.size());
  EXPECT_THROW(reader().recv(), concur::FrameError);
}

TEST_F(ForgedFrame, OversizedLengthIsRefusedBeforeAllocating) {
  std::byte header[32];
  concur::detail::write_header(header, concur::detail::type_tag<std::string>(),
                               concur::detail::kMaxFrameBytes + 1, 0);
  write_raw(header, sizeof header);
  EXPECT_THROW(reader().recv(), concur::FrameError);
}

TEST_F(ForgedFrame, ValidHeaderWithUndecodablePayloadIsAFrameError) {
  // A std::string whose encoded length claims more bytes than follow.
  std::vector<std::byte> payload(8);
  const std::uint64_t claimed = 1000;
  std::memcpy(payload.data(), &claimed, 8);
  std::byte header[32];
  concur::detail::write_header(header, concur::detail::type_tag<std::string>(), payload.size(),
                               concur::detail::crc32c(payload));
  write_raw(header, sizeof header);
  write_raw(payload.data(), payload.size());
  EXPECT_THROW(reader().recv(), concur::FrameError);
}

}  // namespace
