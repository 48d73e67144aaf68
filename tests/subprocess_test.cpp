// create_subprocess_exec and Process (issue 3): pipes as streams, wait,
// communicate, returncode, signals, output kept after exit, many children;
// create_subprocess_shell, /dev/null and stderr-to-stdout (issue 19).
#include <signal.h>
#include <stdlib.h>

#include <string>
#include <system_error>
#include <vector>

#include "weft_test.hpp"

namespace {

using namespace std::chrono_literals;
using weft::Process;
using weft::SubprocessOptions;
using Args = std::vector<std::string>;

// GCC 12 miscompiles braced lists of string literals inside a co_await
// expression ("array used as initializer"): tests build the argument vector
// in a plain statement first.

WEFT_TEST(Subprocess, EchoStdout) {
  Args args{"hello", "world"};
  Process p = co_await weft::create_subprocess_exec("echo", args, {.stdout_pipe = true});
  std::string line = co_await p.stdout_()->readline();
  CO_ASSERT_EQ(line, "hello world\n");
  int code = co_await p.wait();
  CO_ASSERT_EQ(code, 0);
  CO_ASSERT_TRUE(p.returncode() == 0);
  CO_ASSERT_TRUE(!p.stdin_().has_value());
  CO_ASSERT_TRUE(!p.stderr_().has_value());
}

WEFT_TEST(Subprocess, TrueAndFalseExitCodes) {
  Process t = co_await weft::create_subprocess_exec("true", {});
  Process f = co_await weft::create_subprocess_exec("false", {});
  int ft = co_await f.wait();
  int tt = co_await t.wait();
  CO_ASSERT_EQ(tt, 0);
  CO_ASSERT_EQ(ft, 1);
  Args args{"-c", "exit 42"};
  Process s = co_await weft::create_subprocess_exec("sh", args);
  int code = co_await s.wait();
  CO_ASSERT_EQ(code, 42);
  CO_ASSERT_TRUE(s.returncode() == 42);
}

WEFT_TEST(Subprocess, CatRoundTripThroughStdinAndStdout) {
  Process p =
      co_await weft::create_subprocess_exec("cat", {}, {.stdin_pipe = true, .stdout_pipe = true});
  weft::StreamWriter in = *p.stdin_();
  weft::StreamReader out = *p.stdout_();
  in.write("line one\n");
  co_await in.drain();
  std::string first = co_await out.readline();
  CO_ASSERT_EQ(first, "line one\n");
  in.write("line two\n");
  in.close();  // EOF for cat
  std::string rest = co_await out.read();
  CO_ASSERT_EQ(rest, "line two\n");
  int code = co_await p.wait();
  CO_ASSERT_EQ(code, 0);
}

WEFT_TEST(Subprocess, StderrAndEnvAndCwd) {
  Args args{"-c", "echo \"$WEFT_TEST_VAR\"; pwd; echo oops >&2; exit 3"};
  SubprocessOptions options{.stdout_pipe = true, .stderr_pipe = true, .cwd = "/tmp"};
  options.env = Args{"WEFT_TEST_VAR=value", "PATH=/usr/bin:/bin"};
  Process p = co_await weft::create_subprocess_exec("sh", args, options);
  auto [out, err] = co_await p.communicate();
  CO_ASSERT_EQ(out, "value\n/tmp\n");
  CO_ASSERT_EQ(err, "oops\n");
  CO_ASSERT_TRUE(p.returncode() == 3);
}

WEFT_TEST(Subprocess, MissingProgramRaisesNoSuchFile) {
  bool raised = false;
  try {
    co_await weft::create_subprocess_exec("/nonexistent/weft-no-such-program", {});
  } catch (const std::system_error& e) {
    raised = e.code() == std::errc::no_such_file_or_directory &&
             std::string(e.what()).find("weft-no-such-program") != std::string::npos;
  }
  CO_ASSERT_TRUE(raised);
}

// 1 MiB each way through cat: communicate writes and reads concurrently, so
// neither side blocks on a full pipe.
WEFT_TEST(Subprocess, CommunicateLargeInputAndOutputWithoutDeadlock) {
  std::string input;
  input.reserve(1 << 20);
  for (int i = 0; input.size() < (1u << 20); ++i) input += std::to_string(i) + ",";
  Process p =
      co_await weft::create_subprocess_exec("cat", {}, {.stdin_pipe = true, .stdout_pipe = true});
  auto [out, err] = co_await p.communicate(input);
  CO_ASSERT_EQ(out.size(), input.size());
  CO_ASSERT_TRUE(out == input);
  CO_ASSERT_TRUE(err.empty());
  CO_ASSERT_TRUE(p.returncode() == 0);
}

// Large output on both stdout and stderr at once (each far above a pipe's
// 64 KiB), with no input.
WEFT_TEST(Subprocess, CommunicateLargeStdoutAndStderr) {
  Args args{"-c", "head -c 1048576 /dev/zero; head -c 1048576 /dev/zero >&2"};
  Process p =
      co_await weft::create_subprocess_exec("sh", args, {.stdout_pipe = true, .stderr_pipe = true});
  auto [out, err] = co_await p.communicate();
  CO_ASSERT_EQ(out.size(), 1u << 20);
  CO_ASSERT_EQ(err.size(), 1u << 20);
  CO_ASSERT_TRUE(p.returncode() == 0);
}

// A child that stops reading stdin early is not an error for communicate.
WEFT_TEST(Subprocess, CommunicateWithChildThatIgnoresStdin) {
  Process p = co_await weft::create_subprocess_exec("true", {}, {.stdin_pipe = true});
  auto [out, err] = co_await p.communicate(std::string(1 << 20, 'x'));
  CO_ASSERT_TRUE(out.empty());
  CO_ASSERT_TRUE(p.returncode() == 0);
}

WEFT_TEST(Subprocess, ExitBeforeOutputIsReadLosesNothing) {
  Args args{"-c", "printf 'first\\nsecond\\n'; printf 'third'"};
  Process p = co_await weft::create_subprocess_exec("sh", args, {.stdout_pipe = true});
  int code = co_await p.wait();  // the child is gone before anything is read
  CO_ASSERT_EQ(code, 0);
  std::string all = co_await p.stdout_()->read();
  CO_ASSERT_EQ(all, "first\nsecond\nthird");
  CO_ASSERT_TRUE(p.stdout_()->at_eof());
}

WEFT_TEST(Subprocess, KillAndTerminateGiveNegativeSignalNumber) {
  Args args{"60"};
  Process a = co_await weft::create_subprocess_exec("sleep", args);
  CO_ASSERT_TRUE(!a.returncode().has_value());
  a.kill();
  int ka = co_await a.wait();
  CO_ASSERT_EQ(ka, -SIGKILL);
  Process b = co_await weft::create_subprocess_exec("sleep", args);
  b.terminate();
  int kb = co_await b.wait();
  CO_ASSERT_EQ(kb, -SIGTERM);
  b.kill();  // after reaping: a no-op, never a recycled pid
  CO_ASSERT_TRUE(b.returncode() == -SIGTERM);
}

// The child starts with an empty signal mask even though the loop's thread
// blocks the signals it handles.
WEFT_TEST(Subprocess, ChildDoesNotInheritBlockedSignals) {
  weft::EventLoop& loop = weft::get_running_loop();
  weft::add_signal_handler(loop, SIGUSR1, [] {});
  Args args{"-c", "grep SigBlk /proc/self/status"};
  Process p = co_await weft::create_subprocess_exec("sh", args, {.stdout_pipe = true});
  auto [out, err] = co_await p.communicate();
  weft::remove_signal_handler(loop, SIGUSR1);
  CO_ASSERT_EQ(out, "SigBlk:\t0000000000000000\n");
}

// The SIGCHLD watcher, used where pidfd_open is unavailable.
weft::Coro<void> sigchld_watcher_notices_exits() {
  std::vector<Process> children;
  for (int i = 0; i < 8; ++i) {
    Args args{"-c", "exit " + std::to_string(i)};
    Process p = co_await weft::create_subprocess_exec("sh", args, {.stdout_pipe = true});
    children.push_back(p);
  }
  Args sleep_args{"60"};
  Process sleeper = co_await weft::create_subprocess_exec("sleep", sleep_args);
  for (int i = 0; i < 8; ++i) {
    int code = co_await children[i].wait();
    CO_ASSERT_EQ(code, i);
  }
  sleeper.kill();
  int code = co_await sleeper.wait();
  CO_ASSERT_EQ(code, -SIGKILL);
  // Every child reaped: the SIGCHLD handler is gone again.
  CO_ASSERT_TRUE(!weft::remove_signal_handler(weft::get_running_loop(), SIGCHLD));
}

TEST(Subprocess, SigchldWatcherNoticesExits) {
  weft::run(sigchld_watcher_notices_exits(),
            {.workers = 1, .loop = {.child_watcher = weft::ChildWatcher::sigchld}});
}

class SubprocessWorkers : public weft::testing::WorkersTest {};

weft::Coro<void> echo_child(int i, int* failures) {
  std::string word = "child-" + std::to_string(i);
  Args args{"-c", "cat; echo " + word};
  Process p =
      co_await weft::create_subprocess_exec("sh", args, {.stdin_pipe = true, .stdout_pipe = true});
  auto [out, err] = co_await p.communicate(word + "\n");
  if (out != word + "\n" + word + "\n" || p.returncode() != 0) ++*failures;
}

// Many children at once; their tasks, pipes and exits spread over workers.
WEFT_TEST_P(SubprocessWorkers, ManyConcurrentSubprocesses) {
  const int n = static_cast<int>(weft::testing::scaled(64));
  std::vector<int> failures(n, 0);
  std::vector<weft::Task<void>> tasks;
  for (int i = 0; i < n; ++i) tasks.push_back(weft::create_task(echo_child(i, &failures[i])));
  for (auto& t : tasks) co_await t;
  int total = 0;
  for (int f : failures) total += f;
  CO_ASSERT_EQ(total, 0);
}
// ------------------------------------------- issue 19: shell, DEVNULL, STDOUT

weft::Coro<void> shell_child(int i, int* failures) {
  // Shell syntax (arithmetic, a pipe, a redirection), the exit status passed on.
  SubprocessOptions options;
  options.stdout_pipe = true;
  options.stderr_to_stdout = true;
  std::string cmd = "echo $((" + std::to_string(i) + " * 2)) | tr 0-9 a-j; echo e >&2; exit " +
                    std::to_string(i % 7);
  Process p = co_await weft::create_subprocess_shell(cmd, options);
  auto [out, err] = co_await p.communicate();
  std::string want;
  for (char c : std::to_string(i * 2)) want += static_cast<char>('a' + (c - '0'));
  if (out != want + "\ne\n" || !err.empty() || p.returncode() != i % 7) ++*failures;
}

WEFT_TEST_P(SubprocessWorkers, ManyConcurrentShells) {
  const int n = static_cast<int>(weft::testing::scaled(64));
  std::vector<int> failures(n, 0);
  std::vector<weft::Task<void>> tasks;
  for (int i = 0; i < n; ++i) tasks.push_back(weft::create_task(shell_child(i, &failures[i])));
  for (auto& t : tasks) co_await t;
  int total = 0;
  for (int f : failures) total += f;
  CO_ASSERT_EQ(total, 0);
}

WEFT_TEST_P(SubprocessWorkers, DevnullForEachStream) {
  // stdin from /dev/null: cat sees EOF at once.
  SubprocessOptions in_null;
  in_null.stdin_devnull = true;
  in_null.stdout_pipe = true;
  std::string cat = "cat; echo done";
  Process a = co_await weft::create_subprocess_shell(cat, in_null);
  auto [a_out, a_err] = co_await a.communicate();
  EXPECT_EQ(a_out, "done\n");
  EXPECT_FALSE(a.stdin_().has_value());
  // stdout to /dev/null, stderr piped.
  SubprocessOptions out_null;
  out_null.stdout_devnull = true;
  out_null.stderr_pipe = true;
  std::string both = "echo out; echo err >&2";
  Process b = co_await weft::create_subprocess_shell(both, out_null);
  auto [b_out, b_err] = co_await b.communicate();
  EXPECT_EQ(b_out, "");
  EXPECT_EQ(b_err, "err\n");
  EXPECT_FALSE(b.stdout_().has_value());
  // stderr to /dev/null, stdout piped.
  SubprocessOptions err_null;
  err_null.stdout_pipe = true;
  err_null.stderr_devnull = true;
  Process c = co_await weft::create_subprocess_shell(both, err_null);
  auto [c_out, c_err] = co_await c.communicate();
  EXPECT_EQ(c_out, "out\n");
  EXPECT_EQ(c_err, "");
  // Both to /dev/null together through stderr_to_stdout.
  SubprocessOptions all_null;
  all_null.stdout_devnull = true;
  all_null.stderr_to_stdout = true;
  Process d = co_await weft::create_subprocess_shell(both, all_null);
  int code = co_await d.wait();
  EXPECT_EQ(code, 0);
}

WEFT_TEST_P(SubprocessWorkers, StderrToStdoutKeepsTheOrderOfOnePipe) {
  SubprocessOptions options;
  options.stdout_pipe = true;
  options.stderr_to_stdout = true;
  Args args{"-c", "echo 1; echo 2 >&2; echo 3; echo 4 >&2"};
  Process p = co_await weft::create_subprocess_exec("sh", args, options);
  EXPECT_FALSE(p.stderr_().has_value());
  auto [out, err] = co_await p.communicate();
  EXPECT_EQ(out, "1\n2\n3\n4\n");
  EXPECT_EQ(err, "");
}

WEFT_TEST_P(SubprocessWorkers, ShellRejectsBadInputWithValueError) {
  int value_errors = 0;
  std::string nul_cmd("echo a\0b", 8);
  try {
    co_await weft::create_subprocess_shell(nul_cmd);
  } catch (const weft::ValueError&) {
    ++value_errors;
  }
  Args nul_arg{std::string("x\0y", 3)};
  try {
    co_await weft::create_subprocess_exec("echo", nul_arg);
  } catch (const weft::ValueError&) {
    ++value_errors;
  }
  std::vector<SubprocessOptions> contradictions(4);
  contradictions[0].stdin_pipe = contradictions[0].stdin_devnull = true;
  contradictions[1].stdout_pipe = contradictions[1].stdout_devnull = true;
  contradictions[2].stderr_pipe = contradictions[2].stderr_to_stdout = true;
  contradictions[3].stderr_devnull = contradictions[3].stderr_to_stdout = true;
  std::string cmd = "true";
  for (const SubprocessOptions& options : contradictions) {
    try {
      co_await weft::create_subprocess_shell(cmd, options);
    } catch (const weft::ValueError&) {
      ++value_errors;
    }
  }
  CO_ASSERT_EQ(value_errors, 6);
  // An empty command is the shell's business, as in Python: it exits 0.
  std::string empty;
  Process p = co_await weft::create_subprocess_shell(empty);
  int code = co_await p.wait();
  CO_ASSERT_EQ(code, 0);
  // A command the shell cannot find: exit status 127, not an exception.
  std::string missing = "/nonexistent/weft-no-such-program";
  SubprocessOptions quiet;
  quiet.stderr_devnull = true;
  Process q = co_await weft::create_subprocess_shell(missing, quiet);
  code = co_await q.wait();
  CO_ASSERT_EQ(code, 127);
}

INSTANTIATE_TEST_SUITE_P(Workers, SubprocessWorkers, ::testing::Values(1u, 2u, 8u),
                         weft::testing::worker_name);

}  // namespace
