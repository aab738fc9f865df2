// What both Redis harnesses check of each reply the hiredis reader produces: the
// interpretation RedisStore gives it (CLUSTER SLOTS ranges, MOVED/ASK redirections) and the
// endpoint and hash-slot functions on its text.
#pragma once

#include <hiredis/hiredis.h>

#include <cstdlib>
#include <string_view>
#include <vector>

#include "remote/redis_protocol.h"

namespace strata::fuzz {

inline constexpr std::string_view kAnsweringHost = "10.0.0.9";

inline void CheckReplyText(std::string_view text) {
  if (remote::RedisHashSlot(text) >= remote::kRedisClusterSlots) std::abort();
  if (const auto redirect = remote::ParseRedisRedirect(text, kAnsweringHost)) {
    if (redirect->slot >= remote::kRedisClusterSlots || redirect->target.port == 0 ||
        redirect->target.host.empty())
      std::abort();
  }
  // An endpoint parses back from its own ToString().
  if (const Result<remote::RedisEndpoint> e = remote::ParseRedisEndpoint(text); e.ok()) {
    const Result<remote::RedisEndpoint> again = remote::ParseRedisEndpoint(e->ToString());
    if (!again.ok() || !(*again == *e)) std::abort();
  }
}

inline void CheckReply(const redisReply& reply) {
  switch (reply.type) {
    case REDIS_REPLY_ARRAY: {
      const Result<std::vector<remote::RedisSlotRange>> ranges =
          remote::ParseClusterSlots(reply, kAnsweringHost);
      if (ranges.ok()) {
        for (const remote::RedisSlotRange& r : *ranges)
          if (r.first > r.last || r.last >= remote::kRedisClusterSlots || r.master.port == 0 ||
              r.master.host.empty())
            std::abort();
      } else if (ranges.status().code() != StatusCode::kUnavailable) {
        std::abort();
      }
      for (size_t i = 0; i < reply.elements; ++i) CheckReply(*reply.element[i]);
      break;
    }
    case REDIS_REPLY_STRING:
    case REDIS_REPLY_STATUS:
    case REDIS_REPLY_ERROR:
      CheckReplyText(std::string_view(reply.str, reply.len));
      break;
    default:
      break;
  }
}

}  // namespace strata::fuzz
