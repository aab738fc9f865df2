// Connection: one accepted socket of http::Server (http_server.h), and what the server's
// connections share (Core). Internal to src/http.
//
// A connection runs on its own strand and has at most one read and one write in flight.
// Each read lands in a chunk of its own and is appended to the bytes not yet parsed,
// which feed Beast's request parser (so parsing never touches memory a pending read
// writes into). The same read
// serves as "wait for the next request" (idle keep-alive), "the rest of this request"
// and, while a response is pending, "watch for the client going away" (and buffers a
// pipelined next request, up to a bound). States:
//
//   kIdle --byte--> kRequest --parsed--> kResponding --response written--> kIdle
//                                                     (or closed: no keep-alive, FIN,
//                                                      error, Stop)
#pragma once

#include <atomic>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>

#include "http/http_server.h"

namespace strata::http {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

// Shared by the server and its connections; outlives every connection.
struct Core {
  ServerOptions options;
  std::unordered_map<std::string, std::vector<Route>> routes;  // path -> its routes

  std::atomic<uint64_t> accepted{0}, rejected{0}, open{0}, requests{0}, read_timeouts{0},
      write_timeouts{0}, gone{0}, probes{0}, bodies_refused{0};
  std::atomic<size_t> body_bytes{0};  // reserved by requests being read or handled

  // Reserves `n` bytes of the body budget; false when it would pass the limit.
  bool ReserveBody(size_t n);
  void ReleaseBody(size_t n) { body_bytes.fetch_sub(n); }

  // Live connections, for Stop.
  std::mutex mu;
  std::unordered_map<Connection*, std::weak_ptr<Connection>> live;
  bool stopping = false;  // guarded by mu

  Response Error(int status, std::string message) const;
};

// The shared part of an Exchange: what producers on other threads touch.
struct Exchange::State {
  std::mutex mu;
  std::weak_ptr<Connection> connection;  // reset when the connection is done with it
  std::function<void()> on_gone;         // I/O thread only
  std::optional<http::Probe> probe;      // I/O thread only
  bool finished = false;                 // Respond or End called (guarded by mu)
};

class Connection : public std::enable_shared_from_this<Connection> {
 public:
  // `reject`: over the connection cap; answer 503 and close.
  Connection(Core* core, tcp::socket socket, bool reject);
  ~Connection();

  void Start();
  // Stop: closes once the response being written is out, or after `grace`.
  void Shutdown(std::chrono::milliseconds grace);

  // The connection's strand (its socket was accepted onto one).
  const asio::any_io_executor& executor() const { return executor_; }

  // Runs `fn` on the exchange's connection (on its strand) unless the exchange is
  // finished or detached; `finish` marks it finished.
  static void Post(Exchange& exchange, bool finish, std::function<void(Connection&)> fn);

  // From Exchange, on the strand.
  void DoRespond(Response response);
  void DoBeginStream(int status, std::string content_type, Headers headers);
  void DoWrite(std::string data);
  void DoEnd();
  void DoAfter(std::chrono::milliseconds delay, std::function<void()> fn);

 private:
  enum class State { kIdle, kRequest, kResponding, kClosed };

  void Read();
  void OnRead(boost::system::error_code ec, size_t n);
  void Parse();
  void Dispatch();
  void OnPeerClosedSending();
  void SendProbe();  // one filler write, then again after probe_interval

  // A response the server makes itself; the connection closes after it.
  void Fail(int status, std::string message);
  // Queues `bytes`; `last`: the response is complete after it.
  void Send(std::string bytes, bool last);
  void WriteNext();
  void OnResponseWritten();
  void Gone();    // the client cannot get the response: OnGone, close
  void Linger();  // after an error response: half-close, discard input, then Close
  void Close();
  // Lets go of the exchange (later calls on it do nothing); returns its OnGone callback
  // when the response was not complete.
  std::function<void()> DetachExchange();
  std::string Head(int status, std::string_view content_type, const Headers& headers,
                   std::optional<size_t> content_length);
  bool Stopping() const;

  void ReleaseBodyBudget();
  void ArmReadTimer(std::chrono::milliseconds d);
  void OnReadTimeout();

  Core* const core_;
  const asio::any_io_executor executor_;
  tcp::socket socket_;
  asio::steady_timer read_timer_;
  asio::steady_timer write_timer_;
  asio::steady_timer probe_timer_;
  const bool reject_;

  State state_ = State::kIdle;
  std::unique_ptr<char[]> chunk_;  // the pending read's target
  std::string in_;                 // received, not yet parsed
  std::optional<boost::beast::http::request_parser<boost::beast::http::string_body>> parser_;
  bool header_checked_ = false;
  size_t body_reserved_ = 0;  // of Core::body_bytes, for the request being read
  bool reading_ = false;
  bool peer_closed_sending_ = false;
  uint64_t read_timer_generation_ = 0;

  // The response being produced.
  std::shared_ptr<Exchange> exchange_;
  bool keep_alive_ = true;
  bool http10_ = false;
  bool streaming_ = false;      // BeginStream (or a probe) sent the head
  bool response_done_ = false;  // the last bytes are queued
  bool probing_ = false;
  std::vector<std::unique_ptr<asio::steady_timer>> after_timers_;

  std::deque<std::string> outbox_;
  size_t outbox_bytes_ = 0;
  bool writing_ = false;
  bool close_after_write_ = false;
  bool lingering_ = false;
  size_t lingered_bytes_ = 0;
  bool counted_open_ = false;
};

}  // namespace strata::http
