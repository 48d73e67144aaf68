// weft::open_file and File (io/include/weft/file.hpp): Python's open()
// modes, reads and writes at the cursor and at offsets, seek/tell,
// truncate, stat, sync, close; Python's OSError subclasses with the path;
// calls on one file in order; cancelled reads that lose nothing and
// cancelled writes that land whole or not at all; reads, writes and syncs
// through the loop's io_uring where it has one (ctest runs the suite again
// with WEFT_IO_URING=0, as epoll:*). Run at 1, 2 and 8 workers.
#include <weft/file.hpp>
#include <weft/reactor/io_ring.hpp>
#include <weft/reactor/selector.hpp>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "weft_test.hpp"

using namespace std::chrono_literals;
using weft::Coro;
using weft::File;

namespace {

class FileWorkers : public weft::testing::WorkersTest {};

// A fresh directory under $TMPDIR (or /tmp), removed with everything in it.
class TempDir {
 public:
  TempDir() {
    const char* base = std::getenv("TMPDIR");
    std::string tmpl = std::string(base && *base ? base : "/tmp") + "/weft-file-XXXXXX";
    if (::mkdtemp(tmpl.data()) == nullptr) std::abort();
    path_ = tmpl;
  }
  ~TempDir() {
    const std::string cmd = "rm -rf '" + path_ + "'";
    if (std::system(cmd.c_str()) != 0) std::fprintf(stderr, "could not remove %s\n", cmd.c_str());
  }
  std::string operator/(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

std::string pattern(std::size_t size, std::size_t seed = 0) {
  std::string s(size, '\0');
  for (std::size_t i = 0; i < size; ++i) s[i] = static_cast<char>((i * 131 + seed * 7) % 251);
  return s;
}

// Runs `make()` and reports whether it raised E, with `needle` in what().
// (The caller names the lambda first: GCC 12 destroys a capturing lambda
// built inside a co_await expression twice.)
template <class E, class F>
Coro<bool> raises(F make, std::string_view needle = {}) {
  try {
    co_await make();
  } catch (const E& e) {
    if (std::string(e.what()).find(needle) == std::string::npos) {
      ADD_FAILURE() << "message without '" << needle << "': " << e.what();
      co_return false;
    }
    co_return true;
  }
  co_return false;
}

}  // namespace

// ---------------------------------------------------------------- modes

WEFT_TEST_P(FileWorkers, BadModesAreValueErrors) {
  TempDir dir;
  const std::string path = dir / "f";
  static constexpr const char* kBadModes[] = {"",  "rw", "rr", "r++", "rbt",
                                              "q", "bb", "+",  "rbb", "wx"};
  for (const char* mode : kBadModes) {
    std::string m = mode;
    auto make1 = [&] { return weft::open_file(path, m); };
    const std::string needle = "invalid mode: '" + m + "'";
    bool raised = co_await raises<weft::ValueError>(make1, needle);
    EXPECT_TRUE(raised) << mode;
  }
  std::string nul("a\0b", 3);
  auto make2 = [&] { return weft::open_file(nul, "w"); };
  bool raised = co_await raises<weft::ValueError>(make2, "embedded null byte");
  EXPECT_TRUE(raised);
  auto make3 = [&] { return weft::open_file(path, "w", -1); };
  raised = co_await raises<weft::ValueError>(make3, "permissions");
  EXPECT_TRUE(raised);
  // Nothing was created by a refused call.
  EXPECT_NE(::access(path.c_str(), F_OK), 0);
}

WEFT_TEST_P(FileWorkers, EveryModeOpensAsPythonsOpen) {
  TempDir dir;
  const std::string path = dir / "f";
  co_await weft::write_file(path, "hello");
  {
    File r = co_await weft::open_file(path, "r");
    EXPECT_TRUE(r.readable());
    EXPECT_FALSE(r.writable());
    EXPECT_EQ(r.mode(), "r");
    EXPECT_EQ(r.name(), path);
    std::string all = co_await r.read();
    EXPECT_EQ(all, "hello");
    co_await r.close();
  }
  {
    File a = co_await weft::open_file(path, "ab");  // the cursor starts at the end
    std::int64_t at = co_await a.tell();
    EXPECT_EQ(at, 5);
    co_await a.write(" world");
    at = co_await a.tell();
    EXPECT_EQ(at, 11);
    co_await a.close();
    std::string all = co_await weft::read_file(path);
    EXPECT_EQ(all, "hello world");
  }
  {
    File rw = co_await weft::open_file(path, "r+");  // no truncation, cursor at 0
    co_await rw.write("J");
    std::string rest = co_await rw.read();
    EXPECT_EQ(rest, "ello world");
    co_await rw.close();
    std::string all = co_await weft::read_file(path);
    EXPECT_EQ(all, "Jello world");
  }
  {
    File w = co_await weft::open_file(path, "w+t");  // truncated; 't' reads bytes too
    std::int64_t size = co_await w.size();
    EXPECT_EQ(size, 0);
    co_await w.write("new");
    co_await w.seek(0);
    std::string back = co_await w.read();
    EXPECT_EQ(back, "new");
    co_await w.close();
  }
  {
    File x = co_await weft::open_file(dir / "fresh", "x", 0600);
    struct ::stat st = co_await x.stat();
    EXPECT_EQ(st.st_mode & 0777, 0600u & ~0u & 0600u);
    EXPECT_TRUE(S_ISREG(st.st_mode));
    co_await x.close();
  }
}

// ---------------------------------------------------------------- errors

WEFT_TEST_P(FileWorkers, OpenFailuresArePythonsOSErrorsWithThePath) {
  TempDir dir;
  const std::string missing = dir / "missing";
  auto make4 = [&] { return weft::open_file(missing, "r"); };
  const std::string quoted = "'" + missing + "'";
  bool raised = co_await raises<weft::FileNotFoundError>(make4, quoted);
  EXPECT_TRUE(raised);
  // They are std::system_error (weft's OSError) with the errno.
  try {
    co_await weft::open_file(missing, "r");
  } catch (const std::system_error& e) {
    EXPECT_EQ(e.code(), std::errc::no_such_file_or_directory);
  }
  co_await weft::write_file(dir / "there", "x");
  auto make5 = [&] { return weft::open_file(dir / "there", "x"); };
  raised = co_await raises<weft::FileExistsError>(make5, "there");
  EXPECT_TRUE(raised);
  auto make6 = [&] { return weft::open_file(dir / "", "r"); };
  raised = co_await raises<weft::IsADirectoryError>(make6);
  EXPECT_TRUE(raised);
  auto make7 = [&] { return weft::open_file(dir / "", "w"); };
  raised = co_await raises<weft::IsADirectoryError>(make7);
  EXPECT_TRUE(raised);
  auto make8 = [&] { return weft::open_file(dir / "there/below", "w"); };
  raised = co_await raises<weft::NotADirectoryError>(make8, "there/below");
  EXPECT_TRUE(raised);
  auto make9 = [&] { return weft::read_file(missing); };
  raised = co_await raises<weft::FileNotFoundError>(make9);
  EXPECT_TRUE(raised);
  if (::geteuid() != 0) {  // root passes permission checks
    ::chmod((dir / "there").c_str(), 0);
    auto make10 = [&] { return weft::open_file(dir / "there", "r"); };
    raised = co_await raises<weft::PermissionError>(make10, "there");
    EXPECT_TRUE(raised);
  }
}

WEFT_TEST_P(FileWorkers, BadCallsAreValueErrors) {
  TempDir dir;
  const std::string path = dir / "f";
  co_await weft::write_file(path, "abc");
  File r = co_await weft::open_file(path, "rb");
  auto make11 = [&] { return r.write("x"); };
  bool raised = co_await raises<weft::ValueError>(make11, "not open for writing");
  EXPECT_TRUE(raised);
  auto make12 = [&] { return r.truncate(0); };
  raised = co_await raises<weft::ValueError>(make12, "not open for writing");
  EXPECT_TRUE(raised);
  auto make13 = [&] { return r.read_at(-1, 1); };
  raised = co_await raises<weft::ValueError>(make13, "negative offset");
  EXPECT_TRUE(raised);
  auto make14 = [&] { return r.read_at(0, -1); };
  raised = co_await raises<weft::ValueError>(make14, "negative count");
  EXPECT_TRUE(raised);
  auto make15 = [&] { return r.seek(-1); };
  raised = co_await raises<weft::ValueError>(make15, "negative seek");
  EXPECT_TRUE(raised);
  auto make16 = [&] { return r.seek(-10, SEEK_END); };
  raised = co_await raises<weft::ValueError>(make16, "before");
  EXPECT_TRUE(raised);
  auto make17 = [&] { return r.seek(0, 7); };
  raised = co_await raises<weft::ValueError>(make17, "whence");
  EXPECT_TRUE(raised);
  std::int64_t at = co_await r.tell();  // the refused seeks moved nothing
  EXPECT_EQ(at, 0);
  File w = co_await weft::open_file(path, "w");
  auto make18 = [&] { return w.read(); };
  raised = co_await raises<weft::ValueError>(make18, "not open for reading");
  EXPECT_TRUE(raised);
  auto make19 = [&] { return w.write_at(-5, "x"); };
  raised = co_await raises<weft::ValueError>(make19, "negative offset");
  EXPECT_TRUE(raised);
  auto make20 = [&] { return w.truncate(-1); };
  raised = co_await raises<weft::ValueError>(make20, "negative size");
  EXPECT_TRUE(raised);
  File a = co_await weft::open_file(path, "a");
  auto make21 = [&] { return a.write_at(0, "x"); };
  raised = co_await raises<weft::ValueError>(make21, "append mode");
  EXPECT_TRUE(raised);
  co_await a.close();
  co_await w.close();
  // After close every call is a ValueError; close again does nothing.
  co_await r.close();
  EXPECT_TRUE(r.closed());
  EXPECT_EQ(r.fileno(), -1);
  co_await r.close();
  auto make22 = [&] { return r.read(); };
  raised = co_await raises<weft::ValueError>(make22, "closed file");
  EXPECT_TRUE(raised);
  auto make23 = [&] { return r.stat(); };
  raised = co_await raises<weft::ValueError>(make23, "closed file");
  EXPECT_TRUE(raised);
  auto make24 = [&] { return r.sync(); };
  raised = co_await raises<weft::ValueError>(make24, "closed file");
  EXPECT_TRUE(raised);
  File none;
  EXPECT_TRUE(none.closed());
  auto make25 = [&] { return none.read(); };
  raised = co_await raises<weft::ValueError>(make25, "closed file");
  EXPECT_TRUE(raised);
  co_await none.close();
}

WEFT_TEST_P(FileWorkers, APipeReadsAndWritesWithoutOffsets) {
  TempDir dir;
  const std::string fifo = dir / "fifo";
  CO_ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  File p = co_await weft::open_file(fifo, "r+b");  // O_RDWR: opens without a peer
  co_await p.write("through the pipe");
  std::string got = co_await p.read(7);
  EXPECT_EQ(got, "through");
  got = co_await p.read(9);
  EXPECT_EQ(got, " the pipe");
  bool espipe = false;
  try {
    co_await p.read_at(0, 1);
  } catch (const std::system_error& e) {
    espipe = e.code() == std::errc::invalid_seek &&
             std::string(e.what()).find(fifo) != std::string::npos;
  }
  EXPECT_TRUE(espipe);
  espipe = false;
  try {
    co_await p.tell();
  } catch (const std::system_error& e) {
    espipe = e.code() == std::errc::invalid_seek;
  }
  EXPECT_TRUE(espipe);
  co_await p.close();
}

// ------------------------------------------------------ reads and writes

WEFT_TEST_P(FileWorkers, OffsetsCursorTruncateAndStat) {
  TempDir dir;
  const std::string path = dir / "f";
  File f = co_await weft::open_file(path, "w+b");
  const std::string data = pattern(300 * 1000);
  std::size_t n = co_await f.write(data);
  EXPECT_EQ(n, data.size());
  std::int64_t at = co_await f.tell();
  EXPECT_EQ(at, 300 * 1000);
  // read_at / write_at leave the cursor alone.
  std::string mid = co_await f.read_at(1000, 5000);
  EXPECT_TRUE(mid == data.substr(1000, 5000));
  std::string tail = co_await f.read_at(299 * 1000, 5000);  // short only at EOF
  EXPECT_TRUE(tail == data.substr(299 * 1000));
  std::string past = co_await f.read_at(1 << 30, 10);
  EXPECT_TRUE(past.empty());
  co_await f.write_at(10, "0123456789");
  at = co_await f.tell();
  EXPECT_EQ(at, 300 * 1000);
  std::string eof = co_await f.read(10);
  EXPECT_TRUE(eof.empty());
  // seek and the cursor.
  at = co_await f.seek(5);
  EXPECT_EQ(at, 5);
  std::string head = co_await f.read(10);
  EXPECT_EQ(head, data.substr(5, 5) + "01234");
  at = co_await f.seek(-3, SEEK_CUR);
  EXPECT_EQ(at, 12);
  at = co_await f.seek(-2, SEEK_END);
  EXPECT_EQ(at, 300 * 1000 - 2);
  // Writing past the end leaves a hole of zeros.
  at = co_await f.seek(400 * 1000);
  co_await f.write("end");
  std::int64_t size = co_await f.size();
  EXPECT_EQ(size, 400 * 1000 + 3);
  std::string hole = co_await f.read_at(300 * 1000, 4);
  EXPECT_EQ(hole, std::string(4, '\0'));
  // truncate: to the cursor by default; the cursor stays.
  at = co_await f.seek(100);
  std::int64_t cut = co_await f.truncate();
  EXPECT_EQ(cut, 100);
  size = co_await f.size();
  EXPECT_EQ(size, 100);
  cut = co_await f.truncate(50);
  EXPECT_EQ(cut, 50);
  at = co_await f.tell();
  EXPECT_EQ(at, 100);
  co_await f.sync();
  co_await f.datasync();
  struct ::stat st = co_await f.stat();
  EXPECT_EQ(st.st_size, 50);
  co_await f.close();
  std::string all = co_await weft::read_file(path);
  EXPECT_EQ(all.size(), 50u);
  EXPECT_EQ(all.substr(10, 10), "0123456789");
}

WEFT_TEST_P(FileWorkers, ReadFileAndWriteFileRoundTripLargeFiles) {
  TempDir dir;
  const std::string path = dir / "big";
  const std::string data = pattern(static_cast<std::size_t>(weft::testing::scaled(8 << 20)), 3);
  std::string copy = data;
  co_await weft::write_file(path, std::move(copy));
  std::string back = co_await weft::read_file(path);
  EXPECT_EQ(back.size(), data.size());
  EXPECT_TRUE(back == data);
  // Cursor reads of odd sizes put it back together too.
  File f = co_await weft::open_file(path, "rb");
  std::string pieces;
  for (;;) {
    std::string piece = co_await f.read(77777);
    if (piece.empty()) break;
    pieces += piece;
  }
  EXPECT_TRUE(pieces == data);
  co_await f.close();
}

WEFT_TEST_P(FileWorkers, TasksOnEveryWorkerWriteWholeRecords) {
  TempDir dir;
  const std::string path = dir / "records";
  File f = co_await weft::open_file(path, "w+b");
  constexpr std::size_t kRecord = 4096;
  const int tasks = 16;
  const int per_task = static_cast<int>(weft::testing::scaled(40));
  std::vector<weft::Task<void>> writers;
  for (int t = 0; t < tasks; ++t) {
    writers.push_back(weft::create_task([](File f, int t, int n) -> Coro<void> {
      for (int i = 0; i < n; ++i) {
        // Cursor writes interleave only as whole records; write_at lands
        // at its offset whatever else runs.
        std::string record(kRecord, static_cast<char>('a' + t));
        co_await f.write(std::move(record));
        std::string mark = std::to_string(t * 1000 + i);
        co_await f.write_at(static_cast<std::int64_t>(1 << 24) + (t * 1000 + i) * 16, mark);
      }
    }(f, t, per_task)));
  }
  for (auto& w : writers) co_await w;
  std::string records =
      co_await f.read_at(0, static_cast<std::int64_t>(tasks) * per_task * kRecord);
  CO_ASSERT_EQ(records.size(), static_cast<std::size_t>(tasks * per_task) * kRecord);
  std::vector<int> count(tasks);
  for (std::size_t r = 0; r < records.size(); r += kRecord) {
    const char c = records[r];
    EXPECT_EQ(records.find_first_not_of(c, r),
              r + kRecord == records.size() ? std::string::npos : records.find_first_not_of(c, r));
    EXPECT_TRUE(records.compare(r, kRecord, std::string(kRecord, c)) == 0) << "record " << r;
    ++count[c - 'a'];
  }
  for (int t = 0; t < tasks; ++t) EXPECT_EQ(count[t], per_task);
  for (int t = 0; t < tasks; ++t) {
    for (int i = 0; i < per_task; ++i) {
      std::string mark = std::to_string(t * 1000 + i);
      std::string got = co_await f.read_at(static_cast<std::int64_t>(1 << 24) + (t * 1000 + i) * 16,
                                           static_cast<std::int64_t>(mark.size()));
      EXPECT_EQ(got, mark);
    }
  }
  co_await f.close();
}

// ---------------------------------------------------------- cancellation

WEFT_TEST_P(FileWorkers, CancelledReadsLoseNoBytes) {
  TempDir dir;
  const std::string path = dir / "f";
  const std::string data = pattern(static_cast<std::size_t>(weft::testing::scaled(16 << 20)), 5);
  std::string copy = data;
  co_await weft::write_file(path, std::move(copy));
  File f = co_await weft::open_file(path, "rb");
  std::string got;
  std::size_t round = 0;
  while (got.size() < data.size()) {
    ++round;
    // Small reads and large ones (a large pread is still running when the
    // cancellation comes: its bytes are kept by the job itself).
    const std::size_t want =
        round % 3 == 0 ? 100000 + round * 7919 % 400000 : 1000 + round * 37 % 9000;
    auto reading = weft::create_task(f.read(static_cast<std::int64_t>(want)));
    // Cancel before it starts, while it runs, or after it finished.
    switch (round % 4) {
      case 0:
        break;
      case 1:
        co_await weft::sleep(0ms);
        break;
      case 2:
        co_await weft::sleep(50us);
        break;
      default:
        co_await weft::sleep(300us);
        break;
    }
    reading.cancel();
    try {
      std::string part = co_await reading;
      got += part;
    } catch (const weft::CancelledError&) {
    }
    // The cursor is always where the caller's bytes end.
    std::int64_t at = co_await f.tell();
    CO_ASSERT_EQ(at, static_cast<std::int64_t>(got.size()));
  }
  std::string rest = co_await f.read();
  EXPECT_TRUE(rest.empty());
  EXPECT_EQ(got.size(), data.size());
  EXPECT_TRUE(got == data);
  co_await f.close();
}

WEFT_TEST_P(FileWorkers, ACancelledWriteLandsWholeOrNotAtAll) {
  TempDir dir;
  const std::string path = dir / "f";
  const std::size_t size = static_cast<std::size_t>(weft::testing::scaled(4 << 20));
  for (int round = 0; round < 6; ++round) {
    File f = co_await weft::open_file(path, "w+b");
    auto writing = weft::create_task(f.write(pattern(size, static_cast<std::size_t>(round))));
    if (round % 2) co_await weft::sleep(std::chrono::microseconds(100 * round));
    writing.cancel();
    bool cancelled = co_await weft::testing::raises_cancelled(writing);
    // The next call runs after the write, if it ran: the cursor says which.
    co_await f.write("!");
    std::int64_t at = co_await f.tell();
    co_await f.close();
    std::string all = co_await weft::read_file(path);
    if (at == 1) {
      EXPECT_TRUE(cancelled);
      EXPECT_EQ(all, "!");
    } else {
      EXPECT_EQ(at, static_cast<std::int64_t>(size) + 1);
      EXPECT_TRUE(all == pattern(size, static_cast<std::size_t>(round)) + "!");
    }
  }
}

WEFT_TEST_P(FileWorkers, DroppingTheLastHandleClosesTheFile) {
  TempDir dir;
  const std::string path = dir / "f";
  int fd = -1;
  {
    File f = co_await weft::open_file(path, "w");
    fd = f.fileno();
    EXPECT_GE(fd, 0);
    co_await f.write("x");
  }
  // Nothing in flight: the fd went with the handle (the leak check at exit
  // checks the same for every test).
  struct ::stat st {};
  struct ::stat file_st {};
  ::stat(path.c_str(), &file_st);
  const bool same =
      ::fstat(fd, &st) == 0 && st.st_ino == file_st.st_ino && st.st_dev == file_st.st_dev;
  EXPECT_FALSE(same);
}

WEFT_TEST_P(FileWorkers, AFileThatShrinksReadsShortAndKeepsTheCursor) {
  TempDir dir;
  const std::string path = dir / "f";
  const std::string data = pattern(1 << 20, 9);
  std::string copy = data;
  co_await weft::write_file(path, std::move(copy));
  File f = co_await weft::open_file(path, "r+b");
  std::string head = co_await f.read(100 * 1000);
  EXPECT_TRUE(head == data.substr(0, 100 * 1000));
  // Another process (here: another fd) cuts the file behind the cursor.
  CO_ASSERT_EQ(::truncate(path.c_str(), 50 * 1000), 0);
  std::string none = co_await f.read(1000);
  EXPECT_TRUE(none.empty());  // EOF: the cursor is past the end
  std::int64_t at = co_await f.tell();
  EXPECT_EQ(at, 100 * 1000);
  std::string rest = co_await f.read();
  EXPECT_TRUE(rest.empty());
  // read_at is short only at the new end.
  std::string tail = co_await f.read_at(40 * 1000, 100 * 1000);
  EXPECT_TRUE(tail == data.substr(40 * 1000, 10 * 1000));
  // A read that runs while the file shrinks under it gets what was there.
  auto reading = weft::create_task(f.read_at(0, 1 << 20));
  CO_ASSERT_EQ(::truncate(path.c_str(), 10 * 1000), 0);
  std::string racing = co_await reading;
  EXPECT_GE(racing.size(), 10u * 1000);
  EXPECT_LE(racing.size(), 50u * 1000);
  EXPECT_TRUE(racing == data.substr(0, racing.size()));
  // Writing at the cursor past the end leaves a hole, as write(2).
  co_await f.write("x");
  std::int64_t size = co_await f.size();
  EXPECT_EQ(size, 100 * 1000 + 1);
  co_await f.close();
}

INSTANTIATE_TEST_SUITE_P(Workers, FileWorkers, weft::testing::kWorkerCounts,
                         weft::testing::worker_name);

// ------------------------------------------------------------ backends

namespace {

// Whether a loop with io_uring on gets a ring that takes file requests.
bool ring_takes_files() {
  weft::detail::Selector selector(true, true);
  weft::detail::IoRing* ring = selector.io_ring();
  return ring && ring->file_io();
}

// Cursor and offset reads and writes, append mode and syncs from tasks on
// every worker; checks every byte.
Coro<void> file_calls(std::string dir) {
  const std::string path = dir + "/calls";
  File f = co_await weft::open_file(path, "w+b");
  const std::string big = pattern(3 << 20, 1);  // several ring requests
  std::size_t n = co_await f.write(big);
  EXPECT_EQ(n, big.size());
  co_await f.sync();
  std::int64_t at = co_await f.seek(0);
  EXPECT_EQ(at, 0);
  std::string back = co_await f.read();
  EXPECT_TRUE(back == big);
  std::vector<weft::Task<void>> tasks;
  for (int t = 0; t < 8; ++t) {
    tasks.push_back(weft::create_task([](File f, int t) -> Coro<void> {
      const std::int64_t offset = static_cast<std::int64_t>(t) * 4096;
      std::string record(4096, static_cast<char>('a' + t));
      std::string copy = record;
      co_await f.write_at(offset, std::move(copy));
      co_await f.datasync();
      std::string got = co_await f.read_at(offset, 4096);
      EXPECT_TRUE(got == record) << "task " << t;
    }(f, t)));
  }
  for (auto& t : tasks) co_await t;
  co_await f.close();
  File a = co_await weft::open_file(path, "ab");
  co_await a.write("tail");
  at = co_await a.tell();
  EXPECT_EQ(at, static_cast<std::int64_t>(big.size()) + 4);
  co_await a.close();
  std::string all = co_await weft::read_file(path);
  CO_ASSERT_EQ(all.size(), big.size() + 4);
  for (int t = 0; t < 8; ++t)
    EXPECT_EQ(all.substr(static_cast<std::size_t>(t) * 4096, 4096),
              std::string(4096, static_cast<char>('a' + t)));
  EXPECT_TRUE(all.compare(8 * 4096, big.size() - 8 * 4096, big, 8 * 4096) == 0);
  EXPECT_EQ(all.substr(big.size()), "tail");
}

class FileBackends : public ::testing::TestWithParam<std::tuple<unsigned, bool>> {};

}  // namespace

TEST_P(FileBackends, ReadsWritesAndSyncsGoThroughTheRingWhereTheLoopHasOne) {
  const auto [workers, io_uring] = GetParam();
  TempDir dir;
  weft::RunOptions options{.workers = workers};
  options.loop.io_uring = io_uring;
  weft::Runtime rt(options);
  rt.block_on(file_calls(dir / ""));
  const weft::RuntimeMetrics m = rt.metrics();
  if (io_uring && ring_takes_files())
    EXPECT_GT(m.total.io_ring_file_ops, 0u);  // the pool still opens, seeks and closes
  else
    EXPECT_EQ(m.total.io_ring_file_ops, 0u);
}

INSTANTIATE_TEST_SUITE_P(Backends, FileBackends,
                         ::testing::Combine(::testing::Values(1u, 2u, 8u), ::testing::Bool()),
                         [](const ::testing::TestParamInfo<std::tuple<unsigned, bool>>& info) {
                           return "w" + std::to_string(std::get<0>(info.param)) +
                                  (std::get<1>(info.param) ? "_io_uring" : "_epoll");
                         });

namespace {
Coro<void> read_waiting_on_a_pipe(int fd, File* out) {
  *out = co_await weft::open_file("/proc/self/fd/" + std::to_string(fd), "rb");
  // Nothing in the pipe: the read stays outstanding when the loop goes.
  weft::create_task(out->read(10));
  co_await weft::sleep(20ms);
}
Coro<std::string> read_rest(File f) {
  std::string rest = co_await f.read();
  co_await f.close();
  co_return rest;
}
}  // namespace

// A standalone loop destroyed while a ring read waits on an empty pipe: the
// ring's teardown ends the request, the read fails (its task is gone with
// the loop), and the File goes on working on another loop.
TEST(FileRing, ALoopDestroyedWithAReadOutstandingLeavesTheFileUsable) {
  int p[2];
  ASSERT_EQ(::pipe2(p, O_CLOEXEC), 0);
  File f;
  {
    weft::EventLoop loop({.io_uring = true});
    loop.run_until_complete(read_waiting_on_a_pipe(p[0], &f));
  }
  EXPECT_FALSE(f.closed());
  ASSERT_EQ(::write(p[1], "late", 4), 4);
  ::close(p[1]);
  weft::EventLoop loop({.io_uring = true});
  std::string rest = loop.run_until_complete(read_rest(f));
  EXPECT_EQ(rest, "late");
  ::close(p[0]);
}

namespace {
Coro<void> start_read(int fd, File* out, std::optional<weft::Task<std::string>>* reading) {
  *out = co_await weft::open_file("/proc/self/fd/" + std::to_string(fd), "rb");
  reading->emplace(weft::create_task(out->read(10)));
  co_await weft::sleep(20ms);  // the read is outstanding
}
Coro<std::string> finish_read(File f, weft::Task<std::string> reading) {
  std::string got = co_await reading;
  co_await f.close();
  co_return got;
}
}  // namespace

// A standalone loop run by one thread and then by another: the ring ends
// the requests the first thread submitted when it exits (-ECANCELED), and a
// file read issues its request again, so the read still gets its bytes.
TEST(FileRing, ALoopMovedToAnotherThreadReissuesItsReads) {
  int p[2];
  ASSERT_EQ(::pipe2(p, O_CLOEXEC), 0);
  File f;
  std::optional<weft::Task<std::string>> reading;
  weft::EventLoop loop({.io_uring = true});
  std::thread first([&] { loop.run_until_complete(start_read(p[0], &f, &reading)); });
  first.join();
  ASSERT_EQ(::write(p[1], "moved", 5), 5);
  ::close(p[1]);
  std::string got = loop.run_until_complete(finish_read(f, *reading));
  EXPECT_EQ(got, "moved");  // fewer than 10: the pipe's EOF
  reading.reset();
  f = File();
  ::close(p[0]);
}

namespace {
std::atomic<bool> g_refuse_enter{false};
int refuse_enter() noexcept { return g_refuse_enter.load() ? -EBUSY : 0; }

// Returns the file requests the ring took for the reads.
Coro<std::uint64_t> reads_past_a_full_ring(std::string dir) {
  // More files than the ring's submission queue has entries (256), each
  // with one read made while io_uring_enter takes nothing: the reads past
  // the full queue are refused by the ring and run on the pool instead.
  constexpr int kFiles = 300;
  std::vector<File> files;
  for (int i = 0; i < kFiles; ++i) {
    const std::string path = dir + "/f" + std::to_string(i);
    co_await weft::write_file(path, pattern(5000, static_cast<std::size_t>(i)));
    files.push_back(co_await weft::open_file(path, "rb"));
  }
  const std::uint64_t before = weft::running_runtime_metrics().total.io_ring_file_ops;
  g_refuse_enter = true;
  std::vector<weft::Task<std::string>> reads;
  for (int i = 0; i < kFiles; ++i) reads.push_back(weft::create_task(files[i].read_at(100, 1000)));
  co_await weft::sleep(5ms);
  g_refuse_enter = false;
  for (int i = 0; i < kFiles; ++i) {
    std::string got = co_await reads[i];
    EXPECT_TRUE(got == pattern(5000, static_cast<std::size_t>(i)).substr(100, 1000))
        << "file " << i;
  }
  const std::uint64_t taken = weft::running_runtime_metrics().total.io_ring_file_ops - before;
  for (auto& f : files) co_await f.close();
  co_return taken;
}
}  // namespace

// A read the ring refuses (its submission queue is full and io_uring_enter
// takes nothing) runs on the blocking pool instead, from where it stands.
TEST(FileRing, ReadsTheRingRefusesRunOnThePool) {
  TempDir dir;
  // The seam is set and cleared only while no loop runs (io_ring.hpp).
  weft::detail::io_ring_enter_fault = refuse_enter;
  std::uint64_t taken = 0;
  {
    weft::RunOptions options{.workers = 1};
    options.loop.io_uring = true;
    weft::Runtime rt(options);
    taken = rt.block_on(reads_past_a_full_ring(dir / ""));
  }
  weft::detail::io_ring_enter_fault = nullptr;
  if (ring_takes_files()) {
    EXPECT_GT(taken, 0u);
    EXPECT_LT(taken, 300u);  // the rest ran on the pool
  }
}
