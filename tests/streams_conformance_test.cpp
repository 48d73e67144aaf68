// Conformance tests for streams: every STRM behaviour of
// docs/asyncio-behaviours.md (issue 3), after CPython's
// test_asyncio/test_streams.py.
#include <weft/io.hpp>

#include <sys/socket.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "weft_test.hpp"

using weft::Coro;
using weft::IncompleteReadError;
using weft::LimitOverrunError;
using weft::StreamReader;
using weft::StreamWriter;
using weft::ValueError;

namespace {

constexpr const char* kData = "line1\nline2\nline3\n";

// Feeds `chunks` one per loop iteration, then EOF when `eof` is set.
Coro<void> feed_later(StreamReader reader, std::vector<std::string> chunks, bool eof) {
  for (const std::string& c : chunks) {
    co_await weft::sleep(weft::Duration::zero());
    reader.feed_data(c);
  }
  if (eof) {
    co_await weft::sleep(weft::Duration::zero());
    reader.feed_eof();
  }
}

// An echo server on 127.0.0.1:<free port>; returns the server.
Coro<weft::Server> echo_line_server() {
  weft::ClientHandler handler = [](StreamReader r, StreamWriter w) -> Coro<void> {
    std::string line = co_await r.readline();
    w.write(line);
    co_await w.drain();
    w.close();
    co_await w.wait_closed();
  };
  co_return co_await weft::start_server(handler, "127.0.0.1", 0);
}

}  // namespace

// STRM-01: read(n) returns what is available, waits only when empty.
WEFT_TEST(Streams, Strm01ReadReturnsAvailableBytes) {
  StreamReader reader;
  reader.feed_data("line1line2");
  CO_ASSERT_EQ(co_await reader.read(5), "line1");
  CO_ASSERT_EQ(co_await reader.read(5), "line2");
  // Waits while empty: the data arrives on a later iteration.
  auto feeder = weft::create_task(feed_later(reader, {"chunk"}, false));
  CO_ASSERT_EQ(co_await reader.read(100), "chunk");
  co_await feeder;
}

WEFT_TEST(Streams, Strm01ReadZeroConsumesNothing) {
  StreamReader reader;
  reader.feed_data(kData);
  CO_ASSERT_EQ(co_await reader.read(0), "");
  CO_ASSERT_EQ(co_await reader.read(5), "line1");
}

WEFT_TEST(Streams, Strm01ReadMinusOneReadsToEof) {
  StreamReader reader;
  auto feeder = weft::create_task(feed_later(reader, {"chunk1\n", "chunk2"}, true));
  CO_ASSERT_EQ(co_await reader.read(-1), "chunk1\nchunk2");
  CO_ASSERT_EQ(co_await reader.read(-1), "");  // at EOF
  CO_ASSERT_EQ(co_await reader.read(5), "");
  co_await feeder;
}

WEFT_TEST(Streams, Strm01ReadIgnoresLimit) {
  StreamReader reader(3);
  reader.feed_data("chunk");
  CO_ASSERT_EQ(co_await reader.read(5), "chunk");
}

// STRM-02: readline across chunks, leaves the rest; partial line at EOF.
WEFT_TEST(Streams, Strm02ReadlineAcrossChunks) {
  StreamReader reader;
  reader.feed_data("chunk1 ");
  auto feeder = weft::create_task(feed_later(reader, {"chunk2 ", "chunk3 ", "\n chunk4"}, false));
  CO_ASSERT_EQ(co_await reader.readline(), "chunk1 chunk2 chunk3 \n");
  CO_ASSERT_EQ(co_await reader.read(100), " chunk4");
  co_await feeder;
}

WEFT_TEST(Streams, Strm02ReadlineAtEof) {
  StreamReader reader;
  reader.feed_data("some data");
  reader.feed_eof();
  CO_ASSERT_EQ(co_await reader.readline(), "some data");
  CO_ASSERT_EQ(co_await reader.readline(), "");
  StreamReader empty;
  empty.feed_eof();
  CO_ASSERT_EQ(co_await empty.readline(), "");
}

