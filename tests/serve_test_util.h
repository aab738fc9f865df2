// Helpers for tests that run the real `strata serve` binary: the child process (start-up
// line, SIGTERM, exit status), a raw-socket HTTP client that times the first Server-Sent
// Event as the bytes arrive, OpenAI completion calls, and a deterministic long prompt.
//
// The client is a raw socket on purpose: time to first token is the time to the first
// Server-Sent Event carrying a token, which needs the bytes as they arrive.
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#ifndef STRATA_CLI
#error "STRATA_CLI must name the strata binary"
#endif

extern char** environ;

namespace strata::serve_test {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

// Generous: a sanitizer build starts and prefills far slower than a release one.
constexpr auto kStartDeadline = 60s;
constexpr auto kRequestDeadline = 120s;
constexpr auto kExitDeadline = 60s;

// Starts argv[0] with its stdout on a new pipe (*out_fd, the read end) and the environment
// without STRATA_* / DYN_KVBM_* variables (the test's arguments alone decide the
// configuration) plus `extra_env` ("NAME=value"). Returns 0, or the errno that failed.
inline int SpawnWithCleanEnv(std::vector<std::string> argv_s,
                             const std::vector<std::string>& extra_env, pid_t* pid, int* out_fd) {
  int out[2];
  if (pipe2(out, O_CLOEXEC) != 0) return errno;
  std::vector<char*> argv;
  for (auto& a : argv_s) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::vector<std::string> extra = extra_env;
  std::vector<char*> envp;
  for (char** e = environ; *e != nullptr; ++e) {
    const std::string_view var(*e);
    if (!var.starts_with("STRATA_") && !var.starts_with("DYN_KVBM_")) envp.push_back(*e);
  }
  for (auto& v : extra) envp.push_back(v.data());
  envp.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, out[1], STDOUT_FILENO);
  const int rc = posix_spawn(pid, argv[0], &actions, nullptr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  close(out[1]);
  if (rc != 0) {
    close(out[0]);
    return rc;
  }
  *out_fd = out[0];
  return 0;
}

// A `strata serve` child process. Its stdout (the start-up line and logs) is read on a
// thread so the child never blocks on a full pipe; stderr is inherited.
class ServeProcess {
 public:
  // Starts the binary with `args` and an environment without STRATA_* / DYN_KVBM_*
  // variables (the test's flags alone decide the configuration), and waits for the
  // start-up line. Returns false (with a test failure) when the server does not come up.
  bool Start(const std::vector<std::string>& args) {
    std::vector<std::string> argv_s = {STRATA_CLI, "serve"};
    argv_s.insert(argv_s.end(), args.begin(), args.end());
    // Its own metrics port: any free one, so no fixed port (6880) can collide.
    int out = -1;
    const int rc = SpawnWithCleanEnv(std::move(argv_s), {"STRATA_METRICS_PORT=0"}, &pid_, &out);
    if (rc != 0) {
      ADD_FAILURE() << "spawning " << STRATA_CLI << ": " << std::strerror(rc);
      return false;
    }
    reader_ = std::thread([this, fd = out] { ReadOutput(fd); });

    std::unique_lock lock(mu_);
    if (!cv_.wait_for(lock, kStartDeadline, [&] { return port_ != 0 || eof_; })) {
      ADD_FAILURE() << "no start-up line within the deadline; output so far:\n" << output_;
      return false;
    }
    if (port_ == 0) {
      ADD_FAILURE() << "strata serve exited before it was ready; output:\n" << output_;
      return false;
    }
    return true;
  }

  // Sends SIGTERM and waits for the exit status (a raw wait status), or nullopt on timeout.
  std::optional<int> Stop() {
    if (pid_ <= 0) return std::nullopt;
    kill(pid_, SIGTERM);
    const auto deadline = Clock::now() + kExitDeadline;
    int status = 0;
    for (;;) {
      const pid_t r = waitpid(pid_, &status, WNOHANG);
      if (r == pid_) break;
      if (r < 0 || Clock::now() > deadline) return std::nullopt;
      std::this_thread::sleep_for(10ms);
    }
    pid_ = -1;
    if (reader_.joinable()) reader_.join();
    return status;
  }

  ~ServeProcess() {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
    if (reader_.joinable()) reader_.join();
  }

  uint16_t port() const { return port_; }
  std::string ready_line() const {
    std::lock_guard lock(mu_);
    return ready_line_;
  }

