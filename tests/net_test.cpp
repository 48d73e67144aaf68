// Networking beyond asyncio's basics (issue 19): graceful close of a
// server's connections (close_clients / abort_clients). Run at 1, 2 and 8
// workers, and by ctest on io_uring and on epoll (tests/CMakeLists.txt).
#include <weft/io.hpp>

#include <atomic>
#include <chrono>
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

INSTANTIATE_TEST_SUITE_P(Workers, NetWorkers, weft::testing::kWorkerCounts,
                         weft::testing::worker_name);
