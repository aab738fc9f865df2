// Server: the OpenAI API over http::Server (server.h, src/http/http_server.h).
//
// Each completion request becomes one Call, shared by the HTTP side (the handler, the
// exchange's OnGone and deadline callbacks, on the I/O threads) and the generator's
// event callback (on the engine's thread). The callback formats what each event adds
// and hands it to the exchange: a stream chunk per token, or the whole body at the end.
// No thread waits for a generation; a client that leaves (reset, failed write, or a
// close found by the probe) cancels its generation, streaming or not.
#include "server/server.h"

#include <atomic>
#include <condition_variable>
#include <ctime>
#include <mutex>
#include <optional>
#include <random>
#include <thread>
#include <unordered_set>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "http/http_server.h"
#include "server/openai_api.h"

namespace strata::server {

namespace {

using Clock = std::chrono::steady_clock;
using engine::FinishReason;
using engine::TokenEvent;

constexpr const char* kJson = "application/json";

double Seconds(Clock::duration d) {
  return std::chrono::duration<double>(d).count();
}

http::Response ErrorResponse(const ApiError& error) {
  return http::Response{error.http_status, kJson, ErrorBody(error), {}};
}

// The errors the HTTP layer answers itself (no route, wrong method, too large, too slow,
// too many connections, bad HTTP), in OpenAI's shape.
http::Response RenderHttpError(int status, std::string message) {
  ApiError error{status, std::move(message), "invalid_request_error", "", ""};
  switch (status) {
    case 404:
      error.code = "not_found";
      break;
    case 405:
      error.code = "method_not_allowed";
      break;
    case 408:
      error.code = "timeout";
      break;
    case 413:
      error.code = "request_too_large";
      break;
    case 431:
      error.code = "request_header_too_large";
      break;
    default:
      break;
  }
  if (status >= 500) {
    error.type = "server_error";
    if (status == 503) error.code = "unavailable";
  }
  return ErrorResponse(error);
}

// What outlives the Server: requests in flight and the observer, guarded so that a
// final event arriving after Stop neither touches a freed Server nor reports.
struct Shared {
  std::mutex mu;
  std::condition_variable cv;
  std::unordered_set<std::string> inflight;  // submitted, final event not yet seen
  ServerObserver* observer = nullptr;        // null once stopped

  void Report(const RequestStats& stats) {
    std::lock_guard lock(mu);
    if (observer != nullptr) observer->OnRequestDone(stats);
  }
};

// One submitted completion request.
struct Call {
  // Fixed at submission.
  ResponseContext ctx;
  bool stream = false;
  bool include_usage = false;
  Clock::time_point received;
  std::chrono::milliseconds request_timeout{0};
  std::shared_ptr<http::Exchange> exchange;
  std::shared_ptr<Shared> shared;

  std::mutex mu;           // guards what follows
  bool begun = false;      // the stream's head was handed to the exchange
  bool timed_out = false;  // the deadline passed and Cancel was sent
  bool stopping = false;   // Stop cancelled it
  bool first_chunk_sent = false;
  std::string text;  // non-streaming: all text so far
  Usage usage;
  std::optional<Clock::time_point> last_token_at;
  double ttft_seconds = -1.0;
  std::vector<double> inter_token_seconds;

  void BeginLocked() {
    if (begun) return;
    begun = true;
    exchange->BeginStream(200, "text/event-stream", {{"Cache-Control", "no-cache"}});
  }

  ApiError FailureLocked(FinishReason reason, const Status& error) const {
    if (timed_out && reason == FinishReason::kCancelled)
      return ApiError{
          504, fmt::format("the generation did not finish within {} ms", request_timeout.count()),
          "server_error", "", "timeout"};
    if (reason == FinishReason::kCancelled)
      return ApiError{503,
                      stopping ? "the server is shutting down" : "the generation was cancelled",
                      "server_error", "", stopping ? "unavailable" : "cancelled"};
    ApiError e = ErrorFromStatus(error.ok() ? Status::Internal("generation failed") : error);
    if (e.http_status < 500) e = ApiError{500, error.ToString(), "server_error", "", ""};
    return e;
  }

