// Networking beyond asyncio's basics (issue 19): graceful close of a
// server's connections (close_clients / abort_clients); reads and writes
// without copies (readinto, read handing its buffer over, writes taking
// strings and vectors over, writelines as one vectored send); adopted
// sockets (sock=, listen_fds), local_addr, socket options; sock_recv_into,
// sock_recvfrom, sock_sendto; Happy Eyeballs (through the address-list seam,
// detail/connect.hpp, with an address that never answers). Run at 1, 2 and 8
// workers, and by ctest on io_uring and on epoll (tests/CMakeLists.txt).
#include <weft/detail/connect.hpp>
#include <weft/detail/fd_stream.hpp>
#include <weft/io.hpp>

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <span>
#include <string>
#include <vector>

#include "weft_test.hpp"

using namespace std::chrono_literals;
using weft::Address;
using weft::Coro;
using weft::StreamReader;
using weft::StreamWriter;

namespace {

class NetWorkers : public weft::testing::WorkersTest {};

// True when awaiting `a` raises Exception (named first: no co_await inside
// a test macro).
template <class Exception, class Awaitable>
Coro<bool> raises(Awaitable a) {
  try {
    (void)co_await std::move(a);
  } catch (const Exception&) {
    co_return true;
  }
  co_return false;
}

// Reads the client's first line, writes `payload` bytes, counts itself
// ready, then reads until EOF (which close_clients / abort_clients deliver).
struct Greeter {
  std::size_t payload;
  std::atomic<std::size_t>* ready;
  Coro<void> operator()(StreamReader r, StreamWriter w) const {
    co_await r.readline();
    w.write(std::string(payload, 'p'));
    ready->fetch_add(1);
    for (;;) {
      std::string more = co_await r.read(4096);
      if (more.empty()) break;
    }
  }
};

Coro<void> wait_until(const std::atomic<std::size_t>& n, std::size_t want) {
  while (n.load() < want) co_await weft::sleep(1ms);
}

Coro<void> closed_within(weft::Server server, std::chrono::seconds limit) {
  auto closed = weft::create_task(server.wait_closed());
  co_await weft::wait_for(closed, limit);
}

}  // namespace

// ------------------------------------------------------------ close_clients

WEFT_TEST_P(NetWorkers, CloseClientsFlushesEveryConnectionThenCloses) {
  constexpr std::size_t kClients = 8;
  const std::size_t payload = 2 * 1024 * 1024;  // more than the socket buffers take
  std::atomic<std::size_t> ready{0};
  weft::ClientHandler handler = Greeter{payload, &ready};
  weft::Server server = co_await weft::start_server(handler, "127.0.0.1", 0);
  const std::uint16_t port = server.sockets().at(0).port();
  std::vector<std::pair<StreamReader, StreamWriter>> clients;
  for (std::size_t i = 0; i < kClients; ++i) {
    auto conn = co_await weft::open_connection("127.0.0.1", port);
    conn.second.write("hi\n");
    clients.push_back(conn);
  }
  co_await wait_until(ready, kClients);
  server.close();
  server.close_clients();
  server.close_clients();  // idempotent
  for (auto& [r, w] : clients) {
    std::string got = co_await r.read(-1);  // everything buffered, then EOF
    EXPECT_EQ(got.size(), payload);
    w.close();
  }
  co_await closed_within(server, 10s);
}

WEFT_TEST_P(NetWorkers, CloseClientsWithoutClientsOrBeforeCloseIsHarmless) {
  std::atomic<std::size_t> ready{0};
  weft::ClientHandler handler = Greeter{10, &ready};
  weft::Server server = co_await weft::start_server(handler, "127.0.0.1", 0);
  server.close_clients();
  server.abort_clients();
  // Still serving: a connection after close_clients is not affected.
  auto [r, w] = co_await weft::open_connection("127.0.0.1", server.sockets().at(0).port());
  w.write("hi\n");
  std::string got = co_await r.readexactly(10);
  EXPECT_EQ(got, std::string(10, 'p'));
  server.close();
  server.close_clients();
  std::string rest = co_await r.read(-1);
  EXPECT_EQ(rest, "");
  w.close();
  co_await closed_within(server, 10s);
}

// ------------------------------------------------------------ abort_clients

WEFT_TEST_P(NetWorkers, AbortClientsDropsWhatIsBufferedAndClosesAtOnce) {
  constexpr std::size_t kClients = 4;
  // Far more than loopback's socket buffers can hold while the clients do
  // not read: most of it is still in the transports' buffers at the abort.
  const std::size_t payload = 32 * 1024 * 1024;
  std::atomic<std::size_t> ready{0};
  weft::ClientHandler handler = Greeter{payload, &ready};
  weft::Server server = co_await weft::start_server(handler, "127.0.0.1", 0);
  const std::uint16_t port = server.sockets().at(0).port();
  std::vector<std::pair<StreamReader, StreamWriter>> clients;
  for (std::size_t i = 0; i < kClients; ++i) {
    auto conn = co_await weft::open_connection("127.0.0.1", port);
    conn.second.write("hi\n");
    clients.push_back(conn);
  }
  co_await wait_until(ready, kClients);
  server.close();
  server.abort_clients();
  co_await closed_within(server, 10s);  // without the clients reading anything
  for (auto& [r, w] : clients) {
    std::string got = co_await r.read(-1);  // what the kernel had taken, then EOF
    EXPECT_LT(got.size(), payload);
    EXPECT_EQ(got, std::string(got.size(), 'p'));
    w.close();
  }
}

WEFT_TEST_P(NetWorkers, WriterAbortCutsAFlushShortAndDrainReportsIt) {
  std::atomic<std::size_t> ready{0};
  weft::ClientHandler handler = Greeter{0, &ready};
  weft::Server server = co_await weft::start_server(handler, "127.0.0.1", 0);
  auto [r, w] = co_await weft::open_connection("127.0.0.1", server.sockets().at(0).port());
  w.write("hi\n");
  w.write(std::string(32 * 1024 * 1024, 'x'));  // the server reads only after the line
  w.close();                                    // flushing...
  w.abort();                                    // ...cut short
  w.abort();                                    // idempotent
  EXPECT_TRUE(w.is_closing());
  auto closed = weft::create_task(w.wait_closed());
  co_await weft::wait_for(closed, 10s);
  bool raised = false;
  try {
    co_await w.drain();
  } catch (const std::system_error& e) {
    raised = e.code() == std::errc::connection_reset;
  }
  EXPECT_TRUE(raised);
  std::string eof = co_await r.read(-1);
  EXPECT_EQ(eof, "");
  server.close();
  server.close_clients();
  co_await closed_within(server, 10s);
}

// ------------------------------------------------------- buffers, no copies

namespace {
// Echoes through readinto with one fixed buffer until EOF.
Coro<void> readinto_echo(StreamReader r, StreamWriter w) {
  std::vector<std::byte> buf(16 * 1024);
  for (;;) {
    std::size_t n = co_await r.readinto(buf);
    if (n == 0) break;
    w.write(std::string_view(reinterpret_cast<const char*>(buf.data()), n));
    co_await w.drain();
  }
  w.close();
}
}  // namespace

WEFT_TEST_P(NetWorkers, ReadintoEchoesEveryByteInOrder) {
  weft::ClientHandler handler = readinto_echo;
  weft::Server server = co_await weft::start_server(handler, "127.0.0.1", 0);
  auto [r, w] = co_await weft::open_connection("127.0.0.1", server.sockets().at(0).port());
  std::string sent(static_cast<std::size_t>(weft::testing::scaled(4 * 1024 * 1024)), '\0');
  for (std::size_t i = 0; i < sent.size(); ++i) sent[i] = static_cast<char>(i * 131 % 251);
  auto writer = [](StreamWriter w, const std::string* data) -> Coro<void> {
    for (std::size_t off = 0; off < data->size(); off += 100 * 1000) {
      w.write(std::string_view(*data).substr(off, 100 * 1000));
      co_await w.drain();
    }
    w.write_eof();
  };
  auto sending = weft::create_task(writer(w, &sent));
  // The client reads with readinto too, in odd-sized pieces.
  std::string got;
  std::vector<std::byte> piece(3001);
  for (;;) {
    std::size_t n = co_await r.readinto(piece);
    if (n == 0) break;
    got.append(reinterpret_cast<const char*>(piece.data()), n);
  }
  co_await sending;
  EXPECT_EQ(got.size(), sent.size());
  EXPECT_TRUE(got == sent);
  EXPECT_TRUE(r.at_eof());
  w.close();
  server.close();
  co_await closed_within(server, 10s);
}

