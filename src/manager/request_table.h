// RequestTable: what each request holds between Match and Release — a lease per matched
// block, the key that names its current match, and its loads in flight (so Cancel can stop
// them). Leases go in and come out; ending them is the caller's (TierService::Release).
//
// Thread-safe: one mutex, held for map operations only.
#pragma once

#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "manager/tier_service.h"
#include "manager/transfer_state.h"

namespace strata {

class RequestTable {
 public:
  // The request's new match (`held` one per matched block, `last_key` the last one's key):
  // returns what its previous match still held. A miss with no load in flight keeps no state.
  std::vector<Held> Replace(const std::string& request_id, std::vector<Held> held,
                            const BlockKey& last_key);

  // A Load of matched blocks [first, first + n) of `match`, run as `op`: moves those blocks'
  // leases into *load and those of the blocks before `first` into *before (the engine holds
  // them already). InvalidArgument when `match` is not the request's current one or a block
  // was already handed to a load.
  Status TakeForLoad(const MatchResult& match, size_t first, size_t n,
                     const std::shared_ptr<internal::TransferState>& op, std::vector<Held>* before,
                     std::vector<Held>* load);

  // Forgets the request and returns what it held; with `cancel`, its loads that have not
  // run are cancelled.
  std::vector<Held> Remove(std::string_view request_id, bool cancel);

  // Shutdown: cancels every load in flight / forgets every request, returning its leases.
  void CancelAll();
  std::vector<Held> TakeAll();

  size_t size() const;

 private:
  struct Request {
    std::vector<Held> held;  // per matched block; kDevice once handed to a load
    BlockKey last_key;       // key of the last matched block
    std::vector<std::weak_ptr<internal::TransferState>> ops;

    void PruneOps() {
      std::erase_if(ops, [](const auto& w) { return w.expired(); });
    }
    void Cancel() {
      for (auto& w : ops)
        if (auto op = w.lock()) op->cancel_requested.store(true, std::memory_order_release);
    }
  };

  mutable std::mutex mu_;
  std::unordered_map<std::string, Request> requests_;  // GUARDED_BY(mu_)
};

}  // namespace strata
