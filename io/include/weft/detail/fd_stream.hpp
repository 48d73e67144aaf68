// Wrapping an existing non-blocking fd (a socket or a pipe end) into streams,
// for the io module's own users (subprocess pipes, accepted sockets).
//
// The fd is registered with the running loop's selector (architecture
// invariant 6) and owned by the returned handles from then on: it is closed
// by StreamWriter::close() or when the last handle is dropped, and at the
// latest when the loop goes away (invariant 9).
#pragma once

#include <weft/stream_reader.hpp>
#include <weft/stream_writer.hpp>

#include <cstddef>
#include <utility>

namespace weft::detail {

enum class FdKind {
  socket,  // send/recv with MSG_NOSIGNAL; write_eof = shutdown(SHUT_WR)
  pipe,    // read/write; write_eof closes; SIGPIPE is set to SIG_IGN once (as Python does)
};

/// A connected socket or a bidirectional fd: reader and writer over one fd.
/// Call on a worker (the running loop becomes the fd's loop). The fd must be
/// non-blocking and close-on-exec. @throws RuntimeError outside a loop.
std::pair<StreamReader, StreamWriter> make_fd_streams(int fd, FdKind kind,
                                                      std::size_t limit = kDefaultStreamLimit);
/// The read end of a pipe (e.g. a child's stdout): a reader only.
StreamReader make_pipe_reader(int fd, std::size_t limit = kDefaultStreamLimit);
/// The write end of a pipe (e.g. a child's stdin): a writer only.
StreamWriter make_pipe_writer(int fd);

}  // namespace weft::detail
