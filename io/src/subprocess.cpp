// Subprocesses: create_subprocess_exec / _shell and Process (issues 3, 19). Contract in
// <weft/subprocess.hpp>.
//
// Protocol:
// - ProcessState is shared by the Process handles and by whatever watches
//   the child (the pidfd reader callback, or the SIGCHLD watcher's list), so
//   it lives until both the user and the watcher are done with it.
// - `mu` guards `code` and `pidfd`. Reaping (waitpid) and signalling happen
//   under it, so a signal is never sent to a pid after it was reaped (and
//   could have been recycled). `exited` is completed outside the lock, once.
// - pidfd path: the pidfd is registered with the creating loop's selector;
//   the reader callback runs on that loop, reaps, then unregisters and
//   closes the pidfd on that same thread (the fd is taken out of the state
//   under `mu` first, so send_signal stops using it).
// - SIGCHLD path: the watcher's mutex guards its list of children. Lock
//   order: watcher mutex, then the signal registry (add/remove of the
//   SIGCHLD handler), then a ProcessState's `mu`. SIGCHLD is handled on the
//   loop that spawned last (registering it moves it there); each delivery
//   polls every child with waitpid(WNOHANG), and a spawn polls once right
//   after registering the child, so an exit before the handler existed is
//   not missed. When the list empties, the handler is removed.
#include <weft/errors.hpp>
#include <weft/event_loop.hpp>
#include <weft/future.hpp>
#include <weft/subprocess.hpp>
#include <weft/task.hpp>

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <mutex>
#include <system_error>

#include <weft/detail/fd_stream.hpp>
#include <weft/signals.hpp>

extern char** environ;

namespace weft {
namespace detail {

class ProcessState {
 public:
  ProcessState(EventLoop& loop, pid_t pid, int pidfd)
      : loop_(&loop), pid_(pid), pidfd_(pidfd), exited_(loop.create_future<int>()) {}
  ~ProcessState() {
    if (pidfd_ >= 0) ::close(pidfd_);
  }
  ProcessState(const ProcessState&) = delete;
  ProcessState& operator=(const ProcessState&) = delete;

  pid_t pid() const noexcept { return pid_; }
  const Future<int>& exited() const noexcept { return exited_; }
  int pidfd() const noexcept { return pidfd_; }  // only before the state is shared

  std::optional<StreamWriter> in;  // set before the state is shared, then read-only
  std::optional<StreamReader> out;
  std::optional<StreamReader> err;

  std::optional<int> returncode() const {
    std::lock_guard lock(mu_);
    return code_;
  }

  // Reaps the child if it has exited; true once it has been reaped.
  bool try_reap() {
    int code;
    {
      std::lock_guard lock(mu_);
      if (code_) return true;
      int status = 0;
      pid_t r;
      do {
        r = ::waitpid(pid_, &status, WNOHANG);
      } while (r < 0 && errno == EINTR);
      if (r == 0) return false;
      if (r < 0)
        code = 255;  // ECHILD: reaped by someone else; asyncio reports 255 too
      else if (WIFSIGNALED(status))
        code = -WTERMSIG(status);
      else
        code = WEXITSTATUS(status);
      code_ = code;
    }
    exited_.set_result(code);
    return true;
  }

  // On the creating loop's thread, after try_reap() succeeded.
  void stop_watching() {
    int fd;
    {
      std::lock_guard lock(mu_);
      fd = std::exchange(pidfd_, -1);
    }
    if (fd < 0) return;
    loop_->remove_reader(fd);
    ::close(fd);
  }

  void send_signal(int sig) {
    std::lock_guard lock(mu_);
    if (code_) return;  // reaped: the pid may already belong to another process
    long r =
        pidfd_ >= 0 ? ::syscall(SYS_pidfd_send_signal, pidfd_, sig, nullptr, 0) : ::kill(pid_, sig);
    if (r < 0 && errno != ESRCH)
      throw std::system_error(
          errno, std::generic_category(),
          "send_signal " + std::to_string(sig) + " to pid " + std::to_string(pid_));
  }