// STRM-03: an overlong line raises ValueError and is consumed.
WEFT_TEST(Streams, Strm03ReadlineOverLimitConsumesLine) {
  StreamReader reader(7);
  reader.feed_data("1234567\n");  // exactly limit + newline: accepted
  CO_ASSERT_EQ(co_await reader.readline(), "1234567\n");

  reader.feed_data("12345678\nline2\n");
  bool raised = false;
  try {
    co_await reader.readline();
  } catch (const ValueError&) {
    raised = true;
  }
  CO_ASSERT_TRUE(raised);
  // Consumed up to and including the overlong line's newline.
  CO_ASSERT_EQ(co_await reader.readline(), "line2\n");

  // No newline buffered: the whole buffer goes.
  StreamReader r2(3);
  r2.feed_data("abcdef");
  raised = false;
  try {
    co_await r2.readline();
  } catch (const ValueError&) {
    raised = true;
  }
  CO_ASSERT_TRUE(raised);
  r2.feed_data("xy\n");
  CO_ASSERT_EQ(co_await r2.readline(), "xy\n");
}

// STRM-04: readexactly waits for n bytes, ignores the limit; 0 -> "", n < 0 -> ValueError.
WEFT_TEST(Streams, Strm04Readexactly) {
  StreamReader reader(3);
  auto feeder = weft::create_task(feed_later(reader, {"line1\n", "line2\n", "line3\n"}, false));
  CO_ASSERT_EQ(co_await reader.readexactly(10), "line1\nline");
  CO_ASSERT_EQ(co_await reader.readexactly(0), "");
  co_await feeder;
  CO_ASSERT_EQ(co_await reader.read(100), "2\nline3\n");
  bool raised = false;
  try {
    co_await reader.readexactly(-1);
  } catch (const ValueError&) {
    raised = true;
  }
  CO_ASSERT_TRUE(raised);
}

// STRM-05: early EOF -> IncompleteReadError(partial, expected), buffer emptied.
WEFT_TEST(Streams, Strm05ReadexactlyEof) {
  StreamReader reader;
  auto feeder = weft::create_task(feed_later(reader, {std::string(kData)}, true));
  bool raised = false;
  try {
    co_await reader.readexactly(36);
  } catch (const IncompleteReadError& e) {
    raised = true;
    EXPECT_EQ(e.partial(), kData);
    EXPECT_EQ(e.expected(), std::optional<std::size_t>(36));
    EXPECT_STREQ(e.what(), "18 bytes read on a total of 36 expected bytes");
  }
  CO_ASSERT_TRUE(raised);
  CO_ASSERT_EQ(co_await reader.read(-1), "");
  co_await feeder;
}

// STRM-06: readuntil across chunks; empty separator; multiple separators.
WEFT_TEST(Streams, Strm06ReaduntilAcrossChunks) {
  StreamReader reader;
  reader.feed_data("QWEaa");
  auto feeder = weft::create_task(feed_later(reader, {"XYaa", "a"}, false));
  CO_ASSERT_EQ(co_await reader.readuntil("aaa"), "QWEaaXYaaa");
  co_await feeder;
  reader.feed_data("QWEaaXYaaaBB");
  CO_ASSERT_EQ(co_await reader.readuntil("aaa"), "QWEaaXYaaa");
  CO_ASSERT_EQ(co_await reader.read(10), "BB");
  bool raised = false;
  try {
    co_await reader.readuntil("");
  } catch (const ValueError&) {
    raised = true;
  }
  CO_ASSERT_TRUE(raised);
}

WEFT_TEST(Streams, Strm06ReaduntilMultipleSeparators) {
  StreamReader reader;
  reader.feed_data("ABCDEFG");
  // (GCC 12 cannot keep a braced list of string literals in a co_await expression.)
  std::vector<std::string> separators;
  separators.emplace_back("DEF");
  separators.emplace_back("BCDE");
  CO_ASSERT_EQ(co_await reader.readuntil(separators), "ABCDE");
  CO_ASSERT_EQ(co_await reader.read(10), "FG");
  bool raised = false;
  try {
    co_await reader.readuntil(std::vector<std::string>());
  } catch (const ValueError&) {
    raised = true;
  }
  CO_ASSERT_TRUE(raised);
}

