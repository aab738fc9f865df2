// Session: one client of a `strata daemon` — everything the daemon handed it (G2 and G3
// leases, reserved G2 slots, load rounds) in a ledger, so that a client can only give back
// what it holds, and so that everything it still holds is given back when it goes away
// (its process died, it was killed, a socket broke): a reservation it did not finish is
// aborted and never served, a lease ends.
//
// Thread-safe: the client's sockets call in concurrently. The ledger's lock is never held
// across a call into the tiers.
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "daemon/messages.h"
#include "manager/tier_hierarchy.h"

namespace strata::daemon {

// How many leases a session holds on each G2 slot or G3 record: a flat array (4 bytes an
// id, allocated on first use), so a Match of hundreds of blocks costs no allocation.
class LeaseCounts {
 public:
  explicit LeaseCounts(uint32_t ids) : ids_(ids) {}
  void Add(uint32_t id) {
    if (counts_.empty()) counts_.assign(ids_, 0);
    ++counts_[id];
    ++total_;
  }
  // Ends one lease of `id`; false (nothing changed) when none is held.
  bool Take(uint32_t id) {
    if (id >= counts_.size() || counts_[id] == 0) return false;
    --counts_[id];
    --total_;
    return true;
  }
  uint64_t total() const { return total_; }
  // Every lease held, once per count; then none.
  template <class F>
  void Drain(F&& each) {
    for (uint32_t id = 0; id < counts_.size() && total_ > 0; ++id)
      for (; counts_[id] > 0; --counts_[id], --total_) each(id);
  }

 private:
  const uint32_t ids_;
  std::vector<uint32_t> counts_;
  uint64_t total_ = 0;
};

class Session {
 public:
  // `client` names it in logs, `label` in metrics.
  Session(uint64_t id, std::string token, std::string client, std::string label,
          TierHierarchy* tiers)
      : id_(id),
        token_(std::move(token)),
        client_(std::move(client)),
        label_(std::move(label)),
        tiers_(tiers),
        host_leases_(tiers->host_slots().slots),
        disk_leases_(tiers->disk_records()) {}
  ~Session() { Close(); }

  uint64_t id() const { return id_; }
  const std::string& token() const { return token_; }
  const std::string& client() const { return client_; }
  const std::string& label() const { return label_; }

  // Answers one request after hello: *reply_type and *reply (*reply_type == type for a
  // request answered by nothing, kReleaseQuietly), or the protocol violation
  // (malformed payload, unexpected type, a lease or slot it does not hold) that ends the
  // session.
  Status Dispatch(MessageType type, std::span<const std::byte> payload, MessageType* reply_type,
                  std::vector<std::byte>* reply);

  // Each returns the reply payload, or the protocol violation that ends the session.
  Result<MatchReply> Match(std::span<const BlockKey> keys);
  Status Release(std::span<const Held> held);
  Result<std::vector<StoreReservation>> Reserve(std::span<const BlockKey> keys);
  Status FinishStore(std::span<const StoreOutcome> outcomes);
  Result<LoadRoundReply> PrepareLoad(std::span<const LoadBlock> blocks);
  Status FinishLoad(uint64_t round);

  // Gives back everything the session holds; later calls fail. Idempotent.
  void Close();
  bool closed() const;

  struct Holdings {
    uint64_t host_leases = 0, disk_leases = 0, reserved = 0, rounds = 0;
  };
  Holdings holdings() const;

 private:
  // Moves the leases of `held` out of the ledger: all of them, or (a lease the session does
  // not hold) none and InvalidArgument.
  LeaseCounts* LedgerOf(Tier tier);
  Status TakeLeasesLocked(std::span<const Held> held);
  void AddLeasesLocked(std::span<const Held> held);

  const uint64_t id_;
  const std::string token_;
  const std::string client_;
  const std::string label_;
  TierHierarchy* const tiers_;

  mutable std::mutex mu_;
  bool closed_ = false;                              // GUARDED_BY(mu_)
  LeaseCounts host_leases_;                          // GUARDED_BY(mu_) per G2 slot
  LeaseCounts disk_leases_;                          // GUARDED_BY(mu_) per G3 record
  std::unordered_map<uint32_t, BlockKey> reserved_;  // GUARDED_BY(mu_) slot -> key
  std::unordered_map<uint64_t, LoadRound> rounds_;   // GUARDED_BY(mu_)
  uint64_t next_round_ = 1;                          // GUARDED_BY(mu_)
};

}  // namespace strata::daemon
