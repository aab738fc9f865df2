// libFuzzer harness: the `strata daemon` request path — frames (daemon::DecodeHeader), the
// payload decoders of src/daemon/messages.h, and daemon::Session::Dispatch over a real
// TierHierarchy (G2 only: 32 host slots of a 128-byte block, no G3 or G4).
//
// Input: what a client writes on its socket after its hello, a sequence of frames: a
// 16-byte header, then its payload. Decoding stops at the first bad header or when the
// input runs out, as DaemonServer::Serve does; a hello is skipped (the session is already
// there), every other frame is dispatched, and the first protocol violation ends the
// session. Every payload is also handed to every decoder of messages.h (none may crash; the
// strict ones re-encode what they accept to the same bytes), and every reply the session
// gives must decode with the client's decoder.
//
// Then the client goes away (Session::Close) and the invariant is checked: whatever it
// sent, it leaks nothing. No G2 lease is left, the session's ledger is empty, and G2 uses
// exactly the slots of the blocks it committed and that are still stored (no reservation
// left writing). Last the tier is brought back to its fresh state (unpinned, every slot
// free, slot 0 handed out first), so each input runs against the same tier; that step
// also checks that every slot can be reserved again.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <span>
#include <string>
#include <unordered_set>
#include <vector>

#include <spdlog/spdlog.h>

#include "daemon/messages.h"
#include "daemon/protocol.h"
#include "daemon/session.h"
#include "manager/tier_hierarchy.h"
#include "tier/host_tier.h"

using namespace strata;
using namespace strata::daemon;

namespace {

using Bytes = std::span<const std::byte>;
using KeySet = std::unordered_set<BlockKey, BlockKeyHash>;

constexpr uint32_t kHostBlocks = 32;

[[noreturn]] void Fail(const char* what) {
  std::fprintf(stderr, "daemon_protocol_fuzz: invariant violated: %s\n", what);
  std::abort();
}
void Check(bool ok, const char* what) {
  if (!ok) Fail(what);
}

// STRATA_FUZZ_TRACE=1: one line per frame on stderr (what an input does, e.g. a seed).
bool Trace() {
  static const bool trace = std::getenv("STRATA_FUZZ_TRACE") != nullptr;
  return trace;
}

bool Same(const std::vector<std::byte>& a, Bytes b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin());
}

TierHierarchy* Tiers() {
  static TierHierarchy* const tiers = [] {
    spdlog::set_level(spdlog::level::off);
    BlockManagerOptions o;
    o.model_fingerprint = "daemon-protocol-fuzz";
    o.layout = KvLayout{.num_layers = 1,
                        .num_kv_heads = 1,
                        .head_dim = 8,
                        .dtype = DType::kFloat16,
                        .tokens_per_block = 4};
    o.host.capacity_bytes = kHostBlocks * o.layout.block_bytes();
    o.host.pin_for_cuda = false;
    o.host.huge_pages = false;
    o.host.prefault = false;
    o.disk.capacity_bytes = 0;
    auto t = TierHierarchy::Create(o);
    if (!t.ok()) {
      std::fprintf(stderr, "daemon_protocol_fuzz: %s\n", t.status().ToString().c_str());
      std::abort();
    }
    return std::move(t).value().release();  // lives as long as the process
  }();
  return tiers;
}

BlockManagerStats Stats() {
  BlockManagerStats st;
  Tiers()->FillStats(&st);
  return st;
}