WEFT_TEST_P(NetWorkers, ReadintoOnAStandaloneReader) {
  StreamReader r;
  std::vector<std::byte> buf(4);
  std::size_t none = co_await r.readinto(std::span<std::byte>());
  EXPECT_EQ(none, 0u);  // an empty buffer never waits
  r.feed_data("abcdef");
  std::size_t n = co_await r.readinto(buf);
  EXPECT_EQ(n, 4u);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(buf.data()), n), "abcd");
  n = co_await r.readinto(buf);
  EXPECT_EQ(n, 2u);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(buf.data()), n), "ef");
  // Waits while empty; a feed wakes it.
  auto waiting = weft::create_task(r.readinto(buf));
  co_await weft::sleep(1ms);
  EXPECT_FALSE(waiting.done());
  r.feed_data("xyz");
  n = co_await waiting;
  EXPECT_EQ(n, 3u);
  // A second concurrent read is an error, as asyncio.
  auto first = weft::create_task(r.readinto(buf));
  co_await weft::sleep(1ms);
  bool raised = false;
  try {
    co_await r.readinto(buf);
  } catch (const weft::RuntimeError&) {
    raised = true;
  }
  EXPECT_TRUE(raised);
  // A cancelled readinto leaves the buffer and what arrives later intact.
  first.cancel();
  bool cancelled = co_await weft::testing::raises_cancelled(first);
  EXPECT_TRUE(cancelled);
  r.feed_data("q");
  r.feed_eof();
  n = co_await r.readinto(buf);
  EXPECT_EQ(n, 1u);
  n = co_await r.readinto(buf);
  EXPECT_EQ(n, 0u);  // EOF
  EXPECT_TRUE(r.at_eof());
  // The stored error is raised.
  StreamReader failing;
  failing.set_exception(std::make_exception_ptr(weft::RuntimeError("boom")));
  raised = false;
  try {
    co_await failing.readinto(buf);
  } catch (const weft::RuntimeError&) {
    raised = true;
  }
  EXPECT_TRUE(raised);
}

WEFT_TEST_P(NetWorkers, ReadTakingEverythingHandsTheBufferOver) {
  StreamReader r;
  std::string big(100000, 'b');
  r.feed_data(big);
  std::string part = co_await r.read(10);  // a copy of the front
  EXPECT_EQ(part, std::string(10, 'b'));
  std::string rest = co_await r.read(1 << 20);  // everything else
  EXPECT_EQ(rest.size(), big.size() - 10);
  r.feed_data("more");
  std::string all = co_await r.read(100);  // the whole buffer, handed over
  EXPECT_EQ(all, "more");
  r.feed_data("again");
  std::string again = co_await r.read(5);
  EXPECT_EQ(again, "again");
}

WEFT_TEST_P(NetWorkers, PeekShowsTheBufferWithoutConsumingIt) {
  StreamReader r;
  r.feed_data("hello");
  std::string_view v = co_await r.peek();
  EXPECT_EQ(v, "hello");
  // Bytes fed while the view is out do not move it; the next peek sees them.
  const char* at = v.data();
  r.feed_data(std::string(100000, 'x'));
  EXPECT_EQ(v.data(), at);
  EXPECT_EQ(v, "hello");
  v = co_await r.peek();
  EXPECT_EQ(v.size(), 100005u);
  EXPECT_EQ(v.substr(0, 6), "hellox");
  r.consume(5);
  v = co_await r.peek(100000);
  EXPECT_EQ(v, std::string(100000, 'x'));
  r.consume(99998);
  // peek(min) waits until min bytes are there.
  auto waiting = weft::create_task(r.peek(4));
  co_await weft::sleep(1ms);
  EXPECT_FALSE(waiting.done());
  r.feed_data("y");
  co_await weft::sleep(1ms);
  EXPECT_FALSE(waiting.done());
  r.feed_data("z");
  v = co_await waiting;
  EXPECT_EQ(v, "xxyz");
  // Reads see exactly what peek showed; consume(0) and peek(0) never wait.
  r.consume(0);
  std::string two = co_await r.read(2);
  EXPECT_EQ(two, "xx");
  v = co_await r.peek(0);
  EXPECT_EQ(v, "yz");
  // consume past the buffered bytes is a ValueError and drops nothing.
  bool raised = false;
  try {
    r.consume(3);
  } catch (const weft::ValueError& e) {
    raised = true;
    EXPECT_NE(std::string(e.what()).find("only 2 bytes"), std::string::npos) << e.what();
  }
  EXPECT_TRUE(raised);
  // A peek cancelled while waiting leaves everything intact.
  auto cancelled = weft::create_task(r.peek(10));
  co_await weft::sleep(1ms);
  cancelled.cancel();
  bool was_cancelled = co_await weft::testing::raises_cancelled(cancelled);
  EXPECT_TRUE(was_cancelled);
  // At EOF peek returns what is left, fewer than min, then nothing.
  r.feed_data("!");
  r.feed_eof();
  v = co_await r.peek(10);
  EXPECT_EQ(v, "yz!");
  EXPECT_FALSE(r.at_eof());
  r.consume(3);
  v = co_await r.peek(10);
  EXPECT_TRUE(v.empty());
  EXPECT_TRUE(r.at_eof());
  // The stored error is raised.
  StreamReader failing;
  failing.set_exception(std::make_exception_ptr(weft::RuntimeError("boom")));
  raised = false;
  try {
    co_await failing.peek();
  } catch (const weft::RuntimeError&) {
    raised = true;
  }
  EXPECT_TRUE(raised);
}

namespace {
std::string block(std::size_t step, std::size_t size);
// Length-prefixed frames ("<4 hex digits><payload>") parsed through
// peek/consume: the parser looks at the header and payload in place.
Coro<void> frame_echo(StreamReader r, StreamWriter w) {
  for (;;) {
    std::string_view head = co_await r.peek(4);
    if (head.size() < 4) break;  // EOF
    const std::size_t len = std::stoul(std::string(head.substr(0, 4)), nullptr, 16);
    std::string_view frame = co_await r.peek(4 + len);
    if (frame.size() < 4 + len) break;
    w.write(frame.substr(4, len));  // copied by write before the next reader call
    r.consume(4 + len);
    co_await w.drain();
  }
  w.close();
}
}  // namespace

WEFT_TEST_P(NetWorkers, PeekAndConsumeParseFramesInPlace) {
  weft::ClientHandler handler = frame_echo;
  weft::Server server = co_await weft::start_server(handler, "127.0.0.1", 0);
  auto [r, w] = co_await weft::open_connection("127.0.0.1", server.sockets().at(0).port());
  std::string expected;
  std::string wire;
  const int frames = static_cast<int>(weft::testing::scaled(2000));
  for (int i = 0; i < frames; ++i) {
    const std::size_t len = static_cast<std::size_t>(i * 7919 % 0xffff);
    std::string payload = block(static_cast<std::size_t>(i), len);
    char head[8];
    std::snprintf(head, sizeof head, "%04zx", len);
    wire += head;
    wire += payload;
    expected += payload;
  }
  auto writer = [](StreamWriter w, const std::string* data) -> Coro<void> {
    // Odd-sized writes, so frames straddle reads.
    for (std::size_t off = 0; off < data->size(); off += 7777) {
      w.write(std::string_view(*data).substr(off, 7777));
      co_await w.drain();
    }
    w.write_eof();
  };
  auto sending = weft::create_task(writer(w, &wire));
  std::string got = co_await r.read();
  co_await sending;
  EXPECT_EQ(got.size(), expected.size());
  EXPECT_TRUE(got == expected);
  w.close();
  server.close();
  co_await closed_within(server, 10s);
}

