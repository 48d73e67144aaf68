// A program that is stuck in two ways, to try weft's observability on:
//
//   stuck [--introspect PATH] [--dump-after SECONDS]
//
// - `alice` and `bob` deadlock on two Locks: each takes one, then waits for
//   the other's (through a helper coroutine, so the await chain has depth).
// - `spinner` holds its worker for 300 ms once a second (a blocking step):
//   the stall detector reports it on stderr, with a backtrace.
// It runs until killed. With --introspect, `weft-ps [--tree] PATH` shows the
// tasks and what they await from outside; with --dump-after, after that many
// seconds it prints every task's await chain as a tree
// (weft::print_call_graph) on stdout.
#include <weft/weft.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>

using namespace std::chrono_literals;

namespace {

weft::Coro<void> take_both(const char* who, weft::Lock& first, weft::Lock& second) {
  co_await first.acquire();
  std::printf("%s: holds its first lock\n", who);
  std::fflush(stdout);
  co_await weft::sleep(50ms);  // long enough for the other to take its first
  co_await second.acquire();   // never returns: the other holds it and waits for ours
  second.release();
  first.release();
}

weft::Coro<void> alice(weft::Lock& a, weft::Lock& b) { co_await take_both("alice", a, b); }
weft::Coro<void> bob(weft::Lock& a, weft::Lock& b) { co_await take_both("bob", b, a); }

weft::Coro<void> spinner() {
  for (;;) {
    co_await weft::sleep(700ms);
    // A blocking step: nothing else runs on this worker meanwhile.
    auto until = std::chrono::steady_clock::now() + 300ms;
    while (std::chrono::steady_clock::now() < until) {
    }
  }
}

weft::Coro<void> main_coro(double dump_after) {
  weft::Lock a, b;
  weft::TaskOptions ao{.name = "alice"}, bo{.name = "bob"}, so{.name = "spinner"};
  weft::Task<void> t1 = weft::create_task(alice(a, b), ao);
  weft::Task<void> t2 = weft::create_task(bob(a, b), bo);
  weft::Task<void> t3 = weft::create_task(spinner(), so);
  if (dump_after > 0) {
    co_await weft::sleep(
        std::chrono::duration_cast<weft::Duration>(std::chrono::duration<double>(dump_after)));
    weft::print_call_graph();
  }
  co_await t1;  // forever
}

}  // namespace

int main(int argc, char** argv) {
  double dump_after = 0;
  weft::RunOptions options{.workers = 2};
  options.stall_backtrace = true;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--dump-after") == 0 && i + 1 < argc) {
      dump_after = std::atof(argv[++i]);
    } else if (std::strcmp(argv[i], "--introspect") == 0 && i + 1 < argc) {
      options.introspect = argv[++i];
    } else {
      std::fprintf(stderr, "usage: stuck [--introspect PATH] [--dump-after SECONDS]\n");
      return 2;
    }
  }
  weft::run(main_coro(dump_after), options);
  return 0;
}
