// The engine end to end on the tiny preset: batching and chunking never change output,
// Strata reuse is bit-exact and salted (from G2, from G3, from G3 after a restart, and
// with a failed G3 read), sampling, stop strings, cancel, admission errors; and on a
// checkpoint loaded from GGUF: reuse from G2, G3 and after a restart, tokenizer, EOS.
#include "engine/engine.h"

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <future>
#include <map>
#include <random>
#include <thread>

#include "engine/engine_test_util.h"
#include "engine/model_loader.h"
#include "strata/fault_injection.h"
#include "tests/models/llama_writer.h"

#include <fmt/format.h>
#include <gtest/gtest.h>

namespace strata::engine {
namespace {

using namespace std::chrono_literals;

std::vector<TokenId> Prompt(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<TokenId> t(n);
  for (auto& x : t) x = static_cast<TokenId>(rng() % 256);
  return t;
}

struct Outcome {
  std::vector<TokenId> tokens;
  std::string text;
  TokenEvent final_event;
  std::vector<std::vector<float>> logits;  // per sampled position
};

// An engine whose logits hook files every sampled position by request.
class Driver {
 public:
  explicit Driver(EngineOptions options = {}) {
    options.on_logits = [this](const LogitsEvent& e) {
      std::lock_guard lock(mu_);
      logits_[std::string(e.request_id)].emplace_back(e.logits.begin(), e.logits.end());
    };
    auto e = Engine::Create(std::move(options));
    EXPECT_TRUE(e.ok()) << e.status().ToString();
    engine = std::move(e).value();
  }

  // Submits and returns a future of the outcome.
  std::future<Outcome> Start(GenerationRequest req) {
    auto promise = std::make_shared<std::promise<Outcome>>();
    auto out = std::make_shared<Outcome>();
    const std::string id = req.request_id;
    Status s = engine->Submit(std::move(req), [this, promise, out, id](const TokenEvent& ev) {
      if (ev.has_token) out->tokens.push_back(ev.token);
      out->text += ev.text;
      if (ev.finished) {
        out->final_event = ev;
        std::lock_guard lock(mu_);
        out->logits = std::move(logits_[id]);
        logits_.erase(id);
        promise->set_value(*out);
      }
    });
    EXPECT_TRUE(s.ok()) << s.ToString();
    return promise->get_future();
  }
  Outcome Run(GenerationRequest req) {
    auto f = Start(std::move(req));
    EXPECT_EQ(f.wait_for(60s), std::future_status::ready);
    return f.get();
  }

  std::unique_ptr<Engine> engine;

