// Tests of the OpenAI wire format without sockets: request validation, the chat
// template, and the shapes of responses, chunks and errors.
#include "server/openai_api.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "server/fake_generator_test_util.h"

namespace strata::server {
namespace {

using nlohmann::json;
using testing::FakeGenerator;

class OpenAiApiTest : public ::testing::Test {
 protected:
  std::variant<ParsedRequest, ApiError> Parse(Endpoint endpoint, const std::string& body) {
    return ParseRequest(endpoint, body, generator_, "fake-model");
  }
  ParsedRequest ParseOk(Endpoint endpoint, const std::string& body) {
    auto r = Parse(endpoint, body);
    if (auto* e = std::get_if<ApiError>(&r)) {
      ADD_FAILURE() << body << " -> " << e->message;
      return {};
    }
    return std::get<ParsedRequest>(r);
  }
  ApiError ParseError(Endpoint endpoint, const std::string& body) {
    auto r = Parse(endpoint, body);
    if (!std::holds_alternative<ApiError>(r)) {
      ADD_FAILURE() << body << " was accepted";
      return {};
    }
    return std::get<ApiError>(r);
  }
  FakeGenerator generator_;
};

// Hostile bodies are refused by their shape before a document is built (issue 13 item 1:
// 8 M '[' characters, a 400k-entry stop list or 300k keys cost ~75x their size).
TEST_F(OpenAiApiTest, BodiesOverTheCostLimitsAreRefusedByShape) {
  const auto expect_complex = [&](const std::string& body, std::string_view what) {
    SCOPED_TRACE(body.substr(0, 60));
    const ApiError e = ParseError(Endpoint::kCompletions, body);
    EXPECT_EQ(e.http_status, 400);
    EXPECT_EQ(e.code, "request_too_complex");
    EXPECT_NE(e.message.find(what), std::string::npos) << e.message;
  };
  expect_complex(std::string(8 << 20, '['), "nests deeper than 32");
  std::string deep = R"({"prompt": "a", "x": )" + std::string(40, '[') + std::string(40, ']') + "}";
  expect_complex(deep, "nests deeper");

  std::string many_stops = R"({"prompt": "a", "stop": [)";
  for (int i = 0; i < 400000; ++i) many_stops += i ? ",\"s\"" : "\"s\"";
  many_stops += "]}";
  expect_complex(many_stops, "more than 131072 JSON values");

  std::string many_keys = R"({"prompt": "a")";
  for (int i = 0; i < 300000; ++i) many_keys += ",\"k" + std::to_string(i) + "\":0";
  many_keys += "}";
  expect_complex(many_keys, "more than 8192 object members");

  // Within the JSON limits but not within the request's.
  std::string stops = R"({"prompt": "a", "stop": [)";
  for (uint32_t i = 0; i <= kMaxStopSequences; ++i) stops += i ? ",\"s\"" : "\"s\"";
  stops += "]}";
  EXPECT_EQ(ParseError(Endpoint::kCompletions, stops).param, "stop");
  EXPECT_EQ(ParseError(Endpoint::kCompletions, R"({"prompt": "a", "stop": ")" +
                                                   std::string(kMaxStopBytes + 1, 'x') + R"("})")
                .param,
            "stop");
  ParseOk(Endpoint::kCompletions,
          R"({"prompt": "a", "stop": ")" + std::string(kMaxStopBytes, 'x') + R"("})");

  // Depth 32 itself is fine: limits are limits, not bans.
  std::string ok = R"({"prompt": "a", "x": )" + std::string(30, '[') + std::string(30, ']') + "}";
  ParseOk(Endpoint::kCompletions, ok);
  // Malformed JSON still says so.
  EXPECT_NE(ParseError(Endpoint::kCompletions, R"({"prompt": )").message.find("not valid JSON"),
            std::string::npos);
}

TEST_F(OpenAiApiTest, PromptsTooLongForTheContextAreRefusedBeforeTokenizing) {
  generator_.context_tokens = 256;
  // 4 MiB of text cannot fit 256 tokens of at most one byte each.
  const ApiError e =
      ParseError(Endpoint::kCompletions, R"({"prompt": ")" + std::string(4 << 20, 'x') + R"("})");
  EXPECT_EQ(e.code, "context_length_exceeded");
  EXPECT_NE(e.message.find("4194304 bytes"), std::string::npos) << e.message;
  EXPECT_EQ(generator_.encodes(), 0);
  const ApiError chat =
      ParseError(Endpoint::kChatCompletions, R"({"messages": [{"role": "user", "content": ")" +
                                                 std::string(1 << 20, 'y') + R"("}]})");
  EXPECT_EQ(chat.code, "context_length_exceeded");
  EXPECT_EQ(chat.param, "messages");
  EXPECT_EQ(generator_.encodes(), 0);
}

