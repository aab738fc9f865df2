// Pure functions of the Redis protocol that the Redis store needs and tests check without a
// server: endpoint parsing, cluster hash slots (CRC16), MOVED/ASK redirections, the
// CLUSTER SLOTS reply and a reply reader with bounded memory.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "strata/status.h"

struct redisReader;  // hiredis
struct redisReply;

namespace strata::remote {

inline constexpr uint32_t kRedisClusterSlots = 16384;

// One server: a host name or IP literal and a TCP port.
struct RedisEndpoint {
  std::string host;
  uint16_t port = 0;

  // "host:port", or "[v6]:port" for an IPv6 literal.
  std::string ToString() const;
  friend bool operator==(const RedisEndpoint&, const RedisEndpoint&) = default;
};

// Parses "host:port" or "[v6addr]:port". InvalidArgument naming the text when malformed.
Result<RedisEndpoint> ParseRedisEndpoint(std::string_view text);

// CRC16-CCITT (XMODEM: polynomial 0x1021, initial value 0), the checksum Redis Cluster uses.
uint16_t RedisCrc16(std::string_view bytes);

// The cluster hash slot of `key`: CRC16 of the key mod 16384, or of the text between the
// first '{' and the next '}' when that text is non-empty (a hash tag).
uint16_t RedisHashSlot(std::string_view key);

// A cluster redirection carried by an error reply: "MOVED <slot> <host>:<port>" (the slot
// now lives there; refresh the map) or "ASK <slot> <host>:<port>" (ask there once, after
// ASKING, while the slot migrates).
struct RedisRedirect {
  enum class Kind : uint8_t { kMoved, kAsk };
  Kind kind = Kind::kMoved;
  uint16_t slot = 0;
  RedisEndpoint target;
};

// The redirection in error reply text `error`, or nullopt when it is not one. An empty host
// ("MOVED 12 :7001", sent when the node has no known address to announce) means the host
// of the node that answered, `answering_host`.
std::optional<RedisRedirect> ParseRedisRedirect(std::string_view error,
                                                std::string_view answering_host);

// One entry of a CLUSTER SLOTS reply: slots [first, last] are served by `master`.
struct RedisSlotRange {
  uint16_t first = 0;
  uint16_t last = 0;
  RedisEndpoint master;
};

// The ranges of CLUSTER SLOTS reply `reply`, an array of [first slot, last slot, [ip, port,
// id, ...] (the master), replicas...]. An empty ip means `answering_host`, the node that
// answered. Unavailable naming the first malformed entry (wrong shape, slots outside
// 0-16383 or reversed, port outside 1-65535) or when `reply` is not an array.
Result<std::vector<RedisSlotRange>> ParseClusterSlots(const redisReply& reply,
                                                      std::string_view answering_host);

// The most elements the arrays of one reply may hold together. hiredis 0.14 allocates an
// array's element pointers as soon as it reads the count, before any element arrives, so
// without a bound the 13 bytes "*2147483647\r\n" from a server cost 16 GiB. The largest
// reply Strata reads, CLUSTER SLOTS, holds about 20 elements per slot range.
inline constexpr size_t kMaxRedisReplyElements = size_t{1} << 20;

// What a reader of CreateRedisReplyReader counts. Owned by the caller; outlives the reader.
struct RedisReplyBudget {
  size_t elements = 0;    // array elements of the reply being read
  bool exceeded = false;  // a reply went over kMaxRedisReplyElements
};

// A hiredis reply reader (free it with redisReaderFree) that fails a reply whose arrays
// would hold more than kMaxRedisReplyElements elements, before allocating them: hiredis's
// out-of-memory error, with `budget->exceeded` set.
redisReader* CreateRedisReplyReader(RedisReplyBudget* budget);

}  // namespace strata::remote
