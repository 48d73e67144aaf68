// Lock, Semaphore, Condition, Queue (also LifoQueue, PriorityQueue) and Barrier against models of
// asyncio's (3.12) at one worker (a standalone EventLoop: asyncio's order exactly). The driver
// starts actor tasks that acquire / get / put, releases, puts and gets without waiting, cancels
// waiting actors, runs timed acquires / gets / puts (wait_for with a microsecond: they either
// complete at once or time out with nothing taken), and after each step lets every woken task run,
// then compares what each actor holds or received, locked() and qsize() with the model.
//
// One step is a race on purpose: a release (or a put / get without waiting)
// immediately followed by cancelling the waiter it wakes, before that waiter
// runs. asyncio hands the permit or item on to the next waiter; weft may
// instead complete the woken waiter's wait (composition.md: a cancellation
// meeting a completion). The model accepts either outcome, as long as
// nothing is lost or taken twice, and follows the one that happened.
#include <weft/weft.hpp>

#include <algorithm>
#include <deque>
#include <optional>
#include <string>

#include "fuzz_input.hpp"
#include "harness.hpp"

namespace {

using namespace std::chrono_literals;
using weft::fuzz::FuzzInput;

enum class St { kWaiting, kDone, kCancelled, kTimedOut };

const char* name(St s) {
  switch (s) {
    case St::kWaiting:
      return "waiting";
    case St::kDone:
      return "done";
    case St::kCancelled:
      return "cancelled";
    case St::kTimedOut:
      return "timed out";
  }
  return "?";
}

/// What an actor task records about its one operation.
struct Rec {
  St st = St::kWaiting;
  int value = -1;  // a getter's item
};

weft::Coro<void> settle() {
  for (int i = 0; i < 4; ++i) co_await weft::sleep(weft::Duration::zero());
}

/// Waits (yielding, then sleeping) until `t` is done; a timed operation's
/// timer needs the loop to go round until it is due.
template <class T>
weft::Coro<void> settle_until_done(const weft::Task<T>& t, const char* harness) {
  for (int i = 0; i < 2000 && !t.done(); ++i) co_await weft::sleep(50us);
  if (!t.done()) weft::fuzz::fail(harness, "a timed operation did not end within 100 ms");
  co_await settle();
}

// ------------------------------------------------------------ Lock, Semaphore

template <class Prim>
weft::Coro<void> acquirer(Prim* p, Rec* r, bool timed) {
  try {
    if (timed) {
      auto op = p->acquire();
      co_await weft::wait_for(std::move(op), weft::Duration(1us));
    } else {
      co_await p->acquire();
    }
    r->st = St::kDone;
  } catch (const weft::CancelledError&) {
    r->st = St::kCancelled;
    throw;
  } catch (const weft::TimeoutError&) {
    r->st = St::kTimedOut;
  }
}

/// Permits (a Lock is one): free count, FIFO waiters, who holds one.
struct PermitModel {
  long free = 0;
  std::deque<std::size_t> waiters;
  std::deque<Rec> model;  // what each actor should have recorded