TEST_F(OpenAiApiTest, CompletionDefaultsAndFields) {
  ParsedRequest r = ParseOk(Endpoint::kCompletions, R"({"prompt": "Hi"})");
  EXPECT_EQ(r.prompt, (std::vector<TokenId>{'H', 'i'}));
  EXPECT_EQ(r.sampling.max_tokens, 16u);
  EXPECT_EQ(r.sampling.temperature, 0.0f);
  EXPECT_EQ(r.sampling.top_p, 1.0f);
  EXPECT_FALSE(r.stream);

  r = ParseOk(Endpoint::kCompletions,
              R"({"model": "fake-model", "prompt": ["Hey"], "max_tokens": 5, "temperature": 0.5,
                  "top_p": 0.9, "seed": -1, "stop": ["a", "", "bc"], "stream": true,
                  "stream_options": {"include_usage": true}, "cache_salt": "t1", "n": 1,
                  "user": "u", "presence_penalty": 0, "logprobs": null, "suffix": null})");
  EXPECT_EQ(r.prompt, (std::vector<TokenId>{'H', 'e', 'y'}));
  EXPECT_EQ(r.sampling.max_tokens, 5u);
  EXPECT_FLOAT_EQ(r.sampling.temperature, 0.5f);
  EXPECT_FLOAT_EQ(r.sampling.top_p, 0.9f);
  EXPECT_EQ(r.sampling.seed, ~uint64_t{0});
  EXPECT_EQ(r.sampling.stop, (std::vector<std::string>{"a", "bc"}));
  EXPECT_TRUE(r.stream);
  EXPECT_TRUE(r.include_usage);
  EXPECT_EQ(r.cache_salt, "t1");

  EXPECT_EQ(ParseOk(Endpoint::kCompletions, R"({"prompt": [1, 2, 3]})").prompt,
            (std::vector<TokenId>{1, 2, 3}));
  EXPECT_EQ(ParseOk(Endpoint::kCompletions, R"({"prompt": [[7, 8]]})").prompt,
            (std::vector<TokenId>{7, 8}));
  EXPECT_EQ(ParseOk(Endpoint::kCompletions, R"({"prompt": "x", "stop": "yz"})").sampling.stop,
            (std::vector<std::string>{"yz"}));
}

TEST_F(OpenAiApiTest, ChatTemplateAndDefaults) {
  EXPECT_EQ(generator_.ApplyChatTemplate({{"system", "Be brief."}, {"user", "Hi"}}),
            "<|system|>\nBe brief.\n<|user|>\nHi\n<|assistant|>\n");
  ParsedRequest r = ParseOk(Endpoint::kChatCompletions,
                            R"({"messages": [{"role": "user", "content": "Hi"},
                                             {"role": "assistant", "content": null},
                                             {"role": "user", "content": [
                                               {"type": "text", "text": "a"},
                                               {"type": "text", "text": "b"}]}]})");
  const std::string prompt = "<|user|>\nHi\n<|assistant|>\n\n<|user|>\nab\n<|assistant|>\n";
  EXPECT_EQ(generator_.Decode(r.prompt), prompt);
  // Chat defaults to the rest of the context.
  EXPECT_EQ(r.sampling.max_tokens, generator_.max_context_tokens() - prompt.size());
  EXPECT_EQ(ParseOk(Endpoint::kChatCompletions,
                    R"({"messages": [{"role": "user", "content": "Hi"}],
                        "max_completion_tokens": 3})")
                .sampling.max_tokens,
            3u);
}

