// StreamReader against a reference model of asyncio's StreamReader (3.13):
// random chunks fed between and during reads (readline, readuntil with one
// and several separators, readexactly, read(n), read(-1)), a random limit,
// EOF and set_exception at random points, reads cancelled while they wait.
//
// The model is stateless per evaluation: asyncio's readuntil keeps an offset
// across waits, but each wait returns only after new data or EOF, and from
// that the offset-based search and limit check give the same answer as a
// search of the whole buffer. The driver therefore lets the reader run after
// every feed (one evaluation per chunk, as asyncio), and checks each read's
// outcome and the buffer left behind.
#include <weft/weft.hpp>

#include <algorithm>
#include <optional>
#include <string>
#include <vector>

#include "fuzz_input.hpp"
#include "harness.hpp"

namespace {

using weft::fuzz::FuzzInput;
using weft::fuzz::show;

enum class Kind { kRead, kReadline, kReaduntil, kReadexactly };

struct Op {
  // Not an aggregate: passed by value into co_awaited coroutines, which GCC
  // 12 gets wrong for aggregates with a destructor (README, Compilers).
  Op() = default;
  Kind kind = Kind::kRead;
  long n = 0;
  std::vector<std::string> seps;
};

struct Outcome {
  enum Kind { kBlocked, kValue, kIncomplete, kOverrun, kValueError, kStoredError, kCancelled };
  Kind kind = kBlocked;
  std::string value;                    // the value, or the partial of an IncompleteReadError
  std::optional<std::size_t> expected;  // IncompleteReadError's
  std::size_t consumed = 0;             // LimitOverrunError's

  std::string describe() const {
    static const char* names[] = {"blocked",           "value",      "IncompleteReadError",
                                  "LimitOverrunError", "ValueError", "stored error",
                                  "cancelled"};
    std::string s = names[kind];
    if (kind == kValue || kind == kIncomplete) s += " " + show(value);
    if (kind == kIncomplete)
      s += " expected " + (expected ? std::to_string(*expected) : std::string("none"));
    if (kind == kOverrun) s += " consumed " + std::to_string(consumed);
    return s;
  }
  bool operator==(const Outcome& o) const {
    return kind == o.kind && value == o.value && expected == o.expected && consumed == o.consumed;
  }
};

struct Model {
  std::string buf;
  bool eof = false;
  bool error = false;
  std::size_t limit = 1;

  /// The outcome of `op` on the buffer as it is now; consumes what asyncio
  /// consumes. kBlocked (nothing consumed) when asyncio would wait.
  Outcome eval(const Op& op) {
    Outcome o;
    switch (op.kind) {
      case Kind::kRead:
        if (error) return stored();
        if (op.n == 0) return value("");
        if (op.n < 0) {
          if (!eof) return o;
          return value(std::exchange(buf, {}));
        }
        if (buf.empty() && !eof) return o;
        return take(std::min<std::size_t>(buf.size(), static_cast<std::size_t>(op.n)));
      case Kind::kReadexactly: {
        if (op.n < 0) return kind(Outcome::kValueError);
        if (error) return stored();
        if (op.n == 0) return value("");
        auto want = static_cast<std::size_t>(op.n);
        if (buf.size() >= want) return take(want);
        if (!eof) return o;
        o.kind = Outcome::kIncomplete;
        o.value = std::exchange(buf, {});
        o.expected = want;
        return o;
      }
      case Kind::kReaduntil:
        return readuntil(op.seps);
      case Kind::kReadline: {
        Outcome r = readuntil({"\n"});
        if (r.kind == Outcome::kIncomplete) return value(r.value);
        if (r.kind != Outcome::kOverrun) return r;
        if (r.consumed < buf.size() && buf[r.consumed] == '\n')
          buf.erase(0, r.consumed + 1);
        else
          buf.clear();
        return kind(Outcome::kValueError);
      }
    }
    return o;
  }

