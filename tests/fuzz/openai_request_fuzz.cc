// libFuzzer harness: `strata serve`'s OpenAI request parser (ParseRequest) on arbitrary
// bodies, for both endpoints, with the fake generator's byte-level tokenizer.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>
#include <variant>

#include "server/fake_generator_test_util.h"
#include "server/openai_api.h"

using strata::server::ApiError;
using strata::server::Endpoint;
using strata::server::ParsedRequest;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // 4096 tokens of context: a prompt from a 4 KiB input fits, and so does a longer one
  // that the context check must refuse.
  static strata::server::testing::FakeGenerator* const generator = [] {
    auto* g = new strata::server::testing::FakeGenerator;
    g->context_tokens = 4096;
    return g;
  }();
  const std::string_view body(reinterpret_cast<const char*>(data), size);
  for (const Endpoint endpoint : {Endpoint::kCompletions, Endpoint::kChatCompletions}) {
    const std::variant<ParsedRequest, ApiError> parsed =
        strata::server::ParseRequest(endpoint, body, *generator, generator->model_name());
    if (const ParsedRequest* req = std::get_if<ParsedRequest>(&parsed)) {
      // What the header promises of an accepted request.
      if (req->prompt.empty() || req->sampling.max_tokens == 0 ||
          req->prompt.size() + req->sampling.max_tokens > generator->max_context_tokens())
        std::abort();
    } else {
      const ApiError& error = std::get<ApiError>(parsed);
      if (error.http_status < 400 || error.http_status > 599 || error.message.empty()) std::abort();
      (void)strata::server::ErrorBody(error);  // must not throw, whatever the message holds
    }
  }
  return 0;
}