 private:
  std::mutex mu_;
  std::map<std::string, std::vector<std::vector<float>>> logits_;
};

GenerationRequest Req(std::string id, std::vector<TokenId> prompt, uint32_t max_tokens = 8,
                      std::string salt = {}) {
  GenerationRequest r;
  r.request_id = std::move(id);
  r.prompt = std::move(prompt);
  r.sampling.max_tokens = max_tokens;
  r.cache_salt = std::move(salt);
  return r;
}

// The whole UTF-8 character of `text` holding byte `at`: a stop string a client could send.
std::string CharAt(const std::string& text, size_t at) {
  const auto continuation = [&](size_t i) {
    return (static_cast<unsigned char>(text[i]) & 0xC0) == 0x80;
  };
  size_t end = at + 1;
  while (at > 0 && continuation(at)) --at;
  while (end < text.size() && continuation(end)) ++end;
  return text.substr(at, end - at);
}

bool BitEqual(const std::vector<std::vector<float>>& a, const std::vector<std::vector<float>>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (a[i].size() != b[i].size() ||
        std::memcmp(a[i].data(), b[i].data(), a[i].size() * sizeof(float)) != 0)
      return false;
  return true;
}

TEST(EngineTest, GeneratesMaxTokensWithUsage) {
  Driver d;
  const auto out = d.Run(Req("a", Prompt(13, 1), 6));
  EXPECT_EQ(out.tokens.size(), 6u);
  EXPECT_TRUE(out.final_event.finished);
  EXPECT_EQ(out.final_event.finish_reason, FinishReason::kLength);
  EXPECT_EQ(out.final_event.prompt_tokens, 13u);
  EXPECT_EQ(out.final_event.completion_tokens, 6u);
  EXPECT_EQ(out.final_event.cached_tokens, 0u);
  EXPECT_EQ(out.logits.size(), 6u);
  // The streamed text is the tokens' bytes as whole characters, U+FFFD for invalid UTF-8.
  tokenizer::StreamDecoder decoder(d.engine->tokenizer());
  std::string expected;
  for (TokenId t : out.tokens) expected += decoder.Push(t);
  EXPECT_EQ(out.text, expected + decoder.Finish());
  EXPECT_EQ(d.engine->Decode(out.tokens).size(), out.tokens.size());  // one byte per token
  EXPECT_EQ(d.engine->model_name(), "strata-ref-tiny");
  const auto st = d.engine->stats();
  EXPECT_EQ(st.prefill_tokens, 13u);
  EXPECT_EQ(st.decode_tokens, 5u);
  EXPECT_GT(st.forward_flops, 0.0);
}

TEST(EngineTest, DeterministicAcrossInstances) {
  Driver a, b;
  const auto x = a.Run(Req("r", Prompt(29, 2), 10));
  const auto y = b.Run(Req("r", Prompt(29, 2), 10));
  EXPECT_EQ(x.tokens, y.tokens);
  EXPECT_TRUE(BitEqual(x.logits, y.logits));
}

TEST(EngineTest, PrefillChunkSizeDoesNotChangeOutput) {
  const auto prompt = Prompt(45, 3);
  Driver ref;
  const auto want = ref.Run(Req("r", prompt, 5));
  for (uint32_t chunk : {1u, 3u, 4u, 7u, 16u}) {
    EngineOptions o;
    o.prefill_chunk_tokens = chunk;
    Driver d(o);
    const auto got = d.Run(Req("r", prompt, 5));
    EXPECT_EQ(got.tokens, want.tokens) << "chunk " << chunk;
    EXPECT_TRUE(BitEqual(got.logits, want.logits)) << "chunk " << chunk;
  }
}

TEST(EngineTest, BatchingWithOtherRequestsDoesNotChangeOutput) {
  const auto prompt = Prompt(33, 4);
  Driver alone;
  const auto want = alone.Run(Req("x", prompt, 12));

  EngineOptions o;
  o.prefill_chunk_tokens = 8;
  o.max_step_tokens = 20;
  Driver d(o);
  std::vector<std::future<Outcome>> others;
  for (int i = 0; i < 4; ++i)
    others.push_back(d.Start(Req(fmt::format("o{}", i), Prompt(10 + 9 * i, 50 + i), 15)));
  auto x = d.Start(Req("x", prompt, 12));
  const auto got = x.get();
  for (auto& f : others) EXPECT_EQ(f.get().final_event.finish_reason, FinishReason::kLength);
  EXPECT_EQ(got.tokens, want.tokens);
  EXPECT_TRUE(BitEqual(got.logits, want.logits));
  EXPECT_GT(d.engine->stats().steps, 0u);
}

TEST(EngineTest, SeededSamplingReplays) {
  Driver d;
  auto req = Req("s", Prompt(11, 5), 16);
  req.sampling.temperature = 0.9f;
  req.sampling.top_p = 0.8f;
  req.sampling.seed = 42;
  const auto a = d.Run(req);
  const auto b = d.Run(req);
  EXPECT_EQ(a.tokens, b.tokens);
  req.sampling.seed = 43;
  const auto c = d.Run(req);
  req.sampling.temperature = 0;
  const auto greedy = d.Run(req);
  EXPECT_TRUE(c.tokens != a.tokens || greedy.tokens != a.tokens);
}

TEST(EngineTest, StopStringEndsGenerationAndIsNotReturned) {
  Driver d;
  const auto full = d.Run(Req("f", Prompt(12, 6), 24));
  ASSERT_GE(full.text.size(), 8u);
  const std::string stop =
      CharAt(full.text, 5) + CharAt(full.text, 5 + CharAt(full.text, 5).size());
  auto req = Req("s", Prompt(12, 6), 24);
  req.sampling.stop = {stop};
  const auto out = d.Run(req);
  EXPECT_EQ(out.final_event.finish_reason, FinishReason::kStop);
  EXPECT_EQ(out.text, full.text.substr(0, full.text.find(stop)));
}

TEST(EngineTest, CancelEndsARequest) {
  Driver d;
  auto f = d.Start(Req("c", Prompt(20, 7), 1000));
  d.engine->Cancel("c");
  d.engine->Cancel("unknown");  // no-op
  ASSERT_EQ(f.wait_for(60s), std::future_status::ready);
  const auto out = f.get();
  EXPECT_EQ(out.final_event.finish_reason, FinishReason::kCancelled);
  EXPECT_LT(out.tokens.size(), 1000u);
  // The id is free again and the blocks come back.
  EXPECT_EQ(d.Run(Req("c", Prompt(5, 8), 2)).tokens.size(), 2u);
}

TEST(EngineTest, SubmitRejectsBadRequests) {
  EngineOptions o;
  o.max_running_requests = 1;
  o.max_queued_requests = 1;
  Driver d(o);
  auto noop = [](const TokenEvent&) {};
  EXPECT_EQ(d.engine->Submit(Req("e", {}), noop).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(d.engine->Submit(Req("", Prompt(3, 1)), noop).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(d.engine->Submit(Req("e", {300}), noop).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(d.engine->Submit(Req("e", Prompt(1000, 1), 100), noop).code(),
            StatusCode::kInvalidArgument);
  auto bad_p = Req("e", Prompt(3, 1));
  bad_p.sampling.top_p = 0;
  EXPECT_EQ(d.engine->Submit(bad_p, noop).code(), StatusCode::kInvalidArgument);
  auto zero = Req("e", Prompt(3, 1), 0);
  EXPECT_EQ(d.engine->Submit(zero, noop).code(), StatusCode::kInvalidArgument);

  // Long requests fill the running slot and the queue.
  auto a = d.Start(Req("a", Prompt(4, 1), 1000));
  auto b = d.Start(Req("b", Prompt(4, 2), 1000));
  EXPECT_EQ(d.engine->Submit(Req("a", Prompt(4, 1)), noop).code(), StatusCode::kAlreadyExists);
  EXPECT_EQ(d.engine->Submit(Req("c", Prompt(4, 3)), noop).code(), StatusCode::kResourceExhausted);
  d.engine->Cancel("a");
  d.engine->Cancel("b");
  a.get();
  b.get();
}

TEST(EngineTest, ShutdownCancelsWhatIsInFlight) {
  std::promise<FinishReason> reason;
  {
    auto e = Engine::Create(EngineOptions{});
    ASSERT_TRUE(e.ok());
    auto req = Req("z", Prompt(8, 9), 1000);
    ASSERT_TRUE((*e)->Submit(req,
                             [&](const TokenEvent& ev) {
                               if (ev.finished) reason.set_value(ev.finish_reason);
                             })
                    .ok());
  }
  EXPECT_EQ(reason.get_future().get(), FinishReason::kCancelled);
}

// --- With Strata -------------------------------------------------------------------

std::unique_ptr<BlockManager> MakeManager(const ModelConfig& model, uint64_t host_blocks = 256) {
  BlockManagerOptions o;
  o.model_fingerprint = model.Fingerprint();
  o.layout = model.kv_layout();
  o.host.capacity_bytes = host_blocks * o.layout.block_bytes();
  o.host.pin_for_cuda = false;
  auto m = BlockManager::Create(o);
  EXPECT_TRUE(m.ok()) << m.status().ToString();
  return std::move(m).value();
}

TEST(EngineStrataTest, ReuseIsBitIdenticalToNoStrata) {
  const ModelConfig model = *ModelConfig::Preset("tiny");
  auto manager = MakeManager(model);
  EngineOptions o;
  o.block_manager = manager.get();
  o.prefill_chunk_tokens = 6;
  Driver with(o);
  Driver without;

  // 39 tokens: 9 full blocks + 3; 40 tokens: exactly 10 blocks (the last stays computed).
  for (size_t len : {39u, 40u, 5u}) {
    const auto prompt = Prompt(len, 10 + len);
    const auto base = without.Run(Req(fmt::format("b{}", len), prompt, 7));
    const auto first = with.Run(Req(fmt::format("f{}", len), prompt, 7));
    ASSERT_TRUE(with.engine->WaitForStores(10s).ok());
    const auto second = with.Run(Req(fmt::format("s{}", len), prompt, 7));
    EXPECT_EQ(first.final_event.cached_tokens, 0u);
    const uint32_t tpb = model.tokens_per_block;
    EXPECT_EQ(second.final_event.cached_tokens, (len - 1) / tpb * tpb) << len;
    EXPECT_EQ(first.tokens, base.tokens);
    EXPECT_EQ(second.tokens, base.tokens);
    EXPECT_TRUE(BitEqual(first.logits, base.logits));
    EXPECT_TRUE(BitEqual(second.logits, base.logits)) << len;
  }

  // A longer prompt sharing a prefix reuses it, including the stored generated blocks.
  const auto prompt = Prompt(39, 49);
  auto extended = prompt;
  const auto gen = with.Run(Req("g", prompt, 9));
  ASSERT_TRUE(with.engine->WaitForStores(10s).ok());
  extended.insert(extended.end(), gen.tokens.begin(), gen.tokens.end());
  extended.push_back(65);
  const auto again = with.Run(Req("e", extended, 4));
  EXPECT_EQ(again.final_event.cached_tokens, (extended.size() - 2) / 4 * 4);
  EXPECT_TRUE(BitEqual(again.logits, without.Run(Req("e", extended, 4)).logits));

  // Another tenant's salt sees nothing.
  const auto salted = with.Run(Req("t", Prompt(39, 49), 3, "tenant-b"));
  EXPECT_EQ(salted.final_event.cached_tokens, 0u);

  const auto st = manager->stats();
  EXPECT_GT(st.loaded_blocks, 0u);
  EXPECT_GT(st.stored_blocks, 0u);
  EXPECT_EQ(st.load_failed_blocks, 0u);
  EXPECT_EQ(st.active_requests, 0u);
  EXPECT_GT(with.engine->stats().cached_tokens, 0u);
}

TEST(EngineStrataTest, ConcurrentReuseUnderBatching) {
  const ModelConfig model = *ModelConfig::Preset("tiny");
  auto manager = MakeManager(model);
  EngineOptions o;
  o.block_manager = manager.get();
  o.prefill_chunk_tokens = 5;
  o.max_step_tokens = 16;
  Driver with(o);
  Driver without;
  const auto shared = Prompt(24, 77);
  std::vector<std::vector<TokenId>> prompts;
  for (int i = 0; i < 5; ++i) {
    auto p = shared;
    const auto tail = Prompt(3 + 4 * i, 100 + i);
    p.insert(p.end(), tail.begin(), tail.end());
    prompts.push_back(p);
  }
  with.Run(Req("warm", shared, 2));
  ASSERT_TRUE(with.engine->WaitForStores(10s).ok());
  std::vector<std::future<Outcome>> fs;
  for (int i = 0; i < 5; ++i) fs.push_back(with.Start(Req(fmt::format("p{}", i), prompts[i], 6)));
  for (int i = 0; i < 5; ++i) {
    const auto got = fs[i].get();
    EXPECT_GT(got.final_event.cached_tokens, 0u);
    const auto want = without.Run(Req(fmt::format("q{}", i), prompts[i], 6));
    EXPECT_EQ(got.tokens, want.tokens);
    EXPECT_TRUE(BitEqual(got.logits, want.logits)) << i;
  }
}

TEST(EngineStrataTest, RejectsAManagerForAnotherModel) {
  const ModelConfig model = *ModelConfig::Preset("tiny");
  ModelConfig other = model;
  other.seed = 9;
  auto manager = MakeManager(other);
  EngineOptions o;
  o.model = model;
  o.block_manager = manager.get();
  auto e = Engine::Create(o);
  ASSERT_FALSE(e.ok());
  EXPECT_EQ(e.status().code(), StatusCode::kInvalidArgument);
}

// --- With Strata and a G3 disk tier ----------------------------------------------------

using testutil::TempDir;

// A manager with a G2 of `host_blocks` blocks over a small G3 in `dir`: 4 MiB of 1 MiB
// segment files in 128 KiB regions (512 records of 8 KiB for the tiny preset's 2 KiB
// blocks), so tests create, fill and recover it in milliseconds.
std::unique_ptr<BlockManager> MakeDiskManager(const ModelConfig& model, const std::string& dir,
                                              uint64_t host_blocks,
                                              std::shared_ptr<FaultInjector> faults = nullptr) {
  BlockManagerOptions o;
  o.model_fingerprint = model.Fingerprint();
  o.layout = model.kv_layout();
  o.host.capacity_bytes = host_blocks * o.layout.block_bytes();
  o.host.pin_for_cuda = false;
  o.disk.directory = dir;
  o.disk.capacity_bytes = uint64_t{4} << 20;
  o.disk.file_bytes = uint64_t{1} << 20;
  o.disk.region_bytes = uint64_t{128} << 10;
  o.disk.faults = std::move(faults);
  auto m = BlockManager::Create(o);
  EXPECT_TRUE(m.ok()) << m.status().ToString();
  return m.ok() ? std::move(m).value() : nullptr;
}

// Waits until every block the engine stored into G2 has been through the G2 -> G3
// write-through (written, already present, or dropped), so G3 holds what it will hold.
void WaitForDiskOffload(const Engine& engine, const BlockManager& manager) {
  ASSERT_TRUE(engine.WaitForStores(10s).ok());
  const auto deadline = std::chrono::steady_clock::now() + 20s;
  for (;;) {
    const BlockManagerStats st = manager.stats();
    const uint64_t settled = st.disk_offload_blocks + st.disk_offload_present +
                             st.disk_offload_dropped + st.disk_admission_rejects;
    if (st.disk_offload_queued == 0 && settled >= st.stored_blocks) {
      EXPECT_EQ(st.disk_offload_dropped, 0u);
      return;
    }
    ASSERT_LT(std::chrono::steady_clock::now(), deadline)
        << "disk offload did not settle: " << settled << " of " << st.stored_blocks;
    std::this_thread::sleep_for(2ms);
  }
}

// Tokens in every full block of a `len`-token prompt except one that holds the last
// token (the engine always computes that one to get the first token's logits).
uint32_t ReusableTokens(const ModelConfig& model, size_t len) {
  const uint32_t tpb = model.tokens_per_block;
  return static_cast<uint32_t>((len - 1) / tpb * tpb);
}

TEST(EngineDiskTest, ReuseFromG3AfterG2EvictionIsBitIdentical) {
  TempDir dir;
  const ModelConfig model = *ModelConfig::Preset("tiny");
  // G2 holds 24 blocks: one 80-token prompt (20 blocks + 2 generated), not two.
  auto manager = MakeDiskManager(model, dir.path(), 24);
  ASSERT_NE(manager, nullptr);
  EngineOptions o;
  o.block_manager = manager.get();
  o.prefill_chunk_tokens = 16;
  Driver with(o);
  Driver without;

  const auto prompt = Prompt(81, 200);
  const auto base = without.Run(Req("b", prompt, 8));
  const auto first = with.Run(Req("a1", prompt, 8));
  WaitForDiskOffload(*with.engine, *manager);
  // Another long prompt pushes the first one's blocks out of G2 (they stay in G3).
  with.Run(Req("evict", Prompt(120, 201), 4));
  WaitForDiskOffload(*with.engine, *manager);
  ASSERT_GT(manager->stats().host_evictions, 0u);

  const auto second = with.Run(Req("a2", prompt, 8));
  EXPECT_EQ(first.final_event.cached_tokens, 0u);
  EXPECT_EQ(second.final_event.cached_tokens, ReusableTokens(model, prompt.size()));
  EXPECT_EQ(first.tokens, base.tokens);
  EXPECT_EQ(second.tokens, base.tokens);
  EXPECT_TRUE(BitEqual(second.logits, base.logits));
  const auto st = manager->stats();
  EXPECT_GT(st.match_hit_blocks_disk, 0u);
  EXPECT_GT(st.loaded_blocks_from_disk, 0u);
  EXPECT_EQ(st.load_failed_blocks, 0u);
}

TEST(EngineDiskTest, ReuseFromG3AfterRestartIsBitIdentical) {
  TempDir dir;
  const ModelConfig model = *ModelConfig::Preset("tiny");
  const auto prompt = Prompt(67, 300);
  Driver without;
  const auto base = without.Run(Req("b", prompt, 10));
  {
    auto manager = MakeDiskManager(model, dir.path(), 256);
    ASSERT_NE(manager, nullptr);
    EngineOptions o;
    o.block_manager = manager.get();
    Driver with(o);
    const auto first = with.Run(Req("r1", prompt, 10));
    EXPECT_EQ(first.tokens, base.tokens);
    WaitForDiskOffload(*with.engine, *manager);
    with.engine.reset();  // the engine goes first: it holds the manager's registration
  }                       // the manager closes G3 here

  // A new process, as far as Strata can tell: a new manager and engine on the same directory.
  auto manager = MakeDiskManager(model, dir.path(), 256);
  ASSERT_NE(manager, nullptr);
  EXPECT_GE(manager->stats().disk_recovered_blocks, prompt.size() / model.tokens_per_block);
  EngineOptions o;
  o.block_manager = manager.get();
  Driver with(o);
  const auto second = with.Run(Req("r2", prompt, 10));
  EXPECT_EQ(second.final_event.cached_tokens, ReusableTokens(model, prompt.size()));
  EXPECT_EQ(second.tokens, base.tokens);
  EXPECT_TRUE(BitEqual(second.logits, base.logits));
  const auto st = manager->stats();
  EXPECT_EQ(st.loaded_blocks_from_disk,
            ReusableTokens(model, prompt.size()) / model.tokens_per_block);
  EXPECT_EQ(st.load_failed_blocks, 0u);
}

TEST(EngineDiskTest, FailedG3LoadIsRecomputedBitIdentically) {
  TempDir dir;
  const ModelConfig model = *ModelConfig::Preset("tiny");
  const auto prompt = Prompt(53, 400);
  Driver without;
  const auto base = without.Run(Req("b", prompt, 9));
  {
    auto manager = MakeDiskManager(model, dir.path(), 256);
    ASSERT_NE(manager, nullptr);
    EngineOptions o;
    o.block_manager = manager.get();
    Driver with(o);
    with.Run(Req("w", prompt, 9));
    WaitForDiskOffload(*with.engine, *manager);
    with.engine.reset();
  }

  // After a restart the prompt's blocks are only on disk; the first read fails.
  auto faults = std::make_shared<FaultInjector>();
  auto manager = MakeDiskManager(model, dir.path(), 256, faults);
  ASSERT_NE(manager, nullptr);
  EngineOptions o;
  o.block_manager = manager.get();
  Driver with(o);
  faults->FailNext(TransferOp::kRead, EIO, 1);
  const auto got = with.Run(Req("f", prompt, 9));
  EXPECT_EQ(faults->injected(), 1u);
  EXPECT_LT(got.final_event.cached_tokens, ReusableTokens(model, prompt.size()));
  EXPECT_EQ(got.tokens, base.tokens);
  EXPECT_TRUE(BitEqual(got.logits, base.logits));
  const auto st = manager->stats();
  EXPECT_GE(st.load_failed_blocks, 1u);
  EXPECT_GE(st.disk_read_errors, 1u);
  EXPECT_EQ(with.engine->stats().prefill_tokens + got.final_event.cached_tokens, prompt.size());

  // The failed block left the index; the engine stored its recomputed KV again, so the
  // next request reuses the whole prefix.
  ASSERT_TRUE(with.engine->WaitForStores(10s).ok());
  const auto again = with.Run(Req("g", prompt, 9));
  EXPECT_EQ(again.final_event.cached_tokens, ReusableTokens(model, prompt.size()));
  EXPECT_TRUE(BitEqual(again.logits, base.logits));
}

// --- A loaded checkpoint ---------------------------------------------------------------

// The engine options of a test checkpoint written as `format` and loaded back.
EngineOptions LoadedOptions(const TempDir& dir, const std::string& format) {
  const ModelConfig config = testing::TestModelConfig("llama");
  auto weights = SyntheticWeights(config);
  EXPECT_TRUE(weights.ok());
  const std::string path = dir.path() + (format == "gguf" ? "/m.gguf" : "/hf");
  const Status w = format == "gguf"
                       ? testing::WriteGgufModel(path, config, *weights, testing::WeightType::kF16,
                                                 testing::TestTokenizer::kSentencePiece)
                       : testing::WriteHfModel(path, config, *weights, testing::WeightType::kBF16,
                                               testing::TestTokenizer::kGpt2);
  EXPECT_TRUE(w.ok()) << w.ToString();
  auto loaded = LoadModel(path, {.max_context_tokens = 256, .tokens_per_block = 4});
  EXPECT_TRUE(loaded.ok()) << loaded.status().ToString();
  EngineOptions o;
  if (!loaded.ok()) return o;
  o.model = loaded->config;
  o.weights = loaded->model;
  o.tokenizer = loaded->tokenizer;
  return o;
}

class EngineLoadedModelTest : public ::testing::TestWithParam<std::string> {};

TEST_P(EngineLoadedModelTest, ReuseFromG2G3AndAfterARestartIsBitIdentical) {
  TempDir models, cache;
  const EngineOptions base_options = LoadedOptions(models, GetParam());
  const ModelConfig& model = base_options.model;
  ASSERT_FALSE(model.weights_digest.empty());
  Driver without(base_options);
  EXPECT_EQ(without.engine->model_name(), GetParam() == "gguf" ? "test-llama" : "hf");
  // Text through the model's own tokenizer; completion prompts start with BOS where the model
  // says so (the SentencePiece test model does).
  std::string text;
  for (int i = 0; i < 12; ++i) text += fmt::format("the cache {} is in the KV tier. ", i);
  const std::vector<TokenId> prompt = without.engine->Encode(text, /*add_bos=*/true);
  ASSERT_GT(prompt.size(), 40u);
  if (GetParam() == "gguf") {
    EXPECT_EQ(prompt.front(), 1);  // <s>
  }
  const auto base = without.Run(Req("b", prompt, 10));
  // An engine over a fresh manager of G2 and G3 in `cache` (the G3 of any earlier one).
  const auto attach = [&](std::unique_ptr<BlockManager>& manager) {
    manager = MakeDiskManager(model, cache.path(), 256);
    EngineOptions o = base_options;
    o.block_manager = manager.get();
    return std::make_unique<Driver>(o);
  };
  {
    std::unique_ptr<BlockManager> manager;
    const auto driver = attach(manager);
    ASSERT_NE(manager, nullptr);
    Driver& with = *driver;
    const auto first = with.Run(Req("r1", prompt, 10));
    EXPECT_EQ(first.tokens, base.tokens);
    EXPECT_EQ(first.text, base.text);
    ASSERT_TRUE(with.engine->WaitForStores(10s).ok());
    const auto from_g2 = with.Run(Req("r2", prompt, 10));
    EXPECT_EQ(from_g2.final_event.cached_tokens, ReusableTokens(model, prompt.size()));
    EXPECT_TRUE(BitEqual(from_g2.logits, base.logits));
    EXPECT_GT(manager->stats().loaded_blocks, 0u);
    WaitForDiskOffload(*with.engine, *manager);
    with.engine.reset();
  }
  std::unique_ptr<BlockManager> manager;
  const auto driver = attach(manager);
  ASSERT_NE(manager, nullptr);
  const auto from_g3 = driver->Run(Req("r3", prompt, 10));
  EXPECT_EQ(from_g3.final_event.cached_tokens, ReusableTokens(model, prompt.size()));
  EXPECT_EQ(from_g3.tokens, base.tokens);
  EXPECT_TRUE(BitEqual(from_g3.logits, base.logits));
  EXPECT_GT(manager->stats().loaded_blocks_from_disk, 0u);

  // Another checkpoint's manager (the synthetic preset of the same geometry) is refused.
  ModelConfig synthetic = testing::TestModelConfig("llama");
  auto other = MakeDiskManager(synthetic, cache.path() + "/other", 64);
  ASSERT_NE(other, nullptr);
  EngineOptions bad = base_options;
  bad.block_manager = other.get();
  EXPECT_EQ(Engine::Create(bad).status().code(), StatusCode::kInvalidArgument);
}

INSTANTIATE_TEST_SUITE_P(Formats, EngineLoadedModelTest, ::testing::Values("gguf", "hf"));

TEST(EngineLoadedModelTest, TheModelsEndOfGenerationTokenEndsTheReply) {
  TempDir models;
  const EngineOptions o = LoadedOptions(models, "hf");  // GPT-2 vocabulary
  const TokenId im_end = 319;
  ASSERT_TRUE(o.tokenizer->IsEndOfGeneration(im_end));
  // Weights whose only non-zero logit is <|im_end|>'s: the final norm keeps one dimension and
  // the LM head reads it for <|im_end|> alone. Its sign depends on the prompt, so one of the
  // two signs makes <|im_end|> the argmax (the other gives token 0, the lowest of the ties).
  for (const float sign : {1.0f, -1.0f}) {
    auto w = SyntheticWeights(o.model);
    ASSERT_TRUE(w.ok());
    std::fill(w->final_norm.begin(), w->final_norm.end(), 0.0f);
    w->final_norm[0] = 1.0f;
    std::fill(w->lm_head.begin(), w->lm_head.end(), 0.0f);
    w->lm_head[size_t{im_end} * o.model.hidden] = sign;
    auto model = Model::FromWeights(o.model, std::move(w).value());
    ASSERT_TRUE(model.ok());
    EngineOptions eo = o;
    eo.weights = std::move(model).value();
    Driver d(eo);
    const auto out = d.Run(Req("e", Prompt(9, 3), 8));
    ASSERT_FALSE(out.tokens.empty());
    if (out.tokens.front() != im_end) continue;
    EXPECT_EQ(out.tokens.size(), 1u);
    EXPECT_EQ(out.final_event.finish_reason, FinishReason::kStop);
    EXPECT_EQ(out.final_event.completion_tokens, 1u);
    EXPECT_EQ(out.text, "");
    return;
  }
  FAIL() << "neither sign made <|im_end|> the argmax";
}

TEST(EngineLoadedModelTest, ChatTemplateAndStopStringsSeeTheClientsText) {
  TempDir models;
  EngineOptions o = LoadedOptions(models, "hf");  // GPT-2 vocabulary, <|im_end|> ends turns
  Driver d(o);
  const tokenizer::Tokenizer& tok = d.engine->tokenizer();
  ASSERT_TRUE(tok.IsEndOfGeneration(319));  // <|im_end|>
  // The chat template is ChatML, and its special tokens are single tokens.
  const std::string chat = d.engine->ApplyChatTemplate({{"user", "Hi"}});
  EXPECT_EQ(chat, "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
  const std::vector<TokenId> ids = d.engine->Encode(chat, /*add_bos=*/false);
  EXPECT_EQ(ids.front(), 318);  // <|im_start|>
  // Whatever the synthetic model generates, a stop string taken from its own output as the
  // client received it stops a replay there: U+FFFD when the model produced invalid UTF-8
  // (which never matched when stops were compared with the raw bytes), else one character.
  const auto first = d.Run(Req("a", ids, 24));
  ASSERT_FALSE(first.text.empty());
  std::string stop = "\xEF\xBF\xBD";
  if (first.text.find(stop) == std::string::npos) stop = CharAt(first.text, first.text.size() / 2);
  GenerationRequest again = Req("b", ids, 24);
  again.sampling.stop = {stop};
  const auto second = d.Run(again);
  EXPECT_EQ(second.final_event.finish_reason, FinishReason::kStop);
  EXPECT_EQ(second.text, first.text.substr(0, first.text.find(stop)));
}

}  // namespace
}  // namespace strata::engine