// ------------------------------------------------------ writes, no copies

namespace {
// The sender's script: every kind of write, interleaved, with the bytes the
// reader must see in that order. Sizes vary from 1 byte to far more than a
// socket buffer holds, so that some writes are sent at once, some in part and
// some queued behind others.
struct Script {
  std::string expected;
  std::size_t steps = 0;
};

std::string block(std::size_t step, std::size_t size) {
  std::string s(size, '\0');
  for (std::size_t i = 0; i < size; ++i) s[i] = static_cast<char>('A' + (step * 13 + i) % 57);
  return s;
}

Coro<void> run_script(StreamWriter w, Script* script, std::size_t steps) {
  for (std::size_t step = 0; step < steps; ++step) {
    const std::size_t size = step % 5 == 4 ? 300 * 1000 + step : 1 + step * 37 % 5000;
    std::string data = block(step, size);
    script->expected += data;
    switch (step % 5) {
      case 0:
        w.write(std::string_view(data));
        break;
      case 1:
        w.write(std::move(data));
        break;
      case 2: {
        std::vector<std::byte> bytes(data.size());
        std::memcpy(bytes.data(), data.data(), data.size());
        w.write(std::move(bytes));
        break;
      }
      case 3: {
        // More lines than one vectored send takes (WriteQueue::kMaxIov).
        std::vector<std::string> lines;
        for (std::size_t i = 0; i < data.size(); i += 50) lines.push_back(data.substr(i, 50));
        if (step % 2 == 0)
          w.writelines(lines);
        else
          w.writelines(std::move(lines));
        break;
      }
      default:
        w.write(std::move(data));  // far more than the socket takes at once
        break;
    }
    if (step % 7 == 6) co_await w.drain();
  }
  co_await w.drain();
  w.write_eof();
}
}  // namespace

WEFT_TEST_P(NetWorkers, EveryKindOfWriteArrivesInOrder) {
  weft::ClientHandler handler = [](StreamReader r, StreamWriter w) -> Coro<void> {
    Script script;
    co_await run_script(w, &script, static_cast<std::size_t>(weft::testing::scaled(200)));
    std::string ack = co_await r.read(-1);
    EXPECT_EQ(ack, "");
    w.close();
  };
  weft::Server server = co_await weft::start_server(handler, "127.0.0.1", 0);
  auto [r, w] = co_await weft::open_connection("127.0.0.1", server.sockets().at(0).port());
  // The reader side builds the same script to compare with.
  Script expect;
  std::string got = co_await r.read(-1);
  for (std::size_t step = 0; step < static_cast<std::size_t>(weft::testing::scaled(200)); ++step) {
    const std::size_t size = step % 5 == 4 ? 300 * 1000 + step : 1 + step * 37 % 5000;
    expect.expected += block(step, size);
  }
  EXPECT_EQ(got.size(), expect.expected.size());
  EXPECT_TRUE(got == expect.expected);
  w.close();
  server.close();
  co_await closed_within(server, 10s);
}

WEFT_TEST_P(NetWorkers, WritesFromTheLoopAndFromOtherWorkersInterleaveWhole) {
  // Tasks on every worker each write whole messages (moved in, and as
  // writelines): the bytes of one write are never split by another's.
  constexpr std::size_t kWriters = 8;
  const std::size_t per_writer = static_cast<std::size_t>(weft::testing::scaled(400));
  weft::ClientHandler handler = [](StreamReader r, StreamWriter w) -> Coro<void> {
    std::string all = co_await r.read(-1);
    w.write(std::to_string(all.size()));
    w.close();
  };
  weft::Server server = co_await weft::start_server(handler, "127.0.0.1", 0);
  auto [r, w] = co_await weft::open_connection("127.0.0.1", server.sockets().at(0).port());
  auto writer = [](StreamWriter w, std::size_t id, std::size_t n) -> Coro<void> {
    for (std::size_t i = 0; i < n; ++i) {
      std::string msg = "<" + std::to_string(id) + ":" + std::string(100 + i % 900, 'm') + ">";
      if (i % 2 == 0) {
        w.write(std::move(msg));
      } else {
        std::vector<std::string> parts{msg.substr(0, 10), msg.substr(10)};
        w.writelines(std::move(parts));
      }
      if (i % 16 == 0) co_await w.drain();
    }
  };
  std::vector<weft::Task<void>> tasks;
  std::size_t total = 0;
  for (std::size_t id = 0; id < kWriters; ++id) {
    tasks.push_back(weft::create_task(writer(w, id, per_writer)));
    for (std::size_t i = 0; i < per_writer; ++i)
      total += 2 + std::to_string(id).size() + 1 + 100 + i % 900;
  }
  for (auto& t : tasks) co_await t;
  co_await w.drain();
  w.write_eof();
  std::string count = co_await r.read(-1);
  EXPECT_EQ(count, std::to_string(total));
  w.close();
  server.close();
  co_await closed_within(server, 10s);
}

// On a SOCK_SEQPACKET pair each send is one message: writelines arrives as
// one, so it went as one vectored send.
WEFT_TEST_P(NetWorkers, WritelinesIsOneVectoredSend) {
  int fds[2];
  CO_ASSERT_EQ(::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds), 0);
  auto [r, w] = weft::detail::make_fd_streams(fds[0], weft::detail::FdKind::socket);
  std::vector<std::string> lines{"one ", "two ", "three"};
  for (int round = 0; round < 2; ++round) {
    if (round == 0)
      w.writelines(lines);
    else
      w.writelines(std::move(lines));
    char buf[256];
    ssize_t n = -1;
    for (int tries = 0; tries < 5000 && n < 0; ++tries) {
      n = ::recv(fds[1], buf, sizeof buf, MSG_DONTWAIT);
      if (n < 0) co_await weft::sleep(1ms);
    }
    CO_ASSERT_EQ(std::string(buf, static_cast<std::size_t>(std::max<ssize_t>(n, 0))),
                 "one two three");
  }
  w.close();
  co_await w.wait_closed();
  ::close(fds[1]);
}

WEFT_TEST_P(NetWorkers, WritesAfterWriteEofOrCloseBehaveAsBefore) {
  int fds[2];
  CO_ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds), 0);
  auto [r, w] = weft::detail::make_fd_streams(fds[0], weft::detail::FdKind::socket);
  w.write(std::string());  // nothing: ignored
  w.writelines(std::vector<std::string>{"", ""});
  EXPECT_EQ(w.buffered(), 0u);
  w.write_eof();
  EXPECT_THROW(w.write(std::string("x")), weft::RuntimeError);
  EXPECT_THROW(w.write(std::vector<std::byte>(1)), weft::RuntimeError);
  EXPECT_THROW(w.writelines(std::vector<std::string>{"x"}), weft::RuntimeError);
  w.close();
  co_await w.wait_closed();
  ::close(fds[1]);
}

// ------------------------------------------------------- adopting sockets

namespace {
Coro<void> echo_until_eof(StreamReader r, StreamWriter w) {
  for (;;) {
    std::string data = co_await r.read(64 * 1024);
    if (data.empty()) break;
    w.write(std::move(data));
    co_await w.drain();
  }
  w.close();
}

// A bound, not yet listening, blocking TCP socket on 127.0.0.1 (what a
// supervisor would hand over); its port in *port.
int bound_socket(std::uint16_t* port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa);
  socklen_t len = sizeof sa;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&sa), &len);
  *port = ntohs(sa.sin_port);
  return fd;
}

ino_t inode_of(int fd) {
  struct stat st {};
  return ::fstat(fd, &st) == 0 ? st.st_ino : 0;
}

// True while `fd` is still the file it was (its number may have been reused
// by another thread's socket once it was closed).
bool same_file(int fd, ino_t inode) { return inode != 0 && inode_of(fd) == inode; }