// STRM-07: EOF with no separator -> IncompleteReadError(all, nullopt).
WEFT_TEST(Streams, Strm07ReaduntilEof) {
  StreamReader reader;
  reader.feed_data("some dataAA");
  reader.feed_eof();
  bool raised = false;
  try {
    co_await reader.readuntil("AAA");
  } catch (const IncompleteReadError& e) {
    raised = true;
    EXPECT_EQ(e.partial(), "some dataAA");
    EXPECT_FALSE(e.expected().has_value());
    EXPECT_STREQ(e.what(), "11 bytes read on a total of undefined expected bytes");
  }
  CO_ASSERT_TRUE(raised);
  CO_ASSERT_EQ(co_await reader.read(-1), "");
}

// STRM-08: past the limit -> LimitOverrunError, data stays buffered.
WEFT_TEST(Streams, Strm08ReaduntilLimitKeepsData) {
  StreamReader reader(3);
  reader.feed_data("some dataAA");
  bool raised = false;
  try {
    co_await reader.readuntil("AAA");
  } catch (const LimitOverrunError& e) {
    raised = true;
    EXPECT_NE(std::string(e.what()).find("not found"), std::string::npos);
  }
  CO_ASSERT_TRUE(raised);
  CO_ASSERT_EQ(co_await reader.read(100), "some dataAA");

  reader.feed_data("some dataAAA");
  raised = false;
  try {
    co_await reader.readuntil("AAA");
  } catch (const LimitOverrunError& e) {
    raised = true;
    EXPECT_NE(std::string(e.what()).find("is found"), std::string::npos);
    EXPECT_EQ(e.consumed(), 9u);
  }
  CO_ASSERT_TRUE(raised);
  CO_ASSERT_EQ(co_await reader.read(100), "some dataAAA");
}

// STRM-09: set_exception reaches pending and later reads; a cancelled read
// leaves no dangling waiter; a connection error reaches the reader.
namespace {
Coro<std::string> read_line(StreamReader reader) { co_return co_await reader.readline(); }
Coro<void> set_error_later(StreamReader reader) {
  co_await weft::sleep(weft::Duration::zero());
  reader.set_exception(std::make_exception_ptr(ValueError("boom")));
}
}  // namespace

WEFT_TEST(Streams, Strm09SetExceptionWakesWaiter) {
  StreamReader reader;
  reader.feed_data("line\n");
  CO_ASSERT_EQ(co_await reader.readline(), "line\n");
  auto setter = weft::create_task(set_error_later(reader));
  bool raised = false;
  try {
    co_await reader.readline();
  } catch (const ValueError& e) {
    raised = std::string(e.what()) == "boom";
  }
  CO_ASSERT_TRUE(raised);
  co_await setter;
  CO_ASSERT_TRUE(reader.exception() != nullptr);
  raised = false;
  try {
    co_await reader.read(3);
  } catch (const ValueError&) {
    raised = true;
  }
  CO_ASSERT_TRUE(raised);
}

WEFT_TEST(Streams, Strm09CancelledReadLeavesNoWaiter) {
  StreamReader reader;
  auto t = weft::create_task(read_line(reader));
  co_await weft::sleep(weft::Duration::zero());
  t.cancel();
  co_await weft::sleep(weft::Duration::zero());
  CO_ASSERT_TRUE(t.cancelled());
  reader.set_exception(std::make_exception_ptr(ValueError("after cancel")));
  // A new read is allowed (no dangling waiter) and sees the error.
  bool raised = false;
  try {
    co_await reader.read(1);
  } catch (const ValueError&) {
    raised = true;
  }
  CO_ASSERT_TRUE(raised);
}

static weft::Coro<std::string> read_all(StreamReader reader) { co_return co_await reader.read(); }

// Found by fuzz/stream_reader_fuzz: read() to EOF cancelled while it waits
// for more gives the blocks it took back to the buffer (asyncio loses them).
WEFT_TEST(Streams, Strm09CancelledReadToEofPutsTakenBytesBack) {
  StreamReader reader(4);
  reader.feed_data("abcdef");
  auto t = weft::create_task(read_all(reader));
  co_await weft::sleep(weft::Duration::zero());
  reader.feed_data("gh");
  co_await weft::sleep(weft::Duration::zero());
  CO_ASSERT_TRUE(!t.done());
  t.cancel();
  co_await weft::sleep(weft::Duration::zero());
  CO_ASSERT_TRUE(t.cancelled());
  reader.feed_data("ij");
  reader.feed_eof();
  std::string rest = co_await reader.read();
  CO_ASSERT_EQ(rest, "abcdefghij");
}

