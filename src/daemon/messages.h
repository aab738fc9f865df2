// The payloads of the daemon protocol's messages (docs/daemon_protocol.md), each with an
// encoder and a decoder that refuses anything malformed, truncated or padded.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "daemon/protocol.h"
#include "manager/tier_service.h"

namespace strata::daemon {

// kHello: who the client is and the geometry it expects. A session's first socket sends an
// empty token; each further socket of the session sends the token kHelloOk returned.
struct Hello {
  uint32_t pid = 0;
  std::string layout;  // KvLayout::ToString() of the client's blocks
  uint64_t block_bytes = 0;
  std::string token;  // empty, or the session's
  std::string client_name;
};

// kHelloOk: the session and the G2 shared memory (its memfd rides along, SCM_RIGHTS, on the
// first socket only).
struct HelloOk {
  uint64_t session = 0;
  std::string token;
  uint64_t daemon_instance = 0;  // changes with every daemon start
  uint32_t slots = 0;            // host slots in the memory (staging included)
  uint64_t block_bytes = 0;
  uint64_t memory_bytes = 0;  // bytes to map
};

// kMatchOk.
struct MatchReply {
  std::vector<Held> held;  // epoch 0; the client sets its own
  uint64_t from_host = 0, from_disk = 0, from_shared = 0;
};

// kFinishStore: one entry per reserved slot.
struct StoreOutcome {
  uint32_t slot = 0;
  uint8_t ok = 0;
};

// kPrepareLoad: the pending blocks of a load (indices are positions in this list).
struct LoadBlock {
  BlockKey key;
  Held held;
};

// kPrepareLoadOk: the daemon keeps what the round holds under `round`.
struct LoadRoundReply {
  uint64_t round = 0;
  std::vector<uint32_t> blocks;  // positions in the request's list
  std::vector<uint32_t> src;
  std::vector<Status> status;
};

std::vector<std::byte> Encode(const Hello& m);
std::vector<std::byte> Encode(const HelloOk& m);
std::vector<std::byte> EncodeKeys(std::span<const BlockKey> keys);
std::vector<std::byte> Encode(const MatchReply& m);
std::vector<std::byte> EncodeHeld(std::span<const Held> held);
std::vector<std::byte> EncodeReservations(std::span<const StoreReservation> r);
std::vector<std::byte> EncodeOutcomes(std::span<const StoreOutcome> o);
std::vector<std::byte> EncodeLoadBlocks(std::span<const LoadBlock> b);
std::vector<std::byte> Encode(const LoadRoundReply& m);
std::vector<std::byte> EncodeU64(uint64_t v);
std::vector<std::byte> EncodePin(bool pin, std::span<const BlockKey> keys);
std::vector<std::byte> EncodeStats(const BlockManagerStats& s);
// kError and kOk payloads: a status (kOk carries OK, or a Pin's or Flush's own error).
std::vector<std::byte> EncodeErrorPayload(const Status& s);
// The status a kOk payload carries; a malformed payload is InvalidArgument.
Status DecodeStatusPayload(std::span<const std::byte> p, Status* carried);

Result<Hello> DecodeHello(std::span<const std::byte> p);
Result<HelloOk> DecodeHelloOk(std::span<const std::byte> p);
Result<std::vector<BlockKey>> DecodeKeys(std::span<const std::byte> p);
Result<MatchReply> DecodeMatchReply(std::span<const std::byte> p);
Result<std::vector<Held>> DecodeHeld(std::span<const std::byte> p);
Result<std::vector<StoreReservation>> DecodeReservations(std::span<const std::byte> p);
Result<std::vector<StoreOutcome>> DecodeOutcomes(std::span<const std::byte> p);
Result<std::vector<LoadBlock>> DecodeLoadBlocks(std::span<const std::byte> p);
Result<LoadRoundReply> DecodeLoadRoundReply(std::span<const std::byte> p);
Result<uint64_t> DecodeU64(std::span<const std::byte> p);
Result<std::pair<bool, std::vector<BlockKey>>> DecodePin(std::span<const std::byte> p);
// Fields the peer did not send (an older daemon) stay zero; extra ones are ignored.
Result<BlockManagerStats> DecodeStats(std::span<const std::byte> p);

}  // namespace strata::daemon
