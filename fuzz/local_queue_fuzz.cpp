// LocalQueue (executor/src/local_queue.hpp), the workers' run queue, against
// a deque model: three queues of random power-of-two capacities, random
// pushes (with the overflow path when full), pops and steals between them,
// in one thread (each step a whole operation; the threaded interleavings are
// runtime_stress_test's). Checks every value: FIFO pops, the overflow sink
// getting the oldest half then the new task, a steal taking the oldest
// len - len/2 (at most half the thief's capacity, nothing when the thief is
// over half full), returning the last of them and queueing the rest in
// order; and that no task is lost or duplicated.
#include <deque>
#include <string>
#include <vector>

#include "fuzz_input.hpp"
#include "harness.hpp"
#include "local_queue.hpp"

namespace {

using weft::detail::LocalQueue;
using weft::detail::TaskCore;
using weft::fuzz::fail;

// Tasks are never run or dereferenced by the queue: distinct fake addresses.
TaskCore* task_of(std::uintptr_t id) { return reinterpret_cast<TaskCore*>((id + 1) << 4); }
std::uintptr_t id_of(TaskCore* t) { return (reinterpret_cast<std::uintptr_t>(t) >> 4) - 1; }

struct Queue {
  explicit Queue(std::uint32_t cap) : real(cap), capacity(cap) {}
  LocalQueue real;
  std::deque<std::uintptr_t> model;
  std::uint32_t capacity;
};

std::string str(std::uintptr_t id) { return std::to_string(id); }

}  // namespace

int weft_fuzz_local_queue(const std::uint8_t* data, std::size_t size) {
  weft::fuzz::FuzzInput in(data, size);
  std::deque<Queue> qs;  // LocalQueue does not move
  for (int i = 0; i < 3; ++i) qs.emplace_back(2u << in.range(0, 4));
  std::uintptr_t next_id = 0;
  std::vector<std::uintptr_t> sink;
  while (!in.empty()) {
    unsigned op = in.byte();
    Queue& q = qs[op % 3];
    switch ((op / 3) % 4) {
      case 0:
      case 1: {  // push
        std::uintptr_t id = next_id++;
        sink.clear();
        q.real.push_back(task_of(id), [&](TaskCore* t) { sink.push_back(id_of(t)); });
        std::vector<std::uintptr_t> expected;
        if (q.model.size() < q.capacity) {
          q.model.push_back(id);
        } else {
          for (std::uint32_t i = 0; i < q.capacity / 2; ++i) {
            expected.push_back(q.model.front());
            q.model.pop_front();
          }
          expected.push_back(id);
        }
        if (sink != expected)
          fail("local_queue", "push " + str(id) + ": overflow sink got " +
                                  std::to_string(sink.size()) + " tasks, expected " +
                                  std::to_string(expected.size()));
        break;
      }
      case 2: {  // pop
        TaskCore* t = q.real.pop();
        if (q.model.empty()) {
          if (t) fail("local_queue", "pop of an empty queue returned " + str(id_of(t)));
        } else {
          std::uintptr_t want = q.model.front();
          q.model.pop_front();
          if (!t || id_of(t) != want)
            fail("local_queue", "pop returned " + (t ? str(id_of(t)) : std::string("null")) +
                                    ", expected " + str(want));
        }
        break;
      }
      default: {  // steal from another queue into q
        Queue& victim = qs[(op % 3 + 1 + in.byte() % 2) % 3];
        std::uint32_t stolen = 0;
        TaskCore* t = victim.real.steal_into(q.real, stolen);
        std::size_t n = 0;
        if (q.model.size() <= q.capacity / 2) {
          n = victim.model.size() - victim.model.size() / 2;
          n = std::min<std::size_t>(n, q.capacity / 2);
        }
        if (stolen != n)
          fail("local_queue",
               "steal took " + std::to_string(stolen) + ", expected " + std::to_string(n));
        if (n == 0) {
          if (t) fail("local_queue", "a steal of nothing returned a task");
          break;
        }
        for (std::size_t i = 0; i + 1 < n; ++i) {
          q.model.push_back(victim.model.front());
          victim.model.pop_front();
        }
        std::uintptr_t want = victim.model.front();
        victim.model.pop_front();
        if (!t || id_of(t) != want)
          fail("local_queue", "steal returned " + (t ? str(id_of(t)) : std::string("null")) +
                                  ", expected " + str(want));
      }
    }
    for (Queue& each : qs)
      if (each.real.len() != each.model.size())
        fail("local_queue", "len() " + std::to_string(each.real.len()) + ", model " +
                                std::to_string(each.model.size()));
  }
  // Drain: every queued task comes out once, in order.
  for (Queue& each : qs) {
    while (!each.model.empty()) {
      TaskCore* t = each.real.pop();
      if (!t || id_of(t) != each.model.front()) fail("local_queue", "drain out of order");
      each.model.pop_front();
    }
    if (each.real.pop()) fail("local_queue", "drain found a task the model does not have");
  }
  return 0;
}
