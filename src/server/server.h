// Server: the OpenAI-compatible HTTP front of `strata serve` over any engine::Generator.
//
// Endpoints: POST /v1/completions, POST /v1/chat/completions (both optionally streamed as
// Server-Sent Events), GET /v1/models, GET /health, plus the extra GET routes of
// ServerOptions (the metrics endpoint). Every error is a JSON body in OpenAI's shape; a
// bad request never stops the server.
//
// Event-driven (src/http): connections hold no thread, so idle keep-alive clients and
// slow senders cannot starve others; each connection is bounded in time (idle, header,
// body, write timeouts) and their number is capped (503 beyond). A client that goes away
// cancels its generation (Generator::Cancel), streaming or not: a reset or a failed
// write shows it at once; after a FIN the server probes (JSON whitespace before the
// body, or an SSE comment line) so that a client that only half-closed its socket
// still gets its answer, as a chunked 200 whose body is the usual JSON (or the error
// object, should the generation then fail).
//
// Typical use (`strata serve`): block SIGINT/SIGTERM in the main thread before Start
// (threads inherit the mask), Start, sigwait() for the signal, then Stop():
//
//   ServerOptions options;  options.port = 8000;
//   auto server = Server::Start(options, &generator);
//   if (!server.ok()) { ... server.status() ... }
//   int sig; sigwait(&set, &sig);
//   (*server)->Stop();
//
// Thread-safety: Stop and Wait may be called from any thread. Observer callbacks and
// extra-route bodies run concurrently on the I/O threads and the generator's threads.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "engine/generator.h"
#include "strata/status.h"

namespace strata::server {

// What one completion request cost and how it went, for metrics. Reported once per
// request to /v1/completions or /v1/chat/completions, including rejected ones.
struct RequestStats {
  std::string_view endpoint;  // "/v1/completions" or "/v1/chat/completions"
  int status = 0;             // HTTP status sent (200 for streams that started)
  bool stream = false;
  engine::FinishReason finish_reason = engine::FinishReason::kNone;  // kNone if never ran
  uint32_t prompt_tokens = 0;
  uint32_t cached_tokens = 0;  // prompt tokens whose KV came from Strata
  uint32_t completion_tokens = 0;
  // Request receipt to the first token event; negative when no token was generated.
  double ttft_seconds = -1.0;
  // Between consecutive token events (completion_tokens - 1 values when all arrived).
  std::vector<double> inter_token_seconds;
  // Request receipt to the end of the response (stream: the last byte written or the
  // disconnect).
  double duration_seconds = 0.0;
};

// Receives RequestStats. Called on the I/O threads and the generator's event threads,
// concurrently (one at a time: calls are serialized); must be quick. Never after Stop.
class ServerObserver {
 public:
  virtual ~ServerObserver() = default;
  virtual void OnRequestDone(const RequestStats& stats) = 0;
};

// An extra GET endpoint, e.g. Prometheus metrics: `body` is called per request.
struct ExtraRoute {
  std::string path;  // exact path, e.g. "/metrics"
  std::function<std::string()> body;
  std::string content_type = "text/plain; charset=utf-8";
};

struct ServerOptions {
  // Address to bind. Default 127.0.0.1: not reachable from other machines unless asked.
  std::string host = "127.0.0.1";
  // TCP port. Default 8000; 0 picks a free port (Server::port() tells which).
  uint16_t port = 8000;
  // Model name in /v1/models and responses, and the one "model" requests may name.
  // Default "": the generator's model_name().
  std::string served_model_name;
  // Larger request bodies get 413. Default 8 MiB.
  size_t max_request_body_bytes = size_t{8} << 20;
  // A generation still running after this long is cancelled (504, or an error event in
  // a stream). Default 10 minutes; zero = no limit.
  std::chrono::milliseconds request_timeout = std::chrono::minutes(10);
  // I/O threads running every connection and the request handlers (parsing, submit).
  // Connections do not hold one. Default 4.
  uint32_t threads = 4;
  // Open connections beyond this get 503 and are closed. Default 256.
  uint32_t max_connections = 256;
  // An idle keep-alive connection is closed after this. Default 30 s.
  std::chrono::milliseconds idle_timeout = std::chrono::seconds(30);
  // A request's header must arrive within this of its first byte (else 408). Default 10 s.
  std::chrono::milliseconds header_timeout = std::chrono::seconds(10);
  // Its body within this of the end of the header (else 408). Default 60 s.
  std::chrono::milliseconds body_timeout = std::chrono::seconds(60);
  // A write to a client that makes no progress for this long ends the connection (and
  // cancels its generation). Default 30 s.
  std::chrono::milliseconds write_timeout = std::chrono::seconds(30);
  // Receives per-request stats. Default none. Not owned; must outlive the Server.
  ServerObserver* observer = nullptr;
  // Extra GET endpoints, registered at Start. Default none.
  std::vector<ExtraRoute> extra_routes;
};

class Server {
 public:
  // Binds, starts serving on background threads, and returns once connections are
  // accepted. `generator` is not owned and must outlive the Server. InvalidArgument for
  // bad options, Unavailable when the address cannot be bound. Ignores SIGPIPE
  // process-wide (a vanished client must be an error, not a signal).
  static Result<std::unique_ptr<Server>> Start(const ServerOptions& options,
                                               engine::Generator* generator);

  // Stops (see Stop).
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // The bound TCP port (the chosen one when ServerOptions::port was 0).
  uint16_t port() const;
  // The model name served.
  const std::string& model_name() const;

  // Stops accepting, cancels generations in flight (their requests end with 503, their
  // streams with an error event), gives those answers a moment to be written, closes
  // every connection and joins the I/O threads. Idempotent.
  void Stop();
  // Blocks until Stop has finished (called from another thread).
  void Wait();

 private:
  class Impl;
  explicit Server(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace strata::server
