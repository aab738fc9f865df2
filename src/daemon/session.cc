// Session: a daemon client's ledger of leases, reservations and load rounds (see session.h).
#include "daemon/session.h"

#include <fmt/format.h>

namespace strata::daemon {
namespace {

Status Closed() {
  return Status::Unavailable("the session was closed");
}

}  // namespace

Status Session::Dispatch(MessageType type, std::span<const std::byte> payload,
                         MessageType* reply_type, std::vector<std::byte>* reply) {
  auto answer = [&](MessageType t, std::vector<std::byte> body) {
    *reply_type = t;
    *reply = std::move(body);
    return Status::Ok();
  };
  // kOk carries a status: OK, or a Pin's or Flush's own error (not a protocol error).
  auto ok = [&](const Status& carried = Status::Ok()) {
    return answer(MessageType::kOk, EncodeErrorPayload(carried));
  };
  switch (type) {
    case MessageType::kMatch: {
      STRATA_ASSIGN_OR_RETURN(std::vector<BlockKey> keys, DecodeKeys(payload));
      STRATA_ASSIGN_OR_RETURN(MatchReply m, Match(keys));
      return answer(MessageType::kMatchOk, Encode(m));
    }
    case MessageType::kRelease: {
      STRATA_ASSIGN_OR_RETURN(std::vector<Held> held, DecodeHeld(payload));
      STRATA_RETURN_IF_ERROR(Release(held));
      return ok();
    }
    case MessageType::kReleaseQuietly: {
      STRATA_ASSIGN_OR_RETURN(std::vector<Held> held, DecodeHeld(payload));
      STRATA_RETURN_IF_ERROR(Release(held));
      *reply_type = MessageType::kReleaseQuietly;  // no reply
      reply->clear();
      return Status::Ok();
    }
    case MessageType::kReserve: {
      STRATA_ASSIGN_OR_RETURN(std::vector<BlockKey> keys, DecodeKeys(payload));
      STRATA_ASSIGN_OR_RETURN(std::vector<StoreReservation> res, Reserve(keys));
      return answer(MessageType::kReserveOk, EncodeReservations(res));
    }
    case MessageType::kFinishStore: {
      STRATA_ASSIGN_OR_RETURN(std::vector<StoreOutcome> out, DecodeOutcomes(payload));
      STRATA_RETURN_IF_ERROR(FinishStore(out));
      return ok();
    }
    case MessageType::kPrepareLoad: {
      STRATA_ASSIGN_OR_RETURN(std::vector<LoadBlock> blocks, DecodeLoadBlocks(payload));
      STRATA_ASSIGN_OR_RETURN(LoadRoundReply round, PrepareLoad(blocks));
      return answer(MessageType::kPrepareLoadOk, Encode(round));
    }
    case MessageType::kFinishLoad: {
      STRATA_ASSIGN_OR_RETURN(uint64_t round, DecodeU64(payload));
      STRATA_RETURN_IF_ERROR(FinishLoad(round));
      return ok();
    }
    case MessageType::kPin: {
      STRATA_ASSIGN_OR_RETURN(auto pin, DecodePin(payload));
      return ok(tiers_->Pin(pin.second, pin.first));
    }
    case MessageType::kFlush:
      if (!payload.empty()) return Status::InvalidArgument("flush carries no payload");
      return ok(tiers_->Flush());
    case MessageType::kStats: {
      if (!payload.empty()) return Status::InvalidArgument("stats carries no payload");
      BlockManagerStats st;
      tiers_->FillStats(&st);
      return answer(MessageType::kStatsOk, EncodeStats(st));
    }
    default:
      return Status::InvalidArgument(fmt::format(
          "unexpected message type {} ({})", static_cast<uint16_t>(type), MessageTypeName(type)));
  }
}

LeaseCounts* Session::LedgerOf(Tier tier) {
  if (tier == Tier::kHost) return &host_leases_;
  if (tier == Tier::kDisk) return &disk_leases_;
  return nullptr;  // G4 blocks hold nothing; kDevice: nothing
}

Status Session::TakeLeasesLocked(std::span<const Held> held) {
  for (size_t i = 0; i < held.size(); ++i) {
    LeaseCounts* ledger = LedgerOf(held[i].tier);
    if (ledger == nullptr || ledger->Take(held[i].id)) continue;
    // Not held: put back what this call took, so nothing changes.
    for (size_t j = 0; j < i; ++j)
      if (LeaseCounts* l = LedgerOf(held[j].tier)) l->Add(held[j].id);
    const Held& h = held[i];
    return Status::InvalidArgument(
        fmt::format("the client gave back a {} lease on {} {} it does not hold", TierName(h.tier),
                    h.tier == Tier::kHost ? "slot" : "record", h.id));
  }
  return Status::Ok();
}

void Session::AddLeasesLocked(std::span<const Held> held) {
  for (const Held& h : held)
    if (LeaseCounts* ledger = LedgerOf(h.tier)) ledger->Add(h.id);
}

Result<MatchReply> Session::Match(std::span<const BlockKey> keys) {
  TierMatch m;
  tiers_->Match(keys, &m);
  {
    std::lock_guard lock(mu_);
    if (!closed_) {
      AddLeasesLocked(m.held);
      return MatchReply{.held = std::move(m.held),
                        .from_host = m.from_host,
                        .from_disk = m.from_disk,
                        .from_shared = m.from_shared};
    }
  }
  tiers_->Release(m.held);
  return Closed();
}

Status Session::Release(std::span<const Held> held) {
  {
    std::lock_guard lock(mu_);
    if (closed_) return Closed();
    STRATA_RETURN_IF_ERROR(TakeLeasesLocked(held));
  }
  tiers_->Release(held);
  return Status::Ok();
}

Result<std::vector<StoreReservation>> Session::Reserve(std::span<const BlockKey> keys) {
  std::vector<StoreReservation> res;
  tiers_->Reserve(keys, &res);
  // The client writes the slots as soon as it has the answer: save what they evicted first.
  tiers_->BeginStore(res);
  {
    std::lock_guard lock(mu_);
    if (!closed_) {
      for (size_t i = 0; i < res.size(); ++i)
        if (res[i].state == BlockState::kPending) reserved_[res[i].slot] = keys[i];
      return res;
    }
  }
  const std::vector<uint8_t> none(res.size(), 0);
  (void)tiers_->FinishStore(keys, res, none);
  return Closed();
}

Status Session::FinishStore(std::span<const StoreOutcome> outcomes) {
  std::vector<BlockKey> keys;
  std::vector<StoreReservation> res;
  std::vector<uint8_t> ok;
  keys.reserve(outcomes.size());
  res.reserve(outcomes.size());
  ok.reserve(outcomes.size());
  {
    std::lock_guard lock(mu_);
    if (closed_) return Closed();
    for (const StoreOutcome& o : outcomes) {
      auto it = reserved_.find(o.slot);
      if (it == reserved_.end()) {
        // Not reserved (or named twice): put back what this call took; the session ends.
        for (size_t j = 0; j < keys.size(); ++j) reserved_.emplace(res[j].slot, keys[j]);
        return Status::InvalidArgument(
            fmt::format("the client finished a store into G2 slot {} it has not reserved", o.slot));
      }
      keys.push_back(it->second);
      res.push_back({.state = BlockState::kPending, .slot = o.slot});
      ok.push_back(o.ok);
      reserved_.erase(it);
    }
  }
  return tiers_->FinishStore(keys, res, ok);
}

Result<LoadRoundReply> Session::PrepareLoad(std::span<const LoadBlock> blocks) {
  std::vector<BlockKey> keys;
  std::vector<Held> held;
  // G4 blocks hold no lease, so they are in no ledger and a client may name any key as
  // one: there must be a G4 tier to read them from.
  bool from_shared = false;
  for (const LoadBlock& b : blocks) {
    keys.push_back(b.key);
    held.push_back(b.held);
    from_shared |= b.held.tier == Tier::kShared;
  }
  if (from_shared && !tiers_->has_shared())
    return Status::InvalidArgument(
        "the client loads a G4 shared-tier block, but the daemon has no G4 tier");
  {
    std::lock_guard lock(mu_);
    if (closed_) return Closed();
    STRATA_RETURN_IF_ERROR(TakeLeasesLocked(held));
  }
  std::vector<size_t> pending(blocks.size());
  for (size_t i = 0; i < pending.size(); ++i) pending[i] = i;
  LoadRound round;
  if (!blocks.empty()) tiers_->PrepareLoad(keys, held, pending, &round);
  LoadRoundReply reply;
  {
    std::lock_guard lock(mu_);
    if (!closed_) {
      AddLeasesLocked(held);  // the blocks this round did not cover keep theirs
      reply.round = next_round_++;
      for (size_t k = 0; k < round.blocks.size(); ++k) {
        reply.blocks.push_back(static_cast<uint32_t>(round.blocks[k]));
        reply.src.push_back(round.src[k]);
        reply.status.push_back(round.status[k]);
      }
      rounds_.emplace(reply.round, std::move(round));
      return reply;
    }
  }
  tiers_->Release(held);
  (void)tiers_->FinishLoad(round);
  return Closed();
}

Status Session::FinishLoad(uint64_t id) {
  LoadRound round;
  {
    std::lock_guard lock(mu_);
    if (closed_) return Closed();
    auto it = rounds_.find(id);
    if (it == rounds_.end())
      return Status::InvalidArgument(
          fmt::format("the client finished load round {} it does not hold", id));
    round = std::move(it->second);
    rounds_.erase(it);
  }
  return tiers_->FinishLoad(round);
}

void Session::Close() {
  std::vector<Held> leases;
  std::vector<BlockKey> keys;
  std::vector<StoreReservation> res;
  std::unordered_map<uint64_t, LoadRound> rounds;
  {
    std::lock_guard lock(mu_);
    if (closed_) return;
    closed_ = true;
    host_leases_.Drain([&](uint32_t slot) { leases.push_back({.tier = Tier::kHost, .id = slot}); });
    disk_leases_.Drain(
        [&](uint32_t record) { leases.push_back({.tier = Tier::kDisk, .id = record}); });
    for (const auto& [slot, key] : reserved_) {
      keys.push_back(key);
      res.push_back({.state = BlockState::kPending, .slot = slot});
    }
    reserved_.clear();
    rounds.swap(rounds_);
  }
  tiers_->Release(leases);
  const std::vector<uint8_t> none(res.size(), 0);
  (void)tiers_->FinishStore(keys, res, none);  // unfinished stores are never served
  for (auto& [id, round] : rounds) (void)tiers_->FinishLoad(round);
}

bool Session::closed() const {
  std::lock_guard lock(mu_);
  return closed_;
}

Session::Holdings Session::holdings() const {
  std::lock_guard lock(mu_);
  Holdings h;
  h.host_leases = host_leases_.total();
  h.disk_leases = disk_leases_.total();
  h.reserved = reserved_.size();
  h.rounds = rounds_.size();
  return h;
}

}  // namespace strata::daemon