 private:
  void ReadOutput(int fd) {
    char buf[4096];
    for (;;) {
      const ssize_t n = read(fd, buf, sizeof buf);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      std::fwrite(buf, 1, static_cast<size_t>(n), stdout);  // the server's log, for failures
      std::lock_guard lock(mu_);
      output_.append(buf, static_cast<size_t>(n));
      const std::string marker = "strata serve: ready at http://";
      const size_t at = output_.find(marker);
      const size_t eol = at == std::string::npos ? at : output_.find('\n', at);
      if (port_ == 0 && eol != std::string::npos) {
        ready_line_ = output_.substr(at, eol - at);
        // "...http://127.0.0.1:PORT | ...": the port follows the last ':' before a space.
        const size_t host_end = ready_line_.find(' ', marker.size());
        const std::string url = ready_line_.substr(marker.size(), host_end - marker.size());
        port_ = static_cast<uint16_t>(std::atoi(url.substr(url.rfind(':') + 1).c_str()));
        cv_.notify_all();
      }
    }
    close(fd);
    std::lock_guard lock(mu_);
    eof_ = true;
    cv_.notify_all();
  }

  pid_t pid_ = -1;
  std::thread reader_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::string output_;
  std::string ready_line_;
  uint16_t port_ = 0;
  bool eof_ = false;
};

struct HttpResponse {
  int status = 0;
  std::string body;  // de-chunked
  // Seconds from sending the request to the first byte of the first SSE "data:" event
  // (streams), or to the end of the response.
  double first_event_seconds = -1;
};

// Decodes a chunked transfer-encoded body; returns what it could on a malformed one.
inline std::string Dechunk(std::string_view raw) {
  std::string out;
  size_t i = 0;
  while (i < raw.size()) {
    const size_t eol = raw.find("\r\n", i);
    if (eol == std::string_view::npos) break;
    const size_t n = std::strtoul(std::string(raw.substr(i, eol - i)).c_str(), nullptr, 16);
    if (n == 0) break;
    out.append(raw.substr(eol + 2, n));
    i = eol + 2 + n + 2;
  }
  return out;
}

// One HTTP/1.1 request on a fresh connection ("Connection: close"), read to the end.
inline HttpResponse Request(uint16_t port, const std::string& method, const std::string& path,
                            const std::string& body = {}) {
  HttpResponse res;
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    ADD_FAILURE() << "socket: " << std::strerror(errno);
    return res;
  }
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    close(fd);
    return res;  // status 0: not (yet) listening
  }
  std::string req = method + " " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n";
  if (!body.empty())
    req +=
        "Content-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) + "\r\n";
  req += "\r\n" + body;
  const auto start = Clock::now();
  for (size_t sent = 0; sent < req.size();) {
    const ssize_t n = send(fd, req.data() + sent, req.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) {
      close(fd);
      ADD_FAILURE() << "send: " << std::strerror(errno);
      return res;
    }
    sent += static_cast<size_t>(n);
  }

  std::string raw;
  size_t header_end = std::string::npos;
  const auto deadline = start + kRequestDeadline;
  char buf[16384];
  for (;;) {
    pollfd p{fd, POLLIN, 0};
    const int ready = poll(&p, 1, 100);
    if (Clock::now() > deadline) {
      ADD_FAILURE() << method << " " << path << ": no complete response within the deadline";
      break;
    }
    if (ready <= 0) continue;
    const ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    raw.append(buf, static_cast<size_t>(n));
    if (header_end == std::string::npos) header_end = raw.find("\r\n\r\n");
    if (res.first_event_seconds < 0 && header_end != std::string::npos &&
        raw.find("data: ", header_end) != std::string::npos)
      res.first_event_seconds = std::chrono::duration<double>(Clock::now() - start).count();
  }
  close(fd);
  if (header_end == std::string::npos) return res;
  const std::string head = raw.substr(0, header_end);
  std::sscanf(head.c_str(), "HTTP/1.%*d %d", &res.status);
  std::string lower_head = head;
  for (char& c : lower_head) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  const std::string_view payload = std::string_view(raw).substr(header_end + 4);
  res.body = lower_head.find("transfer-encoding: chunked") != std::string::npos
                 ? Dechunk(payload)
                 : std::string(payload);
  if (res.first_event_seconds < 0)
    res.first_event_seconds = std::chrono::duration<double>(Clock::now() - start).count();
  return res;
}

