#include "loadgen/stream_client.h"

#include <httplib.h>

#include <chrono>
#include <utility>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace strata::loadgen {
namespace {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

double Since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// Splits "http://host:port/path" into the scheme+authority and the path.
void SplitUrl(const std::string& url, std::string* origin, std::string* path) {
  const size_t scheme = url.find("://");
  const size_t slash = url.find('/', scheme == std::string::npos ? 0 : scheme + 3);
  *origin = slash == std::string::npos ? url : url.substr(0, slash);
  *path = slash == std::string::npos ? "/" : url.substr(slash);
}

void SetTimeouts(httplib::Client& c, double timeout_s) {
  const auto sec = static_cast<time_t>(timeout_s);
  const auto usec = static_cast<time_t>((timeout_s - static_cast<double>(sec)) * 1e6);
  c.set_connection_timeout(std::min<time_t>(sec, 10), usec);
  c.set_read_timeout(sec, usec);
  c.set_write_timeout(sec, usec);
}

// Server-Sent Events: "data: <payload>" lines, events separated by a blank line.
class SseParser {
 public:
  // Feeds bytes; calls `on_data` with each complete event's data.
  template <typename F>
  bool Feed(const char* data, size_t n, F&& on_data) {
    buffer_.append(data, n);
    for (;;) {
      size_t end = buffer_.find("\n\n");
      size_t sep = 2;
      if (const size_t crlf = buffer_.find("\r\n\r\n"); crlf < end) {
        end = crlf;
        sep = 4;
      }
      if (end == std::string::npos) return true;
      std::string event = buffer_.substr(0, end);
      buffer_.erase(0, end + sep);
      std::string payload;
      size_t pos = 0;
      while (pos <= event.size()) {
        size_t nl = event.find('\n', pos);
        if (nl == std::string::npos) nl = event.size();
        std::string_view line(event.data() + pos, nl - pos);
        if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
        if (line.starts_with("data:")) {
          line.remove_prefix(5);
          if (line.starts_with(' ')) line.remove_prefix(1);
          if (!payload.empty()) payload += '\n';
          payload += line;
        }
        pos = nl + 1;
      }
      if (!payload.empty() && !on_data(payload)) return false;
    }
  }

 private:
  std::string buffer_;
};

std::string ErrorMessage(const std::string& body) {
  const json j = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (j.is_object() && j.contains("error") && j["error"].is_object() &&
      j["error"].contains("message") && j["error"]["message"].is_string())
    return j["error"]["message"].get<std::string>();
  return body.substr(0, 200);
}

}  // namespace

std::string NormalizeBaseUrl(std::string url) {
  while (!url.empty() && url.back() == '/') url.pop_back();
  if (url.ends_with("/v1")) url.resize(url.size() - 3);
  while (!url.empty() && url.back() == '/') url.pop_back();
  return url;
}

StreamClient::StreamClient(std::string base_url, std::string api_key, double timeout_s)
    : base_url_(NormalizeBaseUrl(std::move(base_url))),
      api_key_(std::move(api_key)),
      timeout_s_(timeout_s) {}

