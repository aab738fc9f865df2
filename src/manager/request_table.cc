// RequestTable: per-request leases and loads (see request_table.h).
#include "manager/request_table.h"

#include <utility>

#include <fmt/format.h>

namespace strata {

std::vector<Held> RequestTable::Replace(const std::string& request_id, std::vector<Held> held,
                                        const BlockKey& last_key) {
  std::vector<Held> stale;
  std::lock_guard lock(mu_);
  Request& req = requests_[request_id];
  stale.swap(req.held);
  const bool miss = held.empty();
  req.held = std::move(held);
  req.last_key = last_key;
  req.PruneOps();
  if (miss && req.ops.empty()) requests_.erase(request_id);
  return stale;
}

Status RequestTable::TakeForLoad(const MatchResult& match, size_t first, size_t n,
                                 const std::shared_ptr<internal::TransferState>& op,
                                 std::vector<Held>* before, std::vector<Held>* load) {
  std::lock_guard lock(mu_);
  auto it = requests_.find(match.request_id);
  // Keys chain, so equal last keys mean equal prefixes: this is the request's current match.
  const size_t m = match.num_matched_blocks();
  if (it == requests_.end() || it->second.held.size() != m ||
      (m > 0 && !(it->second.last_key == match.keys[m - 1])))
    return Status::InvalidArgument(fmt::format(
        "Load: request '{}' holds no such match (released, cancelled, or matched again since)",
        match.request_id));
  Request& req = it->second;
  for (size_t i = 0; i < n; ++i) {
    if (req.held[first + i].tier == Tier::kDevice)
      return Status::InvalidArgument(fmt::format(
          "Load: block {} of request '{}' was already loaded", first + i, match.request_id));
  }
  for (size_t i = 0; i < first; ++i) {
    if (req.held[i].tier != Tier::kDevice) before->push_back(std::exchange(req.held[i], Held{}));
  }
  load->resize(n);
  for (size_t i = 0; i < n; ++i) (*load)[i] = std::exchange(req.held[first + i], Held{});
  req.PruneOps();
  req.ops.push_back(op);
  return Status::Ok();
}

std::vector<Held> RequestTable::Remove(std::string_view request_id, bool cancel) {
  std::lock_guard lock(mu_);
  auto it = requests_.find(std::string(request_id));
  if (it == requests_.end()) return {};
  if (cancel) it->second.Cancel();
  std::vector<Held> held = std::move(it->second.held);
  requests_.erase(it);
  return held;
}

void RequestTable::CancelAll() {
  std::lock_guard lock(mu_);
  for (auto& [id, req] : requests_) req.Cancel();
}

std::vector<Held> RequestTable::TakeAll() {
  std::lock_guard lock(mu_);
  std::vector<Held> all;
  for (auto& [id, req] : requests_) all.insert(all.end(), req.held.begin(), req.held.end());
  requests_.clear();
  return all;
}

size_t RequestTable::size() const {
  std::lock_guard lock(mu_);
  return requests_.size();
}

}  // namespace strata
