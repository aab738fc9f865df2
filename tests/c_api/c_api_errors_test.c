/* Every error path of the C API (strata/strata.h), in C99: each bad call returns its
 * error code and leaves a message in strata_last_error(), and nothing crashes. Also one
 * round trip through a KV-major cache with padded strides, the layout the C++ tests do
 * not reach through this door. Prints "N passed, M failed"; exits non-zero on a failure. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "strata/strata.h"

static int passed, failed;

#define EXPECT_STATUS(expected, call)                                                       \
  do {                                                                                      \
    strata_status got_ = (call);                                                            \
    if (got_ == (expected) && (got_ == STRATA_OK || strata_last_error()[0] != '\0')) {      \
      ++passed;                                                                             \
    } else {                                                                                \
      ++failed;                                                                             \
      fprintf(stderr, "%s:%d: %s\n  expected %s, got %s (%s)\n", __FILE__, __LINE__, #call, \
              strata_status_name(expected), strata_status_name(got_), strata_last_error()); \
    }                                                                                       \
  } while (0)

#define EXPECT_TRUE(cond)                                                 \
  do {                                                                    \
    if (cond) {                                                           \
      ++passed;                                                           \
    } else {                                                              \
      ++failed;                                                           \
      fprintf(stderr, "%s:%d: expected %s\n", __FILE__, __LINE__, #cond); \
    }                                                                     \
  } while (0)

/* The last error names the function and says something about the problem. */
#define EXPECT_ERROR_MENTIONS(text) EXPECT_TRUE(strstr(strata_last_error(), (text)) != NULL)

static const char* kConfig =
    "[model]\n"
    "fingerprint = \"c-api-errors-test\"\n"
    "[layout]\n"
    "num_layers = 2\n"
    "num_kv_heads = 2\n"
    "head_dim = 8\n"
    "dtype = \"fp16\"\n"
    "tokens_per_block = 4\n"
    "[host]\n"
    "capacity_gb = 0.001\n"
    "huge_pages = false\n"
    "prefault = false\n"
    "[disk]\n"
    "capacity_gb = 0\n";

enum { kLayers = 2, kBlocks = 8, kTokensPerBlock = 4 };

/* A KV-major cache with a padded block stride: chunk (l, c, b) at
 * base[l] + b * block_stride + c * component_stride. */
typedef struct {
  unsigned char* base[kLayers];
  void* pointers[kLayers];
  size_t chunk, block_stride, component_stride, layer_bytes;
} Cache;

static void cache_init(Cache* c, const strata_kv_layout* layout) {
  int l;
  c->chunk = (size_t)strata_kv_layout_block_bytes(layout) / (2 * kLayers);
  c->block_stride = c->chunk + 64; /* padding between blocks */
  c->component_stride = c->block_stride * kBlocks;
  c->layer_bytes = 2 * c->component_stride;
  for (l = 0; l < kLayers; ++l) {
    c->base[l] = calloc(1, c->layer_bytes);
    c->pointers[l] = c->base[l];
  }
}

static void cache_free(Cache* c) {
  int l;
  for (l = 0; l < kLayers; ++l) free(c->base[l]);
}

static unsigned char* chunk_at(const Cache* c, int l, int comp, int b) {
  return c->base[l] + (size_t)b * c->block_stride + (size_t)comp * c->component_stride;
}

static void describe(const Cache* c, const strata_kv_layout* layout, strata_device_cache* d) {
  strata_device_cache_init(d);
  d->memory_kind = STRATA_MEMORY_HOST;
  d->layout = *layout;
  d->device_order = STRATA_ORDER_KV_MAJOR;
  d->num_blocks = kBlocks;
  d->num_layers = kLayers;
  d->layer_base = c->pointers;
  d->block_stride_bytes = c->block_stride;
  d->component_stride_bytes = c->component_stride;
}

