// The OpenAI wire format: request validation and response bodies (see openai_api.h).
#include "server/openai_api.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <optional>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace strata::server {

namespace {

using nlohmann::json;
using nlohmann::ordered_json;  // responses keep OpenAI's field order, easier to read

// Generated text is whatever bytes the model produced; invalid UTF-8 becomes U+FFFD
// instead of an exception in the middle of a response.
std::string Dump(const ordered_json& j) {
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

ApiError Invalid(std::string param, std::string message, std::string code = "") {
  return ApiError{400, std::move(message), "invalid_request_error", std::move(param),
                  std::move(code)};
}

// The field `name` of `obj`, or nullptr when absent or null (clients send null for
// "unset").
const json* Field(const json& obj, const char* name) {
  auto it = obj.find(name);
  if (it == obj.end() || it->is_null()) return nullptr;
  return &*it;
}

// Each getter leaves *out unchanged when the field is absent.
std::optional<ApiError> GetInt(const json& obj, const char* name, int64_t lo, int64_t hi,
                               int64_t* out) {
  const json* v = Field(obj, name);
  if (v == nullptr) return std::nullopt;
  if (!v->is_number_integer()) return Invalid(name, fmt::format("'{}' must be an integer", name));
  // Unsigned values above int64 max are out of every range we accept.
  if (v->is_number_unsigned() &&
      v->get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
    return Invalid(name, fmt::format("'{}' must be between {} and {}", name, lo, hi));
  const int64_t x = v->get<int64_t>();
  if (x < lo || x > hi)
    return Invalid(name, fmt::format("'{}' must be between {} and {}", name, lo, hi));
  *out = x;
  return std::nullopt;
}

std::optional<ApiError> GetNumber(const json& obj, const char* name, double lo, double hi,
                                  bool lo_open, double* out) {
  const json* v = Field(obj, name);
  if (v == nullptr) return std::nullopt;
  if (!v->is_number()) return Invalid(name, fmt::format("'{}' must be a number", name));
  const double x = v->get<double>();
  if (!std::isfinite(x) || x < lo || x > hi || (lo_open && x == lo))
    return Invalid(name,
                   fmt::format("'{}' must be in {}{}, {}]", name, lo_open ? "(" : "[", lo, hi));
  *out = x;
  return std::nullopt;
}

std::optional<ApiError> GetBool(const json& obj, const char* name, bool* out) {
  const json* v = Field(obj, name);
  if (v == nullptr) return std::nullopt;
  if (!v->is_boolean()) return Invalid(name, fmt::format("'{}' must be a boolean", name));
  *out = v->get<bool>();
  return std::nullopt;
}

std::optional<ApiError> GetString(const json& obj, const char* name, std::string* out) {
  const json* v = Field(obj, name);
  if (v == nullptr) return std::nullopt;
  if (!v->is_string()) return Invalid(name, fmt::format("'{}' must be a string", name));
  *out = v->get<std::string>();
  return std::nullopt;
}

bool IsTokenArray(const json& v) {
  if (!v.is_array() || v.empty()) return false;
  for (const json& t : v)
    if (!t.is_number_integer()) return false;
  return true;
}

// The SAX pass that refuses a body over the JSON limits before a document is built: it
// keeps counters only, so deep nesting or a million tiny values cost nothing but time.
class CostCheck final : public nlohmann::json_sax<json> {
 public:
  std::optional<ApiError> error;  // over a limit; nullopt with syntax_error for bad JSON
  bool syntax_error = false;

  bool null() override { return Value(); }
  bool boolean(bool) override { return Value(); }
  bool number_integer(number_integer_t) override { return Value(); }
  bool number_unsigned(number_unsigned_t) override { return Value(); }
  bool number_float(number_float_t, const string_t&) override { return Value(); }
  bool string(string_t&) override { return Value(); }
  bool binary(binary_t&) override { return Value(); }
  bool start_object(std::size_t) override { return Open(); }
  bool key(string_t&) override {
    if (++keys_ <= kMaxJsonKeys) return true;
    return Over(fmt::format("the request body has more than {} object members", kMaxJsonKeys));
  }
  bool end_object() override { return Close(); }
  bool start_array(std::size_t) override { return Open(); }
  bool end_array() override { return Close(); }
  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception&) override {
    syntax_error = true;
    return false;
  }

 private:
  bool Value() {
    if (++values_ <= kMaxJsonValues) return true;
    return Over(fmt::format("the request body has more than {} JSON values", kMaxJsonValues));
  }
  bool Open() {
    if (++depth_ > kMaxJsonDepth)
      return Over(fmt::format("the request body nests deeper than {} levels", kMaxJsonDepth));
    return Value();
  }
  bool Close() {
    --depth_;
    return true;
  }
  bool Over(std::string message) {
    error = ApiError{400, std::move(message), "invalid_request_error", "", "request_too_complex"};
    return false;
  }

  uint32_t depth_ = 0;
  uint64_t values_ = 0;
  uint64_t keys_ = 0;
};

ApiError TooLong(const char* param, uint64_t context, uint64_t prompt_tokens, uint64_t max_tokens) {
  return Invalid(param,
                 fmt::format("This model's maximum context length is {} tokens; the request "
                             "asks for {} ({} in the prompt, {} to generate)",
                             context, prompt_tokens + max_tokens, prompt_tokens, max_tokens),
                 "context_length_exceeded");
}

// Refuses, before tokenizing, a prompt text that must have more tokens than the context
// holds.
std::optional<ApiError> CheckTextFits(const char* param, std::string_view text,
                                      const engine::Generator& generator) {
  const uint64_t context = generator.max_context_tokens();
  const uint64_t at_least = text.size() / std::max<uint32_t>(1, generator.max_token_bytes());
  if (at_least < context) return std::nullopt;
  return Invalid(param,
                 fmt::format("This model's maximum context length is {} tokens; the prompt has "
                             "{} bytes, at least {} tokens",
                             context, text.size(), at_least),
                 "context_length_exceeded");
}

// The prompt text's tokens, unless it cannot fit. Completion prompts get the model's BOS;
// rendered chats carry their own.
std::optional<ApiError> EncodeText(const char* param, const std::string& text, bool add_bos,
                                   const engine::Generator& generator, std::vector<TokenId>* out) {
  if (auto e = CheckTextFits(param, text, generator)) return e;
  *out = generator.Encode(text, add_bos);
  return std::nullopt;
}

std::optional<ApiError> TokensFromJson(const json& v, std::vector<TokenId>* out) {
  out->reserve(v.size());
  for (const json& t : v) {
    if (t.is_number_unsigned() ? t.get<uint64_t>() > uint64_t{INT32_MAX}
                               : (t.get<int64_t>() < 0 || t.get<int64_t>() > INT32_MAX))
      return Invalid("prompt", "token ids in 'prompt' must be between 0 and 2147483647");
    out->push_back(static_cast<TokenId>(t.get<int64_t>()));
  }
  return std::nullopt;
}

// "prompt": a string, an array of one string, a token array, or an array of one token
// array.
std::optional<ApiError> ParsePrompt(const json& body, const engine::Generator& generator,
                                    std::vector<TokenId>* out) {
  const json* p = Field(body, "prompt");
  if (p == nullptr) return Invalid("prompt", "'prompt' is required");
  if (p->is_string())
    return EncodeText("prompt", p->get_ref<const std::string&>(), true, generator, out);
  if (IsTokenArray(*p)) return TokensFromJson(*p, out);
  if (p->is_array() && p->size() == 1) {
    const json& only = (*p)[0];
    if (only.is_string())
      return EncodeText("prompt", only.get_ref<const std::string&>(), true, generator, out);
    if (IsTokenArray(only)) return TokensFromJson(only, out);
  }
  if (p->is_array() && p->size() > 1)
    return Invalid("prompt", "batched prompts are not supported: send one prompt per request");
  return Invalid("prompt",
                 "'prompt' must be a string, an array of one string, or an array of token ids");
}

std::optional<ApiError> ParseMessages(const json& body, std::vector<ChatMessage>* out) {
  const json* m = Field(body, "messages");
  if (m == nullptr) return Invalid("messages", "'messages' is required");
  if (!m->is_array() || m->empty())
    return Invalid("messages", "'messages' must be a non-empty array");
  for (size_t i = 0; i < m->size(); ++i) {
    const json& msg = (*m)[i];
    const std::string param = fmt::format("messages[{}]", i);
    if (!msg.is_object()) return Invalid(param, param + " must be an object");
    ChatMessage cm;
    const json* role = Field(msg, "role");
    if (role == nullptr || !role->is_string())
      return Invalid(param + ".role", param + ".role must be a string");
    cm.role = role->get<std::string>();
    if (cm.role != "system" && cm.role != "developer" && cm.role != "user" &&
        cm.role != "assistant" && cm.role != "tool")
      return Invalid(param + ".role",
                     fmt::format("{}.role '{}' is not one of system, developer, user, "
                                 "assistant, tool",
                                 param, cm.role));
    const json* content = Field(msg, "content");
    if (content == nullptr) {
      // Assistant turns that only called tools carry no content.
    } else if (content->is_string()) {
      cm.content = content->get<std::string>();
    } else if (content->is_array()) {
      for (const json& part : *content) {
        const json* type = part.is_object() ? Field(part, "type") : nullptr;
        const json* text = part.is_object() ? Field(part, "text") : nullptr;
        if (type == nullptr || *type != "text" || text == nullptr || !text->is_string())
          return Invalid(param + ".content",
                         param + ".content parts must be {\"type\": \"text\", \"text\": ...}");
        cm.content += text->get<std::string>();
      }
    } else {
      return Invalid(param + ".content",
                     param + ".content must be a string or an array of text parts");
    }
    out->push_back(std::move(cm));
  }
  return std::nullopt;
}

// Everything but the prompt and max_tokens, shared by both endpoints.
std::optional<ApiError> ParseCommon(Endpoint endpoint, const json& body,
                                    std::string_view served_model, ParsedRequest* req) {
  if (const json* model = Field(body, "model")) {
    if (!model->is_string()) return Invalid("model", "'model' must be a string");
    if (*model != served_model)
      return ApiError{404,
                      fmt::format("The model '{}' does not exist; this server serves '{}'",
                                  model->get<std::string>(), served_model),
                      "invalid_request_error", "model", "model_not_found"};
  }
  int64_t n = 1;
  if (auto e = GetInt(body, "n", std::numeric_limits<int64_t>::min(),
                      std::numeric_limits<int64_t>::max(), &n))
    return e;
  if (n != 1) return Invalid("n", "only n = 1 is supported");
  if (endpoint == Endpoint::kCompletions) {
    int64_t best_of = 1;
    if (auto e = GetInt(body, "best_of", std::numeric_limits<int64_t>::min(),
                        std::numeric_limits<int64_t>::max(), &best_of))
      return e;
    if (best_of != 1) return Invalid("best_of", "only best_of = 1 is supported");
    bool echo = false;
    if (auto e = GetBool(body, "echo", &echo)) return e;
    if (echo) return Invalid("echo", "'echo' is not supported");
  }
  if (const json* lp = Field(body, "logprobs")) {
    if (!(*lp == false || *lp == 0)) return Invalid("logprobs", "'logprobs' is not supported");
  }

  if (auto e = GetBool(body, "stream", &req->stream)) return e;
  if (const json* so = Field(body, "stream_options")) {
    if (!so->is_object()) return Invalid("stream_options", "'stream_options' must be an object");
    if (auto e = GetBool(*so, "include_usage", &req->include_usage)) {
      e->param = "stream_options.include_usage";
      return e;
    }
  }

  double temperature = req->sampling.temperature;
  if (auto e = GetNumber(body, "temperature", 0.0, 2.0, false, &temperature)) return e;
  req->sampling.temperature = static_cast<float>(temperature);
  double top_p = req->sampling.top_p;
  if (auto e = GetNumber(body, "top_p", 0.0, 1.0, /*lo_open=*/true, &top_p)) return e;
  req->sampling.top_p = static_cast<float>(top_p);
  if (const json* seed = Field(body, "seed")) {
    if (!seed->is_number_integer()) return Invalid("seed", "'seed' must be an integer");
    // Negative seeds are fine: any 64-bit pattern seeds the RNG.
    req->sampling.seed = seed->is_number_unsigned() ? seed->get<uint64_t>()
                                                    : static_cast<uint64_t>(seed->get<int64_t>());
  }

  if (const json* stop = Field(body, "stop")) {
    if (stop->is_string()) {
      if (!stop->get_ref<const std::string&>().empty())
        req->sampling.stop.push_back(stop->get<std::string>());
    } else if (stop->is_array()) {
      if (stop->size() > kMaxStopSequences)
        return Invalid("stop", fmt::format("'stop' may hold at most {} sequences; it has {}",
                                           kMaxStopSequences, stop->size()));
      for (const json& s : *stop) {
        if (!s.is_string())
          return Invalid("stop", "'stop' must be a string or an array of strings");
        if (!s.get_ref<const std::string&>().empty())
          req->sampling.stop.push_back(s.get<std::string>());
      }
    } else {
      return Invalid("stop", "'stop' must be a string or an array of strings");
    }
    for (const std::string& s : req->sampling.stop)
      if (s.size() > kMaxStopBytes)
        return Invalid("stop", fmt::format("each 'stop' sequence may have at most {} bytes; one "
                                           "has {}",
                                           kMaxStopBytes, s.size()));
  }

  if (auto e = GetString(body, "cache_salt", &req->cache_salt)) return e;
  // "user" and the penalties are accepted and ignored.
  return std::nullopt;
}

ordered_json UsageJson(const Usage& usage) {
  return ordered_json{
      {"prompt_tokens", usage.prompt_tokens},
      {"completion_tokens", usage.completion_tokens},
      {"total_tokens", uint64_t{usage.prompt_tokens} + usage.completion_tokens},
      {"prompt_tokens_details", ordered_json{{"cached_tokens", usage.cached_tokens}}}};
}

ordered_json Envelope(const ResponseContext& ctx, bool chunk) {
  const bool chat = ctx.endpoint == Endpoint::kChatCompletions;
  return ordered_json{
      {"id", ctx.id},
      {"object", chat ? (chunk ? "chat.completion.chunk" : "chat.completion") : "text_completion"},
      {"created", ctx.created},
      {"model", ctx.model}};
}

std::string SseFrame(const ordered_json& j) {
  return "data: " + Dump(j) + "\n\n";
}

}  // namespace

std::string_view EndpointPath(Endpoint endpoint) {
  return endpoint == Endpoint::kChatCompletions ? "/v1/chat/completions" : "/v1/completions";
}

std::variant<ParsedRequest, ApiError> ParseRequest(Endpoint endpoint, std::string_view body,
                                                   const engine::Generator& generator,
                                                   std::string_view served_model) {
  // What the body would cost first, then the document.
  CostCheck cost;
  const bool well_formed = json::sax_parse(body, &cost);
  if (cost.error) return *cost.error;
  if (!well_formed || cost.syntax_error) return Invalid("", "the request body is not valid JSON");
  const json j = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return Invalid("", "the request body is not valid JSON");
  if (!j.is_object()) return Invalid("", "the request body must be a JSON object");

  ParsedRequest req;
  if (auto e = ParseCommon(endpoint, j, served_model, &req)) return *e;

  const char* prompt_param = "prompt";
  if (endpoint == Endpoint::kCompletions) {
    if (auto e = ParsePrompt(j, generator, &req.prompt)) return *e;
  } else {
    prompt_param = "messages";
    std::vector<ChatMessage> messages;
    if (auto e = ParseMessages(j, &messages)) return *e;
    if (auto e = EncodeText("messages", generator.ApplyChatTemplate(messages), false, generator,
                            &req.prompt))
      return *e;
  }
  if (req.prompt.empty()) return Invalid(prompt_param, "the prompt is empty");

  const uint64_t context = generator.max_context_tokens();
  const uint64_t prompt_tokens = req.prompt.size();
  auto too_long = [&](uint64_t max_tokens, const char* param) {
    return TooLong(param, context, prompt_tokens, max_tokens);
  };
  if (prompt_tokens >= context) return too_long(1, prompt_param);

  // Completions default to OpenAI's 16 tokens; chat to the rest of the context.
  int64_t max_tokens =
      endpoint == Endpoint::kCompletions ? 16 : static_cast<int64_t>(context - prompt_tokens);
  const char* max_param = "max_tokens";
  if (endpoint == Endpoint::kChatCompletions && Field(j, "max_completion_tokens") != nullptr)
    max_param = "max_completion_tokens";
  if (auto e = GetInt(j, max_param, 1, std::numeric_limits<uint32_t>::max(), &max_tokens))
    return *e;
  if (prompt_tokens + static_cast<uint64_t>(max_tokens) > context)
    return too_long(static_cast<uint64_t>(max_tokens), max_param);
  req.sampling.max_tokens = static_cast<uint32_t>(max_tokens);
  return req;
}

std::string_view FinishReasonString(engine::FinishReason reason) {
  return engine::FinishReasonName(reason);
}

std::string CompletionBody(const ResponseContext& ctx, std::string_view text,
                           engine::FinishReason finish_reason, const Usage& usage) {
  ordered_json j = Envelope(ctx, /*chunk=*/false);
  ordered_json choice{{"index", 0}};
  if (ctx.endpoint == Endpoint::kChatCompletions)
    choice["message"] = ordered_json{{"role", "assistant"}, {"content", text}};
  else
    choice["text"] = text;
  choice["finish_reason"] = FinishReasonString(finish_reason);
  choice["logprobs"] = nullptr;
  j["choices"] = ordered_json::array({std::move(choice)});
  j["usage"] = UsageJson(usage);
  return Dump(j);
}

std::string StreamTextEvent(const ResponseContext& ctx, std::string_view text, bool first) {
  ordered_json j = Envelope(ctx, /*chunk=*/true);
  ordered_json choice{{"index", 0}};
  if (ctx.endpoint == Endpoint::kChatCompletions) {
    ordered_json delta = ordered_json::object();
    if (first) delta["role"] = "assistant";
    delta["content"] = text;
    choice["delta"] = std::move(delta);
  } else {
    choice["text"] = text;
  }
  choice["finish_reason"] = nullptr;
  choice["logprobs"] = nullptr;
  j["choices"] = ordered_json::array({std::move(choice)});
  return SseFrame(j);
}

std::string StreamFinishEvent(const ResponseContext& ctx, engine::FinishReason finish_reason) {
  ordered_json j = Envelope(ctx, /*chunk=*/true);
  ordered_json choice{{"index", 0}};
  if (ctx.endpoint == Endpoint::kChatCompletions)
    choice["delta"] = ordered_json::object();
  else
    choice["text"] = "";
  choice["finish_reason"] = FinishReasonString(finish_reason);
  choice["logprobs"] = nullptr;
  j["choices"] = ordered_json::array({std::move(choice)});
  return SseFrame(j);
}

std::string StreamUsageEvent(const ResponseContext& ctx, const Usage& usage) {
  ordered_json j = Envelope(ctx, /*chunk=*/true);
  j["choices"] = ordered_json::array();
  j["usage"] = UsageJson(usage);
  return SseFrame(j);
}

namespace {
ordered_json ErrorJson(const ApiError& error) {
  ordered_json e{{"message", error.message}, {"type", error.type}};
  e["param"] = error.param.empty() ? ordered_json(nullptr) : ordered_json(error.param);
  e["code"] = error.code.empty() ? ordered_json(nullptr) : ordered_json(error.code);
  return ordered_json{{"error", std::move(e)}};
}
}  // namespace

std::string StreamErrorEvent(const ApiError& error) {
  return SseFrame(ErrorJson(error));
}

std::string ErrorBody(const ApiError& error) {
  return Dump(ErrorJson(error));
}

ApiError ErrorFromStatus(const Status& status) {
  switch (status.code()) {
    case StatusCode::kInvalidArgument:
      return ApiError{400, status.message(), "invalid_request_error", "", ""};
    case StatusCode::kResourceExhausted:
      return ApiError{429, "the server is busy, retry later: " + status.message(),
                      "rate_limit_error", "", "server_busy"};
    case StatusCode::kUnavailable:
      return ApiError{503, status.message(), "server_error", "", "unavailable"};
    case StatusCode::kTimedOut:
      return ApiError{504, status.message(), "server_error", "", "timeout"};
    default:
      return ApiError{500, status.ToString(), "server_error", "", ""};
  }
}

std::string ModelsBody(std::string_view model, int64_t created) {
  ordered_json m{{"id", model}, {"object", "model"}, {"created", created}, {"owned_by", "strata"}};
  return Dump(ordered_json{{"object", "list"}, {"data", ordered_json::array({std::move(m)})}});
}

}  // namespace strata::server
