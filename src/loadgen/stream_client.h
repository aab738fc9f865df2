// A streaming OpenAI chat-completions client for benchmarks: sends one request with
// "stream": true and times what arrives — the first non-empty content chunk (time to
// first token) and every later one (inter-token latency) — as the bytes come off the socket.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "loadgen/workload.h"
#include "strata/status.h"

namespace strata::loadgen {

struct StreamTiming {
  double ttft_s = 0;                 // send -> first non-empty content chunk
  double total_s = 0;                // send -> end of the stream
  std::vector<double> chunk_gaps_s;  // between consecutive non-empty content chunks
  std::string text;                  // the content, concatenated
  uint32_t prompt_tokens = 0;        // from the usage chunk (0 when the server sent none)
  uint32_t completion_tokens = 0;
  uint32_t cached_tokens = 0;  // usage.prompt_tokens_details.cached_tokens
  std::string finish_reason;
};

struct ChatRequest {
  std::string model;
  std::vector<ChatMessage> messages;
  uint32_t max_tokens = 100;
  double temperature = 0;
  std::vector<std::pair<std::string, std::string>> headers;  // extra HTTP headers
};

class StreamClient {
 public:
  // `base_url`: "http://host:port" (a trailing "/v1" or "/" is dropped).
  StreamClient(std::string base_url, std::string api_key, double timeout_s);

  // Sends `request` and reads the whole stream. Unavailable when the server cannot be
  // reached, IoError when the stream breaks, InvalidArgument with the server's error
  // message on a 4xx, Internal on 5xx or an error event in the stream.
  Result<StreamTiming> Chat(const ChatRequest& request) const;

  // GET <base>/v1/models: the first model's id.
  Result<std::string> FirstModel() const;
  // GET of any URL on the same server or another ("http://host:port/path"): the body.
  static Result<std::string> Get(const std::string& url, double timeout_s);

  const std::string& base_url() const { return base_url_; }

 private:
  std::string base_url_;
  std::string api_key_;
  double timeout_s_;
};

// "http://127.0.0.1:8000/v1/" -> "http://127.0.0.1:8000".
std::string NormalizeBaseUrl(std::string url);

}  // namespace strata::loadgen
