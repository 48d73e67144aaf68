// The stall detector: see stall_watch.hpp.
#include "stall_watch.hpp"

#include <weft/stall_report.hpp>

#include <cxxabi.h>
#include <dlfcn.h>
#include <execinfo.h>
#include <signal.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <mutex>

#include "scheduler.hpp"

namespace weft {

std::string StallReport::to_string() const {
  char head[160];
  std::snprintf(head, sizeof head, "weft: worker %u stalled for %.3f s in ", worker,
                std::chrono::duration<double>(stalled_for).count());
  std::string out = head;
  if (task_id != 0)
    out += "<Task " + task_name + " id=" + std::to_string(task_id) + ">";
  else
    out += "a callback or the loop (no task step)";
  if (suppressed != 0)
    out += " (" + std::to_string(suppressed) + " earlier stall reports suppressed)";
  out += '\n';
  if (!await_chain.empty()) {
    out += "  at its last suspension:\n";
    for (const std::string& f : await_chain) out += "    " + f + '\n';
  }
  if (!note.empty()) out += "  " + note + '\n';
  for (std::size_t i = 0; i < backtrace.size(); ++i)
    out += "  #" + std::to_string(i) + " " + backtrace[i] + '\n';
  return out;
}

namespace detail {
namespace {

/// Moves whenever the worker starts a step or a loop iteration.
std::uint64_t heartbeat(const WorkerProbe& probe) noexcept {
  return probe.polls.load(std::memory_order_relaxed) +
         probe.iterations.load(std::memory_order_relaxed);
}

std::int64_t now_ns() noexcept {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch())
      .count();
}

// Async-signal-safe: reads a thread-local pointer and the probe's atomics
// (lock-free), and calls backtrace(), whose unwinder was loaded by
// install_handler() so that it neither allocates nor takes the loader lock.
void on_stall_signal(int, siginfo_t*, void*) {
  int saved_errno = errno;
  WorkerProbe* probe = t_probe;
  int expected = WorkerProbe::kRequested;
  if (probe && probe->backtrace_state.compare_exchange_strong(expected, WorkerProbe::kCapturing,
                                                              std::memory_order_acq_rel)) {
    probe->frame_count = ::backtrace(probe->frames, WorkerProbe::kMaxFrames);
    probe->backtrace_state.store(WorkerProbe::kReady, std::memory_order_release);
  }
  errno = saved_errno;
}

/// Installs the SIGURG handler once per process; false where the program
/// handles SIGURG itself.
bool install_handler() {
  static const bool installed = [] {
    void* warm[2];
    ::backtrace(warm, 2);  // loads libgcc's unwinder outside any signal handler
    struct sigaction old {};
    if (::sigaction(SIGURG, nullptr, &old) != 0) return false;
    bool ours_to_take =
        !(old.sa_flags & SA_SIGINFO) && (old.sa_handler == SIG_DFL || old.sa_handler == SIG_IGN);
    if (!ours_to_take) return false;
    struct sigaction sa {};
    sa.sa_sigaction = on_stall_signal;
    sa.sa_flags = SA_SIGINFO | SA_RESTART;
    sigemptyset(&sa.sa_mask);
    return ::sigaction(SIGURG, &sa, nullptr) == 0;
  }();
  return installed;
}

std::string describe_frame(void* pc) {
  Dl_info info{};
  char buf[64];
  if (::dladdr(pc, &info) == 0) {
    std::snprintf(buf, sizeof buf, "%p", pc);
    return buf;
  }
  std::string out;
  if (info.dli_sname) {
    int status = 0;
    std::unique_ptr<char, void (*)(void*)> demangled(
        abi::__cxa_demangle(info.dli_sname, nullptr, nullptr, &status), std::free);
    out = status == 0 && demangled ? demangled.get() : info.dli_sname;
    std::snprintf(
        buf, sizeof buf, "+0x%zx",
        static_cast<std::size_t>(static_cast<char*>(pc) - static_cast<char*>(info.dli_saddr)));
    out += buf;
  } else {
    std::snprintf(buf, sizeof buf, "%p", pc);
    out = buf;
  }
  if (info.dli_fname) {
    std::snprintf(
        buf, sizeof buf, "+0x%zx",
        static_cast<std::size_t>(static_cast<char*>(pc) - static_cast<char*>(info.dli_fbase)));
    out += std::string(" (") + info.dli_fname + buf + ")";
  }
  return out;
}

}  // namespace

StallWatch::StallWatch(Scheduler& scheduler)
    : scheduler_(scheduler), seen_(scheduler.workers.size()) {
  install_handler();
  thread_ = std::thread([this] { main(); });
}

StallWatch::~StallWatch() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_one();
  thread_.join();
}

