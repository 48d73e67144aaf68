// Datagram endpoints (issue 3): echo round trips over 127.0.0.1 and ::1,
// connected sockets, close waking a waiting receiver, many datagrams.
#include <set>
#include <string>
#include <system_error>
#include <vector>

#include "weft_test.hpp"

namespace {

using weft::Address;
using weft::DatagramSocket;

weft::Coro<void> echo_once(DatagramSocket server) {
  auto [data, from] = co_await server.recvfrom();
  co_await server.sendto("echo:" + data, from);
}

weft::Coro<void> round_trip(std::string host) {
  DatagramSocket server = co_await weft::create_datagram_endpoint(Address::ip(host, 0));
  Address server_addr = server.sockname();
  CO_ASSERT_TRUE(server_addr.port() != 0);
  weft::Task<void> echo = weft::create_task(echo_once(server));
  DatagramSocket client = co_await weft::create_datagram_endpoint(Address::ip(host, 0));
  co_await client.sendto("hello", server_addr);
  auto [reply, from] = co_await client.recvfrom();
  CO_ASSERT_EQ(reply, "echo:hello");
  CO_ASSERT_TRUE(from == server_addr);
  co_await echo;
  client.close();
  server.close();
  CO_ASSERT_TRUE(server.is_closing());
}

WEFT_TEST(Datagram, EchoRoundTripIPv4) { co_await round_trip("127.0.0.1"); }

WEFT_TEST(Datagram, EchoRoundTripIPv6) { co_await round_trip("::1"); }

WEFT_TEST(Datagram, ConnectedSocketSendsToItsRemote) {
  DatagramSocket server = co_await weft::create_datagram_endpoint(Address::ip("127.0.0.1", 0));
  DatagramSocket client = co_await weft::create_datagram_endpoint(std::nullopt, server.sockname());
  CO_ASSERT_TRUE(client.peername() == server.sockname());
  co_await client.sendto("to the remote");
  auto [data, from] = co_await server.recvfrom();
  CO_ASSERT_EQ(data, "to the remote");
  CO_ASSERT_TRUE(from == client.sockname());
  client.close();
  server.close();
}

WEFT_TEST(Datagram, NoAddressIsAValueError) {
  bool raised = false;
  try {
    co_await weft::create_datagram_endpoint(std::nullopt);
  } catch (const weft::ValueError&) {
    raised = true;
  }
  CO_ASSERT_TRUE(raised);
}

weft::Coro<std::string> receive_one(DatagramSocket sock) {
  auto [data, from] = co_await sock.recvfrom();
  co_return data;
}

WEFT_TEST(Datagram, CloseFailsAWaitingReceiver) {
  DatagramSocket sock = co_await weft::create_datagram_endpoint(Address::ip("127.0.0.1", 0));
  weft::Task<std::string> waiting = weft::create_task(receive_one(sock));
  co_await weft::sleep(std::chrono::milliseconds(0));  // let it reach its wait
  sock.close();
  bool raised = false;
  try {
    co_await waiting;
  } catch (const std::system_error& e) {
    raised = e.code() == std::errc::bad_file_descriptor;
  }
  CO_ASSERT_TRUE(raised);
}

weft::Coro<void> receive_all(DatagramSocket sock, int n, std::set<int>* seen) {
  for (int i = 0; i < n; ++i) {
    auto [data, from] = co_await sock.recvfrom();
    seen->insert(std::stoi(data));
  }
}

weft::Coro<void> send_range(DatagramSocket sock, Address to, int first, int last) {
  for (int i = first; i < last; ++i) {
    co_await sock.sendto(std::to_string(i), to);
    if (i % 16 == 0) co_await weft::sleep(std::chrono::milliseconds(0));
  }
}

class DatagramWorkers : public weft::testing::WorkersTest {};

// Many datagrams from several sender tasks to one receiver task, spread over
// workers. Loopback UDP does not drop while the receive buffer has room: the
// senders pace themselves with an acknowledgement per batch.
WEFT_TEST_P(DatagramWorkers, ManyDatagrams) {
  const int senders = 4;
  const int per_sender = static_cast<int>(weft::testing::scaled(2000));
  const int batch = 25;
  DatagramSocket receiver = co_await weft::create_datagram_endpoint(Address::ip("127.0.0.1", 0));
  std::set<int> seen;
  for (int start = 0; start < per_sender; start += batch) {
    int end = std::min(per_sender, start + batch);
    weft::Task<void> recv =
        weft::create_task(receive_all(receiver, senders * (end - start), &seen));
    std::vector<weft::Task<void>> sends;
    for (int s = 0; s < senders; ++s) {
      DatagramSocket sender = co_await weft::create_datagram_endpoint(Address::ip("127.0.0.1", 0));
      sends.push_back(weft::create_task(
          send_range(sender, receiver.sockname(), s * per_sender + start, s * per_sender + end)));
    }
    for (auto& t : sends) co_await t;
    co_await recv;
  }
  CO_ASSERT_EQ(seen.size(), static_cast<std::size_t>(senders * per_sender));
  receiver.close();
}
INSTANTIATE_TEST_SUITE_P(Workers, DatagramWorkers, ::testing::Values(1u, 2u, 8u),
                         weft::testing::worker_name);

}  // namespace