  void grant_or_free() {
    if (waiters.empty()) {
      ++free;
      return;
    }
    model[waiters.front()].st = St::kDone;
    waiters.pop_front();
  }
};

template <class Prim>
weft::Coro<void> drive_permits(FuzzInput& in, Prim& prim, long permits, const char* harness) {
  PermitModel m;
  m.free = permits;
  std::deque<Rec> recs;
  std::deque<weft::Task<void>> tasks;
  std::deque<bool> released;  // a holder's permit was given back
  auto check = [&](const char* step) {
    for (std::size_t i = 0; i < recs.size(); ++i)
      if (recs[i].st != m.model[i].st)
        weft::fuzz::fail(harness, std::string(step) + ": actor " + std::to_string(i) + " is " +
                                      name(recs[i].st) + ", asyncio's would be " +
                                      name(m.model[i].st));
    if (prim.locked() != (m.free == 0))
      weft::fuzz::fail(harness, std::string(step) + ": locked() is " +
                                    std::to_string(prim.locked()) + " with " +
                                    std::to_string(m.free) + " permits free in the model");
  };
  auto holder = [&](unsigned pick) -> std::optional<std::size_t> {
    std::vector<std::size_t> holders;
    for (std::size_t i = 0; i < recs.size(); ++i)
      if (m.model[i].st == St::kDone && !released[i]) holders.push_back(i);
    if (holders.empty()) return std::nullopt;
    return holders[pick % holders.size()];
  };
  for (int step = 0; step < 48 && !in.empty(); ++step) {
    unsigned op = in.byte() % 8;
    if (op <= 2) {  // an actor acquires (op 2: timed)
      bool timed = op == 2;
      std::size_t id = recs.size();
      recs.emplace_back();
      m.model.emplace_back();
      released.push_back(false);
      tasks.push_back(weft::create_task(acquirer(&prim, &recs.back(), timed)));
      if (m.free > 0 && m.waiters.empty()) {
        --m.free;
        m.model[id].st = St::kDone;
      } else if (timed) {
        m.model[id].st = St::kTimedOut;
      } else {
        m.waiters.push_back(id);
      }
      if (timed)
        co_await settle_until_done(tasks.back(), harness);
      else
        co_await settle();
      check(timed ? "timed acquire" : "acquire");
    } else if (op <= 4) {  // a holder releases
      auto h = holder(in.byte());
      if (!h) continue;
      released[*h] = true;
      prim.release();
      m.grant_or_free();
      co_await settle();
      check("release");
    } else if (op == 5) {  // cancel a waiter
      if (m.waiters.empty()) continue;
      std::size_t at = in.byte() % m.waiters.size();
      std::size_t id = m.waiters[at];
      m.waiters.erase(m.waiters.begin() + static_cast<long>(at));
      m.model[id].st = St::kCancelled;
      tasks[id].cancel();
      co_await settle();
      check("cancel a waiter");
    } else if (op == 6) {  // race: release, then cancel the waiter it wakes
      auto h = holder(in.byte());
      if (!h || m.waiters.empty()) continue;
      std::size_t first = m.waiters.front();
      released[*h] = true;
      prim.release();
      tasks[first].cancel();
      co_await settle();
      m.waiters.pop_front();
      if (recs[first].st == St::kDone) {
        m.model[first].st = St::kDone;  // weft completed the wait
      } else if (recs[first].st == St::kCancelled) {
        m.model[first].st = St::kCancelled;  // asyncio's outcome: the permit moves on
        m.grant_or_free();
      } else {
        weft::fuzz::fail(harness, std::string("release meeting a cancel: the woken waiter is ") +
                                      name(recs[first].st));
      }
      check("release meeting a cancel");
    } else {  // release of a Lock nobody holds: RuntimeError, nothing changes
      if constexpr (std::is_same_v<Prim, weft::Lock>) {
        if (m.free == 0) continue;
        bool raised = false;
        try {
          prim.release();
        } catch (const weft::RuntimeError&) {
          raised = true;
        }
        if (!raised) weft::fuzz::fail(harness, "release() of an unlocked Lock did not raise");
        check("release unlocked");
      }
    }
  }
  // Wind down: cancel the waiters, release what is held: every permit is back.
  for (std::size_t id : m.waiters) tasks[id].cancel();
  co_await settle();
  for (std::size_t id : m.waiters)
    if (recs[id].st != St::kCancelled && recs[id].st != St::kDone)
      weft::fuzz::fail(harness, "a waiter cancelled at the end did not end");
  for (std::size_t i = 0; i < recs.size(); ++i)
    if (recs[i].st == St::kDone && !released[i]) prim.release();
  co_await settle();
  if (prim.locked() != (permits == 0)) weft::fuzz::fail(harness, "permits lost at the end");
}

// ---------------------------------------------------------------------- Queue

/// Which item a get takes: asyncio's Queue (oldest), LifoQueue (newest),
/// PriorityQueue (smallest; equal ints are indistinguishable).
enum class Order { fifo, lifo, priority };

/// The model's items in put order; `next()` is the one a get takes.
class ModelItems {
 public:
  explicit ModelItems(Order order) : order_(order) {}
  bool empty() const { return v_.empty(); }
  std::size_t size() const { return v_.size(); }
  void push(int item) { v_.push_back(item); }
  int next() const { return *at(); }
  void pop() { v_.erase(at()); }

