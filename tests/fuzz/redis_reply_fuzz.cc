// libFuzzer harness: Redis replies in memory. The input is a byte stream from a server;
// the reader RedisConnection::ReadReply uses (hiredis's, with Strata's bound on array
// elements: CreateRedisReplyReader) turns it into replies, and each
// goes through what RedisStore makes of it (redis_fuzz_util.h): CLUSTER SLOTS ranges,
// MOVED/ASK redirections, endpoints. redis_connection_fuzz covers the socket-level reader.
#include <hiredis/hiredis.h>

#include <cstddef>
#include <cstdint>

#include "redis_fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  strata::remote::RedisReplyBudget budget;
  redisReader* reader = strata::remote::CreateRedisReplyReader(&budget);
  if (redisReaderFeed(reader, reinterpret_cast<const char*>(data), size) == REDIS_OK) {
    void* reply = nullptr;
    while (redisReaderGetReply(reader, &reply) == REDIS_OK && reply != nullptr) {
      strata::fuzz::CheckReply(*static_cast<const redisReply*>(reply));
      freeReplyObject(reply);
    }
  }
  redisReaderFree(reader);
  return 0;
}
