// Encoders and decoders of the daemon protocol's payloads (see messages.h).
#include "daemon/messages.h"

#include <fmt/format.h>

namespace strata::daemon {
namespace {

constexpr size_t kKeyBytes = 32;
constexpr size_t kHeldBytes = 5;  // u8 tier, u32 id
constexpr size_t kMaxStats = 1024;

void PutHeld(Writer& w, const Held& h) {
  w.U8(static_cast<uint8_t>(h.tier));
  w.U32(h.id);
}
Held GetHeld(Reader& r, bool* bad) {
  const uint8_t t = r.U8();
  Held h{.tier = static_cast<Tier>(t), .id = r.U32()};
  if (t < static_cast<uint8_t>(Tier::kDevice) || t > static_cast<uint8_t>(Tier::kShared))
    *bad = true;
  return h;
}
void PutStatus(Writer& w, const Status& s) {
  w.U8(static_cast<uint8_t>(s.code()));
  w.Bytes(s.ok() ? std::string_view() : std::string_view(s.message()).substr(0, kMaxMessage));
}
Status GetStatus(Reader& r, bool* bad) {
  const uint8_t code = r.U8();
  std::string msg = r.Bytes(kMaxMessage);
  if (code > static_cast<uint8_t>(StatusCode::kInternal)) *bad = true;
  if (code == 0 || *bad) return Status::Ok();
  return Status::FromCode(static_cast<StatusCode>(code), std::move(msg));
}
// The decoder's verdict: the value, or what was wrong with the payload.
template <class T>
Result<T> Done(const Reader& r, bool bad, std::string_view what, T value) {
  if (bad)
    return Status::InvalidArgument(fmt::format("daemon protocol: out-of-range field in {}", what));
  STRATA_RETURN_IF_ERROR(r.Finish(what));
  return value;
}

}  // namespace

std::vector<std::byte> Encode(const Hello& m) {
  Writer w;
  w.U32(m.pid);
  w.Bytes(m.layout);
  w.U64(m.block_bytes);
  w.Bytes(m.token);
  w.Bytes(m.client_name);
  return std::move(w.data());
}
Result<Hello> DecodeHello(std::span<const std::byte> p) {
  Reader r(p);
  Hello m;
  m.pid = r.U32();
  m.layout = r.Bytes(kMaxMessage);
  m.block_bytes = r.U64();
  m.token = r.Bytes(64);
  m.client_name = r.Bytes(256);
  return Done(r, false, "hello", std::move(m));
}

std::vector<std::byte> Encode(const HelloOk& m) {
  Writer w;
  w.U64(m.session);
  w.Bytes(m.token);
  w.U64(m.daemon_instance);
  w.U32(m.slots);
  w.U64(m.block_bytes);
  w.U64(m.memory_bytes);
  return std::move(w.data());
}
Result<HelloOk> DecodeHelloOk(std::span<const std::byte> p) {
  Reader r(p);
  HelloOk m;
  m.session = r.U64();
  m.token = r.Bytes(64);
  m.daemon_instance = r.U64();
  m.slots = r.U32();
  m.block_bytes = r.U64();
  m.memory_bytes = r.U64();
  return Done(r, false, "hello_ok", std::move(m));
}

std::vector<std::byte> EncodeKeys(std::span<const BlockKey> keys) {
  Writer w;
  w.Reserve(4 + keys.size() * kKeyBytes);
  w.U32(static_cast<uint32_t>(keys.size()));
  for (const BlockKey& k : keys) w.Key(k);
  return std::move(w.data());
}
Result<std::vector<BlockKey>> DecodeKeys(std::span<const std::byte> p) {
  Reader r(p);
  std::vector<BlockKey> keys(r.Count(kKeyBytes, kMaxKeys));
  for (BlockKey& k : keys) k = r.Key();
  return Done(r, false, "key list", std::move(keys));
}

std::vector<std::byte> Encode(const MatchReply& m) {
  Writer w;
  w.Reserve(28 + m.held.size() * kHeldBytes);
  w.U64(m.from_host);
  w.U64(m.from_disk);
  w.U64(m.from_shared);
  w.U32(static_cast<uint32_t>(m.held.size()));
  for (const Held& h : m.held) PutHeld(w, h);
  return std::move(w.data());
}
Result<MatchReply> DecodeMatchReply(std::span<const std::byte> p) {
  Reader r(p);
  MatchReply m;
  m.from_host = r.U64();
  m.from_disk = r.U64();
  m.from_shared = r.U64();
  bool bad = false;
  m.held.resize(r.Count(kHeldBytes, kMaxKeys));
  for (Held& h : m.held) h = GetHeld(r, &bad);
  if (m.from_host + m.from_disk + m.from_shared != m.held.size()) bad = true;
  return Done(r, bad, "match_ok", std::move(m));
}

std::vector<std::byte> EncodeHeld(std::span<const Held> held) {
  Writer w;
  w.Reserve(4 + held.size() * kHeldBytes);
  w.U32(static_cast<uint32_t>(held.size()));
  for (const Held& h : held) PutHeld(w, h);
  return std::move(w.data());
}
Result<std::vector<Held>> DecodeHeld(std::span<const std::byte> p) {
  Reader r(p);
  bool bad = false;
  std::vector<Held> held(r.Count(kHeldBytes, kMaxKeys));
  for (Held& h : held) h = GetHeld(r, &bad);
  return Done(r, bad, "release", std::move(held));
}

std::vector<std::byte> EncodeReservations(std::span<const StoreReservation> res) {
  Writer w;
  w.Reserve(4 + res.size() * 10);
  w.U32(static_cast<uint32_t>(res.size()));
  for (const StoreReservation& r : res) {
    w.U8(static_cast<uint8_t>(r.state));
    w.U32(r.slot);
    PutStatus(w, r.why);
  }
  return std::move(w.data());
}
Result<std::vector<StoreReservation>> DecodeReservations(std::span<const std::byte> p) {
  Reader r(p);
  bool bad = false;
  std::vector<StoreReservation> res(r.Count(10, kMaxKeys));
  for (StoreReservation& s : res) {
    s.state = static_cast<BlockState>(r.U8());
    s.slot = r.U32();
    s.why = GetStatus(r, &bad);
    if (s.state != BlockState::kPending && s.state != BlockState::kSkipped &&
        s.state != BlockState::kDropped)
      bad = true;
  }
  return Done(r, bad, "reserve_ok", std::move(res));
}

std::vector<std::byte> EncodeOutcomes(std::span<const StoreOutcome> outcomes) {
  Writer w;
  w.U32(static_cast<uint32_t>(outcomes.size()));
  for (const StoreOutcome& o : outcomes) {
    w.U32(o.slot);
    w.U8(o.ok);
  }
  return std::move(w.data());
}
Result<std::vector<StoreOutcome>> DecodeOutcomes(std::span<const std::byte> p) {
  Reader r(p);
  bool bad = false;
  std::vector<StoreOutcome> out(r.Count(5, kMaxKeys));
  for (StoreOutcome& o : out) {
    o.slot = r.U32();
    o.ok = r.U8();
    if (o.ok > 1) bad = true;
  }
  return Done(r, bad, "finish_store", std::move(out));
}

std::vector<std::byte> EncodeLoadBlocks(std::span<const LoadBlock> blocks) {
  Writer w;
  w.Reserve(4 + blocks.size() * (kKeyBytes + kHeldBytes));
  w.U32(static_cast<uint32_t>(blocks.size()));
  for (const LoadBlock& b : blocks) {
    w.Key(b.key);
    PutHeld(w, b.held);
  }
  return std::move(w.data());
}
Result<std::vector<LoadBlock>> DecodeLoadBlocks(std::span<const std::byte> p) {
  Reader r(p);
  bool bad = false;
  std::vector<LoadBlock> blocks(r.Count(kKeyBytes + kHeldBytes, kMaxKeys));
  for (LoadBlock& b : blocks) {
    b.key = r.Key();
    b.held = GetHeld(r, &bad);
    if (b.held.tier == Tier::kDevice) bad = true;  // nothing to load
  }
  return Done(r, bad, "prepare_load", std::move(blocks));
}

std::vector<std::byte> Encode(const LoadRoundReply& m) {
  Writer w;
  w.U64(m.round);
  w.U32(static_cast<uint32_t>(m.blocks.size()));
  for (size_t i = 0; i < m.blocks.size(); ++i) {
    w.U32(m.blocks[i]);
    w.U32(m.src[i]);
    PutStatus(w, m.status[i]);
  }
  return std::move(w.data());
}
Result<LoadRoundReply> DecodeLoadRoundReply(std::span<const std::byte> p) {
  Reader r(p);
  LoadRoundReply m;
  m.round = r.U64();
  bool bad = false;
  const uint32_t n = r.Count(13, kMaxKeys);
  m.blocks.resize(n);
  m.src.resize(n);
  m.status.resize(n);
  for (uint32_t i = 0; i < n; ++i) {
    m.blocks[i] = r.U32();
    m.src[i] = r.U32();
    m.status[i] = GetStatus(r, &bad);
  }
  return Done(r, bad, "prepare_load_ok", std::move(m));
}

std::vector<std::byte> EncodeU64(uint64_t v) {
  Writer w;
  w.U64(v);
  return std::move(w.data());
}
Result<uint64_t> DecodeU64(std::span<const std::byte> p) {
  Reader r(p);
  const uint64_t v = r.U64();
  return Done(r, false, "u64 message", v);
}

std::vector<std::byte> EncodePin(bool pin, std::span<const BlockKey> keys) {
  Writer w;
  w.U8(pin ? 1 : 0);
  std::vector<std::byte> k = EncodeKeys(keys);
  w.data().insert(w.data().end(), k.begin(), k.end());
  return std::move(w.data());
}
Result<std::pair<bool, std::vector<BlockKey>>> DecodePin(std::span<const std::byte> p) {
  if (p.empty() || static_cast<uint8_t>(p[0]) > 1)
    return Status::InvalidArgument("daemon protocol: malformed pin");
  STRATA_ASSIGN_OR_RETURN(std::vector<BlockKey> keys, DecodeKeys(p.subspan(1)));
  return std::pair{p[0] == std::byte{1}, std::move(keys)};
}

std::vector<std::byte> EncodeStats(const BlockManagerStats& s) {
  Writer w;
  uint32_t n = 0;
#define STRATA_COUNT(name) ++n;
  STRATA_BLOCK_MANAGER_STATS(STRATA_COUNT)
#undef STRATA_COUNT
  w.U32(n);
#define STRATA_PUT(name) w.U64(static_cast<uint64_t>(s.name));
  STRATA_BLOCK_MANAGER_STATS(STRATA_PUT)
#undef STRATA_PUT
  return std::move(w.data());
}
Result<BlockManagerStats> DecodeStats(std::span<const std::byte> p) {
  Reader r(p);
  uint32_t n = r.Count(8, kMaxStats);
  BlockManagerStats s;
#define STRATA_GET(name)                             \
  if (n > 0) {                                       \
    s.name = static_cast<decltype(s.name)>(r.U64()); \
    --n;                                             \
  }
  STRATA_BLOCK_MANAGER_STATS(STRATA_GET)
#undef STRATA_GET
  while (n-- > 0) r.U64();  // fields of a newer daemon
  return Done(r, false, "stats_ok", s);
}

std::vector<std::byte> EncodeErrorPayload(const Status& s) {
  Writer w;
  EncodeError(s, &w);
  return std::move(w.data());
}

Status DecodeStatusPayload(std::span<const std::byte> p, Status* carried) {
  Reader r(p);
  bool bad = false;
  *carried = GetStatus(r, &bad);
  if (bad) return Status::InvalidArgument("daemon protocol: malformed status");
  return r.Finish("status");
}

}  // namespace strata::daemon