 private:
  std::deque<int>::const_iterator at() const {
    switch (order_) {
      case Order::fifo:
        return v_.begin();
      case Order::lifo:
        return v_.end() - 1;
      case Order::priority:
        return std::min_element(v_.begin(), v_.end());
    }
    return v_.begin();
  }
  Order order_;
  std::deque<int> v_;
};

template <class Q>
weft::Coro<void> getter(Q* q, Rec* r, bool timed) {
  try {
    if (timed) {
      auto op = q->get();
      r->value = co_await weft::wait_for(std::move(op), weft::Duration(1us));
    } else {
      r->value = co_await q->get();
    }
    r->st = St::kDone;
  } catch (const weft::CancelledError&) {
    r->st = St::kCancelled;
    throw;
  } catch (const weft::TimeoutError&) {
    r->st = St::kTimedOut;
  }
}

template <class Q>
weft::Coro<void> putter(Q* q, Rec* r, int item, bool timed) {
  try {
    if (timed) {
      auto op = q->put(item);
      co_await weft::wait_for(std::move(op), weft::Duration(1us));
    } else {
      co_await q->put(item);
    }
    r->st = St::kDone;
  } catch (const weft::CancelledError&) {
    r->st = St::kCancelled;
    throw;
  } catch (const weft::TimeoutError&) {
    r->st = St::kTimedOut;
  }
}

/// Queue, LifoQueue and PriorityQueue: the same actors and races; the model
/// differs only in which item a get takes. Items are put in increasing order
/// for Queue and LifoQueue (each is unique, so the order shows), and drawn
/// from the input (0-7, so equal priorities occur) for PriorityQueue.
template <class Q>
weft::Coro<void> drive_queue(FuzzInput& in, Order order, const char* harness) {
  std::size_t maxsize = in.range(0, 3);
  Q q(maxsize);
  ModelItems items(order);
  std::deque<std::size_t> getters;
  std::deque<std::pair<std::size_t, int>> putters;
  std::deque<Rec> recs, model;
  std::deque<weft::Task<void>> tasks;
  int counter = 0;
  auto next_item = [&] {
    return order == Order::priority ? static_cast<int>(in.byte() % 8) : counter++;
  };
  auto full = [&] { return maxsize != 0 && items.size() >= maxsize; };
  // An item arrived (a put): the first getter takes it.
  auto deliver = [&] {
    if (!getters.empty() && !items.empty()) {
      model[getters.front()].st = St::kDone;
      model[getters.front()].value = items.next();
      items.pop();
      getters.pop_front();
    }
  };
  // A slot freed (a get): the first putter's item goes in.
  auto admit = [&] {
    if (!putters.empty() && !full()) {
      model[putters.front().first].st = St::kDone;
      items.push(putters.front().second);
      putters.pop_front();
    }
  };
  auto check = [&](const char* step) {
    for (std::size_t i = 0; i < recs.size(); ++i)
      if (recs[i].st != model[i].st || recs[i].value != model[i].value)
        weft::fuzz::fail(harness, std::string(step) + ": actor " + std::to_string(i) + " is " +
                                      name(recs[i].st) + " with " + std::to_string(recs[i].value) +
                                      ", asyncio's would be " + name(model[i].st) + " with " +
                                      std::to_string(model[i].value));
    if (q.qsize() != items.size())
      weft::fuzz::fail(harness, std::string(step) + ": qsize() " + std::to_string(q.qsize()) +
                                    ", model " + std::to_string(items.size()));
  };
  auto new_actor = [&] {
    recs.emplace_back();
    model.emplace_back();
    return recs.size() - 1;
  };
  for (int step = 0; step < 48 && !in.empty(); ++step) {
    unsigned op = in.byte() % 10;
    if (op <= 1) {  // an actor gets (op 1: timed)
      bool timed = op == 1;
      std::size_t id = new_actor();
      tasks.push_back(weft::create_task(getter(&q, &recs[id], timed)));
      if (!items.empty() && getters.empty()) {
        model[id].st = St::kDone;
        model[id].value = items.next();
        items.pop();
        admit();
      } else if (timed) {
        model[id].st = St::kTimedOut;
      } else {
        getters.push_back(id);
      }
      if (timed)
        co_await settle_until_done(tasks.back(), harness);
      else
        co_await settle();
      check("get");
    } else if (op <= 3) {  // an actor puts (op 3: timed)
      bool timed = op == 3;
      std::size_t id = new_actor();
      int item = next_item();
      tasks.push_back(weft::create_task(putter(&q, &recs[id], item, timed)));
      if (!full() && putters.empty()) {
        model[id].st = St::kDone;
        items.push(item);
        deliver();
      } else if (timed) {
        model[id].st = St::kTimedOut;
      } else {
        putters.emplace_back(id, item);
      }
      if (timed)
        co_await settle_until_done(tasks.back(), harness);
      else
        co_await settle();
      check("put");
    } else if (op == 4) {  // put_nowait
      int item = next_item();
      bool raised = false;
      try {
        q.put_nowait(item);
      } catch (const weft::QueueFull&) {
        raised = true;
      }
      if (raised != full()) weft::fuzz::fail(harness, "put_nowait: QueueFull disagrees");
      if (!raised) {
        items.push(item);
        deliver();
      }
      co_await settle();
      check("put_nowait");
    } else if (op == 5) {  // get_nowait
      std::optional<int> got;
      try {
        got = q.get_nowait();
      } catch (const weft::QueueEmpty&) {
      }
      if (got.has_value() == items.empty() || (got && *got != items.next()))
        weft::fuzz::fail(harness, "get_nowait disagrees with the model");
      if (got) {
        items.pop();
        admit();
      }
      co_await settle();
      check("get_nowait");
    } else if (op == 6) {  // cancel a waiting getter or putter
      bool pick_getter = in.boolean();
      if (pick_getter && !getters.empty()) {
        std::size_t at = in.byte() % getters.size();
        std::size_t id = getters[at];
        getters.erase(getters.begin() + static_cast<long>(at));
        model[id].st = St::kCancelled;
        tasks[id].cancel();
      } else if (!putters.empty()) {
        std::size_t at = in.byte() % putters.size();
        std::size_t id = putters[at].first;
        putters.erase(putters.begin() + static_cast<long>(at));
        model[id].st = St::kCancelled;
        tasks[id].cancel();
      } else {
        continue;
      }
      co_await settle();
      check("cancel");
    } else if (op == 7) {  // race: put_nowait, then cancel the getter it wakes
      if (getters.empty()) continue;
      std::size_t first = getters.front();
      int item = next_item();
      q.put_nowait(item);  // getters wait only on an empty queue: never full here
      tasks[first].cancel();
      co_await settle();
      getters.pop_front();
      items.push(item);
      if (recs[first].st == St::kDone) {
        model[first].st = St::kDone;
        model[first].value = items.next();
        items.pop();
      } else if (recs[first].st == St::kCancelled) {
        model[first].st = St::kCancelled;
        deliver();
      } else {
        weft::fuzz::fail(harness, "put meeting a cancel: the woken getter still waits");
      }
      check("put meeting a cancel");
    } else if (op == 8) {  // race: get_nowait, then cancel the putter it wakes
      if (putters.empty()) continue;
      std::size_t first = putters.front().first;
      int got = q.get_nowait();  // putters wait only on a full queue: never empty here
      if (got != items.next()) weft::fuzz::fail(harness, "get_nowait in a race: wrong item");
      tasks[first].cancel();
      co_await settle();
      items.pop();
      if (recs[first].st == St::kDone) {
        model[first].st = St::kDone;
        items.push(putters.front().second);
        putters.pop_front();
      } else if (recs[first].st == St::kCancelled) {
        model[first].st = St::kCancelled;
        putters.pop_front();
        admit();
      } else {
        weft::fuzz::fail(harness, "get meeting a cancel: the woken putter still waits");
      }
      check("get meeting a cancel");
    }
  }
  for (std::size_t id : getters) tasks[id].cancel();
  for (auto& [id, item] : putters) tasks[id].cancel();
  co_await settle();
  for (auto& t : tasks)
    if (!t.done()) weft::fuzz::fail(harness, "an actor still runs at the end");
}

// ------------------------------------------------------------------ Condition

weft::Coro<void> cond_waiter(weft::Condition* c, Rec* r) {
  co_await c->acquire();
  try {
    co_await c->wait();
  } catch (const weft::CancelledError&) {
    r->st = St::kCancelled;  // wait() holds the lock again when it raises
    c->release();
    throw;
  }
  r->st = St::kDone;
  c->release();
}

weft::Coro<void> drive_condition(FuzzInput& in) {
  const char* harness = "condition";
  weft::Condition cond;
  std::deque<std::size_t> waiters;
  std::deque<Rec> recs, model;
  std::deque<weft::Task<void>> tasks;
  auto check = [&](const char* step) {
    for (std::size_t i = 0; i < recs.size(); ++i)
      if (recs[i].st != model[i].st)
        weft::fuzz::fail(harness, std::string(step) + ": actor " + std::to_string(i) + " is " +
                                      name(recs[i].st) + ", asyncio's would be " +
                                      name(model[i].st));
    if (cond.locked()) weft::fuzz::fail(harness, std::string(step) + ": the lock is left held");
  };
  auto wake = [&](std::size_t n) {
    for (; n > 0 && !waiters.empty(); --n) {
      model[waiters.front()].st = St::kDone;
      waiters.pop_front();
    }
  };
  for (int step = 0; step < 48 && !in.empty(); ++step) {
    unsigned op = in.byte() % 7;
    if (op <= 1) {  // an actor waits
      recs.emplace_back();
      model.emplace_back();
      waiters.push_back(recs.size() - 1);
      tasks.push_back(weft::create_task(cond_waiter(&cond, &recs.back())));
      co_await settle();
      check("wait");
    } else if (op <= 3) {  // notify(1-3), or notify_all
      std::size_t n = in.range(0, 3);
      co_await cond.acquire();
      if (n == 0) {
        cond.notify_all();
        wake(waiters.size());
      } else {
        cond.notify(n);
        wake(n);
      }
      cond.release();
      co_await settle();
      check("notify");
    } else if (op == 4) {  // cancel a waiter
      if (waiters.empty()) continue;
      std::size_t at = in.byte() % waiters.size();
      std::size_t id = waiters[at];
      waiters.erase(waiters.begin() + static_cast<long>(at));
      model[id].st = St::kCancelled;
      tasks[id].cancel();
      co_await settle();
      check("cancel");
    } else if (op == 5) {  // race: notify(1), then cancel the waiter it woke
      if (waiters.empty()) continue;
      std::size_t first = waiters.front();
      co_await cond.acquire();
      cond.notify(1);
      cond.release();
      tasks[first].cancel();
      co_await settle();
      waiters.pop_front();
      if (recs[first].st == St::kDone) {
        model[first].st = St::kDone;
      } else if (recs[first].st == St::kCancelled) {
        model[first].st = St::kCancelled;  // the notification passes on (asyncio 3.13)
        wake(1);
      } else {
        weft::fuzz::fail(harness, "notify meeting a cancel: the woken waiter still waits");
      }
      check("notify meeting a cancel");
    } else {  // notify without the lock: RuntimeError
      bool raised = false;
      try {
        cond.notify(1);
      } catch (const weft::RuntimeError&) {
        raised = true;
      }
      if (!raised) weft::fuzz::fail(harness, "notify() without the lock did not raise");
      check("notify unlocked");
    }
  }
  for (std::size_t id : waiters) {
    tasks[id].cancel();
    model[id].st = St::kCancelled;
  }
  co_await settle();
  for (auto& t : tasks)
    if (!t.done()) weft::fuzz::fail(harness, "an actor still runs at the end");
  check("end");
}

// -------------------------------------------------------------------- Barrier

enum class BarrierSt { kWaiting, kPassed, kBroken, kCancelled };

const char* name(BarrierSt s) {
  switch (s) {
    case BarrierSt::kWaiting:
      return "waiting";
    case BarrierSt::kPassed:
      return "passed";
    case BarrierSt::kBroken:
      return "broken";
    case BarrierSt::kCancelled:
      return "cancelled";
  }
  return "?";
}

struct BarrierRec {
  BarrierSt st = BarrierSt::kWaiting;
  std::size_t index = 0;  // wait()'s value once passed
  bool operator==(const BarrierRec&) const = default;
};

weft::Coro<void> barrier_waiter(weft::Barrier* b, BarrierRec* r) {
  try {
    std::size_t index = co_await b->wait();
    r->index = index;
    r->st = BarrierSt::kPassed;
  } catch (const weft::BrokenBarrierError&) {
    r->st = BarrierSt::kBroken;
  } catch (const weft::CancelledError&) {
    r->st = BarrierSt::kCancelled;
    throw;
  }
}

/// Lets every woken task run: each of up to `parties` waiters takes the
/// barrier's lock in turn on its way out.
weft::Coro<void> settle_barrier(std::size_t parties) {
  for (std::size_t i = 0; i < 8 + 4 * parties; ++i) co_await weft::sleep(weft::Duration::zero());
}

// asyncio.Barrier (3.11+): waiters fill it in arrival order, each getting
// the number of tasks waiting when it arrived; the parties-th releases them
// all; a waiter cancelled while it fills leaves it; reset() breaks the
// waiters and leaves it filling and whole; abort() breaks the waiters and
// every later wait() until reset().
weft::Coro<void> drive_barrier(FuzzInput& in, std::size_t parties) {
  const char* harness = "barrier";
  weft::Barrier barrier(static_cast<std::int64_t>(parties));
  bool broken = false;
  std::deque<std::size_t> waiters;  // filling, in arrival order
  std::deque<BarrierRec> recs, model;
  std::deque<std::size_t> arrival;  // each actor's index: the waiters there when it came
  std::deque<weft::Task<void>> tasks;
  auto check = [&](const char* step) {
    for (std::size_t i = 0; i < recs.size(); ++i)
      if (!(recs[i] == model[i]))
        weft::fuzz::fail(harness, std::string(step) + ": actor " + std::to_string(i) + " is " +
                                      name(recs[i].st) + " (index " +
                                      std::to_string(recs[i].index) + "), asyncio's would be " +
                                      name(model[i].st) + " (index " +
                                      std::to_string(model[i].index) + ")");
    if (barrier.broken() != broken)
      weft::fuzz::fail(harness, std::string(step) + ": broken() disagrees with the model");
    if (barrier.n_waiting() != waiters.size())
      weft::fuzz::fail(harness, std::string(step) + ": n_waiting() is " +
                                    std::to_string(barrier.n_waiting()) + ", asyncio's would be " +
                                    std::to_string(waiters.size()));
  };
  auto break_waiters = [&] {
    for (std::size_t id : waiters) model[id].st = BarrierSt::kBroken;
    waiters.clear();
  };
  for (int step = 0; step < 64 && !in.empty(); ++step) {
    unsigned op = in.byte() % 8;
    if (op <= 3) {  // an actor waits
      recs.emplace_back();
      model.emplace_back();
      arrival.push_back(waiters.size());
      std::size_t id = recs.size() - 1;
      if (broken) {
        model[id].st = BarrierSt::kBroken;
      } else {
        waiters.push_back(id);
        if (waiters.size() == parties) {
          for (std::size_t w : waiters) {
            model[w].st = BarrierSt::kPassed;
            model[w].index = arrival[w];
          }
          waiters.clear();
        }
      }
      tasks.push_back(weft::create_task(barrier_waiter(&barrier, &recs.back())));
      co_await settle_barrier(parties);
      check("wait");
    } else if (op <= 5) {  // cancel a waiter
      if (waiters.empty()) continue;
      std::size_t at = in.byte() % waiters.size();
      std::size_t id = waiters[at];
      waiters.erase(waiters.begin() + static_cast<long>(at));
      model[id].st = BarrierSt::kCancelled;
      tasks[id].cancel();
      co_await settle_barrier(parties);
      check("cancel");
    } else if (op == 6) {
      co_await barrier.reset();
      break_waiters();
      broken = false;
      co_await settle_barrier(parties);
      check("reset");
    } else {
      co_await barrier.abort();
      break_waiters();
      broken = true;
      co_await settle_barrier(parties);
      check("abort");
    }
  }
  for (std::size_t id : waiters) {
    tasks[id].cancel();
    model[id].st = BarrierSt::kCancelled;
  }
  waiters.clear();
  co_await settle_barrier(parties);
  for (auto& t : tasks)
    if (!t.done()) weft::fuzz::fail(harness, "an actor still runs at the end");
  check("end");
}

template <class Fn>
int run_loop(Fn fn) {
  weft::EventLoop loop;
  loop.run_until_complete(fn());
  return 0;
}

}  // namespace

