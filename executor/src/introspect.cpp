// The introspection endpoint: see introspect.hpp.
#include "introspect.hpp"

#include <weft/call_graph.hpp>
#include <weft/errors.hpp>

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <system_error>

#include "scheduler.hpp"

namespace weft {
namespace detail {

std::vector<TaskCallGraph> capture_scheduler_graphs(Scheduler& scheduler);

namespace {
[[noreturn]] void throw_errno(const std::string& what) {
  throw std::system_error(errno, std::generic_category(), what);
}

std::string one_line(const TaskCallGraph& g) {
  std::string awaits = to_string(g.awaits.kind);
  char buf[64];
  if (g.awaits.object) {
    std::snprintf(buf, sizeof buf, " %p", g.awaits.object);
    awaits += buf;
  }
  if (g.awaits.kind == AwaitKind::task)
    awaits += " (task id " + std::to_string(g.awaits.task_id) + ")";
  if (!g.call_stack.empty() && !g.call_stack.back().file.empty())
    awaits += " at " + g.call_stack.back().file + ":" + std::to_string(g.call_stack.back().line);
  std::string name = g.name;
  for (char& c : name)
    if (c == '\t' || c == '\n') c = ' ';
  std::string age = "-";
  if (g.age) {
    std::snprintf(buf, sizeof buf, "%.1fs", std::chrono::duration<double>(*g.age).count());
    age = buf;
  }
  return std::to_string(g.id) + "\t" + name + "\t" +
         (g.worker < 0 ? std::string("-") : std::to_string(g.worker)) + "\t" + to_string(g.state) +
         "\t" + age + "\t" + awaits + "\n";
}
}  // namespace

IntrospectServer::IntrospectServer(Scheduler& scheduler, std::string path)
    : scheduler_(scheduler), path_(std::move(path)) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path_.empty() || path_.size() >= sizeof addr.sun_path)
    throw ValueError("RunOptions::introspect: the socket path '" + path_ +
                     "' is empty or longer than " + std::to_string(sizeof addr.sun_path - 1) +
                     " bytes");
  std::memcpy(addr.sun_path, path_.c_str(), path_.size() + 1);
  struct stat st {};
  if (::lstat(path_.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode))
      throw ValueError("RunOptions::introspect: '" + path_ + "' exists and is not a socket");
    ::unlink(path_.c_str());  // a stale endpoint of an earlier run
  }
  listen_fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (listen_fd_ < 0) throw_errno("RunOptions::introspect: socket");
  if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::listen(listen_fd_, 8) != 0) {
    int e = errno;
    ::close(listen_fd_);
    errno = e;
    throw_errno("RunOptions::introspect: bind/listen on '" + path_ + "'");
  }
  stop_fd_ = ::eventfd(0, EFD_CLOEXEC);
  if (stop_fd_ < 0) {
    int e = errno;
    ::close(listen_fd_);
    ::unlink(path_.c_str());
    errno = e;
    throw_errno("RunOptions::introspect: eventfd");
  }
  thread_ = std::thread([this] { main(); });
}

IntrospectServer::~IntrospectServer() {
  std::uint64_t one = 1;
  [[maybe_unused]] ssize_t w = ::write(stop_fd_, &one, sizeof one);
  thread_.join();
  ::close(listen_fd_);
  ::close(stop_fd_);
  ::unlink(path_.c_str());
}

void IntrospectServer::main() {
  for (;;) {
    pollfd fds[2] = {{listen_fd_, POLLIN, 0}, {stop_fd_, POLLIN, 0}};
    if (::poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      return;
    }
    if (fds[1].revents) return;
    if (!fds[0].revents) continue;
    int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;
    serve(fd);
    ::close(fd);
  }
}

void IntrospectServer::serve(int fd) {
  std::string request;
  char buf[256];
  while (request.find('\n') == std::string::npos && request.size() < 256) {
    pollfd p[2] = {{fd, POLLIN, 0}, {stop_fd_, POLLIN, 0}};
    int r = ::poll(p, 2, 2000);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0 || p[1].revents) return;
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n <= 0) return;
    request.append(buf, static_cast<std::size_t>(n));
  }
  request = request.substr(0, request.find('\n'));
  std::string reply = answer(request);
  for (std::size_t off = 0; off < reply.size();) {
    ssize_t n = ::send(fd, reply.data() + off, reply.size() - off, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    off += static_cast<std::size_t>(n);
  }
}

std::string IntrospectServer::answer(const std::string& request) {
  if (request != "ps" && request != "tree")
    return "error: unknown request '" + request + "' (expected 'ps' or 'tree')\n";
  std::vector<TaskCallGraph> graphs;
  try {
    graphs = capture_scheduler_graphs(scheduler_);
  } catch (const std::exception& e) {
    return std::string("error: ") + e.what() + "\n";
  }
  if (request == "tree") return format_call_graph_tree(graphs);
  std::string out = "ID\tNAME\tWORKER\tSTATE\tAGE\tAWAITS\n";
  for (const TaskCallGraph& g : graphs) out += one_line(g);
  return out;
}

}  // namespace detail
}  // namespace weft
