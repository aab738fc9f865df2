// End-to-end tests of the HTTP server: a real Server on 127.0.0.1 (a free port) over the
// FakeGenerator, driven with httplib::Client (and a raw socket for a client that hangs
// up mid-stream).
#include "server/server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>

#include <gtest/gtest.h>
#include <httplib.h>
#include <nlohmann/json.hpp>

#include "server/fake_generator_test_util.h"

namespace strata::server {
namespace {

using nlohmann::json;
using testing::FakeGenerator;

struct HttpReply {
  int status = 0;  // 0: no response (connection error)
  std::string body;
  std::string content_type;
  json j;  // body parsed, or discarded when not JSON
};

// Collects RequestStats.
class RecordingObserver : public ServerObserver {
 public:
  void OnRequestDone(const RequestStats& stats) override {
    std::lock_guard lock(mu_);
    stats_.push_back(stats);
    endpoints_.emplace_back(stats.endpoint);
    cv_.notify_all();
  }
  // Waits (hang guard only) until `n` requests were reported; returns them.
  std::vector<RequestStats> WaitFor(size_t n) {
    std::unique_lock lock(mu_);
    cv_.wait_for(lock, std::chrono::seconds(30), [&] { return stats_.size() >= n; });
    return stats_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<RequestStats> stats_;
  std::vector<std::string> endpoints_;
};

// The data payloads of an SSE body, in order.
std::vector<std::string> SseData(const std::string& body) {
  std::vector<std::string> out;
  size_t pos = 0;
  while (pos < body.size()) {
    size_t end = body.find("\n\n", pos);
    if (end == std::string::npos) end = body.size();
    const std::string frame = body.substr(pos, end - pos);
    if (frame.rfind("data: ", 0) == 0) out.push_back(frame.substr(6));
    pos = end + 2;
  }
  return out;
}

class ServerTest : public ::testing::Test {
 protected:
  void SetUp() override { StartServer(ServerOptions{}); }
  void TearDown() override {
    if (server_) server_->Stop();
  }

  void StartServer(ServerOptions options) {
    if (server_) server_->Stop();
    server_.reset();
    options.port = 0;
    options.observer = &observer_;
    options.max_request_body_bytes = 64 * 1024;
    options.extra_routes.push_back(
        {"/metrics", [] { return std::string("strata_up 1\n"); }, "text/plain; version=0.0.4"});
    auto started = Server::Start(options, &generator_);
    ASSERT_TRUE(started.ok()) << started.status().ToString();
    server_ = std::move(*started);
    ASSERT_NE(server_->port(), 0);
  }

  httplib::Client Client() {
    httplib::Client client("127.0.0.1", server_->port());
    client.set_read_timeout(30, 0);
    return client;
  }

  static HttpReply ToReply(const httplib::Result& r) {
    HttpReply reply;
    if (!r) return reply;
    reply.status = r->status;
    reply.body = r->body;
    reply.content_type = r->get_header_value("Content-Type");
    reply.j = json::parse(reply.body, nullptr, false);
    return reply;
  }
  HttpReply PostRaw(const std::string& path, const std::string& body) {
    auto client = Client();
    return ToReply(client.Post(path.c_str(), body, "application/json"));
  }
  HttpReply Post(const std::string& path, const json& body) { return PostRaw(path, body.dump()); }
  HttpReply Get(const std::string& path) {
    auto client = Client();
    return ToReply(client.Get(path.c_str()));
  }

  void ExpectHealthy() {
    HttpReply r = Get("/health");
    EXPECT_EQ(r.status, 200);
    EXPECT_EQ(r.j, (json{{"status", "ok"}}));
  }

