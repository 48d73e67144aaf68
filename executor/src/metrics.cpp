// Runtime::metrics() and its Prometheus rendering (metrics.hpp).
#include <weft/errors.hpp>
#include <weft/metrics.hpp>

#include <cstdio>
#include <initializer_list>
#include <utility>

#include "scheduler.hpp"

namespace weft {
namespace detail {
namespace {
void add_to(WorkerMetrics& t, const WorkerMetrics& w) {
  t.tasks_spawned += w.tasks_spawned;
  t.steps_polled += w.steps_polled;
  t.steal_attempts += w.steal_attempts;
  t.steal_successes += w.steal_successes;
  t.tasks_stolen += w.tasks_stolen;
  t.parks += w.parks;
  t.remote_wakeups += w.remote_wakeups;
  t.io_events += w.io_events;
  t.io_readable += w.io_readable;
  t.io_writable += w.io_writable;
  t.io_ring_recvs += w.io_ring_recvs;
  t.io_ring_sends += w.io_ring_sends;
  t.io_ring_file_ops += w.io_ring_file_ops;
  t.timers_armed += w.timers_armed;
  t.busy_time += w.busy_time;
  t.local_queue_depth += w.local_queue_depth;
  t.remote_queue_depth += w.remote_queue_depth;
  t.inbox_depth += w.inbox_depth;
  t.timers_pending += w.timers_pending;
  for (std::size_t i = 0; i < kPollTimeBuckets; ++i)
    t.poll_time_histogram[i] += w.poll_time_histogram[i];
  t.poll_time_sum += w.poll_time_sum;
}
}  // namespace

RuntimeMetrics collect_metrics(Scheduler& scheduler) {
  RuntimeMetrics m;
  for (auto& w : scheduler.workers) {
    m.workers.push_back(w->metrics());
    add_to(m.total, m.workers.back());
  }
  m.injection_queue_depth = scheduler.injected();
  m.tasks_alive = scheduler.registry.size();
  m.poll_time_histogram = scheduler.options.poll_time_histogram;
  blocking_pool_counts(scheduler, m.blocking_threads_busy, m.blocking_threads_idle);
  return m;
}
}  // namespace detail

RuntimeMetrics running_runtime_metrics() {
  detail::Worker* w = detail::current_worker();
  if (!w) throw RuntimeError("running_runtime_metrics: not called from a runtime's worker");
  return detail::collect_metrics(*w->scheduler());
}

namespace {
std::string number(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.9g", v);
  return buf;
}

double seconds(std::chrono::nanoseconds d) { return std::chrono::duration<double>(d).count(); }

class Writer {
 public:
  void family(const char* name, const char* type, const char* help) {
    out += "# HELP ";
    out += name;
    out += ' ';
    out += help;
    out += "\n# TYPE ";
    out += name;
    out += ' ';
    out += type;
    out += '\n';
  }
  void sample(const char* name, std::initializer_list<std::pair<const char*, std::string>> labels,
              const std::string& value) {
    out += name;
    if (labels.size() != 0) {
      out += '{';
      bool first = true;
      for (const auto& [k, v] : labels) {
        if (!first) out += ',';
        first = false;
        out += k;
        out += "=\"";
        out += v;  // label values here are digits and fixed words: nothing to escape
        out += '"';
      }
      out += '}';
    }
    out += ' ';
    out += value;
    out += '\n';
  }
  template <class F>
  void per_worker(const RuntimeMetrics& m, const char* name, const char* type, const char* help,
                  F value) {
    family(name, type, help);
    for (std::size_t i = 0; i < m.workers.size(); ++i)
      sample(name, {{"worker", std::to_string(i)}}, value(m.workers[i]));
  }
  std::string out;
};

template <class T>
std::string integer(T v) {
  return std::to_string(v);
}
}  // namespace

std::string prometheus_text(const RuntimeMetrics& m) {
  Writer w;
  using WM = WorkerMetrics;
  w.per_worker(m, "weft_worker_busy_seconds_total", "counter",
               "Time the worker was not blocked waiting for work.",
               [](const WM& x) { return number(seconds(x.busy_time)); });
  w.per_worker(m, "weft_worker_polls_total", "counter", "Task steps the worker ran.",
               [](const WM& x) { return integer(x.steps_polled); });
  w.per_worker(m, "weft_worker_tasks_spawned_total", "counter",
               "Tasks created on the worker's thread.",
               [](const WM& x) { return integer(x.tasks_spawned); });
  w.per_worker(m, "weft_worker_steal_attempts_total", "counter",
               "Attempts to steal from another worker's run queue.",
               [](const WM& x) { return integer(x.steal_attempts); });
  w.per_worker(m, "weft_worker_steal_operations_total", "counter",
               "Steals that took at least one task.",
               [](const WM& x) { return integer(x.steal_successes); });
  w.per_worker(m, "weft_worker_stolen_tasks_total", "counter", "Tasks taken by steals.",
               [](const WM& x) { return integer(x.tasks_stolen); });
  w.per_worker(m, "weft_worker_parks_total", "counter",
               "Times the worker blocked in its selector for want of work.",
               [](const WM& x) { return integer(x.parks); });
  w.per_worker(m, "weft_worker_remote_wakeups_total", "counter",
               "Wake-ups of the parked worker by another thread.",
               [](const WM& x) { return integer(x.remote_wakeups); });
  w.per_worker(m, "weft_worker_io_events_total", "counter",
               "Readiness events the selector reported.",
               [](const WM& x) { return integer(x.io_events); });
  w.family("weft_worker_io_operations_total", "counter",
           "I/O operations by kind: readiness callbacks (readable, writable) and io_uring "
           "requests (ring_recv, ring_send, ring_file).");
  for (std::size_t i = 0; i < m.workers.size(); ++i) {
    const WM& x = m.workers[i];
    std::string worker = std::to_string(i);
    for (auto [kind, n] : {std::pair{"readable", x.io_readable},
                           {"writable", x.io_writable},
                           {"ring_recv", x.io_ring_recvs},
                           {"ring_send", x.io_ring_sends},
                           {"ring_file", x.io_ring_file_ops}})
      w.sample("weft_worker_io_operations_total", {{"worker", worker}, {"kind", kind}}, integer(n));
  }
  w.per_worker(m, "weft_worker_timers_armed_total", "counter",
               "Timers put on the worker's heap (sleeps, call_later, timeouts).",
               [](const WM& x) { return integer(x.timers_armed); });
  w.per_worker(m, "weft_worker_local_queue_depth", "gauge",
               "Tasks in the worker's stealable run queue.",
               [](const WM& x) { return integer(x.local_queue_depth); });
  w.per_worker(m, "weft_worker_ready_depth", "gauge",
               "Callbacks and loop-affine steps in the loop's last ready batch.",
               [](const WM& x) { return integer(x.remote_queue_depth); });
  w.per_worker(m, "weft_worker_inbox_depth", "gauge",
               "Items other threads handed to the worker's loop, not yet taken.",
               [](const WM& x) { return integer(x.inbox_depth); });
  w.per_worker(m, "weft_worker_timers_pending", "gauge", "Timers on the worker's heap.",
               [](const WM& x) { return integer(x.timers_pending); });
  if (m.poll_time_histogram) {
    const char* name = "weft_worker_poll_duration_seconds";
    w.family(name, "histogram", "Duration of task steps.");
    for (std::size_t i = 0; i < m.workers.size(); ++i) {
      const WM& x = m.workers[i];
      std::string worker = std::to_string(i);
      std::uint64_t cumulative = 0;
      for (std::size_t b = 0; b < kPollTimeBuckets; ++b) {
        cumulative += x.poll_time_histogram[b];
        std::string le = b + 1 == kPollTimeBuckets
                             ? std::string("+Inf")
                             : number(static_cast<double>(poll_time_bucket_bound_ns(b)) * 1e-9);
        w.sample("weft_worker_poll_duration_seconds_bucket", {{"worker", worker}, {"le", le}},
                 integer(cumulative));
      }
      w.sample("weft_worker_poll_duration_seconds_sum", {{"worker", worker}},
               number(seconds(x.poll_time_sum)));
      w.sample("weft_worker_poll_duration_seconds_count", {{"worker", worker}},
               integer(cumulative));
    }
  }
  w.family("weft_injection_queue_depth", "gauge", "Tasks in the shared injection queue.");
  w.sample("weft_injection_queue_depth", {}, integer(m.injection_queue_depth));
  w.family("weft_tasks_alive", "gauge", "Tasks created and not yet finished.");
  w.sample("weft_tasks_alive", {}, integer(m.tasks_alive));
  w.family("weft_blocking_threads_busy", "gauge",
           "Threads of the default executor running a call.");
  w.sample("weft_blocking_threads_busy", {}, integer(m.blocking_threads_busy));
  w.family("weft_blocking_threads_idle", "gauge",
           "Threads of the default executor waiting for a call.");
  w.sample("weft_blocking_threads_idle", {}, integer(m.blocking_threads_idle));
  return std::move(w.out);
}

}  // namespace weft