 private:
  Outcome readuntil(std::vector<std::string> seps) {
    if (seps.empty()) return kind(Outcome::kValueError);
    // asyncio sorts by length: of two matches ending at the same byte the
    // shorter separator's (the later start) is the one checked against the limit.
    std::stable_sort(seps.begin(), seps.end(), [](const std::string& a, const std::string& b) {
      return a.size() < b.size();
    });
    std::size_t min_len = seps[0].size(), max_len = 0;
    for (const auto& s : seps) {
      min_len = std::min(min_len, s.size());
      max_len = std::max(max_len, s.size());
    }
    if (min_len == 0) return kind(Outcome::kValueError);
    if (error) return stored();
    std::optional<std::size_t> start, end;
    for (const auto& s : seps) {
      std::size_t at = buf.find(s);
      if (at != std::string::npos && (!end || at + s.size() < *end)) {
        start = at;
        end = at + s.size();
      }
    }
    Outcome o;
    if (end) {
      if (*start > limit) return overrun(*start);
      return take(*end);
    }
    if (buf.size() >= min_len) {
      std::size_t offset = buf.size() + 1 > max_len ? buf.size() + 1 - max_len : 0;
      if (offset > limit) return overrun(offset);
    }
    if (!eof) return o;
    o.kind = Outcome::kIncomplete;
    o.value = std::exchange(buf, {});
    return o;
  }
  static Outcome kind(Outcome::Kind k) {
    Outcome o;
    o.kind = k;
    return o;
  }
  static Outcome stored() { return kind(Outcome::kStoredError); }
  static Outcome value(std::string v) {
    Outcome o = kind(Outcome::kValue);
    o.value = std::move(v);
    return o;
  }
  static Outcome overrun(std::size_t consumed) {
    Outcome o = kind(Outcome::kOverrun);
    o.consumed = consumed;
    return o;
  }
  Outcome take(std::size_t n) {
    Outcome o = value(buf.substr(0, n));
    buf.erase(0, n);
    return o;
  }
};

struct StoredError : std::exception {};

weft::Coro<Outcome> run_op(weft::StreamReader reader, Op op) {
  Outcome o;
  try {
    switch (op.kind) {
      case Kind::kRead:
        o.value = co_await reader.read(op.n);
        break;
      case Kind::kReadexactly:
        o.value = co_await reader.readexactly(op.n);
        break;
      case Kind::kReadline:
        o.value = co_await reader.readline();
        break;
      case Kind::kReaduntil:
        if (op.seps.size() == 1) {
          std::string sep = op.seps[0];
          o.value = co_await reader.readuntil(std::string_view(sep));
        } else {
          std::vector<std::string> seps = op.seps;
          o.value = co_await reader.readuntil(std::move(seps));
        }
        break;
    }
    o.kind = Outcome::kValue;
  } catch (const weft::IncompleteReadError& e) {
    o.kind = Outcome::kIncomplete;
    o.value = e.partial();
    o.expected = e.expected();
  } catch (const weft::LimitOverrunError& e) {
    o.kind = Outcome::kOverrun;
    o.consumed = e.consumed();
  } catch (const weft::ValueError&) {
    o.kind = Outcome::kValueError;
  } catch (const StoredError&) {
    o.kind = Outcome::kStoredError;
  }
  co_return o;
}

constexpr std::string_view kAlphabet = "ab\r\n";

// Lets a woken reader run: its wake-up and its step are each one turn of
// the loop's ready queue.
weft::Coro<void> settle() {
  for (int i = 0; i < 3; ++i) co_await weft::sleep(weft::Duration::zero());
}

weft::Coro<void> drive(FuzzInput& in) {
  Model m;
  m.limit = in.range(1, 16);
  weft::StreamReader reader(static_cast<ssize_t>(m.limit));
  auto feed = [&](std::string chunk) {
    reader.feed_data(chunk);
    m.buf += chunk;
  };
  auto feed_eof = [&] {
    reader.feed_eof();
    m.eof = true;
  };
  for (int step = 0; step < 64 && !in.empty(); ++step) {
    unsigned action = in.byte() % 16;
    if (action < 5) {
      if (!m.eof) feed(in.text(20, kAlphabet));
      continue;
    }
    if (action == 5) {
      if (!m.eof) feed_eof();
      continue;
    }
    if (action == 6 && in.byte() % 8 == 0) {
      reader.set_exception(std::make_exception_ptr(StoredError{}));
      m.error = true;
      continue;
    }
    Op op;
    switch (action % 5) {
      case 0:
        op.kind = Kind::kRead;
        op.n = static_cast<long>(in.range(0, 24)) - 2;
        break;
      case 1:
        op.kind = Kind::kReadline;
        break;
      case 2:
        op.kind = Kind::kReadexactly;
        op.n = static_cast<long>(in.range(0, 24)) - 1;
        break;
      default: {
        op.kind = Kind::kReaduntil;
        std::size_t count = in.range(1, 3);
        if (in.byte() % 32 == 0) count = 0;  // ValueError: no separator
        for (std::size_t i = 0; i < count; ++i) {
          std::string sep = in.text(3, kAlphabet);
          if (sep.empty() && in.byte() % 8 != 0) sep = "\n";  // rarely an empty one: ValueError
          op.seps.push_back(sep);
        }
      }
    }
    Outcome expected = m.eval(op);
    auto task = weft::create_task(run_op(reader, op));
    co_await settle();
    bool cancelled = false;
    while (expected.kind == Outcome::kBlocked) {
      if (task.done())
        weft::fuzz::fail("stream_reader",
                         "a read finished where asyncio waits; model buffer " + show(m.buf));
      if (in.byte() % 8 == 0) {
        task.cancel();
        co_await settle();
        if (!task.cancelled())
          weft::fuzz::fail("stream_reader", "a cancelled read did not end cancelled");
        cancelled = true;
        break;
      }
      std::string chunk = in.text(20, kAlphabet);
      if (chunk.empty() || m.eof)
        feed_eof();
      else
        feed(chunk);
      co_await settle();
      expected = m.eval(op);
    }
    if (cancelled) continue;
    if (!task.done())
      weft::fuzz::fail("stream_reader",
                       "a read still waits where asyncio returns " + expected.describe());
    Outcome got = co_await task;
    if (!(got == expected))
      weft::fuzz::fail("stream_reader", "got " + got.describe() + ", asyncio gives " +
                                            expected.describe() + "; limit " +
                                            std::to_string(m.limit));
  }
  // What is left: everything still buffered, then EOF.
  if (!m.eof) feed_eof();
  if (reader.at_eof() != (m.buf.empty() && !m.error) && !m.error)
    weft::fuzz::fail("stream_reader", "at_eof() disagrees with the model");
  Op rest;
  rest.kind = Kind::kRead;
  rest.n = -1;
  Outcome expected = m.eval(rest);
  Outcome got = co_await run_op(reader, rest);
  if (!(got == expected))
    weft::fuzz::fail("stream_reader", "read() of the rest got " + got.describe() +
                                          ", asyncio gives " + expected.describe());
}

}  // namespace

int weft_fuzz_stream_reader(const std::uint8_t* data, std::size_t size) {
  FuzzInput in(data, size);
  weft::EventLoop loop;
  loop.run_until_complete(drive(in));
  return 0;
}