// Every decoder of messages.h on `p`: none may crash, and the strict ones re-encode what
// they accept to the same bytes.
void DecodeAll(Bytes p) {
  if (auto m = DecodeHello(p); m.ok()) Check(Same(Encode(*m), p), "hello round trip");
  if (auto m = DecodeHelloOk(p); m.ok()) Check(Same(Encode(*m), p), "hello_ok round trip");
  if (auto m = DecodeKeys(p); m.ok()) Check(Same(EncodeKeys(*m), p), "key list round trip");
  if (auto m = DecodeMatchReply(p); m.ok()) Check(Same(Encode(*m), p), "match_ok round trip");
  if (auto m = DecodeHeld(p); m.ok()) Check(Same(EncodeHeld(*m), p), "release round trip");
  if (auto m = DecodeOutcomes(p); m.ok())
    Check(Same(EncodeOutcomes(*m), p), "finish_store round trip");
  if (auto m = DecodeLoadBlocks(p); m.ok())
    Check(Same(EncodeLoadBlocks(*m), p), "prepare_load round trip");
  if (auto m = DecodeU64(p); m.ok()) Check(Same(EncodeU64(*m), p), "u64 round trip");
  if (auto m = DecodePin(p); m.ok())
    Check(Same(EncodePin(m->first, m->second), p), "pin round trip");
  // Not byte-exact (a status OK drops its message; stats may have more or fewer fields):
  // what they accept must decode again from its own encoding.
  if (auto m = DecodeReservations(p); m.ok())
    Check(DecodeReservations(EncodeReservations(*m)).ok(), "reserve_ok re-decode");
  if (auto m = DecodeLoadRoundReply(p); m.ok())
    Check(DecodeLoadRoundReply(Encode(*m)).ok(), "prepare_load_ok re-decode");
  if (auto m = DecodeStats(p); m.ok()) Check(DecodeStats(EncodeStats(*m)).ok(), "stats re-decode");
  Status carried;
  (void)DecodeStatusPayload(p, &carried);
  (void)DecodeError(p);
}

// A reply must be what the client (remote_tiers.cc) can decode.
void CheckReply(MessageType type, MessageType reply_type, const std::vector<std::byte>& reply,
                size_t request_keys) {
  switch (reply_type) {
    case MessageType::kMatchOk:
      Check(type == MessageType::kMatch, "match_ok answers a match");
      Check(DecodeMatchReply(reply).ok(), "match_ok decodes");
      break;
    case MessageType::kReserveOk: {
      Check(type == MessageType::kReserve, "reserve_ok answers a reserve");
      auto r = DecodeReservations(reply);
      Check(r.ok() && r->size() == request_keys, "reserve_ok decodes, one entry per key");
      break;
    }
    case MessageType::kPrepareLoadOk: {
      Check(type == MessageType::kPrepareLoad, "prepare_load_ok answers a prepare_load");
      auto r = DecodeLoadRoundReply(reply);
      Check(r.ok(), "prepare_load_ok decodes");
      for (uint32_t b : r->blocks) Check(b < request_keys, "prepare_load_ok names a request block");
      break;
    }
    case MessageType::kStatsOk:
      Check(type == MessageType::kStats, "stats_ok answers a stats");
      Check(DecodeStats(reply).ok(), "stats_ok decodes");
      break;
    case MessageType::kOk: {
      Status carried;
      Check(DecodeStatusPayload(reply, &carried).ok(), "ok decodes");
      break;
    }
    default:
      Fail("a reply of an unexpected type");
  }
}

