// Connection and Exchange (connection.h, http_server.h).
#include "http/connection.h"

#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/status.hpp>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

namespace strata::http {

namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using boost::system::error_code;

namespace {

// One read's size, and how much of a pipelined next request is buffered while a
// response is pending (beyond it the connection stops reading until the response is out).
constexpr size_t kReadChunk = 16 << 10;
constexpr size_t kMaxPipelinedBytes = 64 << 10;
// Bytes queued for a client that does not read them: beyond this it counts as gone.
constexpr size_t kMaxOutboxBytes = 16 << 20;
// After an error response that closes the connection: how long, and how many bytes, the
// rest of the request is read and discarded (see Linger).
constexpr auto kLingerTime = std::chrono::seconds(2);
constexpr size_t kMaxLingerBytes = 1 << 20;

bool IEquals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(a[i])) !=
        std::tolower(static_cast<unsigned char>(b[i])))
      return false;
  return true;
}

std::string Chunk(std::string_view data) {
  return fmt::format("{:x}\r\n{}\r\n", data.size(), data);
}

}  // namespace

std::string_view Request::Header(std::string_view name) const {
  for (const auto& [k, v] : headers)
    if (IEquals(k, name)) return v;
  return {};
}

Response Core::Error(int status, std::string message) const {
  if (options.render_error) return options.render_error(status, std::move(message));
  return Response{status, "text/plain; charset=utf-8", std::move(message) + "\n", {}};
}

bool Core::ReserveBody(size_t n) {
  size_t cur = body_bytes.load();
  do {
    if (cur + n > options.max_buffered_body_bytes) return false;
  } while (!body_bytes.compare_exchange_weak(cur, cur + n));
  return true;
}

// ---- Exchange ----

Exchange::Exchange(std::weak_ptr<Connection> connection) : state_(std::make_unique<State>()) {
  state_->connection = std::move(connection);
}
Exchange::~Exchange() = default;

void Exchange::Respond(Response response) {
  Connection::Post(*this, /*finish=*/true,
                   [r = std::move(response)](Connection& c) mutable { c.DoRespond(std::move(r)); });
}

void Exchange::BeginStream(int status, std::string content_type, Headers headers) {
  Connection::Post(
      *this, false,
      [status, ct = std::move(content_type), h = std::move(headers)](Connection& c) mutable {
        c.DoBeginStream(status, std::move(ct), std::move(h));
      });
}

void Exchange::Write(std::string data) {
  if (data.empty()) return;
  Connection::Post(*this, false,
                   [d = std::move(data)](Connection& c) mutable { c.DoWrite(std::move(d)); });
}

void Exchange::End() {
  Connection::Post(*this, true, [](Connection& c) { c.DoEnd(); });
}

void Exchange::OnGone(std::function<void()> fn) {
  std::lock_guard lock(state_->mu);
  state_->on_gone = std::move(fn);
}

void Exchange::SetProbe(Probe probe) {
  std::lock_guard lock(state_->mu);
  state_->probe = std::move(probe);
}

void Exchange::After(std::chrono::milliseconds delay, std::function<void()> fn) {
  std::shared_ptr<Connection> c;
  {
    std::lock_guard lock(state_->mu);
    if (state_->finished) return;
    c = state_->connection.lock();
  }
  if (c) c->DoAfter(delay, std::move(fn));
}

void Connection::Post(Exchange& exchange, bool finish, std::function<void(Connection&)> fn) {
  Exchange::State& s = *exchange.state_;
  std::lock_guard lock(s.mu);
  if (s.finished) return;
  if (finish) s.finished = true;
  std::shared_ptr<Connection> c = s.connection.lock();
  if (!c) return;
  // Only into this exchange's response, never into a later one on the same connection.
  asio::post(c->executor_, [c, x = &exchange, fn = std::move(fn)] {
    if (c->exchange_.get() == x) fn(*c);
  });
}

// ---- Connection ----

