/* An engine loop in C over the installed Strata (pkg-config: strata).
 *
 * The "engine" owns a paged KV cache in host memory (a CPU engine, or a test standing in for
 * GPU memory). Request 1 prefills a prompt, writing KV into device blocks, and stores the
 * blocks in Strata. Request 2 sends the same prompt: Strata matches the prefix, loads it into
 * other device blocks, and the engine checks that every byte equals what prefill computed.
 *
 *   engine_loop            exit status 0 when the loaded KV is byte-identical
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <strata/strata.h>

enum { kBlocks = 64, kPromptTokens = 100 };

static const char* kConfig =
    "[model]\n"
    "fingerprint = \"example-c-engine\"\n"
    "[layout]\n"
    "num_layers = 4\n"
    "num_kv_heads = 2\n"
    "head_dim = 32\n"
    "dtype = \"bf16\"\n"
    "tokens_per_block = 16\n"
    "[host]\n"
    "capacity_gb = 0.01\n"
    "huge_pages = false\n"
    "prefault = false\n"
    "[disk]\n"
    "capacity_gb = 0\n";

#define CHECK(call)                                                                               \
  do {                                                                                            \
    strata_status s_ = (call);                                                                    \
    if (s_ != STRATA_OK) {                                                                        \
      fprintf(stderr, "%s failed: %s: %s\n", #call, strata_status_name(s_), strata_last_error()); \
      exit(1);                                                                                    \
    }                                                                                             \
  } while (0)

/* Stand-in for attention: the KV bytes of (layer, block of the prompt), a function of the
 * prompt's tokens up to the end of that block, so a wrong block or layer shows. */
static void compute_kv(unsigned char* out, size_t bytes, const int32_t* tokens, size_t block,
                       size_t tokens_per_block, uint32_t layer) {
  uint32_t h = 2166136261u ^ layer;
  size_t i;
  for (i = 0; i < (block + 1) * tokens_per_block; ++i) h = (h ^ (uint32_t)tokens[i]) * 16777619u;
  for (i = 0; i < bytes; ++i) {
    h = h * 1103515245u + 12345u;
    out[i] = (unsigned char)(h >> 16);
  }
}

int main(void) {
  strata_manager* m = NULL;
  strata_kv_layout layout;
  strata_device_cache cache;
  strata_request req;
  strata_match* match = NULL;
  strata_match_info info;
  strata_store* store = NULL;
  strata_load* load = NULL;
  void* layers[4];
  unsigned char* expect;
  int32_t prompt[kPromptTokens];
  uint32_t prefill_blocks[6], reuse_blocks[6];
  size_t layer_block, usable = 0, i, full_blocks;
  uint32_t l;
  int mismatches = 0;

  printf("Strata %s (headers %s)\n", strata_version(), STRATA_VERSION_STRING);
  CHECK(strata_manager_create_from_toml(kConfig, STRATA_CONFIG_IGNORE_ENV, &m));
  CHECK(strata_manager_layout(m, &layout));

  /* The device cache: block-major, one tensor per layer: [block][K,V][tokens][heads][dim]. */
  layer_block = (size_t)strata_kv_layout_block_bytes(&layout) / layout.num_layers;
  for (l = 0; l < layout.num_layers; ++l) layers[l] = calloc(kBlocks, layer_block);
  strata_device_cache_init(&cache);
  cache.memory_kind = STRATA_MEMORY_HOST;
  cache.layout = layout;
  cache.device_order = STRATA_ORDER_BLOCK_MAJOR;
  cache.num_blocks = kBlocks;
  cache.num_layers = layout.num_layers;
  cache.layer_base = layers;
  CHECK(strata_manager_register_device_cache(m, &cache));

  for (i = 0; i < kPromptTokens; ++i) prompt[i] = (int32_t)(1000 + 7 * i);
  full_blocks = kPromptTokens / layout.tokens_per_block; /* 6; the last 4 tokens stay */

  /* Request 1: nothing cached; prefill into device blocks 10..15 and store them. */
  strata_request_init(&req);
  req.request_id = "request-1";
  CHECK(strata_manager_match(m, &req, prompt, kPromptTokens, &match));
  strata_match_info_init(&info);
  CHECK(strata_match_get_info(match, &info));
  printf("request-1: %llu of %zu tokens cached\n", (unsigned long long)info.num_matched_tokens,
         (size_t)kPromptTokens);
  for (i = 0; i < full_blocks; ++i) {
    prefill_blocks[i] = (uint32_t)(10 + i);
    for (l = 0; l < layout.num_layers; ++l)
      compute_kv((unsigned char*)layers[l] + prefill_blocks[i] * layer_block, layer_block, prompt,
                 i, layout.tokens_per_block, l);
  }
  CHECK(strata_manager_store_from_match(m, match, 0, prefill_blocks, full_blocks, &store));
  CHECK(strata_store_wait(store, 10000));
  CHECK(strata_store_destroy(store));
  CHECK(strata_match_destroy(match));
  CHECK(strata_manager_release(m, "request-1"));

  /* Request 2: the same prompt; load the cached prefix into blocks 40..45. */
  req.request_id = "request-2";
  CHECK(strata_manager_match(m, &req, prompt, kPromptTokens, &match));
  CHECK(strata_match_get_info(match, &info));
  printf("request-2: %llu of %zu tokens cached (%llu blocks)\n",
         (unsigned long long)info.num_matched_tokens, (size_t)kPromptTokens,
         (unsigned long long)info.num_matched_blocks);
  for (i = 0; i < info.num_matched_blocks; ++i) reuse_blocks[i] = (uint32_t)(40 + i);
  CHECK(strata_manager_load(m, match, 0, reuse_blocks, info.num_matched_blocks, &load));
  CHECK(strata_load_wait(load, 10000));
  CHECK(strata_load_usable_blocks(load, &usable));
  CHECK(strata_load_destroy(load));
  CHECK(strata_match_destroy(match));
  CHECK(strata_manager_release(m, "request-2"));

  expect = malloc(layer_block);
  for (i = 0; i < usable; ++i)
    for (l = 0; l < layout.num_layers; ++l) {
      compute_kv(expect, layer_block, prompt, i, layout.tokens_per_block, l);
      if (memcmp(expect, (unsigned char*)layers[l] + reuse_blocks[i] * layer_block, layer_block) !=
          0)
        ++mismatches;
    }
  printf("loaded %zu blocks; %d of %zu layer blocks differ from prefill\n", usable, mismatches,
         usable * layout.num_layers);

  free(expect);
  CHECK(strata_manager_destroy(m));
  for (l = 0; l < layout.num_layers; ++l) free(layers[l]);
  if (usable != full_blocks || mismatches != 0) {
    fprintf(stderr, "FAIL: expected %zu identical blocks\n", full_blocks);
    return 1;
  }
  printf("OK: the reused prefix is byte-identical\n");
  return 0;
}
