// http::Server: an event-driven HTTP/1.1 server (Boost.Asio sockets, Boost.Beast's request
// parser) for `strata serve`'s OpenAI API and the /metrics endpoints.
//
// No thread belongs to a connection: a few I/O threads run every socket, so idle
// keep-alive connections, slow clients and long generations cost memory, not threads.
// What a connection may cost is bounded:
//   - the number of open connections (more get a 503 and are closed),
//   - time: waiting for a request's first byte (idle keep-alive), for the rest of its
//     header, for its body, and for each write to make progress (a timed-out read or
//     write closes the connection),
//   - size: header bytes (431) and body bytes (413, told before the body is read when
//     Content-Length says so; Expect: 100-continue is answered only for bodies that fit).
//
// A handler runs on an I/O thread and must return quickly; it answers through the
// Exchange it is given, then or later and from any thread (e.g. an engine's callback):
// Respond() with a whole response, or BeginStream() / Write() / End() for a chunked one
// (Server-Sent Events). While a response is pending, the server keeps reading the
// socket, so it learns when the client goes away:
//   - a reset, a failed write or a write that stops making progress: the client is
//     gone, and the Exchange's OnGone callback runs (cancel the work there);
//   - an orderly close of the client's sending side (FIN) is either a client that hung
//     up or one that half-closed and still waits for its answer. Those two cannot be
//     told apart without writing, so with a Probe set the server commits the response
//     (its status and content type, as a chunked response) and writes the probe's
//     filler every probe_interval: a client that still reads gets its answer after the
//     filler (e.g. JSON whitespace), one that hung up makes the second write fail and
//     OnGone runs. Without a Probe, the FIN counts as gone.
//
//   http::ServerOptions options;  options.port = 0;
//   std::vector<http::Route> routes = {{"GET", "/health", [](http::Request&, auto x) {
//     x->Respond({.body = R"({"status":"ok"})"});
//   }}};
//   auto server = http::Server::Start(options, std::move(routes));
//   ... (*server)->port() ...
//   (*server)->Stop();
//
// Thread-safety: Exchange methods may be called from any thread, also after the
// connection closed or the server stopped (they then do nothing). Handlers, OnGone and
// After callbacks run on an I/O thread, one at a time per connection.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "strata/status.h"

namespace strata::http {

using Headers = std::vector<std::pair<std::string, std::string>>;

struct Request {
  std::string method;  // "GET", "POST", ...
  std::string path;    // the target up to '?'
  std::string query;   // after '?', "" if none
  Headers headers;     // as received
  std::string body;
  // The value of header `name` (case-insensitive); "" if absent.
  std::string_view Header(std::string_view name) const;
};

struct Response {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  Headers headers;  // extra headers (not Content-Type, Content-Length, Connection)
};

// What the server writes to learn whether a client that closed its sending side still
// reads (see the file comment).
struct Probe {
  int status = 200;          // committed when the response has not begun
  std::string content_type;  // likewise
  std::string filler;        // bytes that do not change the body's meaning, e.g. " "
};

class Connection;

// One request's answer. Shared by the server and whoever produces the response.
class Exchange {
 public:
  // The whole response. After BeginStream (or a committed Probe), only the body is
  // written, as the rest of the stream. Later calls do nothing.
  void Respond(Response response);
  // A chunked response (Connection: close and a raw body for HTTP/1.0 clients).
  void BeginStream(int status, std::string content_type, Headers headers = {});
  // Appends to a begun stream; empty data is ignored.
  void Write(std::string data);
  // Ends a begun stream.
  void End();

  // `fn` runs once, on the connection's I/O thread, when the client can no longer get
  // the response (or the server stops first). Set it in the handler.
  void OnGone(std::function<void()> fn);
  // Enables probing after the client's FIN. Set it in the handler.
  void SetProbe(Probe probe);
  // `fn` runs on the connection's I/O thread after `delay` unless the response is
  // complete or the client gone by then. Call it in the handler or an I/O callback.
  void After(std::chrono::milliseconds delay, std::function<void()> fn);

