// Engine: the reference engine. A Model over a PagedKvCache, driven by a scheduler thread
// with continuous batching (every running request decodes in each step) and chunked
// prefill (prompt chunks and decode tokens share a per-step token budget). Implements
// Generator for `strata serve`.
//
// With a BlockManager (EngineOptions::block_manager) it reuses and offloads KV through
// Strata's public API only, as any outside engine would: Match and Load at admission
// (the request waits in a loading state while others keep running; it computes only the
// tokens after the usable loaded blocks), Store of every computed full prompt block after
// prefill and of full generated blocks at the end, Release / Cancel when it ends. Output
// with reuse is bit-identical to output without (see model.h).
//
// Thread-safe: Submit, Cancel and stats may be called from any thread. Callbacks run on
// the scheduler thread.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_set>
#include <vector>

#include "engine/generator.h"
#include "engine/kv_cache.h"
#include "engine/model.h"
#include "engine/model_config.h"
#include "strata/block_manager.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"

namespace strata::engine {

// Logits the engine sampled from (test and debugging hook).
struct LogitsEvent {
  std::string_view request_id;
  uint32_t index = 0;  // 0: after the prompt (the first token); i: before token i
  std::span<const float> logits;
};

struct EngineOptions {
  // The model: ModelConfig::Preset("tiny" | "demo", seed) or a custom config. Default tiny.
  // With `weights`, the loaded model's config (LoadedModel::config).
  ModelConfig model;
  // A loaded checkpoint (LoadModel) whose config() equals `model`. Default none: the
  // synthetic weights of `model`.
  std::shared_ptr<const Model> weights;
  // The model's tokenizer; chats are rendered in the template it carries (plain when it has
  // none). Default: the byte tokenizer of the synthetic presets.
  std::shared_ptr<const tokenizer::Tokenizer> tokenizer;
  // Strata, or nullptr (default) to run without it (the baseline). Not owned; must outlive
  // the engine; its options must carry model.kv_layout() and model.Fingerprint(). The
  // engine registers its KV cache with it, so one BlockManager serves one engine.
  BlockManager* block_manager = nullptr;
  // Device KV blocks. Default 0: two full contexts (2 * max_context_tokens of KV).
  uint32_t num_device_blocks = 0;
  // Requests decoding or prefilling at once. Default 16.
  uint32_t max_running_requests = 16;
  // Requests waiting for admission beyond those; Submit past it is ResourceExhausted.
  // Default 256.
  uint32_t max_queued_requests = 256;
  // Prompt tokens of one request per step. Default 512.
  uint32_t prefill_chunk_tokens = 512;
  // Tokens per step across decodes and prefill chunks. Default 512.
  uint32_t max_step_tokens = 512;
  // Also offload full blocks of generated tokens when a request finishes. Default true.
  bool store_generated_blocks = true;
  // Called on the scheduler thread with the logits of every sampled position. Default none.
  std::function<void(const LogitsEvent&)> on_logits;

  Status Validate() const;
};

struct EngineStats {
  uint64_t steps = 0;           // forward passes
  uint64_t prefill_tokens = 0;  // prompt tokens computed
  uint64_t decode_tokens = 0;   // generated tokens fed back
  uint64_t cached_tokens = 0;   // prompt tokens loaded from Strata
  uint64_t requests_finished = 0;
  uint64_t stored_blocks = 0;  // blocks handed to Store
  double forward_seconds = 0;  // wall time inside Model::Forward
  double forward_flops = 0;    // Model::ForwardFlops of those passes
};

class Engine final : public Generator {
 public:
  // Builds the model and KV cache, registers the cache with the BlockManager (if any),
  // starts the scheduler thread.
  static Result<std::unique_ptr<Engine>> Create(EngineOptions options);
  // Cancels every request (final events say kCancelled), waits for Strata transfers that
  // touch the KV cache, stops the scheduler.
  ~Engine() override;

  std::string model_name() const override;
  uint32_t max_context_tokens() const override;
  std::vector<TokenId> Encode(std::string_view text, bool add_bos) const override;
  std::string ApplyChatTemplate(const std::vector<ChatMessage>& messages) const override;
  uint32_t max_token_bytes() const override { return tokenizer_->max_token_bytes(); }
  std::string Decode(std::span<const TokenId> tokens) const override;
  Status Submit(GenerationRequest request,
                std::function<void(const TokenEvent&)> on_event) override;
  void Cancel(std::string_view request_id) override;

  // Waits until every Store the engine has issued is done, so that Match finds those
  // blocks (tests and benchmarks that reuse a prompt right after serving it): OK, or
  // TimedOut.
  Status WaitForStores(std::chrono::milliseconds timeout) const;

  EngineStats stats() const;
  const Model& model() const { return *model_; }
  const tokenizer::Tokenizer& tokenizer() const { return *tokenizer_; }
  const PagedKvCache& kv_cache() const { return *kv_; }

 private:
  struct Request;
  struct PendingFree;
  Engine(EngineOptions options, std::shared_ptr<const Model> model,
         std::unique_ptr<PagedKvCache> kv);

  void Run();
  bool Admit(Request& r);
  void PollLoad(Request& r);
  void Step(std::vector<Request*>& batch);
  void AfterToken(Request& r, TokenId token);
  void StorePromptBlocks(Request& r);
  void StoreGeneratedBlocks(Request& r);
  void Finish(Request& r, FinishReason reason, Status error = Status::Ok(), bool has_token = false,
              TokenId token = 0, std::string text = {});
  void ReclaimBlocks(bool wait);

  const EngineOptions options_;
  const std::shared_ptr<const Model> model_;
  const std::shared_ptr<const tokenizer::Tokenizer> tokenizer_;
  const tokenizer::ChatTemplate chat_;
  const std::unique_ptr<PagedKvCache> kv_;
  Workspace ws_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::deque<std::unique_ptr<Request>> incoming_;
  std::unordered_set<std::string> in_flight_;
  std::unordered_set<std::string> cancel_;
  EngineStats stats_;
  std::vector<StoreHandle> stores_;  // issued and maybe not done; pruned as they finish

  // Scheduler thread only.
  std::deque<std::unique_ptr<Request>> waiting_;
  std::vector<std::unique_ptr<Request>> running_;  // loading, prefilling or decoding
  std::vector<PendingFree> pending_free_;

  std::thread thread_;
};

}  // namespace strata::engine