 private:
  EventLoop* const loop_;
  const pid_t pid_;
  mutable std::mutex mu_;
  int pidfd_;                // guarded by mu_; -1 without pidfd or once reaped
  std::optional<int> code_;  // guarded by mu_
  Future<int> exited_;       // completed once, by try_reap
};

namespace {

struct SigchldWatcher {
  std::mutex mu;
  std::vector<std::shared_ptr<ProcessState>> children;  // guarded by mu
};

// Leaked on purpose: a SIGCHLD may be handled while statics are destroyed.
SigchldWatcher& sigchld_watcher() {
  static auto* w = new SigchldWatcher;
  return *w;
}

// On a loop's thread: the SIGCHLD handler, and once after each spawn.
void poll_children() {
  SigchldWatcher& w = sigchld_watcher();
  std::lock_guard lock(w.mu);
  std::erase_if(w.children, [](const std::shared_ptr<ProcessState>& p) { return p->try_reap(); });
  if (w.children.empty()) {
    // Only the loop holding SIGCHLD removes it (false elsewhere).
    if (EventLoop* loop = current_loop()) weft::remove_signal_handler(*loop, SIGCHLD);
  }
}

void watch_with_sigchld(EventLoop& loop, std::shared_ptr<ProcessState> state) {
  {
    SigchldWatcher& w = sigchld_watcher();
    std::lock_guard lock(w.mu);
    weft::add_signal_handler(loop, SIGCHLD, &poll_children);  // moves SIGCHLD to this loop
    w.children.push_back(std::move(state));
  }
  poll_children();
}

// Closes what it holds unless released.
struct FdPair {
  int fds[2] = {-1, -1};
  FdPair() = default;
  FdPair(const FdPair&) = delete;
  FdPair& operator=(const FdPair&) = delete;
  ~FdPair() { close_all(); }
  void open() {
    if (::pipe2(fds, O_CLOEXEC) != 0)
      throw std::system_error(errno, std::generic_category(), "create_subprocess_exec: pipe2");
  }
  void close_end(int i) {
    if (fds[i] >= 0) ::close(std::exchange(fds[i], -1));
  }
  void close_all() {
    close_end(0);
    close_end(1);
  }
  int release(int i) {
    int fd = std::exchange(fds[i], -1);
    int flags = ::fcntl(fd, F_GETFL);
    ::fcntl(fd, F_SETFL, flags | O_NONBLOCK);
    return fd;
  }
};

[[noreturn]] void spawn_error(int err, const std::string& program, const char* what) {
  throw std::system_error(err, std::generic_category(),
                          std::string("create_subprocess_exec '") + program + "': " + what);
}

// A NUL byte would cut the string short in the child (Python: "embedded null byte").
void check_no_nul(const std::string& s, const char* what) {
  if (s.find('\0') != std::string::npos)
    throw ValueError(std::string("create_subprocess: embedded null byte in ") + what);
}

void check_options(const std::string& program, const std::vector<std::string>& args,
                   const SubprocessOptions& options) {
  check_no_nul(program, "the program");
  for (const std::string& a : args) check_no_nul(a, "an argument");
  for (const std::string& e : options.env) check_no_nul(e, "an environment string");
  if (options.cwd) check_no_nul(*options.cwd, "cwd");
  if (options.stdin_pipe && options.stdin_devnull)
    throw ValueError("create_subprocess: stdin cannot be both piped and /dev/null");
  if (options.stdout_pipe && options.stdout_devnull)
    throw ValueError("create_subprocess: stdout cannot be both piped and /dev/null");
  if (options.stderr_pipe && options.stderr_devnull)
    throw ValueError("create_subprocess: stderr cannot be both piped and /dev/null");
  if (options.stderr_to_stdout && (options.stderr_pipe || options.stderr_devnull))
    throw ValueError(
        "create_subprocess: stderr_to_stdout cannot be combined with stderr_pipe or "
        "stderr_devnull");
}

std::shared_ptr<ProcessState> spawn(EventLoop& loop, const std::string& program,
                                    const std::vector<std::string>& args,
                                    const SubprocessOptions& options) {
  check_options(program, args, options);
  FdPair in, out, err;
  if (options.stdin_pipe) in.open();
  if (options.stdout_pipe) out.open();
  if (options.stderr_pipe) err.open();

  std::vector<char*> argv;
  argv.push_back(const_cast<char*>(program.c_str()));
  for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  std::vector<char*> envp;
  for (const std::string& e : options.env) envp.push_back(const_cast<char*>(e.c_str()));
  envp.push_back(nullptr);

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  struct Cleanup {
    posix_spawn_file_actions_t* a;
    posix_spawnattr_t* b;
    ~Cleanup() {
      posix_spawn_file_actions_destroy(a);
      posix_spawnattr_destroy(b);
    }
  } cleanup{&actions, &attr};
  // dup2 clears close-on-exec on the target; the originals stay close-on-exec.
  if (options.stdin_pipe) posix_spawn_file_actions_adddup2(&actions, in.fds[0], 0);
  if (options.stdout_pipe) posix_spawn_file_actions_adddup2(&actions, out.fds[1], 1);
  if (options.stderr_pipe) posix_spawn_file_actions_adddup2(&actions, err.fds[1], 2);
  if (options.stdin_devnull)
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  if (options.stdout_devnull)
    posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
  if (options.stderr_devnull)
    posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0);
  // The actions run in order: fd 1 is already the child's stdout here.
  if (options.stderr_to_stdout) posix_spawn_file_actions_adddup2(&actions, 1, 2);
  if (options.cwd) posix_spawn_file_actions_addchdir_np(&actions, options.cwd->c_str());
  // Loop threads block the signals they handle and weft ignores SIGPIPE:
  // neither must reach the child.
  sigset_t mask;
  sigemptyset(&mask);
  posix_spawnattr_setsigmask(&attr, &mask);
  sigset_t defaults;
  sigemptyset(&defaults);
  sigaddset(&defaults, SIGPIPE);
  sigaddset(&defaults, SIGXFSZ);
  posix_spawnattr_setsigdefault(&attr, &defaults);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);