TEST_F(OpenAiApiTest, RejectsEachMalformedClass) {
  struct Case {
    Endpoint endpoint;
    std::string body;
    int status;
    std::string param;
    std::string code;
  };
  const Endpoint C = Endpoint::kCompletions, H = Endpoint::kChatCompletions;
  const std::string too_long(300, 'x');
  const std::vector<Case> cases = {
      {C, "", 400, "", ""},
      {C, "{\"prompt\": ", 400, "", ""},
      {C, "not json", 400, "", ""},
      {C, "[1, 2]", 400, "", ""},
      {C, "\"prompt\"", 400, "", ""},
      {C, "{}", 400, "prompt", ""},
      {C, R"({"prompt": 5})", 400, "prompt", ""},
      {C, R"({"prompt": ""})", 400, "prompt", ""},
      {C, R"({"prompt": []})", 400, "prompt", ""},
      {C, R"({"prompt": ["a", "b"]})", 400, "prompt", ""},
      {C, R"({"prompt": [1, "a"]})", 400, "prompt", ""},
      {C, R"({"prompt": [-1]})", 400, "prompt", ""},
      {C, R"({"prompt": [4294967296]})", 400, "prompt", ""},
      {C, R"({"prompt": {"text": "a"}})", 400, "prompt", ""},
      {C, R"({"prompt": "a", "max_tokens": "5"})", 400, "max_tokens", ""},
      {C, R"({"prompt": "a", "max_tokens": 0})", 400, "max_tokens", ""},
      {C, R"({"prompt": "a", "max_tokens": -3})", 400, "max_tokens", ""},
      {C, R"({"prompt": "a", "max_tokens": 1.5})", 400, "max_tokens", ""},
      {C, R"({"prompt": "a", "max_tokens": 18446744073709551615})", 400, "max_tokens", ""},
      {C, R"({"prompt": "a", "max_tokens": 1000})", 400, "max_tokens", "context_length_exceeded"},
      {C, R"({"prompt": ")" + too_long + R"("})", 400, "prompt", "context_length_exceeded"},
      {C, R"({"prompt": "a", "temperature": 5})", 400, "temperature", ""},
      {C, R"({"prompt": "a", "temperature": "hot"})", 400, "temperature", ""},
      {C, R"({"prompt": "a", "top_p": 0})", 400, "top_p", ""},
      {C, R"({"prompt": "a", "top_p": 1.5})", 400, "top_p", ""},
      {C, R"({"prompt": "a", "seed": 1.5})", 400, "seed", ""},
      {C, R"({"prompt": "a", "stream": "yes"})", 400, "stream", ""},
      {C, R"({"prompt": "a", "stream_options": 1})", 400, "stream_options", ""},
      {C, R"({"prompt": "a", "stop": 5})", 400, "stop", ""},
      {C, R"({"prompt": "a", "stop": ["x", 5]})", 400, "stop", ""},
      {C, R"({"prompt": "a", "cache_salt": 7})", 400, "cache_salt", ""},
      {C, R"({"prompt": "a", "n": 2})", 400, "n", ""},
      {C, R"({"prompt": "a", "n": "1"})", 400, "n", ""},
      {C, R"({"prompt": "a", "best_of": 3})", 400, "best_of", ""},
      {C, R"({"prompt": "a", "echo": true})", 400, "echo", ""},
      {C, R"({"prompt": "a", "logprobs": 5})", 400, "logprobs", ""},
      {C, R"({"prompt": "a", "model": 5})", 400, "model", ""},
      {C, R"({"prompt": "a", "model": "gpt-4"})", 404, "model", "model_not_found"},
      {H, R"({})", 400, "messages", ""},
      {H, R"({"messages": []})", 400, "messages", ""},
      {H, R"({"messages": "hi"})", 400, "messages", ""},
      {H, R"({"messages": [5]})", 400, "messages[0]", ""},
      {H, R"({"messages": [{"content": "x"}]})", 400, "messages[0].role", ""},
      {H, R"({"messages": [{"role": "wizard", "content": "x"}]})", 400, "messages[0].role", ""},
      {H, R"({"messages": [{"role": "user", "content": 5}]})", 400, "messages[0].content", ""},
      {H, R"({"messages": [{"role": "user", "content": [{"type": "image_url"}]}]})", 400,
       "messages[0].content", ""},
      {H, R"({"messages": [{"role": "user", "content": "a"}], "max_tokens": 0})", 400, "max_tokens",
       ""},
      {H, R"({"messages": [{"role": "user", "content": "a"}], "logprobs": true})", 400, "logprobs",
       ""},
      {H, R"({"messages": [{"role": "user", "content": ")" + too_long + R"("}]})", 400, "messages",
       "context_length_exceeded"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.body);
    ApiError e = ParseError(c.endpoint, c.body);
    EXPECT_EQ(e.http_status, c.status);
    EXPECT_EQ(e.param, c.param);
    EXPECT_EQ(e.code, c.code);
    EXPECT_EQ(e.type, "invalid_request_error");
    EXPECT_FALSE(e.message.empty());
  }
}