Connection::Connection(Core* core, tcp::socket socket, bool reject)
    : core_(core),
      executor_(socket.get_executor()),
      socket_(std::move(socket)),
      read_timer_(executor_),
      write_timer_(executor_),
      probe_timer_(executor_),
      reject_(reject) {
  if (!reject_) {
    core_->open.fetch_add(1);
    counted_open_ = true;
  }
}

Connection::~Connection() {
  ReleaseBodyBudget();
  if (counted_open_) core_->open.fetch_sub(1);
  std::lock_guard lock(core_->mu);
  core_->live.erase(this);
}

void Connection::Start() {
  {
    std::lock_guard lock(core_->mu);
    core_->live.emplace(this, weak_from_this());
  }
  if (reject_) {
    core_->rejected.fetch_add(1);
    Fail(503, fmt::format("the server has {} open connections, its limit; try again later",
                          core_->options.max_connections));
    return;
  }
  core_->accepted.fetch_add(1);
  ArmReadTimer(core_->options.idle_timeout);
  Read();
}

bool Connection::Stopping() const {
  std::lock_guard lock(core_->mu);
  return core_->stopping;
}

void Connection::Shutdown(std::chrono::milliseconds grace) {
  if (state_ == State::kClosed) return;
  if (!(response_done_ && writing_)) {
    Close();
    return;
  }
  // The last bytes of a response are on their way: let them go out, for a while.
  close_after_write_ = true;
  probe_timer_.expires_after(grace);
  probe_timer_.async_wait([self = shared_from_this()](error_code ec) {
    if (!ec) self->Close();
  });
}

// ---- reading ----

void Connection::Read() {
  if (reading_ || state_ == State::kClosed) return;
  reading_ = true;
  if (!chunk_) chunk_ = std::make_unique<char[]>(kReadChunk);
  socket_.async_read_some(
      asio::buffer(chunk_.get(), kReadChunk),
      [self = shared_from_this()](error_code ec, size_t n) { self->OnRead(ec, n); });
}

void Connection::OnRead(error_code ec, size_t n) {
  reading_ = false;
  if (state_ == State::kClosed) return;
  if (lingering_) {
    lingered_bytes_ += n;
    if (ec || lingered_bytes_ > kMaxLingerBytes)
      Close();
    else
      Read();  // into chunk_ only: discarded
    return;
  }
  if (ec) {
    const bool fin = ec == asio::error::eof;
    if (fin) peer_closed_sending_ = true;
    if (state_ == State::kResponding && exchange_ && !response_done_) {
      if (fin)
        OnPeerClosedSending();
      else
        Gone();
    } else if (!(state_ == State::kResponding && fin)) {
      Close();  // idle, mid-request, or reset: nothing more to do
    }
    return;
  }
  in_.append(chunk_.get(), n);
  if (state_ == State::kResponding) {
    // Watching while a response is pending; what came is the next request.
    if (!close_after_write_ && in_.size() < kMaxPipelinedBytes) Read();
    return;
  }
  Parse();
}

void Connection::Parse() {
  if (!parser_) {
    if (in_.empty()) {
      Read();
      return;
    }
    state_ = State::kRequest;
    parser_.emplace();
    parser_->header_limit(static_cast<uint32_t>(core_->options.max_header_bytes));
    parser_->body_limit(core_->options.max_body_bytes);
    parser_->eager(true);
    header_checked_ = false;
    ArmReadTimer(core_->options.header_timeout);
  }
  while (!in_.empty() && !parser_->is_done()) {
    beast::error_code ec;
    const size_t used = parser_->put(asio::buffer(in_), ec);
    in_.erase(0, used);
    if (ec == bhttp::error::need_more) break;
    if (ec == bhttp::error::header_limit) {
      Fail(431, fmt::format("the request header is larger than {} bytes",
                            core_->options.max_header_bytes));
      return;
    }
    if (ec == bhttp::error::body_limit) {
      Fail(413,
           fmt::format("the request body is larger than {} bytes", core_->options.max_body_bytes));
      return;
    }
    if (ec) {
      Fail(400, fmt::format("bad HTTP request: {}", ec.message()));
      return;
    }
    if (parser_->is_header_done() && !header_checked_) {
      header_checked_ = true;
      if (!parser_->is_done()) {
        const auto length = parser_->content_length();
        const size_t want = length ? static_cast<size_t>(*length) : core_->options.max_body_bytes;
        if (!core_->ReserveBody(want)) {
          core_->bodies_refused.fetch_add(1);
          Fail(503, "the server holds as many request bodies as it may; try again later");
          return;
        }
        body_reserved_ = want;
        ArmReadTimer(core_->options.body_timeout);
        const auto& msg = parser_->get();
        if (msg.version() >= 11 && IEquals(msg[bhttp::field::expect], "100-continue"))
          Send("HTTP/1.1 100 Continue\r\n\r\n", false);
      }
    }
    if (used == 0) break;
  }
  if (parser_->is_done()) {
    Dispatch();
    return;
  }
  Read();
}