  // Internal: the Connection's view.
  explicit Exchange(std::weak_ptr<Connection> connection);
  ~Exchange();
  Exchange(const Exchange&) = delete;
  Exchange& operator=(const Exchange&) = delete;

 private:
  friend class Connection;
  struct State;
  std::unique_ptr<State> state_;
};

using Handler = std::function<void(Request& request, std::shared_ptr<Exchange> exchange)>;

struct Route {
  std::string method;  // "GET" / "POST"
  std::string path;    // exact path
  Handler handler;
};

struct ServerOptions {
  // For log lines, e.g. "strata serve".
  std::string name = "http";
  // Address to bind. Default 127.0.0.1.
  std::string host = "127.0.0.1";
  // TCP port; 0 picks a free one (Server::port()).
  uint16_t port = 0;
  // Threads running the sockets and the handlers. Default 2.
  uint32_t io_threads = 2;
  // Open connections beyond this get a 503 and are closed. Default 256.
  uint32_t max_connections = 256;
  // Request line + headers. Larger: 431. Default 16 KiB.
  size_t max_header_bytes = size_t{16} << 10;
  // Request body. Larger: 413. Default 8 MiB.
  size_t max_body_bytes = size_t{8} << 20;
  // Request bodies held in memory at once, over all connections: a request whose body
  // would pass it gets 503 (sized by Content-Length, or max_body_bytes when chunked),
  // so many clients uploading large bodies together cannot exhaust memory. Default
  // 256 MiB.
  size_t max_buffered_body_bytes = size_t{256} << 20;
  // An idle keep-alive connection (no byte of a next request) is closed after this.
  std::chrono::milliseconds idle_timeout = std::chrono::seconds(30);
  // From a request's first byte to the end of its header (slowloris): 408, closed.
  std::chrono::milliseconds header_timeout = std::chrono::seconds(10);
  // From the end of the header to the end of the body: 408, closed.
  std::chrono::milliseconds body_timeout = std::chrono::seconds(60);
  // A write that makes no progress for this long closes the connection (the client is
  // not reading); OnGone runs.
  std::chrono::milliseconds write_timeout = std::chrono::seconds(30);
  // Probe filler interval after a client's FIN (see Probe).
  std::chrono::milliseconds probe_interval = std::chrono::milliseconds(100);
  // The body of errors the server itself answers (400, 404, 405, 408, 413, 431, 500,
  // 503). Default: the message as text/plain.
  std::function<Response(int status, std::string message)> render_error;
};

// Counters since Start, for tests and metrics.
struct ServerStats {
  uint64_t connections_accepted = 0;
  uint64_t connections_rejected = 0;  // over max_connections: 503
  uint64_t connections_open = 0;      // now
  uint64_t requests = 0;              // dispatched to a handler
  uint64_t read_timeouts = 0;         // idle, header or body timeouts
  uint64_t write_timeouts = 0;
  uint64_t clients_gone = 0;  // OnGone ran because the client went away
  uint64_t probes_started = 0;
  uint64_t bodies_refused = 0;  // over max_buffered_body_bytes: 503
};

class Server {
 public:
  // Binds, starts the I/O threads and returns once connections are accepted.
  // InvalidArgument for bad options or routes, Unavailable when the address cannot be
  // bound. Ignores SIGPIPE process-wide.
  static Result<std::unique_ptr<Server>> Start(ServerOptions options, std::vector<Route> routes);
  ~Server();  // Stops.
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  uint16_t port() const;
  ServerStats stats() const;

  // Stops accepting; pending exchanges see OnGone; responses being written get up to
  // `grace` to finish; then every connection is closed and the threads joined.
  // Idempotent.
  void Stop(std::chrono::milliseconds grace = std::chrono::milliseconds(1000));

  class Impl;

 private:
  explicit Server(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace strata::http