Result<StreamTiming> StreamClient::Chat(const ChatRequest& request) const {
  json messages = json::array();
  for (const ChatMessage& m : request.messages)
    messages.push_back({{"role", m.role}, {"content", m.content}});
  json body = {{"model", request.model},
               {"messages", std::move(messages)},
               {"max_tokens", request.max_tokens},
               {"temperature", request.temperature},
               {"stream", true},
               {"stream_options", {{"include_usage", true}}}};

  httplib::Client client(base_url_);
  SetTimeouts(client, timeout_s_);
  httplib::Request req;
  req.method = "POST";
  req.path = "/v1/chat/completions";
  req.body = body.dump();
  req.set_header("Content-Type", "application/json");
  req.set_header("Accept", "text/event-stream");
  if (!api_key_.empty()) req.set_header("Authorization", "Bearer " + api_key_);
  for (const auto& [k, v] : request.headers) req.set_header(k, v);

  StreamTiming t;
  Status stream_error;
  bool got_first = false;
  Clock::time_point last_chunk;
  SseParser sse;
  std::string error_body;  // a non-200 answer's body
  int http_status = 0;
  req.response_handler = [&](const httplib::Response& r) {
    http_status = r.status;
    return true;
  };
  const Clock::time_point t0 = Clock::now();
  req.content_receiver = [&](const char* data, size_t n, uint64_t, uint64_t) {
    if (http_status != 200) {
      error_body.append(data, n);
      return true;
    }
    return sse.Feed(data, n, [&](const std::string& payload) {
      if (payload == "[DONE]") return true;
      const json j = json::parse(payload, nullptr, /*allow_exceptions=*/false);
      if (!j.is_object()) {
        stream_error = Status::Internal("unparseable stream event: " + payload.substr(0, 120));
        return false;
      }
      if (j.contains("error")) {
        stream_error = Status::Internal("error event in the stream: " + ErrorMessage(payload));
        return false;
      }
      if (const auto u = j.find("usage"); u != j.end() && u->is_object()) {
        t.prompt_tokens = u->value("prompt_tokens", 0u);
        t.completion_tokens = u->value("completion_tokens", 0u);
        if (const auto d = u->find("prompt_tokens_details"); d != u->end() && d->is_object())
          t.cached_tokens = d->value("cached_tokens", 0u);
      }
      const auto choices = j.find("choices");
      if (choices == j.end() || !choices->is_array() || choices->empty()) return true;
      const json& c = (*choices)[0];
      if (c.contains("finish_reason") && c["finish_reason"].is_string())
        t.finish_reason = c["finish_reason"].get<std::string>();
      const auto delta = c.find("delta");
      if (delta == c.end() || !delta->is_object()) return true;
      const auto content = delta->find("content");
      if (content == delta->end() || !content->is_string()) return true;
      const std::string& text = content->get_ref<const std::string&>();
      if (text.empty()) return true;
      const Clock::time_point now = Clock::now();
      if (!got_first) {
        t.ttft_s = std::chrono::duration<double>(now - t0).count();
        got_first = true;
      } else {
        t.chunk_gaps_s.push_back(std::chrono::duration<double>(now - last_chunk).count());
      }
      last_chunk = now;
      t.text += text;
      return true;
    });
  };
  httplib::Response res;
  httplib::Error err = httplib::Error::Success;
  const bool sent = client.send(req, res, err);
  t.total_s = Since(t0);
  if (!stream_error.ok()) return stream_error;
  if (http_status != 0 && http_status != 200) {
    const std::string msg = fmt::format("HTTP {}: {}", http_status, ErrorMessage(error_body));
    return http_status < 500 ? Status::InvalidArgument(msg) : Status::Internal(msg);
  }
  if (!sent) {
    const std::string what = httplib::to_string(err);
    if (http_status == 0)
      return Status::Unavailable(fmt::format("POST {}/v1/chat/completions: {}", base_url_, what));
    return Status::IoError(fmt::format("stream from {} broke: {}", base_url_, what), 0);
  }
  if (!got_first)
    return Status::Internal(fmt::format("the stream from {} carried no content", base_url_));
  return t;
}

Result<std::string> StreamClient::Get(const std::string& url, double timeout_s) {
  std::string origin, path;
  SplitUrl(url, &origin, &path);
  httplib::Client client(origin);
  SetTimeouts(client, timeout_s);
  auto res = client.Get(path.c_str());
  if (!res)
    return Status::Unavailable(fmt::format("GET {}: {}", url, httplib::to_string(res.error())));
  if (res->status != 200)
    return Status::Unavailable(fmt::format("GET {}: HTTP {}", url, res->status));
  return res->body;
}

Result<std::string> StreamClient::FirstModel() const {
  STRATA_ASSIGN_OR_RETURN(std::string body, Get(base_url_ + "/v1/models", timeout_s_));
  const json j = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object() || !j.contains("data") || !j["data"].is_array() || j["data"].empty() ||
      !j["data"][0].is_object() || !j["data"][0].contains("id") || !j["data"][0]["id"].is_string())
    return Status::InvalidArgument(
        fmt::format("{}/v1/models lists no model: {}", base_url_, body.substr(0, 200)));
  return j["data"][0]["id"].get<std::string>();
}

}  // namespace strata::loadgen