void Connection::Dispatch() {
  ++read_timer_generation_;  // no read deadline while responding
  read_timer_.cancel();
  auto msg = parser_->release();
  parser_.reset();

  Request req;
  req.method = std::string(msg.method_string());
  const std::string_view target = msg.target();
  const size_t q = target.find('?');
  req.path = std::string(target.substr(0, q));
  if (q != std::string_view::npos) req.query = std::string(target.substr(q + 1));
  for (const auto& field : msg)
    req.headers.emplace_back(std::string(field.name_string()), std::string(field.value()));
  req.body = std::move(msg.body());

  keep_alive_ = msg.keep_alive();
  http10_ = msg.version() < 11;
  state_ = State::kResponding;
  streaming_ = response_done_ = probing_ = false;
  exchange_ = std::make_shared<Exchange>(weak_from_this());
  core_->requests.fetch_add(1);
  std::shared_ptr<Exchange> x = exchange_;

  const auto it = core_->routes.find(req.path);
  const Route* route = nullptr;
  std::string allowed;
  if (it != core_->routes.end()) {
    for (const Route& r : it->second) {
      if (r.method == req.method) route = &r;
      allowed += (allowed.empty() ? "" : ", ") + r.method;
    }
  }
  if (route == nullptr && allowed.empty()) {
    x->Respond(core_->Error(404, fmt::format("no endpoint {} {}", req.method, req.path)));
  } else if (route == nullptr) {
    Response r = core_->Error(
        405, fmt::format("method {} is not allowed on {}; use {}", req.method, req.path, allowed));
    r.headers.emplace_back("Allow", allowed);
    x->Respond(std::move(r));
  } else {
    try {
      route->handler(req, x);
    } catch (const std::exception& e) {
      spdlog::error("{}: {} {} failed: {}", core_->options.name, req.method, req.path, e.what());
      x->Respond(core_->Error(500, fmt::format("internal server error: {}", e.what())));
    }
  }
  req = {};  // the body is gone: give its budget back
  ReleaseBodyBudget();
  // Keep reading while the answer is produced: a reset or FIN says the client left.
  if (state_ == State::kResponding && exchange_) Read();
}

void Connection::OnPeerClosedSending() {
  std::optional<http::Probe> probe;
  {
    std::lock_guard lock(exchange_->state_->mu);
    probe = exchange_->state_->probe;
  }
  if (!probe) {
    Gone();
    return;
  }
  core_->probes.fetch_add(1);
  probing_ = true;
  if (!streaming_) DoBeginStream(probe->status, probe->content_type, {});
  SendProbe();
}

void Connection::SendProbe() {
  if (state_ != State::kResponding || response_done_ || !exchange_) return;
  std::string filler;
  {
    std::lock_guard lock(exchange_->state_->mu);
    if (exchange_->state_->probe) filler = exchange_->state_->probe->filler;
  }
  DoWrite(std::move(filler));
  probe_timer_.expires_after(core_->options.probe_interval);
  probe_timer_.async_wait([self = shared_from_this()](error_code ec) {
    if (!ec) self->SendProbe();
  });
}