  void OnEvent(const TokenEvent& event) {
    const auto now = Clock::now();
    RequestStats stats;
    {
      std::lock_guard lock(mu);
      if (event.has_token) {
        if (!last_token_at)
          ttft_seconds = Seconds(now - received);
        else
          inter_token_seconds.push_back(Seconds(now - *last_token_at));
        last_token_at = now;
      }
      usage = Usage{event.prompt_tokens, event.cached_tokens, event.completion_tokens};
      const bool failed = event.finished && (event.finish_reason == FinishReason::kError ||
                                             event.finish_reason == FinishReason::kCancelled);
      if (stream) {
        std::string out;
        if (!event.text.empty()) {
          out += StreamTextEvent(ctx, event.text, !first_chunk_sent);
          first_chunk_sent = true;
        }
        if (event.finished) {
          if (failed) {
            out += StreamErrorEvent(FailureLocked(event.finish_reason, event.error));
          } else {
            if (ctx.endpoint == Endpoint::kChatCompletions && !first_chunk_sent)
              out += StreamTextEvent(ctx, "", /*first=*/true);  // the role, at least
            out += StreamFinishEvent(ctx, event.finish_reason);
          }
          if (include_usage) out += StreamUsageEvent(ctx, usage);
          out += kStreamDoneEvent;
          ReportLocked(now, event, 200, &stats);  // before the client can see the end
        }
        BeginLocked();
        exchange->Write(std::move(out));
        if (event.finished) exchange->End();
      } else {
        text += event.text;
        if (event.finished) {
          if (failed) {
            const ApiError error = FailureLocked(event.finish_reason, event.error);
            if (event.finish_reason == FinishReason::kError)
              spdlog::warn("strata serve: {} failed: {}", ctx.id, event.error.ToString());
            ReportLocked(now, event, error.http_status, &stats);  // before the client sees it
            exchange->Respond(ErrorResponse(error));
          } else {
            ReportLocked(now, event, 200, &stats);
            exchange->Respond(
                {200, kJson, CompletionBody(ctx, text, event.finish_reason, usage), {}});
          }
        }
      }
      if (!event.finished) return;
    }
    {
      std::lock_guard lock(shared->mu);
      shared->inflight.erase(ctx.id);
    }
    shared->cv.notify_all();
  }

  // The request's final numbers go to the observer before its last bytes go to the client,
  // so a client that read the whole answer and then scrapes /metrics sees the request. Takes
  // shared->mu inside mu (nothing takes them the other way round).
  void ReportLocked(Clock::time_point now, const TokenEvent& event, int status,
                    RequestStats* stats) {
    stats->status = status;
    stats->endpoint = EndpointPath(ctx.endpoint);
    stats->stream = stream;
    stats->finish_reason = event.finish_reason;
    stats->prompt_tokens = usage.prompt_tokens;
    stats->cached_tokens = usage.cached_tokens;
    stats->completion_tokens = usage.completion_tokens;
    stats->duration_seconds = Seconds(now - received);
    stats->ttft_seconds = ttft_seconds;
    stats->inter_token_seconds = inter_token_seconds;
    shared->Report(*stats);
  }
};

}  // namespace

class Server::Impl {
 public:
  Impl(const ServerOptions& options, engine::Generator* generator)
      : options_(options),
        generator_(generator),
        model_(options.served_model_name.empty() ? generator->model_name()
                                                 : options.served_model_name),
        created_(static_cast<int64_t>(std::time(nullptr))),
        shared_(std::make_shared<Shared>()) {
    shared_->observer = options.observer;
    std::random_device rd;
    id_prefix_ = fmt::format("{:08x}", rd());
  }

  ~Impl() { Stop(); }

  Status Start();
  void Stop();
  void Wait() {
    std::unique_lock lock(state_mu_);
    state_cv_.wait(lock, [&] { return stopped_; });
  }

  uint16_t port() const { return http_->port(); }
  const std::string& model_name() const { return model_; }

 private:
  void HandleGeneration(Endpoint endpoint, http::Request& req, std::shared_ptr<http::Exchange> x);
  void Reject(std::string_view path, const std::shared_ptr<http::Exchange>& x,
              const ApiError& error);

  const ServerOptions options_;
  engine::Generator* const generator_;
  const std::string model_;
  const int64_t created_;
  std::string id_prefix_;
  std::atomic<uint64_t> next_id_{0};
  std::shared_ptr<Shared> shared_;

  std::unique_ptr<http::Server> http_;
  std::atomic<bool> stopping_{false};
  // Calls in flight, so that Stop can tell them why they end.
  std::mutex calls_mu_;
  std::unordered_map<std::string, std::weak_ptr<Call>> calls_;

