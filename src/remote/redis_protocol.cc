#include "remote/redis_protocol.h"

#include <array>
#include <charconv>

#include <fmt/format.h>
#include <hiredis/hiredis.h>

namespace strata::remote {
namespace {

// The CRC16 table, built at compile time from the polynomial.
constexpr std::array<uint16_t, 256> MakeCrc16Table() {
  std::array<uint16_t, 256> table{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint16_t crc = static_cast<uint16_t>(i << 8);
    for (int bit = 0; bit < 8; ++bit)
      crc = (crc & 0x8000) ? static_cast<uint16_t>((crc << 1) ^ 0x1021)
                           : static_cast<uint16_t>(crc << 1);
    table[i] = crc;
  }
  return table;
}
constexpr std::array<uint16_t, 256> kCrc16Table = MakeCrc16Table();

// hiredis's own reply functions (static in hiredis.c), as a reader of its default kind has them.
const redisReplyObjectFunctions& HiredisReplyFunctions() {
  static const redisReplyObjectFunctions functions = [] {
    redisReader* probe = redisReaderCreate();
    const redisReplyObjectFunctions f = *probe->fn;
    redisReaderFree(probe);
    return f;
  }();
  return functions;
}

// createArray of CreateRedisReplyReader: charges the reply's budget first.
void* CreateBoundedArray(const redisReadTask* task, int elements) {
  auto* budget = static_cast<RedisReplyBudget*>(task->privdata);
  if (task->parent == nullptr) budget->elements = 0;  // the outermost array of a new reply
  const size_t n = elements > 0 ? static_cast<size_t>(elements) : 0;
  if (n > kMaxRedisReplyElements - budget->elements) {
    budget->exceeded = true;
    return nullptr;  // hiredis: "Out of memory", the reply is freed
  }
  budget->elements += n;
  return HiredisReplyFunctions().createArray(task, elements);
}

std::optional<uint16_t> ParsePort(std::string_view text) {
  uint32_t port = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), port);
  if (ec != std::errc() || end != text.data() + text.size() || port == 0 || port > 65535)
    return std::nullopt;
  return static_cast<uint16_t>(port);
}

}  // namespace

std::string RedisEndpoint::ToString() const {
  if (host.find(':') != std::string::npos) return fmt::format("[{}]:{}", host, port);
  return fmt::format("{}:{}", host, port);
}

Result<RedisEndpoint> ParseRedisEndpoint(std::string_view text) {
  auto bad = [&](std::string_view why) {
    return Status::InvalidArgument(
        fmt::format("redis endpoint '{}' is not host:port ({})", text, why));
  };
  RedisEndpoint endpoint;
  std::string_view port_text;
  if (!text.empty() && text.front() == '[') {
    const size_t close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':')
      return bad("an IPv6 literal must be written [addr]:port");
    endpoint.host = std::string(text.substr(1, close - 1));
    port_text = text.substr(close + 2);
  } else {
    const size_t colon = text.rfind(':');
    if (colon == std::string_view::npos) return bad("no port");
    endpoint.host = std::string(text.substr(0, colon));
    if (endpoint.host.find(':') != std::string::npos)
      return bad("an IPv6 literal must be written [addr]:port");
    port_text = text.substr(colon + 1);
  }
  if (endpoint.host.empty()) return bad("empty host");
  // Else "[[x]:1" would give a host "[x" whose ToString() does not parse.
  if (endpoint.host.find_first_of("[]") != std::string::npos)
    return bad("brackets only enclose a whole IPv6 literal");
  const std::optional<uint16_t> port = ParsePort(port_text);
  if (!port) return bad("port must be 1-65535");
  endpoint.port = *port;
  return endpoint;
}

uint16_t RedisCrc16(std::string_view bytes) {
  uint16_t crc = 0;
  for (const char c : bytes)
    crc = static_cast<uint16_t>((crc << 8) ^
                                kCrc16Table[((crc >> 8) ^ static_cast<uint8_t>(c)) & 0xff]);
  return crc;
}

