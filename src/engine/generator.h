// Generator: what `strata serve` needs from an engine. The reference engine
// (src/engine/) implements it; the HTTP server (src/server/) depends only on this header,
// so either side can be tested alone (the server against a fake generator).
//
// Thread-safe: Submit and Cancel may be called from any thread. Callbacks run on the
// engine's scheduler thread: they must be quick and must not call back into the
// generator except Cancel.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "strata/block_key.h"  // TokenId
#include "strata/status.h"
#include "tokenizer/chat_template.h"

namespace strata::engine {

using tokenizer::ChatMessage;

struct SamplingParams {
  uint32_t max_tokens = 16;  // tokens to generate at most (>= 1)
  float temperature = 0.0f;  // 0 = greedy (argmax, ties to the lowest id)
  float top_p = 1.0f;        // nucleus sampling when temperature > 0
  uint64_t seed = 0;         // sampling RNG seed (temperature > 0)
  // Generation ends when the decoded text (as the client receives it: valid UTF-8, U+FFFD
  // where the model produced invalid bytes) ends with one of these; the stop string is not
  // part of the output. The model's end-of-generation tokens stop it too.
  std::vector<std::string> stop;
};

struct GenerationRequest {
  std::string request_id;  // unique among requests in flight
  std::vector<TokenId> prompt;
  SamplingParams sampling;
  std::string cache_salt;  // tenant isolation: reuse only between equal salts
};

enum class FinishReason : uint8_t { kNone, kStop, kLength, kCancelled, kError };
// "", "stop", "length", "cancelled", "error" (OpenAI's finish_reason values where they exist).
inline std::string_view FinishReasonName(FinishReason reason) {
  switch (reason) {
    case FinishReason::kNone:
      return "";
    case FinishReason::kStop:
      return "stop";
    case FinishReason::kLength:
      return "length";
    case FinishReason::kCancelled:
      return "cancelled";
    case FinishReason::kError:
      return "error";
  }
  return "";
}

// One event per generated token, then a final one (finished = true, which may carry a
// last token or none).
struct TokenEvent {
  bool has_token = false;
  TokenId token = 0;
  std::string text;  // the new text this token completes: whole UTF-8 characters (may be empty)
  bool finished = false;
  FinishReason finish_reason = FinishReason::kNone;
  Status error;  // set with kError
  // Usage, current as of this event.
  uint32_t prompt_tokens = 0;
  uint32_t cached_tokens = 0;  // prompt tokens whose KV came from Strata
  uint32_t completion_tokens = 0;
};

class Generator {
 public:
  virtual ~Generator() = default;
  // Model name reported by /v1/models.
  virtual std::string model_name() const = 0;
  // Largest prompt + max_tokens the engine accepts.
  virtual uint32_t max_context_tokens() const = 0;
  // Tokens of `text` in the model's vocabulary; the text of its special tokens ("<|im_end|>")
  // becomes those tokens. With add_bos, BOS comes first when the model's prompts start with
  // one (completion prompts); text from ApplyChatTemplate already carries it.
  virtual std::vector<TokenId> Encode(std::string_view text, bool add_bos) const = 0;
  // The prompt text of a chat in the model's own template, ending where the assistant's
  // reply begins.
  virtual std::string ApplyChatTemplate(const std::vector<ChatMessage>& messages) const = 0;
  // The most bytes of text one token stands for: a prompt of B bytes has at least
  // B / max_token_bytes() tokens, which lets a server refuse a prompt too long for the
  // context before tokenizing it.
  virtual uint32_t max_token_bytes() const = 0;
  virtual std::string Decode(std::span<const TokenId> tokens) const = 0;
  // Queues a request; `on_event` is called per token and once with finished = true.
  // InvalidArgument (empty prompt, too long, bad sampling values), ResourceExhausted
  // (queue full), AlreadyExists (request_id in flight): then on_event is never called.
  virtual Status Submit(GenerationRequest request,
                        std::function<void(const TokenEvent&)> on_event) = 0;
  // Stops a request (client went away); its final event says kCancelled. No-op if unknown.
  virtual void Cancel(std::string_view request_id) = 0;
};

}  // namespace strata::engine