int int_option(int fd, int level, int name) {
  int v = 0;
  socklen_t len = sizeof v;
  ::getsockopt(fd, level, name, &v, &len);
  return v;
}
}  // namespace

WEFT_TEST_P(NetWorkers, ServerAndClientAdoptSocketsMadeElsewhere) {
  std::uint16_t port = 0;
  int listener = bound_socket(&port);  // bound, not listening: start_server listens
  const ino_t listener_inode = inode_of(listener);
  weft::ServerOptions server_options;
  server_options.sock = listener;
  server_options.keepalive = true;
  weft::ClientHandler handler = echo_until_eof;
  weft::Server server = co_await weft::start_server(handler, "", 0, server_options);
  CO_ASSERT_EQ(server.sockets().size(), 1u);
  CO_ASSERT_EQ(server.sockets()[0].port(), port);
  // A client socket connected elsewhere (blocking), adopted by open_connection.
  int client = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  sa.sin_port = htons(port);
  CO_ASSERT_EQ(::connect(client, reinterpret_cast<sockaddr*>(&sa), sizeof sa), 0);
  const ino_t client_inode = inode_of(client);
  weft::ConnectOptions options;
  options.sock = client;
  options.nodelay = false;
  options.keepalive = true;
  auto [r, w] = co_await weft::open_connection("", 0, options);
  EXPECT_EQ(w.fileno(), client);
  EXPECT_TRUE(::fcntl(client, F_GETFL) & O_NONBLOCK);
  EXPECT_TRUE(::fcntl(client, F_GETFD) & FD_CLOEXEC);
  EXPECT_EQ(int_option(client, IPPROTO_TCP, TCP_NODELAY), 0);
  EXPECT_EQ(int_option(client, SOL_SOCKET, SO_KEEPALIVE), 1);
  const std::size_t size = static_cast<std::size_t>(weft::testing::scaled(1 << 20));
  w.write(std::string(size, 'e'));
  w.write_eof();
  std::string back = co_await r.read(-1);
  EXPECT_EQ(back.size(), size);
  w.close();
  co_await w.wait_closed();
  EXPECT_FALSE(same_file(client, client_inode));  // closed with the streams: weft owned it
  server.close();
  co_await closed_within(server, 10s);
  EXPECT_FALSE(same_file(listener, listener_inode));  // closed with the server
}

WEFT_TEST_P(NetWorkers, SocketOptionsReachTheSockets) {
  weft::ServerOptions server_options;
  server_options.keepalive = true;
  server_options.recv_buffer_size = 64 * 1024;
  std::atomic<int> accepted_keepalive{-1};
  std::atomic<int> accepted_nodelay{-1};
  weft::ClientHandler handler = [&](StreamReader r, StreamWriter w) -> Coro<void> {
    accepted_keepalive = int_option(w.fileno(), SOL_SOCKET, SO_KEEPALIVE);
    accepted_nodelay = int_option(w.fileno(), IPPROTO_TCP, TCP_NODELAY);
    co_await echo_until_eof(r, w);
  };
  weft::Server server = co_await weft::start_server(handler, "127.0.0.1", 0, server_options);
  weft::ConnectOptions options;
  options.keepalive = true;
  options.recv_buffer_size = 32 * 1024;
  options.send_buffer_size = 32 * 1024;
  options.local_addr = Address::ip("127.0.0.1", 0);
  auto [r, w] = co_await weft::open_connection("127.0.0.1", server.sockets().at(0).port(), options);
  const int fd = w.fileno();
  EXPECT_EQ(int_option(fd, SOL_SOCKET, SO_KEEPALIVE), 1);
  EXPECT_EQ(int_option(fd, IPPROTO_TCP, TCP_NODELAY), 1);       // on by default
  EXPECT_GE(int_option(fd, SOL_SOCKET, SO_RCVBUF), 32 * 1024);  // the kernel doubles it
  EXPECT_GE(int_option(fd, SOL_SOCKET, SO_SNDBUF), 32 * 1024);
  EXPECT_EQ(w.sockname()->host(), "127.0.0.1");
  w.write("ping");
  std::string pong = co_await r.readexactly(4);
  EXPECT_EQ(pong, "ping");
  EXPECT_EQ(accepted_keepalive.load(), 1);
  EXPECT_EQ(accepted_nodelay.load(), 1);
  w.close();
  server.close();
  co_await closed_within(server, 10s);
}

WEFT_TEST_P(NetWorkers, LocalAddrPicksTheSourcePortAndSkipsOtherFamilies) {
  weft::ClientHandler handler = echo_until_eof;
  weft::Server server = co_await weft::start_server(handler, "127.0.0.1", 0);
  const std::uint16_t port = server.sockets().at(0).port();
  std::uint16_t source = 0;
  ::close(bound_socket(&source));  // a free port to bind the client to
  weft::ConnectOptions options;
  options.local_addr = Address::ip("127.0.0.1", source);
  auto [r, w] = co_await weft::open_connection("127.0.0.1", port, options);
  EXPECT_EQ(w.sockname()->port(), source);
  w.close();
  // An IPv6 local address cannot reach an IPv4 target: a typed error.
  weft::ConnectOptions v6;
  v6.local_addr = Address::ip("::1", 0);
  bool raised = false;
  try {
    co_await weft::open_connection("127.0.0.1", port, v6);
  } catch (const std::system_error& e) {
    raised = e.code() == std::errc::address_family_not_supported;
  }
  EXPECT_TRUE(raised);
  server.close();
  co_await closed_within(server, 10s);
}

WEFT_TEST_P(NetWorkers, AdoptingBadSocketsGivesTypedErrors) {
  // Closed fd.
  int closed = weft::testing::closed_fd();
  weft::ConnectOptions c;
  c.sock = closed;
  bool ebadf = false;
  try {
    co_await weft::open_connection("", 0, c);
  } catch (const std::system_error& e) {
    ebadf = e.code() == std::errc::bad_file_descriptor;
  }
  EXPECT_TRUE(ebadf);
  // A datagram socket: ValueError, and the fd stays the caller's.
  int udp = ::socket(AF_INET, SOCK_DGRAM, 0);
  c.sock = udp;
  {
    auto attempt = weft::open_connection("", 0, c);
    bool raised_ok = co_await raises<weft::ValueError>(std::move(attempt));
    EXPECT_TRUE(raised_ok) << "weft::open_connection(\"\", 0, c)";
  }
  weft::ServerOptions s;
  s.sock = udp;
  weft::ClientHandler handler = echo_until_eof;
  {
    auto attempt = weft::start_server(handler, "", 0, s);
    bool raised_ok = co_await raises<weft::ValueError>(std::move(attempt));
    EXPECT_TRUE(raised_ok) << "weft::start_server(handler, \"\", 0, s)";
  }
  EXPECT_EQ(::fcntl(udp, F_GETFD), 0);  // still open, untouched (no close-on-exec)
  ::close(udp);
  // Not a socket at all.
  int pipe_fds[2];
  CO_ASSERT_EQ(::pipe(pipe_fds), 0);
  c.sock = pipe_fds[0];
  {
    auto attempt = weft::open_connection("", 0, c);
    bool raised_ok = co_await raises<weft::ValueError>(std::move(attempt));
    EXPECT_TRUE(raised_ok) << "weft::open_connection(\"\", 0, c)";
  }
  ::close(pipe_fds[0]);
  ::close(pipe_fds[1]);
  // An unconnected stream socket.
  int fresh = ::socket(AF_INET, SOCK_STREAM, 0);
  c.sock = fresh;
  bool enotconn = false;
  try {
    co_await weft::open_connection("", 0, c);
  } catch (const std::system_error& e) {
    enotconn = e.code() == std::errc::not_connected;
  }
  EXPECT_TRUE(enotconn);
  // sock together with host/port; negative buffer sizes.
  c.sock = fresh;
  {
    auto attempt = weft::open_connection("127.0.0.1", 1, c);
    bool raised_ok = co_await raises<weft::ValueError>(std::move(attempt));
    EXPECT_TRUE(raised_ok) << "weft::open_connection(\"127.0.0.1\", 1, c)";
  }
  s.sock = fresh;
  {
    auto attempt = weft::start_server(handler, "127.0.0.1", 0, s);
    bool raised_ok = co_await raises<weft::ValueError>(std::move(attempt));
    EXPECT_TRUE(raised_ok) << "weft::start_server(handler, \"127.0.0.1\", 0, s)";
  }
  {
    auto attempt = weft::start_unix_server(handler, "/tmp/x", s);
    bool raised_ok = co_await raises<weft::ValueError>(std::move(attempt));
    EXPECT_TRUE(raised_ok) << "weft::start_unix_server(handler, \"/tmp/x\", s)";
  }
  ::close(fresh);
  weft::ConnectOptions negative;
  negative.recv_buffer_size = -1;
  {
    auto attempt = weft::open_connection("127.0.0.1", 1, negative);
    bool raised_ok = co_await raises<weft::ValueError>(std::move(attempt));
    EXPECT_TRUE(raised_ok) << "weft::open_connection(\"127.0.0.1\", 1, negative)";
  }
  weft::ServerOptions negative_server;
  negative_server.send_buffer_size = -5;
  {
    auto attempt = weft::start_server(handler, "127.0.0.1", 0, negative_server);
    bool raised_ok = co_await raises<weft::ValueError>(std::move(attempt));
    EXPECT_TRUE(raised_ok) << "weft::start_server(handler, \"127.0.0.1\", 0, negative_server)";
  }
}

