// main() of every test binary: GoogleTest with a global Environment that
// checks, after the last test, that the process has as many open file
// descriptors and live task states (weft::detail::live_task_count) as before
// the first (issue 17, item 5). ctest runs each test in its own process, so a
// failure there names the test that leaked; a binary run by hand with many
// tests names only the binary.
//
// The descriptors are listed with their targets (/proc/self/fd) so that a
// failure says what leaked: a socket, a pipe, an eventfd, an io_uring.
#include <dirent.h>
#include <gtest/gtest.h>
#include <unistd.h>
#include <weft/detail/task_core.hpp>

#include "weft_test.hpp"

#include <cstdint>
#include <cstdlib>
#include <map>
#include <sstream>
#include <string>

namespace {

/// fd -> what it refers to, for every open descriptor but the listing's own.
std::map<int, std::string> open_fds() {
  std::map<int, std::string> fds;
  DIR* dir = opendir("/proc/self/fd");
  if (!dir) return fds;
  int own = dirfd(dir);
  while (dirent* e = readdir(dir)) {
    if (e->d_name[0] == '.') continue;
    int fd = std::atoi(e->d_name);
    if (fd == own) continue;
    std::string link = std::string("/proc/self/fd/") + e->d_name;
    char target[512];
    ssize_t n = readlink(link.c_str(), target, sizeof target - 1);
    fds[fd] = n < 0 ? std::string("?") : std::string(target, static_cast<std::size_t>(n));
  }
  closedir(dir);
  return fds;
}

std::string describe(const std::map<int, std::string>& fds) {
  std::ostringstream out;
  for (const auto& [fd, target] : fds) out << "\n  fd " << fd << " -> " << target;
  return out.str();
}

class LeakCheck : public ::testing::Environment {
 public:
  void SetUp() override {
    weft::testing::start_sanitizer_helpers();
    fds_ = open_fds();
    tasks_ = weft::detail::live_task_count();
  }

  void TearDown() override {
    std::map<int, std::string> now = open_fds();
    std::map<int, std::string> opened, closed;
    for (const auto& [fd, target] : now)
      if (auto it = fds_.find(fd); it == fds_.end() || it->second != target) opened[fd] = target;
    for (const auto& [fd, target] : fds_)
      if (auto it = now.find(fd); it == now.end() || it->second != target) closed[fd] = target;
    EXPECT_TRUE(opened.empty() && closed.empty())
        << "leak check: open file descriptors differ from the start of the tests (" << fds_.size()
        << " then, " << now.size() << " now)\nopened and still open:" << describe(opened)
        << "\nclosed (open at the start):" << describe(closed);
    std::int64_t tasks = weft::detail::live_task_count();
    EXPECT_EQ(tasks, tasks_) << "leak check: live task states at the end (" << tasks
                             << ") differ from the start (" << tasks_
                             << "): a task handle or task state outlived the tests";
  }

 private:
  std::map<int, std::string> fds_;
  std::int64_t tasks_ = 0;
};

}  // namespace

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  ::testing::AddGlobalTestEnvironment(new LeakCheck);  // owned by GoogleTest
  return RUN_ALL_TESTS();
}
