// Client-side fan-out: probe a range of TCP ports concurrently, one task per
// port, each open_connection bounded by wait_for (asyncio.wait_for).
//
//   port_scanner [HOST] [FIRST] [LAST] [TIMEOUT_MS]    (default 127.0.0.1 1 1024 500)
//
// Prints the open ports in order. A refused connection means closed; a
// timeout means filtered (nothing answered in time).
#include <weft/weft.hpp>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

namespace {

enum class PortState { open, closed, filtered };

weft::Coro<PortState> probe(std::string host, std::uint16_t port, weft::Duration timeout) {
  try {
    auto connecting = weft::open_connection(host, port);
    auto [reader, writer] = co_await weft::wait_for(std::move(connecting), timeout);
    writer.close();
    co_return PortState::open;
  } catch (const weft::TimeoutError&) {
    co_return PortState::filtered;
  } catch (const std::system_error&) {
    co_return PortState::closed;
  }
}

weft::Coro<int> scan(std::string host, int first, int last, weft::Duration timeout) {
  std::vector<weft::Task<PortState>> probes;
  for (int port = first; port <= last; ++port)
    probes.push_back(weft::create_task(probe(host, static_cast<std::uint16_t>(port), timeout)));
  int open = 0, filtered = 0;
  for (int port = first; port <= last; ++port) {
    PortState state = co_await probes[static_cast<std::size_t>(port - first)];
    if (state == PortState::open) {
      std::printf("%s:%d open\n", host.c_str(), port);
      ++open;
    } else if (state == PortState::filtered) {
      ++filtered;
    }
  }
  std::printf("scanned %d ports: %d open, %d filtered\n", last - first + 1, open, filtered);
  co_return open;
}

}  // namespace

int main(int argc, char** argv) {
  std::string host = argc > 1 ? argv[1] : "127.0.0.1";
  int first = argc > 2 ? std::atoi(argv[2]) : 1;
  int last = argc > 3 ? std::atoi(argv[3]) : 1024;
  int timeout_ms = argc > 4 ? std::atoi(argv[4]) : 500;
  if (first < 1 || last > 65535 || first > last) {
    std::fprintf(stderr, "usage: port_scanner [HOST] [FIRST] [LAST] [TIMEOUT_MS]\n");
    return 2;
  }
  weft::run(scan(host, first, last, std::chrono::milliseconds(timeout_ms)));
  return 0;
}
