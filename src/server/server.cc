// Server: cpp-httplib plumbing between HTTP requests and Generator requests (server.h).
//
// Each completion request becomes one Generation shared between the HTTP worker thread
// that serves it and the generator's event callback. The callback only appends events
// under a mutex; the worker waits for them in short slices, so it also notices Stop,
// the request deadline and (for streams) a client that went away, and cancels.
#include "server/server.h"

#include <sys/socket.h>

#include <atomic>
#include <condition_variable>
#include <csignal>
#include <ctime>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <thread>
#include <unordered_set>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <httplib.h>

#include "server/openai_api.h"

namespace strata::server {

namespace {

using Clock = std::chrono::steady_clock;
using engine::FinishReason;
using engine::TokenEvent;

// How long a worker waits for events before it looks at Stop, the deadline and its
// socket again.
constexpr auto kPollSlice = std::chrono::milliseconds(50);

constexpr const char* kJson = "application/json";

double Seconds(Clock::duration d) {
  return std::chrono::duration<double>(d).count();
}

// The events of one generation, and when they came. Owned jointly by the HTTP side and
// the generator callback: a cancelled request's final event may arrive after the HTTP
// side is gone.
struct Generation {
  std::mutex mu;
  std::condition_variable cv;
  std::deque<TokenEvent> pending;  // not yet taken by the HTTP side
  Clock::time_point received;
  std::optional<Clock::time_point> last_token_at;
  double ttft_seconds = -1.0;
  std::vector<double> inter_token_seconds;