WEFT_TEST(Streams, Strm09ConnectionErrorReachesReader) {
  // A peer that resets the connection: the reader raises the connection error.
  weft::Future<void> done;
  weft::ClientHandler handler = [done](StreamReader r, StreamWriter w) -> Coro<void> {
    co_await r.readexactly(1);  // the client is connected
    // SO_LINGER 0 then close: the client sees a reset (RST).
    linger lg{1, 0};
    ::setsockopt(w.fileno(), SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    w.close();
    co_await w.wait_closed();
    weft::Future<void> signal = done;
    signal.set_result();
  };
  weft::Server server = co_await weft::start_server(handler, "127.0.0.1", 0);
  auto [r, w] = co_await weft::open_connection("127.0.0.1", server.sockets()[0].port());
  w.write("x");
  co_await done;
  bool raised = false;
  try {
    co_await r.read(100);
  } catch (const std::system_error& e) {
    raised = e.code() == std::errc::connection_reset;
  }
  CO_ASSERT_TRUE(raised);
  w.close();
  server.close();
  co_await server.wait_closed();
}

// STRM-10: at_eof only after feed_eof and an empty buffer; line iteration;
// limit <= 0 is a ValueError.
WEFT_TEST(Streams, Strm10AtEof) {
  StreamReader reader;
  CO_ASSERT_TRUE(!reader.at_eof());
  reader.feed_data("some data\n");
  CO_ASSERT_TRUE(!reader.at_eof());
  co_await reader.readline();
  CO_ASSERT_TRUE(!reader.at_eof());
  reader.feed_data("some data\n");
  reader.feed_eof();
  co_await reader.readline();
  CO_ASSERT_TRUE(reader.at_eof());
}

WEFT_TEST(Streams, Strm10LineIteration) {
  StreamReader reader;
  reader.feed_data("line1\nline2\nline3");
  reader.feed_eof();
  std::vector<std::string> lines;
  for (;;) {
    std::string line = co_await reader.readline();
    if (line.empty()) break;
    lines.push_back(line);
  }
  CO_ASSERT_TRUE((lines == std::vector<std::string>{"line1\n", "line2\n", "line3"}));
}

TEST(Streams, Strm10InvalidLimit) {
  EXPECT_THROW(StreamReader(0), ValueError);
  EXPECT_THROW(StreamReader(-1), ValueError);
}

// STRM-11: echo round trip through start_server / open_connection.
WEFT_TEST(Streams, Strm11StartServerEchoRoundTrip) {
  weft::Server server = co_await echo_line_server();
  auto [r, w] = co_await weft::open_connection("127.0.0.1", server.sockets()[0].port());
  w.write("hello world!\n");
  co_await w.drain();
  CO_ASSERT_EQ(co_await r.readline(), "hello world!\n");
  w.close();
  co_await w.wait_closed();
  server.close();
  co_await server.wait_closed();
  CO_ASSERT_TRUE(!server.is_serving());
}

WEFT_TEST(Streams, Strm11UnixServerEchoRoundTrip) {
  std::string path = "/tmp/weft-strm11-" + std::to_string(::getpid()) + ".sock";
  weft::ClientHandler handler = [](StreamReader r, StreamWriter w) -> Coro<void> {
    std::string line = co_await r.readline();
    w.write(line);
    co_await w.drain();
    w.close();
  };
  weft::Server server = co_await weft::start_unix_server(handler, path);
  auto [r, w] = co_await weft::open_unix_connection(path);
  w.write("hello unix!\n");
  CO_ASSERT_EQ(co_await r.readline(), "hello unix!\n");
  w.close();
  server.close();
  co_await server.wait_closed();
  CO_ASSERT_TRUE(::access(path.c_str(), F_OK) != 0);  // the socket file is removed
}

// STRM-12: close -> is_closing at once, wait_closed completes; write+drain
// after close -> connection_reset; the paired reader then reports EOF.
WEFT_TEST(Streams, Strm12CloseAndAfter) {
  weft::Server server = co_await echo_line_server();
  auto [r, w] = co_await weft::open_connection("127.0.0.1", server.sockets()[0].port());
  CO_ASSERT_TRUE(!w.is_closing());
  w.close();
  CO_ASSERT_TRUE(w.is_closing());
  co_await w.wait_closed();
  bool raised = false;
  try {
    w.write("data");
    co_await w.drain();
  } catch (const std::system_error& e) {
    raised = e.code() == std::errc::connection_reset;
  }
  CO_ASSERT_TRUE(raised);
  CO_ASSERT_TRUE(r.at_eof());
  CO_ASSERT_EQ(co_await r.read(-1), "");
  server.close();
  co_await server.wait_closed();
}

// STRM-13: drain returns at once at or below the high-water mark, blocks
// above it until the low-water mark, and a closed peer gives an error.
WEFT_TEST(Streams, Strm13DrainBackPressure) {
  weft::Future<StreamReader> server_reader;
  weft::Future<void> release;
  weft::ClientHandler handler = [server_reader, release](StreamReader r,
                                                         StreamWriter w) -> Coro<void> {
    weft::Future<StreamReader> slot = server_reader;
    slot.set_result(r);
    co_await release;
    w.close();
  };
  weft::Server server = co_await weft::start_server(handler, "127.0.0.1", 0);
  auto [r, w] = co_await weft::open_connection("127.0.0.1", server.sockets()[0].port());
  StreamReader peer = co_await server_reader;
  w.set_write_buffer_limits(1024);  // high 1024, low 256
  // Nobody reads on the other side: write until the kernel buffers fill and
  // ours stays above the high-water mark. Each round lets the loop poll, so
  // a send the transport queued for the loop's iteration (io_uring) has been
  // made. Being above high once is not enough: until the server's reader
  // has paused (its buffer above 2 * limit) it keeps taking bytes, and a
  // send that the kernel took only in part may still drain. So the buffer
  // must still be above high after a quiet spell.
  std::string block(64 * 1024, 'x');
  std::size_t written = 0;
  do {
    w.write(block);
    written += block.size();
    co_await weft::sleep(std::chrono::milliseconds(1));
    if (w.buffered() > 1024) co_await weft::sleep(std::chrono::milliseconds(20));
  } while (w.buffered() <= 1024);
  // Above high: drain blocks until the peer reads enough.
  auto drainer = weft::create_task(w.drain());
  co_await weft::sleep(std::chrono::milliseconds(20));
  CO_ASSERT_TRUE(!drainer.done());
  std::size_t got = 0;
  while (!drainer.done()) {
    std::string chunk = co_await peer.read(64 * 1024);
    CO_ASSERT_TRUE(!chunk.empty());
    got += chunk.size();
  }
  co_await drainer;
  CO_ASSERT_TRUE(w.buffered() <= 256);
  // At or below high: drain returns at once.
  co_await w.drain();
  std::string rest = co_await peer.readexactly(static_cast<ssize_t>(written - got));
  CO_ASSERT_EQ(rest.size(), written - got);
  release.set_result();
  w.close();
  server.close();
  co_await server.wait_closed();
}

WEFT_TEST(Streams, Strm13WriteToClosedPeerRaises) {
  weft::ClientHandler handler = [](StreamReader, StreamWriter w) -> Coro<void> {
    w.close();
    co_return;
  };
  weft::Server server = co_await weft::start_server(handler, "127.0.0.1", 0);
  auto [r, w] = co_await weft::open_connection("127.0.0.1", server.sockets()[0].port());
  CO_ASSERT_EQ(co_await r.read(-1), "");  // the server closed
  bool raised = false;
  std::string block(16 * 1024, 'y');
  for (int i = 0; i < 10000 && !raised; ++i) {
    try {
      w.write(block);
      co_await w.drain();
      co_await weft::sleep(std::chrono::milliseconds(1));
    } catch (const std::system_error& e) {
      raised = e.code() == std::errc::connection_reset || e.code() == std::errc::broken_pipe ||
               e.code() == std::errc::connection_aborted;
    }
  }
  CO_ASSERT_TRUE(raised);
  server.close();
  co_await server.wait_closed();
}