static void test_status_names_and_version(void) {
  EXPECT_TRUE(strcmp(strata_status_name(STRATA_OK), "ok") == 0);
  EXPECT_TRUE(strcmp(strata_status_name(STRATA_ERR_INVALID_HANDLE), "invalid_handle") == 0);
  EXPECT_TRUE(strcmp(strata_status_name(STRATA_ERR_TIMED_OUT), "timed_out") == 0);
  EXPECT_TRUE(strcmp(strata_status_name((strata_status)999), "unknown") == 0);
  EXPECT_TRUE(strcmp(strata_version(), STRATA_VERSION_STRING) == 0);
  EXPECT_TRUE(strata_version_number() == STRATA_VERSION_NUMBER);
}

static void test_create_errors(void) {
  strata_manager* m = NULL;
  EXPECT_STATUS(STRATA_ERR_INVALID_ARGUMENT, strata_manager_create_from_toml(kConfig, 0, NULL));
  EXPECT_STATUS(
      STRATA_ERR_INVALID_ARGUMENT,
      strata_manager_create_from_toml("[layout\nnum_layers = 2", STRATA_CONFIG_IGNORE_ENV, &m));
  EXPECT_ERROR_MENTIONS("TOML syntax error");
  EXPECT_STATUS(
      STRATA_ERR_INVALID_ARGUMENT,
      strata_manager_create_from_toml("[nonsense]\nx = 1\n", STRATA_CONFIG_IGNORE_ENV, &m));
  EXPECT_ERROR_MENTIONS("unknown table");
  EXPECT_STATUS(
      STRATA_ERR_INVALID_ARGUMENT,
      strata_manager_create_from_toml("[layout]\nnum_layers = 0\n", STRATA_CONFIG_IGNORE_ENV, &m));
  EXPECT_STATUS(STRATA_ERR_INVALID_ARGUMENT, strata_manager_create_from_toml(kConfig, 0x80, &m));
  EXPECT_ERROR_MENTIONS("unknown flags");
  EXPECT_STATUS(STRATA_ERR_IO, strata_manager_create_from_file("/nonexistent/strata.toml",
                                                               STRATA_CONFIG_IGNORE_ENV, &m));
  EXPECT_ERROR_MENTIONS("/nonexistent/strata.toml");
  EXPECT_TRUE(m == NULL); /* out-parameters are written only on success */
}