  // The chunks of a streamed reply, checked for SSE framing and the final [DONE].
  static std::vector<json> StreamChunks(const HttpReply& r) {
    EXPECT_EQ(r.status, 200);
    EXPECT_EQ(r.content_type, "text/event-stream");
    std::vector<std::string> data = SseData(r.body);
    EXPECT_FALSE(data.empty());
    if (data.empty()) return {};
    EXPECT_EQ(data.back(), "[DONE]");
    std::vector<json> chunks;
    for (size_t i = 0; i + 1 < data.size(); ++i) chunks.push_back(json::parse(data[i]));
    return chunks;
  }

  FakeGenerator generator_;  // outlives the server
  RecordingObserver observer_;
  std::unique_ptr<Server> server_;
};

TEST_F(ServerTest, HealthModelsAndExtraRoute) {
  ExpectHealthy();
  HttpReply models = Get("/v1/models");
  EXPECT_EQ(models.status, 200);
  EXPECT_EQ(models.j["object"], "list");
  ASSERT_EQ(models.j["data"].size(), 1u);
  EXPECT_EQ(models.j["data"][0]["id"], "fake-model");
  EXPECT_EQ(server_->model_name(), "fake-model");

  HttpReply metrics = Get("/metrics");
  EXPECT_EQ(metrics.status, 200);
  EXPECT_EQ(metrics.body, "strata_up 1\n");
  EXPECT_EQ(metrics.content_type, "text/plain; version=0.0.4");
}

TEST_F(ServerTest, ServedModelNameOverride) {
  ServerOptions options;
  options.served_model_name = "my-model";
  StartServer(options);
  EXPECT_EQ(Get("/v1/models").j["data"][0]["id"], "my-model");
  HttpReply r = Post("/v1/completions", json{{"model", "my-model"}, {"prompt", "Hi"}});
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.j["model"], "my-model");
  EXPECT_EQ(Post("/v1/completions", json{{"model", "fake-model"}, {"prompt", "Hi"}}).status, 404);
}

TEST_F(ServerTest, CompletionNonStreaming) {
  HttpReply r = Post("/v1/completions",
                     json{{"model", "fake-model"}, {"prompt", "Hello"}, {"max_tokens", 10}});
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.content_type, "application/json");
  EXPECT_EQ(r.j["object"], "text_completion");
  EXPECT_EQ(r.j["id"].get<std::string>().rfind("cmpl-", 0), 0u);
  EXPECT_EQ(r.j["model"], "fake-model");
  EXPECT_GT(r.j["created"].get<int64_t>(), 0);
  ASSERT_EQ(r.j["choices"].size(), 1u);
  const json& choice = r.j["choices"][0];
  EXPECT_EQ(choice["index"], 0);
  EXPECT_EQ(choice["text"], FakeGenerator::ExpectedText(10));
  EXPECT_EQ(choice["finish_reason"], "length");
  EXPECT_TRUE(choice["logprobs"].is_null());
  EXPECT_EQ(r.j["usage"]["prompt_tokens"], 5);
  EXPECT_EQ(r.j["usage"]["completion_tokens"], 10);
  EXPECT_EQ(r.j["usage"]["total_tokens"], 15);
  EXPECT_EQ(r.j["usage"]["prompt_tokens_details"]["cached_tokens"], FakeGenerator::CachedTokens(5));