WEFT_TEST_P(NetWorkers, UnixServerAndClientAdoptSockets) {
  int pair[2];
  CO_ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, pair), 0);
  weft::ConnectOptions a, b;
  a.sock = pair[0];
  b.sock = pair[1];
  auto [ra, wa] = co_await weft::open_unix_connection("", a);
  auto [rb, wb] = co_await weft::open_unix_connection("", b);
  wa.write("over the pair");
  wa.write_eof();
  std::string got = co_await rb.read(-1);
  EXPECT_EQ(got, "over the pair");
  wa.close();
  wb.close();
  // A listening Unix socket made elsewhere (abstract name: no file).
  int listener = ::socket(AF_UNIX, SOCK_STREAM, 0);
  Address name = Address::unix_path("@weft-net-test-" + std::to_string(::getpid()));
  CO_ASSERT_EQ(::bind(listener, name.sockaddr_ptr(), name.length()), 0);
  CO_ASSERT_EQ(::listen(listener, 16), 0);
  weft::ServerOptions s;
  s.sock = listener;
  weft::ClientHandler handler = echo_until_eof;
  weft::Server server = co_await weft::start_unix_server(handler, "", s);
  auto [r, w] = co_await weft::open_unix_connection(name.to_string());
  w.write("echo");
  std::string echoed = co_await r.readexactly(4);
  EXPECT_EQ(echoed, "echo");
  w.close();
  server.close();
  co_await closed_within(server, 10s);
}

// systemd socket activation: fd 3 and LISTEN_PID / LISTEN_FDS. Runs only
// where fd 3 is free in the test process (ctest starts each test afresh).
TEST(NetListenFds, SocketActivationHandsOverFd3) {
  if (::fcntl(3, F_GETFD) >= 0) GTEST_SKIP() << "fd 3 is in use in this process";
  std::uint16_t port = 0;
  int fd = bound_socket(&port);
  ASSERT_EQ(::listen(fd, 16), 0);
  if (fd != 3) {
    ASSERT_EQ(::dup2(fd, 3), 3);
    ::close(fd);
  }
  ::unsetenv("LISTEN_PID");
  EXPECT_TRUE(weft::listen_fds().empty());
  ::setenv("LISTEN_PID", "1", 1);  // another process's
  ::setenv("LISTEN_FDS", "1", 1);
  EXPECT_TRUE(weft::listen_fds().empty());
  ::setenv("LISTEN_PID", "garbage", 1);
  EXPECT_THROW(weft::listen_fds(), weft::ValueError);
  ::setenv("LISTEN_PID", std::to_string(::getpid()).c_str(), 1);
  std::vector<int> fds = weft::listen_fds();
  ::unsetenv("LISTEN_PID");
  ::unsetenv("LISTEN_FDS");
  ASSERT_EQ(fds, std::vector<int>{3});
  EXPECT_TRUE(::fcntl(3, F_GETFD) & FD_CLOEXEC);
  auto body = [](std::uint16_t port) -> Coro<void> {
    weft::ServerOptions s;
    s.sock = 3;
    weft::ClientHandler handler = echo_until_eof;
    weft::Server server = co_await weft::start_server(handler, "", 0, s);
    auto [r, w] = co_await weft::open_connection("127.0.0.1", port);
    w.write("activated");
    std::string echoed = co_await r.readexactly(9);
    EXPECT_EQ(echoed, "activated");
    w.close();
    server.close();
    co_await server.wait_closed();
  };
  weft::run(body(port), {.workers = 2});
  EXPECT_EQ(::fcntl(3, F_GETFD), -1);
}

// --------------------------------------------- sock_recv_into, recvfrom, sendto

WEFT_TEST_P(NetWorkers, DatagramSockOpsRoundTrip) {
  weft::EventLoop& loop = weft::get_running_loop();
  int a = ::socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  int b = ::socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  Address any = Address::ip("127.0.0.1", 0);
  CO_ASSERT_EQ(::bind(a, any.sockaddr_ptr(), any.length()), 0);
  CO_ASSERT_EQ(::bind(b, any.sockaddr_ptr(), any.length()), 0);
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  ::getsockname(b, reinterpret_cast<sockaddr*>(&ss), &len);
  Address to_b = Address::from_storage(ss, len);
  len = sizeof ss;
  ::getsockname(a, reinterpret_cast<sockaddr*>(&ss), &len);
  Address from_a = Address::from_storage(ss, len);
  // recvfrom waits for the datagram sent after it started.
  auto receiving = weft::create_task(weft::sock_recvfrom(loop, b, 100));
  co_await weft::sleep(1ms);
  std::string msg = "datagram";
  std::size_t sent = co_await weft::sock_sendto(loop, a, msg, to_b);
  EXPECT_EQ(sent, msg.size());
  auto [data, sender] = co_await receiving;
  EXPECT_EQ(data, "datagram");
  EXPECT_EQ(sender, from_a);
  // A longer datagram than asked for is cut, as recvfrom(2).
  std::string longer = "0123456789";
  co_await weft::sock_sendto(loop, a, longer, to_b);
  auto [cut, _] = co_await weft::sock_recvfrom(loop, b, 4);
  EXPECT_EQ(cut, "0123");
  // Wrong family: an IPv6 address for an IPv4 socket.
  Address v6 = Address::ip("::1", 9);
  bool raised = false;
  try {
    co_await weft::sock_sendto(loop, a, msg, v6);
  } catch (const std::system_error& e) {
    raised = true;
    EXPECT_NE(std::string(e.what()).find("[::1]:9"), std::string::npos) << e.what();
  }
  EXPECT_TRUE(raised);
  ::close(a);
  ::close(b);
  // Closed fd.
  bool ebadf = false;
  try {
    co_await weft::sock_sendto(loop, weft::testing::closed_fd(), msg, to_b);
  } catch (const std::system_error& e) {
    ebadf = e.code() == std::errc::bad_file_descriptor;
  }
  EXPECT_TRUE(ebadf);
}

