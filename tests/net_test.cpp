// Networking beyond asyncio's basics (issue 19): graceful close of a
// server's connections (close_clients / abort_clients); reads without
// copies (readinto, read handing its buffer over). Run at 1, 2 and 8
// workers, and by ctest on io_uring and on epoll (tests/CMakeLists.txt).
#include <weft/io.hpp>

#include <atomic>
#include <chrono>
#include <cstddef>
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

INSTANTIATE_TEST_SUITE_P(Workers, NetWorkers, weft::testing::kWorkerCounts,
                         weft::testing::worker_name);