TEST_F(OpenAiApiTest, ResponseShapes) {
  ResponseContext ctx{Endpoint::kCompletions, "cmpl-1", 1700000000, "fake-model"};
  json j = json::parse(CompletionBody(ctx, "abc", engine::FinishReason::kLength, {10, 4, 3}));
  EXPECT_EQ(j["id"], "cmpl-1");
  EXPECT_EQ(j["object"], "text_completion");
  EXPECT_EQ(j["created"], 1700000000);
  EXPECT_EQ(j["model"], "fake-model");
  EXPECT_EQ(j["choices"][0]["index"], 0);
  EXPECT_EQ(j["choices"][0]["text"], "abc");
  EXPECT_EQ(j["choices"][0]["finish_reason"], "length");
  EXPECT_TRUE(j["choices"][0]["logprobs"].is_null());
  EXPECT_EQ(j["usage"]["prompt_tokens"], 10);
  EXPECT_EQ(j["usage"]["completion_tokens"], 3);
  EXPECT_EQ(j["usage"]["total_tokens"], 13);
  EXPECT_EQ(j["usage"]["prompt_tokens_details"]["cached_tokens"], 4);

  ctx.endpoint = Endpoint::kChatCompletions;
  j = json::parse(CompletionBody(ctx, "hi", engine::FinishReason::kStop, {}));
  EXPECT_EQ(j["object"], "chat.completion");
  EXPECT_EQ(j["choices"][0]["message"], (json{{"role", "assistant"}, {"content", "hi"}}));
  EXPECT_EQ(j["choices"][0]["finish_reason"], "stop");

  const std::string first = StreamTextEvent(ctx, "x", true);
  ASSERT_EQ(first.rfind("data: ", 0), 0u);
  ASSERT_EQ(first.substr(first.size() - 2), "\n\n");
  j = json::parse(first.substr(6));
  EXPECT_EQ(j["object"], "chat.completion.chunk");
  EXPECT_EQ(j["choices"][0]["delta"], (json{{"role", "assistant"}, {"content", "x"}}));
  EXPECT_TRUE(j["choices"][0]["finish_reason"].is_null());
  j = json::parse(StreamTextEvent(ctx, "y", false).substr(6));
  EXPECT_EQ(j["choices"][0]["delta"], (json{{"content", "y"}}));
  j = json::parse(StreamFinishEvent(ctx, engine::FinishReason::kLength).substr(6));
  EXPECT_EQ(j["choices"][0]["delta"], json::object());
  EXPECT_EQ(j["choices"][0]["finish_reason"], "length");
  j = json::parse(StreamUsageEvent(ctx, {5, 2, 1}).substr(6));
  EXPECT_TRUE(j["choices"].empty());
  EXPECT_EQ(j["usage"]["total_tokens"], 6);

  j = json::parse(ErrorBody(ApiError{400, "bad", "invalid_request_error", "", ""}));
  EXPECT_EQ(j["error"]["message"], "bad");
  EXPECT_EQ(j["error"]["type"], "invalid_request_error");
  EXPECT_TRUE(j["error"]["param"].is_null());
  EXPECT_TRUE(j["error"]["code"].is_null());

  j = json::parse(ModelsBody("fake-model", 1));
  EXPECT_EQ(j["object"], "list");
  EXPECT_EQ(j["data"][0]["id"], "fake-model");
  EXPECT_EQ(j["data"][0]["object"], "model");
}

TEST_F(OpenAiApiTest, InvalidUtf8InGeneratedTextIsReplacedNotThrown) {
  ResponseContext ctx{Endpoint::kCompletions, "cmpl-1", 1, "m"};
  json j = json::parse(CompletionBody(ctx, "a\xff", engine::FinishReason::kStop, {}));
  EXPECT_EQ(j["choices"][0]["text"], "a\xEF\xBF\xBD");
  EXPECT_NO_THROW(json::parse(StreamTextEvent(ctx, "\xc3", false).substr(6)));
}

TEST_F(OpenAiApiTest, StatusMapping) {
  EXPECT_EQ(ErrorFromStatus(Status::InvalidArgument("x")).http_status, 400);
  EXPECT_EQ(ErrorFromStatus(Status::ResourceExhausted("x")).http_status, 429);
  EXPECT_EQ(ErrorFromStatus(Status::Unavailable("x")).http_status, 503);
  EXPECT_EQ(ErrorFromStatus(Status::Internal("x")).http_status, 500);
  EXPECT_EQ(ErrorFromStatus(Status::AlreadyExists("x")).http_status, 500);
}

}  // namespace
}  // namespace strata::server