void Connection::ArmReadTimer(std::chrono::milliseconds d) {
  const uint64_t generation = ++read_timer_generation_;
  read_timer_.expires_after(d);
  read_timer_.async_wait([self = shared_from_this(), generation](error_code ec) {
    if (ec || generation != self->read_timer_generation_) return;
    self->OnReadTimeout();
  });
}

void Connection::OnReadTimeout() {
  if (state_ == State::kClosed || state_ == State::kResponding) return;
  core_->read_timeouts.fetch_add(1);
  if (state_ == State::kIdle) {
    Close();  // an idle keep-alive connection: nothing to answer
    return;
  }
  Fail(408, "the request was not received in time");
}

// ---- writing ----

std::string Connection::Head(int status, std::string_view content_type, const Headers& headers,
                             std::optional<size_t> content_length) {
  if (!content_length && http10_) keep_alive_ = false;  // the body ends with the connection
  if (peer_closed_sending_ || Stopping()) keep_alive_ = false;
  std::string out = fmt::format(
      "HTTP/1.1 {} {}\r\nContent-Type: {}\r\n", status,
      std::string_view(bhttp::obsolete_reason(static_cast<bhttp::status>(status))), content_type);
  for (const auto& [k, v] : headers) out += fmt::format("{}: {}\r\n", k, v);
  if (content_length)
    out += fmt::format("Content-Length: {}\r\n", *content_length);
  else if (!http10_)
    out += "Transfer-Encoding: chunked\r\n";
  out += keep_alive_ ? "Connection: keep-alive\r\n\r\n" : "Connection: close\r\n\r\n";
  return out;
}

void Connection::DoRespond(Response response) {
  if (state_ != State::kResponding || response_done_ || !exchange_) return;
  if (streaming_) {
    // A probe committed the response: the body is the rest of the stream.
    if (response.status != 200 && probing_)
      spdlog::debug("{}: status {} after a probe committed the response", core_->options.name,
                    response.status);
    DoWrite(std::move(response.body));
    DoEnd();
    return;
  }
  std::string out =
      Head(response.status, response.content_type, response.headers, response.body.size());
  out += response.body;
  Send(std::move(out), /*last=*/true);
}

void Connection::DoBeginStream(int status, std::string content_type, Headers headers) {
  if (state_ != State::kResponding || response_done_ || streaming_ || !exchange_) return;
  streaming_ = true;
  Send(Head(status, content_type, headers, std::nullopt), false);
}

void Connection::DoWrite(std::string data) {
  if (state_ != State::kResponding || response_done_ || !streaming_ || data.empty()) return;
  Send(http10_ ? std::move(data) : Chunk(data), false);
}

void Connection::DoEnd() {
  if (state_ != State::kResponding || response_done_ || !exchange_) return;
  if (!streaming_) {
    // End without BeginStream: a producer bug; answer something rather than nothing.
    DoRespond(core_->Error(500, "internal server error: the response ended before it began"));
    return;
  }
  Send(http10_ ? std::string() : std::string("0\r\n\r\n"), true);
}

void Connection::DoAfter(std::chrono::milliseconds delay, std::function<void()> fn) {
  if (state_ != State::kResponding || response_done_ || !exchange_) return;
  auto timer = std::make_unique<asio::steady_timer>(executor_, delay);
  timer->async_wait([self = shared_from_this(), fn = std::move(fn),
                     x = std::weak_ptr<Exchange>(exchange_)](error_code ec) {
    if (ec) return;
    const std::shared_ptr<Exchange> current = x.lock();
    if (!current || current != self->exchange_ || self->response_done_) return;
    fn();
  });
  after_timers_.push_back(std::move(timer));
}

void Connection::ReleaseBodyBudget() {
  core_->ReleaseBody(body_reserved_);
  body_reserved_ = 0;
}

void Connection::Fail(int status, std::string message) {
  ReleaseBodyBudget();
  ++read_timer_generation_;
  read_timer_.cancel();
  parser_.reset();
  state_ = State::kResponding;
  keep_alive_ = false;
  close_after_write_ = true;
  const Response r = core_->Error(status, std::move(message));
  std::string out = Head(r.status, r.content_type, r.headers, r.body.size()) + r.body;
  Send(std::move(out), /*last=*/true);
}

