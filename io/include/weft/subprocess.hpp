// Subprocesses: asyncio.create_subprocess_exec / create_subprocess_shell and
// asyncio.subprocess.Process (docs/api.md, io).
//
//   std::vector<std::string> args{"-c", "tr a-z A-Z"};
//   weft::SubprocessOptions options{.stdin_pipe = true, .stdout_pipe = true};
//   weft::Process p = co_await weft::create_subprocess_exec("sh", args, options);
//   auto [out, err] = co_await p.communicate("hello\n");   // out == "HELLO\n"
//   int code = co_await p.wait();                           // 0
//
// The child starts through posix_spawnp (PATH is searched, as execvp does)
// with an empty signal mask and SIGPIPE / SIGXFSZ at their default actions;
// weft's own descriptors are close-on-exec and do not leak into it. Piped
// standard streams become a StreamWriter (stdin) and StreamReaders (stdout,
// stderr) owned by the loop that created the process; what the child wrote
// stays readable after it exits, so no output is lost.
//
// The child's exit is noticed without blocking a worker: a pidfd
// (pidfd_open, Linux >= 5.3) registered with the creating loop's selector,
// or, where pidfd is unavailable (or the loop's LoopOptions::child_watcher
// is ChildWatcher::sigchld, WEFT_CHILD_WATCHER=sigchld by default), a
// SIGCHLD handler (add_signal_handler) that polls weft's children with
// waitpid(WNOHANG). weft reaps only its own children; code that reaps with
// waitpid(-1) elsewhere in the process steals their exit status.
//
// If the creating loop goes away before the child exits, the child keeps
// running and is no longer watched (asyncio warns in that case too).
#pragma once

#include <weft/coro.hpp>
#include <weft/detail/handle_access.hpp>
#include <weft/stream_reader.hpp>
#include <weft/stream_writer.hpp>

#include <sys/types.h>

#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace weft {

struct SubprocessOptions {
  /// Pipe the child's stdin / stdout / stderr; false: inherit the parent's.
  bool stdin_pipe = false;
  bool stdout_pipe = false;
  bool stderr_pipe = false;
  /// Connect the child's stdin / stdout / stderr to /dev/null (asyncio's
  /// subprocess.DEVNULL). A stream both piped and sent to /dev/null is a
  /// ValueError.
  bool stdin_devnull = false;
  bool stdout_devnull = false;
  bool stderr_devnull = false;
  /// The child's stderr goes wherever its stdout goes: the stdout pipe,
  /// /dev/null, or the parent's stdout (asyncio's stderr=subprocess.STDOUT).
  /// With stderr_pipe or stderr_devnull it is a ValueError.
  bool stderr_to_stdout = false;
  /// The child's working directory; empty: the parent's.
  std::optional<std::string> cwd = std::nullopt;
  /// The child's whole environment as "KEY=VALUE" strings; empty: inherit.
  std::vector<std::string> env = {};
  /// Reader buffer limit of the piped stdout / stderr (asyncio's `limit`).
  std::size_t limit = kDefaultStreamLimit;
};

namespace detail {
class ProcessState;
}  // namespace detail

/// A running or finished child (asyncio.subprocess.Process). A cheap,
/// copyable handle; every member may be called from any thread and from
/// tasks on any worker.
class Process {
 public:
  /// The child's process id.
  pid_t pid() const noexcept;
  /// The write end of the child's stdin, when piped.
  std::optional<StreamWriter> stdin_() const;
  /// The read ends of the child's stdout / stderr, when piped.
  std::optional<StreamReader> stdout_() const;
  std::optional<StreamReader> stderr_() const;

  /// Waits for the child to exit and returns returncode(). As in asyncio,
  /// a child blocked writing to a full stdout/stderr pipe that nobody reads
  /// never exits: read the pipes, or use communicate().
  Coro<int> wait();
  /// Writes `input` to stdin (if piped) and closes it, reads stdout and
  /// stderr (those piped; "" for the others) to EOF concurrently, waits for
  /// the child to exit, and returns (stdout, stderr). A child that stops
  /// reading its stdin early (broken pipe) is not an error. Cancelling the
  /// awaiting task cancels the reading and writing (the child is not killed).
  /// @throws RuntimeError if called while another read of the same pipes is
  ///         waiting (StreamReader allows one reader at a time).
  Coro<std::pair<std::string, std::string>> communicate(std::string input = {});

  /// Sends `sig` to the child; does nothing once the child has been reaped
  /// (as Popen.send_signal), so it can never hit a recycled pid.
  /// @throws std::system_error if the kernel refuses (e.g. EINVAL).
  void send_signal(int sig);
  /// send_signal(SIGTERM).
  void terminate();
  /// send_signal(SIGKILL).
  void kill();
  /// The exit status once the child has exited: its exit code, or -N when
  /// signal N killed it; empty while it runs.
  std::optional<int> returncode() const;

 private:
  friend struct detail::HandleAccess;
  explicit Process(std::shared_ptr<detail::ProcessState> state) noexcept
      : state_(std::move(state)) {}
  std::shared_ptr<detail::ProcessState> state_;
};

/// Starts `program` with arguments `args` (argv = program, args...), as
/// asyncio.create_subprocess_exec. Call from a task (the running loop
/// watches the child and owns its pipes).
/// @throws std::system_error when the program cannot be started (e.g.
///         std::errc::no_such_file_or_directory, naming the program);
///         ValueError for a NUL byte inside the program, an argument or an
///         environment string, or contradicting options; RuntimeError
///         outside a running loop.
Coro<Process> create_subprocess_exec(std::string program, std::vector<std::string> args,
                                     SubprocessOptions options = {});

/// Runs `cmd` through the shell, "/bin/sh -c cmd", as
/// asyncio.create_subprocess_shell (quoting is the caller's job: see
/// create_subprocess_exec to pass arguments without a shell). The Process is
/// the shell's: its returncode is the shell's exit status.
/// @throws as create_subprocess_exec (ValueError for a NUL byte in `cmd`).
Coro<Process> create_subprocess_shell(std::string cmd, SubprocessOptions options = {});

}  // namespace weft