int weft_fuzz_lock(const std::uint8_t* data, std::size_t size) {
  FuzzInput in(data, size);
  weft::Lock lock;
  return run_loop([&] { return drive_permits(in, lock, 1, "lock"); });
}

int weft_fuzz_semaphore(const std::uint8_t* data, std::size_t size) {
  FuzzInput in(data, size);
  long permits = static_cast<long>(in.range(0, 3));
  weft::Semaphore sem(permits);
  return run_loop([&] { return drive_permits(in, sem, permits, "semaphore"); });
}

int weft_fuzz_condition(const std::uint8_t* data, std::size_t size) {
  FuzzInput in(data, size);
  return run_loop([&] { return drive_condition(in); });
}

int weft_fuzz_queue(const std::uint8_t* data, std::size_t size) {
  FuzzInput in(data, size);
  return run_loop([&] { return drive_queue<weft::Queue<int>>(in, Order::fifo, "queue"); });
}

int weft_fuzz_lifo_queue(const std::uint8_t* data, std::size_t size) {
  FuzzInput in(data, size);
  return run_loop([&] { return drive_queue<weft::LifoQueue<int>>(in, Order::lifo, "lifo_queue"); });
}

int weft_fuzz_priority_queue(const std::uint8_t* data, std::size_t size) {
  FuzzInput in(data, size);
  return run_loop(
      [&] { return drive_queue<weft::PriorityQueue<int>>(in, Order::priority, "priority_queue"); });
}

int weft_fuzz_barrier(const std::uint8_t* data, std::size_t size) {
  FuzzInput in(data, size);
  std::size_t parties = in.range(1, 4);
  return run_loop([&] { return drive_barrier(in, parties); });
}