  void OnEvent(const TokenEvent& event) {
    const auto now = Clock::now();
    {
      std::lock_guard lock(mu);
      if (event.has_token) {
        if (!last_token_at)
          ttft_seconds = Seconds(now - received);
        else
          inter_token_seconds.push_back(Seconds(now - *last_token_at));
        last_token_at = now;
      }
      pending.push_back(event);
    }
    cv.notify_all();
  }
};

// The HTTP side of one submitted request: what it has consumed so far.
struct Exchange {
  ResponseContext ctx;
  bool stream = false;
  bool include_usage = false;
  std::shared_ptr<Generation> gen;
  Clock::time_point received;
  std::optional<Clock::time_point> deadline;
  bool timed_out = false;  // the deadline passed and Cancel was sent
  bool finished = false;   // the final event was taken
  bool first_chunk_sent = false;
  FinishReason finish_reason = FinishReason::kNone;
  Status error;
  Usage usage;
  std::string text;  // non-streaming: all text so far
};

std::string RegexEscape(std::string_view s) {
  std::string out;
  for (char c : s) {
    if (std::string_view(".^$|()[]{}*+?\\").find(c) != std::string_view::npos) out += '\\';
    out += c;
  }
  return out;
}

void SetError(httplib::Response& res, const ApiError& error) {
  res.status = error.http_status;
  res.set_content(ErrorBody(error), kJson);
}

}  // namespace

class Server::Impl {
 public:
  Impl(const ServerOptions& options, engine::Generator* generator)
      : options_(options),
        generator_(generator),
        model_(options.served_model_name.empty() ? generator->model_name()
                                                 : options.served_model_name),
        created_(static_cast<int64_t>(std::time(nullptr))) {
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

  uint16_t port() const { return port_; }
  const std::string& model_name() const { return model_; }

 private:
  void Routes();
  void HandleGeneration(Endpoint endpoint, const httplib::Request& req, httplib::Response& res);
  void Respond(Exchange& x, httplib::Response& res);
  void Stream(std::shared_ptr<Exchange> x, httplib::Response& res);
  // Takes the events that arrived (waiting up to kPollSlice for one) into `x`, calling
  // `on_text` per non-empty text; enforces the deadline.
  template <typename OnText>
  void Consume(Exchange& x, OnText on_text);
  void Finish(Exchange& x);  // unregisters; cancels the generation if unfinished
  void Report(std::string_view endpoint, int status, bool stream, const Exchange* x);

  const ServerOptions options_;
  engine::Generator* const generator_;
  const std::string model_;
  const int64_t created_;
  std::string id_prefix_;
  std::atomic<uint64_t> next_id_{0};

  httplib::Server http_;
  std::map<std::string, std::string> allowed_methods_;  // path -> "GET" / "POST"
  std::thread listener_;
  uint16_t port_ = 0;

  std::atomic<bool> stopping_{false};
  std::mutex inflight_mu_;
  std::unordered_set<std::string> inflight_;  // request ids submitted, not finished

  std::mutex stop_mu_;  // serializes Stop
  std::mutex state_mu_;
  std::condition_variable state_cv_;
  bool listening_done_ = false;  // guarded by state_mu_
  bool stopped_ = false;         // guarded by state_mu_
};

Status Server::Impl::Start() {
  if (options_.threads == 0) return Status::InvalidArgument("ServerOptions.threads must be >= 1");
  if (options_.max_request_body_bytes == 0)
    return Status::InvalidArgument("ServerOptions.max_request_body_bytes must be > 0");
  if (options_.request_timeout.count() < 0)
    return Status::InvalidArgument("ServerOptions.request_timeout must be >= 0");
  Routes();
  for (const ExtraRoute& route : options_.extra_routes) {
    if (route.path.empty() || route.path[0] != '/' || !route.body)
      return Status::InvalidArgument(fmt::format(
          "extra route '{}' needs a path starting with '/' and a body function", route.path));
    if (allowed_methods_.count(route.path))
      return Status::InvalidArgument(fmt::format("extra route '{}' is already served", route.path));
    allowed_methods_[route.path] = "GET";
    http_.Get(RegexEscape(route.path), [body = route.body, type = route.content_type](
                                           const httplib::Request&, httplib::Response& res) {
      res.set_content(body(), type);
    });
  }

  // A write to a client that vanished must fail with EPIPE, not kill the process.
  std::signal(SIGPIPE, SIG_IGN);

  const uint32_t threads = options_.threads;
  http_.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  http_.set_payload_max_length(options_.max_request_body_bytes);
  // httplib's default adds SO_REUSEPORT, which would let a second server share (and
  // silently split) our port; SO_REUSEADDR alone allows quick restarts.
  http_.set_socket_options([](socket_t sock) {
    int yes = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
  });
  int port = options_.port;
  if (options_.port == 0) {
    port = http_.bind_to_any_port(options_.host);
  } else if (!http_.bind_to_port(options_.host, options_.port)) {
    port = -1;
  }
  if (port <= 0)
    return Status::Unavailable(
        fmt::format("cannot listen on {}:{} (address in use, or not an address of this machine?)",
                    options_.host, options_.port));
  port_ = static_cast<uint16_t>(port);

  listener_ = std::thread([this] {
    http_.listen_after_bind();
    std::lock_guard lock(state_mu_);
    listening_done_ = true;
  });
  // Return only once the accept loop runs, so that a Stop right after Start is not lost.
  while (!http_.is_running()) {
    {
      std::lock_guard lock(state_mu_);
      if (listening_done_) break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  spdlog::info("strata serve: listening on http://{}:{} (model '{}', {} threads)", options_.host,
               port_, model_, threads);
  return Status::Ok();
}

void Server::Impl::Stop() {
  std::lock_guard stop_lock(stop_mu_);
  {
    std::lock_guard lock(state_mu_);
    if (stopped_) return;
  }
  stopping_.store(true);
  std::vector<std::string> ids;
  {
    std::lock_guard lock(inflight_mu_);
    ids.assign(inflight_.begin(), inflight_.end());
  }
  for (const std::string& id : ids) generator_->Cancel(id);
  http_.stop();
  if (listener_.joinable()) listener_.join();  // joins the workers too
  {
    std::lock_guard lock(state_mu_);
    stopped_ = true;
  }
  state_cv_.notify_all();
}

void Server::Impl::Routes() {
  http_.Post("/v1/completions", [this](const httplib::Request& req, httplib::Response& res) {
    HandleGeneration(Endpoint::kCompletions, req, res);
  });
  http_.Post("/v1/chat/completions", [this](const httplib::Request& req, httplib::Response& res) {
    HandleGeneration(Endpoint::kChatCompletions, req, res);
  });
  http_.Get("/v1/models", [this](const httplib::Request&, httplib::Response& res) {
    res.set_content(ModelsBody(model_, created_), kJson);
  });
  http_.Get("/health", [](const httplib::Request&, httplib::Response& res) {
    res.set_content(R"({"status":"ok"})", kJson);
  });
  allowed_methods_ = {{"/v1/completions", "POST"},
                      {"/v1/chat/completions", "POST"},
                      {"/v1/models", "GET"},
                      {"/health", "GET"}};

  // Every 4xx/5xx without a body yet (no route, wrong method, body too large, bad HTTP)
  // gets one in OpenAI's shape.
  httplib::Server::HandlerWithResponse on_error = [this](const httplib::Request& req,
                                                         httplib::Response& res) {
    if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
    ApiError error{res.status, "", "invalid_request_error", "", ""};
    if (res.status == 404) {
      auto it = allowed_methods_.find(req.path);
      if (it != allowed_methods_.end()) {
        error.http_status = 405;
        error.code = "method_not_allowed";
        error.message =
            fmt::format("method {} is not allowed on {}; use {}", req.method, req.path, it->second);
        res.set_header("Allow", it->second);
      } else {
        error.code = "not_found";
        error.message = fmt::format("no endpoint {} {}", req.method, req.path);
      }
    } else if (res.status == 413) {
      error.message =
          fmt::format("the request body is larger than {} bytes", options_.max_request_body_bytes);
    } else if (res.status >= 500) {
      error.type = "server_error";
      error.message = "internal server error";
    } else {
      error.message = fmt::format("bad HTTP request (status {})", res.status);
    }
    SetError(res, error);
    return httplib::Server::HandlerResponse::Handled;
  };
  http_.set_error_handler(std::move(on_error));
  // A bug, or an allocation failure, in a handler: a 500 for this request only.
  http_.set_exception_handler(
      [](const httplib::Request& req, httplib::Response& res, std::exception_ptr ep) {
        std::string what = "unknown exception";
        try {
          std::rethrow_exception(ep);
        } catch (const std::exception& e) {
          what = e.what();
        } catch (...) {
        }
        spdlog::error("strata serve: {} {} failed: {}", req.method, req.path, what);
        SetError(res, ApiError{500, "internal server error: " + what, "server_error", "", ""});
      });
}

void Server::Impl::HandleGeneration(Endpoint endpoint, const httplib::Request& req,
                                    httplib::Response& res) {
  const auto received = Clock::now();
  const std::string_view path = EndpointPath(endpoint);
  if (stopping_.load()) {
    SetError(res, ApiError{503, "the server is shutting down", "server_error", "", "unavailable"});
    Report(path, res.status, false, nullptr);
    return;
  }
  auto parsed = ParseRequest(endpoint, req.body, *generator_, model_);
  if (auto* error = std::get_if<ApiError>(&parsed)) {
    SetError(res, *error);
    Report(path, res.status, false, nullptr);
    return;
  }
  ParsedRequest& pr = std::get<ParsedRequest>(parsed);

  auto x = std::make_shared<Exchange>();
  x->ctx.endpoint = endpoint;
  x->ctx.id = fmt::format("{}-{}{:x}", endpoint == Endpoint::kCompletions ? "cmpl" : "chatcmpl",
                          id_prefix_, next_id_.fetch_add(1));
  x->ctx.created = static_cast<int64_t>(std::time(nullptr));
  x->ctx.model = model_;
  x->stream = pr.stream;
  x->include_usage = pr.include_usage;
  x->received = received;
  if (options_.request_timeout.count() > 0) x->deadline = received + options_.request_timeout;
  x->gen = std::make_shared<Generation>();
  x->gen->received = received;
  x->usage.prompt_tokens = static_cast<uint32_t>(pr.prompt.size());

  engine::GenerationRequest greq;
  greq.request_id = x->ctx.id;
  greq.prompt = std::move(pr.prompt);
  greq.sampling = std::move(pr.sampling);
  greq.cache_salt = std::move(pr.cache_salt);
  {
    std::lock_guard lock(inflight_mu_);
    inflight_.insert(x->ctx.id);
  }
  Status submitted = generator_->Submit(
      std::move(greq), [gen = x->gen](const TokenEvent& event) { gen->OnEvent(event); });
  if (!submitted.ok()) {
    {
      std::lock_guard lock(inflight_mu_);
      inflight_.erase(x->ctx.id);
    }
    const ApiError error = ErrorFromStatus(submitted);
    if (error.http_status >= 500)
      spdlog::warn("strata serve: {} rejected by the engine: {}", x->ctx.id, submitted.ToString());
    SetError(res, error);
    Report(path, res.status, x->stream, x.get());
    return;
  }
  if (x->stream) {
    Stream(std::move(x), res);
  } else {
    Respond(*x, res);
  }
}

template <typename OnText>
void Server::Impl::Consume(Exchange& x, OnText on_text) {
  std::deque<TokenEvent> events;
  {
    std::unique_lock lock(x.gen->mu);
    x.gen->cv.wait_for(lock, kPollSlice, [&] { return !x.gen->pending.empty(); });
    events.swap(x.gen->pending);
  }
  for (const TokenEvent& event : events) {
    if (!event.text.empty()) on_text(event.text);
    x.usage = Usage{event.prompt_tokens, event.cached_tokens, event.completion_tokens};
    if (event.finished) {
      x.finished = true;
      x.finish_reason = event.finish_reason;
      x.error = event.error;
      break;  // nothing follows the final event
    }
  }
  if (!x.finished && !x.timed_out && x.deadline && Clock::now() >= *x.deadline) {
    x.timed_out = true;
    generator_->Cancel(x.ctx.id);
  }
}

void Server::Impl::Respond(Exchange& x, httplib::Response& res) {
  while (!x.finished && !stopping_.load())
    Consume(x, [&](const std::string& text) { x.text += text; });

  if (!x.finished) {
    SetError(res, ApiError{503, "the server is shutting down", "server_error", "", "unavailable"});
  } else if (x.timed_out && x.finish_reason == FinishReason::kCancelled) {
    SetError(res, ApiError{504,
                           fmt::format("the generation did not finish within {} ms",
                                       options_.request_timeout.count()),
                           "server_error", "", "timeout"});
  } else if (x.finish_reason == FinishReason::kError) {
    spdlog::warn("strata serve: {} failed: {}", x.ctx.id, x.error.ToString());
    ApiError error =
        ErrorFromStatus(x.error.ok() ? Status::Internal("generation failed") : x.error);
    if (error.http_status < 500) error = ApiError{500, x.error.ToString(), "server_error", "", ""};
    SetError(res, error);
  } else if (x.finish_reason == FinishReason::kCancelled) {
    SetError(res, ApiError{503, "the generation was cancelled", "server_error", "", "cancelled"});
  } else {
    res.status = 200;
    res.set_content(CompletionBody(x.ctx, x.text, x.finish_reason, x.usage), kJson);
  }
  Finish(x);
  Report(EndpointPath(x.ctx.endpoint), res.status, false, &x);
}

void Server::Impl::Stream(std::shared_ptr<Exchange> x, httplib::Response& res) {
  res.status = 200;
  res.set_header("Cache-Control", "no-cache");
  res.set_chunked_content_provider(
      "text/event-stream",
      [this, x](size_t /*offset*/, httplib::DataSink& sink) {
        if (stopping_.load()) return false;
        std::string out;
        Consume(*x, [&](const std::string& text) {
          out += StreamTextEvent(x->ctx, text, !x->first_chunk_sent);
          x->first_chunk_sent = true;
        });
        if (x->finished) {
          if (x->finish_reason == FinishReason::kError ||
              (x->timed_out && x->finish_reason == FinishReason::kCancelled)) {
            ApiError error =
                x->finish_reason == FinishReason::kCancelled
                    ? ApiError{504,
                               fmt::format("the generation did not finish within {} ms",
                                           options_.request_timeout.count()),
                               "server_error", "", "timeout"}
                    : ApiError{500, x->error.ToString(), "server_error", "", ""};
            out += StreamErrorEvent(error);
          } else {
            if (x->ctx.endpoint == Endpoint::kChatCompletions && !x->first_chunk_sent)
              out += StreamTextEvent(x->ctx, "", /*first=*/true);  // the role, at least
            out += StreamFinishEvent(x->ctx, x->finish_reason);
          }
          if (x->include_usage) out += StreamUsageEvent(x->ctx, x->usage);
          out += kStreamDoneEvent;
        }
        // A failed write means the client is gone: returning false ends the response
        // and the releaser cancels the generation.
        if (!out.empty() && !sink.write(out.data(), out.size())) return false;
        if (x->finished) sink.done();
        return true;
      },
      [this, x](bool /*success*/) {
        Finish(*x);
        Report(EndpointPath(x->ctx.endpoint), 200, true, x.get());
      });
}

void Server::Impl::Finish(Exchange& x) {
  {
    std::lock_guard lock(inflight_mu_);
    inflight_.erase(x.ctx.id);
  }
  if (!x.finished) generator_->Cancel(x.ctx.id);
}

void Server::Impl::Report(std::string_view endpoint, int status, bool stream, const Exchange* x) {
  if (options_.observer == nullptr) return;
  RequestStats stats;
  stats.endpoint = endpoint;
  stats.status = status;
  stats.stream = stream;
  if (x != nullptr) {
    stats.finish_reason = x->finish_reason;
    stats.prompt_tokens = x->usage.prompt_tokens;
    stats.cached_tokens = x->usage.cached_tokens;
    stats.completion_tokens = x->usage.completion_tokens;
    stats.duration_seconds = Seconds(Clock::now() - x->received);
    std::lock_guard lock(x->gen->mu);
    stats.ttft_seconds = x->gen->ttft_seconds;
    stats.inter_token_seconds = x->gen->inter_token_seconds;
  }
  options_.observer->OnRequestDone(stats);
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
