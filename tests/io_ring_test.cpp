// The loop's io_uring (executor/src/io_ring.hpp, issue 3): requests complete
// through it, cancels and destruction hand every op back exactly once,
// provided buffers are recycled, the epoll set's readiness ends a wait, and
// stream transports use a ring where the kernel offers one. Where io_uring is
// unavailable (old kernel, seccomp, WEFT_IO_URING=0) the ring tests skip and
// the streams run on epoll; the stream suites run under both (CMakeLists).
#include <weft/io.hpp>

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "../executor/src/io_ring.hpp"
#include "weft_test.hpp"

using weft::detail::IoOp;
using weft::detail::IoRing;

namespace {

/// Records what the ring reports for one op.
class RecordingOp final : public IoOp {
 public:
  explicit RecordingOp(const IoRing* ring = nullptr) : ring_(ring) {}
  void complete(int res, std::uint32_t flags) noexcept override {
    results.push_back(res);
    if (res > 0 && ring_) data += std::string(ring_->buffer(res, flags));
  }
  void abandon() noexcept override { ++abandoned; }
  std::vector<int> results;
  std::string data;
  int abandoned = 0;

 private:
  const IoRing* ring_;
};

struct Fds {
  int epoll_fd = ::epoll_create1(EPOLL_CLOEXEC);
  int pair[2] = {-1, -1};
  Fds() { EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair), 0); }
  ~Fds() {
    ::close(pair[0]);
    ::close(pair[1]);
    ::close(epoll_fd);
  }
};

#define RING_OR_SKIP(ring, fds)                                         \
  std::unique_ptr<IoRing> ring = IoRing::create((fds).epoll_fd);        \
  if (!ring)                                                            \
  GTEST_SKIP() << "io_uring is not available here (kernel, seccomp or " \
                  "WEFT_IO_URING=0): the epoll path is tested instead"

void wait_until(IoRing& ring, const std::function<bool()>& done) {
  for (int i = 0; i < 1000 && !done(); ++i) ring.wait(10'000'000);
  ASSERT_TRUE(done()) << "no completion within 10 s";
}

std::size_t io_uring_fds() {
  std::size_t n = 0;
  for (const auto& entry : std::filesystem::directory_iterator("/proc/self/fd")) {
    std::error_code ec;
    auto target = std::filesystem::read_symlink(entry.path(), ec);
    if (!ec && target.string().find("io_uring") != std::string::npos) ++n;
  }
  return n;
}

}  // namespace

TEST(IoRing, SendAndRecvCompleteThroughTheRing) {
  Fds fds;
  RING_OR_SKIP(ring, fds);
  RecordingOp send, recv(ring.get());
  const std::string message = "hello through the ring";
  ring->prep_recv(recv, fds.pair[1]);
  ring->prep_send(send, fds.pair[0], message.data(), message.size());
  EXPECT_EQ(ring->active_ops(), 2u);
  wait_until(*ring, [&] { return !send.results.empty() && !recv.results.empty(); });
  EXPECT_EQ(send.results, std::vector<int>{static_cast<int>(message.size())});
  EXPECT_EQ(recv.data, message);
  EXPECT_EQ(ring->active_ops(), 0u);
  EXPECT_GE(ring->stats().completions, 2u);
}

TEST(IoRing, RecvWaitsForDataAndSeesEndOfFile) {
  Fds fds;
  RING_OR_SKIP(ring, fds);
  RecordingOp recv(ring.get());
  ring->prep_recv(recv, fds.pair[1]);
  ring->wait(0);
  EXPECT_TRUE(recv.results.empty());  // nothing sent yet: the recv stays outstanding
  ::shutdown(fds.pair[0], SHUT_WR);
  wait_until(*ring, [&] { return !recv.results.empty(); });
  EXPECT_EQ(recv.results, std::vector<int>{0});
}