  const engine::GenerationRequest sent = generator_.last_request();
  EXPECT_EQ(generator_.Decode(sent.prompt), "Hello");
  EXPECT_EQ(sent.sampling.max_tokens, 10u);
  EXPECT_EQ(sent.request_id, r.j["id"]);
}

TEST_F(ServerTest, SamplingFieldsAndCacheSaltReachTheGenerator) {
  HttpReply r = Post("/v1/completions", json{{"prompt", json::array({72, 105})},
                                             {"max_tokens", 4},
                                             {"temperature", 0.7},
                                             {"top_p", 0.9},
                                             {"seed", 42},
                                             {"stop", json::array({"zz", "yy"})},
                                             {"cache_salt", "tenant-a"},
                                             {"user", "someone"}});
  ASSERT_EQ(r.status, 200) << r.body;
  const engine::GenerationRequest sent = generator_.last_request();
  EXPECT_EQ(sent.prompt, (std::vector<TokenId>{72, 105}));
  EXPECT_EQ(sent.sampling.max_tokens, 4u);
  EXPECT_FLOAT_EQ(sent.sampling.temperature, 0.7f);
  EXPECT_FLOAT_EQ(sent.sampling.top_p, 0.9f);
  EXPECT_EQ(sent.sampling.seed, 42u);
  EXPECT_EQ(sent.sampling.stop, (std::vector<std::string>{"zz", "yy"}));
  EXPECT_EQ(sent.cache_salt, "tenant-a");

  EXPECT_EQ(Post("/v1/completions", json{{"prompt", "x"}}).status, 200);
  EXPECT_EQ(generator_.last_request().cache_salt, "");
}

TEST_F(ServerTest, StopStringEndsWithFinishReasonStop) {
  for (const json& stop : {json("fox"), json::array({"lazy", "fox"})}) {
    HttpReply r =
        Post("/v1/completions", json{{"prompt", "Hi"}, {"max_tokens", 40}, {"stop", stop}});
    ASSERT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(r.j["choices"][0]["text"], "The quick brown ");
    EXPECT_EQ(r.j["choices"][0]["finish_reason"], "stop");
    EXPECT_EQ(r.j["usage"]["completion_tokens"], 16);
  }
}

TEST_F(ServerTest, CompletionStreamingMatchesNonStreaming) {
  const json request{{"prompt", "Hello"}, {"max_tokens", 40}, {"stop", "lazy"}};
  HttpReply plain = Post("/v1/completions", request);
  ASSERT_EQ(plain.status, 200);

  json streamed_request = request;
  streamed_request["stream"] = true;
  streamed_request["stream_options"] = {{"include_usage", true}};
  std::vector<json> chunks = StreamChunks(Post("/v1/completions", streamed_request));
  ASSERT_GE(chunks.size(), 3u);
  std::string text;
  const std::string id = chunks[0]["id"];
  EXPECT_EQ(id.rfind("cmpl-", 0), 0u);
  // Text chunks, then the finish chunk, then the usage chunk.
  for (size_t i = 0; i + 2 < chunks.size(); ++i) {
    EXPECT_EQ(chunks[i]["object"], "text_completion");
    EXPECT_EQ(chunks[i]["id"], id);
    EXPECT_TRUE(chunks[i]["choices"][0]["finish_reason"].is_null());
    text += chunks[i]["choices"][0]["text"].get<std::string>();
  }
  const json& finish = chunks[chunks.size() - 2];
  EXPECT_EQ(finish["choices"][0]["finish_reason"], "stop");
  EXPECT_EQ(finish["choices"][0]["text"], "");
  EXPECT_EQ(text, plain.j["choices"][0]["text"]);
  const json& usage = chunks.back();
  EXPECT_TRUE(usage["choices"].empty());
  EXPECT_EQ(usage["usage"], plain.j["usage"]);

  // Without include_usage there is no usage chunk.
  streamed_request.erase("stream_options");
  chunks = StreamChunks(Post("/v1/completions", streamed_request));
  ASSERT_FALSE(chunks.empty());
  EXPECT_EQ(chunks.back()["choices"][0]["finish_reason"], "stop");
  for (const json& c : chunks) EXPECT_FALSE(c.contains("usage"));
}

TEST_F(ServerTest, ChatBothWays) {
  const json messages = json::array(
      {{{"role", "system"}, {"content", "Be brief."}}, {{"role", "user"}, {"content", "Hi"}}});
  HttpReply plain = Post("/v1/chat/completions", json{{"messages", messages}, {"max_tokens", 12}});
  ASSERT_EQ(plain.status, 200) << plain.body;
  EXPECT_EQ(plain.j["object"], "chat.completion");
  EXPECT_EQ(plain.j["id"].get<std::string>().rfind("chatcmpl-", 0), 0u);
  EXPECT_EQ(plain.j["choices"][0]["message"]["role"], "assistant");
  EXPECT_EQ(plain.j["choices"][0]["message"]["content"], FakeGenerator::ExpectedText(12));
  EXPECT_EQ(plain.j["choices"][0]["finish_reason"], "length");
  const std::string prompt = "<|system|>\nBe brief.\n<|user|>\nHi\n<|assistant|>\n";
  EXPECT_EQ(generator_.Decode(generator_.last_request().prompt), prompt);
  EXPECT_EQ(plain.j["usage"]["prompt_tokens"], prompt.size());

  std::vector<json> chunks = StreamChunks(Post(
      "/v1/chat/completions", json{{"messages", messages}, {"max_tokens", 12}, {"stream", true}}));
  ASSERT_GE(chunks.size(), 2u);
  EXPECT_EQ(chunks[0]["object"], "chat.completion.chunk");
  EXPECT_EQ(chunks[0]["choices"][0]["delta"]["role"], "assistant");
  std::string text;
  for (size_t i = 0; i + 1 < chunks.size(); ++i) {
    if (i > 0) {
      EXPECT_FALSE(chunks[i]["choices"][0]["delta"].contains("role"));
    }
    text += chunks[i]["choices"][0]["delta"]["content"].get<std::string>();
  }
  EXPECT_EQ(text, plain.j["choices"][0]["message"]["content"]);
  EXPECT_EQ(chunks.back()["choices"][0]["finish_reason"], "length");
  EXPECT_EQ(chunks.back()["choices"][0]["delta"], json::object());
}

TEST_F(ServerTest, MalformedRequestsGetJsonErrorsAndTheServerKeepsServing) {
  struct Case {
    std::string path;
    std::string body;
    int status;
    std::string param;
  };
  const std::vector<Case> cases = {
      {"/v1/completions", "{not json", 400, ""},
      {"/v1/completions", "", 400, ""},
      {"/v1/completions", R"(["prompt"])", 400, ""},
      {"/v1/completions", R"({"max_tokens": 3})", 400, "prompt"},
      {"/v1/completions", R"({"prompt": 12})", 400, "prompt"},
      {"/v1/completions", R"({"prompt": "a", "max_tokens": "many"})", 400, "max_tokens"},
      {"/v1/completions", R"({"prompt": "a", "temperature": -1})", 400, "temperature"},
      {"/v1/completions", R"({"prompt": "a", "stream": 1})", 400, "stream"},
      {"/v1/completions", R"({"prompt": "a", "n": 3})", 400, "n"},
      {"/v1/completions", R"({"prompt": "a", "model": "other"})", 404, "model"},
      {"/v1/completions", R"({"prompt": ")" + std::string(1000, 'x') + R"("})", 400, "prompt"},
      {"/v1/completions", R"({"prompt": "a", "max_tokens": 100000})", 400, "max_tokens"},
      {"/v1/chat/completions", R"({"messages": [{"role": 1, "content": "a"}]})", 400,
       "messages[0].role"},
      {"/v1/chat/completions", R"({"prompt": "a"})", 400, "messages"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.body.substr(0, 80));
    HttpReply r = PostRaw(c.path, c.body);
    EXPECT_EQ(r.status, c.status) << r.body;
    EXPECT_EQ(r.content_type, "application/json");
    ASSERT_TRUE(r.j.is_object()) << r.body;
    EXPECT_EQ(r.j["error"]["type"], "invalid_request_error");
    EXPECT_FALSE(r.j["error"]["message"].get<std::string>().empty());
    if (c.param.empty()) {
      EXPECT_TRUE(r.j["error"]["param"].is_null());
    } else {
      EXPECT_EQ(r.j["error"]["param"], c.param);
    }
    ExpectHealthy();
  }
  EXPECT_EQ(generator_.submits(), 0);  // nothing malformed reached the engine
  EXPECT_EQ(PostRaw("/v1/completions", R"({"prompt": "fine"})").status, 200);
}

TEST_F(ServerTest, UnknownPathsWrongMethodsAndHugeBodies) {
  HttpReply r = Get("/v2/nothing");
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(r.j["error"]["code"], "not_found");
  r = PostRaw("/v1/embeddings", R"({"input": "a"})");
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(r.j["error"]["type"], "invalid_request_error");

  r = Get("/v1/completions");
  EXPECT_EQ(r.status, 405);
  EXPECT_EQ(r.j["error"]["code"], "method_not_allowed");
  r = PostRaw("/health", "{}");
  EXPECT_EQ(r.status, 405);
  r = PostRaw("/v1/models", "{}");
  EXPECT_EQ(r.status, 405);

  // Over ServerOptions::max_request_body_bytes (64 KiB in these tests).
  r = Post("/v1/completions", json{{"prompt", std::string(100 * 1024, 'x')}});
  EXPECT_EQ(r.status, 413);
  EXPECT_TRUE(r.j["error"].is_object()) << r.body;
  ExpectHealthy();
}

TEST_F(ServerTest, EngineRejectionsMapToStatusCodes) {
  generator_.submit_status = Status::ResourceExhausted("queue full (64 requests)");
  HttpReply r = Post("/v1/completions", json{{"prompt", "Hi"}});
  EXPECT_EQ(r.status, 429);
  EXPECT_NE(r.j["error"]["message"].get<std::string>().find("queue full"), std::string::npos);
  r = Post(
      "/v1/chat/completions",
      json{{"messages", json::array({{{"role", "user"}, {"content", "Hi"}}})}, {"stream", true}});
  EXPECT_EQ(r.status, 429);  // a stream that never started is a plain JSON error
  EXPECT_EQ(r.content_type, "application/json");

  generator_.submit_status = Status::Internal("scheduler broke");
  r = Post("/v1/completions", json{{"prompt", "Hi"}});
  EXPECT_EQ(r.status, 500);
  EXPECT_EQ(r.j["error"]["type"], "server_error");

  generator_.submit_status = Status::Ok();
  generator_.fail_generation = true;
  r = Post("/v1/completions", json{{"prompt", "Hi"}, {"max_tokens", 3}});
  EXPECT_EQ(r.status, 500);
  EXPECT_EQ(r.j["error"]["type"], "server_error");
  r = Post("/v1/completions", json{{"prompt", "Hi"}, {"max_tokens", 3}, {"stream", true}});
  EXPECT_EQ(r.status, 200);
  std::vector<std::string> data = SseData(r.body);
  ASSERT_GE(data.size(), 2u);
  EXPECT_EQ(data.back(), "[DONE]");
  EXPECT_TRUE(json::parse(data[data.size() - 2]).contains("error"));

  generator_.fail_generation = false;
  EXPECT_EQ(Post("/v1/completions", json{{"prompt", "Hi"}}).status, 200);
}

// Opens a raw connection, starts a stream, reads until the first event and hangs up.
void StartStreamAndHangUp(uint16_t port) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  const std::string body = json{{"prompt", "Hi"}, {"max_tokens", 200}, {"stream", true}}.dump();
  const std::string request =
      "POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
      "Content-Type: application/json\r\nContent-Length: " +
      std::to_string(body.size()) + "\r\n\r\n" + body;
  ASSERT_EQ(write(fd, request.data(), request.size()), static_cast<ssize_t>(request.size()));
  std::string received;
  char buf[4096];
  while (received.find("data: ") == std::string::npos) {
    const ssize_t n = read(fd, buf, sizeof(buf));
    ASSERT_GT(n, 0) << "connection closed before the first event: " << received;
    received.append(buf, static_cast<size_t>(n));
  }
  EXPECT_NE(received.find("200"), std::string::npos);
  close(fd);
}