// Brings G2 back to a fresh tier: every pin this input made undone, every block evicted,
// the free slots stacked so that slot 0 is handed out first (as HostTier's constructor
// does). Reserving every slot at once is possible only if nothing leaked.
void ResetTier(const KeySet& pinned) {
  TierHierarchy* tiers = Tiers();
  for (const BlockKey& k : pinned) (void)tiers->Pin({&k, 1}, false);
  std::vector<BlockKey> keys;
  std::vector<StoreReservation> held;
  uint64_t n = 0;
  // A scrub key the input stored itself is skipped (present) and evicted by a later one.
  for (int round = 0; held.size() < kHostBlocks; ++round) {
    Check(round < 8, "G2 slots cannot all be reserved after the session closed");
    std::vector<BlockKey> batch(kHostBlocks - held.size());
    for (BlockKey& k : batch) {
      k.bytes.fill(0xa5);
      const uint64_t v = ++n;
      std::memcpy(k.bytes.data() + 8, &v, sizeof v);
    }
    std::vector<StoreReservation> res;
    tiers->Reserve(batch, &res);
    for (size_t i = 0; i < batch.size(); ++i) {
      Check(res[i].state != BlockState::kDropped,
            "G2 full after the session closed: a leaked lease, pin or reservation");
      if (res[i].state != BlockState::kPending) continue;
      keys.push_back(batch[i]);
      held.push_back(res[i]);
    }
  }
  // Abort tail to head by slot, so the free stack ends with slot 0 on top.
  std::vector<size_t> order(held.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(),
            [&](size_t a, size_t b) { return held[a].slot > held[b].slot; });
  std::vector<BlockKey> k2;
  std::vector<StoreReservation> r2;
  for (size_t i : order) {
    k2.push_back(keys[i]);
    r2.push_back(held[i]);
  }
  const std::vector<uint8_t> none(r2.size(), 0);
  Check(tiers->FinishStore(k2, r2, none).ok(), "aborting the scrub reservations");
  const BlockManagerStats st = Stats();
  Check(st.host_used_blocks == 0 && st.host_leased_blocks == 0 && st.host_pinned_blocks == 0,
        "G2 not empty after the reset");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  TierHierarchy* tiers = Tiers();
  KeySet pinned, reserved;  // keys this input pinned; keys it got a G2 reservation for
  {
    Session session(1, "fuzz-token", "fuzz client", "0/1", tiers);
    Bytes in(reinterpret_cast<const std::byte*>(data), size);
    while (in.size() >= kHeaderBytes) {
      Result<FrameHeader> h = DecodeHeader(in.first(kHeaderBytes));
      if (!h.ok()) {  // the server closes the connection
        if (Trace()) std::fprintf(stderr, "stop: %s\n", h.status().ToString().c_str());
        break;
      }
      in = in.subspan(kHeaderBytes);
      if (h->length > in.size()) break;  // the client went away mid-frame
      const Bytes payload = in.first(h->length);
      in = in.subspan(h->length);
      DecodeAll(payload);
      if (h->type == MessageType::kHello) continue;

      // What the harness needs to know about the request for its checks.
      std::vector<BlockKey> keys;
      size_t request_keys = 0;
      if (h->type == MessageType::kReserve || h->type == MessageType::kMatch) {
        if (auto k = DecodeKeys(payload); k.ok()) keys = std::move(k).value();
        request_keys = keys.size();
      } else if (h->type == MessageType::kPrepareLoad) {
        if (auto b = DecodeLoadBlocks(payload); b.ok()) request_keys = b->size();
      } else if (h->type == MessageType::kPin) {
        if (auto p = DecodePin(payload); p.ok() && p->first)
          pinned.insert(p->second.begin(), p->second.end());
      }

      MessageType reply_type = MessageType::kError;
      std::vector<std::byte> reply;
      const Status st = session.Dispatch(h->type, payload, &reply_type, &reply);
      if (Trace())
        std::fprintf(
            stderr, "seq %u %s (%u bytes) -> %s\n", h->seq,
            std::string(MessageTypeName(h->type)).c_str(), h->length,
            st.ok() ? std::string(MessageTypeName(reply_type)).c_str() : st.ToString().c_str());
      if (!st.ok()) {
        Check(!st.message().empty(), "a protocol violation says what it was");
        break;  // the server sends kError and closes
      }
      CheckReply(h->type, reply_type, reply, request_keys);
      if (reply_type == MessageType::kReserveOk) {
        auto res = DecodeReservations(reply);
        for (size_t i = 0; i < res->size(); ++i)
          if ((*res)[i].state == BlockState::kPending) reserved.insert(keys[i]);
      }
    }

    // The client goes away.
    session.Close();
    Check(session.closed(), "closed after Close");
    const Session::Holdings held = session.holdings();
    Check(held.host_leases == 0 && held.disk_leases == 0 && held.reserved == 0 && held.rounds == 0,
          "the session holds something after Close");
  }  // ~Session: Close again, idempotent

  const BlockManagerStats st = Stats();
  Check(st.host_leased_blocks == 0, "a G2 lease outlived its session");
  // The tier was empty when the input started, so what G2 holds now are the blocks this
  // session committed (and that were not evicted since): nothing else may use a slot.
  uint64_t stored = 0;
  for (const BlockKey& k : reserved) stored += tiers->host()->Contains(k) ? 1 : 0;
  if (Trace())
    std::fprintf(stderr, "closed: G2 uses %llu slots, %llu blocks stored, %llu pinned\n",
                 static_cast<unsigned long long>(st.host_used_blocks),
                 static_cast<unsigned long long>(stored),
                 static_cast<unsigned long long>(st.host_pinned_blocks));
  if (st.host_used_blocks != stored) {
    std::fprintf(stderr, "daemon_protocol_fuzz: G2 uses %llu slots, %llu blocks stored\n",
                 static_cast<unsigned long long>(st.host_used_blocks),
                 static_cast<unsigned long long>(stored));
    Fail("a G2 reservation outlived its session");
  }
  ResetTier(pinned);
  return 0;
}