static void test_invalid_handles(void) {
  strata_kv_layout layout;
  strata_stats stats;
  strata_match_info info;
  size_t n = 0, len = 0;
  int done = 0;
  strata_block_state state;
  strata_request req;
  int32_t tokens[4] = {1, 2, 3, 4};
  uint32_t blocks[1] = {0};
  strata_match* match = NULL;
  strata_load* load = NULL;
  strata_store* store = NULL;
  char buf[16];
  int fake = 0; /* an address that was never a handle */

  strata_kv_layout_init(&layout);
  strata_stats_init(&stats);
  strata_match_info_init(&info);
  strata_request_init(&req);
  req.request_id = "r";

  EXPECT_STATUS(STRATA_OK, strata_manager_destroy(NULL)); /* like free(NULL) */
  EXPECT_STATUS(STRATA_ERR_INVALID_HANDLE, strata_manager_destroy((strata_manager*)&fake));
  EXPECT_ERROR_MENTIONS("not a live strata_manager");
  EXPECT_STATUS(STRATA_ERR_INVALID_HANDLE, strata_manager_layout(NULL, &layout));
  EXPECT_ERROR_MENTIONS("strata_manager_layout: manager is NULL");
  EXPECT_STATUS(STRATA_ERR_INVALID_HANDLE, strata_manager_register_device_cache(NULL, NULL));
  EXPECT_STATUS(STRATA_ERR_INVALID_HANDLE, strata_manager_match(NULL, &req, tokens, 4, &match));
  EXPECT_STATUS(STRATA_ERR_INVALID_HANDLE, strata_manager_load(NULL, NULL, 0, blocks, 1, &load));
  EXPECT_STATUS(STRATA_ERR_INVALID_HANDLE,
                strata_manager_store(NULL, &req, tokens, 4, 0, blocks, 1, &store));
  EXPECT_STATUS(STRATA_ERR_INVALID_HANDLE,
                strata_manager_store_from_match(NULL, NULL, 0, blocks, 1, &store));
  EXPECT_STATUS(STRATA_ERR_INVALID_HANDLE, strata_manager_release(NULL, "r"));
  EXPECT_STATUS(STRATA_ERR_INVALID_HANDLE, strata_manager_cancel(NULL, "r"));
  EXPECT_STATUS(STRATA_ERR_INVALID_HANDLE, strata_manager_pin(NULL, &req, tokens, 4));
  EXPECT_STATUS(STRATA_ERR_INVALID_HANDLE, strata_manager_unpin(NULL, &req, tokens, 4));
  EXPECT_STATUS(STRATA_ERR_INVALID_HANDLE, strata_manager_flush_disk(NULL));
  EXPECT_STATUS(STRATA_ERR_INVALID_HANDLE, strata_manager_stats(NULL, &stats));
  EXPECT_STATUS(STRATA_ERR_INVALID_HANDLE,
                strata_manager_metrics_text(NULL, buf, sizeof buf, &len));
  EXPECT_STATUS(STRATA_ERR_INVALID_HANDLE, strata_match_get_info(NULL, &info));
  EXPECT_STATUS(STRATA_ERR_INVALID_HANDLE, strata_match_tiers(NULL, NULL, 0));
  EXPECT_STATUS(STRATA_OK, strata_match_destroy(NULL));
  EXPECT_STATUS(STRATA_ERR_INVALID_HANDLE, strata_load_num_blocks(NULL, &n));
  EXPECT_STATUS(STRATA_ERR_INVALID_HANDLE, strata_load_done(NULL, &done));
  EXPECT_STATUS(STRATA_ERR_INVALID_HANDLE, strata_load_wait(NULL, 0));
  EXPECT_STATUS(STRATA_ERR_INVALID_HANDLE, strata_load_block_state(NULL, 0, &state));
  EXPECT_STATUS(STRATA_ERR_INVALID_HANDLE, strata_load_block_error(NULL, 0, NULL, NULL));
  EXPECT_STATUS(STRATA_ERR_INVALID_HANDLE, strata_load_usable_blocks(NULL, &n));
  EXPECT_STATUS(STRATA_ERR_INVALID_HANDLE, strata_load_usable_tokens(NULL, &n));
  EXPECT_STATUS(STRATA_ERR_INVALID_HANDLE, strata_load_cancel(NULL));
  EXPECT_STATUS(STRATA_OK, strata_load_destroy(NULL));
  EXPECT_STATUS(STRATA_ERR_INVALID_HANDLE, strata_store_num_blocks(NULL, &n));
  EXPECT_STATUS(STRATA_ERR_INVALID_HANDLE, strata_store_done(NULL, &done));
  EXPECT_STATUS(STRATA_ERR_INVALID_HANDLE, strata_store_wait(NULL, 0));
  EXPECT_STATUS(STRATA_ERR_INVALID_HANDLE, strata_store_block_state(NULL, 0, &state));
  EXPECT_STATUS(STRATA_ERR_INVALID_HANDLE, strata_store_block_error(NULL, 0, NULL, NULL));
  EXPECT_STATUS(STRATA_ERR_INVALID_HANDLE, strata_store_cancel(NULL));
  EXPECT_STATUS(STRATA_OK, strata_store_destroy(NULL));
  EXPECT_STATUS(STRATA_ERR_INVALID_HANDLE, strata_store_destroy((strata_store*)&fake));
  EXPECT_TRUE(strata_kv_layout_block_bytes(NULL) == 0);
  EXPECT_TRUE(strata_kv_layout_block_bytes(&layout) == 0); /* all zero: invalid */
}