void Connection::Send(std::string bytes, bool last) {
  if (state_ == State::kClosed) return;
  if (last) {
    response_done_ = true;
    if (!close_after_write_) probe_timer_.cancel();
  }
  outbox_bytes_ += bytes.size();
  if (!bytes.empty()) outbox_.push_back(std::move(bytes));
  if (outbox_bytes_ > kMaxOutboxBytes) {
    Gone();  // the client does not read what it asked for
    return;
  }
  if (!writing_) WriteNext();
}

void Connection::WriteNext() {
  if (outbox_.empty()) {
    writing_ = false;
    if (!response_done_) return;
    if (!close_after_write_)
      OnResponseWritten();
    else if (Stopping())
      Close();
    else
      Linger();
    return;
  }
  writing_ = true;
  write_timer_.expires_after(core_->options.write_timeout);
  write_timer_.async_wait([self = shared_from_this()](error_code ec) {
    if (ec || !self->writing_ || self->state_ == State::kClosed) return;
    self->core_->write_timeouts.fetch_add(1);
    self->Gone();
  });
  asio::async_write(socket_, asio::buffer(outbox_.front()),
                    [self = shared_from_this()](error_code ec, size_t) {
                      self->write_timer_.cancel();
                      if (self->state_ == State::kClosed) return;
                      if (ec) {
                        self->Gone();
                        return;
                      }
                      self->outbox_bytes_ -= self->outbox_.front().size();
                      self->outbox_.pop_front();
                      self->WriteNext();
                    });
}

void Connection::OnResponseWritten() {
  DetachExchange();
  if (!keep_alive_ || peer_closed_sending_ || Stopping()) {
    Close();
    return;
  }
  state_ = State::kIdle;
  streaming_ = response_done_ = probing_ = false;
  probe_timer_.cancel();
  ArmReadTimer(core_->options.idle_timeout);
  if (!in_.empty())
    Parse();  // a pipelined request
  else
    Read();  // no-op while the watch read is still pending
}

// ---- ending ----

std::function<void()> Connection::DetachExchange() {
  std::function<void()> on_gone;
  if (exchange_) {
    std::lock_guard lock(exchange_->state_->mu);
    exchange_->state_->connection.reset();
    exchange_->state_->finished = true;
    if (!response_done_) on_gone = std::move(exchange_->state_->on_gone);
    exchange_->state_->on_gone = nullptr;
  }
  exchange_.reset();
  after_timers_.clear();  // cancels them
  return on_gone;
}

void Connection::Linger() {
  // Closing with request bytes unread makes the kernel answer with a reset, which can
  // destroy the error response before the client reads it: stop sending, then read and
  // discard what still comes, until the client closes or for a bounded time and size.
  lingering_ = true;
  error_code ignored;
  socket_.shutdown(tcp::socket::shutdown_send, ignored);
  in_.clear();
  probe_timer_.expires_after(kLingerTime);
  probe_timer_.async_wait([self = shared_from_this()](error_code ec) {
    if (!ec) self->Close();
  });
  Read();
}

void Connection::Gone() {
  if (state_ == State::kClosed) return;
  if (exchange_ && !response_done_) core_->gone.fetch_add(1);
  Close();
}

void Connection::Close() {
  if (state_ == State::kClosed) return;
  state_ = State::kClosed;
  std::function<void()> on_gone = DetachExchange();
  error_code ignored;
  socket_.shutdown(tcp::socket::shutdown_both, ignored);
  socket_.close(ignored);
  read_timer_.cancel();
  write_timer_.cancel();
  probe_timer_.cancel();
  outbox_.clear();
  outbox_bytes_ = 0;
  parser_.reset();
  ReleaseBodyBudget();
  if (on_gone) {
    try {
      on_gone();
    } catch (const std::exception& e) {
      spdlog::error("{}: OnGone failed: {}", core_->options.name, e.what());
    }
  }
}

}  // namespace strata::http
