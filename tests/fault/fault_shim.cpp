// Fault injection by LD_PRELOAD (docs/testing.md, "Fault injection"): this
// shared library sits between weft and libc and makes chosen calls fail at
// chosen rates, the way the kernel may make them fail:
//
//   recv, read          EINTR, EAGAIN, ECONNRESET, a short read
//   send, sendmsg,      EINTR, EAGAIN, ECONNRESET, EPIPE, ENOBUFS, a short write
//   writev
//   accept4             EINTR, ECONNABORTED, EMFILE, ENFILE, ENOBUFS, ENOMEM
//   epoll_wait          EINTR
//   eventfd writes      EINTR (nothing written), EAGAIN (written: the counter
//                       was readable already)
//   posix_spawnp        EAGAIN, ENOMEM (its return value)
//   malloc              NULL, only on a thread that armed it (weft_fault_malloc)
//
// read/writev are faulted only on sockets and pipes, write only on eventfds
// (8-byte writes to an anonymous inode), so the test's own files, /proc and
// the sanitizers' output are left alone. Nothing is injected until
// weft_fault_configure() (or WEFT_FAULTS in the environment) sets rates.
// Under ASan and TSan the sanitizer's malloc comes first, so malloc is only
// faulted in uninstrumented builds; every other call passes through the
// sanitizer's interceptor to this library.
//
// Spec: "recv=0.05,send=0.05,accept=0.2,epoll_wait=0.02,eventfd=0.1,spawn=0.5,
// malloc=0.01" (a call's probability of failing); seed=N for the
// random choices. Counters by call and outcome: weft_fault_report().
#include <dlfcn.h>
#include <errno.h>
#include <spawn.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>

extern "C" void* __libc_malloc(std::size_t);

namespace {

enum Call { kRecv, kRead, kSend, kWrite, kAccept, kEpollWait, kEventfd, kSpawn, kMalloc, kCalls };
const char* const kCallNames[kCalls] = {"recv",       "read",    "send",  "writev", "accept",
                                        "epoll_wait", "eventfd", "spawn", "malloc"};
// The spec's key for each call: read and writev go with recv and send.
const char* const kCallKeys[kCalls] = {"recv",       "recv",    "send",  "send",  "accept",
                                       "epoll_wait", "eventfd", "spawn", "malloc"};

// Outcomes: an errno value, or kShort for a shortened transfer.
constexpr int kShort = 0;
constexpr int kMaxOutcomes = 8;
struct Outcomes {
  int n;
  int err[kMaxOutcomes];
};
const Outcomes kOutcomes[kCalls] = {
    {4, {EINTR, EAGAIN, ECONNRESET, kShort}},                     // recv
    {3, {EINTR, EAGAIN, kShort}},                                 // read
    {6, {EINTR, EAGAIN, ECONNRESET, EPIPE, ENOBUFS, kShort}},     // send
    {4, {EINTR, EAGAIN, EPIPE, kShort}},                          // writev
    {6, {EINTR, ECONNABORTED, EMFILE, ENFILE, ENOBUFS, ENOMEM}},  // accept
    {1, {EINTR}},                                                 // epoll_wait
    {2, {EINTR, EAGAIN}},                                         // eventfd
    {2, {EAGAIN, ENOMEM}},                                        // spawn
    {1, {ENOMEM}},                                                // malloc
};

std::atomic<std::uint32_t> g_rate[kCalls];  // probability * 2^32, 0 = never
std::atomic<std::uint64_t> g_seed{0x9E3779B97F4A7C15ull};
std::atomic<std::uint64_t> g_calls[kCalls];
std::atomic<std::uint64_t> g_injected[kCalls][kMaxOutcomes];
thread_local bool t_malloc_armed = false;
thread_local std::uint64_t t_rng = 0;

std::uint64_t next_random() {
  if (t_rng == 0) {
    static std::atomic<std::uint64_t> threads{0};
    t_rng = g_seed.load() ^ (0xD1B54A32D192ED03ull * (threads.fetch_add(1) + 1));
    if (t_rng == 0) t_rng = 1;
  }
  t_rng ^= t_rng << 13;
  t_rng ^= t_rng >> 7;
  t_rng ^= t_rng << 17;
  return t_rng;
}

/// The outcome index to inject for this call, or -1 to pass it through.
int draw(Call c) {
  std::uint32_t rate = g_rate[c].load(std::memory_order_relaxed);
  if (rate == 0) return -1;
  g_calls[c].fetch_add(1, std::memory_order_relaxed);
  std::uint64_t r = next_random();
  if (static_cast<std::uint32_t>(r) >= rate) return -1;
  int i = static_cast<int>((r >> 32) % static_cast<std::uint64_t>(kOutcomes[c].n));
  g_injected[c][i].fetch_add(1, std::memory_order_relaxed);
  return i;
}

template <class F>
F real(const char* name) {
  return reinterpret_cast<F>(dlsym(RTLD_NEXT, name));
}

bool is_socket_or_pipe(int fd) {
  struct stat st;
  if (fstat(fd, &st) != 0) return false;
  return S_ISSOCK(st.st_mode) || S_ISFIFO(st.st_mode);
}

// A datagram is never cut short by the kernel: short transfers are for streams.
bool is_stream_socket(int fd) {
  int type = 0;
  socklen_t len = sizeof type;
  return getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) == 0 && type == SOCK_STREAM;
}