/* Everything that needs a live manager. */
static void test_with_manager(void) {
  strata_manager* m = NULL;
  strata_manager* other = NULL;
  strata_kv_layout layout;
  strata_device_cache d;
  Cache cache;
  strata_request req;
  strata_match* match = NULL;
  strata_match* other_match = NULL;
  strata_load* load = NULL;
  strata_store* store = NULL;
  strata_match_info info;
  strata_stats stats;
  strata_block_state state;
  strata_status code;
  const char* message = NULL;
  uint8_t tiers[4];
  uint32_t blocks[2] = {1, 5};
  uint32_t bad_blocks[2] = {1, kBlocks};
  int32_t tokens[9];
  size_t i, n = 0, len = 0;
  int layer, comp, done = 0;
  char small[8];
  char* text;

  for (i = 0; i < 9; ++i) tokens[i] = (int32_t)(100 + i); /* 2 full blocks + 1 token */
  EXPECT_STATUS(STRATA_OK, strata_manager_create_from_toml(kConfig, STRATA_CONFIG_IGNORE_ENV, &m));
  if (m == NULL) return;
  EXPECT_STATUS(STRATA_OK, strata_manager_layout(m, &layout));
  EXPECT_TRUE(layout.num_layers == kLayers && layout.tokens_per_block == kTokensPerBlock);
  EXPECT_TRUE(strata_kv_layout_block_bytes(&layout) == 512);
  EXPECT_STATUS(STRATA_ERR_INVALID_ARGUMENT, strata_manager_layout(m, NULL));
  cache_init(&cache, &layout);
  strata_request_init(&req);
  req.request_id = "req-1";

  /* Loads and stores before a device cache is registered. */
  EXPECT_STATUS(STRATA_OK, strata_manager_match(m, &req, tokens, 9, &match));
  EXPECT_STATUS(STRATA_ERR_INVALID_ARGUMENT,
                strata_manager_store(m, &req, tokens, 9, 0, blocks, 2, &store));
  EXPECT_STATUS(STRATA_OK, strata_match_destroy(match));
  match = NULL;

  /* Malformed device caches. */
  EXPECT_STATUS(STRATA_ERR_INVALID_ARGUMENT, strata_manager_register_device_cache(m, NULL));
  describe(&cache, &layout, &d);
  d.struct_size = 4;
  EXPECT_STATUS(STRATA_ERR_INVALID_ARGUMENT, strata_manager_register_device_cache(m, &d));
  EXPECT_ERROR_MENTIONS("struct_size");
  describe(&cache, &layout, &d);
  d.layout.head_dim = 16; /* wrong layout */
  EXPECT_STATUS(STRATA_ERR_INVALID_ARGUMENT, strata_manager_register_device_cache(m, &d));
  describe(&cache, &layout, &d);
  d.layout.dtype = 42;
  EXPECT_STATUS(STRATA_ERR_INVALID_ARGUMENT, strata_manager_register_device_cache(m, &d));
  EXPECT_ERROR_MENTIONS("layout.dtype");
  describe(&cache, &layout, &d);
  d.device_order = 7;
  EXPECT_STATUS(STRATA_ERR_INVALID_ARGUMENT, strata_manager_register_device_cache(m, &d));
  describe(&cache, &layout, &d);
  d.memory_kind = 9;
  EXPECT_STATUS(STRATA_ERR_INVALID_ARGUMENT, strata_manager_register_device_cache(m, &d));
  describe(&cache, &layout, &d);
  d.num_layers = 1;
  EXPECT_STATUS(STRATA_ERR_INVALID_ARGUMENT, strata_manager_register_device_cache(m, &d));
  describe(&cache, &layout, &d);
  d.layer_base = NULL;
  EXPECT_STATUS(STRATA_ERR_INVALID_ARGUMENT, strata_manager_register_device_cache(m, &d));
  describe(&cache, &layout, &d);
  d.block_stride_bytes = cache.chunk / 2; /* chunks would overlap */
  EXPECT_STATUS(STRATA_ERR_INVALID_ARGUMENT, strata_manager_register_device_cache(m, &d));
  EXPECT_ERROR_MENTIONS("overlap");
  describe(&cache, &layout, &d);
  d.num_blocks = 0;
  EXPECT_STATUS(STRATA_ERR_INVALID_ARGUMENT, strata_manager_register_device_cache(m, &d));
  describe(&cache, &layout, &d);
  EXPECT_STATUS(STRATA_OK, strata_manager_register_device_cache(m, &d));

  /* Malformed requests. */
  EXPECT_STATUS(STRATA_ERR_INVALID_ARGUMENT, strata_manager_match(m, NULL, tokens, 9, &match));
  req.request_id = "";
  EXPECT_STATUS(STRATA_ERR_INVALID_ARGUMENT, strata_manager_match(m, &req, tokens, 9, &match));
  EXPECT_ERROR_MENTIONS("request_id");
  req.request_id = "req-1";
  req.struct_size = 0;
  EXPECT_STATUS(STRATA_ERR_INVALID_ARGUMENT, strata_manager_match(m, &req, tokens, 9, &match));
  strata_request_init(&req);
  req.request_id = "req-1";
  EXPECT_STATUS(STRATA_ERR_INVALID_ARGUMENT, strata_manager_match(m, &req, NULL, 9, &match));
  EXPECT_STATUS(STRATA_ERR_INVALID_ARGUMENT, strata_manager_match(m, &req, tokens, 9, NULL));
  EXPECT_TRUE(match == NULL);

  /* Stores: unknown device block ids and ranges past the prompt. */
  for (layer = 0; layer < kLayers; ++layer)
    for (comp = 0; comp < 2; ++comp)
      for (i = 0; i < 2; ++i)
        memset(chunk_at(&cache, layer, comp, (int)blocks[i]), 1 + layer * 8 + comp * 4 + (int)i,
               cache.chunk);
  EXPECT_STATUS(STRATA_ERR_INVALID_ARGUMENT,
                strata_manager_store(m, &req, tokens, 9, 0, bad_blocks, 2, &store));
  EXPECT_ERROR_MENTIONS("out of range");
  EXPECT_STATUS(STRATA_ERR_INVALID_ARGUMENT,
                strata_manager_store(m, &req, tokens, 9, 1, blocks, 2, &store));
  EXPECT_STATUS(STRATA_ERR_INVALID_ARGUMENT,
                strata_manager_store(m, &req, tokens, 9, 0, NULL, 2, &store));
  EXPECT_STATUS(STRATA_OK, strata_manager_store(m, &req, tokens, 9, 0, blocks, 2, &store));
  EXPECT_STATUS(STRATA_OK, strata_store_wait(store, -1));
  EXPECT_STATUS(STRATA_OK, strata_store_num_blocks(store, &n));
  EXPECT_TRUE(n == 2);
  EXPECT_STATUS(STRATA_OK, strata_store_block_state(store, 1, &state));
  EXPECT_TRUE(state == STRATA_BLOCK_DONE);
  EXPECT_STATUS(STRATA_ERR_INVALID_ARGUMENT, strata_store_block_state(store, 2, &state));
  EXPECT_STATUS(STRATA_ERR_INVALID_ARGUMENT, strata_store_block_state(store, 0, NULL));
  EXPECT_STATUS(STRATA_OK, strata_store_block_error(store, 0, &code, &message));
  EXPECT_TRUE(code == STRATA_OK && message != NULL && message[0] == '\0');
  EXPECT_STATUS(STRATA_OK, strata_store_destroy(store));
  /* Double destroy and use after destroy are detected (the address is not reused yet). */
  EXPECT_STATUS(STRATA_ERR_INVALID_HANDLE, strata_store_destroy(store));
  EXPECT_STATUS(STRATA_ERR_INVALID_HANDLE, strata_store_done(store, &done));
  /* A store handle is not a load handle. */
  EXPECT_STATUS(STRATA_OK, strata_manager_store(m, &req, tokens, 9, 0, blocks, 2, &store));
  EXPECT_STATUS(STRATA_ERR_INVALID_HANDLE, strata_load_wait((const strata_load*)store, 0));
  EXPECT_ERROR_MENTIONS("not a live strata_load");
  EXPECT_STATUS(STRATA_OK, strata_store_wait(store, 10000));
  EXPECT_STATUS(STRATA_OK, strata_store_block_state(store, 0, &state));
  EXPECT_TRUE(state == STRATA_BLOCK_SKIPPED); /* already held */
  EXPECT_STATUS(STRATA_OK, strata_store_destroy(store));

  /* Match, then loads with bad arguments. */
  EXPECT_STATUS(STRATA_OK, strata_manager_match(m, &req, tokens, 9, &match));
  strata_match_info_init(&info);
  EXPECT_STATUS(STRATA_OK, strata_match_get_info(match, &info));
  EXPECT_TRUE(info.num_prompt_tokens == 9 && info.num_prompt_blocks == 2);
  EXPECT_TRUE(info.num_matched_blocks == 2 && info.num_matched_tokens == 8);
  info.struct_size = 3;
  EXPECT_STATUS(STRATA_ERR_INVALID_ARGUMENT, strata_match_get_info(match, &info));
  EXPECT_STATUS(STRATA_ERR_BUFFER_TOO_SMALL, strata_match_tiers(match, tiers, 1));
  EXPECT_STATUS(STRATA_OK, strata_match_tiers(match, tiers, 4));
  EXPECT_TRUE(tiers[0] == STRATA_TIER_HOST && tiers[1] == STRATA_TIER_HOST);
  EXPECT_STATUS(STRATA_ERR_INVALID_ARGUMENT,
                strata_manager_load(m, match, 0, bad_blocks, 2, &load));
  EXPECT_STATUS(STRATA_ERR_INVALID_ARGUMENT, strata_manager_load(m, match, 1, blocks, 2, &load));
  EXPECT_STATUS(STRATA_ERR_INVALID_ARGUMENT, strata_manager_load(m, match, 0, blocks, 2, NULL));
  EXPECT_STATUS(STRATA_ERR_INVALID_ARGUMENT,
                strata_manager_store_from_match(m, match, 2, blocks, 1, &store));
  /* A match belongs to its manager. */
  EXPECT_STATUS(STRATA_OK,
                strata_manager_create_from_toml(kConfig, STRATA_CONFIG_IGNORE_ENV, &other));
  EXPECT_STATUS(STRATA_ERR_INVALID_ARGUMENT,
                strata_manager_load(other, match, 0, blocks, 2, &load));
  EXPECT_ERROR_MENTIONS("another manager");
  EXPECT_STATUS(STRATA_OK, strata_manager_match(other, &req, tokens, 9, &other_match));
  EXPECT_STATUS(STRATA_ERR_INVALID_ARGUMENT,
                strata_manager_store_from_match(m, other_match, 0, blocks, 2, &store));
  EXPECT_STATUS(STRATA_OK, strata_match_destroy(other_match));
  EXPECT_STATUS(STRATA_OK, strata_manager_release(other, "req-1"));
  EXPECT_STATUS(STRATA_OK, strata_manager_destroy(other));
  EXPECT_STATUS(STRATA_ERR_INVALID_HANDLE, strata_manager_destroy(other)); /* double destroy */

  /* Clear the device blocks, load them back (into swapped places), compare the bytes. */
  for (layer = 0; layer < kLayers; ++layer)
    for (comp = 0; comp < 2; ++comp)
      for (i = 0; i < 2; ++i) memset(chunk_at(&cache, layer, comp, (int)blocks[i]), 0, cache.chunk);
  {
    uint32_t swapped[2] = {5, 1};
    int ok = 1;
    EXPECT_STATUS(STRATA_OK, strata_manager_load(m, match, 0, swapped, 2, &load));
    EXPECT_STATUS(STRATA_OK, strata_load_wait(load, 10000));
    EXPECT_STATUS(STRATA_OK, strata_load_done(load, &done));
    EXPECT_TRUE(done == 1);
    EXPECT_STATUS(STRATA_OK, strata_load_usable_blocks(load, &n));
    EXPECT_TRUE(n == 2);
    EXPECT_STATUS(STRATA_OK, strata_load_usable_tokens(load, &n));
    EXPECT_TRUE(n == 8);
    EXPECT_STATUS(STRATA_ERR_INVALID_ARGUMENT, strata_load_block_error(load, 9, &code, &message));
    EXPECT_STATUS(STRATA_OK, strata_load_cancel(load)); /* nothing left to cancel */
    for (layer = 0; layer < kLayers; ++layer)
      for (comp = 0; comp < 2; ++comp)
        for (i = 0; i < 2; ++i) {
          const unsigned char* p = chunk_at(&cache, layer, comp, (int)swapped[i]);
          size_t k;
          for (k = 0; k < cache.chunk; ++k)
            if (p[k] != (unsigned char)(1 + layer * 8 + comp * 4 + (int)i)) ok = 0;
        }
    EXPECT_TRUE(ok);
    /* The padding between blocks was not written. */
    EXPECT_TRUE(chunk_at(&cache, 0, 0, 1)[cache.chunk] == 0);
    EXPECT_STATUS(STRATA_OK, strata_load_destroy(load));
    EXPECT_STATUS(STRATA_ERR_INVALID_HANDLE, strata_load_destroy(load));
    EXPECT_STATUS(STRATA_ERR_INVALID_HANDLE, strata_load_usable_blocks(load, &n));
  }
  EXPECT_STATUS(STRATA_OK, strata_manager_release(m, "req-1"));
  EXPECT_STATUS(STRATA_OK, strata_manager_release(m, "req-1")); /* releasing twice is harmless */
  EXPECT_STATUS(STRATA_ERR_INVALID_ARGUMENT, strata_manager_release(m, NULL));
  EXPECT_STATUS(STRATA_ERR_INVALID_ARGUMENT, strata_manager_cancel(m, NULL));
  EXPECT_STATUS(STRATA_OK, strata_match_destroy(match));
  EXPECT_STATUS(STRATA_ERR_INVALID_HANDLE, strata_match_destroy(match));
  EXPECT_STATUS(STRATA_ERR_INVALID_HANDLE, strata_match_get_info(match, &info));

  /* Pins. */
  EXPECT_STATUS(STRATA_OK, strata_manager_pin(m, &req, tokens, 9));
  EXPECT_STATUS(STRATA_OK, strata_manager_unpin(m, &req, tokens, 9));
  EXPECT_STATUS(STRATA_ERR_INVALID_ARGUMENT, strata_manager_pin(m, NULL, tokens, 9));
  EXPECT_STATUS(STRATA_OK, strata_manager_flush_disk(m)); /* no disk tier: nothing to do */

  /* Stats and metrics. */
  EXPECT_STATUS(STRATA_ERR_INVALID_ARGUMENT, strata_manager_stats(m, NULL));
  stats.struct_size = 16;
  EXPECT_STATUS(STRATA_ERR_INVALID_ARGUMENT, strata_manager_stats(m, &stats));
  strata_stats_init(&stats);
  EXPECT_STATUS(STRATA_OK, strata_manager_stats(m, &stats));
  EXPECT_TRUE(stats.stored_blocks == 2 && stats.loaded_blocks == 2 &&
              stats.store_skipped_blocks == 2);
  EXPECT_TRUE(stats.active_requests == 0 && stats.host_pinned_blocks == 0);
  EXPECT_TRUE(stats.struct_size == sizeof stats);
  EXPECT_STATUS(STRATA_ERR_INVALID_ARGUMENT,
                strata_manager_metrics_text(m, small, sizeof small, NULL));
  EXPECT_STATUS(STRATA_ERR_INVALID_ARGUMENT, strata_manager_metrics_text(m, NULL, 10, &len));
  EXPECT_STATUS(STRATA_ERR_BUFFER_TOO_SMALL,
                strata_manager_metrics_text(m, small, sizeof small, &len));
  EXPECT_TRUE(len > sizeof small);
  text = malloc(len + 4096);
  EXPECT_STATUS(STRATA_OK, strata_manager_metrics_text(m, text, len + 4096, &len));
  EXPECT_TRUE(strstr(text, "\nkvbm_offload_blocks_d2h 2\n") != NULL);
  EXPECT_TRUE(strlen(text) == len);
  free(text);

  EXPECT_STATUS(STRATA_OK, strata_manager_destroy(m));
  /* Use after destroy. */
  EXPECT_STATUS(STRATA_ERR_INVALID_HANDLE, strata_manager_match(m, &req, tokens, 9, &match));
  EXPECT_STATUS(STRATA_ERR_INVALID_HANDLE, strata_manager_destroy(m));
  cache_free(&cache);
}

int main(void) {
  test_status_names_and_version();
  test_create_errors();
  test_invalid_handles();
  test_with_manager();
  printf("%d passed, %d failed\n", passed, failed);
  return failed == 0 ? 0 : 1;
}
