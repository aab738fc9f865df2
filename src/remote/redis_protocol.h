// Pure functions of the Redis protocol that the Redis store needs and tests check without a
// server: endpoint parsing, cluster hash slots (CRC16) and MOVED/ASK redirections.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "strata/status.h"

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

}  // namespace strata::remote
