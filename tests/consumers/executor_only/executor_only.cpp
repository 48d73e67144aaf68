// What a program that needs only tasks, timers and sync writes: it includes
// executor and sync headers and links weft::executor and weft::sync alone
// (.ci/run builds and runs it against an installed weft). Without weft::io
// there is no weft::run(); Runtime::block_on runs the main coroutine.
#include <weft/event_loop.hpp>
#include <weft/gather.hpp>
#include <weft/lock.hpp>
#include <weft/queue.hpp>
#include <weft/runtime.hpp>
#include <weft/sleep.hpp>
#include <weft/task.hpp>
#include <weft/wait_for.hpp>

#include <chrono>
#include <cstdio>

using namespace std::chrono_literals;

namespace {

weft::Coro<void> produce(weft::Queue<int>& q, int n) {
  for (int i = 1; i <= n; ++i) {
    co_await weft::sleep(1ms);
    co_await q.put(i);
  }
}

weft::Coro<int> consume(weft::Queue<int>& q, weft::Lock& lock, int& total, int n) {
  for (int i = 0; i < n; ++i) {
    int v = co_await q.get();
    co_await lock.acquire();
    total += v;
    lock.release();
  }
  co_return n;
}

weft::Coro<int> main_task() {
  weft::Queue<int> q(4);
  weft::Lock lock;
  int total = 0;
  auto consumer = weft::create_task(consume(q, lock, total, 10));
  co_await weft::gather(produce(q, 5), produce(q, 5));
  int consumed = co_await weft::wait_for(consumer, 5s);
  std::printf("executor_only: consumed %d items, total %d\n", consumed, total);
  co_return consumed == 10 && total == 30 ? 0 : 1;
}

}  // namespace

int main() {
  weft::Runtime runtime({.workers = 2});
  int rc = runtime.block_on(main_task());
  weft::EventLoop loop;  // and a standalone loop, asyncio's new_event_loop()
  rc |= loop.run_until_complete(main_task());
  return rc;
}