void StallWatch::main() {
  auto threshold = scheduler_.options.stall_threshold;
  auto period = std::clamp<std::chrono::nanoseconds>(threshold / 4, std::chrono::milliseconds(1),
                                                     std::chrono::milliseconds(250));
  std::unique_lock lock(mu_);
  while (!cv_.wait_for(lock, period, [this] { return stop_; })) {
    lock.unlock();
    check(now_ns());
    lock.lock();
  }
}

void StallWatch::check(std::int64_t now) {
  const std::int64_t threshold = scheduler_.options.stall_threshold.count();
  for (std::size_t i = 0; i < seen_.size(); ++i) {
    WorkerProbe& probe = scheduler_.workers[i]->probe();
    Seen& s = seen_[i];
    std::uint64_t beat = heartbeat(probe);
    // A worker whose thread has not started yet is not stalled either.
    if (beat != s.heartbeat || probe.idle.load(std::memory_order_relaxed) || s.since_ns == 0 ||
        !probe.thread_started.load(std::memory_order_acquire)) {
      s = {beat, now, false};
      continue;
    }
    if (s.reported || now - s.since_ns < threshold) continue;
    s.reported = true;
    if (last_report_ns_ != 0 &&
        now - last_report_ns_ < scheduler_.options.stall_report_interval.count()) {
      ++suppressed_;
      continue;
    }
    last_report_ns_ = now;
    report(static_cast<unsigned>(i), now - s.since_ns);
  }
}

void StallWatch::report(unsigned worker, std::int64_t stalled_ns) {
  WorkerProbe& probe = scheduler_.workers[worker]->probe();
  StallReport r;
  r.worker = worker;
  r.stalled_for = std::chrono::nanoseconds(stalled_ns);
  r.suppressed = std::exchange(suppressed_, 0);
  std::uint64_t beat = heartbeat(probe);

  // The task, under the hazard pointer (worker_probe.hpp).
  if (TaskCore* task = probe.running.load(std::memory_order_acquire)) {
    scheduler_.stall_inspecting.store(task, std::memory_order_relaxed);
    std::atomic_thread_fence(std::memory_order_seq_cst);
    if (probe.running.load(std::memory_order_relaxed) == task) {
      r.task_id = task->id();
      r.task_name = task->name();
      if (scheduler_.options.stall_await_chain) r.await_chain = probe.read_chain(task);
    }
    scheduler_.stall_inspecting.store(nullptr, std::memory_order_release);
  }

  // The backtrace: signal the worker and wait a little for its handler.
  if (!scheduler_.options.stall_backtrace) {
    r.note = "no backtrace: RunOptions::stall_backtrace is off";
  } else if (!install_handler()) {
    r.note = "no backtrace: the program handles SIGURG itself";
  } else if (!probe.thread_started.load(std::memory_order_acquire)) {
    r.note = "no backtrace: the worker thread has not started";
  } else {
    probe.backtrace_state.store(WorkerProbe::kRequested, std::memory_order_release);
    int state = WorkerProbe::kRequested;
    if (::pthread_kill(probe.thread, SIGURG) == 0) {
      auto deadline = Clock::now() + std::chrono::milliseconds(100);
      while ((state = probe.backtrace_state.load(std::memory_order_acquire)) !=
                 WorkerProbe::kReady &&
             Clock::now() < deadline)
        std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
    int expected = WorkerProbe::kRequested;
    if (state == WorkerProbe::kReady ||
        !probe.backtrace_state.compare_exchange_strong(expected, WorkerProbe::kNoBacktrace,
                                                       std::memory_order_acq_rel)) {
      // The handler took the request (it may still be capturing): wait for it.
      while (probe.backtrace_state.load(std::memory_order_acquire) != WorkerProbe::kReady)
        std::this_thread::yield();
      // Frame 0 is the handler, 1 the signal trampoline: the worker's own
      // frames start after them.
      for (int i = 2; i < probe.frame_count; ++i)
        r.backtrace.push_back(describe_frame(probe.frames[i]));
      probe.backtrace_state.store(WorkerProbe::kNoBacktrace, std::memory_order_relaxed);
      if (heartbeat(probe) != beat)
        r.note = "the worker moved on before the backtrace was taken: it may not show the stall";
    } else {
      r.note = "no backtrace: the worker did not answer the signal within 100 ms";
    }
  }

  if (scheduler_.options.on_stall) {
    scheduler_.options.on_stall(r);
  } else {
    std::string text = r.to_string();
    std::fwrite(text.data(), 1, text.size(), stderr);
  }
}

}  // namespace detail
}  // namespace weft