  std::mutex stop_mu_;  // serializes Stop
  std::mutex state_mu_;
  std::condition_variable state_cv_;
  bool stopped_ = false;  // guarded by state_mu_
};

Status Server::Impl::Start() {
  if (options_.threads == 0) return Status::InvalidArgument("ServerOptions.threads must be >= 1");
  if (options_.max_request_body_bytes == 0)
    return Status::InvalidArgument("ServerOptions.max_request_body_bytes must be > 0");
  if (options_.request_timeout.count() < 0)
    return Status::InvalidArgument("ServerOptions.request_timeout must be >= 0");

  const auto json_route = [](std::string method, std::string path,
                             std::function<std::string()> body) {
    return http::Route{std::move(method), std::move(path),
                       [body = std::move(body)](http::Request&, std::shared_ptr<http::Exchange> x) {
                         x->Respond({200, kJson, body(), {}});
                       }};
  };
  std::vector<http::Route> routes;
  routes.push_back(
      {"POST", "/v1/completions", [this](http::Request& r, std::shared_ptr<http::Exchange> x) {
         HandleGeneration(Endpoint::kCompletions, r, std::move(x));
       }});
  routes.push_back(
      {"POST", "/v1/chat/completions", [this](http::Request& r, std::shared_ptr<http::Exchange> x) {
         HandleGeneration(Endpoint::kChatCompletions, r, std::move(x));
       }});
  routes.push_back(
      json_route("GET", "/v1/models", [this] { return ModelsBody(model_, created_); }));
  routes.push_back(json_route("GET", "/health", [] { return std::string(R"({"status":"ok"})"); }));
  for (const ExtraRoute& route : options_.extra_routes) {
    if (route.path.empty() || route.path[0] != '/' || !route.body)
      return Status::InvalidArgument(fmt::format(
          "extra route '{}' needs a path starting with '/' and a body function", route.path));
    for (const http::Route& r : routes)
      if (r.path == route.path)
        return Status::InvalidArgument(
            fmt::format("extra route '{}' is already served", route.path));
    routes.push_back({"GET", route.path,
                      [body = route.body, type = route.content_type](
                          http::Request&, std::shared_ptr<http::Exchange> x) {
                        x->Respond({200, type, body(), {}});
                      }});
  }

  http::ServerOptions ho;
  ho.name = "strata serve";
  ho.host = options_.host;
  ho.port = options_.port;
  ho.io_threads = options_.threads;
  ho.max_connections = options_.max_connections;
  ho.max_body_bytes = options_.max_request_body_bytes;
  ho.idle_timeout = options_.idle_timeout;
  ho.header_timeout = options_.header_timeout;
  ho.body_timeout = options_.body_timeout;
  ho.write_timeout = options_.write_timeout;
  ho.render_error = RenderHttpError;
  auto http = http::Server::Start(std::move(ho), std::move(routes));
  if (!http.ok()) return http.status();
  http_ = std::move(http).value();
  spdlog::info(
      "strata serve: listening on http://{}:{} (model '{}', {} I/O threads, up to {} "
      "connections)",
      options_.host, http_->port(), model_, options_.threads, options_.max_connections);
  return Status::Ok();
}

void Server::Impl::Stop() {
  std::lock_guard stop_lock(stop_mu_);
  {
    std::lock_guard lock(state_mu_);
    if (stopped_) return;
  }
  stopping_.store(true);
  std::vector<std::shared_ptr<Call>> calls;
  {
    std::lock_guard lock(calls_mu_);
    for (auto& [id, weak] : calls_)
      if (auto c = weak.lock()) calls.push_back(std::move(c));
  }
  for (const auto& c : calls) {
    {
      std::lock_guard lock(c->mu);
      c->stopping = true;
    }
    generator_->Cancel(c->ctx.id);
  }
  calls.clear();
  // The cancelled generations end soon; their final events answer their clients (503,
  // or a stream's error event), which the HTTP server then gets a moment to write.
  {
    std::unique_lock lock(shared_->mu);
    shared_->cv.wait_for(lock, std::chrono::seconds(5), [&] { return shared_->inflight.empty(); });
  }
  if (http_) http_->Stop();
  {
    std::lock_guard lock(shared_->mu);
    shared_->observer = nullptr;  // a late final event reports nothing
  }
  {
    std::lock_guard lock(state_mu_);
    stopped_ = true;
  }
  state_cv_.notify_all();
}

void Server::Impl::Reject(std::string_view path, const std::shared_ptr<http::Exchange>& x,
                          const ApiError& error) {
  x->Respond(ErrorResponse(error));
  RequestStats stats;
  stats.endpoint = path;
  stats.status = error.http_status;
  shared_->Report(stats);
}

void Server::Impl::HandleGeneration(Endpoint endpoint, http::Request& req,
                                    std::shared_ptr<http::Exchange> x) {
  const auto received = Clock::now();
  const std::string_view path = EndpointPath(endpoint);
  if (stopping_.load())
    return Reject(path, x,
                  ApiError{503, "the server is shutting down", "server_error", "", "unavailable"});
  auto parsed = ParseRequest(endpoint, req.body, *generator_, model_);
  if (auto* error = std::get_if<ApiError>(&parsed)) return Reject(path, x, *error);
  ParsedRequest& pr = std::get<ParsedRequest>(parsed);

  auto call = std::make_shared<Call>();
  call->ctx.endpoint = endpoint;
  call->ctx.id = fmt::format("{}-{}{:x}", endpoint == Endpoint::kCompletions ? "cmpl" : "chatcmpl",
                             id_prefix_, next_id_.fetch_add(1));
  call->ctx.created = static_cast<int64_t>(std::time(nullptr));
  call->ctx.model = model_;
  call->stream = pr.stream;
  call->include_usage = pr.include_usage;
  call->received = received;
  call->request_timeout = options_.request_timeout;
  call->exchange = x;
  call->shared = shared_;
  call->usage.prompt_tokens = static_cast<uint32_t>(pr.prompt.size());
  const std::string id = call->ctx.id;

  // A client that leaves cancels its generation. One that only closed its sending side
  // may still read: the probe (JSON whitespace, or an SSE comment) tells which.
  x->OnGone([gen = generator_, id] { gen->Cancel(id); });
  x->SetProbe(call->stream ? http::Probe{200, "text/event-stream", ":\n\n"}
                           : http::Probe{200, kJson, " "});
  if (options_.request_timeout.count() > 0) {
    x->After(options_.request_timeout, [gen = generator_, weak = std::weak_ptr<Call>(call), id] {
      if (auto c = weak.lock()) {
        std::lock_guard lock(c->mu);
        c->timed_out = true;
      }
      gen->Cancel(id);
    });
  }

  engine::GenerationRequest greq;
  greq.request_id = id;
  greq.prompt = std::move(pr.prompt);
  greq.sampling = std::move(pr.sampling);
  greq.cache_salt = std::move(pr.cache_salt);
  {
    std::lock_guard lock(shared_->mu);
    shared_->inflight.insert(id);
  }
  {
    std::lock_guard lock(calls_mu_);
    for (auto it = calls_.begin(); it != calls_.end();)  // forget finished calls
      it = it->second.expired() ? calls_.erase(it) : std::next(it);
    calls_[id] = call;
  }
  Status submitted = generator_->Submit(std::move(greq),
                                        [call](const TokenEvent& event) { call->OnEvent(event); });
  if (!submitted.ok()) {
    {
      std::lock_guard lock(shared_->mu);
      shared_->inflight.erase(id);
    }
    const ApiError error = ErrorFromStatus(submitted);
    if (error.http_status >= 500)
      spdlog::warn("strata serve: {} rejected by the engine: {}", id, submitted.ToString());
    return Reject(path, x, error);
  }
  if (call->stream) {
    std::lock_guard lock(call->mu);
    call->BeginLocked();  // the head goes out now, not with the first token
  }
}

Result<std::unique_ptr<Server>> Server::Start(const ServerOptions& options,
                                              engine::Generator* generator) {
  if (generator == nullptr) return Status::InvalidArgument("Server::Start: no generator");
  auto impl = std::make_unique<Impl>(options, generator);
  STRATA_RETURN_IF_ERROR(impl->Start());
  return std::unique_ptr<Server>(new Server(std::move(impl)));
}

Server::Server(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Server::~Server() = default;
uint16_t Server::port() const {
  return impl_->port();
}
const std::string& Server::model_name() const {
  return impl_->model_name();
}
void Server::Stop() {
  impl_->Stop();
}
void Server::Wait() {
  impl_->Wait();
}

}  // namespace strata::server