TEST_F(ServerTest, ClientDisconnectMidStreamCancelsTheGeneration) {
  generator_.token_delay = std::chrono::milliseconds(10);  // 200 tokens: ~2 s unless cancelled
  StartStreamAndHangUp(server_->port());
  ASSERT_TRUE(generator_.WaitForCancel());
  ASSERT_TRUE(generator_.WaitForIdle());
  std::vector<RequestStats> stats = observer_.WaitFor(1);
  ASSERT_EQ(stats.size(), 1u);
  EXPECT_TRUE(stats[0].stream);
  EXPECT_LT(stats[0].completion_tokens, 200u);
  generator_.token_delay = std::chrono::milliseconds(0);
  ExpectHealthy();
  EXPECT_EQ(Post("/v1/completions", json{{"prompt", "Hi"}}).status, 200);
}

// A raw connection to the server, for clients that misbehave on purpose.
int RawConnect(uint16_t port) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

std::string RawPost(const std::string& path, const std::string& body) {
  return "POST " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n" +
         "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
}

// Everything the server sends until it closes (hang guard: 30 s).
std::string ReadToClose(int fd) {
  timeval tv{30, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  std::string out;
  char buf[4096];
  for (ssize_t n; (n = read(fd, buf, sizeof(buf))) > 0;) out.append(buf, static_cast<size_t>(n));
  return out;
}

// The body of a chunked response.
std::string Dechunk(std::string_view s) {
  std::string body;
  for (;;) {
    const size_t eol = s.find("\r\n");
    if (eol == std::string_view::npos) return body;
    const size_t n = std::stoul(std::string(s.substr(0, eol)), nullptr, 16);
    if (n == 0) return body;
    body += s.substr(eol + 2, n);
    s.remove_prefix(eol + 2 + n + 2);
  }
}

// Issue 13 item 2: with a thread per connection, 16 idle keep-alive connections or 16
// slowloris clients took every worker and /health waited 5-10 s or forever.
TEST_F(ServerTest, IdleAndSlowConnectionsDoNotStarveOthers) {
  std::vector<int> hogs;
  const std::string health = "GET /health HTTP/1.1\r\nHost: x\r\n\r\n";
  for (int i = 0; i < 32; ++i) {
    const int fd = RawConnect(server_->port());
    ASSERT_GE(fd, 0);
    if (i % 2 == 0) {
      // Keep-alive: one answered request, then silence.
      ASSERT_EQ(write(fd, health.data(), health.size()), static_cast<ssize_t>(health.size()));
      char buf[512];
      ASSERT_GT(read(fd, buf, sizeof(buf)), 0);
    } else {
      ASSERT_EQ(write(fd, "GET /health HTTP/1.1\r\nHo", 25), 25);  // slowloris
    }
    hogs.push_back(fd);
  }
  // Answered while all 32 stay open (2 s: ample for a loopback round trip, far below
  // the old keep-alive and read timeouts).
  httplib::Client client("127.0.0.1", server_->port());
  client.set_connection_timeout(2, 0);
  client.set_read_timeout(2, 0);
  for (int i = 0; i < 4; ++i) {
    auto r = client.Get("/health");
    ASSERT_TRUE(r) << httplib::to_string(r.error());
    EXPECT_EQ(r->status, 200);
  }
  for (int fd : hogs) close(fd);
}

// Issue 13 item 3: a non-streaming request whose client hung up ran to max_tokens.
TEST_F(ServerTest, AbandonedNonStreamingRequestIsCancelled) {
  generator_.token_delay = std::chrono::milliseconds(10);  // 200 tokens: ~2 s unless cancelled
  const int fd = RawConnect(server_->port());
  ASSERT_GE(fd, 0);
  const std::string req =
      RawPost("/v1/completions", json{{"prompt", "Hi"}, {"max_tokens", 200}}.dump());
  ASSERT_EQ(write(fd, req.data(), req.size()), static_cast<ssize_t>(req.size()));
  ASSERT_TRUE(generator_.WaitForActive());
  close(fd);
  ASSERT_TRUE(generator_.WaitForCancel());
  ASSERT_TRUE(generator_.WaitForIdle());
  std::vector<RequestStats> stats = observer_.WaitFor(1);
  ASSERT_EQ(stats.size(), 1u);
  EXPECT_FALSE(stats[0].stream);
  EXPECT_EQ(stats[0].finish_reason, engine::FinishReason::kCancelled);
  EXPECT_LT(stats[0].completion_tokens, 200u);
  generator_.token_delay = std::chrono::milliseconds(0);
  ExpectHealthy();
}

// Issue 13 item 3: a client that half-closes after sending got no response.
TEST_F(ServerTest, HalfClosedClientGetsItsCompletion) {
  generator_.token_delay = std::chrono::milliseconds(5);
  for (bool stream : {false, true}) {
    SCOPED_TRACE(stream ? "stream" : "plain");
    const int fd = RawConnect(server_->port());
    ASSERT_GE(fd, 0);
    const std::string req = RawPost(
        "/v1/completions", json{{"prompt", "Hi"}, {"max_tokens", 40}, {"stream", stream}}.dump());
    ASSERT_EQ(write(fd, req.data(), req.size()), static_cast<ssize_t>(req.size()));
    shutdown(fd, SHUT_WR);
    const std::string raw = ReadToClose(fd);
    close(fd);
    ASSERT_NE(raw.find("HTTP/1.1 200 OK"), std::string::npos) << raw;
    const size_t head_end = raw.find("\r\n\r\n");
    ASSERT_NE(head_end, std::string::npos);
    std::string body = Dechunk(std::string_view(raw).substr(head_end + 4));
    std::string text;
    if (stream) {
      std::vector<std::string> data = SseData(body);
      ASSERT_FALSE(data.empty()) << body;
      EXPECT_EQ(data.back(), "[DONE]");
      for (size_t i = 0; i + 1 < data.size(); ++i)
        text += json::parse(data[i])["choices"][0]["text"].get<std::string>();
    } else {
      const json j = json::parse(body, nullptr, false);  // leading probe whitespace is JSON
      ASSERT_TRUE(j.is_object()) << body;
      text = j["choices"][0]["text"].get<std::string>();
    }
    EXPECT_EQ(text, FakeGenerator::ExpectedText(40));
  }
  EXPECT_TRUE(generator_.cancelled().empty());
}

TEST_F(ServerTest, ConnectionsOverTheCapGetA503InOpenAiShape) {
  ServerOptions options;
  options.max_connections = 2;
  StartServer(options);
  const int a = RawConnect(server_->port()), b = RawConnect(server_->port());
  ASSERT_GE(a, 0);
  ASSERT_GE(b, 0);
  const std::string health = "GET /health HTTP/1.1\r\nHost: x\r\n\r\n";
  char buf[512];
  for (int fd : {a, b}) {  // both accepted and served before the third comes
    ASSERT_EQ(write(fd, health.data(), health.size()), static_cast<ssize_t>(health.size()));
    ASSERT_GT(read(fd, buf, sizeof(buf)), 0);
  }
  const int c = RawConnect(server_->port());
  ASSERT_GE(c, 0);
  const std::string raw = ReadToClose(c);
  close(c);
  EXPECT_NE(raw.find("503 Service Unavailable"), std::string::npos) << raw;
  const json j = json::parse(raw.substr(raw.find("\r\n\r\n") + 4), nullptr, false);
  EXPECT_EQ(j["error"]["code"], "unavailable") << raw;
  close(a);
  close(b);
}

TEST_F(ServerTest, ObserverSeesEveryRequest) {
  ASSERT_EQ(Post("/v1/completions", json{{"prompt", "Hello"}, {"max_tokens", 6}}).status, 200);
  StreamChunks(Post("/v1/chat/completions",
                    json{{"messages", json::array({{{"role", "user"}, {"content", "Hi"}}})},
                         {"max_tokens", 4},
                         {"stream", true}}));
  ASSERT_EQ(Post("/v1/completions", json{{"prompt", 1}}).status, 400);
  std::vector<RequestStats> stats = observer_.WaitFor(3);
  ASSERT_EQ(stats.size(), 3u);
  // The stream reports when its response ends, which may be after the 400 was answered.
  auto find = [&](int status, bool stream) -> const RequestStats* {
    for (const RequestStats& s : stats)
      if (s.status == status && s.stream == stream) return &s;
    return nullptr;
  };
  const RequestStats* plain = find(200, false);
  ASSERT_NE(plain, nullptr);
  EXPECT_EQ(plain->endpoint, "/v1/completions");
  EXPECT_EQ(plain->finish_reason, engine::FinishReason::kLength);
  EXPECT_EQ(plain->prompt_tokens, 5u);
  EXPECT_EQ(plain->cached_tokens, FakeGenerator::CachedTokens(5));
  EXPECT_EQ(plain->completion_tokens, 6u);
  EXPECT_GE(plain->ttft_seconds, 0.0);
  EXPECT_EQ(plain->inter_token_seconds.size(), 5u);
  EXPECT_GE(plain->duration_seconds, plain->ttft_seconds);

  const RequestStats* streamed = find(200, true);
  ASSERT_NE(streamed, nullptr);
  EXPECT_EQ(streamed->endpoint, "/v1/chat/completions");
  EXPECT_EQ(streamed->completion_tokens, 4u);
  EXPECT_EQ(streamed->inter_token_seconds.size(), 3u);

  const RequestStats* rejected = find(400, false);
  ASSERT_NE(rejected, nullptr);
  EXPECT_EQ(rejected->completion_tokens, 0u);
  EXPECT_LT(rejected->ttft_seconds, 0.0);
}

TEST_F(ServerTest, RequestTimeoutCancelsAndAnswers504) {
  ServerOptions options;
  options.request_timeout = std::chrono::milliseconds(100);
  StartServer(options);
  generator_.token_delay = std::chrono::milliseconds(20);  // 200 tokens: ~4 s
  HttpReply r = Post("/v1/completions", json{{"prompt", "Hi"}, {"max_tokens", 200}});
  EXPECT_EQ(r.status, 504) << r.body;
  EXPECT_EQ(r.j["error"]["code"], "timeout");
  EXPECT_EQ(generator_.cancelled().size(), 1u);
}

TEST_F(ServerTest, StopEndsRequestsInFlight) {
  generator_.token_delay = std::chrono::milliseconds(20);  // 200 tokens: ~4 s
  std::atomic<int> status{-1};
  std::thread client([&] {
    status = Post("/v1/completions", json{{"prompt", "Hi"}, {"max_tokens", 200}}).status;
  });
  ASSERT_TRUE(generator_.WaitForActive());
  server_->Stop();
  server_->Wait();  // returns at once: already stopped
  client.join();
  EXPECT_NE(status.load(), 200);  // 503, or no response at all
  EXPECT_FALSE(generator_.cancelled().empty());
  EXPECT_TRUE(generator_.WaitForIdle());
  server_->Stop();  // idempotent
}

TEST_F(ServerTest, StartErrors) {
  ServerOptions options;
  options.port = server_->port();  // taken
  auto second = Server::Start(options, &generator_);
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), StatusCode::kUnavailable);

  options.port = 0;
  options.threads = 0;
  EXPECT_EQ(Server::Start(options, &generator_).status().code(), StatusCode::kInvalidArgument);
  options.threads = 2;
  options.extra_routes.push_back({"/health", [] { return std::string(); }});
  EXPECT_EQ(Server::Start(options, &generator_).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(Server::Start(ServerOptions{}, nullptr).status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace strata::server
