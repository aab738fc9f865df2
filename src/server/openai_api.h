// The OpenAI wire format of `strata serve`: request parsing and validation into a
// GenerationRequest (prompts tokenized, chats rendered, by the generator's model), and the JSON
// bodies of responses, stream chunks
// and errors. Pure functions over strings, so the format is tested without sockets; the
// HTTP plumbing lives in server.cc.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "engine/generator.h"

namespace strata::server {

// An error as OpenAI sends it: {"error": {"message", "type", "param", "code"}}.
struct ApiError {
  int http_status = 400;
  std::string message;
  std::string type = "invalid_request_error";
  std::string param;  // the offending request field; "" = null
  std::string code;   // a machine-readable reason ("context_length_exceeded"); "" = null
};

enum class Endpoint : uint8_t { kCompletions, kChatCompletions };

// "/v1/completions" or "/v1/chat/completions".
std::string_view EndpointPath(Endpoint endpoint);

// A validated request, ready to submit.
struct ParsedRequest {
  std::vector<TokenId> prompt;
  engine::SamplingParams sampling;
  std::string cache_salt;
  bool stream = false;
  bool include_usage = false;  // stream_options.include_usage
};

using engine::ChatMessage;

// What one request may cost before it is refused (400), so that a body's parse costs a
// small multiple of its size however it is shaped. A SAX pass over the body checks the
// JSON limits before any document is built; a prompt's byte length is checked against
// the context (at most max_token_bytes() per token) before it is tokenized.
inline constexpr uint32_t kMaxJsonDepth = 32;        // nested arrays/objects
inline constexpr uint32_t kMaxJsonValues = 1 << 17;  // values of any kind, each token id one
inline constexpr uint32_t kMaxJsonKeys = 8192;       // object members, over the whole body
inline constexpr uint32_t kMaxStopSequences = 16;
inline constexpr uint32_t kMaxStopBytes = 1024;  // per stop sequence

// Parses and validates a request body of `endpoint`. `served_model` is the one name a
// request's "model" may carry (absent is fine too). The prompt is tokenized with
// `generator`, and checked against its max_context_tokens. JSON null counts as absent
// for every optional field. Unknown fields are ignored; fields that ask for something
// this server cannot do (n > 1, best_of > 1, echo, logprobs) are rejected, and so are
// bodies over the limits above.
std::variant<ParsedRequest, ApiError> ParseRequest(Endpoint endpoint, std::string_view body,
                                                   const engine::Generator& generator,
                                                   std::string_view served_model);

// What identifies one response and all of its stream chunks.
struct ResponseContext {
  Endpoint endpoint = Endpoint::kCompletions;
  std::string id;       // "cmpl-..." / "chatcmpl-..."
  int64_t created = 0;  // Unix seconds
  std::string model;
};

struct Usage {
  uint32_t prompt_tokens = 0;
  uint32_t cached_tokens = 0;
  uint32_t completion_tokens = 0;
};

// OpenAI's finish_reason for a final event ("stop", "length", ...).
std::string_view FinishReasonString(engine::FinishReason reason);

// Non-streaming response body: text_completion or chat.completion.
std::string CompletionBody(const ResponseContext& ctx, std::string_view text,
                           engine::FinishReason finish_reason, const Usage& usage);

// Server-Sent Events, each a whole "data: ...\n\n" frame.
// The chunk carrying `text` (for chat, the first one also carries role "assistant").
std::string StreamTextEvent(const ResponseContext& ctx, std::string_view text, bool first);
// The last choice chunk: empty text / delta and the finish_reason.
std::string StreamFinishEvent(const ResponseContext& ctx, engine::FinishReason finish_reason);
// stream_options.include_usage: a chunk with no choices and the usage.
std::string StreamUsageEvent(const ResponseContext& ctx, const Usage& usage);
// An error in the middle of a stream (after the 200 went out).
std::string StreamErrorEvent(const ApiError& error);
inline constexpr std::string_view kStreamDoneEvent = "data: [DONE]\n\n";

// {"error": {...}} of `error`.
std::string ErrorBody(const ApiError& error);

// The ApiError for a Status from Generator::Submit or a failed generation:
// InvalidArgument -> 400, ResourceExhausted -> 429, Unavailable -> 503, else 500.
ApiError ErrorFromStatus(const Status& status);

// GET /v1/models.
std::string ModelsBody(std::string_view model, int64_t created);

}  // namespace strata::server