WEFT_TEST_P(NetWorkers, SockRecvIntoFillsTheCallersBuffer) {
  weft::EventLoop& loop = weft::get_running_loop();
  int fds[2];
  CO_ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds), 0);
  std::vector<std::byte> buf(5);
  auto receiving = weft::create_task(weft::sock_recv_into(loop, fds[0], buf));
  co_await weft::sleep(1ms);
  std::string hello = "hello world";
  co_await weft::sock_sendall(loop, fds[1], hello);
  std::size_t n = co_await receiving;
  CO_ASSERT_EQ(n, 5u);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(buf.data()), n), "hello");
  n = co_await weft::sock_recv_into(loop, fds[0], buf);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(buf.data()), n), " worl");
  ::close(fds[1]);
  n = co_await weft::sock_recv_into(loop, fds[0], buf);
  EXPECT_EQ(n, 1u);
  n = co_await weft::sock_recv_into(loop, fds[0], buf);
  EXPECT_EQ(n, 0u);  // EOF
  ::close(fds[0]);
  bool ebadf = false;
  try {
    co_await weft::sock_recv_into(loop, weft::testing::closed_fd(), buf);
  } catch (const std::system_error& e) {
    ebadf = e.code() == std::errc::bad_file_descriptor;
  }
  EXPECT_TRUE(ebadf);
}

WEFT_TEST_P(NetWorkers, SockRecvfromIntoFillsTheBufferAndNamesTheSender) {
  weft::EventLoop& loop = weft::get_running_loop();
  int a = ::socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  int b = ::socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  Address any = Address::ip("127.0.0.1", 0);
  CO_ASSERT_EQ(::bind(a, any.sockaddr_ptr(), any.length()), 0);
  CO_ASSERT_EQ(::bind(b, any.sockaddr_ptr(), any.length()), 0);
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  ::getsockname(b, reinterpret_cast<sockaddr*>(&ss), &len);
  Address to_b = Address::from_storage(ss, len);
  len = sizeof ss;
  ::getsockname(a, reinterpret_cast<sockaddr*>(&ss), &len);
  Address from_a = Address::from_storage(ss, len);
  std::vector<std::byte> buf(6);
  auto receiving = weft::create_task(weft::sock_recvfrom_into(loop, b, buf));
  co_await weft::sleep(1ms);
  std::string msg = "dgram";
  co_await weft::sock_sendto(loop, a, msg, to_b);
  auto [n, sender] = co_await receiving;
  CO_ASSERT_EQ(n, 5u);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(buf.data()), n), "dgram");
  EXPECT_EQ(sender, from_a);
  // A longer datagram is cut to the buffer; the next one is whole.
  std::string longer = "0123456789";
  co_await weft::sock_sendto(loop, a, longer, to_b);
  co_await weft::sock_sendto(loop, a, msg, to_b);
  auto [cut, s1] = co_await weft::sock_recvfrom_into(loop, b, buf);
  EXPECT_EQ(cut, 6u);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(buf.data()), cut), "012345");
  auto [next, s2] = co_await weft::sock_recvfrom_into(loop, b, buf);
  EXPECT_EQ(next, 5u);
  EXPECT_EQ(s2, from_a);
  ::close(a);
  ::close(b);
  bool ebadf = false;
  try {
    co_await weft::sock_recvfrom_into(loop, weft::testing::closed_fd(), buf);
  } catch (const std::system_error& e) {
    ebadf = e.code() == std::errc::bad_file_descriptor;
  }
  EXPECT_TRUE(ebadf);
}

// ---------------------------------------------------------- Happy Eyeballs

namespace {
// Open sockets only: a loop creates its io_uring (another fd) lazily.
int count_open_sockets() {
  int n = 0;
  char link[64];
  for (int fd = 0; fd < 4096; ++fd) {
    const std::string path = "/proc/self/fd/" + std::to_string(fd);
    ssize_t len = ::readlink(path.c_str(), link, sizeof link - 1);
    if (len > 0 && std::string_view(link, static_cast<std::size_t>(len)).starts_with("socket:"))
      ++n;
  }
  return n;
}

// A TCP address that never answers: a listener with backlog 0 whose accept
// queue one connection fills (never accepted), so the kernel drops every
// later SYN. The fds stay open until the object goes.
struct BlackHole {
  int listener = -1;
  int filler = -1;
  std::uint16_t port = 0;
  bool works = false;  // a probe's connect was still pending after 200 ms
  BlackHole() {
    listener = bound_socket(&port);
    ::listen(listener, 0);
    filler = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sa.sin_port = htons(port);
    ::connect(filler, reinterpret_cast<sockaddr*>(&sa), sizeof sa);
    int probe = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (::connect(probe, reinterpret_cast<sockaddr*>(&sa), sizeof sa) < 0 && errno == EINPROGRESS) {
      pollfd p{probe, POLLOUT, 0};
      works = ::poll(&p, 1, 200) == 0;
    }
    ::close(probe);
  }
  ~BlackHole() {
    ::close(filler);
    ::close(listener);
  }
  BlackHole(const BlackHole&) = delete;
  BlackHole& operator=(const BlackHole&) = delete;
  weft::AddrInfo info() const {
    Address a = Address::ip("127.0.0.1", port);
    return {AF_INET, SOCK_STREAM, 0, a};
  }
};

weft::AddrInfo info_of(const Address& a) { return {a.family(), SOCK_STREAM, 0, a}; }
}  // namespace

WEFT_TEST_P(NetWorkers, HappyEyeballsPassesAnAddressThatNeverAnswers) {
  BlackHole hole;
  if (!hole.works) {
    ADD_FAILURE() << "could not make an address that never answers";
    co_return;
  }
  weft::ClientHandler handler = echo_until_eof;
  weft::Server server = co_await weft::start_server(handler, "127.0.0.1", 0);
  const Address working = server.sockets().at(0);
  co_await weft::sleep(10ms);  // the runtime's own sockets are all open by now
  const int fds_before = count_open_sockets();
  std::vector<weft::AddrInfo> infos{hole.info(), hole.info(), info_of(working)};
  weft::ConnectOptions options;
  options.happy_eyeballs_delay = 30ms;
  const auto start = std::chrono::steady_clock::now();
  auto [r, w] = co_await weft::detail::open_connection_to(infos, options);
  const auto took = std::chrono::steady_clock::now() - start;
  EXPECT_LT(took, 900ms);  // not the black hole's SYN retransmit (1 s)
  EXPECT_EQ(w.peername()->port(), working.port());
  w.write("hi");
  std::string echoed = co_await r.readexactly(2);
  EXPECT_EQ(echoed, "hi");
  w.close();
  co_await w.wait_closed();
  co_await weft::sleep(20ms);                   // the accepted side closes too
  EXPECT_EQ(count_open_sockets(), fds_before);  // the losers were closed
  server.close();
  co_await closed_within(server, 10s);
}

WEFT_TEST_P(NetWorkers, HappyEyeballsReportsEveryErrorWhenAllFail) {
  std::uint16_t a = 0, b = 0;
  ::close(bound_socket(&a));
  ::close(bound_socket(&b));
  std::vector<weft::AddrInfo> infos{info_of(Address::ip("127.0.0.1", a)),
                                    info_of(Address::ip("127.0.0.1", b))};
  for (int staggered = 0; staggered < 2; ++staggered) {
    weft::ConnectOptions options;
    if (staggered) options.happy_eyeballs_delay = 20ms;
    std::string what;
    bool refused = false;
    try {
      co_await weft::detail::open_connection_to(infos, options);
    } catch (const std::system_error& e) {
      what = e.what();
      refused = e.code() == std::errc::connection_refused;
    }
    EXPECT_TRUE(refused) << what;
    EXPECT_NE(what.find("Multiple exceptions"), std::string::npos) << what;
    EXPECT_NE(what.find("127.0.0.1:" + std::to_string(a)), std::string::npos) << what;
    EXPECT_NE(what.find("127.0.0.1:" + std::to_string(b)), std::string::npos) << what;
  }
  // Alike errors are reported once, as themselves.
  std::vector<weft::AddrInfo> same{infos[0], infos[0]};
  weft::ConnectOptions options;
  options.happy_eyeballs_delay = 20ms;
  std::string what;
  try {
    co_await weft::detail::open_connection_to(same, options);
  } catch (const std::system_error& e) {
    what = e.what();
  }
  EXPECT_EQ(what.find("Multiple"), std::string::npos) << what;
  EXPECT_NE(what.find("127.0.0.1:" + std::to_string(a)), std::string::npos) << what;
}