struct Completion {
  std::string text;
  json usage;
  double ttft_seconds = -1;
};

// A streamed /v1/completions request: the concatenated text, the usage event, and the
// time to the first token's event.
inline Completion StreamCompletion(uint16_t port, const std::string& prompt, int max_tokens) {
  const json request = {{"prompt", prompt},
                        {"max_tokens", max_tokens},
                        {"temperature", 0},
                        {"stream", true},
                        {"stream_options", {{"include_usage", true}}}};
  const HttpResponse res = Request(port, "POST", "/v1/completions", request.dump());
  Completion c;
  EXPECT_EQ(res.status, 200) << res.body;
  c.ttft_seconds = res.first_event_seconds;
  size_t i = 0;
  bool done = false;
  while ((i = res.body.find("data: ", i)) != std::string::npos) {
    const size_t end = res.body.find("\n\n", i);
    const std::string data = res.body.substr(i + 6, end - i - 6);
    i = end;
    if (data == "[DONE]") {
      done = true;
      break;
    }
    const json event = json::parse(data, nullptr, /*allow_exceptions=*/false);
    EXPECT_FALSE(event.is_discarded()) << data;
    if (event.is_discarded()) break;
    if (event.contains("usage") && event["usage"].is_object()) c.usage = event["usage"];
    if (event.contains("choices") && !event["choices"].empty())
      c.text += event["choices"][0].value("text", "");
  }
  EXPECT_TRUE(done) << "the stream did not end with [DONE]: " << res.body;
  return c;
}

// A non-streamed /v1/completions request, with a cache_salt when `salt` is not empty.
inline Completion Complete(uint16_t port, const std::string& prompt, int max_tokens,
                           const std::string& salt = {}) {
  json request = {{"prompt", prompt}, {"max_tokens", max_tokens}, {"temperature", 0}};
  if (!salt.empty()) request["cache_salt"] = salt;
  const HttpResponse res = Request(port, "POST", "/v1/completions", request.dump());
  Completion c;
  EXPECT_EQ(res.status, 200) << res.body;
  const json reply = json::parse(res.body, nullptr, /*allow_exceptions=*/false);
  if (reply.is_discarded() || !reply.contains("choices")) {
    ADD_FAILURE() << "not a completion: " << res.body;
    return c;
  }
  c.text = reply["choices"][0].value("text", "");
  c.usage = reply["usage"];
  return c;
}

inline uint32_t CachedTokens(const json& usage) {
  if (!usage.contains("prompt_tokens_details")) return 0;
  return usage["prompt_tokens_details"].value("cached_tokens", 0u);
}

// Polls GET /health until it answers 200.
inline bool WaitHealthy(uint16_t port) {
  const auto deadline = Clock::now() + kStartDeadline;
  while (Clock::now() < deadline) {
    if (Request(port, "GET", "/health").status == 200) return true;
    std::this_thread::sleep_for(20ms);
  }
  return false;
}

// A deterministic ~1.5K-character (so ~1.5K byte-token) prompt of varied English text.
inline std::string LongPrompt() {
  static const char* const kWords[] = {"cache", "block", "tier",  "host",   "disk",  "prefix",
                                       "token", "layer", "model", "engine", "reuse", "offload"};
  std::string s = "Summarise the following notes about KV-cache offload. ";
  uint32_t x = 12345;
  while (s.size() < 1536) {
    x = x * 1103515245u + 12345u;
    s += kWords[(x >> 16) % 12];
    s += (x >> 8) % 7 == 0 ? ". " : " ";
  }
  return s;
}

class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/strata-serve-e2e-XXXXXX";
    if (const char* made = mkdtemp(tmpl)) path_ = made;
    EXPECT_FALSE(path_.empty()) << std::strerror(errno);
  }
  ~TempDir() {
    std::error_code ec;
    if (!path_.empty()) std::filesystem::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

inline void ExpectCleanExit(ServeProcess& server) {
  const std::optional<int> status = server.Stop();
  ASSERT_TRUE(status.has_value()) << "strata serve did not exit after SIGTERM";
  EXPECT_TRUE(WIFEXITED(*status)) << "wait status " << *status;
  if (WIFEXITED(*status)) {
    EXPECT_EQ(WEXITSTATUS(*status), 0);
  }
}

}  // namespace strata::serve_test