  pid_t pid = -1;
  int rc = ::posix_spawnp(&pid, program.c_str(), &actions, &attr, argv.data(),
                          options.env.empty() ? environ : envp.data());
  if (rc != 0) spawn_error(rc, program, "cannot start");
  in.close_end(0);
  out.close_end(1);
  err.close_end(1);

  int pidfd = -1;
  if (loop.options().child_watcher != ChildWatcher::sigchld)
    pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  auto state = std::make_shared<ProcessState>(loop, pid, pidfd);
  if (options.stdin_pipe) state->in = make_pipe_writer(in.release(1));
  if (options.stdout_pipe) state->out = make_pipe_reader(out.release(0), options.limit);
  if (options.stderr_pipe) state->err = make_pipe_reader(err.release(0), options.limit);

  if (pidfd >= 0) {
    loop.add_reader(pidfd, [state] {
      if (state->try_reap()) state->stop_watching();
    });
  } else {
    watch_with_sigchld(loop, state);
  }
  return state;
}

Coro<void> feed_stdin(StreamWriter writer, std::string input) {
  if (!input.empty()) {
    writer.write(std::move(input));
    try {
      co_await writer.drain();
    } catch (const std::system_error& e) {
      // The child closed its stdin early: not an error (asyncio ignores
      // BrokenPipeError and ConnectionResetError here).
      if (e.code() != std::errc::broken_pipe && e.code() != std::errc::connection_reset) throw;
    }
  }
  writer.close();
}

Coro<std::string> read_to_eof(StreamReader reader) { co_return co_await reader.read(-1); }

}  // namespace
}  // namespace detail

pid_t Process::pid() const noexcept { return state_->pid(); }
std::optional<StreamWriter> Process::stdin_() const { return state_->in; }
std::optional<StreamReader> Process::stdout_() const { return state_->out; }
std::optional<StreamReader> Process::stderr_() const { return state_->err; }
std::optional<int> Process::returncode() const { return state_->returncode(); }
void Process::send_signal(int sig) { state_->send_signal(sig); }
void Process::terminate() { send_signal(SIGTERM); }
void Process::kill() { send_signal(SIGKILL); }

Coro<int> Process::wait() {
  std::shared_ptr<detail::ProcessState> state = state_;
  int code = co_await state->exited();
  co_return code;
}

Coro<std::pair<std::string, std::string>> Process::communicate(std::string input) {
  std::shared_ptr<detail::ProcessState> state = state_;
  std::optional<Task<void>> feeder;
  std::optional<Task<std::string>> out, err;
  if (state->in) feeder = create_task(detail::feed_stdin(*state->in, std::move(input)));
  if (state->out) out = create_task(detail::read_to_eof(*state->out));
  if (state->err) err = create_task(detail::read_to_eof(*state->err));
  std::pair<std::string, std::string> result;
  try {
    if (out) {
      std::string bytes = co_await std::move(*out);
      result.first = std::move(bytes);
    }
    if (err) {
      std::string bytes = co_await std::move(*err);
      result.second = std::move(bytes);
    }
    if (feeder) co_await *feeder;
    co_await state->exited();
  } catch (...) {
    // Cancelled, or one side failed: stop the others (nothing left behind).
    if (feeder) feeder->cancel();
    if (out) out->cancel();
    if (err) err->cancel();
    throw;
  }
  co_return result;
}

Coro<Process> create_subprocess_exec(std::string program, std::vector<std::string> args,
                                     SubprocessOptions options) {
  EventLoop& loop = get_running_loop();
  co_return detail::HandleAccess::make<Process>(detail::spawn(loop, program, args, options));
}

Coro<Process> create_subprocess_shell(std::string cmd, SubprocessOptions options) {
  EventLoop& loop = get_running_loop();
  detail::check_no_nul(cmd, "the command");
  std::vector<std::string> args{"-c", std::move(cmd)};
  co_return detail::HandleAccess::make<Process>(detail::spawn(loop, "/bin/sh", args, options));
}

}  // namespace weft