uint16_t RedisHashSlot(std::string_view key) {
  const size_t open = key.find('{');
  if (open != std::string_view::npos) {
    const size_t close = key.find('}', open + 1);
    if (close != std::string_view::npos && close > open + 1)
      key = key.substr(open + 1, close - open - 1);
  }
  return static_cast<uint16_t>(RedisCrc16(key) & (kRedisClusterSlots - 1));
}

std::optional<RedisRedirect> ParseRedisRedirect(std::string_view error,
                                                std::string_view answering_host) {
  RedisRedirect redirect;
  if (error.starts_with("MOVED ")) {
    redirect.kind = RedisRedirect::Kind::kMoved;
    error.remove_prefix(6);
  } else if (error.starts_with("ASK ")) {
    redirect.kind = RedisRedirect::Kind::kAsk;
    error.remove_prefix(4);
  } else {
    return std::nullopt;
  }
  const size_t space = error.find(' ');
  if (space == std::string_view::npos) return std::nullopt;
  uint32_t slot = 0;
  auto [end, ec] = std::from_chars(error.data(), error.data() + space, slot);
  if (ec != std::errc() || end != error.data() + space || slot >= kRedisClusterSlots)
    return std::nullopt;
  redirect.slot = static_cast<uint16_t>(slot);
  // The address is host:port split at the last colon: Redis writes IPv6 hosts unbracketed.
  const std::string_view target = error.substr(space + 1);
  const size_t colon = target.rfind(':');
  if (colon == std::string_view::npos) return std::nullopt;
  const std::optional<uint16_t> port = ParsePort(target.substr(colon + 1));
  if (!port) return std::nullopt;
  std::string_view host = target.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  // An empty host ("MOVED 12 :7001") means the node that answered.
  redirect.target = RedisEndpoint{std::string(host.empty() ? answering_host : host), *port};
  return redirect;
}

redisReader* CreateRedisReplyReader(RedisReplyBudget* budget) {
  static redisReplyObjectFunctions bounded = [] {
    redisReplyObjectFunctions f = HiredisReplyFunctions();
    f.createArray = &CreateBoundedArray;
    return f;
  }();
  redisReader* reader = redisReaderCreateWithFunctions(&bounded);
  if (reader != nullptr) reader->privdata = budget;
  return reader;
}

Result<std::vector<RedisSlotRange>> ParseClusterSlots(const redisReply& reply,
                                                      std::string_view answering_host) {
  if (reply.type != REDIS_REPLY_ARRAY)
    return Status::Unavailable("redis: CLUSTER SLOTS did not return an array");
  std::vector<RedisSlotRange> ranges;
  ranges.reserve(reply.elements);
  for (size_t i = 0; i < reply.elements; ++i) {
    const redisReply* range = reply.element[i];
    if (range->type != REDIS_REPLY_ARRAY || range->elements < 3 ||
        range->element[0]->type != REDIS_REPLY_INTEGER ||
        range->element[1]->type != REDIS_REPLY_INTEGER ||
        range->element[2]->type != REDIS_REPLY_ARRAY || range->element[2]->elements < 2 ||
        range->element[2]->element[0]->type != REDIS_REPLY_STRING ||
        range->element[2]->element[1]->type != REDIS_REPLY_INTEGER)
      return Status::Unavailable(fmt::format("redis: malformed CLUSTER SLOTS entry {}", i));
    const long long first = range->element[0]->integer, last = range->element[1]->integer;
    const redisReply* master = range->element[2];
    const long long port = master->element[1]->integer;
    if (first < 0 || last >= kRedisClusterSlots || first > last || port <= 0 || port > 65535)
      return Status::Unavailable(fmt::format(
          "redis: CLUSTER SLOTS entry {} has slots {}-{} port {}", i, first, last, port));
    const std::string_view ip(master->element[0]->str, master->element[0]->len);
    ranges.push_back(RedisSlotRange{
        static_cast<uint16_t>(first), static_cast<uint16_t>(last),
        RedisEndpoint{std::string(ip.empty() ? answering_host : ip), static_cast<uint16_t>(port)}});
  }
  return ranges;
}

}  // namespace strata::remote