WEFT_TEST_P(NetWorkers, CancellingARaceClosesEveryAttempt) {
  BlackHole hole;
  if (!hole.works) {
    ADD_FAILURE() << "could not make an address that never answers";
    co_return;
  }
  co_await weft::sleep(10ms);
  const int fds_before = count_open_sockets();
  std::vector<weft::AddrInfo> infos{hole.info(), hole.info(), hole.info()};
  weft::ConnectOptions options;
  options.happy_eyeballs_delay = 10ms;
  auto racing = weft::create_task(weft::detail::open_connection_to(infos, options));
  bool timed_out = false;
  try {
    co_await weft::wait_for(racing, 100ms);
  } catch (const weft::TimeoutError&) {
    timed_out = true;
  }
  EXPECT_TRUE(timed_out);
  co_await weft::sleep(50ms);  // the cancelled attempts' closes run on their loops
  EXPECT_EQ(count_open_sockets(), fds_before);
}

WEFT_TEST_P(NetWorkers, HappyEyeballsThroughTheResolver) {
  // "localhost" may resolve to ::1 first, where nothing listens: refused at
  // once, and the IPv4 address wins.
  weft::ClientHandler handler = echo_until_eof;
  weft::Server server = co_await weft::start_server(handler, "127.0.0.1", 0);
  weft::ConnectOptions options;
  options.happy_eyeballs_delay = 250ms;
  auto [r, w] = co_await weft::open_connection("localhost", server.sockets().at(0).port(), options);
  w.write("x");
  std::string x = co_await r.readexactly(1);
  EXPECT_EQ(x, "x");
  w.close();
  weft::ConnectOptions negative;
  negative.interleave = -1;
  bool raised = false;
  try {
    co_await weft::open_connection("127.0.0.1", 1, negative);
  } catch (const weft::ValueError&) {
    raised = true;
  }
  EXPECT_TRUE(raised);
  std::vector<weft::AddrInfo> none;
  raised = false;
  try {
    co_await weft::detail::open_connection_to(none, options);
  } catch (const weft::ValueError&) {
    raised = true;
  }
  EXPECT_TRUE(raised);
  server.close();
  co_await closed_within(server, 10s);
}

TEST(NetInterleave, AlternatesFamiliesAsAsyncio) {
  auto v6 = [](std::uint16_t p) { return info_of(Address::ip("::1", p)); };
  auto v4 = [](std::uint16_t p) { return info_of(Address::ip("127.0.0.1", p)); };
  std::vector<weft::AddrInfo> infos{v6(1), v6(2), v6(3), v4(4), v4(5)};
  auto ports = [](const std::vector<weft::AddrInfo>& list) {
    std::vector<int> out;
    for (const auto& i : list) out.push_back(i.address.port());
    return out;
  };
  EXPECT_EQ(ports(weft::detail::interleave_addrinfos(infos, 1)), (std::vector<int>{1, 4, 2, 5, 3}));
  EXPECT_EQ(ports(weft::detail::interleave_addrinfos(infos, 2)), (std::vector<int>{1, 2, 4, 3, 5}));
  EXPECT_EQ(ports(weft::detail::interleave_addrinfos(infos, 9)), (std::vector<int>{1, 2, 3, 4, 5}));
  EXPECT_TRUE(weft::detail::interleave_addrinfos({}, 1).empty());
}

// ---------------------------------------------------------------- sendfile

namespace {
// A temporary file of `size` patterned bytes, removed at once (the fd keeps it).
int temp_file(std::size_t size) {
  char path[] = "/tmp/weft-net-sendfile-XXXXXX";
  int fd = ::mkstemp(path);
  ::unlink(path);
  std::string data = block(7, size);
  std::size_t off = 0;
  while (off < data.size()) {
    ssize_t n = ::write(fd, data.data() + off, data.size() - off);
    if (n <= 0) break;
    off += static_cast<std::size_t>(n);
  }
  return fd;
}

// Reads everything into *out, then closes.
Coro<void> collect(StreamReader r, StreamWriter w, std::string* out) {
  *out = co_await r.read(-1);
  w.close();
}

struct Collector {
  std::string* out;
  weft::Future<void>* done;
  Coro<void> operator()(StreamReader r, StreamWriter w) const {
    co_await collect(r, w, out);
    done->set_result();
  }
};
}  // namespace

WEFT_TEST_P(NetWorkers, SendfileSendsTheFileAfterWhatWasWritten) {
  const std::size_t size = static_cast<std::size_t>(weft::testing::scaled(8 * 1024 * 1024));
  int file = temp_file(size);
  const std::string content = block(7, size);
  std::string got;
  weft::Future<void> done;
  weft::ClientHandler handler = Collector{&got, &done};
  weft::Server server = co_await weft::start_server(handler, "127.0.0.1", 0);
  auto [r, w] = co_await weft::open_connection("127.0.0.1", server.sockets().at(0).port());
  w.write("header:");
  std::size_t sent = co_await w.sendfile(file);
  EXPECT_EQ(sent, size);
  w.write(":middle:");
  sent = co_await w.sendfile(file, 10, 1000);  // a slice
  EXPECT_EQ(sent, 1000u);
  EXPECT_EQ(::lseek(file, 0, SEEK_CUR), static_cast<off_t>(size));  // the file position stays
  w.write_eof();
  co_await done;
  const std::string want = "header:" + content + ":middle:" + content.substr(10, 1000);
  EXPECT_EQ(got.size(), want.size());
  EXPECT_TRUE(got == want);
  w.close();
  ::close(file);
  server.close();
  co_await closed_within(server, 10s);
}

WEFT_TEST_P(NetWorkers, SendfileFromAPipeFallsBackToReadAndWrite) {
  int pipe_fds[2];
  CO_ASSERT_EQ(::pipe2(pipe_fds, O_CLOEXEC), 0);
  std::string got;
  weft::Future<void> done;
  weft::ClientHandler handler = Collector{&got, &done};
  weft::Server server = co_await weft::start_server(handler, "127.0.0.1", 0);
  auto [r, w] = co_await weft::open_connection("127.0.0.1", server.sockets().at(0).port());
  std::string piped = block(3, 50000);
  CO_ASSERT_EQ(::write(pipe_fds[1], piped.data(), piped.size()),
               static_cast<ssize_t>(piped.size()));
  ::close(pipe_fds[1]);
  std::size_t sent = co_await w.sendfile(pipe_fds[0]);  // to EOF
  EXPECT_EQ(sent, piped.size());
  w.write_eof();
  co_await done;
  EXPECT_TRUE(got == piped);
  ::close(pipe_fds[0]);
  w.close();
  server.close();
  co_await closed_within(server, 10s);
}

// The fallback's side of a file that shrinks: a pipe that ends before
// `count` is a SendfileError with the bytes that went out, all of which
// arrive (sendfile(2) cannot read a pipe: read-and-write).
WEFT_TEST_P(NetWorkers, SendfileFallbackThatEndsShortOfCountIsASendfileError) {
  int pipe_fds[2];
  CO_ASSERT_EQ(::pipe2(pipe_fds, O_CLOEXEC), 0);
  std::string got;
  weft::Future<void> done;
  weft::ClientHandler handler = Collector{&got, &done};
  weft::Server server = co_await weft::start_server(handler, "127.0.0.1", 0);
  auto [r, w] = co_await weft::open_connection("127.0.0.1", server.sockets().at(0).port());
  std::string piped = block(4, 30000);
  CO_ASSERT_EQ(::write(pipe_fds[1], piped.data(), piped.size()),
               static_cast<ssize_t>(piped.size()));
  ::close(pipe_fds[1]);
  bool raised = false;
  std::size_t sent = 0;
  try {
    co_await w.sendfile(pipe_fds[0], 0, 50000);
  } catch (const weft::SendfileError& e) {
    raised = true;
    sent = e.sent();
    EXPECT_NE(std::string(e.what()).find("20000 bytes short"), std::string::npos) << e.what();
  }
  EXPECT_TRUE(raised);
  EXPECT_EQ(sent, piped.size());
  w.write_eof();  // the connection is still usable
  co_await done;
  EXPECT_TRUE(got == piped);
  ::close(pipe_fds[0]);
  w.close();
  server.close();
  co_await closed_within(server, 10s);
}