bool is_eventfd(int fd, std::size_t count) {
  if (count != 8) return false;
  struct stat st;
  return fstat(fd, &st) == 0 && (st.st_mode & S_IFMT) == 0;  // an anonymous inode
}

void configure(const char* spec) {
  for (auto& r : g_rate) r.store(0);
  if (!spec || !*spec) return;
  // New rates, new counts.
  for (auto& c : g_calls) c.store(0);
  for (auto& per_call : g_injected)
    for (auto& n : per_call) n.store(0);
  const char* p = spec;
  while (*p) {
    const char* eq = std::strchr(p, '=');
    if (!eq) return;
    const char* end = std::strchr(eq, ',');
    if (!end) end = eq + std::strlen(eq);
    std::size_t klen = static_cast<std::size_t>(eq - p);
    double v = std::strtod(eq + 1, nullptr);
    if (klen == 4 && std::strncmp(p, "seed", 4) == 0) {
      g_seed.store(static_cast<std::uint64_t>(v));
    } else {
      for (int c = 0; c < kCalls; ++c)
        if (std::strlen(kCallKeys[c]) == klen && std::strncmp(p, kCallKeys[c], klen) == 0)
          g_rate[c].store(v <= 0   ? 0u
                          : v >= 1 ? 0xFFFFFFFFu
                                   : static_cast<std::uint32_t>(v * 4294967296.0));
    }
    p = *end ? end + 1 : end;
  }
}

const char* errno_name(int e) {
  switch (e) {
    case kShort:
      return "short";
    case EINTR:
      return "EINTR";
    case EAGAIN:
      return "EAGAIN";
    case ECONNRESET:
      return "ECONNRESET";
    case EPIPE:
      return "EPIPE";
    case ENOBUFS:
      return "ENOBUFS";
    case ECONNABORTED:
      return "ECONNABORTED";
    case EMFILE:
      return "EMFILE";
    case ENFILE:
      return "ENFILE";
    case ENOMEM:
      return "ENOMEM";
    case EBUSY:
      return "EBUSY";
    default:
      return "?";
  }
}

__attribute__((constructor)) void from_environment() { configure(std::getenv("WEFT_FAULTS")); }

}  // namespace

