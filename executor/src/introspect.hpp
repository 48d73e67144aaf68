// IntrospectServer: the endpoint of RunOptions::introspect, for weft-ps.
//
// A thread of the runtime listens on a unix stream socket at the given
// path. A client sends one request line and reads the answer until the
// server closes the connection:
//   "ps\n"    one line per pending task: id, name, worker, state, what it
//             awaits (tab-separated, a header line first)
//   "tree\n"  format_call_graph_tree() of every pending task
// Anything else gets "error: ..." and a close. Each request captures the
// graphs with the workers paused (call_graph.hpp). Connections are served
// one at a time; a client that sends nothing for 2 s is dropped.
// The socket file is created at start (an existing socket file at the path
// is replaced; anything else there is an error) and removed at shutdown.
#pragma once

#include <string>
#include <thread>

namespace weft::detail {

class Scheduler;

class IntrospectServer {
 public:
  /// @throws ValueError for a path that does not fit a sockaddr_un or where
  /// a file that is not a socket exists; std::system_error when the socket
  /// cannot be made.
  IntrospectServer(Scheduler& scheduler, std::string path);
  ~IntrospectServer();
  IntrospectServer(const IntrospectServer&) = delete;
  IntrospectServer& operator=(const IntrospectServer&) = delete;

 private:
  void main();
  void serve(int fd);
  std::string answer(const std::string& request);

  Scheduler& scheduler_;
  std::string path_;
  int listen_fd_ = -1;
  int stop_fd_ = -1;  // eventfd: the destructor wakes the thread
  std::thread thread_;
};

}  // namespace weft::detail