TEST(IoRing, CancelEndsAnOutstandingRecvOnce) {
  Fds fds;
  RING_OR_SKIP(ring, fds);
  RecordingOp recv(ring.get());
  ring->prep_recv(recv, fds.pair[1]);
  ring->wait(0);
  ring->prep_cancel(recv);
  wait_until(*ring, [&] { return !recv.results.empty(); });
  EXPECT_EQ(recv.results, std::vector<int>{-ECANCELED});
  EXPECT_EQ(recv.abandoned, 0);
  EXPECT_EQ(ring->active_ops(), 0u);
  ring->prep_cancel(recv);  // inactive: nothing to cancel, nothing reported
  ring->wait(0);
  EXPECT_EQ(recv.results.size(), 1u);
}

TEST(IoRing, DestructionAbandonsOutstandingOpsExactlyOnce) {
  Fds fds;
  RecordingOp first, second;
  {
    RING_OR_SKIP(ring, fds);
    ring->prep_recv(first, fds.pair[0]);
    ring->prep_recv(second, fds.pair[1]);
    ring->wait(0);
  }
  EXPECT_EQ(first.abandoned, 1);
  EXPECT_EQ(second.abandoned, 1);
  EXPECT_TRUE(first.results.empty());
  EXPECT_TRUE(second.results.empty());
}

TEST(IoRing, BuffersAreRecycledAcrossManyRecvs) {
  Fds fds;
  RING_OR_SKIP(ring, fds);
  // Far more completions than the ring has buffers (256).
  const int rounds = static_cast<int>(weft::testing::scaled(2000));
  RecordingOp send, recv(ring.get());
  std::string expected;
  for (int i = 0; i < rounds; ++i) {
    std::string message = "message " + std::to_string(i) + ";";
    expected += message;
    ring->prep_send(send, fds.pair[0], message.data(), message.size());
    wait_until(*ring, [&] { return send.results.size() == static_cast<std::size_t>(i + 1); });
    ring->prep_recv(recv, fds.pair[1]);
    wait_until(*ring, [&] { return recv.results.size() == static_cast<std::size_t>(i + 1); });
  }
  EXPECT_EQ(recv.data, expected);
}

TEST(IoRing, EpollReadinessEndsAWait) {
  Fds fds;
  int efd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.fd = efd;
  ASSERT_EQ(::epoll_ctl(fds.epoll_fd, EPOLL_CTL_ADD, efd, &ev), 0);
  {
    RING_OR_SKIP(ring, fds);
    ring->wait(0);  // arms the watch on the epoll set
    std::thread writer([efd] {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
      std::uint64_t one = 1;
      EXPECT_EQ(::write(efd, &one, sizeof one), static_cast<ssize_t>(sizeof one));
    });
    bool fired = false;
    for (int i = 0; i < 100 && !fired; ++i) fired = ring->wait(-1);
    writer.join();
    EXPECT_TRUE(fired);
  }
  ::close(efd);
}

TEST(IoRing, TheEnvironmentCanTurnItOff) {
  Fds fds;
  ::setenv("WEFT_IO_URING", "0", 1);
  EXPECT_EQ(IoRing::create(fds.epoll_fd), nullptr);
  ::unsetenv("WEFT_IO_URING");
}

// A stream over a socket goes through the loop's ring when one can be made.
WEFT_TEST(IoRing, StreamTransportsUseTheLoopsRing) {
  Fds fds;
  const bool available = IoRing::create(fds.epoll_fd) != nullptr;
  const std::size_t before = io_uring_fds();
  weft::ClientHandler handler = [](weft::StreamReader r, weft::StreamWriter w) -> weft::Coro<void> {
    std::string line = co_await r.readline();
    w.write(line);
    co_await w.drain();
    w.close();
  };
  weft::Server server = co_await weft::start_server(handler, "127.0.0.1", 0);
  auto [r, w] = co_await weft::open_connection("127.0.0.1", server.sockets().at(0).port());
  w.write("ping\n");
  CO_ASSERT_EQ(co_await r.readline(), std::string("ping\n"));
  CO_ASSERT_EQ(io_uring_fds(), before + (available ? 1 : 0));
  w.close();
  server.close();
  co_await server.wait_closed();
}