extern "C" {

/// Sets every rate (those not named go to 0) and zeroes the counts; nullptr
/// or "" turns faults off and keeps the counts for weft_fault_report().
__attribute__((visibility("default"))) void weft_fault_configure(const char* spec) {
  configure(spec);
}

/// Arms (or disarms) malloc faults on the calling thread only.
__attribute__((visibility("default"))) void weft_fault_malloc(bool armed) {
  t_malloc_armed = armed;
}

/// Number of faults injected for `call` (a name of kCallNames) with outcome
/// `outcome` ("EINTR", "short", ...; nullptr: all outcomes).
__attribute__((visibility("default"))) std::uint64_t weft_fault_count(const char* call,
                                                                      const char* outcome) {
  std::uint64_t n = 0;
  for (int c = 0; c < kCalls; ++c) {
    if (std::strcmp(kCallNames[c], call) != 0) continue;
    for (int i = 0; i < kOutcomes[c].n; ++i)
      if (!outcome || std::strcmp(errno_name(kOutcomes[c].err[i]), outcome) == 0)
        n += g_injected[c][i].load();
  }
  return n;
}

/// "call outcome count" lines for every fault injected, and calls seen.
__attribute__((visibility("default"))) void weft_fault_report(char* out, std::size_t len) {
  std::size_t used = 0;
  out[0] = '\0';
  for (int c = 0; c < kCalls; ++c) {
    for (int i = 0; i < kOutcomes[c].n; ++i) {
      std::uint64_t n = g_injected[c][i].load();
      if (n == 0 || used >= len) continue;
      used += static_cast<std::size_t>(
          std::snprintf(out + used, len - used, "%s %s %llu of %llu\n", kCallNames[c],
                        errno_name(kOutcomes[c].err[i]), static_cast<unsigned long long>(n),
                        static_cast<unsigned long long>(g_calls[c].load())));
    }
  }
}

ssize_t recv(int fd, void* buf, size_t len, int flags) {
  static auto fn = real<ssize_t (*)(int, void*, size_t, int)>("recv");
  int i = draw(kRecv);
  if (i < 0) return fn(fd, buf, len, flags);
  int e = kOutcomes[kRecv].err[i];
  if (e == kShort && !is_stream_socket(fd)) return fn(fd, buf, len, flags);
  if (e == kShort) return fn(fd, buf, len > 1 ? len / 2 : len, flags);
  errno = e;
  return -1;
}

ssize_t read(int fd, void* buf, size_t len) {
  static auto fn = real<ssize_t (*)(int, void*, size_t)>("read");
  if (g_rate[kRead].load(std::memory_order_relaxed) == 0 || !is_socket_or_pipe(fd))
    return fn(fd, buf, len);
  int i = draw(kRead);
  if (i < 0) return fn(fd, buf, len);
  int e = kOutcomes[kRead].err[i];
  if (e == kShort) return fn(fd, buf, len > 1 ? len / 2 : len);
  errno = e;
  return -1;
}

ssize_t send(int fd, const void* buf, size_t len, int flags) {
  static auto fn = real<ssize_t (*)(int, const void*, size_t, int)>("send");
  int i = draw(kSend);
  if (i < 0) return fn(fd, buf, len, flags);
  int e = kOutcomes[kSend].err[i];
  if (e == kShort && !is_stream_socket(fd)) return fn(fd, buf, len, flags);
  if (e == kShort) return fn(fd, buf, len > 1 ? len / 2 : len, flags);
  errno = e;
  return -1;
}

ssize_t sendmsg(int fd, const struct msghdr* msg, int flags) {
  static auto fn = real<ssize_t (*)(int, const struct msghdr*, int)>("sendmsg");
  int i = draw(kSend);
  if (i < 0) return fn(fd, msg, flags);
  int e = kOutcomes[kSend].err[i];
  if (e == kShort) {
    if (msg->msg_iovlen == 0 || !is_stream_socket(fd)) return fn(fd, msg, flags);
    // The first half of the first buffer only.
    struct iovec first = msg->msg_iov[0];
    if (first.iov_len > 1) first.iov_len /= 2;
    struct msghdr shorter = *msg;
    shorter.msg_iov = &first;
    shorter.msg_iovlen = 1;
    return fn(fd, &shorter, flags);
  }
  errno = e;
  return -1;
}

ssize_t writev(int fd, const struct iovec* iov, int count) {
  static auto fn = real<ssize_t (*)(int, const struct iovec*, int)>("writev");
  if (g_rate[kWrite].load(std::memory_order_relaxed) == 0 || !is_socket_or_pipe(fd))
    return fn(fd, iov, count);
  int i = draw(kWrite);
  if (i < 0) return fn(fd, iov, count);
  int e = kOutcomes[kWrite].err[i];
  if (e == kShort) {
    if (count == 0) return fn(fd, iov, count);
    struct iovec first = iov[0];
    if (first.iov_len > 1) first.iov_len /= 2;
    return fn(fd, &first, 1);
  }
  errno = e;
  return -1;
}

ssize_t write(int fd, const void* buf, size_t len) {
  static auto fn = real<ssize_t (*)(int, const void*, size_t)>("write");
  if (g_rate[kEventfd].load(std::memory_order_relaxed) == 0 || !is_eventfd(fd, len))
    return fn(fd, buf, len);
  int i = draw(kEventfd);
  if (i < 0) return fn(fd, buf, len);
  int e = kOutcomes[kEventfd].err[i];
  // The kernel says EAGAIN only when the counter cannot take more, i.e. the
  // eventfd is readable already: write, then say so.
  if (e == EAGAIN) fn(fd, buf, len);
  errno = e;
  return -1;
}

int accept4(int fd, struct sockaddr* addr, socklen_t* addrlen, int flags) {
  static auto fn = real<int (*)(int, struct sockaddr*, socklen_t*, int)>("accept4");
  int i = draw(kAccept);
  if (i < 0) return fn(fd, addr, addrlen, flags);
  errno = kOutcomes[kAccept].err[i];
  return -1;
}

int epoll_wait(int epfd, struct epoll_event* events, int max, int timeout) {
  static auto fn = real<int (*)(int, struct epoll_event*, int, int)>("epoll_wait");
  int i = draw(kEpollWait);
  if (i < 0) return fn(epfd, events, max, timeout);
  errno = kOutcomes[kEpollWait].err[i];
  return -1;
}

int posix_spawnp(pid_t* pid, const char* file, const posix_spawn_file_actions_t* actions,
                 const posix_spawnattr_t* attr, char* const argv[], char* const envp[]) {
  static auto fn =
      real<int (*)(pid_t*, const char*, const posix_spawn_file_actions_t*, const posix_spawnattr_t*,
                   char* const[], char* const[])>("posix_spawnp");
  int i = draw(kSpawn);
  if (i < 0) return fn(pid, file, actions, attr, argv, envp);
  return kOutcomes[kSpawn].err[i];
}

void* malloc(size_t size) {
  if (t_malloc_armed && draw(kMalloc) >= 0) {
    errno = ENOMEM;
    return nullptr;
  }
  return __libc_malloc(size);
}

}  // extern "C"
