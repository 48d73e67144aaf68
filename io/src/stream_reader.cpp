// StreamReader and ReaderState: asyncio.StreamReader's buffer and its exact
// error semantics (STRM-01..10). See transport.hpp for the locking protocol:
// every field is guarded by mu_, futures are completed and the transport is
// resumed only after mu_ is released.
#include <weft/detail/coop.hpp>
#include <weft/errors.hpp>
#include <weft/sleep.hpp>
#include <weft/stream_reader.hpp>

#include <algorithm>
#include <cstring>
#include <utility>

#include "transport.hpp"

namespace weft {
namespace detail {

namespace {
// Compact the buffer once this much has been consumed from its front (and it
// is at least half the buffer), so consumption stays amortised O(1).
constexpr std::size_t kCompactThreshold = 4096;

void wake(std::optional<Future<void>>& waiter) {
  if (waiter) {
    // A waiter cancelled meanwhile is already done: set_value is a no-op then.
    detail::FutureAccess::state(*waiter)->set_value();
    waiter.reset();
  }
}
}  // namespace

void ReaderState::attach(std::weak_ptr<Transport> transport) {
  std::lock_guard lock(mu_);
  transport_ = std::move(transport);
}

bool ReaderState::feed_data(std::string_view data) { return feed(data, nullptr); }

bool ReaderState::feed_data(std::string&& data) { return feed(data, &data); }

bool ReaderState::feed(std::string_view data, std::string* owned) {
  if (data.empty()) return false;
  std::optional<Future<void>> waiter;
  bool pause = false;
  {
    std::lock_guard lock(mu_);
    if (eof_) throw RuntimeError("feed_data after feed_eof");
    std::string& into = pinned_ ? incoming_ : buffer_;
    if (owned && into.empty() && (pinned_ || pos_ == 0))
      into = std::move(*owned);  // `data` views *owned: not read after this
    else
      into.append(data);
    waiter = std::exchange(waiter_, std::nullopt);
    if (!paused_ && !transport_.expired() &&
        buffer_.size() - pos_ + incoming_.size() > 2 * limit_) {
      paused_ = true;
      pause = true;
    }
  }
  wake(waiter);
  return pause;
}

std::size_t ReaderState::room() const {
  std::lock_guard lock(mu_);
  const std::size_t buffered = buffer_.size() - pos_ + incoming_.size();
  return buffered > 2 * limit_ ? 0 : 2 * limit_ - buffered + 1;
}

void ReaderState::feed_eof() {
  std::optional<Future<void>> waiter;
  {
    std::lock_guard lock(mu_);
    eof_ = true;
    waiter = std::exchange(waiter_, std::nullopt);
  }
  wake(waiter);
}

void ReaderState::set_exception(std::exception_ptr e) {
  std::optional<Future<void>> waiter;
  {
    std::lock_guard lock(mu_);
    error_ = std::move(e);
    waiter = std::exchange(waiter_, std::nullopt);
  }
  wake(waiter);
}

std::exception_ptr ReaderState::exception() const {
  std::lock_guard lock(mu_);
  return error_;
}

bool ReaderState::at_eof() const {
  std::lock_guard lock(mu_);
  return eof_ && pos_ == buffer_.size() && incoming_.empty();
}

Future<void> ReaderState::wait_locked(const char* what, bool& resume) {
  if (waiter_ && !waiter_->done())
    throw RuntimeError(std::string(what) +
                       "() called while another coroutine is already waiting for incoming data");
  if (paused_) {
    paused_ = false;
    resume = true;
  }
  waiter_.emplace();
  return *waiter_;
}

void ReaderState::unread(const std::string& data) {
  if (data.empty()) return;
  std::lock_guard lock(mu_);
  unpin_locked();
  if (pos_ >= data.size()) {
    pos_ -= data.size();
    buffer_.replace(pos_, data.size(), data);
  } else {
    buffer_.replace(0, pos_, data);
    pos_ = 0;
  }
}

void ReaderState::unpin_locked() {
  if (!pinned_) return;
  pinned_ = false;
  if (incoming_.empty()) return;
  if (pos_ == buffer_.size()) {
    buffer_.swap(incoming_);
    pos_ = 0;
  } else {
    buffer_.append(incoming_);
  }
  incoming_.clear();
}

bool ReaderState::consume_locked(std::size_t n) {
  pos_ += n;
  if (pos_ == buffer_.size()) {
    buffer_.clear();
    pos_ = 0;
  } else if (pos_ >= kCompactThreshold && pos_ * 2 >= buffer_.size()) {
    buffer_.erase(0, pos_);
    pos_ = 0;
  }
  if (paused_ && buffer_.size() - pos_ <= limit_) {
    paused_ = false;
    return true;
  }
  return false;
}

std::string ReaderState::take_buffered() {
  std::string taken;
  bool resume;
  {
    std::lock_guard lock(mu_);
    unpin_locked();
    taken.assign(buffer_, pos_);
    resume = consume_locked(taken.size());
  }
  if (resume) resume_transport();
  return taken;
}

void ReaderState::resume_transport() {
  std::shared_ptr<Transport> t;
  {
    std::lock_guard lock(mu_);
    t = transport_.lock();
  }
  if (t) t->resume_reading();
}

Coro<std::string> ReaderState::read(std::shared_ptr<ReaderState> self, ssize_t n) {
  // A read served from the buffer consumes the step's cooperative budget;
  // once it is spent, yield before taking anything (detail/coop.hpp).
  if (!coop_take()) co_await weft::sleep(Duration::zero());
  if (n < 0) {
    // asyncio reads limit-sized blocks until EOF, so flow control keeps working.
    std::string out;
    try {
      for (;;) {
        std::string block = co_await read(self, static_cast<ssize_t>(self->limit_));
        if (block.empty()) break;
        out += block;
      }
    } catch (...) {
      // Cancelled (or failed) while waiting for more: the blocks taken so far
      // go back to the buffer, as a read that waited with nothing taken
      // leaves it intact (asyncio loses them; found by fuzz/stream_reader_fuzz).
      self->unread(out);
      throw;
    }
    co_return out;
  }
  for (;;) {
    std::string out;
    auto take = [&](ReaderState& s, bool& resume) {
      if (n == 0) return true;
      std::size_t avail = s.buffer_.size() - s.pos_;
      if (avail == 0 && !s.eof_) return false;
      std::size_t want = std::min<std::size_t>(avail, static_cast<std::size_t>(n));
      if (want == avail && s.pos_ == 0) {
        // Everything buffered, from its start: hand the buffer itself over
        // (no copy); the next feed_data starts a new one.
        out = std::move(s.buffer_);
        s.buffer_.clear();
        resume = s.consume_locked(0);
      } else {
        out.assign(s.buffer_, s.pos_, want);
        resume = s.consume_locked(want);
      }
      return true;
    };
    std::optional<Future<void>> wait = self->attempt("read", take);
    if (!wait) co_return out;
    co_await std::move(*wait);
  }
}

Coro<std::size_t> ReaderState::readinto(std::shared_ptr<ReaderState> self,
                                        std::span<std::byte> into) {
  if (!coop_take()) co_await weft::sleep(Duration::zero());
  for (;;) {
    std::size_t taken = 0;
    auto take = [&](ReaderState& s, bool& resume) {
      if (into.empty()) return true;
      std::size_t avail = s.buffer_.size() - s.pos_;
      if (avail == 0 && !s.eof_) return false;
      taken = std::min(avail, into.size());
      std::memcpy(into.data(), s.buffer_.data() + s.pos_, taken);
      resume = s.consume_locked(taken);
      return true;
    };
    std::optional<Future<void>> wait = self->attempt("readinto", take);
    if (!wait) co_return taken;
    co_await std::move(*wait);
  }
}

Coro<std::string> ReaderState::readexactly(std::shared_ptr<ReaderState> self, ssize_t n) {
  if (n < 0) throw ValueError("readexactly size can not be less than zero");
  // A read served from the buffer consumes the step's cooperative budget;
  // once it is spent, yield before taking anything (detail/coop.hpp).
  if (!coop_take()) co_await weft::sleep(Duration::zero());
  for (;;) {
    std::string out;
    auto take = [&](ReaderState& s, bool& resume) {
      if (n == 0) return true;
      std::size_t want = static_cast<std::size_t>(n);
      std::size_t avail = s.buffer_.size() - s.pos_;
      if (avail >= want) {
        out.assign(s.buffer_, s.pos_, want);
        resume = s.consume_locked(want);
        return true;
      }
      if (!s.eof_) return false;
      std::string partial = s.buffer_.substr(s.pos_);
      s.buffer_.clear();
      s.pos_ = 0;
      throw IncompleteReadError(std::move(partial), want);
    };
    std::optional<Future<void>> wait = self->attempt("readexactly", take);
    if (!wait) co_return out;
    co_await std::move(*wait);
  }
}

Coro<std::string> ReaderState::readuntil(std::shared_ptr<ReaderState> self,
                                         std::vector<std::string> separators) {
  if (separators.empty()) throw ValueError("Separator should contain at least one element");
  std::sort(separators.begin(), separators.end(),
            [](const std::string& a, const std::string& b) { return a.size() < b.size(); });
  const std::size_t min_len = separators.front().size();
  const std::size_t max_len = separators.back().size();
  if (min_len == 0) throw ValueError("Separator should be at least one-byte string");
  // A read served from the buffer consumes the step's cooperative budget;
  // once it is spent, yield before taking anything (detail/coop.hpp).
  if (!coop_take()) co_await weft::sleep(Duration::zero());
  std::size_t offset = 0;  // relative to pos_: no match can start before it
  for (;;) {
    std::string out;
    auto take = [&](ReaderState& s, bool& resume) {
      std::size_t buflen = s.buffer_.size() - s.pos_;
      std::string_view view(s.buffer_.data() + s.pos_, buflen);
      bool found = false;
      std::size_t match_start = 0, match_end = 0;
      if (buflen >= offset + min_len) {
        for (const std::string& sep : separators) {
          std::size_t isep = view.find(sep, offset);
          if (isep == std::string_view::npos) continue;
          std::size_t end = isep + sep.size();
          if (!found || end < match_end) {
            found = true;
            match_start = isep;
            match_end = end;
          }
        }
        if (!found) {
          offset = buflen + 1 > max_len ? buflen + 1 - max_len : 0;
          if (offset > s.limit_)
            throw LimitOverrunError("Separator is not found, and chunk exceed the limit", offset);
        }
      }
      if (found) {
        if (match_start > s.limit_)
          throw LimitOverrunError("Separator is found, but chunk is longer than limit",
                                  match_start);
        out.assign(view.substr(0, match_end));
        resume = s.consume_locked(match_end);
        return true;
      }
      if (!s.eof_) return false;
      std::string partial(view);
      s.buffer_.clear();
      s.pos_ = 0;
      throw IncompleteReadError(std::move(partial), std::nullopt);
    };
    std::optional<Future<void>> wait = self->attempt("readuntil", take);
    if (!wait) co_return out;
    co_await std::move(*wait);
  }
}

Coro<std::string> ReaderState::readline(std::shared_ptr<ReaderState> self) {
  std::string message;
  std::vector<std::string> newline(1, std::string(1, '\n'));
  try {
    co_return co_await readuntil(self, std::move(newline));
  } catch (const IncompleteReadError& e) {
    co_return e.partial();
  } catch (const LimitOverrunError& e) {
    // STRM-03: unlike readuntil, readline consumes the overlong line.
    message = e.what();
    bool resume = false;
    {
      std::lock_guard lock(self->mu_);
      self->unpin_locked();
      std::size_t consumed = e.consumed();
      std::size_t avail = self->buffer_.size() - self->pos_;
      if (consumed < avail && self->buffer_[self->pos_ + consumed] == '\n')
        resume = self->consume_locked(consumed + 1);
      else
        resume = self->consume_locked(avail);
    }
    if (resume) self->resume_transport();
  }
  throw ValueError(message);
}

Coro<std::string_view> ReaderState::peek(std::shared_ptr<ReaderState> self, std::size_t min) {
  if (!coop_take()) co_await weft::sleep(Duration::zero());
  for (;;) {
    std::string_view view;
    auto take = [&](ReaderState& s, bool&) {
      std::size_t avail = s.buffer_.size() - s.pos_;
      if (avail < min && !s.eof_) return false;
      // The view points into buffer_; pinned_ keeps feed_data from
      // appending to it (which could move it) until the next reader call.
      s.pinned_ = avail > 0;
      view = std::string_view(s.buffer_.data() + s.pos_, avail);
      return true;
    };
    std::optional<Future<void>> wait = self->attempt("peek", take);
    if (!wait) co_return view;
    co_await std::move(*wait);
  }
}

void ReaderState::consume(std::size_t n) {
  bool resume;
  {
    std::lock_guard lock(mu_);
    unpin_locked();
    const std::size_t avail = buffer_.size() - pos_;
    if (n > avail)
      throw ValueError("consume(" + std::to_string(n) + "): only " + std::to_string(avail) +
                       " bytes are buffered");
    resume = consume_locked(n);
  }
  if (resume) resume_transport();
}

}  // namespace detail

// ---------------------------------------------------------------- StreamReader

StreamReader::StreamReader(ssize_t limit) {
  if (limit <= 0) throw ValueError("Limit cannot be <= 0");
  state_ = std::make_shared<detail::ReaderState>(static_cast<std::size_t>(limit));
}

StreamReader::StreamReader(std::shared_ptr<detail::ReaderState> state,
                           std::shared_ptr<detail::StreamOwner> owner)
    : state_(std::move(state)), owner_(std::move(owner)) {}

Coro<std::string> StreamReader::read(ssize_t n) { return detail::ReaderState::read(state_, n); }
Coro<std::size_t> StreamReader::readinto(std::span<std::byte> buffer) {
  return detail::ReaderState::readinto(state_, buffer);
}
Coro<std::string> StreamReader::readline() { return detail::ReaderState::readline(state_); }
Coro<std::string> StreamReader::readexactly(ssize_t n) {
  return detail::ReaderState::readexactly(state_, n);
}
Coro<std::string> StreamReader::readuntil(std::string_view separator) {
  return detail::ReaderState::readuntil(state_, std::vector<std::string>{std::string(separator)});
}
Coro<std::string> StreamReader::readuntil(std::vector<std::string> separators) {
  return detail::ReaderState::readuntil(state_, std::move(separators));
}
Coro<std::string_view> StreamReader::peek(std::size_t min) {
  return detail::ReaderState::peek(state_, min);
}
void StreamReader::consume(std::size_t n) { state_->consume(n); }
bool StreamReader::at_eof() const { return state_->at_eof(); }
std::exception_ptr StreamReader::exception() const { return state_->exception(); }
std::size_t StreamReader::limit() const noexcept { return state_->limit(); }
void StreamReader::feed_data(std::string_view data) { state_->feed_data(data); }
void StreamReader::feed_eof() { state_->feed_eof(); }
void StreamReader::set_exception(std::exception_ptr error) {
  state_->set_exception(std::move(error));
}

}  // namespace weft