namespace {
// Sends a large file to a server that closes every connection at once: the
// client sees EOF first (its socket in CLOSE_WAIT), so the reset that
// answers its bytes makes the next send fail with EPIPE, which raises
// SIGPIPE without MSG_NOSIGNAL; 0 if the sendfile raised std::system_error.
Coro<int> sendfile_to_a_peer_that_left() {
  weft::ClientHandler handler = [](StreamReader, StreamWriter w) -> Coro<void> {
    w.close();
    co_return;
  };
  weft::Server server = co_await weft::start_server(handler, "127.0.0.1", 0);
  auto [r, w] = co_await weft::open_connection("127.0.0.1", server.sockets().at(0).port());
  std::string eof = co_await r.read();  // the server's FIN
  int file = temp_file(32 * 1024 * 1024);
  int rc = eof.empty() ? 1 : 2;
  try {
    co_await w.sendfile(file);
  } catch (const std::system_error&) {
    if (rc == 1) rc = 0;
  }
  ::close(file);
  w.close();
  server.close();
  co_await server.wait_closed();
  co_return rc;
}
}  // namespace

// sendfile(2) has no MSG_NOSIGNAL: with SIGPIPE at its default action a
// peer that went away killed the process (found by bench/run's file_serve,
// whose port probe connects and leaves). In a child process, so that
// SIGPIPE starts at its default there whatever ran before in this one.
TEST(NetSendfile, APeerThatWentAwayIsAnErrorNotSIGPIPE) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(
      {
        ::signal(SIGPIPE, SIG_DFL);
        std::_Exit(weft::run(sendfile_to_a_peer_that_left(), {.workers = 1}));
      },
      ::testing::ExitedWithCode(0), "");
}

WEFT_TEST_P(NetWorkers, SendfileOfAFileThatShrinksIsASendfileError) {
  // The reader reads nothing until the file was cut, so the send is held
  // back by the socket buffers well before the file's end.
  const std::size_t size = 32 * 1024 * 1024;
  int file = temp_file(size);
  weft::Future<void> cut;
  weft::Future<void> done;
  std::string got;
  weft::ClientHandler handler = [&](StreamReader r, StreamWriter w) -> Coro<void> {
    co_await cut;
    got = co_await r.read(-1);
    w.close();
    done.set_result();
  };
  weft::Server server = co_await weft::start_server(handler, "127.0.0.1", 0);
  auto [r, w] = co_await weft::open_connection("127.0.0.1", server.sockets().at(0).port());
  auto sending = weft::create_task(w.sendfile(file));
  co_await weft::sleep(20ms);
  // Meanwhile writes are refused (they would interleave with the file).
  bool refused = false;
  try {
    w.write("x");
  } catch (const weft::RuntimeError&) {
    refused = true;
  }
  EXPECT_TRUE(refused);
  CO_ASSERT_EQ(::ftruncate(file, 1024 * 1024), 0);
  cut.set_result();
  std::size_t short_sent = 0;
  bool raised = false;
  try {
    co_await sending;
  } catch (const weft::SendfileError& e) {
    raised = true;
    short_sent = e.sent();
  }
  EXPECT_TRUE(raised);
  EXPECT_LT(short_sent, size);
  // The connection is still usable: what was sent stays sent.
  w.write_eof();
  co_await done;
  EXPECT_EQ(got.size(), short_sent);
  w.close();
  ::close(file);
  server.close();
  co_await closed_within(server, 10s);
}

WEFT_TEST_P(NetWorkers, SendfileRejectsBadInputWithTypedErrors) {
  int file = temp_file(1000);
  std::string got;
  weft::Future<void> done;
  weft::ClientHandler handler = Collector{&got, &done};
  weft::Server server = co_await weft::start_server(handler, "127.0.0.1", 0);
  auto [r, w] = co_await weft::open_connection("127.0.0.1", server.sockets().at(0).port());
  int value_errors = 0;
  for (int round = 0; round < 2; ++round) {
    try {
      if (round == 0)
        co_await w.sendfile(file, -1);
      else
        co_await w.sendfile(file, 0, 0);
    } catch (const weft::ValueError&) {
      ++value_errors;
    }
  }
  EXPECT_EQ(value_errors, 2);
  // Shorter than the count asked for: everything is sent, then the error.
  std::size_t sent = 0;
  try {
    co_await w.sendfile(file, 900, 500);
  } catch (const weft::SendfileError& e) {
    sent = e.sent();
  }
  EXPECT_EQ(sent, 100u);
  // Past the end without a count: nothing to send.
  std::size_t none = co_await w.sendfile(file, 5000);
  EXPECT_EQ(none, 0u);
  // A closed fd, a directory.
  int closed = weft::testing::closed_fd();
  bool ebadf = false;
  try {
    co_await w.sendfile(closed);
  } catch (const std::system_error& e) {
    ebadf = e.code() == std::errc::bad_file_descriptor;
  }
  EXPECT_TRUE(ebadf);
  int dir = ::open("/tmp", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  bool eisdir = false;
  try {
    co_await w.sendfile(dir);
  } catch (const std::system_error& e) {
    eisdir = e.code() == std::errc::is_a_directory;
  }
  EXPECT_TRUE(eisdir);
  ::close(dir);
  // After write_eof.
  w.write_eof();
  bool runtime_error = false;
  try {
    co_await w.sendfile(file);
  } catch (const weft::RuntimeError&) {
    runtime_error = true;
  }
  EXPECT_TRUE(runtime_error);
  co_await done;
  EXPECT_EQ(got, block(7, 1000).substr(900, 100));
  w.close();
  ::close(file);
  server.close();
  co_await closed_within(server, 10s);
}

WEFT_TEST_P(NetWorkers, CloseDuringSendfileWaitsAndAbortCutsIt) {
  const std::size_t size = static_cast<std::size_t>(weft::testing::scaled(16 * 1024 * 1024));
  int file = temp_file(size);
  std::string got;
  weft::Future<void> done;
  weft::ClientHandler handler = Collector{&got, &done};
  weft::Server server = co_await weft::start_server(handler, "127.0.0.1", 0);
  // close() while the file is being sent: the whole file arrives, then EOF.
  {
    auto [r, w] = co_await weft::open_connection("127.0.0.1", server.sockets().at(0).port());
    auto sending = weft::create_task(w.sendfile(file));
    co_await weft::sleep(1ms);
    w.close();
    std::size_t sent = co_await sending;
    EXPECT_EQ(sent, size);
    co_await done;
    EXPECT_EQ(got.size(), size);
    co_await w.wait_closed();
  }
  // abort() while it waits for room: the sendfile stops with an error.
  {
    weft::Future<void> never;
    weft::ClientHandler stalled = [never](StreamReader, StreamWriter) -> Coro<void> {
      co_await never;  // reads nothing
    };
    weft::Server slow = co_await weft::start_server(stalled, "127.0.0.1", 0);
    auto [r, w] = co_await weft::open_connection("127.0.0.1", slow.sockets().at(0).port());
    int big = temp_file(32 * 1024 * 1024);
    auto sending = weft::create_task(w.sendfile(big));
    co_await weft::sleep(20ms);
    w.abort();
    bool reset = false;
    try {
      co_await sending;
    } catch (const std::system_error& e) {
      reset = true;
    }
    EXPECT_TRUE(reset);
    auto closed = weft::create_task(w.wait_closed());
    co_await weft::wait_for(closed, 10s);
    ::close(big);
    slow.close();
    slow.abort_clients();
    never.cancel();
  }
  ::close(file);
  server.close();
  co_await closed_within(server, 10s);
}

INSTANTIATE_TEST_SUITE_P(Workers, NetWorkers, ::testing::Values(1u, 2u, 4u, 8u),
                         weft::testing::worker_name);
