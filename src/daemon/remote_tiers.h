// RemoteTiers: the TierService of a BlockManager in client mode — the tiers of a `strata
// daemon` on this node. G2 is the daemon's shared memory, mapped here, so the transfer engine
// copies blocks between the device and G2 directly; match, leases, reservations, commits and
// load rounds are calls over the daemon's Unix socket (docs/daemon_protocol.md).
//
// Failure is fast and never wrong: a call that fails or takes longer than io_timeout drops
// the connection (the daemon then gives back everything this client held), Match misses,
// loads and stores fail per block, and the bytes of a load count only when the daemon
// confirms (FinishLoad) that the round's slots stayed leased throughout. Each reconnection
// is a new epoch; what an older epoch handed out is refused, never touched.
//
// Thread-safe: concurrent calls use different sockets (up to daemon.connections).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>
#include <vector>

#include "daemon/messages.h"
#include "manager/tier_service.h"
#include "strata/options.h"

namespace strata {
class HostBuffer;
class BlockMover;
}  // namespace strata

namespace strata::daemon {

class RemoteTiers final : public TierService {
 public:
  // Connects (one socket, the hello, G2 mapped). Unavailable when no daemon answers at
  // options.daemon.socket; InvalidArgument when its KV layout differs from options.layout.
  static Result<std::unique_ptr<RemoteTiers>> Connect(const BlockManagerOptions& options);
  ~RemoteTiers() override;

  Status RegisterDevice(const DeviceCache& cache) override;
  void Match(std::span<const BlockKey> keys, TierMatch* out) override;
  void Release(std::span<const Held> held) override;
  void Reserve(std::span<const BlockKey> keys, std::vector<StoreReservation>* out) override;
  void BeginStore(std::span<StoreReservation> reservations) override;
  Status FinishStore(std::span<const BlockKey> keys, std::span<const StoreReservation> reservations,
                     std::span<const uint8_t> ok) override;
  void PrepareLoad(std::span<const BlockKey> keys, std::span<Held> held,
                   std::span<const size_t> pending, LoadRound* round) override;
  Status FinishLoad(LoadRound& round) override;
  void Move(TransferOp op, uint16_t epoch, std::span<const uint32_t> device_blocks,
            std::span<const uint32_t> host_slots, std::vector<Status>* per_block) override;
  Status Pin(std::span<const BlockKey> keys, bool pin) override;
  Status Flush() override;
  void FillStats(BlockManagerStats* stats) const override;

 private:
  // One connection to one daemon instance: its session, G2 mapping and sockets.
  struct Epoch;
  struct Reply {
    MessageType type;
    std::vector<std::byte> payload;
  };

  explicit RemoteTiers(const BlockManagerOptions& options);
  Result<std::shared_ptr<Epoch>> Open(uint16_t id) const;
  // The current epoch, reconnecting when it broke and reconnect_interval has passed.
  Result<std::shared_ptr<Epoch>> Current() const;
  // The current epoch if it is `id` and still up.
  std::shared_ptr<Epoch> Exactly(uint16_t id) const;
  // One request and its reply (of type `expect`; expect == type: a request without a reply)
  // on a socket of `e`; any failure breaks the epoch (the daemon ends the session when the
  // socket closes).
  Result<Reply> Call(Epoch& e, MessageType type, std::span<const std::byte> payload,
                     MessageType expect) const;
  // Call on the current epoch; *epoch says which one answered.
  Result<Reply> CallCurrent(MessageType type, std::span<const std::byte> payload,
                            MessageType expect, uint16_t* epoch = nullptr) const;
  void NoteFailure(const Status& why) const;

  const BlockManagerOptions options_;
  mutable std::mutex mu_;
  mutable std::shared_ptr<Epoch> current_;                      // GUARDED_BY(mu_)
  mutable uint16_t last_epoch_ = 0;                             // GUARDED_BY(mu_)
  mutable std::chrono::steady_clock::time_point last_attempt_;  // GUARDED_BY(mu_)
  mutable std::optional<DeviceCache> device_;                   // GUARDED_BY(mu_)
  mutable std::atomic<int64_t> last_warning_ns_{0};
};

}  // namespace strata::daemon
