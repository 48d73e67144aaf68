// Networking beyond asyncio's basics (issue 19): graceful close of a
// server's connections (close_clients / abort_clients); reads and writes
// without copies (readinto, read handing its buffer over, writes taking
// strings and vectors over, writelines as one vectored send). Run at 1, 2 and 8
// workers, and by ctest on io_uring and on epoll (tests/CMakeLists.txt).
#include <weft/detail/fd_stream.hpp>
#include <weft/io.hpp>

#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstring>
#include <span>
#include <string>
#include <vector>

#include "weft_test.hpp"

using namespace std::chrono_literals;
using weft::Coro;
using weft::StreamReader;
using weft::StreamWriter;

namespace {

class NetWorkers : public weft::testing::WorkersTest {};

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

WEFT_TEST(Net, ReadintoOnAStandaloneReader) {
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

WEFT_TEST(Net, ReadTakingEverythingHandsTheBufferOver) {
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

WEFT_TEST(Net, WritesAfterWriteEofOrCloseBehaveAsBefore) {
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

INSTANTIATE_TEST_SUITE_P(Workers, NetWorkers, ::testing::Values(1u, 2u, 4u, 8u),
                         weft::testing::worker_name);
